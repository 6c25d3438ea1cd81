package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// signIn runs the email+code flow for ada and returns her cookies.
func (ts *testServer) signIn() []*http.Cookie {
	ts.t.Helper()
	code := ts.requestCode("ada@example.com")
	r := ts.verify("ada@example.com", code)
	wantSignin(ts.t, r, http.StatusOK, loginSuccessful)
	return r.cookies()
}

// named picks cookies by name, as a browser would send them back.
func named(cookies []*http.Cookie, names ...string) []*http.Cookie {
	var out []*http.Cookie
	for _, n := range names {
		if c := cookieNamed(cookies, n); c != nil {
			out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
		}
	}
	return out
}

func TestSessionCookiesDevMode(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	cookies := ts.signIn()
	for _, name := range []string{"access_token", "refresh_token"} {
		c := cookieNamed(cookies, name)
		if c == nil {
			t.Fatalf("no %s cookie", name)
		}
		if !c.HttpOnly || c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("%s attributes: %+v", name, c)
		}
		if len(c.String()) >= 4096 {
			t.Errorf("%s is %d bytes", name, len(c.String()))
		}
	}
	if got := cookieNamed(cookies, "access_token").MaxAge; got != int(15*time.Minute/time.Second) {
		t.Errorf("access Max-Age %d", got)
	}
	if got := cookieNamed(cookies, "refresh_token").MaxAge; got != int(168*time.Hour/time.Second) {
		t.Errorf("refresh Max-Age %d", got)
	}
}

func TestCookieNamesOutsideDevMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		domain, prefix string
	}{
		{"", "__Host-"},
		{"yourdomain.com", "__Secure-"},
	} {
		cfg := config{CookieDomain: tc.domain, AccessTTL: time.Minute}
		s := &server{cfg: cfg}
		rec := newHeaderRecorder()
		s.setCookie(rec, s.cookieName("access_token"), "v", time.Minute)
		c := rec.cookie(t)
		if c.Name != tc.prefix+"access_token" || !c.Secure || c.Domain != tc.domain || c.Path != "/" || !c.HttpOnly {
			t.Errorf("domain %q: cookie %+v", tc.domain, c)
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("no Cache-Control: no-store")
		}
	}
}

func TestMeNeedsValidSession(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	wantStatus(t, ts.get("/v2/user/me/"), http.StatusUnauthorized)
	cookies := ts.signIn()
	// A refresh token is not an access token.
	refreshAsAccess := &http.Cookie{Name: "access_token", Value: cookieNamed(cookies, "refresh_token").Value}
	wantStatus(t, ts.get("/v2/user/me/", refreshAsAccess), http.StatusUnauthorized)
	// Tampered token.
	access := cookieNamed(cookies, "access_token").Value
	tampered := &http.Cookie{Name: "access_token", Value: access[:len(access)-2] + "AA"}
	wantStatus(t, ts.get("/v2/user/me/", tampered), http.StatusUnauthorized)
	// Expired, past the leeway.
	wantStatus(t, ts.get("/v2/user/me/", named(cookies, "access_token")...), http.StatusOK)
	ts.clock.Advance(15*time.Minute + tokenLeewaySeconds*time.Second)
	wantStatus(t, ts.get("/v2/user/me/", named(cookies, "access_token")...), http.StatusUnauthorized)
}

func TestRefreshRotates(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	cookies := ts.signIn()
	ts.clock.Advance(time.Minute)
	r := ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	wantStatus(t, r, http.StatusOK)
	fresh := r.cookies()
	if cookieNamed(fresh, "access_token") == nil || cookieNamed(fresh, "refresh_token") == nil {
		t.Fatalf("refresh set %v", fresh)
	}
	if cookieNamed(fresh, "refresh_token").Value == cookieNamed(cookies, "refresh_token").Value {
		t.Fatal("refresh token not rotated")
	}
	wantStatus(t, ts.get("/v2/user/me/", named(fresh, "access_token")...), http.StatusOK)

	// The old refresh token is spent: a concurrent tab within the reuse
	// interval gets 401 and the session lives on.
	wantStatus(t, ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...), http.StatusUnauthorized)
	wantStatus(t, ts.get("/v2/user/me/", named(fresh, "access_token")...), http.StatusOK)

	// Later, a replay revokes the whole session.
	ts.clock.Advance(11 * time.Second)
	wantStatus(t, ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...), http.StatusUnauthorized)
	wantStatus(t, ts.get("/v2/user/me/", named(fresh, "access_token")...), http.StatusUnauthorized)
	wantStatus(t, ts.post("/v2/user/token_refresh/", "", named(fresh, "refresh_token")...), http.StatusUnauthorized)
	if ts.metrics.get("dashauth_refresh_reuse_total", "action", "revoked") != 1 {
		t.Error("revocation not counted")
	}
}

func TestRefreshRejectsAccessToken(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	cookies := ts.signIn()
	accessAsRefresh := &http.Cookie{Name: "refresh_token", Value: cookieNamed(cookies, "access_token").Value}
	wantStatus(t, ts.post("/v2/user/token_refresh/", "", accessAsRefresh), http.StatusUnauthorized)
	wantStatus(t, ts.post("/v2/user/token_refresh/", ""), http.StatusUnauthorized)
}

func TestLogoutRevokes(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	cookies := ts.signIn()
	r := ts.post("/v2/user/logout/", "", named(cookies, "access_token", "refresh_token")...)
	wantStatus(t, r, http.StatusOK)
	if _, ok := r.json["logout_url"]; ok {
		t.Error("logout_url outside WorkOS mode")
	}
	for _, name := range []string{"access_token", "refresh_token"} {
		c := cookieNamed(r.cookies(), name)
		if c == nil || c.MaxAge >= 0 || c.Value != "" {
			t.Errorf("%s not cleared: %+v", name, c)
		}
	}
	if r.Header().Get("Cache-Control") != "no-store" {
		t.Error("logout without Cache-Control: no-store")
	}
	// The old tokens are dead, though their signatures are still good.
	wantStatus(t, ts.get("/v2/user/me/", named(cookies, "access_token")...), http.StatusUnauthorized)
	wantStatus(t, ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...), http.StatusUnauthorized)
	// Logging out again, or without a session, still answers 200.
	wantStatus(t, ts.post("/v2/user/logout/", "", named(cookies, "access_token")...), http.StatusOK)
}

func TestPreviousKeyStillVerifies(t *testing.T) {
	t.Parallel()
	old := "old-secret-0123456789abcdef0123456789abcdef"
	members := writeMembers(t, testMembers)
	before := newTestServer(t, testEnv("MEMBERS_FILE", members, "JWT_SECRET", old))
	after := newTestServer(t, testEnv("MEMBERS_FILE", members, "JWT_SECRET_PREVIOUS", old))
	after.store = before.store // one shared store, as with Redis
	cookies := before.signIn()
	wantStatus(t, after.get("/v2/user/me/", named(cookies, "access_token")...), http.StatusOK)
	// New tokens are signed with the new key only.
	r := after.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	wantStatus(t, r, http.StatusOK)
	if _, err := verifyToken(cookieNamed(r.cookies(), "access_token").Value, [][]byte{[]byte(old)}, after.cfg.APIURL, "access", after.clock.Now()); err == nil {
		t.Error("a new token verifies under the old key")
	}
}

// headerRecorder is a minimal ResponseWriter for cookie-writing helpers.
type headerRecorder struct{ h http.Header }

func newHeaderRecorder() *headerRecorder              { return &headerRecorder{h: make(http.Header)} }
func (r *headerRecorder) Header() http.Header         { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(int)             {}

func (r *headerRecorder) cookie(t *testing.T) *http.Cookie {
	t.Helper()
	resp := http.Response{Header: r.h}
	cs := resp.Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies %v", r.h.Values("Set-Cookie"))
	}
	if !strings.Contains(r.h.Get("Set-Cookie"), "Max-Age=") {
		t.Errorf("no Max-Age in %q", r.h.Get("Set-Cookie"))
	}
	return cs[0]
}

// failSetOnce fails the first Set whose key contains match, like a Redis
// that drops one write.
type failSetOnce struct {
	store
	match  string
	mu     sync.Mutex
	failed bool
}

func (f *failSetOnce) Set(ctx context.Context, k, v string, ttl time.Duration) error {
	f.mu.Lock()
	fail := !f.failed && strings.Contains(k, f.match)
	f.failed = f.failed || fail
	f.mu.Unlock()
	if fail {
		return errStoreDown
	}
	return f.store.Set(ctx, k, v, ttl)
}

// TestRefreshRetryAfterStoreFailure: a refresh that fails on the store
// answers 503 and leaves the token unspent, so the browser's retry, even
// after the reuse interval, refreshes instead of revoking the session.
func TestRefreshRetryAfterStoreFailure(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	cookies := ts.signIn()
	ts.store = &failSetOnce{store: ts.store, match: ":session:"}
	wantStatus(t, ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...), http.StatusServiceUnavailable)
	ts.clock.Advance(ts.cfg.RefreshReuse + time.Second)
	r := ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	wantStatus(t, r, http.StatusOK)
	wantStatus(t, ts.get("/v2/user/me/", named(r.cookies(), "access_token")...), http.StatusOK)
}

// TestRefreshRechecksMembership: a member deactivated after signing in is
// refused at the next refresh, and the session ends.
func TestRefreshRechecksMembership(t *testing.T) {
	t.Parallel()
	path := writeMembers(t, testMembers)
	ts := newTestServer(t, testEnv("MEMBERS_FILE", path))
	cookies := ts.signIn()
	deactivated := strings.Replace(testMembers, `"active": true, "first_name": "Ada"`, `"active": false,  "first_name": "Ada"`, 1)
	if deactivated == testMembers {
		t.Fatal("fixture did not change")
	}
	if err := os.WriteFile(path, []byte(deactivated), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	wantStatus(t, r, http.StatusUnauthorized)
	if r.field("error") != "membership_inactive" {
		t.Errorf("error %q", r.field("error"))
	}
	wantStatus(t, ts.get("/v2/user/me/", named(cookies, "access_token")...), http.StatusUnauthorized)
}

func TestWorkOSRefreshRechecksMembership(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	wantStatus(t, b.signinWith(fake, adaGrant()), http.StatusOK)

	// WorkOS down: 503, and the token is not spent.
	fake.setFaultTimes(fakeMembershipsPath, fault500, 1)
	wantStatus(t, b.post("/v2/user/token_refresh/", ""), http.StatusServiceUnavailable)
	wantStatus(t, b.post("/v2/user/token_refresh/", ""), http.StatusOK)

	fake.setMembership(testAda.ID, testOrgID, "inactive")
	r := b.post("/v2/user/token_refresh/", "")
	wantStatus(t, r, http.StatusUnauthorized)
	wantStatus(t, b.get("/v2/user/me/"), http.StatusUnauthorized)
}

// TestLargestSessionCookieFits: the longest address and organization a
// members file may hold still give cookies under 4096 bytes.
func TestLargestSessionCookieFits(t *testing.T) {
	t.Parallel()
	label := strings.Repeat("d", 60)
	addr := strings.Repeat("a", 64) + "@" + label + "." + label + "." + label + ".com"
	if len(addr) > maxAddressBytes {
		t.Fatalf("fixture address is %d bytes", len(addr))
	}
	members := `{"members":[{"email":"` + addr + `","organization_id":"` + strings.Repeat("o", 64) +
		`","role":"` + strings.Repeat("r", 64) + `","active":true,"first_name":"` + strings.Repeat("f", 256) +
		`","last_name":"` + strings.Repeat("l", 256) + `"}]}`
	ts := newTestServer(t, testEnv("MEMBERS_FILE", writeMembers(t, members)))
	code := ts.requestCode(addr)
	r := ts.verify(addr, code)
	wantSignin(t, r, http.StatusOK, loginSuccessful)
	for _, c := range r.cookies() {
		if n := len(c.String()); n >= 4096 {
			t.Errorf("%s is %d bytes", c.Name, n)
		}
	}
}
