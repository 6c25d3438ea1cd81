package main

// Tests of the WorkOS AuthKit sign-in (auth.go) and the WorkOS client (workos.go), against the fake WorkOS of
// workosfake_test.go. Shared helpers (wantAuthAnswer, authJSON, authStoreSnapshot, ...) are in auth_test.go.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

// authStateCookieName is the development-mode name of the cookie that binds state to the browser that started it,
// computed here as the contract describes it, not by the server's function.
func authStateCookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return "workos_state_" + hex.EncodeToString(sum[:])[:16]
}

// authTamper returns one-change variants of a sealed value (a state or a pending cookie), none equal to it.
func authTamper(value string) map[string]string {
	flip := func(i int) string {
		b := []byte(value)
		b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
		return string(b)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(value)
	reseal := func(f func([]byte) []byte) string {
		return base64.RawURLEncoding.EncodeToString(f(slices.Clone(raw)))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, value[len(value)-1])
	out := map[string]string{
		"first char":     flip(0),
		"nonce":          flip(5),
		"middle":         flip(len(value) / 2),
		"last char":      flip(len(value) - 1),
		"truncated":      value[:len(value)-1],
		"one byte short": reseal(func(b []byte) []byte { return b[:len(b)-1] }),
		"one byte more":  reseal(func(b []byte) []byte { return append(b, 0) }),
		"nonce and tag":  reseal(func(b []byte) []byte { return b[:12+16] }),
		"too short":      reseal(func(b []byte) []byte { return b[:12+15] }),
		"bit flip tag":   reseal(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"bit flip body":  reseal(func(b []byte) []byte { b[12] ^= 0x80; return b }),
		"padded":         value + "=",
		"std base64":     base64.StdEncoding.EncodeToString(raw),
		"not base64":     "!" + value[1:],
		"doubled":        value + value,
		"huge":           strings.Repeat("A", 5000),
		"space":          value + " ",
		"line break":     value[:10] + "\n" + value[10:],
		"upper case":     strings.ToUpper(value),
		// The last character carries unused low bits: another spelling of the same bytes unless decoding is strict.
		"non-canonical": value[:len(value)-1] + string(alphabet[last^1]),
	}
	maps.DeleteFunc(out, func(_, v string) bool { return v == value })
	return out
}

func TestWorkOSSignIn(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)

	r := b.post(loginURLPath, authJSON("redirect_url", testRedirectURL, "screen_hint", "sign-up"))
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

	// One cookie, named after this state, HttpOnly, Lax, 10 minutes, showing nothing.
	set := r.cookies()
	if len(set) != 1 {
		t.Fatalf("login URL set %d cookies", len(set))
	}
	sc := set[0]
	if sc.Name != authStateCookieName(state) || sc.Value != "1" || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode ||
		sc.Path != "/" || sc.MaxAge != 600 || sc.Secure || sc.Domain != "" {
		t.Errorf("state cookie %+v", sc)
	}
	if r.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.Header().Get("Cache-Control"))
	}

	code, _ := fake.authorize(t, authURL, adaGrant())
	r = b.callback(code, state)
	wantAuthAnswer(t, r, http.StatusOK, loginSuccessful)
	if r.field("organization_id") != testOrgID {
		t.Errorf("organization_id %q", r.field("organization_id"))
	}
	wantUser := map[string]any{"id": testAda.ID, "email": testAda.Email, "first_name": "Ada", "last_name": "Lovelace"}
	if got, _ := r.json["user"].(map[string]any); !maps.Equal(got, wantUser) {
		t.Errorf("user %v", r.json["user"])
	}
	if b.jar["access_token"] == "" || b.jar["refresh_token"] == "" || len(b.stateCookieNames()) != 0 {
		t.Fatalf("cookies after sign-in: %v", b.jar)
	}
	for _, shown := range []string{r.Body.String(), fmt.Sprint(b.jar)} {
		if strings.Contains(shown, "session_01HSESSION") {
			t.Errorf("the WorkOS session id reached the browser: %s", shown)
		}
	}

	// What WorkOS received: the code, the verifier of the challenge, and the API key as client_secret.
	bodies := fake.authenticateBodies()
	if len(bodies) != 1 {
		t.Fatalf("%d authenticate calls", len(bodies))
	}
	got := bodies[0]
	if got.GrantType != "authorization_code" || got.Code != code || got.ClientID != testWorkOSClientID ||
		got.ClientSecret != testWorkOSAPIKey || pkceS256(got.CodeVerifier) != q.Get("code_challenge") {
		t.Errorf("authenticate body: grant %q, code ok %v, client %q, secret ok %v, verifier ok %v", got.GrantType,
			got.Code == code, got.ClientID, got.ClientSecret == testWorkOSAPIKey, pkceS256(got.CodeVerifier) == q.Get("code_challenge"))
	}
	if len(got.CodeVerifier) != 43 || strings.Trim(got.CodeVerifier, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Errorf("verifier %q is not 32 random bytes in base64url (RFC 7636 section 4.1)", got.CodeVerifier)
	}
	mq := fake.membershipQueries()
	if len(mq) != 1 || mq[0].Get("user_id") != testAda.ID || mq[0].Get("organization_id") != testOrgID ||
		!slices.Equal(mq[0]["statuses"], []string{"active", "inactive", "pending"}) {
		t.Errorf("membership queries %v", mq)
	}

	me := b.get("/v2/user/me/")
	wantStatus(t, me, http.StatusOK)
	if me.field("login_method") != "workos" || me.field("organization_id") != testOrgID {
		t.Errorf("me %s", me.Body)
	}

	// Logout names the WorkOS session, in the URL the SDK builds.
	out := b.post("/v2/user/logout/", "")
	wantStatus(t, out, http.StatusOK)
	sdk := usermanagement.NewClient(testWorkOSAPIKey)
	sdk.Endpoint = fake.URL
	want, _ := sdk.GetLogoutURL(usermanagement.GetLogoutURLOpts{SessionID: "session_01HSESSION0000000000000000"})
	if out.field("logout_url") != want.String() ||
		want.String() != fake.URL+"/user_management/sessions/logout?session_id=session_01HSESSION0000000000000000" {
		t.Errorf("logout_url %q, want %q", out.field("logout_url"), want)
	}
	wantStatus(t, b.get("/v2/user/me/"), http.StatusUnauthorized)
	if n := ts.metric("dashauth_signins_total", loginSuccessful); n != 1 {
		t.Errorf("LOGIN_SUCCESSFUL counted %d times", n)
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

// TestWorkOSLoginURLWritesNothing: starting sign-ins keeps nothing on the server, whoever asks and how often; the
// callback is the first to write (the spent state).
func TestWorkOSLoginURLWritesNothing(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	before := authStoreSnapshot(ts)
	var urls []string
	for i := range 5 {
		urls = append(urls, b.startSignin())
		wantStatus(t, ts.authPost(loginURLPath, authJSON("redirect_url", testRedirectURL, "screen_hint", "sign-in"), fmt.Sprintf("203.0.113.%d:1", i)), http.StatusOK)
		wantAuthError(t, ts.post(loginURLPath, authJSON("redirect_url", "https://evil.example/en/callback")), http.StatusBadRequest, "invalid_redirect_url")
	}
	if after := authStoreSnapshot(ts); !maps.Equal(after, before) {
		t.Fatalf("login_url wrote to the store: %v", after)
	}
	code, state := fake.authorize(t, urls[0], adaGrant())
	wantAuthAnswer(t, b.callback(code, state), http.StatusOK, loginSuccessful)
	sum := sha256.Sum256([]byte(state))
	if _, spent := authStoreSnapshot(ts)[ts.key("wstate", hex.EncodeToString(sum[:]))]; !spent {
		t.Fatal("the callback did not record the state spent")
	}
}

func TestWorkOSLoginURLRedirects(t *testing.T) {
	t.Parallel()
	ts, _ := newWorkOSFlow(t, "ALLOWED_REDIRECT_URLS", "http://localhost:8080/en/callback, http://127.0.0.1:8080/fr/callback")
	ask := func(redirect string) response { return ts.post(loginURLPath, authJSON("redirect_url", redirect)) }
	for _, ok := range []string{
		"http://localhost:8080/en/callback",
		"http://127.0.0.1:8080/fr/callback",
		// Development mode: localhost and 127.0.0.1 on one port are one origin, either way.
		"http://127.0.0.1:8080/en/callback",
		"http://localhost:8080/fr/callback",
	} {
		r := ask(ok)
		wantStatus(t, r, http.StatusOK)
		u, _ := url.Parse(r.field("url"))
		if u.Query().Get("redirect_uri") != ok {
			t.Errorf("%s: redirect_uri %q", ok, u.Query().Get("redirect_uri"))
		}
	}
	wantAuthError(t, ask(""), http.StatusBadRequest, "missing_redirect_url")
	for _, bad := range []string{
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
		"http://127.0.0.1.evil.com:8080/en/callback",
		"http://evil.com/en/callback",
		"http://localhost:8080@evil.com/en/callback",
		"http://user@localhost:8080/en/callback",
		"http://user:pass@localhost:8080/en/callback",
		"//localhost:8080/en/callback",
		"//evil.com/en/callback",
		"///evil.com/en/callback",
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
		"http://localhost:8080/en/callback\x00",
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
	} {
		r := ask(bad)
		if r.Code != http.StatusBadRequest || r.field("error") != "invalid_redirect_url" || len(r.cookies()) != 0 {
			t.Errorf("%q: %d %s, %d cookies", bad, r.Code, r.Body, len(r.cookies()))
		}
	}
}

// TestWorkOSLoginURLProduction: outside development mode the origins are exact, and the state cookie takes the
// __Host- or (with COOKIE_DOMAIN) __Secure- prefix, which the callback reads back.
func TestWorkOSLoginURLProduction(t *testing.T) {
	t.Parallel()
	for _, domain := range []string{"", "example.com"} {
		t.Run("COOKIE_DOMAIN="+domain, func(t *testing.T) {
			t.Parallel()
			ts, fake := newWorkOSFlow(t, append(slices.Clone(authProdEnv), "COOKIE_DOMAIN", domain)...)
			b := newBrowser(ts)
			r := b.post(loginURLPath, authJSON("redirect_url", "https://app.example.com/en/callback"))
			wantStatus(t, r, http.StatusOK)
			c := r.cookies()[0]
			state, _ := url.Parse(r.field("url"))
			prefix := map[string]string{"": "__Host-", "example.com": "__Secure-"}[domain]
			if c.Name != prefix+authStateCookieName(state.Query().Get("state")) || !c.Secure || c.Domain != domain || c.Path != "/" {
				t.Errorf("state cookie %+v", c)
			}
			wantAuthAnswer(t, b.callback(fake.authorize(t, r.field("url"), adaGrant())), http.StatusOK, loginSuccessful)
			for _, bad := range []string{"https://app.example.com/en/callback/", "http://app.example.com/en/callback",
				"https://app.example.com:443/en/callback", "https://APP.example.com/en/callback", "https://127.0.0.1/en/callback",
				"http://localhost:8080/en/callback"} {
				wantAuthError(t, ts.post(loginURLPath, authJSON("redirect_url", bad)), http.StatusBadRequest, "invalid_redirect_url")
			}
		})
	}
}

func TestWorkOSScreenHint(t *testing.T) {
	t.Parallel()
	ts, _ := newWorkOSFlow(t)
	for _, body := range []string{authJSON("redirect_url", testRedirectURL), authJSON("redirect_url", testRedirectURL, "screen_hint", "")} {
		r := ts.post(loginURLPath, body)
		wantStatus(t, r, http.StatusOK)
		if u, _ := url.Parse(r.field("url")); u.Query().Has("screen_hint") {
			t.Errorf("%s: screen_hint in %s", body, u)
		}
	}
	for _, hint := range []string{"sign-in", "sign-up"} {
		r := ts.post(loginURLPath, authJSON("redirect_url", testRedirectURL, "screen_hint", hint))
		wantStatus(t, r, http.StatusOK)
		if u, _ := url.Parse(r.field("url")); !slices.Equal(u.Query()["screen_hint"], []string{hint}) {
			t.Errorf("hint %q: url %s", hint, u)
		}
	}
	for _, hint := range []string{"login", "SIGN-IN", "sign-in ", "sign_up", "sign-in&prompt=none"} {
		wantAuthError(t, ts.post(loginURLPath, authJSON("redirect_url", testRedirectURL, "screen_hint", hint)),
			http.StatusBadRequest, "invalid_screen_hint")
	}
	wantAuthError(t, ts.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`","screen_hint":1}`), http.StatusBadRequest, "invalid_screen_hint")
	wantAuthError(t, ts.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`","prompt":"x"}`), http.StatusBadRequest, "unknown_field")
	wantAuthError(t, ts.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`","redirect_url":"`+testRedirectURL+`"}`), http.StatusBadRequest, "duplicate_field")
}

// TestWorkOSTwoTabs: two sign-ins started in one browser both finish, in either order.
func TestWorkOSTwoTabs(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts, fake := newWorkOSFlow(t, env...)
		for _, newerFirst := range []bool{true, false} {
			b := newBrowser(ts)
			code1, state1 := fake.authorize(t, b.startSignin(), adaGrant())
			ts.clock.Advance(time.Minute)
			code2, state2 := fake.authorize(t, b.startSignin(), adaGrant())
			if len(b.stateCookieNames()) != 2 {
				t.Fatalf("state cookies %v", b.stateCookieNames())
			}
			if newerFirst {
				code1, state1, code2, state2 = code2, state2, code1, state1
			}
			wantAuthAnswer(t, b.callback(code1, state1), http.StatusOK, loginSuccessful)
			if len(b.stateCookieNames()) != 1 {
				t.Errorf("newer first %v: state cookies after one: %v", newerFirst, b.stateCookieNames())
			}
			wantAuthAnswer(t, b.callback(code2, state2), http.StatusOK, loginSuccessful)
			if len(b.stateCookieNames()) != 0 {
				t.Errorf("newer first %v: state cookies left: %v", newerFirst, b.stateCookieNames())
			}
		}
	})
}

// TestWorkOSWrongState: a state the server did not issue, or issued and then altered, is LINK_INVALID, costs WorkOS
// nothing and spends nothing: the genuine sign-in still finishes.
func TestWorkOSWrongState(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	code, state := fake.authorize(t, b.startSignin(), adaGrant())

	other := newWorkOSTestServer(t, fake, "JWT_SECRET", "another-secret-0123456789abcdef0123456789")
	_, foreign := fake.authorize(t, newBrowser(other).startSignin(), adaGrant())
	wrong := map[string]string{
		"random":                   base64.RawURLEncoding.EncodeToString([]byte(randomID(45))),
		"sealed under another key": foreign,
		// A value the server sealed, for another purpose.
		"sealed as a pending choice": ts.seal("workos_pending", startedSignin{Verifier: "v", Expires: ts.now().Add(time.Minute).Unix()}),
	}
	for what, bad := range authTamper(state) {
		wrong["state, "+what] = bad
	}
	before := authStoreSnapshot(ts)
	for what, bad := range wrong {
		r := b.callback(code, bad)
		if r.Code != http.StatusBadRequest || r.field("response_type") != linkInvalid || len(r.cookies()) != 0 {
			t.Errorf("%s: %d %s, cookies %v", what, r.Code, r.Body, r.cookies())
		}
	}
	wantAuthError(t, b.callback(code, ""), http.StatusBadRequest, "missing_state")
	wantAuthError(t, b.post(callbackPath, authJSON("state", state)), http.StatusBadRequest, "missing_code")
	wantAuthError(t, b.post(callbackPath, authJSON("code", code, "state", state, "extra", "x")), http.StatusBadRequest, "unknown_field")
	if n := fake.calls(fakeAuthenticatePath); n != 0 {
		t.Fatalf("WorkOS was asked %d times", n)
	}
	for k, v := range authStoreSnapshot(ts) {
		if old, ok := before[k]; !strings.Contains(k, ":rl:workos:") && (!ok || old != v) {
			t.Errorf("refused callbacks wrote %s", k)
		}
	}
	wantAuthAnswer(t, b.callback(code, state), http.StatusOK, loginSuccessful)
}

// TestWorkOSExpiredState: a sign-in lives 10 minutes, to the second; an expired one clears its cookie.
func TestWorkOSExpiredState(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b1, b2 := newBrowser(ts), newBrowser(ts)
	code1, state1 := fake.authorize(t, b1.startSignin(), adaGrant())
	code2, state2 := fake.authorize(t, b2.startSignin(), adaGrant())
	ts.clock.Advance(10*time.Minute - time.Second)
	wantAuthAnswer(t, b1.callback(code1, state1), http.StatusOK, loginSuccessful)
	ts.clock.Advance(time.Second)
	r := b2.callback(code2, state2)
	wantAuthAnswer(t, r, http.StatusBadRequest, linkExpired)
	if c := cookieNamed(r.cookies(), authStateCookieName(state2)); c == nil || c.MaxAge >= 0 || len(b2.stateCookieNames()) != 0 {
		t.Errorf("the expired state cookie was not cleared: %v", r.cookies())
	}
	if n := fake.calls(fakeAuthenticatePath); n != 1 {
		t.Errorf("WorkOS was asked %d times", n)
	}
}

// TestWorkOSReplayedState: a state works once, even with its cookie sent again.
func TestWorkOSReplayedState(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts, fake := newWorkOSFlow(t, env...)
		b := newBrowser(ts)
		code, state := fake.authorize(t, b.startSignin(), adaGrant())
		saved := b.cookies()
		wantAuthAnswer(t, b.callback(code, state), http.StatusOK, loginSuccessful)

		r := ts.post(callbackPath, authJSON("code", code, "state", state), saved...) // a replay, or the back button
		wantAuthAnswer(t, r, http.StatusBadRequest, linkExpired)
		// The browser that finished has no state cookie left.
		wantAuthAnswer(t, b.callback(code, state), http.StatusBadRequest, linkExpired)
		if n := fake.calls(fakeAuthenticatePath); n != 1 {
			t.Errorf("WorkOS was asked %d times", n)
		}
	})
}

// TestWorkOSStateCookieMissing: a live state without its cookie is another browser's sign-in (login CSRF:
// LINK_INVALID) when this browser has a sign-in of its own, and a lost sign-in (LINK_EXPIRED) when it has none.
func TestWorkOSStateCookieMissing(t *testing.T) {
	t.Parallel()
	t.Run("another sign-in's cookie", func(t *testing.T) {
		t.Parallel()
		ts, fake := newWorkOSFlow(t)
		attacker, victim := newBrowser(ts), newBrowser(ts)
		code, state := fake.authorize(t, attacker.startSignin(), adaGrant())
		victim.startSignin()
		wantAuthAnswer(t, victim.callback(code, state), http.StatusBadRequest, linkInvalid)
		if len(victim.stateCookieNames()) != 1 || fake.calls(fakeAuthenticatePath) != 0 {
			t.Fatalf("victim's state cookies %v, WorkOS calls %d", victim.stateCookieNames(), fake.calls(fakeAuthenticatePath))
		}
		// Nothing was spent: the browser that started it finishes it.
		wantAuthAnswer(t, attacker.callback(code, state), http.StatusOK, loginSuccessful)
	})
	t.Run("a dropped cookie beside another tab's", func(t *testing.T) {
		t.Parallel()
		ts, fake := newWorkOSFlow(t)
		b := newBrowser(ts)
		code, state := fake.authorize(t, b.startSignin(), adaGrant())
		b.startSignin()
		delete(b.jar, authStateCookieName(state))
		wantAuthAnswer(t, b.callback(code, state), http.StatusBadRequest, linkInvalid)
	})
	t.Run("no state cookie at all", func(t *testing.T) {
		t.Parallel()
		ts, fake := newWorkOSFlow(t)
		code, state := fake.authorize(t, newBrowser(ts).startSignin(), adaGrant())
		b := newBrowser(ts)
		b.jar["access_token"] = "x" // other cookies do not matter, even one whose value looks like a state's name
		b.jar["note"] = "workos_state_0123456789abcdef"
		wantAuthAnswer(t, b.callback(code, state), http.StatusBadRequest, linkExpired)
	})
	t.Run("expired, its cookie dropped at Max-Age, another tab open", func(t *testing.T) {
		t.Parallel()
		ts, fake := newWorkOSFlow(t)
		b := newBrowser(ts)
		code, state := fake.authorize(t, b.startSignin(), adaGrant())
		ts.clock.Advance(5 * time.Minute)
		b.startSignin()
		ts.clock.Advance(5 * time.Minute)
		delete(b.jar, authStateCookieName(state)) // what the browser does at Max-Age
		wantAuthAnswer(t, b.callback(code, state), http.StatusBadRequest, linkExpired)
	})
}

// TestWorkOSStateKeys: a state sealed under another key does not open; one sealed just before a key rotation still
// finishes (JWT_SECRET_PREVIOUS).
func TestWorkOSStateKeys(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	fake.setMembership(testAda.ID, testOrgID, "active")
	const oldKey, newKey = "old-secret-0123456789abcdef0123456789abcdef", "new-secret-0123456789abcdef0123456789abcdef"
	before := newWorkOSTestServer(t, fake, "JWT_SECRET", oldKey)
	for _, tc := range []struct {
		name   string
		after  *testServer
		status int
		want   string
	}{
		{"rotated", newWorkOSTestServer(t, fake, "JWT_SECRET", newKey, "JWT_SECRET_PREVIOUS", oldKey), http.StatusOK, loginSuccessful},
		{"another key", newWorkOSTestServer(t, fake, "JWT_SECRET", newKey), http.StatusBadRequest, linkInvalid},
	} {
		b := newBrowser(before)
		code, state := fake.authorize(t, b.startSignin(), adaGrant())
		b.ts = tc.after
		r := b.callback(code, state)
		if r.Code != tc.status || r.field("response_type") != tc.want {
			t.Errorf("%s: %d %s", tc.name, r.Code, r.Body)
		}
	}
}

// TestWorkOSCodeLength: WorkOS's codes are short; a code over 256 bytes is refused without asking WorkOS or spending
// the sign-in.
func TestWorkOSCodeLength(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	code, state := fake.authorize(t, b.startSignin(), adaGrant())
	wantAuthAnswer(t, b.callback(strings.Repeat("c", 257), state), http.StatusBadRequest, linkInvalid)
	if n := fake.calls(fakeAuthenticatePath); n != 0 {
		t.Fatalf("an over-long code was sent to WorkOS (%d calls)", n)
	}
	wantAuthAnswer(t, b.callback(code, state), http.StatusOK, loginSuccessful)

	// 256 bytes go to WorkOS, which does not know them.
	b = newBrowser(ts)
	_, state = fake.authorize(t, b.startSignin(), adaGrant())
	wantAuthAnswer(t, b.callback(strings.Repeat("c", 256), state), http.StatusBadRequest, linkInvalid)
	if n := fake.calls(fakeAuthenticatePath); n != 2 {
		t.Errorf("WorkOS was asked %d times, want 2", n)
	}
}

// TestWorkOSRejectedExchanges: WorkOS refusing the code (a 4xx) is LINK_INVALID, with no session.
func TestWorkOSRejectedExchanges(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)

	// A code WorkOS never issued, or one already used.
	b := newBrowser(ts)
	_, state := fake.authorize(t, b.startSignin(), adaGrant())
	wantAuthAnswer(t, b.callback("01HNOTACODE0000000000000000", state), http.StatusBadRequest, linkInvalid)

	// A verifier that is not the one of the code's challenge.
	b = newBrowser(ts)
	_, state = fake.authorize(t, b.startSignin(), adaGrant())
	g := adaGrant()
	g.Challenge = pkceS256("another verifier")
	fake.addCode("code_mismatch", g)
	wantAuthAnswer(t, b.callback("code_mismatch", state), http.StatusBadRequest, linkInvalid)

	// 401: WorkOS refuses the client's credentials; the operator is told, the key is not logged.
	wrong := newWorkOSTestServer(t, fake, "WORKOS_API_KEY", "sk_test_not_the_key")
	b = newBrowser(wrong)
	wantAuthAnswer(t, b.signinWith(fake, adaGrant()), http.StatusBadRequest, linkInvalid)
	if !strings.Contains(wrong.logs.String(), "WORKOS_CLIENT_ID or WORKOS_API_KEY is wrong") || !strings.Contains(wrong.logs.String(), "WorkOS answered 401") {
		t.Error("a refused API key was not logged")
	}
	if strings.Contains(wrong.logs.String(), "sk_test_not_the_key") {
		t.Error("the API key was logged")
	}
	if n := fake.calls(fakeMembershipsPath); n != 0 {
		t.Errorf("memberships were asked for %d times after refused exchanges", n)
	}
}

// TestWorkOSMembership: the WorkOS membership in the organization AuthKit names decides; when it names none, any
// inactive membership is MEMBERSHIP_DEACTIVATED.
func TestWorkOSMembership(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		memberships map[string]string // organization -> Ada's status
		noOrg       bool
		status      int
		want        string
	}{
		{"active", map[string]string{testOrgID: "active", testOtherOrgID: "inactive"}, false, http.StatusOK, loginSuccessful},
		{"inactive", map[string]string{testOrgID: "inactive", testOtherOrgID: "active"}, false, http.StatusForbidden, membershipDeactivated},
		{"pending invitation", map[string]string{testOrgID: "pending", testOtherOrgID: "active"}, false, http.StatusForbidden, membershipNotFound},
		{"only in another organization", map[string]string{testOtherOrgID: "active"}, false, http.StatusForbidden, membershipNotFound},
		{"none", nil, false, http.StatusForbidden, membershipNotFound},
		{"no organization from AuthKit, an inactive membership", map[string]string{testOrgID: "inactive"}, true, http.StatusForbidden, membershipDeactivated},
		{"no organization from AuthKit, inactive and pending", map[string]string{testOrgID: "pending", testOtherOrgID: "inactive"}, true, http.StatusForbidden, membershipDeactivated},
		{"no organization from AuthKit, pending", map[string]string{testOrgID: "pending"}, true, http.StatusForbidden, membershipNotFound},
		{"no organization from AuthKit, none", nil, true, http.StatusForbidden, membershipNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts, fake := newWorkOSFlow(t)
			fake.setMembership(testAda.ID, testOrgID, "")
			for org, status := range tc.memberships {
				fake.setMembership(testAda.ID, org, status)
			}
			fake.setMembership("user_01HSOMEONEELSE000000000000", testOrgID, "active") // another person's does not count
			g := adaGrant()
			if tc.noOrg {
				g.OrganizationID = ""
			}
			b := newBrowser(ts)
			r := b.signinWith(fake, g)
			wantAuthAnswer(t, r, tc.status, tc.want)
			if tc.want != loginSuccessful && (b.jar["access_token"] != "" || b.jar["refresh_token"] != "") {
				t.Fatal("session cookies without a session")
			}
			if tc.want == loginSuccessful && r.field("organization_id") != testOrgID {
				t.Errorf("organization_id %q", r.field("organization_id"))
			}
			if mq := fake.membershipQueries(); len(mq) != 1 || mq[0].Get("organization_id") != map[bool]string{false: testOrgID}[tc.noOrg] {
				t.Errorf("membership queries %v", mq)
			}
			if n := ts.metric("dashauth_signins_total", tc.want); n != 1 {
				t.Errorf("%s counted %d times", tc.want, n)
			}
		})
	}
}

// TestWorkOSAuthErrors: a step AuthKit should have done first is 403 with its name; other refusals LINK_INVALID.
func TestWorkOSAuthErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    string
		status int
		reason string // {"error": reason}, or "" for LINK_INVALID
	}{
		{"invalid_grant", http.StatusBadRequest, ""},
		{"access_denied", http.StatusBadRequest, ""},
		// A step AuthKit should have done before redirecting back is a refused exchange too.
		{"email_verification_required", http.StatusBadRequest, ""},
		{"mfa_enrollment", http.StatusBadRequest, ""},
		{"mfa_challenge", http.StatusBadRequest, ""},
		{"sso_required", http.StatusBadRequest, ""},
		{"organization_authentication_methods_required", http.StatusBadRequest, ""},
	} {
		t.Run(tc.err, func(t *testing.T) {
			t.Parallel()
			ts, fake := newWorkOSFlow(t)
			g := adaGrant()
			g.Err = tc.err
			b := newBrowser(ts)
			r := b.signinWith(fake, g)
			if tc.reason == "" {
				wantAuthAnswer(t, r, tc.status, linkInvalid)
			} else {
				wantAuthError(t, r, tc.status, tc.reason)
				if n := ts.metric("dashauth_workos_errors_total", tc.reason); n != 1 {
					t.Errorf("%s counted %d times", tc.reason, n)
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

// authOrgChoice starts a sign-in in a new browser that WorkOS answers with organization_selection_required.
func authOrgChoice(t *testing.T, ts *testServer, fake *fakeWorkOS, orgs ...fakeOrg) (*browser, response) {
	t.Helper()
	g := adaGrant()
	g.Err = "organization_selection_required"
	g.Organizations = orgs
	b := newBrowser(ts)
	r := b.signinWith(fake, g)
	return b, r
}

func TestWorkOSOrganizationSelection(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts, fake := newWorkOSFlow(t, env...)
		b, r := authOrgChoice(t, ts, fake, fakeOrg{testOrgID, "Acme"}, fakeOrg{testOtherOrgID, "Other <Corp>"})
		wantAuthAnswer(t, r, http.StatusOK, organizationSelectionRequired)
		want := []any{map[string]any{"id": testOrgID, "name": "Acme"}, map[string]any{"id": testOtherOrgID, "name": "Other <Corp>"}}
		if got, _ := r.json["organizations"].([]any); !slices.EqualFunc(got, want, func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
			t.Errorf("organizations %v, want %v", r.json["organizations"], want)
		}
		// The pending cookie is set, the state cookie cleared, no session.
		pending := cookieNamed(r.cookies(), "workos_pending")
		if pending == nil || pending.MaxAge != 600 || !pending.HttpOnly || pending.SameSite != http.SameSiteLaxMode || len(pending.String()) >= 4096 {
			t.Fatalf("pending cookie %+v", pending)
		}
		if b.jar["access_token"] != "" || len(b.stateCookieNames()) != 0 {
			t.Fatalf("jar %v", b.jar)
		}
		if n := ts.metric("dashauth_signins_total", organizationSelectionRequired); n != 1 {
			t.Errorf("ORGANIZATION_SELECTION_REQUIRED counted %d times", n)
		}

		// An organization not offered: refused, and the choice stays open.
		for _, org := range []string{"org_01HEVIL00000000000000000000", testOrgID + " ", strings.ToLower(testOrgID)} {
			r := b.post(selectOrgPath, authJSON("organization_id", org))
			wantAuthAnswer(t, r, http.StatusBadRequest, linkInvalid)
			if len(r.cookies()) != 0 || b.jar["workos_pending"] == "" {
				t.Fatalf("%s: the pending cookie was touched: %v", org, r.cookies())
			}
		}
		wantAuthError(t, b.post(selectOrgPath, `{}`), http.StatusBadRequest, "missing_organization_id")
		if n := fake.calls(fakeAuthenticatePath); n != 1 {
			t.Fatalf("WorkOS was asked %d times", n)
		}
		saved := b.cookies()

		r = b.post(selectOrgPath, authJSON("organization_id", testOrgID))
		wantAuthAnswer(t, r, http.StatusOK, loginSuccessful)
		if r.field("organization_id") != testOrgID || b.jar["workos_pending"] != "" {
			t.Errorf("organization_id %q; pending cookie left: %v", r.field("organization_id"), b.jar["workos_pending"] != "")
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
		wantAuthAnswer(t, ts.post(selectOrgPath, authJSON("organization_id", testOrgID), saved...), http.StatusBadRequest, linkExpired)
		if n := fake.calls(fakeAuthenticatePath); n != 2 {
			t.Errorf("WorkOS was asked %d times", n)
		}
	})
}

func TestWorkOSPendingCookie(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	body := authJSON("organization_id", testOrgID)

	wantAuthAnswer(t, newBrowser(ts).post(selectOrgPath, body), http.StatusBadRequest, linkExpired) // none

	b, _ := authOrgChoice(t, ts, fake, fakeOrg{testOrgID, "Acme"})
	value := b.jar["workos_pending"]
	for what, bad := range authTamper(value) {
		if strings.Contains(bad, "\n") {
			continue // a cookie cannot carry it: Go's client drops the byte, and sends the genuine value
		}
		r := ts.post(selectOrgPath, body, &http.Cookie{Name: "workos_pending", Value: bad})
		if r.Code != http.StatusBadRequest || r.field("response_type") != linkInvalid {
			t.Errorf("%s: %d %s", what, r.Code, r.Body)
		}
	}
	// A value sealed for a state does not open as a pending choice.
	stateValue := ts.seal("workos_state", pendingChoice{Token: "pat_x", UserID: testAda.ID, Orgs: []string{testOrgID}, Expires: ts.now().Add(time.Minute).Unix()})
	wantAuthAnswer(t, ts.post(selectOrgPath, body, &http.Cookie{Name: "workos_pending", Value: stateValue}), http.StatusBadRequest, linkInvalid)

	// Ten minutes to choose, to the second.
	ts.clock.Advance(10*time.Minute - time.Second)
	saved := b.cookies()
	wantAuthAnswer(t, b.post(selectOrgPath, body), http.StatusOK, loginSuccessful)
	b2, _ := authOrgChoice(t, ts, fake, fakeOrg{testOrgID, "Acme"})
	ts.clock.Advance(10 * time.Minute)
	r := b2.post(selectOrgPath, body)
	wantAuthAnswer(t, r, http.StatusBadRequest, linkExpired)
	if c := cookieNamed(r.cookies(), "workos_pending"); c == nil || c.MaxAge >= 0 || b2.jar["workos_pending"] != "" {
		t.Error("the expired pending cookie was not cleared")
	}
	// The spent one, now expired too.
	wantAuthAnswer(t, ts.post(selectOrgPath, body, saved...), http.StatusBadRequest, linkExpired)
	if n := fake.calls(fakeAuthenticatePath); n != 3 {
		t.Errorf("WorkOS was asked %d times, want 3", n)
	}
}

func TestWorkOSOrganizationSelectionMembership(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	fake.setMembership(testAda.ID, testOtherOrgID, "inactive")
	orgs := []fakeOrg{{testOrgID, "Acme"}, {testOtherOrgID, "Other"}}
	b, r := authOrgChoice(t, ts, fake, orgs...)
	wantAuthAnswer(t, r, http.StatusOK, organizationSelectionRequired)
	wantAuthAnswer(t, b.post(selectOrgPath, authJSON("organization_id", testOtherOrgID)), http.StatusForbidden, membershipDeactivated)

	// WorkOS answering the selection for someone else is not believed.
	g := adaGrant()
	g.Err = "organization_selection_required"
	g.Organizations = orgs
	g.SelectedUser = &fakeUser{ID: "user_01HEVE00000000000000000000", Email: "eve@example.com"}
	fake.setMembership(g.SelectedUser.ID, testOrgID, "active")
	b = newBrowser(ts)
	wantAuthAnswer(t, b.signinWith(fake, g), http.StatusOK, organizationSelectionRequired)
	wantAuthError(t, b.post(selectOrgPath, authJSON("organization_id", testOrgID)), http.StatusServiceUnavailable, "workos_unavailable")
	if b.jar["access_token"] != "" {
		t.Error("a session for the wrong user")
	}
}

// TestWorkOSOrganizationSelectionUnusable: at most 32 organizations are offered (the pending cookie must fit), and a
// choice WorkOS offers in an unusable shape is WorkOS's fault (503).
func TestWorkOSOrganizationSelectionUnusable(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	many := make([]fakeOrg, 40)
	for i := range many {
		many[i] = fakeOrg{fmt.Sprintf("org_%060d", i), strings.Repeat("n", 256)}
	}
	_, r := authOrgChoice(t, ts, fake, many...)
	wantAuthAnswer(t, r, http.StatusOK, organizationSelectionRequired)
	if n := len(r.json["organizations"].([]any)); n != 32 {
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
		"long id":     {{"org_" + strings.Repeat("X", 61), "Long"}},
		"long name":   {{testOrgID, strings.Repeat("n", 257)}},
		"one bad one": {{testOrgID, "Acme"}, {"", "Nameless"}},
	} {
		_, r := authOrgChoice(t, ts, fake, orgs...)
		if r.Code != http.StatusServiceUnavailable || r.field("error") != "workos_unavailable" || cookieNamed(r.cookies(), "workos_pending") != nil {
			t.Errorf("%s: %d %s, cookies %v", name, r.Code, r.Body, r.cookies())
		}
	}
}

// TestPendingCookieWorstCase: the largest pending choice offerOrganizations lets through (a 256-byte token, a 64-byte
// user id, 32 organization ids of 64 bytes) still fits a cookie, under the longest name and with a Domain.
func TestPendingCookieWorstCase(t *testing.T) {
	t.Parallel()
	ts, _ := newWorkOSFlow(t, append(slices.Clone(authProdEnv), "COOKIE_DOMAIN", "dashboard.example.com")...)
	pc := pendingChoice{Token: strings.Repeat("t", 256), UserID: strings.Repeat("u", 64), Expires: 1 << 40}
	for i := range 32 {
		pc.Orgs = append(pc.Orgs, fmt.Sprintf("org_%060d", i))
	}
	rec := httptest.NewRecorder()
	ts.setCookie(rec, ts.cookieName("workos_pending"), ts.seal("workos_pending", pc), signinTTL)
	if n := len(rec.Header().Get("Set-Cookie")); n >= 4096 {
		t.Fatalf("worst-case pending cookie is %d bytes", n)
	}
}

// authFront stands in front of the fake WorkOS: it answers a status the fake cannot play (408, 429, 502) on a path
// when told, and passes everything else on.
type authFront struct {
	*httptest.Server
	fake   *fakeWorkOS
	mu     sync.Mutex
	status map[string]int
	calls  map[string]int
}

func newAuthFront(t *testing.T, fake *fakeWorkOS) *authFront {
	f := &authFront{fake: fake, status: map[string]int{}, calls: map[string]int{}}
	target, _ := url.Parse(fake.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		status := f.status[r.URL.Path]
		f.calls[r.URL.Path]++
		f.mu.Unlock()
		if status == 0 {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", "1")
		fakeJSON(w, status, map[string]any{"message": http.StatusText(status)})
	}))
	t.Cleanup(f.Server.Close)
	return f
}

func (f *authFront) setStatus(path string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[path] = status
}

func (f *authFront) callsTo(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[path]
}

// authorize is fake.authorize for a URL the service built with the front's address.
func (f *authFront) authorize(t *testing.T, authURL string, g fakeGrant) (string, string) {
	t.Helper()
	return f.fake.authorize(t, strings.Replace(authURL, f.URL, f.fake.URL, 1), g)
}

// authUnavailable is a WorkOS fault: one the fake plays, or a status the front answers.
type authUnavailable struct {
	name   string
	fault  fakeFault
	status int
}

var authUnavailableCases = []authUnavailable{
	{"500", fault500, 0}, {"invalid JSON", faultInvalidJSON, 0}, {"huge body", faultHugeBody, 0},
	{"huge error body", faultHugeErrorBody, 0}, {"timeout", faultStall, 0}, {"timeout in the body", faultStallBody, 0},
	{"redirect", faultRedirect, 0}, {"429", faultNone, http.StatusTooManyRequests},
	{"408", faultNone, http.StatusRequestTimeout}, {"502", faultNone, http.StatusBadGateway},
}

// newAuthFrontedWorkOS is a WorkOS-mode server whose WorkOS calls pass through a front. For a stall c, the client's
// timeout is shortened from 10 s to 5 s: short enough to keep the test quick, long enough for the calls before the
// stalled one on a busy machine.
func newAuthFrontedWorkOS(t *testing.T, c authUnavailable) (*testServer, *authFront) {
	fake := newFakeWorkOS(t)
	fake.setMembership(testAda.ID, testOrgID, "active")
	front := newAuthFront(t, fake)
	ts := newWorkOSTestServer(t, fake, "WORKOS_API_BASE_URL", front.URL)
	if c.fault == faultStall || c.fault == faultStallBody {
		ts.workos.HTTPClient.Timeout = 5 * time.Second
	}
	return ts, front
}

// fail makes every later call to path fail as c says.
func (f *authFront) fail(path string, c authUnavailable) {
	if c.status != 0 {
		f.setStatus(path, c.status)
	} else {
		f.fake.setFault(path, c.fault)
	}
}

// wantAuthUnavailable checks a 503 workos_unavailable that started no session, counted, and no redirect followed.
func wantAuthUnavailable(t *testing.T, ts *testServer, front *authFront, path string, b *browser, r response) {
	t.Helper()
	wantAuthError(t, r, http.StatusServiceUnavailable, "workos_unavailable")
	if b.jar["access_token"] != "" || b.jar["refresh_token"] != "" {
		t.Error("session cookies set")
	}
	if n := front.callsTo(path); n != 1 {
		t.Errorf("%d calls to %s", n, path)
	}
	if n := ts.metric("dashauth_workos_errors_total", "workos_unavailable"); n != 1 {
		t.Errorf("workos_unavailable counted %d times", n)
	}
	if n := front.callsTo(fakeRedirectPath); n != 0 {
		t.Error("a redirect from WorkOS was followed")
	}
}

// TestWorkOSUnavailable: WorkOS failing at the code exchange or the membership check, in any way, is 503 and no
// session.
func TestWorkOSUnavailable(t *testing.T) {
	t.Parallel()
	for _, path := range []string{fakeAuthenticatePath, fakeMembershipsPath} {
		for _, c := range authUnavailableCases {
			t.Run(path+" "+c.name, func(t *testing.T) {
				t.Parallel()
				ts, front := newAuthFrontedWorkOS(t, c)
				front.fail(path, c)
				b := newBrowser(ts)
				r := b.callback(front.authorize(t, b.startSignin(), adaGrant()))
				wantAuthUnavailable(t, ts, front, path, b, r)
			})
		}
	}
}

// TestWorkOSSelectOrganizationUnavailable: the same at the organization choice.
func TestWorkOSSelectOrganizationUnavailable(t *testing.T) {
	t.Parallel()
	for _, c := range authUnavailableCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ts, front := newAuthFrontedWorkOS(t, c)
			g := adaGrant()
			g.Err = "organization_selection_required"
			g.Organizations = []fakeOrg{{testOrgID, "Acme"}}
			b := newBrowser(ts)
			wantAuthAnswer(t, b.callback(front.authorize(t, b.startSignin(), g)), http.StatusOK, organizationSelectionRequired)
			front.fail(fakeAuthenticatePath, c)
			r := b.post(selectOrgPath, authJSON("organization_id", testOrgID))
			wantAuthError(t, r, http.StatusServiceUnavailable, "workos_unavailable")
			if b.jar["access_token"] != "" || front.callsTo(fakeRedirectPath) != 0 {
				t.Errorf("jar %v; redirect followed %d times", b.jar, front.callsTo(fakeRedirectPath))
			}
		})
	}
}

func TestWorkOSUnreachable(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	b := newBrowser(ts)
	authURL := b.startSignin()
	code, state := fake.authorize(t, authURL, adaGrant())
	fake.Close() // nothing listens there any more
	wantAuthError(t, b.callback(code, state), http.StatusServiceUnavailable, "workos_unavailable")
}

// authFailingKeys fails every store call on a key containing part, as a Redis that stopped answering would.
type authFailingKeys struct {
	store
	part string
}

var errAuthStoreDown = errors.New("store down (test)")

func (f authFailingKeys) Get(ctx context.Context, key string) (string, bool, error) {
	if strings.Contains(key, f.part) {
		return "", false, errAuthStoreDown
	}
	return f.store.Get(ctx, key)
}

func (f authFailingKeys) Put(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	if strings.Contains(key, f.part) {
		return false, errAuthStoreDown
	}
	return f.store.Put(ctx, key, old, value, ttl)
}

// TestWorkOSStoreDown: a state that cannot be recorded spent is not exchanged: 503, and WorkOS is not asked.
func TestWorkOSStoreDown(t *testing.T) {
	t.Parallel()
	for _, part := range []string{":wstate:", ":rl:workos:"} {
		ts, fake := newWorkOSFlow(t)
		b := newBrowser(ts)
		code, state := fake.authorize(t, b.startSignin(), adaGrant())
		ts.store = authFailingKeys{ts.store, part}
		wantAuthError(t, b.callback(code, state), http.StatusServiceUnavailable, "state_unavailable")
		if fake.calls(fakeAuthenticatePath) != 0 {
			t.Errorf("%s failing: the code was exchanged", part)
		}
	}
}

// TestWorkOSUnusableAnswers: an answer that would put unbounded or unsafe values into a session or a URL is WorkOS's
// fault (503).
func TestWorkOSUnusableAnswers(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 300)
	for name, change := range map[string]func(*fakeGrant){
		"no user id":          func(g *fakeGrant) { g.User.ID = "" },
		"long user id":        func(g *fakeGrant) { g.User.ID = "user_" + long },
		"long email":          func(g *fakeGrant) { g.User.Email = long + "@example.com" },
		"long first name":     func(g *fakeGrant) { g.User.FirstName = long },
		"long last name":      func(g *fakeGrant) { g.User.LastName = long },
		"long organization":   func(g *fakeGrant) { g.OrganizationID = "org_" + long },
		"access token no sid": func(g *fakeGrant) { g.AccessToken = authTokenWith(`{"sub":"user_1"}`) },
		"access token opaque": func(g *fakeGrant) { g.AccessToken = "opaque-token" },
		"bad sid":             func(g *fakeGrant) { g.SessionID = "session_1&return_to=https://evil.com" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ts, fake := newWorkOSFlow(t)
			g := adaGrant()
			change(&g)
			fake.setMembership(g.User.ID, g.OrganizationID, "active")
			b := newBrowser(ts)
			wantAuthError(t, b.signinWith(fake, g), http.StatusServiceUnavailable, "workos_unavailable")
			if b.jar["access_token"] != "" {
				t.Error("a session from an unusable answer")
			}
		})
	}
}

// TestWorkOSCallbackClientLimit: one client gets 60 callbacks and organization choices together per 15 minutes.
func TestWorkOSCallbackClientLimit(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts, _ := newWorkOSFlow(t, env...)
		callback := func(remote string) response {
			return ts.authPost(callbackPath, authJSON("code", "c", "state", "not-a-state"), remote)
		}
		choose := func(remote string) response {
			return ts.authPost(selectOrgPath, authJSON("organization_id", testOrgID), remote)
		}
		for range 30 {
			wantAuthAnswer(t, callback("203.0.113.9:1"), http.StatusBadRequest, linkInvalid)
			wantAuthAnswer(t, choose("203.0.113.9:2"), http.StatusBadRequest, linkExpired)
		}
		wantRateLimited(t, callback("203.0.113.9:3"), "900")
		wantRateLimited(t, choose("203.0.113.9:4"), "900")
		wantAuthAnswer(t, callback("203.0.113.10:1"), http.StatusBadRequest, linkInvalid)
		// A body is read before the limit, and the window slides.
		wantAuthError(t, ts.authPost(callbackPath, authJSON("state", "s"), "203.0.113.9:6"), http.StatusBadRequest, "missing_code")
		ts.clock.Advance(15 * time.Minute)
		wantAuthAnswer(t, choose("203.0.113.9:5"), http.StatusBadRequest, linkExpired)
		if n := ts.metric("dashauth_rate_limited_total", ""); n != 2 {
			t.Errorf("dashauth_rate_limited_total = %d", n)
		}
	})
}

// TestWorkOSRefreshRechecksMembership: every refresh asks WorkOS again. WorkOS down answers 503 and spends nothing; a
// deactivated membership ends the session.
func TestWorkOSRefreshRechecksMembershipAtWorkOS(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	wantAuthAnswer(t, b.signinWith(fake, adaGrant()), http.StatusOK, loginSuccessful)

	fake.setFaultTimes(fakeMembershipsPath, fault500, 1)
	wantAuthError(t, b.post("/v2/user/token_refresh/", ""), http.StatusServiceUnavailable, "membership_check_unavailable")
	wantStatus(t, b.get("/v2/user/me/"), http.StatusOK)
	ts.clock.Advance(time.Second)
	wantStatus(t, b.post("/v2/user/token_refresh/", ""), http.StatusOK)
	wantStatus(t, b.get("/v2/user/me/"), http.StatusOK)

	fake.setMembership(testAda.ID, testOrgID, "inactive")
	saved := b.cookies()
	r := b.post("/v2/user/token_refresh/", "")
	wantStatus(t, r, http.StatusUnauthorized)
	if r.field("error") != "membership_inactive" || b.jar["access_token"] != "" || b.jar["refresh_token"] != "" {
		t.Fatalf("refresh answered %s and left %v", r.Body, b.jar)
	}
	// The session is revoked, not only its cookies cleared.
	wantStatus(t, ts.get("/v2/user/me/", saved...), http.StatusUnauthorized)
	fake.setMembership(testAda.ID, testOrgID, "active")
	wantStatus(t, ts.post("/v2/user/token_refresh/", "", saved...), http.StatusUnauthorized)
	if mq := fake.membershipQueries(); mq[len(mq)-1].Get("organization_id") != testOrgID {
		t.Errorf("refresh asked about %v", mq[len(mq)-1])
	}
}

// TestWorkOSCrossSiteRefused: a POST from another site starts, finishes or chooses nothing (login CSRF).
func TestWorkOSCrossSiteRefused(t *testing.T) {
	t.Parallel()
	ts, fake := newWorkOSFlow(t)
	b := newBrowser(ts)
	code, state := fake.authorize(t, b.startSignin(), adaGrant())
	before := authStoreSnapshot(ts)
	for _, origin := range []string{"https://evil.example", "null", "http://localhost:8081", "https://localhost:8080"} {
		for path, body := range map[string]string{
			loginURLPath:  authJSON("redirect_url", testRedirectURL),
			callbackPath:  authJSON("code", code, "state", state),
			selectOrgPath: authJSON("organization_id", testOrgID),
		} {
			r := ts.do(request{method: "POST", path: path, body: body, cookies: b.cookies(), header: map[string]string{"Origin": origin}})
			if r.Code != http.StatusForbidden || r.field("error") != "origin_not_allowed" || len(r.cookies()) != 0 {
				t.Errorf("%s from %s: %d %s, cookies %v", path, origin, r.Code, r.Body, r.cookies())
			}
		}
	}
	if fake.calls(fakeAuthenticatePath) != 0 || !maps.Equal(authStoreSnapshot(ts), before) {
		t.Fatal("a cross-site request reached WorkOS or the store")
	}
	// The dashboard's own origin, either spelling in development mode.
	for _, origin := range []string{"http://localhost:8080", "http://127.0.0.1:8080"} {
		r := ts.do(request{method: "POST", path: loginURLPath, body: authJSON("redirect_url", testRedirectURL), header: map[string]string{"Origin": origin}})
		wantStatus(t, r, http.StatusOK)
	}
	r := ts.do(request{method: "POST", path: callbackPath, body: authJSON("code", code, "state", state), cookies: b.cookies(),
		header: map[string]string{"Origin": "http://localhost:8080"}})
	wantAuthAnswer(t, r, http.StatusOK, loginSuccessful)
}

// authTokenWith is a JWT-shaped token with the given payload.
func authTokenWith(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString([]byte("sig"))
}

func TestWorkOSSessionID(t *testing.T) {
	t.Parallel()
	enc := base64.RawURLEncoding
	valid := authTokenWith(`{"sid":"session_01HSESSION0000000000000000","sub":"user_1"}`)
	for token, want := range map[string]string{
		valid: "session_01HSESSION0000000000000000",
		fakeAccessToken("user_1", "org_1", "session_01H2"):             "session_01H2",
		authTokenWith(`{"sid":"` + strings.Repeat("a", 128) + `"}`):    strings.Repeat("a", 128),
		authTokenWith(`{"sid":"s-_9"}`):                                "s-_9",
		authTokenWith(` {"sub":"u", "sid" : "s1", "x":{"y":[1,2]} } `): "s1",
		authTokenWith(`{"sid":"\u0073ession_1"}`):                      "session_1",
	} {
		if sid, err := workosSessionID(token); err != nil || sid != want {
			t.Errorf("workosSessionID(%q) = %q, %v; want %q", token, sid, err, want)
		}
	}
	parts := strings.Split(valid, ".")
	h, p, s := parts[0], parts[1], parts[2]
	payload := func(json string) string { return h + "." + enc.EncodeToString([]byte(json)) + "." + s }
	for name, token := range map[string]string{
		"empty":            "",
		"two parts":        h + "." + p,
		"four parts":       valid + ".x",
		"empty header":     "." + p + "." + s,
		"empty payload":    h + ".." + s,
		"empty signature":  h + "." + p + ".",
		"padded payload":   h + "." + p + "=." + s,
		"std base64":       h + "." + base64.StdEncoding.EncodeToString([]byte(`{"sid":"a+b/c?"}`)) + "." + s,
		"not JSON":         payload(`sid=session_1`),
		"JSON array":       payload(`["sid"]`),
		"null":             payload(`null`),
		"sid a number":     payload(`{"sid":1}`),
		"sid null":         payload(`{"sid":null}`),
		"no sid":           payload(`{"sub":"user_1"}`),
		"empty sid":        payload(`{"sid":""}`),
		"sid with &":       payload(`{"sid":"a&return_to=x"}`),
		"sid with space":   payload(`{"sid":"a b"}`),
		"sid with newline": payload(`{"sid":"a\nb"}`),
		"sid with slash":   payload(`{"sid":"../x"}`),
		"sid non-ASCII":    payload(`{"sid":"séssion"}`),
		"sid too long":     payload(`{"sid":"` + strings.Repeat("a", 129) + `"}`),
		"token too long":   payload(`{"sid":"s","x":"` + strings.Repeat("a", 16<<10) + `"}`),
		"trailing JSON":    payload(`{"sid":"s"}{}`),
		"CR in payload":    h + "." + p[:4] + "\r" + p[4:] + "." + s,
		"LF after payload": h + "." + p + "\n." + s,
	} {
		if sid, err := workosSessionID(token); err == nil || !errors.Is(err, errWorkOSAnswer) {
			t.Errorf("%s: sid %q, err %v", name, sid, err)
		}
	}
	// The last base64 character of a payload may carry spare bits; strict decoding refuses them set.
	noncanonical := authTokenWith(`{"sid":"s1"}`)
	if parts := strings.Split(noncanonical, "."); len(parts[1])%4 != 0 {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, parts[1][len(parts[1])-1])
		parts[1] = parts[1][:len(parts[1])-1] + string(alphabet[i|1])
		if sid, err := workosSessionID(strings.Join(parts, ".")); err == nil && strings.Join(parts, ".") != noncanonical {
			t.Errorf("a non-canonical payload was accepted: %q", sid)
		}
	}
}

// FuzzWorkOSSessionID: no token panics the reader, and an accepted session id is a plain id that a URL carries as it
// is (it goes into the logout URL).
func FuzzWorkOSSessionID(f *testing.F) {
	f.Add(authTokenWith(`{"sid":"session_01HSESSION0000000000000000"}`))
	f.Add(fakeAccessToken("user_1", "org_1", "session_1"))
	f.Add(authTokenWith(`{"sid":"a&b"}`))
	f.Add("a.b.c")
	f.Add("..")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		sid, err := workosSessionID(token)
		if err != nil {
			if sid != "" || !errors.Is(err, errWorkOSAnswer) {
				t.Fatalf("refused with sid %q, err %v", sid, err)
			}
			return
		}
		if sid == "" || len(sid) > 128 || strings.Trim(sid, idBytes) != "" || url.QueryEscape(sid) != sid {
			t.Fatalf("accepted sid %q that is not a plain id", sid)
		}
		if len(token) > 16<<10 || strings.Count(token, ".") != 2 {
			t.Fatalf("accepted a token of %d bytes, %d dots", len(token), strings.Count(token, "."))
		}
	})
}
