package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

// Credentials of the fake WorkOS API. The service under test is configured
// with them by newWorkOSTestServer; the fake refuses anything else.
const (
	testWorkOSClientID      = "client_01TESTCLIENT0000000000000000"
	testWorkOSAPIKey        = "sk_test_fake_workos_api_key_0123456789"
	testWorkOSWebhookSecret = "whsec_test_fake_workos_webhook_secret_0123"
	testWorkOSSigninBaseURL = "https://dashauth-test.authkit.app"
)

// Endpoints of the fake, as passed to setFault and calls. The magic-auth
// endpoint is a prefix: every id under it shares one fault and one count.
const (
	fakeAuthenticatePath = "/user_management/authenticate"
	fakeMembershipsPath  = "/user_management/organization_memberships"
	fakeMagicAuthPath    = "/user_management/magic_auth/"
	fakeAuthorizePath    = "/user_management/authorize"
)

// fakeFault is a way for the fake to misbehave on an endpoint.
type fakeFault int

const (
	faultNone          fakeFault = iota
	fault500                     // 500 with WorkOS's JSON error body
	faultInvalidJSON             // 200, Content-Type JSON, a body that is not JSON
	faultHugeBody                // 200, Content-Type JSON, an endless-looking 8 MiB body
	faultHugeErrorBody           // 400, Content-Type JSON, 8 MiB (the SDK reads error bodies whole)
	faultStall                   // no answer until the request's context ends
	faultStallBody               // headers and half a body, then nothing until the context ends
	faultRedirect                // 307 to another path of the fake (the real API never redirects)
)

// fakeRedirectPath is where faultRedirect points; it counts like an endpoint.
const fakeRedirectPath = "/elsewhere"

// fakeHugeBodySize is well over any limit the client should accept.
const fakeHugeBodySize = 8 << 20

// fakeUser is a WorkOS user as the fake returns it.
type fakeUser struct {
	ID, Email, FirstName, LastName string
}

// fakeOrg is one organization offered for selection.
type fakeOrg struct {
	ID, Name string
}

// fakeGrant is what an authorization code (or, after organization selection,
// a pending authentication token) yields.
type fakeGrant struct {
	User           fakeUser
	OrganizationID string // "" answers organization_id null
	SessionID      string // the sid claim of the access token; generated when ""
	// Challenge is the PKCE S256 code_challenge registered with the code;
	// when set, the exchange must carry the matching code_verifier.
	Challenge string
	// AccessToken replaces the generated access token verbatim when set.
	AccessToken string

	// Err makes the exchange fail with one of WorkOS's errors:
	// "invalid_grant", "organization_selection_required",
	// "email_verification_required", "mfa_enrollment", "mfa_challenge",
	// "sso_required", "organization_authentication_methods_required".
	Err string
	// Organizations are offered with organization_selection_required;
	// selecting one of them succeeds with OrganizationID set to it.
	Organizations []fakeOrg
	// SelectedUser, when set, is the user the organization selection
	// answers for (a WorkOS that mixed up its pending tokens).
	SelectedUser *fakeUser
}

// fakeMagicAuth is one magic auth, as GET /user_management/magic_auth/{id} shows it.
type fakeMagicAuth struct {
	ID, UserID, Email, Code string
	ExpiresAt, CreatedAt    time.Time
}

// fakeAuthenticate is one request body the authenticate endpoint received.
type fakeAuthenticate struct {
	GrantType                  string `json:"grant_type"`
	ClientID                   string `json:"client_id"`
	ClientSecret               string `json:"client_secret"`
	Code                       string `json:"code"`
	CodeVerifier               string `json:"code_verifier"`
	PendingAuthenticationToken string `json:"pending_authentication_token"`
	OrganizationID             string `json:"organization_id"`
}

// fakeWorkOS answers like the WorkOS API for the calls dashauth makes, as
// workos-go v4.46.1 pkg/usermanagement sends them. Every knob is safe to
// turn while requests are in flight.
type fakeWorkOS struct {
	*httptest.Server
	t    *testing.T
	stop chan struct{} // closed at cleanup: releases stalled handlers

	mu          sync.Mutex
	codes       map[string]fakeGrant
	pending     map[string]fakeGrant // pending_authentication_token → grant offering organizations
	memberships map[string]string    // user_id + "\x00" + organization_id → status
	magicAuths  map[string]fakeMagicAuth
	faults      map[string]fakeFault
	faultTimes  map[string]int // >0: the fault applies to that many more calls
	counts      map[string]int
	authBodies  []fakeAuthenticate
	membershipQ []url.Values
}

func newFakeWorkOS(t *testing.T) *fakeWorkOS {
	t.Helper()
	f := &fakeWorkOS{
		t:           t,
		stop:        make(chan struct{}),
		codes:       make(map[string]fakeGrant),
		pending:     make(map[string]fakeGrant),
		memberships: make(map[string]string),
		magicAuths:  make(map[string]fakeMagicAuth),
		faults:      make(map[string]fakeFault),
		faultTimes:  make(map[string]int),
		counts:      make(map[string]int),
	}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.stop)
		f.Server.Close()
	})
	return f
}

// newWorkOSTestServer builds a development-mode server in WorkOS mode that
// talks to fake. extraEnv are more name, value pairs.
func newWorkOSTestServer(t *testing.T, fake *fakeWorkOS, extraEnv ...string) *testServer {
	t.Helper()
	env := append([]string{
		"IS_WORKOS_INTEGRATED", "true",
		"WORKOS_CLIENT_ID", testWorkOSClientID,
		"WORKOS_API_KEY", testWorkOSAPIKey,
		"WORKOS_WEBHOOK_SECRET", testWorkOSWebhookSecret,
		"WORKOS_SIGNIN_BASE_URL", testWorkOSSigninBaseURL,
		"WORKOS_API_BASE_URL", fake.URL,
	}, extraEnv...)
	return newTestServer(t, testEnv(env...))
}

// addCode registers an authorization code.
func (f *fakeWorkOS) addCode(code string, g fakeGrant) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codes[code] = g
}

// authorize plays AuthKit: it checks the authorization URL the service made,
// registers a fresh code bound to its code_challenge, and returns the code
// and the state the browser would bring back to the callback.
func (f *fakeWorkOS) authorize(t *testing.T, authURL string, g fakeGrant) (code, state string) {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatalf("authorization URL %q: %v", authURL, err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != f.URL+fakeAuthorizePath {
		t.Fatalf("authorization URL %q is not under %s", authURL, f.URL+fakeAuthorizePath)
	}
	q := u.Query()
	for name, want := range map[string]string{
		"client_id": testWorkOSClientID, "provider": "authkit", "response_type": "code",
		"code_challenge_method": "S256",
	} {
		if got := q.Get(name); got != want {
			t.Fatalf("authorization URL %s = %q, want %q", name, got, want)
		}
	}
	if q.Get("state") == "" || q.Get("code_challenge") == "" || q.Get("redirect_uri") == "" {
		t.Fatalf("authorization URL lacks state, code_challenge or redirect_uri: %q", authURL)
	}
	g.Challenge = q.Get("code_challenge")
	code = "code_" + randomID(12)
	f.addCode(code, g)
	return code, q.Get("state")
}

// setMembership sets the status ("active", "inactive", "pending") of a
// user's membership in an organization; "" removes it.
func (f *fakeWorkOS) setMembership(userID, orgID, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == "" {
		delete(f.memberships, userID+"\x00"+orgID)
		return
	}
	f.memberships[userID+"\x00"+orgID] = status
}

// addMagicAuth registers a magic auth for GET /user_management/magic_auth/{id}.
func (f *fakeWorkOS) addMagicAuth(id, email, code string, expires time.Time) {
	f.putMagicAuth(fakeMagicAuth{
		ID: id, Email: email, Code: code, ExpiresAt: expires,
		UserID: "user_" + fakeULID(), CreatedAt: expires.Add(-10 * time.Minute),
	})
}

// putMagicAuth registers a magic auth with every field chosen by the caller.
func (f *fakeWorkOS) putMagicAuth(m fakeMagicAuth) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.magicAuths[m.ID] = m
}

// setFault makes every later call to path misbehave; faultNone heals it.
func (f *fakeWorkOS) setFault(path string, fault fakeFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[path] = fault
	delete(f.faultTimes, path)
}

// setFaultTimes makes only the next n calls to path misbehave.
func (f *fakeWorkOS) setFaultTimes(path string, fault fakeFault, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[path] = fault
	f.faultTimes[path] = n
}

// calls reports how many requests reached path (faulty ones included).
func (f *fakeWorkOS) calls(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[path]
}

// authenticateBodies returns every authenticate request body received.
func (f *fakeWorkOS) authenticateBodies() []fakeAuthenticate {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.authBodies)
}

// membershipQueries returns the query of every membership listing received.
func (f *fakeWorkOS) membershipQueries() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.membershipQ)
}

// endpoint maps a request path to its fault and count key.
func endpoint(path string) string {
	if strings.HasPrefix(path, fakeMagicAuthPath) {
		return fakeMagicAuthPath
	}
	return path
}

// takeFault counts the call and returns the fault to play, if any.
func (f *fakeWorkOS) takeFault(ep string) fakeFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[ep]++
	fault := f.faults[ep]
	if n, limited := f.faultTimes[ep]; limited {
		if n <= 0 {
			return faultNone
		}
		f.faultTimes[ep] = n - 1
	}
	return fault
}

func (f *fakeWorkOS) serve(w http.ResponseWriter, r *http.Request) {
	ep := endpoint(r.URL.Path)
	if f.playFault(w, r, f.takeFault(ep)) {
		return
	}
	switch {
	case r.Method == http.MethodPost && ep == fakeAuthenticatePath:
		f.serveAuthenticate(w, r)
	case r.Method == http.MethodGet && ep == fakeMembershipsPath:
		f.serveMemberships(w, r)
	case r.Method == http.MethodGet && ep == fakeMagicAuthPath:
		f.serveMagicAuth(w, r)
	default:
		fakeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	}
}

// playFault misbehaves as told and reports whether it answered.
func (f *fakeWorkOS) playFault(w http.ResponseWriter, r *http.Request, fault fakeFault) bool {
	switch fault {
	case fault500:
		fakeJSON(w, http.StatusInternalServerError, map[string]any{"message": "Internal Server Error"})
	case faultInvalidJSON:
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"user": {"id": "user_1", `))
	case faultHugeBody, faultHugeErrorBody:
		status := http.StatusOK
		if fault == faultHugeErrorBody {
			status = http.StatusBadRequest
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(`{"error":"invalid_grant","error_description":"`))
		chunk := []byte(strings.Repeat("A", 64<<10))
		for n := 0; n < fakeHugeBodySize; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return true // the client gave up reading, as it should
			}
		}
		w.Write([]byte(`"}`))
	case faultRedirect:
		http.Redirect(w, r, f.URL+fakeRedirectPath, http.StatusTemporaryRedirect)
	case faultStall:
		f.stall(r)
	case faultStallBody:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"user": {"id": `))
		w.(http.Flusher).Flush()
		f.stall(r)
	default:
		return false
	}
	return true
}

func (f *fakeWorkOS) stall(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-f.stop:
	}
}

func fakeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Request-ID", "req_fake_"+randomID(8))
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// bearerOK checks the API key the way the real API does: 401 without it.
func (f *fakeWorkOS) bearerOK(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+testWorkOSAPIKey {
		fakeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Unauthorized"})
		return false
	}
	return true
}

func fakeInvalidGrant(w http.ResponseWriter, description string) {
	fakeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": description})
}

func (f *fakeWorkOS) serveAuthenticate(w http.ResponseWriter, r *http.Request) {
	var req fakeAuthenticate
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fakeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation failed", "code": "invalid_request_parameters"})
		return
	}
	f.mu.Lock()
	f.authBodies = append(f.authBodies, req)
	f.mu.Unlock()

	// The authenticate endpoint takes the API key as client_secret in the
	// body, not as a bearer token.
	if req.ClientID != testWorkOSClientID || req.ClientSecret != testWorkOSAPIKey {
		fakeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": "Invalid client ID or secret."})
		return
	}
	switch req.GrantType {
	case "authorization_code":
		f.exchangeCode(w, req)
	case "urn:workos:oauth:grant-type:organization-selection":
		f.selectOrganization(w, req)
	default:
		fakeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type", "error_description": "Unsupported grant type."})
	}
}

func (f *fakeWorkOS) exchangeCode(w http.ResponseWriter, req fakeAuthenticate) {
	f.mu.Lock()
	g, ok := f.codes[req.Code]
	delete(f.codes, req.Code) // a code is good for one exchange, right or wrong
	f.mu.Unlock()
	switch {
	case !ok:
		fakeInvalidGrant(w, fmt.Sprintf("The code '%s' has expired or is invalid.", req.Code))
		return
	case g.Challenge != "" && pkceS256(req.CodeVerifier) != g.Challenge:
		fakeInvalidGrant(w, "The code_verifier does not match the code_challenge.")
		return
	case g.Challenge == "" && req.CodeVerifier != "":
		fakeInvalidGrant(w, "A code_verifier was sent for a code without a code_challenge.")
		return
	}
	f.answerGrant(w, g)
}

func (f *fakeWorkOS) selectOrganization(w http.ResponseWriter, req fakeAuthenticate) {
	f.mu.Lock()
	g, ok := f.pending[req.PendingAuthenticationToken]
	delete(f.pending, req.PendingAuthenticationToken)
	f.mu.Unlock()
	if !ok {
		fakeInvalidGrant(w, "The pending authentication token has expired or is invalid.")
		return
	}
	if !slices.ContainsFunc(g.Organizations, func(o fakeOrg) bool { return o.ID == req.OrganizationID }) {
		fakeJSON(w, http.StatusForbidden, map[string]any{"code": "organization_membership_not_found", "message": "The user is not a member of the organization."})
		return
	}
	g.Err, g.Organizations, g.OrganizationID = "", nil, req.OrganizationID
	if g.SelectedUser != nil {
		g.User = *g.SelectedUser
	}
	f.answerGrant(w, g)
}

// answerGrant answers a successful authentication, or the grant's error.
func (f *fakeWorkOS) answerGrant(w http.ResponseWriter, g fakeGrant) {
	if g.Err != "" {
		f.answerAuthError(w, g)
		return
	}
	sid := g.SessionID
	if sid == "" {
		sid = "session_" + fakeULID()
	}
	token := g.AccessToken
	if token == "" {
		token = fakeAccessToken(g.User.ID, g.OrganizationID, sid)
	}
	var org any
	if g.OrganizationID != "" {
		org = g.OrganizationID
	}
	fakeJSON(w, http.StatusOK, map[string]any{
		"user":                  fakeUserJSON(g.User),
		"organization_id":       org,
		"access_token":          token,
		"refresh_token":         "refresh_" + randomID(12),
		"authentication_method": "GoogleOAuth",
		"impersonator":          nil,
	})
}

// answerAuthError writes the body WorkOS sends for each authentication error
// (https://workos.com/docs/reference/authkit/authentication-errors); the
// shapes are those workos-go v4.46.1 pkg/workos_errors parses.
func (f *fakeWorkOS) answerAuthError(w http.ResponseWriter, g fakeGrant) {
	pending := "pat_" + randomID(12)
	switch g.Err {
	case "invalid_grant":
		fakeInvalidGrant(w, "The code has expired or is invalid.")
	case "organization_selection_required":
		f.mu.Lock()
		f.pending[pending] = g
		f.mu.Unlock()
		orgs := []map[string]string{}
		for _, o := range g.Organizations {
			orgs = append(orgs, map[string]string{"id": o.ID, "name": o.Name})
		}
		fakeJSON(w, http.StatusForbidden, map[string]any{
			"code": g.Err, "message": "The user must choose an organization to finish their authentication.",
			"pending_authentication_token": pending, "organizations": orgs, "user": fakeUserJSON(g.User),
		})
	case "email_verification_required":
		fakeJSON(w, http.StatusForbidden, map[string]any{
			"code": g.Err, "message": "Email ownership must be verified before authentication.",
			"pending_authentication_token": pending, "email": g.User.Email,
			"email_verification_id": "email_verification_" + fakeULID(),
		})
	case "mfa_enrollment":
		fakeJSON(w, http.StatusForbidden, map[string]any{
			"code": g.Err, "message": "The user must enroll in MFA to finish authenticating.",
			"pending_authentication_token": pending, "user": fakeUserJSON(g.User),
		})
	case "mfa_challenge":
		fakeJSON(w, http.StatusForbidden, map[string]any{
			"code": g.Err, "message": "The user must complete an MFA challenge to finish authenticating.",
			"pending_authentication_token": pending, "user": fakeUserJSON(g.User),
			"authentication_factors": []map[string]string{{"id": "auth_factor_01FVYZ5QM8N98T9ME5BCB2BBMJ", "type": "totp"}},
		})
	case "sso_required":
		fakeJSON(w, http.StatusForbidden, map[string]any{
			"error": g.Err, "error_description": "User must authenticate using one of the matching connections.",
			"email": g.User.Email, "connection_ids": []string{"conn_01DRF1T7JN6GXS8KHS0WYWX1YD"},
			"pending_authentication_token": pending,
		})
	case "organization_authentication_methods_required":
		fakeJSON(w, http.StatusForbidden, map[string]any{
			"error": g.Err, "error_description": "User must authenticate using one of the methods allowed by the organization.",
			"email": g.User.Email, "sso_connection_ids": []string{}, "auth_methods": map[string]bool{"google_oauth": true},
			"pending_authentication_token": pending,
		})
	default:
		fakeJSON(w, http.StatusBadRequest, map[string]any{"error": g.Err, "error_description": "Authentication failed."})
	}
}

func fakeUserJSON(u fakeUser) map[string]any {
	return map[string]any{
		"object": "user", "id": u.ID, "email": u.Email, "first_name": u.FirstName, "last_name": u.LastName,
		"email_verified": true, "profile_picture_url": nil,
		"created_at": "2026-01-02T03:04:05.678Z", "updated_at": "2026-01-02T03:04:05.678Z",
	}
}

// fakeAccessToken is shaped like a WorkOS access token: a JWT whose payload
// carries sid. Its signature is random: dashauth takes the token from its
// own authenticated call to WorkOS and does not verify it.
func fakeAccessToken(userID, orgID, sid string) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "sso_oidc_key_pair_01FAKE", "typ": "JWT"})
	claims := map[string]any{
		"iss": "https://api.workos.com/user_management/" + testWorkOSClientID,
		"sub": userID, "sid": sid, "jti": fakeULID(),
		"iat": 1_790_000_000, "exp": 1_790_000_300,
	}
	if orgID != "" {
		claims["org_id"] = orgID
	}
	payload, _ := json.Marshal(claims)
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString([]byte(randomID(32)))
}

// pkceS256 is RFC 7636 section 4.2: BASE64URL(SHA256(ASCII(code_verifier))).
func pkceS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (f *fakeWorkOS) serveMemberships(w http.ResponseWriter, r *http.Request) {
	if !f.bearerOK(w, r) {
		return
	}
	q := r.URL.Query()
	f.mu.Lock()
	f.membershipQ = append(f.membershipQ, q)
	f.mu.Unlock()
	userID, orgID := q.Get("user_id"), q.Get("organization_id")
	if userID == "" && orgID == "" {
		fakeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Either user_id or organization_id is required.", "code": "invalid_request_parameters"})
		return
	}
	statuses := q["statuses"]
	data := []map[string]any{}
	f.mu.Lock()
	for key, status := range f.memberships {
		u, o, _ := strings.Cut(key, "\x00")
		if (userID != "" && u != userID) || (orgID != "" && o != orgID) {
			continue
		}
		if len(statuses) > 0 && !slices.Contains(statuses, status) {
			continue
		}
		data = append(data, map[string]any{
			"object": "organization_membership", "id": "om_" + fakeULID(),
			"user_id": u, "organization_id": o, "status": status, "role": map[string]string{"slug": "member"},
			"created_at": "2026-01-02T03:04:05.678Z", "updated_at": "2026-01-02T03:04:05.678Z",
		})
	}
	f.mu.Unlock()
	fakeJSON(w, http.StatusOK, map[string]any{
		"object": "list", "data": data,
		"list_metadata": map[string]any{"before": nil, "after": nil},
	})
}

func (f *fakeWorkOS) serveMagicAuth(w http.ResponseWriter, r *http.Request) {
	if !f.bearerOK(w, r) {
		return
	}
	id := strings.TrimPrefix(r.URL.Path, fakeMagicAuthPath)
	f.mu.Lock()
	m, ok := f.magicAuths[id]
	f.mu.Unlock()
	if !ok {
		fakeJSON(w, http.StatusNotFound, map[string]any{
			"message": fmt.Sprintf("Magic Auth not found: '%s'.", id), "code": "entity_not_found", "entity_id": id,
		})
		return
	}
	const workosTime = "2006-01-02T15:04:05.000Z07:00" // what WorkOS writes: RFC 3339, milliseconds, UTC
	fakeJSON(w, http.StatusOK, map[string]any{
		"object": "magic_auth", "id": m.ID, "user_id": m.UserID, "email": m.Email,
		"expires_at": m.ExpiresAt.UTC().Format(workosTime), "code": m.Code,
		"created_at": m.CreatedAt.UTC().Format(workosTime), "updated_at": m.CreatedAt.UTC().Format(workosTime),
	})
}

// TestFakeWorkOS checks the fake against the SDK itself, so tests that use
// it exercise the SDK's real request and error handling.
func TestFakeWorkOS(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ctx := t.Context()

	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	fake.addMagicAuth("magic_auth_01HZZZZZZZZZZZZZZZZZZZZZZZ", "ada@example.com", "123456", expires)
	ma, err := ts.workos.GetMagicAuth(ctx, usermanagement.GetMagicAuthOpts{MagicAuth: "magic_auth_01HZZZZZZZZZZZZZZZZZZZZZZZ"})
	if err != nil || ma.Email != "ada@example.com" || ma.Code != "123456" || ma.ExpiresAt != "2030-01-02T03:04:05.000Z" {
		t.Fatalf("magicAuth = %+v, %v", ma, err)
	}
	if _, err := ts.workos.GetMagicAuth(ctx, usermanagement.GetMagicAuthOpts{MagicAuth: "magic_auth_01HYYYYYYYYYYYYYYYYYYYYYYY"}); err == nil {
		t.Fatal("an unknown magic auth was found")
	}
	if n := fake.calls(fakeMagicAuthPath); n != 2 {
		t.Fatalf("calls = %d, want 2", n)
	}

	// The API key is checked: another one is refused with 401.
	other, err := newServer(config{WorkOS: true, WorkOSAPIKey: "sk_test_wrong", WorkOSAPIBaseURL: fake.URL}, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := other.workos
	_, err = wrongKey.GetMagicAuth(ctx, usermanagement.GetMagicAuthOpts{MagicAuth: "magic_auth_01HZZZZZZZZZZZZZZZZZZZZZZZ"})
	var we *workosError
	if !errors.As(err, &we) || we.status != http.StatusUnauthorized {
		t.Fatalf("wrong API key: %v", err)
	}
	if _, err := wrongKey.ListOrganizationMemberships(ctx, usermanagement.ListOrganizationMembershipsOpts{UserID: testAda.ID, OrganizationID: testOrgID}); err == nil {
		t.Fatal("wrong API key listed memberships")
	}

	fake.setFaultTimes(fakeMagicAuthPath, fault500, 1)
	if _, err := ts.workos.GetMagicAuth(ctx, usermanagement.GetMagicAuthOpts{MagicAuth: "magic_auth_01HZZZZZZZZZZZZZZZZZZZZZZZ"}); err == nil {
		t.Fatal("fault500 did not fail the call")
	}
	if _, err := ts.workos.GetMagicAuth(ctx, usermanagement.GetMagicAuthOpts{MagicAuth: "magic_auth_01HZZZZZZZZZZZZZZZZZZZZZZZ"}); err != nil {
		t.Fatalf("fault outlived its count: %v", err)
	}
}

// fakeULID is 26 characters of the ULID alphabet, as WorkOS ids end.
func fakeULID() string { return strings.ToUpper(randomID(13)) }
