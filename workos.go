package main

// WorkOS AuthKit sign-in (CONTRACT.md, "WorkOS AuthKit sign-in"):
//
//	POST /v2/user/workos_login_url/              state + PKCE, sealed in a per-sign-in cookie
//	POST /v2/user/workos_signin_callback/        state checked and spent, code exchanged, membership checked
//	POST /v2/user/workos_select_organization/    the pending choice finished
//
// The WorkOS API client is in workosclient.go, the sealed cookies in
// statecookie.go.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
	"github.com/workos/workos-go/v4/pkg/workos_errors"
)

// PKCE (RFC 7636). The verifier is 32 random bytes in base64url, 43
// characters, as section 4.1 recommends; the challenge is S256 (section 4.2).
const pkceRandomBytes = 32

// newSecret returns 32 random bytes in unpadded base64url: a state or a
// PKCE verifier, only characters RFC 7636 section 4.1 calls unreserved.
func newSecret() string {
	b := make([]byte, pkceRandomBytes)
	rand.Read(b) // never fails: crypto/rand.Read aborts the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// pkceChallenge is BASE64URL(SHA256(ASCII(verifier))), RFC 7636 section 4.2.
func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// handleWorkOSLoginURL starts an AuthKit sign-in: a fresh state and PKCE
// verifier, bound to this browser in a sealed cookie of their own.
func (s *server) handleWorkOSLoginURL(w http.ResponseWriter, r *http.Request) {
	var redirect, hint string
	if !decodeFields(w, r, map[string]*string{"redirect_url": &redirect, "screen_hint": &hint}, "redirect_url") {
		return
	}
	if !s.allowedRedirect(redirect) {
		writeError(w, http.StatusBadRequest, "invalid_redirect_url")
		return
	}
	if hint != "" && hint != string(usermanagement.SignIn) && hint != string(usermanagement.SignUp) {
		writeError(w, http.StatusBadRequest, "invalid_screen_hint")
		return
	}
	state, verifier := newSecret(), newSecret()
	authURL, err := s.workos.authorizationURL(redirect, state, pkceChallenge(verifier), hint)
	if err != nil {
		s.log.Error("workos: build authorization URL", "err", err) // unreachable: inputs checked above
		s.workosUnavailable(w)
		return
	}
	s.pruneStateCookies(w, r)
	s.setStateCookie(w, stateCookie{State: state, Verifier: verifier, Expires: s.now().Add(signinAttemptTTL).Unix()})
	s.rememberStarted(r.Context(), state)
	writeJSON(w, http.StatusOK, map[string]string{"url": authURL})
}

// startedMemory is how long the service remembers that it issued a state,
// so that a callback whose cookie the browser already dropped (past its
// 10 minutes) answers LINK_EXPIRED rather than LINK_INVALID.
const startedMemory = time.Hour

// rememberStarted notes that state was issued. Best effort: without the
// note, a late callback answers LINK_INVALID instead of LINK_EXPIRED, and
// nothing else changes.
func (s *server) rememberStarted(ctx context.Context, state string) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := s.store.Set(ctx, s.key("wstarted", stateTag(state)), "1", startedMemory); err != nil {
		s.metrics.inc("dashauth_store_errors_total", "", "")
		s.log.Warn("workos: could not note a started sign-in", "err", err)
	}
}

// wasStarted reports whether the service issued state within startedMemory.
func (s *server) wasStarted(ctx context.Context, state string) bool {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	_, ok, err := s.store.Get(ctx, s.key("wstarted", stateTag(state)))
	return err == nil && ok
}

// maxRedirectURL bounds a redirect_url before it is parsed.
const maxRedirectURL = 2048

// allowedRedirect reports whether raw is exactly one of ALLOWED_REDIRECT_URLS:
// its origin must be the allowed one's (localhost and 127.0.0.1 being one
// in development mode) and the rest must match byte for byte, so no other
// path, trailing slash, query, fragment or encoding gets through. The
// comparison alone refuses everything else; checkRedirectURL, the check the
// allowed URLs passed at start, runs first so no odd input reaches it.
func (s *server) allowedRedirect(raw string) bool {
	if len(raw) > maxRedirectURL || checkRedirectURL(raw) != nil {
		return false
	}
	origin, rest, ok := splitOrigin(raw)
	if !ok {
		return false
	}
	for _, allowed := range s.cfg.RedirectURLs {
		aOrigin, aRest, ok := splitOrigin(allowed)
		if ok && rest == aRest && s.cfg.sameOrigin(origin, aOrigin) {
			return true
		}
	}
	return false
}

// splitOrigin cuts a canonical URL into scheme://host[:port] and the rest.
func splitOrigin(raw string) (origin, rest string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		return "", "", false
	}
	origin = u.Scheme + "://" + u.Host
	rest, ok = strings.CutPrefix(raw, origin)
	return origin, rest, ok && strings.HasPrefix(rest, "/")
}

// maxAuthCode bounds the code sent to WorkOS. WorkOS codes are 26-character
// ULIDs; anything far longer did not come from WorkOS.
const maxAuthCode = 256

// handleWorkOSCallback finishes an AuthKit sign-in: it checks the state
// against this browser's cookie, spends it, exchanges the code with WorkOS,
// and checks the membership.
func (s *server) handleWorkOSCallback(w http.ResponseWriter, r *http.Request) {
	var code, state string
	if !decodeFields(w, r, map[string]*string{"code": &code, "state": &state}, "code", "state") {
		return
	}
	sc, found, err := s.openStateCookie(r, state)
	switch {
	case !found:
		s.signinResponse(w, http.StatusBadRequest, linkExpired)
		return
	case errors.Is(err, errSealedExpired):
		s.clearStateCookie(w, state)
		s.signinResponse(w, http.StatusBadRequest, linkExpired)
		return
	case errors.Is(err, errNoStateCookie) && s.wasStarted(r.Context(), state):
		// Other sign-ins are open, and this one's cookie is gone: the
		// browser dropped it when its 10 minutes ran out.
		s.signinResponse(w, http.StatusBadRequest, linkExpired)
		return
	case err != nil:
		s.log.Info("workos callback: state refused", "err", err)
		s.signinResponse(w, http.StatusBadRequest, linkInvalid)
		return
	}
	// From here on the state is spent, whatever the outcome.
	s.clearStateCookie(w, state)
	if !s.spendOnce(w, r, "wstate", state) {
		return
	}
	if len(code) > maxAuthCode {
		s.signinResponse(w, http.StatusBadRequest, linkInvalid)
		return
	}
	res, err := s.workos.authenticateCode(r.Context(), code, sc.Verifier)
	if err != nil {
		s.workosAuthFailed(w, "authenticate code", err)
		return
	}
	s.finishWorkOSSignin(w, r, res)
}

// spendOnce records secret as used under kind, for signinAttemptTTL (the
// longest its cookie lives). It reports whether this was the first use; a
// replay answers LINK_EXPIRED, a store failure 503, and both return false.
func (s *server) spendOnce(w http.ResponseWriter, r *http.Request, kind, secret string) bool {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	sum := sha256.Sum256([]byte(secret))
	first, err := s.store.SetNX(ctx, s.key(kind, hex.EncodeToString(sum[:])), "1", signinAttemptTTL)
	if err != nil {
		s.storeFailed(w, "spend "+kind, err)
		return false
	}
	if !first {
		s.signinResponse(w, http.StatusBadRequest, linkExpired)
		return false
	}
	return true
}

// handleWorkOSSelectOrganization finishes a sign-in that waited for the
// person to pick one of the organizations WorkOS offered.
func (s *server) handleWorkOSSelectOrganization(w http.ResponseWriter, r *http.Request) {
	var orgID string
	if !decodeFields(w, r, map[string]*string{"organization_id": &orgID}, "organization_id") {
		return
	}
	pc, found, err := s.openPendingCookie(r)
	switch {
	case !found:
		s.signinResponse(w, http.StatusBadRequest, linkExpired)
		return
	case errors.Is(err, errSealedExpired):
		s.clearPendingCookie(w)
		s.signinResponse(w, http.StatusBadRequest, linkExpired)
		return
	case err != nil:
		s.log.Info("workos select organization: pending cookie refused", "err", err)
		s.signinResponse(w, http.StatusBadRequest, linkInvalid)
		return
	}
	if !slices.Contains(pc.Orgs, orgID) {
		// The cookie stays: the person may still pick one that was offered.
		s.signinResponse(w, http.StatusBadRequest, linkInvalid)
		return
	}
	s.clearPendingCookie(w)
	if !s.spendOnce(w, r, "wpending", pc.Token) {
		return
	}
	res, err := s.workos.selectOrganization(r.Context(), pc.Token, orgID)
	if err != nil {
		s.workosAuthFailed(w, "select organization", err)
		return
	}
	if pc.UserID != "" && res.User.ID != pc.UserID {
		s.log.Error("workos select organization: WorkOS answered for another user", "want", pc.UserID, "got", res.User.ID)
		s.signinResponse(w, http.StatusBadRequest, linkInvalid)
		return
	}
	s.finishWorkOSSignin(w, r, res)
}

// finishWorkOSSignin checks a WorkOS authentication's membership and answers.
func (s *server) finishWorkOSSignin(w http.ResponseWriter, r *http.Request, res usermanagement.AuthenticateResponse) {
	u, err := workosUser(res.User)
	if err != nil {
		s.log.Error("workos: authentication answer", "err", err)
		s.workosUnavailable(w)
		return
	}
	sid, err := workosSessionID(res.AccessToken)
	if err != nil {
		s.log.Error("workos: access token", "user", u.ID, "err", err)
		s.workosUnavailable(w)
		return
	}
	if len(res.OrganizationID) > maxWorkOSID {
		s.log.Error("workos: organization id too long", "user", u.ID, "len", len(res.OrganizationID))
		s.workosUnavailable(w)
		return
	}
	if res.OrganizationID == "" {
		inactive, err := s.workos.hasInactiveMembership(r.Context(), u.ID)
		switch {
		case err != nil:
			s.log.Error("workos: list memberships", "user", u.ID, "err", err)
			s.workosUnavailable(w)
		case inactive:
			s.signinResponse(w, http.StatusForbidden, membershipDeactivated)
		default:
			s.signinResponse(w, http.StatusForbidden, membershipNotFound)
		}
		return
	}
	status, err := s.workos.membershipStatus(r.Context(), u.ID, res.OrganizationID)
	if err != nil {
		s.log.Error("workos: list memberships", "user", u.ID, "org", res.OrganizationID, "err", err)
		s.workosUnavailable(w)
		return
	}
	switch status {
	case string(usermanagement.Active):
		s.signinSuccess(w, r, u, res.OrganizationID, sessionRecord{Method: "workos", WorkOSSessionID: sid})
	case string(usermanagement.Inactive):
		s.signinResponse(w, http.StatusForbidden, membershipDeactivated)
	default: // pending (an invitation not yet accepted) or none
		s.signinResponse(w, http.StatusForbidden, membershipNotFound)
	}
}

// WorkOS authentication errors the service cannot finish, and the error
// each answers with (403: WorkOS knows the person, but the sign-in needs a
// step AuthKit should have done before redirecting back; no session).
// The codes are workos-go v4.46.1 pkg/workos_errors's, and
// https://workos.com/docs/reference/authkit/authentication-errors.
var workosAuthErrors = map[string]string{
	workos_errors.EmailVerificationRequiredCode:                 "email_verification_required",
	workos_errors.MFAEnrollmentCode:                             "mfa_enrollment_required",
	workos_errors.MFAChallengeCode:                              "mfa_challenge_required",
	workos_errors.SSORequiredCode:                               "sso_required",
	workos_errors.OrganizationAuthenticationMethodsRequiredCode: "organization_authentication_methods_required",
}

// workosAuthFailed answers an authentication WorkOS did not complete:
//
//	organization_selection_required          200 ORGANIZATION_SELECTION_REQUIRED, pending cookie
//	one of workosAuthErrors                  403 {"error": <its name>}
//	5xx, 408, 429, 3xx, no answer, bad JSON,
//	a body over maxWorkOSBody                503 {"error": "workos_unavailable"}
//	any other 4xx (invalid_grant, ...)       400 LINK_INVALID
func (s *server) workosAuthFailed(w http.ResponseWriter, op string, err error) {
	he, ok := workosHTTPError(err)
	if !ok {
		s.log.Error("workos: "+op, "err", err)
		s.workosUnavailable(w)
		return
	}
	// he.Error() may carry the pending authentication token: log fields only.
	log := s.log.With("op", op, "status", he.Code, "code", he.ErrorCode, "request_id", he.RequestID)
	reason, known := workosAuthErrors[he.ErrorCode]
	switch {
	case he.ErrorCode == workos_errors.OrganizationSelectionRequiredCode:
		s.offerOrganizations(w, he)
	case he.Code >= 500 || he.Code < 400 || he.Code == http.StatusRequestTimeout || he.Code == http.StatusTooManyRequests:
		log.Error("workos: unavailable")
		s.workosUnavailable(w)
	case known:
		log.Info("workos: sign-in needs a step AuthKit did not finish")
		s.metrics.inc("dashauth_workos_errors_total", "reason", reason)
		writeError(w, http.StatusForbidden, reason)
	case he.Code == http.StatusUnauthorized:
		log.Error("workos: the client credentials were refused; check WORKOS_CLIENT_ID and WORKOS_API_KEY")
		s.signinResponse(w, http.StatusBadRequest, linkInvalid)
	default:
		log.Info("workos: exchange refused")
		s.signinResponse(w, http.StatusBadRequest, linkInvalid)
	}
}

// offerOrganizations answers ORGANIZATION_SELECTION_REQUIRED and keeps the
// pending authentication in a sealed cookie: WorkOS's token never reaches
// the browser in the clear.
func (s *server) offerOrganizations(w http.ResponseWriter, he workos_errors.HTTPError) {
	pc := pendingCookie{Token: he.PendingAuthenticationToken, Expires: s.now().Add(signinAttemptTTL).Unix()}
	if he.User != nil {
		pc.UserID = he.User.ID
	}
	type org struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	orgs := []org{}
	for _, o := range he.Organizations {
		if len(orgs) == maxOfferedOrgs {
			s.log.Warn("workos: more organizations offered than a cookie can hold; the rest are not shown", "offered", len(he.Organizations))
			break
		}
		if o.ID == "" || len(o.ID) > maxWorkOSID || len(o.Name) > maxOrgNameInList {
			s.log.Error("workos: organization offered with an unusable id or name", "id", o.ID)
			s.workosUnavailable(w)
			return
		}
		orgs = append(orgs, org{o.ID, o.Name})
		pc.Orgs = append(pc.Orgs, o.ID)
	}
	if pc.Token == "" || len(pc.Token) > maxPendingToken || len(orgs) == 0 || len(pc.UserID) > maxWorkOSID {
		s.log.Error("workos: organization selection without a usable token, user or organization", "organizations", len(orgs))
		s.workosUnavailable(w)
		return
	}
	s.setPendingCookie(w, pc)
	s.metrics.inc("dashauth_signins_total", "response_type", organizationSelectionRequired)
	writeJSON(w, http.StatusOK, map[string]any{
		"response_type": organizationSelectionRequired,
		"organizations": orgs,
	})
}

// workosUnavailable answers 503 when WorkOS cannot be reached or answered
// something unusable: never a 500, and never a session.
func (s *server) workosUnavailable(w http.ResponseWriter) {
	s.metrics.inc("dashauth_workos_errors_total", "reason", "workos_unavailable")
	writeError(w, http.StatusServiceUnavailable, "workos_unavailable")
}
