package main

// Tests of email+code sign-in, its rate limits, the members file and clientIP (auth.go). The WorkOS sign-in is in
// workos_test.go; the helpers here serve both.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	authLoginCodePath = "/v2/user/login_code/"
	authVerifyPath    = "/v2/user/login_code/verify/"
)

// authMembers is the members file of the email+code tests: Ada active, Bob (written in mixed case) inactive.
const authMembers = `{"members": [
 {"email": "ada@example.com", "organization_id": "org_acme", "role": "admin", "active": true, "first_name": "Ada", "last_name": "Lovelace"},
 {"email": "Bob@Example.com", "organization_id": "org_acme", "role": "member", "active": false}
]}`

// authProdEnv turns development mode off, with the SMTP settings production then requires.
var authProdEnv = []string{"DASHBOARD_URL", "https://app.example.com", "API_URL", "https://api.example.com",
	"SMTP_HOST", "smtp.example.com", "SMTP_FROM", "noreply@example.com"}

// newAuthCodeServer is an email+code server with authMembers; extra are more environment name, value pairs.
func newAuthCodeServer(t *testing.T, extra ...string) *testServer {
	t.Helper()
	return newTestServer(t, testEnv(append([]string{"MEMBERS_FILE", writeMembers(t, authMembers)}, extra...)...))
}

// authEachStore runs a test with the memory store and with Redis; env is the environment that chooses the store.
// Redis expires keys by its own clock, not the test's, so a test run this way must not rely on a key expiring (the
// limits' windows slide by the timestamps they hold, which follow the test clock).
func authEachStore(t *testing.T, run func(t *testing.T, env []string)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		run(t, nil)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"REDIS_URL", startRedis(t).URL()})
	})
}

// authPost posts body to path from the client address remote ("" for the default one).
func (ts *testServer) authPost(path, body, remote string) response {
	ts.t.Helper()
	return ts.do(request{method: "POST", path: path, body: body, remote: remote})
}

func (ts *testServer) authAsk(addr string) response {
	ts.t.Helper()
	return ts.authPost(authLoginCodePath, authJSON("email", addr), "")
}

func (ts *testServer) authVerify(addr, code string) response {
	ts.t.Helper()
	return ts.authPost(authVerifyPath, authJSON("email", addr, "code", code), "")
}

// authJSON is a JSON object of the given name, value pairs, in order.
func authJSON(pairs ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(pairs[i])
		v, _ := json.Marshal(pairs[i+1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.String()
}

// authOtherCode is a well-formed code that is not code.
func authOtherCode(code string) string {
	n, err := strconv.Atoi(code)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("%06d", (n+1)%1_000_000)
}

// wantAuthAnswer checks a sign-in answer: status, response_type, and cookies. LOGIN_SUCCESSFUL sets the two session
// cookies; ORGANIZATION_SELECTION_REQUIRED the pending one only; any other answer sets none (it may clear a spent
// sign-in's cookie).
func wantAuthAnswer(t *testing.T, r response, status int, responseType string) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.field("response_type"); got != responseType {
		t.Fatalf("response_type %q, want %q; body %s", got, responseType, r.Body.String())
	}
	switch responseType {
	case loginSuccessful:
		if authCookieSet(r, "access_token") == nil || authCookieSet(r, "refresh_token") == nil {
			t.Fatalf("LOGIN_SUCCESSFUL without both session cookies: %v", r.cookies())
		}
	case organizationSelectionRequired:
		for _, c := range r.cookies() {
			if c.Value != "" && c.MaxAge > 0 && !strings.HasSuffix(c.Name, "workos_pending") {
				t.Fatalf("%s set cookie %s", responseType, c.Name)
			}
		}
	default:
		wantAuthNoCookieSet(t, r)
	}
}

// wantAuthError checks an error answer {"error": reason}, and that it set no cookie.
func wantAuthError(t *testing.T, r response, status int, reason string) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.field("error"); got != reason {
		t.Fatalf("error %q, want %q; body %s", got, reason, r.Body.String())
	}
	wantAuthNoCookieSet(t, r)
}

// wantAuthNoCookieSet fails if the answer gave a cookie a value; clearing a sign-in's state or pending cookie is
// allowed.
func wantAuthNoCookieSet(t *testing.T, r response) {
	t.Helper()
	for _, c := range r.cookies() {
		if c.Value != "" || c.MaxAge >= 0 {
			t.Fatalf("answer %d set cookie %s", r.Code, c.Name)
		}
		if !strings.Contains(c.Name, "workos_state_") && !strings.HasSuffix(c.Name, "workos_pending") {
			t.Fatalf("answer %d cleared cookie %s", r.Code, c.Name)
		}
	}
}

// authCookieSet is the cookie of that name (dev mode or prefixed) the answer set with a value, or nil.
func authCookieSet(r response, base string) *http.Cookie {
	for _, c := range r.cookies() {
		if (c.Name == base || c.Name == "__Host-"+base || c.Name == "__Secure-"+base) && c.Value != "" && c.MaxAge > 0 {
			return c
		}
	}
	return nil
}

var authSixDigits = regexp.MustCompile(`^[0-9]{6}$`)

func TestEmailCodeSignIn(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts := newAuthCodeServer(t, env...)
		start := ts.clock.Now()
		code := ts.requestCode("ada@example.com")
		m := ts.mails.sent()[0]
		if m.To != "ada@example.com" || !authSixDigits.MatchString(code) || !m.Expires.Equal(start.Add(10*time.Minute)) ||
			m.Link != "http://localhost:8080" || m.ID != "" {
			t.Fatalf("mail %+v", m)
		}

		r := ts.authVerify("ADA@Example.com", code) // addresses compare case-insensitively
		wantAuthAnswer(t, r, http.StatusOK, loginSuccessful)
		if r.field("organization_id") != "org_acme" || r.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("organization_id %q, Cache-Control %q", r.field("organization_id"), r.Header().Get("Cache-Control"))
		}
		u, _ := r.json["user"].(map[string]any)
		id, _ := u["id"].(string)
		want := map[string]any{"id": id, "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}
		if !maps.Equal(u, want) || !strings.HasPrefix(id, "user_") || strings.Contains(id, "ada") {
			t.Errorf("user %v", u)
		}
		me := ts.get("/v2/user/me/", r.cookies()...)
		wantStatus(t, me, http.StatusOK)
		if me.field("login_method") != "email_code" || me.field("organization_id") != "org_acme" {
			t.Errorf("me %s", me.Body)
		}

		// Single use.
		wantAuthAnswer(t, ts.authVerify("ada@example.com", code), http.StatusBadRequest, linkExpired)
		for value, n := range map[string]uint64{codeSent: 1, loginSuccessful: 1, linkExpired: 1, linkInvalid: 0} {
			if got := ts.metric("dashauth_signins_total", value); got != n {
				t.Errorf("dashauth_signins_total{%s} = %d, want %d", value, got, n)
			}
		}
		if ts.metric("dashauth_mails_total", "sent") != 1 {
			t.Error("the mail was not counted")
		}
	})
}

// TestEmailCodeUserID: an email+code user's id is the same at every sign-in, on any replica and after a key
// rotation, and differs from anyone else's.
func TestEmailCodeUserID(t *testing.T) {
	t.Parallel()
	members := writeMembers(t, strings.Replace(authMembers, `"active": false`, `"active": true`, 1))
	userID := func(ts *testServer, addr string) string {
		r := ts.authVerify(addr, ts.requestCode(addr))
		wantAuthAnswer(t, r, http.StatusOK, loginSuccessful)
		u, _ := r.json["user"].(map[string]any)
		id, _ := u["id"].(string)
		return id
	}
	one := newTestServer(t, testEnv("MEMBERS_FILE", members))
	other := newTestServer(t, testEnv("MEMBERS_FILE", members, "JWT_SECRET", "another-secret-0123456789abcdef0123456789"))
	ada := userID(one, "ada@example.com")
	if again := userID(other, "Ada@Example.com"); again != ada {
		t.Errorf("Ada is %q on one server, %q on another", ada, again)
	}
	if bob := userID(one, "bob@example.com"); bob == ada {
		t.Errorf("Ada and Bob share the id %q", ada)
	}
}

// TestEmailCodeMembership: the code goes to members, active or not; the membership decides at verify.
func TestEmailCodeMembership(t *testing.T) {
	t.Parallel()
	ts := newAuthCodeServer(t)

	// An inactive member gets a code, and learns the state on verify.
	code := ts.requestCode("bob@example.com")
	if to := ts.mails.sent()[0].To; to != "bob@example.com" {
		t.Fatalf("mail to %q", to)
	}
	wantAuthAnswer(t, ts.authVerify("bob@example.com", code), http.StatusForbidden, membershipDeactivated)
	wantAuthAnswer(t, ts.authVerify("bob@example.com", code), http.StatusBadRequest, linkExpired) // it was used

	// A stranger gets the same answer and no mail.
	wantAuthAnswer(t, ts.authAsk("eve@example.com"), http.StatusOK, codeSent)
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 1 {
		t.Fatalf("%d mails, want 1: a stranger was mailed", n)
	}
	wantAuthAnswer(t, ts.authVerify("eve@example.com", "123456"), http.StatusBadRequest, linkInvalid)
	// An address that asked for nothing has no code to guess.
	wantAuthAnswer(t, ts.authVerify("mallory@example.com", "123456"), http.StatusBadRequest, linkExpired)
}

// TestEmailCodeDevModeAnyone: development mode without a members file lets anyone in, as an admin of org_dev.
func TestEmailCodeDevModeAnyone(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	r := ts.authVerify("someone@example.org", ts.requestCode("someone@example.org"))
	wantAuthAnswer(t, r, http.StatusOK, loginSuccessful)
	if r.field("organization_id") != "org_dev" {
		t.Errorf("organization_id %q", r.field("organization_id"))
	}
}

// TestEmailCodeStrangerWithValidCode: outside development mode, someone not in the members file who somehow holds
// the right code (it is never mailed to them) is not signed in.
func TestEmailCodeStrangerWithValidCode(t *testing.T) {
	t.Parallel()
	ts := newAuthCodeServer(t, authProdEnv...)
	if ts.cfg.Dev {
		t.Fatal("development mode is on")
	}
	wantAuthAnswer(t, ts.authAsk("eve@example.com"), http.StatusOK, codeSent)
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 0 {
		t.Fatalf("%d mails to a stranger", n)
	}
	// Replace the stored code with one the test knows.
	key := ts.key("code", ts.addressID("eve@example.com"))
	if ok, err := ts.store.Put(t.Context(), key, anyValue, ts.codeHash("eve@example.com", "424242"), codeTTL); !ok || err != nil {
		t.Fatalf("Put = %v, %v", ok, err)
	}
	wantAuthAnswer(t, ts.authVerify("eve@example.com", "424242"), http.StatusForbidden, membershipNotFound)
	wantAuthAnswer(t, ts.authVerify("eve@example.com", "424242"), http.StatusBadRequest, linkExpired)
	if ts.metric("dashauth_signins_total", membershipNotFound) != 1 {
		t.Error("MEMBERSHIP_NOT_FOUND was not counted")
	}
}

var authTriesKey = regexp.MustCompile(`tries:[0-9a-f]{16}`)

// authStoreLog records every store call a request makes, with address ids made generic, so that the work done for
// two addresses can be compared.
type authStoreLog struct {
	store
	mu   sync.Mutex
	ops  []string
	hide map[string]string // address id -> placeholder
}

func (l *authStoreLog) add(op string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, name := range l.hide {
		op = strings.ReplaceAll(op, id, name)
	}
	op = authTriesKey.ReplaceAllString(op, "tries:<code hash>")
	l.ops = append(l.ops, op)
}

func (l *authStoreLog) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := l.store.Get(ctx, key)
	l.add(fmt.Sprintf("Get %s -> %v, %v", key, ok, err))
	return v, ok, err
}

func (l *authStoreLog) Put(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	ok, err := l.store.Put(ctx, key, old, value, ttl)
	kind := map[string]string{"": "absent", anyValue: "any"}[old]
	l.add(fmt.Sprintf("Put %s if %s, %d bytes for %v -> %v, %v", key, cmp.Or(kind, "held"), len(value), ttl, ok, err))
	return ok, err
}

// TestEmailCodeNoEnumeration: an active member, an inactive one and a stranger get the same status, body and headers,
// after the same store work, for a code, a second code too soon (429) and a wrong code. Only the mail differs.
func TestEmailCodeNoEnumeration(t *testing.T) {
	t.Parallel()
	type outcome struct {
		status  [3]int
		body    [3]string
		headers [3]http.Header
		ops     []string
	}
	run := func(addr string) outcome {
		ts := newAuthCodeServer(t)
		log := &authStoreLog{store: ts.store, hide: map[string]string{ts.addressID(addr): "<address>"}}
		ts.store = log
		var o outcome
		for i, r := range []response{ts.authAsk(addr), ts.authAsk(addr), ts.authVerify(addr, "abcdef")} {
			o.status[i], o.body[i], o.headers[i] = r.Code, r.Body.String(), r.Header()
		}
		o.ops = log.ops
		return o
	}
	member := run("ada@example.com")
	if member.status != [3]int{http.StatusOK, http.StatusTooManyRequests, http.StatusBadRequest} ||
		!strings.Contains(member.body[0], codeSent) || !strings.Contains(member.body[2], linkInvalid) {
		t.Fatalf("member: %v %q", member.status, member.body)
	}
	for _, addr := range []string{"bob@example.com", "eve@example.com"} {
		got := run(addr)
		if got.status != member.status || got.body != member.body {
			t.Errorf("%s: %v %q; member: %v %q", addr, got.status, got.body, member.status, member.body)
		}
		for i := range got.headers {
			if !maps.EqualFunc(got.headers[i], member.headers[i], slices.Equal) {
				t.Errorf("%s: answer %d headers %v; member's %v", addr, i, got.headers[i], member.headers[i])
			}
		}
		if !slices.Equal(got.ops, member.ops) {
			t.Errorf("%s: store work\n%s\nmember's\n%s", addr, strings.Join(got.ops, "\n"), strings.Join(member.ops, "\n"))
		}
	}
}

// authGateMailer holds each mail until released.
type authGateMailer struct {
	next    mailer
	entered chan codeMail
	release chan struct{}
	once    sync.Once
}

func newAuthGateMailer(t *testing.T, next mailer) *authGateMailer {
	g := &authGateMailer{next: next, entered: make(chan codeMail, 8), release: make(chan struct{})}
	t.Cleanup(g.open) // runs before the test server's cleanup, which waits for the mail
	return g
}

func (g *authGateMailer) open() { g.once.Do(func() { close(g.release) }) }

func (g *authGateMailer) Send(ctx context.Context, m codeMail) error {
	g.entered <- m
	<-g.release
	return g.next.Send(ctx, m)
}

// TestLoginCodeAnswersBeforeMail: the answer never waits for the mail, so a slow SMTP server neither delays a member's
// answer nor tells members from strangers.
func TestLoginCodeAnswersBeforeMail(t *testing.T) {
	t.Parallel()
	ts := newAuthCodeServer(t)
	gate := newAuthGateMailer(t, ts.mails)
	ts.mail = gate
	done := make(chan response, 1)
	go func() { done <- ts.authAsk("ada@example.com") }()
	select {
	case r := <-done:
		wantAuthAnswer(t, r, http.StatusOK, codeSent)
	case <-time.After(time.Minute): // a guard against hanging, not a measurement: the gate never opens by itself
		t.Fatal("the answer waited for the mail")
	}
	if m := <-gate.entered; m.To != "ada@example.com" {
		t.Fatalf("mail to %q", m.To)
	}
	if n := len(ts.mails.sent()); n != 0 {
		t.Fatalf("%d mails before the gate opened", n)
	}
	gate.open()
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 1 || ts.metric("dashauth_mails_total", "sent") != 1 {
		t.Fatalf("%d mails after the gate opened", n)
	}
}

// TestLoginCodeMailFailureIsCounted: a failed mail does not change the answer (it is sent after it), and is counted.
func TestLoginCodeMailFailureIsCounted(t *testing.T) {
	t.Parallel()
	ts := newAuthCodeServer(t)
	ts.mails.fail(errors.New("SMTP refused"))
	wantAuthAnswer(t, ts.authAsk("ada@example.com"), http.StatusOK, codeSent)
	ts.background.Wait()
	if ts.metric("dashauth_mails_total", "failed") != 1 || ts.metric("dashauth_mails_total", "sent") != 0 {
		t.Error("a failed mail was not counted as failed")
	}
}

func TestEmailCodeWrongTries(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts := newAuthCodeServer(t, env...)
		code := ts.requestCode("ada@example.com")
		// Malformed codes are wrong codes, and count as tries.
		for _, wrong := range []string{"+" + code[1:], "１２３４５６", " " + code[1:], code + "\n", authOtherCode(code)} {
			wantAuthAnswer(t, ts.authVerify("ada@example.com", wrong), http.StatusBadRequest, linkInvalid)
		}
		// Five wrong tries burn the code: the sixth try, even right, is refused.
		wantAuthAnswer(t, ts.authVerify("ada@example.com", code), http.StatusBadRequest, linkExpired)
		if n := ts.metric("dashauth_signins_total", linkInvalid); n != 5 {
			t.Errorf("LINK_INVALID counted %d times", n)
		}
	})
}

// TestEmailCodeFourWrongThenRight: the fifth try may be the right one; requests refused before the code is looked at
// are not tries.
func TestEmailCodeFourWrongThenRight(t *testing.T) {
	t.Parallel()
	ts := newAuthCodeServer(t)
	code := ts.requestCode("ada@example.com")
	wantAuthError(t, ts.authPost(authVerifyPath, authJSON("email", "ada@example.com"), ""), http.StatusBadRequest, "missing_code")
	wantAuthError(t, ts.authPost(authVerifyPath, `{"email":"ada@example.com","code":1}`, ""), http.StatusBadRequest, "invalid_code")
	wantAuthError(t, ts.authPost(authVerifyPath, authJSON("email", "ada@", "code", code), ""), http.StatusBadRequest, "invalid_email")
	for range 4 {
		wantAuthAnswer(t, ts.authVerify("ada@example.com", authOtherCode(code)), http.StatusBadRequest, linkInvalid)
	}
	wantAuthAnswer(t, ts.authVerify("ada@example.com", code), http.StatusOK, loginSuccessful)
}

// TestEmailCodeExpires: a code is valid for 10 minutes (contract), to the second.
func TestEmailCodeExpires(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		after  time.Duration
		status int
		want   string
	}{
		{10*time.Minute - time.Second, http.StatusOK, loginSuccessful},
		{10 * time.Minute, http.StatusBadRequest, linkExpired},
		{time.Hour, http.StatusBadRequest, linkExpired},
	} {
		t.Run(tc.after.String(), func(t *testing.T) {
			t.Parallel()
			ts := newAuthCodeServer(t)
			code := ts.requestCode("ada@example.com")
			ts.clock.Advance(tc.after)
			wantAuthAnswer(t, ts.authVerify("ada@example.com", code), tc.status, tc.want)
		})
	}
}

// TestEmailCodeNewCodeReplacesOld: a new code makes the old one wrong, and starts with five tries of its own, even
// after the old one was burned.
func TestEmailCodeNewCodeReplacesOld(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts := newAuthCodeServer(t, env...)
		first := ts.requestCode("ada@example.com")
		for range 5 {
			wantAuthAnswer(t, ts.authVerify("ada@example.com", authOtherCode(first)), http.StatusBadRequest, linkInvalid)
		}
		wantAuthAnswer(t, ts.authVerify("ada@example.com", first), http.StatusBadRequest, linkExpired)

		ts.clock.Advance(time.Minute)
		second := ts.requestCode("ada@example.com")
		if second == first {
			t.Skip("the new code is the old one (one chance in a million)")
		}
		wantAuthAnswer(t, ts.authVerify("ada@example.com", first), http.StatusBadRequest, linkInvalid) // try 1 of 5
		for range 3 {
			wantAuthAnswer(t, ts.authVerify("ada@example.com", authOtherCode(second)), http.StatusBadRequest, linkInvalid)
		}
		wantAuthAnswer(t, ts.authVerify("ada@example.com", second), http.StatusOK, loginSuccessful) // try 5 of 5
	})
}

// authParallel runs n verify requests at once, each from its own client address (so that only the code's own try
// counter is shared), and counts the answers by response_type.
func authParallel(ts *testServer, n int, addr string, code func(i int) string) map[string]int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for i := range n {
		wg.Go(func() {
			r := ts.authPost(authVerifyPath, authJSON("email", addr, "code", code(i)), fmt.Sprintf("198.51.100.%d:4711", i+1))
			mu.Lock()
			answers[r.field("response_type")]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return answers
}

// TestParallelGuessesAreCounted: twenty wrong guesses at once make five tries count, no more; the code is burned.
func TestParallelGuessesAreCounted(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts := newAuthCodeServer(t, env...)
		code := ts.requestCode("ada@example.com")
		n, _ := strconv.Atoi(code)
		answers := authParallel(ts, 20, "ada@example.com", func(i int) string { return fmt.Sprintf("%06d", (n+1+i)%1_000_000) })
		if answers[linkInvalid] != 5 || answers[linkExpired] != 15 {
			t.Fatalf("answers %v, want 5 LINK_INVALID and 15 LINK_EXPIRED", answers)
		}
		wantAuthAnswer(t, ts.authVerify("ada@example.com", code), http.StatusBadRequest, linkExpired)
	})
}

// TestParallelRightCodeSignsInOnce: the right code sent ten times at once signs in once.
func TestParallelRightCodeSignsInOnce(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts := newAuthCodeServer(t, env...)
		code := ts.requestCode("ada@example.com")
		answers := authParallel(ts, 10, "ada@example.com", func(int) string { return code })
		if answers[loginSuccessful] != 1 || answers[linkExpired] != 9 {
			t.Fatalf("answers %v, want 1 LOGIN_SUCCESSFUL and 9 LINK_EXPIRED", answers)
		}
	})
}

func TestLoginCodeInvalidEmail(t *testing.T) {
	t.Parallel()
	ts := newAuthCodeServer(t)
	for _, addr := range []string{"Ada <ada@example.com>", "ada@example.com\r\nBcc: eve@example.com",
		"ada@example.com,eve@example.com", "ada@example", "ada", " ada@example.com", "adá@example.com", "ada@[127.0.0.1]",
		strings.Repeat("a", 65) + "@example.com"} {
		wantAuthError(t, ts.authPost(authLoginCodePath, authJSON("email", addr), ""), http.StatusBadRequest, "invalid_email")
		wantAuthError(t, ts.authPost(authVerifyPath, authJSON("email", addr, "code", "123456"), ""), http.StatusBadRequest, "invalid_email")
	}
	// None of that was counted by a rate limit, stored a code or sent a mail.
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 0 {
		t.Fatalf("%d mails for invalid addresses", n)
	}
	if n := len(authStoreSnapshot(ts)); n != 0 {
		t.Fatalf("%d store keys written", n)
	}
}

// TestEmailCodeBodies: both endpoints read one flat JSON object of exactly their fields.
func TestEmailCodeBodies(t *testing.T) {
	t.Parallel()
	ts := newAuthCodeServer(t)
	for _, tc := range []struct {
		path, body, reason string
	}{
		{authLoginCodePath, `{"email":"ada@example.com","admin":true}`, "unknown_field"},
		{authLoginCodePath, `{"email":"ada@example.com","code":"123456"}`, "unknown_field"},
		{authLoginCodePath, `{"Email":"ada@example.com"}`, "unknown_field"},
		{authLoginCodePath, `{"email":"eve@example.com","email":"ada@example.com"}`, "duplicate_field"},
		{authLoginCodePath, `{"email":"eve@example.com","\u0065mail":"ada@example.com"}`, "duplicate_field"},
		{authLoginCodePath, `{"email":"ada@example.com"} {}`, "invalid_json"},
		{authLoginCodePath, `["ada@example.com"]`, "invalid_json"},
		{authLoginCodePath, `{"email":"ada@example.com"`, "invalid_json"},
		{authLoginCodePath, `{"email":["ada@example.com"]}`, "invalid_email"},
		{authLoginCodePath, `{"email":null}`, "invalid_email"},
		{authLoginCodePath, `{}`, "missing_email"},
		{authLoginCodePath, `{"email":""}`, "missing_email"},
		{authVerifyPath, `{"email":"ada@example.com","code":"123456","remember":true}`, "unknown_field"},
		{authVerifyPath, `{"email":"ada@example.com","code":"123456","code":"654321"}`, "duplicate_field"},
		{authVerifyPath, `{"email":"ada@example.com","code":123456}`, "invalid_code"},
		{authVerifyPath, `{"email":"ada@example.com"}`, "missing_code"},
		{authVerifyPath, `{"code":"123456"}`, "missing_email"},
		{authVerifyPath, `{"email":"ada@example.com","code":"123456"}x`, "invalid_json"},
	} {
		wantAuthError(t, ts.authPost(tc.path, tc.body, ""), http.StatusBadRequest, tc.reason)
	}
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 0 || len(authStoreSnapshot(ts)) != 0 {
		t.Fatalf("%d mails, %d store keys after refused bodies", n, len(authStoreSnapshot(ts)))
	}
}

// wantRateLimited checks a 429: {"error":"rate_limited"} and Retry-After.
func wantRateLimited(t *testing.T, r response, retryAfter string) {
	t.Helper()
	wantAuthError(t, r, http.StatusTooManyRequests, "rate_limited")
	if got := r.Header().Get("Retry-After"); got != retryAfter {
		t.Fatalf("Retry-After %q, want %q", got, retryAfter)
	}
}

// TestLoginCodeRateLimits: one code per address a minute, Retry-After in whole seconds rounded up, so that a retry at
// Retry-After is admitted; then five per 15 minutes.
func TestLoginCodeRateLimits(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts := newAuthCodeServer(t, env...)
		start := ts.clock.Now()
		wantStatus(t, ts.authAsk("ada@example.com"), http.StatusOK)
		for _, tc := range []struct {
			at    time.Duration
			retry string
		}{
			{0, "60"},
			{500 * time.Millisecond, "60"}, // 59.5 s
			{time.Second, "59"},
			{59 * time.Second, "1"},
			{59*time.Second + 999*time.Millisecond, "1"}, // 1 ms: never 0
		} {
			ts.clock.Advance(start.Add(tc.at).Sub(ts.clock.Now()))
			wantRateLimited(t, ts.authAsk("ADA@example.com"), tc.retry)
		}
		ts.clock.Advance(start.Add(time.Minute).Sub(ts.clock.Now()))
		wantStatus(t, ts.authAsk("ada@example.com"), http.StatusOK)
		// Three more codes, one a minute, then the 15-minute cap: five codes over 4 minutes, the first leaves at 15:00.
		for range 3 {
			ts.clock.Advance(time.Minute)
			wantStatus(t, ts.authAsk("ada@example.com"), http.StatusOK)
		}
		ts.clock.Advance(time.Minute)
		wantRateLimited(t, ts.authAsk("ada@example.com"), "600")
		if n := ts.metric("dashauth_rate_limited_total", ""); n != 6 {
			t.Errorf("dashauth_rate_limited_total = %d, want 6", n)
		}
		// Another address is not affected.
		wantStatus(t, ts.authAsk("bob@example.com"), http.StatusOK)
		ts.background.Wait()
		if n := len(ts.mails.sent()); n != 6 {
			t.Errorf("%d mails, want 6", n)
		}
	})
}

// TestRateLimitEndsWithItsWindow: once every event of a limit has left its window, the limit admits again: a minute
// after a code, the same address gets another; 15 minutes after a client's 30 requests, it is served again.
func TestRateLimitEndsWithItsWindow(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts := newAuthCodeServer(t, env...)
		wantAuthAnswer(t, ts.authAsk("ada@example.com"), http.StatusOK, codeSent)
		ts.clock.Advance(time.Minute + time.Second)
		wantAuthAnswer(t, ts.authAsk("ada@example.com"), http.StatusOK, codeSent)

		verify := func() response {
			return ts.authPost(authVerifyPath, authJSON("email", "mallory@example.com", "code", "000000"), "203.0.113.1:1")
		}
		for range 30 {
			wantAuthAnswer(t, verify(), http.StatusBadRequest, linkExpired) // mallory has no code
		}
		wantRateLimited(t, verify(), "900")
		ts.clock.Advance(15 * time.Minute)
		wantAuthAnswer(t, verify(), http.StatusBadRequest, linkExpired)
	})
}

// TestLoginCodeSlidingWindow: "5 per 15 minutes" holds over every 15-minute span. A code counts from its request
// until exactly 15 minutes later.
func TestLoginCodeSlidingWindow(t *testing.T) {
	t.Parallel()
	type step struct {
		at    time.Duration // since the first code
		retry string        // "" when a code is sent
	}
	run := func(t *testing.T, steps []step) *testServer {
		ts := newAuthCodeServer(t)
		start := ts.clock.Now()
		for _, st := range steps {
			ts.clock.Advance(start.Add(st.at).Sub(ts.clock.Now()))
			r := ts.authAsk("ada@example.com")
			if st.retry == "" {
				wantAuthAnswer(t, r, http.StatusOK, codeSent)
			} else {
				wantRateLimited(t, r, st.retry)
			}
		}
		return ts
	}
	five := []step{{0, ""}, {time.Minute, ""}, {2 * time.Minute, ""}, {3 * time.Minute, ""}, {4 * time.Minute, ""}}
	t.Run("sixth admitted exactly when the oldest leaves", func(t *testing.T) {
		t.Parallel()
		run(t, append(five, step{15 * time.Minute, ""}))
	})
	t.Run("sixth refused a millisecond before", func(t *testing.T) {
		t.Parallel()
		run(t, append(five, step{15*time.Minute - time.Millisecond, "1"}))
	})
	t.Run("no burst across a boundary", func(t *testing.T) {
		t.Parallel()
		ts := run(t, []step{
			{0, ""},
			{11 * time.Minute, ""},
			{12 * time.Minute, ""},
			{13 * time.Minute, ""},
			{14 * time.Minute, ""},
			{15 * time.Minute, ""}, // the t=0 code has left
			// 11, 12, 13, 14 and 15 are in the window; 11 leaves at 26:00. A fixed window from 15:00 would admit.
			{16 * time.Minute, "600"},
			{20 * time.Minute, "360"},
			{25 * time.Minute, "60"},
			{26 * time.Minute, ""},
		})
		ts.background.Wait()
		if n := len(ts.mails.sent()); n != 7 {
			t.Errorf("%d mails, want 7", n)
		}
	})
}

// TestLoginCodeClientLimit: 30 requests per client per 15 minutes, whatever the addresses; an IPv6 client is its /64,
// and an IPv4-mapped IPv6 peer is its IPv4 address.
func TestLoginCodeClientLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		remote       func(i int) string // the i-th of the first 30
		same, others string             // the 31st from the same client, and from another one
	}{
		{"IPv4", func(int) string { return "203.0.113.5:4711" }, "203.0.113.5:9", "203.0.113.6:4711"},
		{"IPv6 subnet, each from a new address", func(i int) string { return fmt.Sprintf("[2001:db8:1:2:%x::1]:4711", i+1) },
			"[2001:db8:1:2:ffff:ffff:ffff:ffff]:4711", "[2001:db8:1:3::1]:4711"},
		{"IPv4-mapped IPv6", func(i int) string { return []string{"203.0.113.5:1", "[::ffff:203.0.113.5]:2"}[i%2] },
			"[::ffff:203.0.113.5]:3", "[::ffff:203.0.113.6]:4711"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newAuthCodeServer(t)
			for i := range 30 {
				r := ts.authPost(authLoginCodePath, authJSON("email", fmt.Sprintf("user%d@example.com", i)), tc.remote(i))
				wantAuthAnswer(t, r, http.StatusOK, codeSent)
			}
			wantRateLimited(t, ts.authPost(authLoginCodePath, authJSON("email", "one-more@example.com"), tc.same), "900")
			wantAuthAnswer(t, ts.authPost(authLoginCodePath, authJSON("email", "one-more@example.com"), tc.others), http.StatusOK, codeSent)
			ts.clock.Advance(15 * time.Minute)
			wantAuthAnswer(t, ts.authPost(authLoginCodePath, authJSON("email", "later@example.com"), tc.same), http.StatusOK, codeSent)
			if n := ts.metric("dashauth_rate_limited_total", ""); n != 1 {
				t.Errorf("dashauth_rate_limited_total = %d", n)
			}
		})
	}
}

// TestVerifyClientLimit: one client gets 30 verify requests per 15 minutes, so it cannot burn each new code of a
// victim as it appears: once limited, its guesses no longer reach the code's tries.
func TestVerifyClientLimit(t *testing.T) {
	t.Parallel()
	authEachStore(t, func(t *testing.T, env []string) {
		ts := newAuthCodeServer(t, env...)
		const attacker, victim = "203.0.113.66:4711", "192.0.2.10:4711"
		guess := func() response {
			return ts.authPost(authVerifyPath, authJSON("email", "ada@example.com", "code", "000000"), attacker)
		}
		code := ts.requestCode("ada@example.com")
		if code == "000000" {
			t.Skip("the code is the attacker's guess")
		}
		answers := map[string]int{}
		for range 30 {
			answers[guess().field("response_type")]++
		}
		if answers[linkInvalid] != 5 || answers[linkExpired] != 25 {
			t.Fatalf("answers %v, want 5 LINK_INVALID and 25 LINK_EXPIRED", answers)
		}
		wantRateLimited(t, guess(), "900")

		// The victim asks for a new code; the limited attacker cannot touch it.
		ts.clock.Advance(time.Minute)
		code = ts.requestCode("ada@example.com")
		for range 10 {
			wantRateLimited(t, guess(), "840")
		}
		for range 4 {
			r := ts.authPost(authVerifyPath, authJSON("email", "ada@example.com", "code", authOtherCode(code)), victim)
			wantAuthAnswer(t, r, http.StatusBadRequest, linkInvalid)
		}
		r := ts.authPost(authVerifyPath, authJSON("email", "ada@example.com", "code", code), victim)
		wantAuthAnswer(t, r, http.StatusOK, loginSuccessful)
		if n := ts.metric("dashauth_rate_limited_total", ""); n != 11 {
			t.Errorf("dashauth_rate_limited_total = %d, want 11", n)
		}
		// The window slides for verify too.
		ts.clock.Advance(14 * time.Minute)
		wantAuthAnswer(t, guess(), http.StatusBadRequest, linkExpired)
	})
}

// TestTrustedProxyRateLimit: behind a trusted proxy each forwarded client has its own limit, and what a client writes
// into X-Forwarded-For itself does not give it a new one.
func TestTrustedProxyRateLimit(t *testing.T) {
	t.Parallel()
	ts := newAuthCodeServer(t, "TRUSTED_PROXIES", "10.0.0.0/8")
	ask := func(i int, remote, xff string) response {
		return ts.do(request{method: "POST", path: authLoginCodePath, body: authJSON("email", fmt.Sprintf("u%d@example.com", i)),
			remote: remote, header: map[string]string{"X-Forwarded-For": xff}})
	}
	for i := range 30 {
		wantStatus(t, ask(i, "10.0.0.1:80", fmt.Sprintf("198.51.100.%d, 203.0.113.7", i)), http.StatusOK)
	}
	wantRateLimited(t, ask(30, "10.0.0.2:80", "203.0.113.7"), "900")
	wantRateLimited(t, ask(31, "10.0.0.1:80", "198.51.100.99, 203.0.113.7, 10.0.0.9"), "900")
	wantStatus(t, ask(32, "10.0.0.1:80", "203.0.113.8"), http.StatusOK)
	// An untrusted peer is counted by its own address, whatever it forwards.
	for i := range 30 {
		wantStatus(t, ask(40+i, "192.0.2.50:1", fmt.Sprintf("198.51.100.%d", i)), http.StatusOK)
	}
	wantRateLimited(t, ask(99, "192.0.2.50:1", "198.51.100.200"), "900")
}

func TestParseMembers(t *testing.T) {
	t.Parallel()
	m, err := parseMembers([]byte(authMembers))
	if err != nil {
		t.Fatal(err)
	}
	want := memberList{
		"ada@example.com": {Email: "ada@example.com", OrganizationID: "org_acme", Role: "admin", Active: true, FirstName: "Ada", LastName: "Lovelace"},
		"bob@example.com": {Email: "bob@example.com", OrganizationID: "org_acme", Role: "member"},
	}
	if !maps.Equal(m, want) {
		t.Fatalf("parseMembers = %v, want %v", m, want)
	}
	entry := func(fields string) string {
		return `{"members":[{"email":"a@b.co","organization_id":"o","active":true` + fields + `}]}`
	}
	good := map[string]string{
		"no members":       `{"members":[]}`,
		"members null":     `{"members":null}`,
		"longest fields":   `{"members":[{"email":"a@b.co","organization_id":"` + strings.Repeat("o", 64) + `","role":"` + strings.Repeat("r", 64) + `","first_name":"` + strings.Repeat("f", 256) + `","last_name":"` + strings.Repeat("l", 256) + `"}]}`,
		"no role":          entry(""),
		"trailing newline": entry("") + "\n",
	}
	for name, doc := range good {
		if _, err := parseMembers([]byte(doc)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]string{
		"unknown member field":   entry(`,"admin":true`),
		"unknown top field":      `{"members":[],"admins":[]}`,
		"bad address":            `{"members":[{"email":"a@b","organization_id":"o"}]}`,
		"display name":           `{"members":[{"email":"Ada <a@b.co>","organization_id":"o"}]}`,
		"CR LF in address":       `{"members":[{"email":"a@b.co\r\nBcc: e@f.co","organization_id":"o"}]}`,
		"empty address":          `{"members":[{"email":"","organization_id":"o"}]}`,
		"no address":             `{"members":[{"organization_id":"o"}]}`,
		"listed twice":           `{"members":[{"email":"a@b.co","organization_id":"o"},{"email":"a@b.co","organization_id":"p"}]}`,
		"listed twice, case":     `{"members":[{"email":"a@b.co","organization_id":"o"},{"email":"A@B.co","organization_id":"p"}]}`,
		"no organization":        `{"members":[{"email":"a@b.co","role":"r","active":true}]}`,
		"empty organization":     `{"members":[{"email":"a@b.co","organization_id":""}]}`,
		"long organization":      `{"members":[{"email":"a@b.co","organization_id":"` + strings.Repeat("o", 65) + `"}]}`,
		"long role":              entry(`,"role":"` + strings.Repeat("r", 65) + `"`),
		"long first name":        entry(`,"first_name":"` + strings.Repeat("n", 257) + `"`),
		"long last name":         entry(`,"last_name":"` + strings.Repeat("n", 257) + `"`),
		"active a string":        entry(`,"active":"yes"`),
		"organization a number":  `{"members":[{"email":"a@b.co","organization_id":1}]}`,
		"trailing data":          `{"members":[]} {}`,
		"trailing garbage":       `{"members":[]}x`,
		"not an object":          `[]`,
		"members an object":      `{"members":{"email":"a@b.co","organization_id":"o"}}`,
		"truncated":              `{"members":[`,
		"empty file":             ``,
		"byte order mark":        "\ufeff" + entry(""),
		"invalid UTF-8 address":  `{"members":[{"email":"a` + "\xff" + `@b.co","organization_id":"o"}]}`,
		"one bad among the good": strings.Replace(authMembers, `"Bob@Example.com"`, `"Bob@Example"`, 1),
	}
	for name, doc := range bad {
		if m, err := parseMembers([]byte(doc)); err == nil {
			t.Errorf("%s: accepted as %v", name, m)
		}
	}
}

// TestMembersFileStopsStart: a members file that cannot be read or is invalid stops the start.
func TestMembersFileStopsStart(t *testing.T) {
	t.Parallel()
	for name, path := range map[string]string{
		"broken":  writeMembers(t, `{"members": [`),
		"invalid": writeMembers(t, `{"members":[{"email":"a@b.co"}]}`),
		"missing": writeMembers(t, authMembers) + ".gone",
	} {
		env := testEnv("MEMBERS_FILE", path, "LISTEN_ADDR", "127.0.0.1:0")
		cfg, _, err := loadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("%s: loadConfig: %v", name, err)
		}
		if _, err := newServer(cfg, slog.New(slog.DiscardHandler), time.Now); err == nil {
			t.Errorf("%s: newServer started", name)
		}
		stopped, stop := context.WithCancel(t.Context())
		stop() // were it to start, it would stop at once
		if err := run(stopped, nil, func(k string) string { return env[k] }, io.Discard, io.Discard); err == nil {
			t.Errorf("%s: run started", name)
		}
	}
}

// FuzzParseMembers: no file panics the parser, and an accepted file holds only canonical addresses with a bounded
// organization, role and names, and reads back the same once written out again.
func FuzzParseMembers(f *testing.F) {
	f.Add([]byte(authMembers))
	f.Add([]byte(`{"members":[]}`))
	f.Add([]byte(`{"members":[{"email":"a@b.co","organization_id":"o","active":true}]}`))
	f.Add([]byte(`{"members":[{"email":"A@B.co","organization_id":"o"},{"email":"a@b.co","organization_id":"p"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		byEmail, err := parseMembers(data)
		if err != nil {
			return
		}
		var list []member
		for addr, m := range byEmail {
			if canon, ok := parseEmail(addr); !ok || canon != addr || m.Email != addr || m.OrganizationID == "" ||
				len(m.OrganizationID) > 64 || len(m.Role) > 64 || len(m.FirstName) > 256 || len(m.LastName) > 256 {
				t.Fatalf("accepted member %q: %+v", addr, m)
			}
			list = append(list, m)
		}
		again, _ := json.Marshal(map[string][]member{"members": list})
		if back, err := parseMembers(again); err != nil || !maps.Equal(back, byEmail) {
			t.Fatalf("written out again, %s reads as %v, %v", again, back, err)
		}
	})
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	s := &server{cfg: config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}}}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"untrusted peer", "203.0.113.9:5000", nil, "203.0.113.9"},
		{"untrusted peer ignores X-Forwarded-For", "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"untrusted IPv6 peer", "[2001:db8:1::9]:5000", []string{"1.2.3.4"}, "2001:db8:1::9"},
		{"trusted peer without header", "10.0.0.1:5000", nil, "10.0.0.1"},
		{"trusted peer", "10.0.0.1:5000", []string{"1.2.3.4"}, "1.2.3.4"},
		{"right-most untrusted hop", "10.0.0.1:5000", []string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"},
		{"trusted hops skipped", "10.0.0.1:5000", []string{"6.6.6.6, 1.2.3.4, 10.0.0.2, 10.9.9.9"}, "1.2.3.4"},
		{"every hop trusted", "10.0.0.1:5000", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"several headers", "10.0.0.1:5000", []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},
		{"several headers, proxy last", "10.0.0.1:5000", []string{"1.2.3.4", "10.0.0.2"}, "1.2.3.4"},
		{"several headers, lists", "10.0.0.1:5000", []string{"6.6.6.6, 7.7.7.7", "1.2.3.4, 10.0.0.2"}, "1.2.3.4"},
		{"spaces and tabs", "10.0.0.1:5000", []string{" \t1.2.3.4\t "}, "1.2.3.4"},
		{"IPv6 proxy and client", "[2001:db8:ffff::1]:443", []string{"2001:db8:1:2::7"}, "2001:db8:1:2::7"},
		{"garbage", "10.0.0.1:5000", []string{"garbage"}, "10.0.0.1"},
		{"garbage right-most", "10.0.0.1:5000", []string{"1.2.3.4, garbage"}, "10.0.0.1"},
		{"garbage behind a trusted hop", "10.0.0.1:5000", []string{"garbage, 10.0.0.2"}, "10.0.0.2"},
		{"garbage left of the client", "10.0.0.1:5000", []string{"garbage, 1.2.3.4"}, "1.2.3.4"},
		{"empty hop", "10.0.0.1:5000", []string{"1.2.3.4,"}, "10.0.0.1"},
		{"empty header", "10.0.0.1:5000", []string{""}, "10.0.0.1"},
		{"unknown", "10.0.0.1:5000", []string{"unknown"}, "10.0.0.1"},
		{"a name", "10.0.0.1:5000", []string{"client.example.com"}, "10.0.0.1"},
		{"a prefix", "10.0.0.1:5000", []string{"1.2.3.0/24"}, "10.0.0.1"},
		{"hop with port", "10.0.0.1:5000", []string{"1.2.3.4:5678"}, "1.2.3.4"},
		{"IPv6 hop with port", "10.0.0.1:5000", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"trusted hop with port", "10.0.0.1:5000", []string{"1.2.3.4, 10.0.0.2:8080"}, "1.2.3.4"},
		{"hop with an empty port", "10.0.0.1:5000", []string{"1.2.3.4:"}, "10.0.0.1"},
		{"hop with a port out of range", "10.0.0.1:5000", []string{"1.2.3.4:65536"}, "10.0.0.1"},
		{"bracketed IPv4 hop", "10.0.0.1:5000", []string{"[1.2.3.4]:80"}, "10.0.0.1"},
		{"bracketed IPv6 hop without port", "10.0.0.1:5000", []string{"[2001:db8::1]"}, "10.0.0.1"},
		{"zone", "10.0.0.1:5000", []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"zone with port", "10.0.0.1:5000", []string{"[fe80::1%eth0]:80"}, "10.0.0.1"},
		{"zone behind a trusted hop", "10.0.0.1:5000", []string{"fe80::1%eth0, 10.0.0.2"}, "10.0.0.2"},
		{"IPv4-mapped hop", "10.0.0.1:5000", []string{"::ffff:1.2.3.4"}, "1.2.3.4"},
		{"IPv4-mapped hop with port", "10.0.0.1:5000", []string{"[::ffff:1.2.3.4]:80"}, "1.2.3.4"},
		{"IPv4-mapped trusted hop", "10.0.0.1:5000", []string{"1.2.3.4, ::ffff:10.0.0.2"}, "1.2.3.4"},
		{"IPv4-mapped trusted peer", "[::ffff:10.0.0.1]:5000", []string{"1.2.3.4"}, "1.2.3.4"},
		{"IPv4-mapped untrusted peer", "[::ffff:203.0.113.9]:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"not a TCP peer", "@", []string{"1.2.3.4"}, "0.0.0.0"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientIP(r).String(); got != tc.want {
			t.Errorf("%s: clientIP(%s, %q) = %s, want %s", tc.name, tc.remote, tc.xff, got, tc.want)
		}
	}
	// Without TRUSTED_PROXIES no header is believed, not even from loopback.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	if got := (&server{}).clientIP(r).String(); got != "127.0.0.1" {
		t.Errorf("no trusted proxies: clientIP = %s", got)
	}
}

// authStoreSnapshot copies the memory store's map.
func authStoreSnapshot(ts *testServer) map[string]memEntry {
	ts.t.Helper()
	ms, ok := ts.store.(*memoryStore)
	if !ok {
		ts.t.Fatalf("the store is a %T, not the memory store", ts.store)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return maps.Clone(ms.m)
}
