package main

// The WorkOS API client: the SDK's user-management client with bounded
// time and response sizes, the calls sign-in and the webhook make, and the
// strict reading of what WorkOS answers.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
	"github.com/workos/workos-go/v4/pkg/workos_errors"
)

const (
	// workosTimeout bounds every call to the WorkOS API, so a slow WorkOS
	// answers 503 instead of holding the request.
	workosTimeout = 10 * time.Second

	// maxWorkOSBody bounds a WorkOS response read into memory. The largest
	// answer the service asks for is one authentication (a user, two tokens)
	// or ten memberships: a few KiB. The SDK reads bodies with no limit.
	maxWorkOSBody = 1 << 20
)

// errWorkOSBodyTooLarge means WorkOS sent more than maxWorkOSBody.
var errWorkOSBodyTooLarge = errors.New("WorkOS response body too large")

// workosClient is the WorkOS SDK's user-management client, pointed at
// WORKOS_API_BASE_URL with a bounded http.Client.
type workosClient struct {
	um       *usermanagement.Client
	clientID string
	// timeout bounds each call; a field so tests can shorten it.
	timeout time.Duration
}

func newWorkOSClient(cfg config) *workosClient {
	um := usermanagement.NewClient(cfg.WorkOSAPIKey)
	um.Endpoint = cfg.WorkOSAPIBaseURL
	um.HTTPClient = &http.Client{
		Timeout:   workosTimeout,
		Transport: boundedTransport{base: http.DefaultTransport, limit: maxWorkOSBody},
		// The API never redirects; following one would carry the API key
		// somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &workosClient{um: um, clientID: cfg.WorkOSClientID, timeout: workosTimeout}
}

// boundedTransport reads each response body whole, up to limit, before the
// SDK sees it: an answer over the limit fails the call instead of being
// read without end (the SDK's error path is an unbounded io.ReadAll).
type boundedTransport struct {
	base  http.RoundTripper
	limit int64
}

func (t boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, t.limit+1))
	if err != nil {
		return nil, fmt.Errorf("read WorkOS response to %s %s: %w", req.Method, req.URL.Path, err)
	}
	if int64(len(body)) > t.limit {
		return nil, fmt.Errorf("read WorkOS response to %s %s: over %d bytes: %w", req.Method, req.URL.Path, t.limit, errWorkOSBodyTooLarge)
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	return res, nil
}

// logoutURL is the SDK's GetLogoutURL for a WorkOS session id.
func (c *workosClient) logoutURL(workosSessionID string) (string, error) {
	u, err := c.um.GetLogoutURL(usermanagement.GetLogoutURLOpts{SessionID: workosSessionID})
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// authorizationURL is the SDK's AuthKit authorization URL with PKCE S256.
func (c *workosClient) authorizationURL(redirectURI, state, challenge, screenHint string) (string, error) {
	u, err := c.um.GetAuthorizationURL(usermanagement.GetAuthorizationURLOpts{
		ClientID:            c.clientID,
		Provider:            "authkit",
		RedirectURI:         redirectURI,
		State:               state,
		CodeChallenge:       challenge,
		CodeChallengeMethod: "S256",
		ScreenHint:          usermanagement.ScreenHint(screenHint),
	})
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// authenticateCode exchanges an authorization code and its PKCE verifier;
// the SDK sends the API key as client_secret.
func (c *workosClient) authenticateCode(ctx context.Context, code, verifier string) (usermanagement.AuthenticateResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.um.AuthenticateWithCode(ctx, usermanagement.AuthenticateWithCodeOpts{
		ClientID: c.clientID, Code: code, CodeVerifier: verifier,
	})
}

// selectOrganization finishes a sign-in that waited for an organization choice.
func (c *workosClient) selectOrganization(ctx context.Context, pendingToken, orgID string) (usermanagement.AuthenticateResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.um.AuthenticateWithOrganizationSelection(ctx, usermanagement.AuthenticateWithOrganizationSelectionOpts{
		ClientID: c.clientID, PendingAuthenticationToken: pendingToken, OrganizationID: orgID,
	})
}

// membershipStatus returns the status of userID's membership in orgID:
// "active", "inactive", "pending", or "" when there is none.
func (c *workosClient) membershipStatus(ctx context.Context, userID, orgID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	list, err := c.um.ListOrganizationMemberships(ctx, usermanagement.ListOrganizationMembershipsOpts{
		UserID:         userID,
		OrganizationID: orgID,
		Statuses: []usermanagement.OrganizationMembershipStatus{
			usermanagement.Active, usermanagement.Inactive, usermanagement.PendingOrganizationMembership,
		},
	})
	if err != nil {
		return "", err
	}
	// A user has at most one membership per organization; should a list
	// ever hold more, the most permissive status counts. Entries for
	// another user or organization are ignored, whatever the filter did.
	status := ""
	for _, m := range list.Data {
		if m.UserID != userID || m.OrganizationID != orgID {
			continue
		}
		switch m.Status {
		case usermanagement.Active:
			return string(usermanagement.Active), nil
		case usermanagement.Inactive, usermanagement.PendingOrganizationMembership:
			if status != string(usermanagement.Inactive) {
				status = string(m.Status)
			}
		}
	}
	return status, nil
}

// hasInactiveMembership reports whether userID has an inactive membership
// in any organization. AuthKit names no organization when a user's only
// memberships are inactive; the contract answers that person
// MEMBERSHIP_DEACTIVATED, and MEMBERSHIP_NOT_FOUND only to one with none.
func (c *workosClient) hasInactiveMembership(ctx context.Context, userID string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	list, err := c.um.ListOrganizationMemberships(ctx, usermanagement.ListOrganizationMembershipsOpts{
		UserID:   userID,
		Statuses: []usermanagement.OrganizationMembershipStatus{usermanagement.Inactive},
		Limit:    1,
	})
	if err != nil {
		return false, err
	}
	for _, m := range list.Data {
		if m.UserID == userID && m.Status == usermanagement.Inactive {
			return true, nil
		}
	}
	return false, nil
}

// magicAuth fetches a magic auth (its code and email) under the timeout.
// id must already have passed validMagicAuthID: the SDK puts it into the
// URL path unescaped.
func (c *workosClient) magicAuth(ctx context.Context, id string) (usermanagement.MagicAuth, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.um.GetMagicAuth(ctx, usermanagement.GetMagicAuthOpts{MagicAuth: id})
}

// Bounds on what a WorkOS answer may put into a session or cookie. WorkOS
// ids are a short prefix and a 26-character ULID; the rest are generous.
const (
	maxWorkOSID      = 64
	maxUserEmail     = maxAddressBytes
	maxUserName      = 256
	maxPendingToken  = 256
	maxWorkOSSID     = 128
	maxAccessToken   = 16 << 10
	maxOfferedOrgs   = 32 // keeps the pending cookie under maxSealedLen
	maxOrgNameInList = 256
)

// errWorkOSAnswer means WorkOS answered something the service cannot use.
var errWorkOSAnswer = errors.New("unusable WorkOS answer")

// workosUser takes the fields the API shows from a WorkOS user, bounded,
// since they end up in the session cookies.
func workosUser(wu usermanagement.User) (user, error) {
	switch {
	case wu.ID == "" || len(wu.ID) > maxWorkOSID:
		return user{}, fmt.Errorf("user id %q: %w", wu.ID, errWorkOSAnswer)
	case len(wu.Email) > maxUserEmail || len(wu.FirstName) > maxUserName || len(wu.LastName) > maxUserName:
		return user{}, fmt.Errorf("user %q: email or name too long: %w", wu.ID, errWorkOSAnswer)
	}
	return user{ID: wu.ID, Email: wu.Email, FirstName: wu.FirstName, LastName: wu.LastName}, nil
}

// workosSessionID reads the sid claim of a WorkOS access token: the WorkOS
// session that logout ends. The token came from WorkOS over the service's
// own authenticated TLS call, so its signature is not checked here; its
// shape is, strictly, and it never leaves the service.
func workosSessionID(token string) (string, error) {
	if len(token) > maxAccessToken {
		return "", fmt.Errorf("access token is %d bytes, limit %d: %w", len(token), maxAccessToken, errWorkOSAnswer)
	}
	header, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || header == "" || payload == "" || sig == "" || strings.Contains(sig, ".") {
		return "", fmt.Errorf("access token is not three dot-separated parts: %w", errWorkOSAnswer)
	}
	raw, err := decodeBase64URL(payload)
	if err != nil {
		return "", fmt.Errorf("access token payload is not base64url: %w", errWorkOSAnswer)
	}
	var c struct {
		Sid string `json:"sid"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", fmt.Errorf("access token payload is not a JSON object: %w", errWorkOSAnswer)
	}
	if !validWorkOSSID(c.Sid) {
		return "", fmt.Errorf("access token sid %q: %w", c.Sid, errWorkOSAnswer)
	}
	return c.Sid, nil
}

// validWorkOSSID accepts an id of letters, digits, '_' and '-' (WorkOS's
// are "session_" and a ULID), so it can go into a URL query as is.
func validWorkOSSID(sid string) bool {
	if sid == "" || len(sid) > maxWorkOSSID {
		return false
	}
	for i := 0; i < len(sid); i++ {
		if c := sid[i]; !isAlnum(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// workosHTTPError finds the HTTP error in what the SDK returned. The SDK
// returns workos_errors.HTTPError by value, or for recognised codes a
// pointer to a typed error that embeds it; each carries the same fields.
func workosHTTPError(err error) (workos_errors.HTTPError, bool) {
	var (
		he   workos_errors.HTTPError
		ev   *workos_errors.EmailVerificationRequiredError
		mfaE *workos_errors.MFAEnrollmentError
		mfaC *workos_errors.MFAChallengeError
		org  *workos_errors.OrganizationSelectionRequiredError
		sso  *workos_errors.SSORequiredError
		meth *workos_errors.OrganizationAuthenticationMethodsRequiredError
	)
	switch {
	case errors.As(err, &he):
		return he, true
	case errors.As(err, &ev):
		return ev.HTTPError, true
	case errors.As(err, &mfaE):
		return mfaE.HTTPError, true
	case errors.As(err, &mfaC):
		return mfaC.HTTPError, true
	case errors.As(err, &org):
		return org.HTTPError, true
	case errors.As(err, &sso):
		return sso.HTTPError, true
	case errors.As(err, &meth):
		return meth.HTTPError, true
	}
	return workos_errors.HTTPError{}, false
}
