package main

import (
	"context"
	"fmt"
	"net/http"
	"net/mail"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testMembers = `{"members": [
 {"email": "ada@example.com", "organization_id": "org_acme", "role": "admin", "active": true, "first_name": "Ada", "last_name": "Lovelace"},
 {"email": "Bob@Example.com", "organization_id": "org_acme", "role": "member", "active": false}
]}`

func newEmailCodeServer(t *testing.T) *testServer {
	t.Helper()
	return newTestServer(t, testEnv("MEMBERS_FILE", writeMembers(t, testMembers)))
}

var codeLine = regexp.MustCompile(`(?m)^(\d{6})\r?$`)

// requestCode asks for a code for addr and returns the one mailed, or "".
func (ts *testServer) requestCode(addr string) string {
	ts.t.Helper()
	before := len(ts.mails.sent())
	r := ts.post("/v2/user/login_code/", `{"email":"`+addr+`"}`)
	wantStatus(ts.t, r, http.StatusOK)
	if r.field("response_type") != codeSent {
		ts.t.Fatalf("response_type %q, want CODE_SENT", r.field("response_type"))
	}
	ts.background.Wait()
	sent := ts.mails.sent()
	if len(sent) == before {
		return ""
	}
	m := codeLine.FindStringSubmatch(sent[len(sent)-1].Text)
	if m == nil {
		ts.t.Fatalf("no code on a line of its own in %q", sent[len(sent)-1].Text)
	}
	return m[1]
}

func (ts *testServer) verify(addr, code string) response {
	ts.t.Helper()
	return ts.post("/v2/user/login_code/verify/", fmt.Sprintf(`{"email":%q,"code":%q}`, addr, code))
}

func wantSignin(t *testing.T, r response, status int, responseType string) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.field("response_type"); got != responseType {
		t.Fatalf("response_type %q, want %q; body %s", got, responseType, r.Body.String())
	}
	if responseType != loginSuccessful && len(r.cookies()) != 0 {
		t.Fatalf("%s set cookies: %v", responseType, r.cookies())
	}
}

// otherCode returns a well-formed code that is not code.
func otherCode(code string) string {
	n, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (n+1)%1_000_000)
}

func TestEmailCodeSignIn(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	code := ts.requestCode("ada@example.com")
	if code == "" {
		t.Fatal("no mail to a member")
	}
	mail := ts.mails.sent()[0]
	if mail.To != "ada@example.com" || !strings.Contains(mail.HTML, code) {
		t.Fatalf("mail to %q, html %q", mail.To, mail.HTML)
	}

	r := ts.verify("ADA@example.com", code) // addresses compare case-insensitively
	wantSignin(t, r, http.StatusOK, loginSuccessful)
	if r.json["organization_id"] != "org_acme" {
		t.Errorf("organization_id %v", r.json["organization_id"])
	}
	u, _ := r.json["user"].(map[string]any)
	if u["email"] != "ada@example.com" || u["first_name"] != "Ada" || u["last_name"] != "Lovelace" || !strings.HasPrefix(u["id"].(string), "user_") {
		t.Errorf("user %v", u)
	}
	if cookieNamed(r.cookies(), "access_token") == nil || cookieNamed(r.cookies(), "refresh_token") == nil {
		t.Fatalf("cookies %v", r.cookies())
	}
	if r.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.Header().Get("Cache-Control"))
	}
	me := ts.get("/v2/user/me/", r.cookies()...)
	wantStatus(t, me, http.StatusOK)
	if me.field("login_method") != "email_code" || me.field("organization_id") != "org_acme" {
		t.Errorf("me %s", me.Body.String())
	}

	// Single use.
	wantSignin(t, ts.verify("ada@example.com", code), http.StatusBadRequest, linkExpired)
	if got := ts.metrics.get("dashauth_signins_total", "response_type", loginSuccessful); got != 1 {
		t.Errorf("signins LOGIN_SUCCESSFUL = %d", got)
	}
}

func TestEmailCodeMembership(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)

	// An inactive member gets a code, and learns the state on verify.
	code := ts.requestCode("bob@example.com")
	if code == "" {
		t.Fatal("no mail to an inactive member")
	}
	wantSignin(t, ts.verify("bob@example.com", code), http.StatusForbidden, membershipDeactivated)

	// A non-member gets the same answer and no mail.
	if code := ts.requestCode("eve@example.com"); code != "" {
		t.Fatal("a non-member was mailed")
	}
	wantSignin(t, ts.verify("eve@example.com", "123456"), http.StatusBadRequest, linkInvalid)
}

func TestEmailCodeNoEnumeration(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	member := ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)
	other := ts.post("/v2/user/login_code/", `{"email":"eve@example.com"}`)
	if member.Code != other.Code || member.Body.String() != other.Body.String() {
		t.Fatalf("member %d %s, non-member %d %s", member.Code, member.Body, other.Code, other.Body)
	}
	if fmt.Sprint(member.Header()) != fmt.Sprint(other.Header()) {
		t.Fatalf("headers differ:\n%v\n%v", member.Header(), other.Header())
	}
}

func TestEmailCodeWrongTries(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	code := ts.requestCode("ada@example.com")
	// Malformed codes are wrong codes, and count as tries.
	wrong := []string{"+12345", "１２３４５６", " " + code[1:], code + "\n", otherCode(code)}
	for i, w := range wrong {
		wantSignin(t, ts.verify("ada@example.com", w), http.StatusBadRequest, linkInvalid)
		_ = i
	}
	// Five wrong tries burn the code: the right one no longer works.
	wantSignin(t, ts.verify("ada@example.com", code), http.StatusBadRequest, linkExpired)
}

func TestEmailCodeFourWrongThenRight(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	code := ts.requestCode("ada@example.com")
	for range 4 {
		wantSignin(t, ts.verify("ada@example.com", otherCode(code)), http.StatusBadRequest, linkInvalid)
	}
	wantSignin(t, ts.verify("ada@example.com", code), http.StatusOK, loginSuccessful)
}

func TestEmailCodeExpires(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	code := ts.requestCode("ada@example.com")
	// CONTRACT.md: valid 10 minutes. Alive a second before, gone at 10:00.
	ts.clock.Advance(10*time.Minute - time.Second)
	wantSignin(t, ts.verify("ada@example.com", otherCode(code)), http.StatusBadRequest, linkInvalid)
	ts.clock.Advance(time.Second)
	wantSignin(t, ts.verify("ada@example.com", code), http.StatusBadRequest, linkExpired)
}

func TestEmailCodeNewCodeReplacesOld(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	first := ts.requestCode("ada@example.com")
	for range 3 {
		ts.verify("ada@example.com", otherCode(first))
	}
	ts.clock.Advance(perAddressGap)
	second := ts.requestCode("ada@example.com")
	if first != second {
		wantSignin(t, ts.verify("ada@example.com", first), http.StatusBadRequest, linkInvalid)
	}
	// The new code has a fresh set of tries: 3 + 1 wrong so far would have
	// burned the old one at 5; four more wrong ones still leave it alive.
	for range 3 {
		ts.verify("ada@example.com", otherCode(second))
	}
	wantSignin(t, ts.verify("ada@example.com", second), http.StatusOK, loginSuccessful)
}

func TestLoginCodeRateLimits(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	ask := func(addr string) response {
		return ts.post("/v2/user/login_code/", `{"email":"`+addr+`"}`)
	}
	wantStatus(t, ask("ada@example.com"), http.StatusOK)
	r := ask("ada@example.com")
	wantStatus(t, r, http.StatusTooManyRequests)
	if r.field("error") != "rate_limited" || r.Header().Get("Retry-After") != "60" {
		t.Fatalf("429 body %s, Retry-After %q", r.Body, r.Header().Get("Retry-After"))
	}
	// Four more codes, one a minute, then the 15-minute cap.
	for i := range 4 {
		ts.clock.Advance(perAddressGap)
		wantStatus(t, ask("ada@example.com"), http.StatusOK)
		_ = i
	}
	ts.clock.Advance(perAddressGap)
	r = ask("ada@example.com")
	wantStatus(t, r, http.StatusTooManyRequests)
	// Five codes were sent over the last 300 s: the 15-minute window has 600 s to go.
	if got := r.Header().Get("Retry-After"); got != "600" {
		t.Errorf("Retry-After %q", got)
	}
	// Only one code reached the mailbox per accepted request.
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 5 {
		t.Errorf("%d mails, want 5", n)
	}
}

// TestLoginCodeSlidingWindow: "5 per 15 minutes" (CONTRACT.md) holds over every 15-minute
// span. A code counts from its request until exactly 15 minutes later, exclusive. Fixed
// windows starting at t=0 would have admitted a burst at 15-19 minutes after one at 11-14.
func TestLoginCodeSlidingWindow(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	start := ts.clock.Now()
	for _, st := range []struct {
		at    time.Duration // since start
		retry string        // "" when a code is sent
	}{
		{0, ""},
		{11 * time.Minute, ""},
		{12 * time.Minute, ""},
		{13 * time.Minute, ""},
		{14 * time.Minute, ""},
		// The t=0 code leaves the window at exactly 15:00, so one code is admitted then.
		{15 * time.Minute, ""},
		// Now 11, 12, 13, 14 and 15 are in the window; the 11-minute one leaves at 26:00.
		// A fixed window (a fresh one from 15:00) would have admitted this request.
		{16 * time.Minute, "600"},
		{20 * time.Minute, "360"},
		// This refusal passed the 60-second limit and is recorded there (to 26:00).
		{25 * time.Minute, "60"},
		{26 * time.Minute, ""},
	} {
		ts.clock.Advance(start.Add(st.at).Sub(ts.clock.Now()))
		r := ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)
		if st.retry == "" {
			if r.Code != http.StatusOK {
				t.Fatalf("at %v: %d %s; want 200", st.at, r.Code, r.Body)
			}
			continue
		}
		if r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != st.retry {
			t.Fatalf("at %v: %d, Retry-After %q; want 429, %q", st.at, r.Code, r.Header().Get("Retry-After"), st.retry)
		}
	}
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 7 {
		t.Errorf("%d mails, want 7", n)
	}
}

func TestLoginCodeClientLimit(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	for i := range 30 { // CONTRACT.md: 30 requests per client per 15 minutes
		wantStatus(t, ts.post("/v2/user/login_code/", fmt.Sprintf(`{"email":"user%d@example.com"}`, i)), http.StatusOK)
	}
	r := ts.post("/v2/user/login_code/", `{"email":"one-more@example.com"}`)
	wantStatus(t, r, http.StatusTooManyRequests)
	if r.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	// Another client is not affected.
	other := ts.do(request{method: "POST", path: "/v2/user/login_code/", body: `{"email":"one-more@example.com"}`, remote: "198.51.100.7:999"})
	wantStatus(t, other, http.StatusOK)
}

func TestParseEmail(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"ada@example.com":            "ada@example.com",
		"Ada.L+tag@Mail.Example.org": "ada.l+tag@mail.example.org",
		"a@b.co":                     "a@b.co",
	}
	for in, want := range good {
		if got, ok := parseEmail(in); !ok || got != want {
			t.Errorf("parseEmail(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	bad := []string{
		"", "ada", "ada@", "@example.com", "ada@example", "ada@@example.com", "ada@exa@mple.com",
		"Ada <ada@example.com>", "ada@example.com, eve@example.com", "ada@example.com\r\nBcc: eve@example.com",
		"ada@example.com\n", " ada@example.com", "ada @example.com", "ada\x00@example.com",
		`"ada lovelace"@example.com`, "ada(comment)@example.com", ".ada@example.com", "ada.@example.com",
		"a..da@example.com", "ada@-example.com", "ada@example-.com", "ada@exa_mple.com", "ada@example..com",
		"adá@example.com", "ada@exämple.com", "ada@[127.0.0.1]",
		strings.Repeat("a", 65) + "@example.com",
		"ada@" + strings.Repeat("a", 64) + ".com",
		strings.Repeat("a", 60) + "@" + strings.Repeat(strings.Repeat("b", 60)+".", 4) + "com",
	}
	for _, in := range bad {
		if got, ok := parseEmail(in); ok {
			t.Errorf("parseEmail(%q) accepted as %q", in, got)
		}
	}
}

func TestLoginCodeInvalidEmail(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	for _, body := range []string{
		`{"email":"Ada <ada@example.com>"}`,
		`{"email":"ada@example.com\r\nBcc: eve@example.com"}`,
		`{"email":"ada@example.com,eve@example.com"}`,
	} {
		r := ts.post("/v2/user/login_code/", body)
		wantStatus(t, r, http.StatusBadRequest)
		if r.field("error") != "invalid_email" {
			t.Errorf("%s: error %q", body, r.field("error"))
		}
	}
	ts.background.Wait()
	if len(ts.mails.sent()) != 0 {
		t.Fatal("mail sent for an invalid address")
	}
}

func TestMembersFileReload(t *testing.T) {
	t.Parallel()
	path := writeMembers(t, testMembers)
	ts := newTestServer(t, testEnv("MEMBERS_FILE", path))
	if ts.requestCode("carol@example.com") != "" {
		t.Fatal("non-member mailed")
	}
	// Add carol; mtime granularity may hide a same-second rewrite, so the
	// size changes too.
	added := strings.Replace(testMembers, "]}", `,{"email":"carol@example.com","organization_id":"org_b","role":"member","active":true}]}`, 1)
	if err := os.WriteFile(path, []byte(added), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.clock.Advance(perAddressGap)
	code := ts.requestCode("carol@example.com")
	if code == "" {
		t.Fatal("reloaded member not mailed")
	}
	// A broken file keeps the last good list.
	if err := os.WriteFile(path, []byte(`{"members": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ts.verify("carol@example.com", code)
	wantSignin(t, r, http.StatusOK, loginSuccessful)
	if !strings.Contains(ts.logs.String(), "members file is broken") {
		t.Error("a broken members file was not logged")
	}
}

func TestParseMembers(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"unknown field":     `{"members":[{"email":"a@b.co","organization_id":"o","role":"r","active":true,"admin":true}]}`,
		"bad address":       `{"members":[{"email":"a@b","organization_id":"o","role":"r","active":true}]}`,
		"no organization":   `{"members":[{"email":"a@b.co","role":"r","active":true}]}`,
		"listed twice":      `{"members":[{"email":"a@b.co","organization_id":"o","active":true},{"email":"A@b.co","organization_id":"p","active":true}]}`,
		"trailing data":     `{"members":[]} {}`,
		"not an object":     `[]`,
		"active a string":   `{"members":[{"email":"a@b.co","organization_id":"o","active":"yes"}]}`,
		"long organization": `{"members":[{"email":"a@b.co","organization_id":"` + strings.Repeat("o", 65) + `","active":true}]}`,
		"long name":         `{"members":[{"email":"a@b.co","organization_id":"o","first_name":"` + strings.Repeat("n", 257) + `","active":true}]}`,
	}
	for name, doc := range bad {
		if _, err := parseMembers([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	m, err := parseMembers([]byte(testMembers))
	if err != nil || len(m) != 2 || !m["ada@example.com"].Active || m["bob@example.com"].Active {
		t.Fatalf("parseMembers = %v, %v", m, err)
	}
}

func TestEmailCodeDisabledInWorkOSMode(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv(
		"IS_WORKOS_INTEGRATED", "true", "WORKOS_CLIENT_ID", "client_1", "WORKOS_API_KEY", "sk_test",
		"WORKOS_WEBHOOK_SECRET", "whsec", "WORKOS_SIGNIN_BASE_URL", "https://example.authkit.app"))
	for _, path := range []string{"/v2/user/login_code/", "/v2/user/login_code/verify/"} {
		r := ts.post(path, `{"email":"ada@example.com","code":"123456"}`)
		wantStatus(t, r, http.StatusNotFound)
		if r.field("error") != "email_code_login_disabled" {
			t.Errorf("%s: %s", path, r.Body)
		}
	}
	r := ts.get("/v1/auth_config/")
	if r.field("login_flow") != "workos" {
		t.Errorf("auth_config %s", r.Body)
	}
}

func TestLoginCodeMailFailureIsCounted(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	ts.mails.fail(errStoreDown)
	r := ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)
	// The answer never depends on the mail: it goes out after the response.
	wantSignin(t, r, http.StatusOK, codeSent)
	ts.background.Wait()
	if ts.metrics.get("dashauth_mails_total", "result", "failed") != 1 || ts.metrics.get("dashauth_mails_total", "result", "sent") != 0 {
		t.Error("a failed mail was not counted as failed")
	}
}

// FuzzParseEmail: no input panics, and every accepted address is one
// lower-case bare address that net/mail reads the same way, and that
// parses to itself again.
func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{"ada@example.com", "A.B+c@d-e.example.org", "ada@example.com\r\nBcc: x@y.z",
		"Ada <ada@example.com>", `"a b"@example.com`, "a@b.c,d@e.f", "adá@example.com", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, ok := parseEmail(s)
		if !ok {
			return
		}
		if addr != strings.ToLower(s) || len(addr) > maxAddressBytes || strings.ContainsAny(addr, " \t\r\n,<>\"()[]\\;:") {
			t.Fatalf("parseEmail(%q) = %q", s, addr)
		}
		if again, ok := parseEmail(addr); !ok || again != addr {
			t.Fatalf("not idempotent: %q → %q → %q", s, addr, again)
		}
		parsed, err := mail.ParseAddress(addr)
		if err != nil || parsed.Address != addr || parsed.Name != "" {
			t.Fatalf("net/mail reads %q as %v, %v", addr, parsed, err)
		}
	})
}

// FuzzParseMembers: no file panics the parser, and an accepted file holds
// only canonical addresses with an organization.
func FuzzParseMembers(f *testing.F) {
	f.Add([]byte(testMembers))
	f.Add([]byte(`{"members":[]}`))
	f.Add([]byte(`{"members":[{"email":"a@b.co","organization_id":"o","active":true}]}`))
	f.Add([]byte(`{"members":null}`))
	f.Add([]byte(`{"members":[{"email":"A@B.co","organization_id":"o"},{"email":"a@b.co","organization_id":"p"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		byEmail, err := parseMembers(data)
		if err != nil {
			return
		}
		for addr, m := range byEmail {
			if canon, ok := parseEmail(addr); !ok || canon != addr || m.Email != addr || m.OrganizationID == "" {
				t.Fatalf("accepted member %q: %+v", addr, m)
			}
		}
	})
}

// failNthStore passes calls to the memory store, except call number failAt
// (counting from 1), which fails like a Redis that stopped answering.
type failNthStore struct {
	store
	mu     sync.Mutex
	calls  int
	failAt int
}

func (f *failNthStore) fail() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.calls == f.failAt
}

func (f *failNthStore) Get(ctx context.Context, k string) (string, bool, error) {
	if f.fail() {
		return "", false, errStoreDown
	}
	return f.store.Get(ctx, k)
}

func (f *failNthStore) Set(ctx context.Context, k, v string, ttl time.Duration) error {
	if f.fail() {
		return errStoreDown
	}
	return f.store.Set(ctx, k, v, ttl)
}

func (f *failNthStore) SetNX(ctx context.Context, k, v string, ttl time.Duration) (bool, error) {
	if f.fail() {
		return false, errStoreDown
	}
	return f.store.SetNX(ctx, k, v, ttl)
}

func (f *failNthStore) Incr(ctx context.Context, k string, ttl time.Duration) (int64, time.Duration, error) {
	if f.fail() {
		return 0, 0, errStoreDown
	}
	return f.store.Incr(ctx, k, ttl)
}

func (f *failNthStore) Admit(ctx context.Context, k string, max int64, window time.Duration) (bool, time.Duration, error) {
	if f.fail() {
		return false, 0, errStoreDown
	}
	return f.store.Admit(ctx, k, max, window)
}

func (f *failNthStore) Del(ctx context.Context, k string) (bool, error) {
	if f.fail() {
		return false, errStoreDown
	}
	return f.store.Del(ctx, k)
}

// TestEveryStoreFailureAnswers503 runs each email+code and session step
// with its first, second, ... store call failing, and checks that every
// failure is a 503 (or, for a failure the step can ride out, its normal
// answer), never a 500, and that a failed step sets no session cookie.
func TestEveryStoreFailureAnswers503(t *testing.T) {
	t.Parallel()
	steps := []struct {
		name string
		run  func(ts *testServer, cookies []*http.Cookie, code string) response
	}{
		{"login_code", func(ts *testServer, _ []*http.Cookie, _ string) response {
			return ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)
		}},
		{"verify", func(ts *testServer, _ []*http.Cookie, code string) response {
			return ts.verify("ada@example.com", code)
		}},
		{"me", func(ts *testServer, c []*http.Cookie, _ string) response {
			return ts.get("/v2/user/me/", named(c, "access_token")...)
		}},
		{"refresh", func(ts *testServer, c []*http.Cookie, _ string) response {
			return ts.post("/v2/user/token_refresh/", "", named(c, "refresh_token")...)
		}},
		{"logout", func(ts *testServer, c []*http.Cookie, _ string) response {
			return ts.post("/v2/user/logout/", "", named(c, "access_token", "refresh_token")...)
		}},
	}
	for _, step := range steps {
		for failAt := 1; ; failAt++ {
			ts := newEmailCodeServer(t)
			// Set up with a working store: a session, and a fresh code.
			cookies := ts.signIn()
			ts.clock.Advance(perAddressGap)
			code := ""
			if step.name == "verify" {
				code = ts.requestCode("ada@example.com")
			}
			flaky := &failNthStore{store: ts.store, failAt: failAt}
			ts.store = flaky
			r := step.run(ts, cookies, code)
			if flaky.calls < failAt {
				break // the step made fewer calls than failAt: all were tried
			}
			switch {
			case r.Code == http.StatusServiceUnavailable:
				if len(r.cookies()) != 0 {
					t.Errorf("%s, store call %d failing: 503 with session cookies", step.name, failAt)
				}
			case r.Code >= 500:
				t.Errorf("%s, store call %d failing: %d %s", step.name, failAt, r.Code, r.Body)
			default:
				t.Errorf("%s, store call %d failing: %d %s, want 503", step.name, failAt, r.Code, r.Body)
			}
		}
	}
}

// TestParallelGuessesAreCounted: twenty wrong guesses at once get at most
// five LINK_INVALID answers, and the code is burned afterwards.
func TestParallelGuessesAreCounted(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	code := ts.requestCode("ada@example.com")
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			guess := fmt.Sprintf("%06d", (mustAtoi(code)+1+i)%1_000_000)
			r := ts.verify("ada@example.com", guess)
			mu.Lock()
			answers[r.field("response_type")]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	// CONTRACT.md: a code is burned after 5 wrong tries.
	if answers[linkInvalid] != 5 || answers[linkExpired] != 15 {
		t.Fatalf("answers %v, want 5 LINK_INVALID and 15 LINK_EXPIRED", answers)
	}
	wantSignin(t, ts.verify("ada@example.com", code), http.StatusBadRequest, linkExpired)
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// TestLoginCodeAnswersBeforeMail: the answer to a member never waits for
// the mail (it is sent after the response), so a slow SMTP server cannot
// tell members from strangers; and a stranger meets the same rate limits.
func TestLoginCodeAnswersBeforeMail(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	gate := newGatedMailer(t, ts.mails, &seqClock{}, nil)
	ts.mail = gate
	r := ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`) // would block here if the mail came first
	wantSignin(t, r, http.StatusOK, codeSent)
	<-gate.entered // the mail is on its way, held at the gate, after the answer
	if len(ts.mails.sent()) != 0 {
		t.Fatal("mail accepted before the gate opened")
	}
	gate.open()
	ts.background.Wait()
	if len(ts.mails.sent()) != 1 {
		t.Fatalf("%d mails after the gate opened", len(ts.mails.sent()))
	}
	for _, addr := range []string{"ada@example.com", "eve@example.com"} {
		ts.clock.Advance(time.Hour)
		wantStatus(t, ts.post("/v2/user/login_code/", `{"email":"`+addr+`"}`), http.StatusOK)
		r := ts.post("/v2/user/login_code/", `{"email":"`+addr+`"}`)
		wantStatus(t, r, http.StatusTooManyRequests)
		if r.Header().Get("Retry-After") != "60" {
			t.Errorf("%s: Retry-After %q", addr, r.Header().Get("Retry-After"))
		}
	}
}
