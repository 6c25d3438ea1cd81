package main

// Both sign-in flows (contract: "Email+code sign-in", "WorkOS AuthKit sign-in"), their limits and membership rules.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

// Sign-in answers (contract, "Sign-in responses").
const (
	loginSuccessful               = "LOGIN_SUCCESSFUL"
	membershipDeactivated         = "MEMBERSHIP_DEACTIVATED"
	membershipNotFound            = "MEMBERSHIP_NOT_FOUND"
	organizationSelectionRequired = "ORGANIZATION_SELECTION_REQUIRED"
	linkInvalid                   = "LINK_INVALID"
	linkExpired                   = "LINK_EXPIRED"
	codeSent                      = "CODE_SENT"
)

const (
	codeTTL      = 10 * time.Minute // contract, "Email+code sign-in"
	codeMaxTries = 5
	limitWindow  = 15 * time.Minute
	signinTTL    = 10 * time.Minute // a started WorkOS sign-in or a pending organization choice (contract)
)

type user struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

// answer writes a sign-in answer that starts no session, counts and logs it.
func (s *server) answer(w http.ResponseWriter, r *http.Request, status int, responseType string) {
	s.count("dashauth_signins_total", responseType)
	s.log.Info("sign-in", "path", r.URL.Path, "status", status, "response_type", responseType)
	writeJSON(w, status, map[string]string{"response_type": responseType})
}

func (s *server) signIn(w http.ResponseWriter, r *http.Request, rec sessionRecord) {
	rec.Start = s.now().Unix()
	if _, err := s.issue(r.Context(), w, "sess_"+randomID(16), rec, ""); err != nil {
		s.storeFailed(w, r, err)
		return
	}
	s.count("dashauth_signins_total", loginSuccessful)
	s.log.Info("sign-in", "path", r.URL.Path, "status", 200, "response_type", loginSuccessful, "sub", rec.User.ID, "org", rec.Org)
	writeJSON(w, http.StatusOK, map[string]any{"response_type": loginSuccessful, "user": rec.User, "organization_id": rec.Org})
}

// admit counts a request against max per window under key, or answers 429 (or 503). Chained with &&, a limit that
// refuses spares the later ones: a client over its limit does not use up an address's codes.
func (s *server) admit(w http.ResponseWriter, r *http.Request, key string, max int, window time.Duration) bool {
	ok, retry, err := admit(r.Context(), s.store, s.now(), key, max, window)
	switch {
	case err != nil:
		s.storeFailed(w, r, err)
	case !ok:
		s.count("dashauth_rate_limited_total", "")
		// Whole seconds rounded up, so a retry at Retry-After is admitted (RFC 9110 §10.2.3).
		w.Header().Set("Retry-After", strconv.FormatInt(int64((retry+time.Second-1)/time.Second), 10))
		s.fail(w, r, http.StatusTooManyRequests, "rate_limited")
	}
	return ok
}

// clientKey names one client's requests of kind; an IPv6 client is its /64, where it picks addresses (RFC 8981).
func (s *server) clientKey(r *http.Request, kind string) string {
	a := s.clientIP(r)
	p, _ := a.Prefix(map[bool]int{true: 64, false: 32}[a.Is6()]) // cannot fail: both fit
	return s.key("rl", kind, p.String())
}

func (s *server) decodeAddress(w http.ResponseWriter, r *http.Request, code *string) (string, bool) {
	var email string
	fields := []field{{"email", &email, nil}}
	if code != nil {
		fields = append(fields, field{"code", code, nil})
	}
	if !s.decodeBody(w, r, fields, "") {
		return "", false
	}
	addr, ok := parseEmail(email)
	if !ok {
		s.fail(w, r, http.StatusBadRequest, "invalid_email")
	}
	return addr, ok
}

// handleLoginCode mails a fresh code to a member. Every address gets the same answer after the same store work: only
// the mail, sent after the answer, tells who is a member.
func (s *server) handleLoginCode(w http.ResponseWriter, r *http.Request) {
	addr, ok := s.decodeAddress(w, r, nil)
	id := s.addressID(addr)
	if !ok || !s.admit(w, r, s.clientKey(r, "client"), 30, limitWindow) ||
		!s.admit(w, r, s.key("rl", "addr1m", id), 1, time.Minute) ||
		!s.admit(w, r, s.key("rl", "addr15m", id), 5, limitWindow) {
		return
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000)) // cannot fail: crypto/rand aborts instead
	code := fmt.Sprintf("%06d", n.Int64())
	if _, err := s.store.Put(r.Context(), s.key("code", id), anyValue, s.codeHash(addr, code), codeTTL); err != nil {
		s.storeFailed(w, r, err)
		return
	}
	if _, member := s.members.lookup(addr); member {
		expires := s.now().Add(codeTTL)
		s.background.Go(func() { s.sendCode(context.Background(), addr, code, expires, "") })
	}
	s.answer(w, r, http.StatusOK, codeSent)
}

// handleVerifyCode checks a code. Tries count before the comparison, so parallel guesses cannot pass the limit, and per
// stored code, so a new code starts with five; a match is taken by compare-and-delete, so it works once.
func (s *server) handleVerifyCode(w http.ResponseWriter, r *http.Request) {
	var code string
	addr, ok := s.decodeAddress(w, r, &code)
	// The client limit bounds one client's guesses across all addresses (SECURITY.md: "targeted lockout").
	if !ok || !s.admit(w, r, s.clientKey(r, "verify"), 30, limitWindow) {
		return
	}
	ctx, key := r.Context(), s.key("code", s.addressID(addr))
	stored, found, err := s.store.Get(ctx, key)
	tryOK, valid, taken := false, false, false
	if err == nil && found {
		tryOK, _, err = admit(ctx, s.store, s.now(), s.key("tries", stored[:min(16, len(stored))]), codeMaxTries, codeTTL)
	}
	if valid = validCode(code) && hmac.Equal([]byte(s.codeHash(addr, code)), []byte(stored)); err == nil && tryOK && valid {
		taken, err = s.store.Put(ctx, key, stored, "", 0)
	}
	switch m, member := s.members.lookup(addr); {
	case err != nil:
		s.storeFailed(w, r, err)
	case !tryOK: // expired, used, replaced, or burned by five tries
		s.answer(w, r, http.StatusBadRequest, linkExpired)
	case !valid:
		s.answer(w, r, http.StatusBadRequest, linkInvalid)
	case !taken:
		s.answer(w, r, http.StatusBadRequest, linkExpired) // a parallel request used it first
	case !member:
		s.answer(w, r, http.StatusForbidden, membershipNotFound)
	case !m.Active:
		s.answer(w, r, http.StatusForbidden, membershipDeactivated)
	default:
		// The user id is a hash of the address: stable across restarts and key rotation.
		sum := sha256.Sum256([]byte("dashauth user\x00" + addr))
		u := user{ID: "user_" + hex.EncodeToString(sum[:13]), Email: addr, FirstName: m.FirstName, LastName: m.LastName}
		s.signIn(w, r, sessionRecord{User: u, Org: m.OrganizationID, Method: "email_code"})
	}
}

// codeHash is what the store keeps of a code: an HMAC under a key it never sees, so a copy of Redis reveals no code.
func (s *server) codeHash(addr, code string) string {
	return s.codeMAC("code\x00" + addr + "\x00" + code)
}

// addressID names an address in store keys without writing it there.
func (s *server) addressID(addr string) string { return s.codeMAC("address\x00" + addr) }

func (s *server) codeMAC(msg string) string {
	return hex.EncodeToString(mac(deriveKey(s.keys[0], "dashauth login codes v1"), []byte(msg)))
}

// stillMember reports whether a session's person is still an active member, as its flow (if still on) decides.
func (s *server) stillMember(ctx context.Context, rec sessionRecord) (bool, error) {
	switch {
	case rec.Method == "email_code" && s.workos == nil:
		m, ok := s.members.lookup(rec.User.Email)
		return ok && m.Active && m.OrganizationID == rec.Org, nil
	case rec.Method == "workos" && s.workos != nil:
		status, err := s.membership(ctx, rec.User.ID, rec.Org)
		return status == usermanagement.Active, err
	}
	return false, nil
}

type member struct {
	Email          string `json:"email"`
	OrganizationID string `json:"organization_id"`
	Role           string `json:"role"`
	Active         bool   `json:"active"`
	FirstName      string `json:"first_name,omitempty"`
	LastName       string `json:"last_name,omitempty"`
}

// memberList is MEMBERS_FILE, read at start; nil (development mode) lets anyone in.
type memberList map[string]member

func loadMembers(path string) (memberList, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err == nil {
		return parseMembers(data)
	}
	return nil, fmt.Errorf("MEMBERS_FILE: %w", err)
}

func (ml memberList) lookup(addr string) (member, bool) {
	if ml == nil {
		return member{Email: addr, OrganizationID: "org_dev", Role: "admin", Active: true}, true
	}
	m, ok := ml[addr]
	return m, ok
}

// parseMembers reads a members file strictly, bounding what goes into the session cookies (under 4096 bytes).
func parseMembers(data []byte) (memberList, error) {
	var doc struct {
		Members []member `json:"members"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil || dec.More() {
		return nil, fmt.Errorf("members file: not one JSON object of members (%v)", err)
	}
	byEmail := make(memberList, len(doc.Members))
	for i, m := range doc.Members {
		addr, ok := parseEmail(m.Email)
		switch _, dup := byEmail[addr]; {
		case !ok:
			return nil, fmt.Errorf("members file: member %d: %q is not an email address", i, m.Email)
		case dup:
			return nil, fmt.Errorf("members file: member %d: %s is listed twice", i, addr)
		case m.OrganizationID == "" || len(m.OrganizationID) > 64 || len(m.Role) > 64 || len(m.FirstName) > 256 || len(m.LastName) > 256:
			return nil, fmt.Errorf("members file: member %d (%s): organization_id missing, or it or role over 64 bytes, or a name over 256", i, addr)
		}
		m.Email = addr
		byEmail[addr] = m
	}
	return byEmail, nil
}

// A started WorkOS sign-in is its state: the PKCE verifier and an expiry, sealed, to AuthKit and back in the URL. A
// cookie named by its hash binds it to the browser that started it; the store records it spent at the callback.
type startedSignin struct {
	Verifier string `json:"v"`
	Expires  int64  `json:"e"` // unix seconds
}

func (s *server) stateCookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return s.cookieName("workos_state_" + hex.EncodeToString(sum[:8]))
}

// handleWorkOSLoginURL starts an AuthKit sign-in with a fresh PKCE verifier (RFC 7636, S256); the store is untouched.
func (s *server) handleWorkOSLoginURL(w http.ResponseWriter, r *http.Request) {
	var redirect, hint string
	if !s.decodeBody(w, r, []field{{"redirect_url", &redirect, nil}, {"screen_hint", &hint, nil}}, "screen_hint") {
		return
	}
	known := slices.Contains(s.cfg.RedirectURLs, redirect)
	if !known || hint != "" && hint != string(usermanagement.SignIn) && hint != string(usermanagement.SignUp) {
		s.fail(w, r, http.StatusBadRequest, map[bool]string{false: "invalid_redirect_url", true: "invalid_screen_hint"}[known])
		return
	}
	b := make([]byte, 32)
	rand.Read(b)
	verifier := base64.RawURLEncoding.EncodeToString(b)
	expires := s.now().Add(signinTTL).Unix()
	state := s.seal("workos_state", startedSignin{verifier, expires})
	sum := sha256.Sum256([]byte(verifier))
	// It fails only without a client id, redirect URI or provider; none is ever missing.
	authURL, _ := s.workos.GetAuthorizationURL(usermanagement.GetAuthorizationURLOpts{ClientID: s.cfg.WorkOSClientID,
		Provider: "authkit", RedirectURI: redirect, State: state, ScreenHint: usermanagement.ScreenHint(hint),
		CodeChallenge: base64.RawURLEncoding.EncodeToString(sum[:]), CodeChallengeMethod: "S256"})
	s.setCookie(w, s.stateCookieName(state), "1", signinTTL)
	writeJSON(w, http.StatusOK, map[string]string{"url": authURL.String()})
}

// handleWorkOSCallback opens the state, matches it with this browser's cookie, spends it and exchanges the code.
func (s *server) handleWorkOSCallback(w http.ResponseWriter, r *http.Request) {
	var code, state string // the client limit bounds the spent states one client makes the store keep
	if !s.decodeBody(w, r, []field{{"code", &code, nil}, {"state", &state, nil}}, "") ||
		!s.admit(w, r, s.clientKey(r, "workos"), 60, limitWindow) {
		return
	}
	var st startedSignin
	name := s.stateCookieName(state)
	_, noCookie := r.Cookie(name)
	prefix := s.cookieName("workos_state_")
	otherState := slices.ContainsFunc(r.Cookies(), func(c *http.Cookie) bool { return strings.HasPrefix(c.Name, prefix) })
	switch {
	case s.unseal("workos_state", state, &st) != nil || len(code) > 256: // codes are 26-character ULIDs
		s.answer(w, r, http.StatusBadRequest, linkInvalid)
	case s.now().Unix() >= st.Expires:
		s.setCookie(w, name, "", 0)
		s.answer(w, r, http.StatusBadRequest, linkExpired)
	case noCookie != nil: // another sign-in's (login CSRF), or none at all: this browser's cookies were cleared
		s.answer(w, r, http.StatusBadRequest, map[bool]string{true: linkInvalid, false: linkExpired}[otherState])
	default:
		s.setCookie(w, name, "", 0) // spent from here on, whatever the outcome
		if s.spend(w, r, "wstate", state) {
			res, err := s.workos.AuthenticateWithCode(r.Context(), usermanagement.AuthenticateWithCodeOpts{
				ClientID: s.cfg.WorkOSClientID, Code: code, CodeVerifier: st.Verifier})
			s.finishWorkOS(w, r, res, err, "")
		}
	}
}

// spend records secret as used, as long as what it started can live. A replay answers LINK_EXPIRED.
func (s *server) spend(w http.ResponseWriter, r *http.Request, kind, secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	first, err := s.store.Put(r.Context(), s.key(kind, hex.EncodeToString(sum[:])), "", "1", signinTTL)
	switch {
	case err != nil:
		s.storeFailed(w, r, err)
	case !first:
		s.answer(w, r, http.StatusBadRequest, linkExpired)
	}
	return err == nil && first
}

// pendingChoice waits for an organization to be picked, sealed in a cookie: the browser never reads WorkOS's token.
type pendingChoice struct {
	Token   string   `json:"t"`
	UserID  string   `json:"u"`
	Orgs    []string `json:"o"`
	Expires int64    `json:"e"`
}

func (s *server) handleWorkOSSelectOrganization(w http.ResponseWriter, r *http.Request) {
	var orgID string
	if !s.decodeBody(w, r, []field{{"organization_id", &orgID, nil}}, "") ||
		!s.admit(w, r, s.clientKey(r, "workos"), 60, limitWindow) {
		return
	}
	var pc pendingChoice
	name := s.cookieName("workos_pending")
	ck, err := r.Cookie(name)
	switch {
	case err != nil:
		s.answer(w, r, http.StatusBadRequest, linkExpired)
	case s.unseal("workos_pending", ck.Value, &pc) != nil:
		s.answer(w, r, http.StatusBadRequest, linkInvalid)
	case s.now().Unix() >= pc.Expires:
		s.setCookie(w, name, "", 0)
		s.answer(w, r, http.StatusBadRequest, linkExpired)
	case !slices.Contains(pc.Orgs, orgID):
		s.answer(w, r, http.StatusBadRequest, linkInvalid) // the cookie stays: pick one offered
	default:
		s.setCookie(w, name, "", 0)
		if s.spend(w, r, "wpending", pc.Token) {
			res, err := s.workos.AuthenticateWithOrganizationSelection(r.Context(), usermanagement.AuthenticateWithOrganizationSelectionOpts{
				ClientID: s.cfg.WorkOSClientID, PendingAuthenticationToken: pc.Token, OrganizationID: orgID})
			s.finishWorkOS(w, r, res, err, pc.UserID)
		}
	}
}

// finishWorkOS answers a WorkOS authentication: the membership of a completed one; an organization to choose;
// LINK_INVALID for any other 4xx (such as a step AuthKit should have done); 503 for WorkOS in trouble.
func (s *server) finishWorkOS(w http.ResponseWriter, r *http.Request, res usermanagement.AuthenticateResponse, err error, wantUser string) {
	we, status := &workosError{}, usermanagement.OrganizationMembershipStatus("")
	refused := errors.As(err, &we) && we.status/100 == 4 && we.status != 408 && we.status != 429
	u, sid, err := workosAnswer(res, err)
	if err == nil && wantUser != "" && u.ID != wantUser {
		err = fmt.Errorf("answered for user %q, not %q: %w", u.ID, wantUser, errWorkOSAnswer)
	}
	if err == nil {
		status, err = s.membership(r.Context(), u.ID, res.OrganizationID)
	}
	switch {
	case refused && we.Code == "organization_selection_required":
		s.offerOrganizations(w, r, we)
	case refused:
		s.log.Warn("workos refused the sign-in (a 401 means WORKOS_CLIENT_ID or WORKOS_API_KEY is wrong)", "err", we)
		s.answer(w, r, http.StatusBadRequest, linkInvalid)
	case err != nil:
		s.workosUnavailable(w, r, err)
	case status == usermanagement.Active && res.OrganizationID != "":
		s.signIn(w, r, sessionRecord{User: u, Org: res.OrganizationID, Method: "workos", WorkOS: sid})
	case status == usermanagement.Inactive:
		s.answer(w, r, http.StatusForbidden, membershipDeactivated)
	default: // pending (an invitation not yet accepted) or none
		s.answer(w, r, http.StatusForbidden, membershipNotFound)
	}
}

// offerOrganizations offers at most 32 bounded organizations, so that the pending cookie stays under 4096 bytes.
func (s *server) offerOrganizations(w http.ResponseWriter, r *http.Request, we *workosError) {
	pc := pendingChoice{Token: we.PendingToken, UserID: we.User.ID, Expires: s.now().Add(signinTTL).Unix()}
	orgs := we.Organizations[:min(32, len(we.Organizations))]
	for _, o := range orgs {
		if pc.Orgs = append(pc.Orgs, o.ID); o.ID == "" || len(o.ID) > 64 || len(o.Name) > 256 {
			pc.Token = "" // unusable
		}
	}
	if pc.Token == "" || len(pc.Token) > 256 || len(orgs) == 0 || pc.UserID == "" || len(pc.UserID) > 64 {
		s.workosUnavailable(w, r, fmt.Errorf("organization selection without a usable token, user or organization: %w", errWorkOSAnswer))
		return
	}
	s.setCookie(w, s.cookieName("workos_pending"), s.seal("workos_pending", pc), signinTTL)
	s.count("dashauth_signins_total", organizationSelectionRequired)
	s.log.Info("sign-in", "path", r.URL.Path, "status", 200, "response_type", organizationSelectionRequired, "sub", pc.UserID)
	writeJSON(w, http.StatusOK, map[string]any{"response_type": organizationSelectionRequired, "organizations": orgs})
}

func (s *server) workosUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	s.count("dashauth_workos_errors_total", "workos_unavailable")
	s.log.Error("workos unavailable", "path", r.URL.Path, "err", err)
	s.fail(w, r, http.StatusServiceUnavailable, "workos_unavailable")
}

// clientIP is the connecting address or, while that is a trusted proxy, the X-Forwarded-For hop before it (those
// further left are whatever the client wrote). A hop may carry a port, as some load balancers write it.
func (s *server) clientIP(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.IPv4Unspecified() // not a TCP peer (httptest): one shared bucket
	}
	addr, fwd := peer.Addr().Unmap(), r.Header.Values("X-Forwarded-For")
	hops := strings.Split(strings.Join(fwd, ","), ",")
	for i := len(hops) - 1; i >= 0 && len(fwd) > 0 && s.trusted(addr); i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			var ap netip.AddrPort
			ap, err = netip.ParseAddrPort(strings.TrimSpace(hops[i]))
			a = ap.Addr()
		}
		if err != nil || a.Zone() != "" {
			return addr // garbled: the last address that could be believed
		}
		addr = a.Unmap()
	}
	return addr
}

func (s *server) trusted(a netip.Addr) bool {
	return slices.ContainsFunc(s.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

const (
	workosTimeout = 10 * time.Second // each call: a slow WorkOS answers 503, not hangs
	maxWorkOSBody = 1 << 20          // an answer is a few KiB; the SDK reads without a limit
)

// workosError is a WorkOS answer other than 2xx, read before the SDK's error types, whose messages may carry tokens.
type workosError struct {
	status       int
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

func (e *workosError) Error() string { return fmt.Sprintf("WorkOS answered %d %s", e.status, e.Code) }

// workosTransport reads answers whole, up to maxWorkOSBody; a non-2xx one (a redirect too: never followed) is an error.
type workosTransport struct{}

func (workosTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(http.MaxBytesReader(nil, res.Body, maxWorkOSBody))
	if err != nil {
		return nil, fmt.Errorf("read WorkOS answer to %s %s: %w", req.Method, req.URL.Path, err)
	}
	if res.StatusCode/100 != 2 {
		e := &workosError{status: res.StatusCode}
		json.Unmarshal(body, e) // what it holds, if it is JSON at all
		e.Code = cmp.Or(e.Code, e.Error_)
		return nil, e
	}
	res.Body, res.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return res, nil
}

// membership is the status of userID's membership in orgID, or in any ("": active over inactive over pending): AuthKit
// names no organization when all of a person's memberships are inactive.
func (s *server) membership(ctx context.Context, userID, orgID string) (usermanagement.OrganizationMembershipStatus, error) {
	list, err := s.workos.ListOrganizationMemberships(ctx, usermanagement.ListOrganizationMembershipsOpts{
		UserID: userID, OrganizationID: orgID, Statuses: []usermanagement.OrganizationMembershipStatus{
			usermanagement.Active, usermanagement.Inactive, usermanagement.PendingOrganizationMembership}})
	var status usermanagement.OrganizationMembershipStatus
	for _, m := range list.Data {
		switch { // entries for another user or organization are ignored, whatever the filter did
		case m.UserID != userID || orgID != "" && m.OrganizationID != orgID:
		case m.Status == usermanagement.Active:
			return m.Status, err
		case m.Status == usermanagement.Inactive || status == "":
			status = m.Status
		}
	}
	return status, err
}

var errWorkOSAnswer = errors.New("unusable WorkOS answer")

// workosAnswer takes the user, bounded and claim-safe, and the WorkOS session id (from the access token our own TLS
// call fetched, so unverified), shaped strictly since it goes into the logout URL.
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
