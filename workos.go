package main

// The WorkOS API, through the SDK's user-management client with bounded time and answers, and a strict reading of
// what WorkOS says.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

const (
	workosTimeout = 10 * time.Second // each call: a slow WorkOS answers 503, not hangs
	maxWorkOSBody = 1 << 20          // an answer is a few KiB; the SDK reads without a limit
)

type workosClient struct {
	um       *usermanagement.Client
	clientID string
}

func newWorkOSClient(cfg config) *workosClient {
	um := usermanagement.NewClient(cfg.WorkOSAPIKey)
	um.Endpoint = cfg.WorkOSAPIBaseURL
	um.HTTPClient = &http.Client{Timeout: workosTimeout, Transport: workosTransport{}}
	return &workosClient{um: um, clientID: cfg.WorkOSClientID}
}

// workosError is a WorkOS answer other than 2xx. workosTransport reads it before the SDK does: the SDK's error types
// differ by code, and their messages may carry tokens.
type workosError struct {
	status       int
	requestID    string
	Code         string `json:"code"`
	Error_       string `json:"error"` // what some authentication errors use for code
	PendingToken string `json:"pending_authentication_token"`
	User         struct {
		ID string `json:"id"`
	} `json:"user"`
	Organizations []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"organizations"`
}

func (e *workosError) Error() string {
	return fmt.Sprintf("WorkOS answered %d %s (request %s)", e.status, e.Code, e.requestID)
}

// workosTransport reads every answer whole, up to maxWorkOSBody, and turns a non-2xx one into a workosError; a
// redirect is one too, never followed (it would carry the API key).
type workosTransport struct{}

func (workosTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxWorkOSBody+1))
	if err == nil && len(body) > maxWorkOSBody {
		err = fmt.Errorf("over %d bytes", maxWorkOSBody)
	}
	if err != nil {
		return nil, fmt.Errorf("read WorkOS answer to %s %s: %w", req.Method, req.URL.Path, err)
	}
	if res.StatusCode/100 != 2 {
		e := &workosError{status: res.StatusCode, requestID: res.Header.Get("X-Request-ID")}
		json.Unmarshal(body, e) // what it holds, if it is JSON at all
		e.Code = cmp.Or(e.Code, e.Error_)
		return nil, e
	}
	res.Body, res.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return res, nil
}

// logoutURL is the SDK's GetLogoutURL; sid has passed workosSessionID's check.
func (c *workosClient) logoutURL(sid string) string {
	u, _ := c.um.GetLogoutURL(usermanagement.GetLogoutURLOpts{SessionID: sid}) // fails only on ""
	return u.String()
}

func (c *workosClient) authorizationURL(redirectURI, state, challenge, hint string) (string, error) {
	u, err := c.um.GetAuthorizationURL(usermanagement.GetAuthorizationURLOpts{
		ClientID: c.clientID, Provider: "authkit", RedirectURI: redirectURI, State: state,
		CodeChallenge: challenge, CodeChallengeMethod: "S256", ScreenHint: usermanagement.ScreenHint(hint)})
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// authenticateCode exchanges a code and its PKCE verifier; the SDK sends the API key as client_secret.
func (c *workosClient) authenticateCode(ctx context.Context, code, verifier string) (usermanagement.AuthenticateResponse, error) {
	return c.um.AuthenticateWithCode(ctx, usermanagement.AuthenticateWithCodeOpts{
		ClientID: c.clientID, Code: code, CodeVerifier: verifier})
}

func (c *workosClient) selectOrganization(ctx context.Context, token, orgID string) (usermanagement.AuthenticateResponse, error) {
	return c.um.AuthenticateWithOrganizationSelection(ctx, usermanagement.AuthenticateWithOrganizationSelectionOpts{
		ClientID: c.clientID, PendingAuthenticationToken: token, OrganizationID: orgID})
}

// membership returns the status of userID's membership in orgID, or in any organization when orgID is "": active if
// one is, else inactive if one is, else pending or "". (AuthKit names no organization when all of a person's
// memberships are inactive; they learn MEMBERSHIP_DEACTIVATED, and only a person with none MEMBERSHIP_NOT_FOUND.)
func (c *workosClient) membership(ctx context.Context, userID, orgID string) (usermanagement.OrganizationMembershipStatus, error) {
	list, err := c.um.ListOrganizationMemberships(ctx, usermanagement.ListOrganizationMembershipsOpts{
		UserID: userID, OrganizationID: orgID, Statuses: []usermanagement.OrganizationMembershipStatus{
			usermanagement.Active, usermanagement.Inactive, usermanagement.PendingOrganizationMembership}})
	var status usermanagement.OrganizationMembershipStatus
	for _, m := range list.Data {
		// Entries for another user or organization are ignored, whatever the filter did.
		switch {
		case m.UserID != userID || orgID != "" && m.OrganizationID != orgID:
		case m.Status == usermanagement.Active:
			return m.Status, err
		case m.Status == usermanagement.Inactive || status == "":
			status = m.Status
		}
	}
	return status, err
}

// magicAuth fetches a magic auth; id has passed validWorkOSID, since the SDK puts it into the URL path unescaped.
func (c *workosClient) magicAuth(ctx context.Context, id string) (usermanagement.MagicAuth, error) {
	return c.um.GetMagicAuth(ctx, usermanagement.GetMagicAuthOpts{MagicAuth: id})
}

// check makes one authenticated read, for dashauth check.
func (c *workosClient) check(ctx context.Context) error {
	_, err := c.um.ListUsers(ctx, usermanagement.ListUsersOpts{Limit: 1})
	return err
}

var errWorkOSAnswer = errors.New("unusable WorkOS answer")

// workosAnswer takes from an authentication the user, bounded and claim-safe since it goes into the session cookies,
// and the WorkOS session id. The id is a claim of WorkOS's access token, which came over the service's own
// authenticated TLS call, so its signature is not checked; its shape is, strictly, since it goes into the logout URL.
func workosAnswer(res usermanagement.AuthenticateResponse, err error) (user, string, error) {
	wu := res.User
	if err != nil {
		return user{}, "", err
	}
	if len(wu.ID) > 64 || len(wu.Email) > maxAddressBytes || len(wu.FirstName) > 256 || len(wu.LastName) > 256 ||
		len(res.OrganizationID) > 64 || !claimSafe(wu.ID) || !claimSafe(wu.Email) || !claimSafe(res.OrganizationID+"_") {
		return user{}, "", fmt.Errorf("user %q or organization: %w", wu.ID, errWorkOSAnswer)
	}
	sid, err := workosSessionID(res.AccessToken)
	return user{ID: wu.ID, Email: wu.Email, FirstName: wu.FirstName, LastName: wu.LastName}, sid, err
}

func workosSessionID(token string) (string, error) {
	var c struct {
		Sid string `json:"sid"`
	}
	parts := strings.Split(token, ".")
	if len(token) <= 16<<10 && len(parts) == 3 && parts[0] != "" && parts[2] != "" && isBase64URL(parts[1]) {
		if payload, err := base64.RawURLEncoding.Strict().DecodeString(parts[1]); err == nil {
			json.Unmarshal(payload, &c)
		}
	}
	if c.Sid == "" || len(c.Sid) > 128 || strings.Trim(c.Sid, idBytes) != "" {
		return "", fmt.Errorf("access token sid: %w", errWorkOSAnswer)
	}
	return c.Sid, nil
}
