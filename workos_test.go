package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	loginURLPath    = "/v2/user/workos_login_url/"
	callbackPath    = "/v2/user/workos_signin_callback/"
	selectOrgPath   = "/v2/user/workos_select_organization/"
	testRedirectURL = "http://localhost:8080/en/callback"
	testOrgID       = "org_01HACME0000000000000000000"
	testOtherOrgID  = "org_01HOTHER000000000000000000"
)

var testAda = fakeUser{ID: "user_01HADA00000000000000000000", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace"}

// browser is a cookie jar in front of a testServer: it sends back what the
// server set and forgets what it cleared, as a browser would.
type browser struct {
	ts  *testServer
	jar map[string]string
}

func newBrowser(ts *testServer) *browser { return &browser{ts: ts, jar: make(map[string]string)} }

func (b *browser) cookies() []*http.Cookie {
	var out []*http.Cookie
	for name, value := range b.jar {
		out = append(out, &http.Cookie{Name: name, Value: value})
	}
	slices.SortFunc(out, func(x, y *http.Cookie) int { return strings.Compare(x.Name, y.Name) })
	return out
}

func (b *browser) take(r response) {
	for _, c := range r.cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.jar, c.Name)
		} else {
			b.jar[c.Name] = c.Value
		}
	}
}

func (b *browser) post(path, body string) response {
	b.ts.t.Helper()
	r := b.ts.post(path, body, b.cookies()...)
	b.take(r)
	return r
}

func (b *browser) get(path string) response {
	b.ts.t.Helper()
	r := b.ts.get(path, b.cookies()...)
	b.take(r)
	return r
}

// stateCookieNames lists the state cookies in the jar.
func (b *browser) stateCookieNames() []string {
	var names []string
	for name := range b.jar {
		if strings.Contains(name, stateCookiePrefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// startSignin asks for a login URL and returns it.
func (b *browser) startSignin() string {
	b.ts.t.Helper()
	r := b.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`"}`)
	wantStatus(b.ts.t, r, http.StatusOK)
	return r.field("url")
}

func (b *browser) callback(code, state string) response {
	b.ts.t.Helper()
	return b.post(callbackPath, fmt.Sprintf(`{"code":%q,"state":%q}`, code, state))
}

// signinWith runs a whole sign-in in b as the grant g and returns the callback's answer.
func (b *browser) signinWith(fake *fakeWorkOS, g fakeGrant) response {
	b.ts.t.Helper()
	code, state := fake.authorize(b.ts.t, b.startSignin(), g)
	return b.callback(code, state)
}

func adaGrant() fakeGrant {
	return fakeGrant{User: testAda, OrganizationID: testOrgID, SessionID: "session_01HSESSION0000000000000000"}
}

// newWorkOSFlow is a WorkOS-mode server, its fake, and Ada as an active member.
func newWorkOSFlow(t *testing.T, extraEnv ...string) (*testServer, *fakeWorkOS) {
	t.Helper()
	fake := newFakeWorkOS(t)
	fake.setMembership(testAda.ID, testOrgID, "active")
	return newWorkOSTestServer(t, fake, extraEnv...), fake
}

// wantWorkOSAnswer checks the status and response_type, and that a failed
// answer set no cookie: it may only clear the spent sign-in's cookies.
func wantWorkOSAnswer(t *testing.T, r response, status int, responseType string) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.field("response_type"); got != responseType {
		t.Fatalf("response_type %q, want %q; body %s", got, responseType, r.Body.String())
	}
	if responseType != loginSuccessful {
		wantNoCookieSet(t, r)
	}
}

// wantNoCookieSet fails if the answer gave any cookie a value. Clearing
// the spent sign-in's state cookie is allowed.
func wantNoCookieSet(t *testing.T, r response) {
	t.Helper()
	for _, c := range r.cookies() {
		if c.MaxAge >= 0 || c.Value != "" {
			t.Fatalf("answer %d set cookie %s", r.Code, c.Name)
		}
		if !strings.Contains(c.Name, stateCookiePrefix) && !strings.Contains(c.Name, pendingCookieBase) {
			t.Fatalf("answer %d cleared cookie %s", r.Code, c.Name)
		}
	}
}

func wantError(t *testing.T, r response, status int, reason string) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.field("error"); got != reason {
		t.Fatalf("error %q, want %q; body %s", got, reason, r.Body.String())
	}
	wantNoCookieSet(t, r)
}

func TestWorkOSSignIn(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)

	r := b.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`","screen_hint":"sign-up"}`)
	wantStatus(t, r, http.StatusOK)
	authURL := r.field("url")
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, fake.URL+"/user_management/authorize?") {
		t.Fatalf("url %q", authURL)
	}
	q := u.Query()
	for name, want := range map[string]string{
		"provider": "authkit", "client_id": testWorkOSClientID, "redirect_uri": testRedirectURL,
		"response_type": "code", "code_challenge_method": "S256", "screen_hint": "sign-up",
	} {
		if got := q.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	state := q.Get("state")
	if len(state) < 43 || len(q.Get("code_challenge")) != 43 {
		t.Errorf("state %q, code_challenge %q", state, q.Get("code_challenge"))
	}

	// The state cookie: one, named for this state, HttpOnly, Lax, 10 minutes.
	set := r.cookies()
	if len(set) != 1 {
		t.Fatalf("login URL set %d cookies", len(set))
	}
	sc := set[0]
	if sc.Name != stateCookiePrefix+stateTag(state) || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode ||
		sc.Path != "/" || sc.MaxAge != 600 || sc.Secure {
		t.Errorf("state cookie %+v", sc)
	}
	if len(sc.String()) >= 1024 {
		t.Errorf("state cookie is %d bytes", len(sc.String()))
	}
	if strings.Contains(sc.Value, state) || r.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("state cookie shows the state, or the answer may be cached")
	}

	code, _ := fake.authorize(t, authURL, adaGrant())
	r = b.callback(code, state)
	wantWorkOSAnswer(t, r, http.StatusOK, loginSuccessful)
	if r.field("organization_id") != testOrgID {
		t.Errorf("organization_id %q", r.field("organization_id"))
	}
	wantUser := map[string]any{"id": testAda.ID, "email": testAda.Email, "first_name": "Ada", "last_name": "Lovelace"}
	if fmt.Sprint(r.json["user"]) != fmt.Sprint(wantUser) {
		t.Errorf("user %v", r.json["user"])
	}
	if b.jar["access_token"] == "" || b.jar["refresh_token"] == "" || len(b.stateCookieNames()) != 0 {
		t.Fatalf("cookies after sign-in: %v", b.jar)
	}
	for _, body := range []string{r.Body.String(), fmt.Sprint(b.jar)} {
		if strings.Contains(body, "session_01HSESSION") {
			t.Errorf("the WorkOS session id reached the browser: %s", body)
		}
	}

	// What WorkOS received: the code, the verifier of the challenge, and
	// the API key as client_secret.
	bodies := fake.authenticateBodies()
	if len(bodies) != 1 {
		t.Fatalf("%d authenticate calls", len(bodies))
	}
	got := bodies[0]
	if got.GrantType != "authorization_code" || got.Code != code || got.ClientID != testWorkOSClientID ||
		got.ClientSecret != testWorkOSAPIKey || pkceS256(got.CodeVerifier) != q.Get("code_challenge") {
		t.Errorf("authenticate body: grant %q, code ok %v, client %q, secret ok %v, verifier ok %v",
			got.GrantType, got.Code == code, got.ClientID, got.ClientSecret == testWorkOSAPIKey,
			pkceS256(got.CodeVerifier) == q.Get("code_challenge"))
	}
	if len(got.CodeVerifier) < 43 || strings.Trim(got.CodeVerifier, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") != "" {
		t.Errorf("verifier is not 43+ unreserved characters (RFC 7636 section 4.1)")
	}
	mq := fake.membershipQueries()
	if len(mq) != 1 || mq[0].Get("user_id") != testAda.ID || mq[0].Get("organization_id") != testOrgID ||
		fmt.Sprint(mq[0]["statuses"]) != "[active inactive pending]" {
		t.Errorf("membership queries %v", mq)
	}

	me := b.get("/v2/user/me/")
	wantStatus(t, me, http.StatusOK)
	if me.field("login_method") != "workos" || me.field("organization_id") != testOrgID {
		t.Errorf("me %s", me.Body)
	}

	out := b.post("/v2/user/logout/", "")
	wantStatus(t, out, http.StatusOK)
	if want := fake.URL + "/user_management/sessions/logout?session_id=session_01HSESSION0000000000000000"; out.field("logout_url") != want {
		t.Errorf("logout_url %q, want %q", out.field("logout_url"), want)
	}
	wantStatus(t, b.get("/v2/user/me/"), http.StatusUnauthorized)
	if n := ts.metrics.get("dashauth_signins_total", "response_type", loginSuccessful); n != 1 {
		t.Errorf("LOGIN_SUCCESSFUL counted %d times", n)
	}
}

func TestWorkOSMembership(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, status string
		noOrg        bool
		code         int
		want         string
	}{
		{"active", "active", false, http.StatusOK, loginSuccessful},
		{"inactive", "inactive", false, http.StatusForbidden, membershipDeactivated},
		{"pending invitation", "pending", false, http.StatusForbidden, membershipNotFound},
		{"no membership", "", false, http.StatusForbidden, membershipNotFound},
		{"no organization from WorkOS", "active", true, http.StatusForbidden, membershipNotFound},
		{"no organization from WorkOS, an inactive membership", "inactive", true, http.StatusForbidden, membershipDeactivated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ts, fake := newWorkOSFlow(t)
			fake.setMembership(testAda.ID, testOrgID, c.status)
			fake.setMembership(testAda.ID, testOtherOrgID, "active") // another organization does not count
			g := adaGrant()
			if c.noOrg {
				g.OrganizationID = ""
			}
			b := newBrowser(ts)
			wantWorkOSAnswer(t, b.signinWith(fake, g), c.code, c.want)
			if c.want != loginSuccessful && (b.jar["access_token"] != "" || b.jar["refresh_token"] != "") {
				t.Fatal("session cookies without a session")
			}
			if n := ts.metrics.get("dashauth_signins_total", "response_type", c.want); n != 1 {
				t.Errorf("%s counted %d times", c.want, n)
			}
		})
	}
}

func TestWorkOSLoginURLRedirects(t *testing.T) {
	t.Parallel()
	ts, _ := newWorkOSFlow(t, "ALLOWED_REDIRECT_URLS", "http://localhost:8080/en/callback,http://localhost:8080/fr/callback")
	ask := func(redirect string) response {
		body, _ := json.Marshal(map[string]string{"redirect_url": redirect})
		return ts.post(loginURLPath, string(body))
	}
	for _, ok := range []string{
		"http://localhost:8080/en/callback",
		"http://localhost:8080/fr/callback",
		"http://127.0.0.1:8080/en/callback", // development mode: one origin
	} {
		r := ask(ok)
		wantStatus(t, r, http.StatusOK)
		u, _ := url.Parse(r.field("url"))
		if u.Query().Get("redirect_uri") != ok {
			t.Errorf("%s: redirect_uri %q", ok, u.Query().Get("redirect_uri"))
		}
	}
	refused := []string{
		"",
		"http://localhost:8080/en/callback/",
		"http://localhost:8080/en/callbacks",
		"http://localhost:8080/en/callback/x",
		"http://localhost:8080/en",
		"http://localhost:8080/EN/callback",
		"http://localhost:8080",
		"http://localhost:8080/",
		"http://localhost:8080/en/callback?next=/admin",
		"http://localhost:8080/en/callback?",
		"http://localhost:8080/en/callback#",
		"http://localhost:8080/en/callback#x",
		"https://localhost:8080/en/callback",
		"http://localhost:8081/en/callback",
		"http://localhost/en/callback",
		"http://localhost:80/en/callback",
		"http://LOCALHOST:8080/en/callback",
		"http://localhost.:8080/en/callback",
		"http://localhost:8080.evil.com/en/callback",
		"http://evil.localhost:8080/en/callback",
		"http://localhost.evil.com:8080/en/callback",
		"http://evil.com/en/callback",
		"http://localhost:8080@evil.com/en/callback",
		"http://user@localhost:8080/en/callback",
		"http://user:pass@localhost:8080/en/callback",
		"//localhost:8080/en/callback",
		"//evil.com/en/callback",
		"/en/callback",
		"localhost:8080/en/callback",
		"javascript:alert(1)//localhost:8080/en/callback",
		"data:text/html,http://localhost:8080/en/callback",
		"http://localhost:8080\\@evil.com/en/callback",
		"http://localhost:8080/en\\callback",
		"http:\\\\localhost:8080/en/callback",
		"http://localhost:8080/en/%63allback",
		"http://localhost:8080/en%2Fcallback",
		"http://localhost:8080/en/callback%00",
		"http://localhost:8080/en/callback%2F",
		"http://localhost:8080/en/./callback",
		"http://localhost:8080/en//callback",
		"http://localhost:8080/fr/../en/callback",
		"http://%6cocalhost:8080/en/callback",
		" http://localhost:8080/en/callback",
		"http://localhost:8080/en/callback ",
		"http://localhost:8080/en/callback\n",
		"http://localhost:8080/en/callback\t",
		"http://localhost:8080/en/call back",
		"http://[::1]:8080/en/callback",
		"http://0.0.0.0:8080/en/callback",
		"http://127.0.0.2:8080/en/callback",
		"http://127.1:8080/en/callback",
		"http://2130706433:8080/en/callback",
		"http://localhost:08080/en/callback",
		"http://localhost:8080:8080/en/callback",
		"ws://localhost:8080/en/callback",
		"http://localhost:8080/en/callback" + strings.Repeat("a", 3000),
		"http://localhost:8080/en/callbac\u212a",
	}
	for _, bad := range refused {
		r := ask(bad)
		if bad == "" {
			wantError(t, r, http.StatusBadRequest, "missing_redirect_url")
			continue
		}
		if r.Code != http.StatusBadRequest || r.field("error") != "invalid_redirect_url" || len(r.cookies()) != 0 {
			t.Errorf("%q: %d %s, %d cookies", bad, r.Code, r.Body, len(r.cookies()))
		}
	}
}

// TestWorkOSLoginURLProduction: outside development mode the origins are
// exact, and the state cookie takes the __Host- or __Secure- prefix.
func TestWorkOSLoginURLProduction(t *testing.T) {
	t.Parallel()
	prod := []string{
		"DASHBOARD_URL", "https://app.example.com", "API_URL", "https://api.example.com",
		"SMTP_HOST", "smtp.example.com", "SMTP_FROM", "noreply@example.com",
	}
	for _, domain := range []string{"", "example.com"} {
		ts, fake := newWorkOSFlow(t, append(prod, "COOKIE_DOMAIN", domain)...)
		r := ts.post(loginURLPath, `{"redirect_url":"https://app.example.com/en/callback"}`)
		wantStatus(t, r, http.StatusOK)
		c := r.cookies()[0]
		prefix, wantDomain := "__Host-", ""
		if domain != "" {
			prefix, wantDomain = "__Secure-", domain
		}
		if !strings.HasPrefix(c.Name, prefix+stateCookiePrefix) || !c.Secure || c.Domain != wantDomain || c.Path != "/" {
			t.Errorf("COOKIE_DOMAIN %q: state cookie %+v", domain, c)
		}
		// The browser sends it back under the prefixed name.
		b := newBrowser(ts)
		code, state := fake.authorize(t, r.field("url"), adaGrant())
		b.take(r)
		wantWorkOSAnswer(t, b.callback(code, state), http.StatusOK, loginSuccessful)

		for _, bad := range []string{"https://app.example.com/en/callback/", "http://app.example.com/en/callback",
			"https://app.example.com:443/en/callback", "https://127.0.0.1/en/callback"} {
			wantError(t, ts.post(loginURLPath, `{"redirect_url":"`+bad+`"}`), http.StatusBadRequest, "invalid_redirect_url")
		}
	}
}

func TestWorkOSScreenHint(t *testing.T) {
	t.Parallel()
	ts, _ := newWorkOSFlow(t)
	for hint, want := range map[string]string{"": "", "sign-in": "sign-in", "sign-up": "sign-up"} {
		r := ts.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`","screen_hint":"`+hint+`"}`)
		wantStatus(t, r, http.StatusOK)
		u, _ := url.Parse(r.field("url"))
		if got, present := u.Query()["screen_hint"]; fmt.Sprint(got) != fmt.Sprint(map[bool][]string{true: {want}}[want != ""]) {
			t.Errorf("hint %q: screen_hint %v (present %v)", hint, got, present)
		}
	}
	for _, hint := range []string{"login", "SIGN-IN", "sign-in ", "sign_up"} {
		wantError(t, ts.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`","screen_hint":"`+hint+`"}`),
			http.StatusBadRequest, "invalid_screen_hint")
	}
	wantError(t, ts.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`","screen_hint":1}`), http.StatusBadRequest, "invalid_screen_hint")
	wantError(t, ts.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`","prompt":"x"}`), http.StatusBadRequest, "unknown_field")
}

func TestWorkOSTwoTabs(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	code1, state1 := fake.authorize(t, b.startSignin(), adaGrant())
	code2, state2 := fake.authorize(t, b.startSignin(), adaGrant())
	if len(b.stateCookieNames()) != 2 {
		t.Fatalf("state cookies %v", b.stateCookieNames())
	}
	// The newer tab finishes first; the older one still works after it.
	wantWorkOSAnswer(t, b.callback(code2, state2), http.StatusOK, loginSuccessful)
	wantWorkOSAnswer(t, b.callback(code1, state1), http.StatusOK, loginSuccessful)
	if len(b.stateCookieNames()) != 0 {
		t.Errorf("state cookies left: %v", b.stateCookieNames())
	}
}

// TestWorkOSDroppedCookieIsExpired: a browser drops a state cookie when its
// Max-Age runs out. With another sign-in open in a second tab, the late
// callback still answers LINK_EXPIRED; a state the service never issued
// answers LINK_INVALID.
func TestWorkOSDroppedCookieIsExpired(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	codeA, stateA := fake.authorize(t, b.startSignin(), adaGrant())
	ts.clock.Advance(5 * time.Minute)
	b.startSignin() // tab B
	ts.clock.Advance(5*time.Minute + time.Second)
	delete(b.jar, ts.cookieName(stateCookieBase(stateA))) // what the browser does at Max-Age
	wantWorkOSAnswer(t, b.callback(codeA, stateA), http.StatusBadRequest, linkExpired)
	wantWorkOSAnswer(t, b.callback(codeA, newSecret()), http.StatusBadRequest, linkInvalid)
}

func TestWorkOSStateCookieBound(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	first := b.startSignin()
	for range maxStateCookies + 4 {
		ts.clock.Advance(time.Second)
		b.startSignin()
	}
	if n := len(b.stateCookieNames()); n != maxStateCookies {
		t.Fatalf("%d state cookies, want %d", n, maxStateCookies)
	}
	// The oldest sign-in was dropped to make room (it is used up: the
	// service issued it, so LINK_EXPIRED); the newest works.
	code, state := fake.authorize(t, first, adaGrant())
	wantWorkOSAnswer(t, b.callback(code, state), http.StatusBadRequest, linkExpired)
	wantWorkOSAnswer(t, b.signinWith(fake, adaGrant()), http.StatusOK, loginSuccessful)
	header := 0
	for _, c := range b.cookies() {
		header += len(c.Name) + len(c.Value) + 2
	}
	if header > maxHeaderBytes/4 {
		t.Errorf("cookie header is %d bytes", header)
	}
}

func TestWorkOSReplayedState(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	code, state := fake.authorize(t, b.startSignin(), adaGrant())
	saved := b.cookies()
	wantWorkOSAnswer(t, b.callback(code, state), http.StatusOK, loginSuccessful)

	// The same cookie and state again (a replay, or a back button).
	r := ts.post(callbackPath, fmt.Sprintf(`{"code":%q,"state":%q}`, code, state), saved...)
	wantWorkOSAnswer(t, r, http.StatusBadRequest, linkExpired)
	if n := fake.calls(fakeAuthenticatePath); n != 1 {
		t.Errorf("WorkOS was asked %d times", n)
	}
}

func TestWorkOSWrongState(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	code, state := fake.authorize(t, b.startSignin(), adaGrant())
	for _, wrong := range []string{newSecret(), state[:len(state)-1], state + "A", strings.ToUpper(state), " " + state} {
		wantWorkOSAnswer(t, b.callback(code, wrong), http.StatusBadRequest, linkInvalid)
	}
	wantError(t, b.callback(code, ""), http.StatusBadRequest, "missing_state")
	wantError(t, b.post(callbackPath, `{"state":"`+state+`"}`), http.StatusBadRequest, "missing_code")
	if n := fake.calls(fakeAuthenticatePath); n != 0 {
		t.Fatalf("WorkOS was asked %d times", n)
	}
	// None of that spent the real sign-in.
	wantWorkOSAnswer(t, b.callback(code, state), http.StatusOK, loginSuccessful)
}

func TestWorkOSMissingOrExpiredState(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)

	// No state cookie at all: another browser, or cookies lost.
	code, state := fake.authorize(t, newBrowser(ts).startSignin(), adaGrant())
	wantWorkOSAnswer(t, newBrowser(ts).callback(code, state), http.StatusBadRequest, linkExpired)

	// A sign-in older than 10 minutes.
	b := newBrowser(ts)
	code, state = fake.authorize(t, b.startSignin(), adaGrant())
	ts.clock.Advance(signinAttemptTTL - time.Second)
	other := newBrowser(ts)
	code2, state2 := fake.authorize(t, other.startSignin(), adaGrant())
	ts.clock.Advance(time.Second)
	wantWorkOSAnswer(t, b.callback(code, state), http.StatusBadRequest, linkExpired)
	if len(b.stateCookieNames()) != 0 {
		t.Error("the expired state cookie was not cleared")
	}
	// One second younger, still fine.
	wantWorkOSAnswer(t, other.callback(code2, state2), http.StatusOK, loginSuccessful)
	if n := fake.calls(fakeAuthenticatePath); n != 1 {
		t.Errorf("WorkOS was asked %d times", n)
	}
}

// tamper returns one-change variants of a valid sealed cookie value.
func tamper(value string) map[string]string {
	flip := func(i int) string {
		b := []byte(value)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(value)
	reseal := func(f func([]byte) []byte) string {
		return base64.RawURLEncoding.EncodeToString(f(slices.Clone(raw)))
	}
	return map[string]string{
		"first char":     flip(0),
		"nonce":          flip(5),
		"middle":         flip(len(value) / 2),
		"last char":      flip(len(value) - 1),
		"truncated":      value[:len(value)-1],
		"one byte short": reseal(func(b []byte) []byte { return b[:len(b)-1] }),
		"one byte more":  reseal(func(b []byte) []byte { return append(b, 0) }),
		"nonce only":     reseal(func(b []byte) []byte { return b[:gcmNonceLen+gcmTagLen-1] }),
		"padded":         value + "=",
		"std base64":     base64.StdEncoding.EncodeToString(raw),
		"empty":          "",
		"not base64":     "!" + value[1:],
		"bit flip tag":   reseal(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"bit flip body":  reseal(func(b []byte) []byte { b[gcmNonceLen] ^= 0x80; return b }),
		"doubled":        value + value,
		"huge":           strings.Repeat("A", maxSealedLen+1),
		"whitespace":     value + " ",
		"noncanonical b64": func() string {
			// The last character carries unused low bits; a change there
			// decodes to the same bytes unless decoding is strict.
			last := value[len(value)-1]
			i := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
			return value[:len(value)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i|1])
		}(),
	}
}

func TestWorkOSTamperedStateCookie(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	code, state := fake.authorize(t, b.startSignin(), adaGrant())
	name := b.stateCookieNames()[0]
	value := b.jar[name]
	for what, bad := range tamper(value) {
		if bad == value {
			continue // the non-canonical variant of a value whose spare bits are already set
		}
		r := ts.post(callbackPath, fmt.Sprintf(`{"code":%q,"state":%q}`, code, state), &http.Cookie{Name: name, Value: bad})
		wantWorkOSAnswer(t, r, http.StatusBadRequest, linkInvalid)
		_ = what
	}
	if n := fake.calls(fakeAuthenticatePath); n != 0 {
		t.Fatalf("WorkOS was asked %d times", n)
	}
	// The value moved under another sign-in's name does not open: the
	// name is sealed into it.
	other := newBrowser(ts)
	_, state2 := fake.authorize(t, other.startSignin(), adaGrant())
	moved := &http.Cookie{Name: stateCookiePrefix + stateTag(state2), Value: value}
	wantWorkOSAnswer(t, ts.post(callbackPath, fmt.Sprintf(`{"code":%q,"state":%q}`, code, state2), moved), http.StatusBadRequest, linkInvalid)

	wantWorkOSAnswer(t, b.callback(code, state), http.StatusOK, loginSuccessful)
}

func TestWorkOSStateCookieKeys(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	fake.setMembership(testAda.ID, testOrgID, "active")
	const oldKey, newKey = "old-secret-0123456789abcdef0123456789abcdef", "new-secret-0123456789abcdef0123456789abcdef"
	before := newWorkOSTestServer(t, fake, "JWT_SECRET", oldKey)
	rotated := newWorkOSTestServer(t, fake, "JWT_SECRET", newKey, "JWT_SECRET_PREVIOUS", oldKey)
	stranger := newWorkOSTestServer(t, fake, "JWT_SECRET", newKey)

	start := func() (*browser, string, string) {
		b := newBrowser(before)
		code, state := fake.authorize(t, b.startSignin(), adaGrant())
		return b, code, state
	}
	// Another key: the cookie does not open.
	b, code, state := start()
	b.ts = stranger
	wantWorkOSAnswer(t, b.callback(code, state), http.StatusBadRequest, linkInvalid)
	// A sign-in started just before a key rotation still finishes.
	b, code, state = start()
	b.ts = rotated
	wantWorkOSAnswer(t, b.callback(code, state), http.StatusOK, loginSuccessful)
}

func TestWorkOSOrganizationSelection(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	fake.setMembership(testAda.ID, testOtherOrgID, "inactive")
	g := adaGrant()
	g.Err = "organization_selection_required"
	g.Organizations = []fakeOrg{{testOrgID, "Acme"}, {testOtherOrgID, "Other <Corp>"}}

	b := newBrowser(ts)
	r := b.signinWith(fake, g)
	wantStatus(t, r, http.StatusOK)
	if r.field("response_type") != organizationSelectionRequired {
		t.Fatalf("answer %s", r.Body)
	}
	want := `[map[id:` + testOrgID + ` name:Acme] map[id:` + testOtherOrgID + ` name:Other <Corp>]]`
	if got := fmt.Sprint(r.json["organizations"]); got != want {
		t.Errorf("organizations %s, want %s", got, want)
	}
	// Only the pending cookie is set; the state cookie is spent.
	var pending *http.Cookie
	for _, c := range r.cookies() {
		switch {
		case c.Name == pendingCookieBase && c.MaxAge == 600 && c.HttpOnly && c.SameSite == http.SameSiteLaxMode:
			pending = c
		case strings.HasPrefix(c.Name, stateCookiePrefix) && c.MaxAge < 0:
		default:
			t.Errorf("unexpected cookie %+v", c)
		}
	}
	if pending == nil || b.jar["access_token"] != "" || len(pending.String()) >= 4096 {
		t.Fatalf("pending cookie %v; jar %v", pending, b.jar)
	}

	// An organization not offered: refused, and the choice stays open.
	for _, org := range []string{"org_01HEVIL00000000000000000000", testOrgID + " ", strings.ToLower(testOrgID)} {
		wantWorkOSAnswer(t, b.post(selectOrgPath, `{"organization_id":"`+org+`"}`), http.StatusBadRequest, linkInvalid)
	}
	wantError(t, b.post(selectOrgPath, `{}`), http.StatusBadRequest, "missing_organization_id")
	if n := fake.calls(fakeAuthenticatePath); n != 1 {
		t.Fatalf("WorkOS was asked %d times", n)
	}
	saved := b.cookies()

	r = b.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`)
	wantWorkOSAnswer(t, r, http.StatusOK, loginSuccessful)
	if r.field("organization_id") != testOrgID || b.jar[pendingCookieBase] != "" {
		t.Errorf("organization_id %q; pending cookie left: %v", r.field("organization_id"), b.jar[pendingCookieBase] != "")
	}
	sel := fake.authenticateBodies()[1]
	if sel.GrantType != "urn:workos:oauth:grant-type:organization-selection" || sel.OrganizationID != testOrgID ||
		sel.PendingAuthenticationToken == "" || sel.ClientSecret != testWorkOSAPIKey || sel.ClientID != testWorkOSClientID {
		t.Errorf("selection body: grant %q, org %q, token set %v", sel.GrantType, sel.OrganizationID, sel.PendingAuthenticationToken != "")
	}
	if strings.Contains(pending.Value, sel.PendingAuthenticationToken) {
		t.Error("the pending authentication token is readable in the cookie")
	}
	me := b.get("/v2/user/me/")
	if me.field("login_method") != "workos" || me.field("organization_id") != testOrgID {
		t.Errorf("me %s", me.Body)
	}

	// The pending cookie again: spent.
	wantWorkOSAnswer(t, ts.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`, saved...), http.StatusBadRequest, linkExpired)
	if n := fake.calls(fakeAuthenticatePath); n != 2 {
		t.Errorf("WorkOS was asked %d times", n)
	}
}

func TestWorkOSOrganizationSelectionMembership(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	fake.setMembership(testAda.ID, testOtherOrgID, "inactive")
	g := adaGrant()
	g.Err = "organization_selection_required"
	g.Organizations = []fakeOrg{{testOrgID, "Acme"}, {testOtherOrgID, "Other"}}
	b := newBrowser(ts)
	wantStatus(t, b.signinWith(fake, g), http.StatusOK)
	wantWorkOSAnswer(t, b.post(selectOrgPath, `{"organization_id":"`+testOtherOrgID+`"}`), http.StatusForbidden, membershipDeactivated)

	// WorkOS answering for someone else is refused.
	g.SelectedUser = &fakeUser{ID: "user_01HEVE00000000000000000000", Email: "eve@example.com"}
	fake.setMembership(g.SelectedUser.ID, testOrgID, "active")
	b = newBrowser(ts)
	wantStatus(t, b.signinWith(fake, g), http.StatusOK)
	wantWorkOSAnswer(t, b.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), http.StatusBadRequest, linkInvalid)
}

func TestWorkOSPendingCookie(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	g := adaGrant()
	g.Err = "organization_selection_required"
	g.Organizations = []fakeOrg{{testOrgID, "Acme"}}
	start := func() *browser {
		b := newBrowser(ts)
		wantStatus(t, b.signinWith(fake, g), http.StatusOK)
		return b
	}
	body := `{"organization_id":"` + testOrgID + `"}`

	wantWorkOSAnswer(t, newBrowser(ts).post(selectOrgPath, body), http.StatusBadRequest, linkExpired)

	b := start()
	value := b.jar[pendingCookieBase]
	for what, bad := range tamper(value) {
		if bad == value {
			continue
		}
		r := ts.post(selectOrgPath, body, &http.Cookie{Name: pendingCookieBase, Value: bad})
		wantWorkOSAnswer(t, r, http.StatusBadRequest, linkInvalid)
		_ = what
	}
	// A state cookie's value presented as the pending cookie does not open.
	sb := newBrowser(ts)
	sb.startSignin()
	stateValue := sb.jar[sb.stateCookieNames()[0]]
	wantWorkOSAnswer(t, ts.post(selectOrgPath, body, &http.Cookie{Name: pendingCookieBase, Value: stateValue}), http.StatusBadRequest, linkInvalid)

	ts.clock.Advance(signinAttemptTTL)
	wantWorkOSAnswer(t, b.post(selectOrgPath, body), http.StatusBadRequest, linkExpired)
	if b.jar[pendingCookieBase] != "" {
		t.Error("the expired pending cookie was not cleared")
	}
	if n := fake.calls(fakeAuthenticatePath); n != 1 {
		t.Errorf("WorkOS was asked %d times", n)
	}
}

func TestWorkOSOrganizationSelectionUnusable(t *testing.T) {
	t.Parallel()
	many := make([]fakeOrg, maxOfferedOrgs+8)
	for i := range many {
		many[i] = fakeOrg{fmt.Sprintf("org_01HMANY%021d", i), fmt.Sprintf("Org %d", i)}
	}
	ts, fake := newWorkOSFlow(t)
	g := adaGrant()
	g.Err = "organization_selection_required"
	g.Organizations = many
	r := newBrowser(ts).signinWith(fake, g)
	wantStatus(t, r, http.StatusOK)
	if n := len(r.json["organizations"].([]any)); n != maxOfferedOrgs {
		t.Errorf("%d organizations offered", n)
	}
	for _, c := range r.cookies() {
		if len(c.String()) >= 4096 {
			t.Errorf("cookie %s is %d bytes", c.Name, len(c.String()))
		}
	}

	for name, orgs := range map[string][]fakeOrg{
		"none":        {},
		"empty id":    {{"", "Nameless"}},
		"long id":     {{"org_" + strings.Repeat("X", maxWorkOSID), "Long"}},
		"long name":   {{testOrgID, strings.Repeat("n", maxOrgNameInList+1)}},
		"one bad one": {{testOrgID, "Acme"}, {"", "Nameless"}},
	} {
		g.Organizations = orgs
		wantError(t, newBrowser(ts).signinWith(fake, g), http.StatusServiceUnavailable, "workos_unavailable")
		_ = name
	}
}

// TestPendingCookieWorstCase: the largest pending choice the bounds allow
// still fits a cookie, under the longest name and with a Domain.
func TestPendingCookieWorstCase(t *testing.T) {
	t.Parallel()
	ts, _ := newWorkOSFlow(t, "DASHBOARD_URL", "https://app.example.com", "API_URL", "https://api.example.com",
		"SMTP_HOST", "smtp.example.com", "SMTP_FROM", "noreply@example.com", "COOKIE_DOMAIN", "dashboard.example.com")
	pc := pendingCookie{
		Token:   strings.Repeat("t", maxPendingToken),
		UserID:  strings.Repeat("u", maxWorkOSID),
		Expires: 1 << 40,
	}
	for i := range maxOfferedOrgs {
		pc.Orgs = append(pc.Orgs, fmt.Sprintf("org_%060d", i))
	}
	rec := httptest.NewRecorder()
	ts.setPendingCookie(rec, pc)
	if n := len(rec.Header().Get("Set-Cookie")); n >= 4096 {
		t.Fatalf("worst-case pending cookie is %d bytes", n)
	} else {
		t.Logf("worst-case pending cookie: %d bytes", n)
	}
}

func TestWorkOSAuthErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err    string
		status int
		reason string // {"error": reason}, or "" for LINK_INVALID
	}{
		{"invalid_grant", http.StatusBadRequest, ""},
		{"access_denied", http.StatusBadRequest, ""},
		{"email_verification_required", http.StatusForbidden, "email_verification_required"},
		{"mfa_enrollment", http.StatusForbidden, "mfa_enrollment_required"},
		{"mfa_challenge", http.StatusForbidden, "mfa_challenge_required"},
		{"sso_required", http.StatusForbidden, "sso_required"},
		{"organization_authentication_methods_required", http.StatusForbidden, "organization_authentication_methods_required"},
	}
	for _, c := range cases {
		t.Run(c.err, func(t *testing.T) {
			t.Parallel()
			ts, fake := newWorkOSFlow(t)
			g := adaGrant()
			g.Err = c.err
			b := newBrowser(ts)
			r := b.signinWith(fake, g)
			if c.reason == "" {
				wantWorkOSAnswer(t, r, c.status, linkInvalid)
			} else {
				wantError(t, r, c.status, c.reason)
				if n := ts.metrics.get("dashauth_workos_errors_total", "reason", c.reason); n != 1 {
					t.Errorf("%s counted %d times", c.reason, n)
				}
			}
			if len(b.jar) != 0 || fake.calls(fakeMembershipsPath) != 0 {
				t.Errorf("cookies %v; membership calls %d", b.jar, fake.calls(fakeMembershipsPath))
			}
			if strings.Contains(ts.logs.String(), "pat_") {
				t.Error("a pending authentication token was logged")
			}
		})
	}
}

func TestWorkOSRejectedExchanges(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)

	// A code WorkOS never issued, or one already used.
	b := newBrowser(ts)
	_, state := fake.authorize(t, b.startSignin(), adaGrant())
	wantWorkOSAnswer(t, b.callback("01HNOTACODE0000000000000000", state), http.StatusBadRequest, linkInvalid)

	// A verifier that is not the one of the challenge: the code was
	// registered with another sign-in's challenge.
	b = newBrowser(ts)
	_, state = fake.authorize(t, b.startSignin(), adaGrant())
	g := adaGrant()
	g.Challenge = pkceS256(newSecret())
	fake.addCode("code_mismatch", g)
	wantWorkOSAnswer(t, b.callback("code_mismatch", state), http.StatusBadRequest, linkInvalid)

	// An absurd code is not sent to WorkOS.
	b = newBrowser(ts)
	_, state = fake.authorize(t, b.startSignin(), adaGrant())
	calls := fake.calls(fakeAuthenticatePath)
	wantWorkOSAnswer(t, b.callback(strings.Repeat("c", maxAuthCode+1), state), http.StatusBadRequest, linkInvalid)
	if fake.calls(fakeAuthenticatePath) != calls {
		t.Error("an over-long code was sent to WorkOS")
	}

	// The wrong API key: WorkOS refuses the client, the operator is told.
	wrong := newWorkOSTestServer(t, fake, "WORKOS_API_KEY", "sk_test_not_the_key")
	b = newBrowser(wrong)
	wantWorkOSAnswer(t, b.signinWith(fake, adaGrant()), http.StatusBadRequest, linkInvalid)
	if !strings.Contains(wrong.logs.String(), "check WORKOS_CLIENT_ID and WORKOS_API_KEY") {
		t.Error("a refused API key was not logged")
	}
	if strings.Contains(wrong.logs.String(), "sk_test_not_the_key") {
		t.Error("the API key was logged")
	}
}

func TestWorkOSUnavailable(t *testing.T) {
	t.Parallel()
	faults := map[string]fakeFault{
		"500": fault500, "invalid JSON": faultInvalidJSON, "huge body": faultHugeBody,
		"huge error body": faultHugeErrorBody, "stall": faultStall, "stall in body": faultStallBody,
		"redirect": faultRedirect,
	}
	for _, path := range []string{fakeAuthenticatePath, fakeMembershipsPath} {
		for name, fault := range faults {
			t.Run(path+" "+name, func(t *testing.T) {
				t.Parallel()
				ts, fake := newWorkOSFlow(t)
				if fault == faultStall || fault == faultStallBody {
					// Short enough to keep the test quick, long enough that
					// the calls before the stalled one finish on a busy machine.
					ts.workos.timeout = 2 * time.Second
				}
				fake.setFault(path, fault)
				b := newBrowser(ts)
				wantError(t, b.signinWith(fake, adaGrant()), http.StatusServiceUnavailable, "workos_unavailable")
				if b.jar["access_token"] != "" || fake.calls(path) != 1 {
					t.Errorf("session cookie set, or %d calls", fake.calls(path))
				}
				if n := ts.metrics.get("dashauth_workos_errors_total", "reason", "workos_unavailable"); n != 1 {
					t.Errorf("workos_unavailable counted %d times", n)
				}
				if fake.calls(fakeRedirectPath) != 0 {
					t.Error("a redirect from WorkOS was followed")
				}
			})
		}
	}
}

func TestWorkOSStoreDown(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	code, state := fake.authorize(t, b.startSignin(), adaGrant())
	ts.store = failingStore{}
	// The state cannot be spent, so the code is not exchanged.
	wantError(t, b.callback(code, state), http.StatusServiceUnavailable, "state_unavailable")
	if fake.calls(fakeAuthenticatePath) != 0 {
		t.Error("the code was exchanged without spending the state")
	}
}

func TestWorkOSUnreachable(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	fake.Close() // nothing listens there any more
	b := newBrowser(ts)
	code, state := fake.authorize(t, b.startSignin(), adaGrant())
	wantError(t, b.callback(code, state), http.StatusServiceUnavailable, "workos_unavailable")
}

func TestWorkOSUnusableAnswers(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300)
	cases := map[string]func(*fakeGrant){
		"no user id":          func(g *fakeGrant) { g.User.ID = "" },
		"long user id":        func(g *fakeGrant) { g.User.ID = "user_" + long },
		"long email":          func(g *fakeGrant) { g.User.Email = long + "@example.com" },
		"long first name":     func(g *fakeGrant) { g.User.FirstName = long },
		"long last name":      func(g *fakeGrant) { g.User.LastName = long },
		"access token no sid": func(g *fakeGrant) { g.AccessToken = fakeTokenWith(`{"sub":"user_1"}`) },
		"access token opaque": func(g *fakeGrant) { g.AccessToken = "opaque-token" },
		"bad sid":             func(g *fakeGrant) { g.SessionID = "session_1&return_to=https://evil.com" },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts, fake := newWorkOSFlow(t)
			g := adaGrant()
			change(&g)
			wantError(t, newBrowser(ts).signinWith(fake, g), http.StatusServiceUnavailable, "workos_unavailable")
		})
	}
}

// fakeTokenWith is a JWT-shaped token with the given payload.
func fakeTokenWith(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString([]byte("sig"))
}

func TestWorkOSSessionID(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding
	valid := fakeTokenWith(`{"sid":"session_01HSESSION0000000000000000","sub":"user_1"}`)
	if sid, err := workosSessionID(valid); err != nil || sid != "session_01HSESSION0000000000000000" {
		t.Fatalf("workosSessionID(valid) = %q, %v", sid, err)
	}
	h, p, s := strings.Split(valid, ".")[0], strings.Split(valid, ".")[1], strings.Split(valid, ".")[2]
	bad := map[string]string{
		"empty":             "",
		"two parts":         h + "." + p,
		"four parts":        valid + ".x",
		"empty header":      "." + p + "." + s,
		"empty payload":     h + ".." + s,
		"empty signature":   h + "." + p + ".",
		"padded payload":    h + "." + p + "=." + s,
		"std base64":        h + "." + base64.StdEncoding.EncodeToString([]byte(`{"sid":"a+b/c"}`)) + "." + s,
		"not JSON":          h + "." + enc.EncodeToString([]byte(`sid=session_1`)) + "." + s,
		"JSON array":        h + "." + enc.EncodeToString([]byte(`["sid"]`)) + "." + s,
		"sid a number":      h + "." + enc.EncodeToString([]byte(`{"sid":1}`)) + "." + s,
		"no sid":            h + "." + enc.EncodeToString([]byte(`{"sub":"user_1"}`)) + "." + s,
		"empty sid":         h + "." + enc.EncodeToString([]byte(`{"sid":""}`)) + "." + s,
		"sid with &":        h + "." + enc.EncodeToString([]byte(`{"sid":"a&return_to=x"}`)) + "." + s,
		"sid with space":    h + "." + enc.EncodeToString([]byte(`{"sid":"a b"}`)) + "." + s,
		"sid with newline":  h + "." + enc.EncodeToString([]byte(`{"sid":"a\nb"}`)) + "." + s,
		"CR in payload":     h + "." + p[:4] + "\r" + p[4:] + "." + s,
		"LF after payload":  h + "." + p + "\n." + s,
		"sid non-ASCII":     h + "." + enc.EncodeToString([]byte(`{"sid":"séssion"}`)) + "." + s,
		"sid too long":      h + "." + enc.EncodeToString([]byte(`{"sid":"`+strings.Repeat("a", maxWorkOSSID+1)+`"}`)) + "." + s,
		"token too long":    h + "." + enc.EncodeToString([]byte(`{"sid":"s","x":"`+strings.Repeat("a", maxAccessToken)+`"}`)) + "." + s,
		"null":              h + "." + enc.EncodeToString([]byte(`null`)) + "." + s,
		"trailing JSON":     h + "." + enc.EncodeToString([]byte(`{"sid":"s"}{}`)) + "." + s,
		"non-canonical b64": h + "." + p[:len(p)-1] + "B" + "." + s,
	}
	for name, token := range bad {
		if name == "non-canonical b64" && strings.HasSuffix(p, "B") {
			continue
		}
		if sid, err := workosSessionID(token); err == nil {
			t.Errorf("%s: accepted, sid %q", name, sid)
		}
	}
}

func FuzzWorkOSSessionID(f *testing.F) {
	f.Add(fakeTokenWith(`{"sid":"session_01HSESSION0000000000000000"}`))
	f.Add(fakeAccessToken("user_1", "org_1", "session_1"))
	f.Add(fakeTokenWith(`{"sid":"a&b"}`))
	f.Add("a.b.c")
	f.Add("..")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		sid, err := workosSessionID(token)
		if err != nil {
			return
		}
		if !validWorkOSSID(sid) || url.QueryEscape(sid) != sid {
			t.Fatalf("accepted sid %q that is not a plain id", sid)
		}
	})
}

func TestOpenSealed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	sc := stateCookie{State: "s", Verifier: "v", Expires: 1}
	value := ts.seal("workos_state_x", sc)
	var got stateCookie
	if err := ts.openSealed("workos_state_x", value, &got); err != nil || got != sc {
		t.Fatalf("openSealed = %+v, %v", got, err)
	}
	// Every seal differs (a fresh nonce), and all open.
	if again := ts.seal("workos_state_x", sc); again == value {
		t.Error("two seals of the same value are equal")
	}
	if err := ts.openSealed("workos_state_y", value, &got); err == nil {
		t.Error("opened under another name")
	}
	for what, bad := range tamper(value) {
		if bad == value {
			continue
		}
		if err := ts.openSealed("workos_state_x", bad, &got); err == nil {
			t.Errorf("%s: opened", what)
		}
	}
	// A value sealed with fields the reader does not know does not open.
	odd := ts.seal("workos_state_x", map[string]any{"s": "s", "v": "v", "e": 1, "admin": true})
	if err := ts.openSealed("workos_state_x", odd, &got); err == nil {
		t.Error("opened with an unknown field")
	}
}

// Values sealed once under fuzzSealKey for the cookie fuzzSealBase (random
// nonces make every seal differ, and each fuzz worker would make its own).
const (
	fuzzSealKey  = "fuzz-secret-0123456789abcdef0123456789abcdef"
	fuzzSealBase = "workos_state_0123456789abcdef"
	fuzzSealed1  = "N4rj2QX83yeP8SysI0K5MYiro-h6XtswVOU8Cc6lGTsJbf3bt3wbQ5kwTu6vJYXC7DObtBe0y8wSPZnOw0k4vwUw4wA7ez-52WFYQLYRrRUTOEBJ-vJDOiF0V03cTdpmqjKjpnt3YnyMvvBHXaLt52YErqR_x7rarkmSpP2GZblq_pT0RC6_OcyMTjb68qpY"
	fuzzSealed2  = "46pJ6xIVx5vNJNMhLsl8yExXBY6fC8SZdg4Gm2wAx2Dv7NFmWV7SnK8qsZp1ofawnQ"
)

// FuzzOpenSealedStateCookie: no input panics the opener, and nothing opens
// but the two values the server sealed, byte for byte.
// TestSealedValueHasOneSpelling: Go's base64 decoder skips CR and LF even
// in Strict mode, so a sealed value with a line break inserted would open
// as the genuine one; only the exact bytes the server wrote may open.
func TestSealedValueHasOneSpelling(t *testing.T) {
	t.Parallel()
	s := &server{keys: [][]byte{[]byte(fuzzSealKey)}}
	for _, v := range []string{fuzzSealed1[:10] + "\r" + fuzzSealed1[10:], fuzzSealed1[:10] + "\n" + fuzzSealed1[10:], fuzzSealed1 + "\r\n"} {
		var sc stateCookie
		if err := s.openSealed(fuzzSealBase, v, &sc); err == nil {
			t.Errorf("%q opened", v)
		}
	}
}

func FuzzOpenSealedStateCookie(f *testing.F) {
	s := &server{keys: [][]byte{[]byte(fuzzSealKey)}} // sealing needs only the keys
	for _, v := range []string{fuzzSealed1, fuzzSealed2} {
		var sc stateCookie
		if err := s.openSealed(fuzzSealBase, v, &sc); err != nil {
			f.Fatalf("a genuine value does not open: %v", err)
		}
		f.Add(v)
		for _, bad := range tamper(v) {
			f.Add(bad)
		}
	}
	f.Add(s.seal(pendingCookieBase, pendingCookie{Token: "pat_1", Orgs: []string{"org_1"}, Expires: 1}))
	f.Add("")
	f.Fuzz(func(t *testing.T, value string) {
		var sc stateCookie
		err := s.openSealed(fuzzSealBase, value, &sc)
		if err == nil && value != fuzzSealed1 && value != fuzzSealed2 {
			t.Fatalf("a value the server did not seal opened: %q", value)
		}
		if err != nil && !errors.Is(err, errSealedInvalid) {
			t.Fatalf("error %v is not errSealedInvalid", err)
		}
	})
}

func TestWorkOSModeGating(t *testing.T) {
	t.Parallel()
	email := newEmailCodeServer(t)
	for _, path := range []string{loginURLPath, callbackPath, selectOrgPath} {
		wantError(t, email.post(path, `{"redirect_url":"`+testRedirectURL+`"}`), http.StatusNotFound, "workos_not_enabled")
	}
	if r := email.get("/v1/auth_config/"); r.field("login_flow") != "email_code" {
		t.Errorf("auth_config %s", r.Body)
	}

	ts, _ := newWorkOSFlow(t)
	for _, path := range []string{"/v2/user/login_code/", "/v2/user/login_code/verify/"} {
		wantError(t, ts.post(path, `{"email":"ada@example.com","code":"123456"}`), http.StatusNotFound, "email_code_login_disabled")
	}
	if r := ts.get("/v1/auth_config/"); r.field("login_flow") != "workos" {
		t.Errorf("auth_config %s", r.Body)
	}
	for _, path := range []string{loginURLPath, callbackPath, selectOrgPath} {
		r := ts.get(path)
		wantStatus(t, r, http.StatusMethodNotAllowed)
	}
}

func TestWorkOSLogoutWithoutSession(t *testing.T) {
	t.Parallel()
	ts, _ := newWorkOSFlow(t)
	r := ts.post("/v2/user/logout/", "")
	wantStatus(t, r, http.StatusOK)
	if _, has := r.json["logout_url"]; has {
		t.Errorf("logout_url without a session: %s", r.Body)
	}
}

func TestWorkOSCrossSiteRefused(t *testing.T) {
	t.Parallel()
	ts, _ := newWorkOSFlow(t)
	r := ts.do(request{method: "POST", path: loginURLPath, body: `{"redirect_url":"` + testRedirectURL + `"}`,
		header: map[string]string{"Origin": "https://evil.example"}})
	wantStatus(t, r, http.StatusForbidden)
	if len(r.cookies()) != 0 {
		t.Error("a cross-site request got a state cookie")
	}
}
