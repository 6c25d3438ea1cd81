package main

// The shared test harness: a server with a hand-moved clock and a recording mailer, driven
// through its real handler chain, and the helpers every test file uses.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recordingMailer keeps every mail; err, when set, fails every Send.
type recordingMailer struct {
	mu   sync.Mutex
	msgs []codeMail
	err  error
}

func (m *recordingMailer) Send(ctx context.Context, msg codeMail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.msgs = append(m.msgs, msg)
	return nil
}

func (m *recordingMailer) sent() []codeMail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]codeMail(nil), m.msgs...)
}

func (m *recordingMailer) fail(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

// testServer is a server with a hand-moved clock and a recording mailer, driven through its
// real handler chain.
type testServer struct {
	*server
	t       *testing.T
	clock   *testClock
	mails   *recordingMailer
	handler http.Handler
	logs    *syncBuffer
}

// testEnv is a development-mode environment with a fixed JWT key, plus overrides given as
// name, value pairs.
func testEnv(overrides ...string) map[string]string {
	env := map[string]string{"JWT_SECRET": "test-secret-0123456789abcdef0123456789abcdef"}
	for i := 0; i+1 < len(overrides); i += 2 {
		env[overrides[i]] = overrides[i+1]
	}
	return env
}

func newTestServer(t *testing.T, env map[string]string) *testServer {
	t.Helper()
	cfg, _, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	clock := newTestClock()
	logs := &syncBuffer{}
	s, err := newServer(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), clock.Now)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	mails := &recordingMailer{}
	s.mail = mails
	t.Cleanup(func() {
		s.background.Wait()
		if rs, ok := s.store.(*redisStore); ok {
			rs.Close()
		}
		if n := s.metric("dashauth_http_panics_total", ""); n != 0 {
			t.Errorf("%d handler panics were recovered; logs:\n%s", n, logs.String())
		}
	})
	return &testServer{server: s, t: t, clock: clock, mails: mails, handler: s.routes(), logs: logs}
}

// metric reads one counter series ("" is the value of a family without a label).
func (s *server) metric(family, value string) uint64 {
	return s.counters[family+"\x00"+value].Load()
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// request is one call to the server.
type request struct {
	method, path, body string
	header             map[string]string
	cookies            []*http.Cookie
	remote             string // the client's address; 192.0.2.1:1234 when empty
}

// response is what came back, with the body decoded when it is JSON.
type response struct {
	*httptest.ResponseRecorder
	json map[string]any
}

func (r response) field(name string) string {
	s, _ := r.json[name].(string)
	return s
}

func (r response) cookies() []*http.Cookie { return r.Result().Cookies() }

func (ts *testServer) do(req request) response {
	ts.t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequest(req.method, req.path, body)
	r.RemoteAddr = "192.0.2.1:1234"
	if req.remote != "" {
		r.RemoteAddr = req.remote
	}
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	for _, c := range req.cookies {
		r.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, r)
	out := response{ResponseRecorder: rec}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &out.json); err != nil {
			ts.t.Fatalf("%s %s: body is not JSON: %v: %q", req.method, req.path, err, rec.Body.String())
		}
	}
	return out
}

func (ts *testServer) post(path, body string, cookies ...*http.Cookie) response {
	ts.t.Helper()
	return ts.do(request{method: "POST", path: path, body: body, cookies: cookies})
}

func (ts *testServer) get(path string, cookies ...*http.Cookie) response {
	ts.t.Helper()
	return ts.do(request{method: "GET", path: path, cookies: cookies})
}

// writeMembers writes a members file and returns its path.
func writeMembers(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "members.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantStatus fails the test when the status differs, showing the body.
func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.Code != status {
		t.Fatalf("status %d, want %d; body %s", r.Code, status, r.Body.String())
	}
}

// cookieNamed returns the cookie set under name, or nil.
func cookieNamed(cookies []*http.Cookie, name string) *http.Cookie {
	for _, c := range cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// requestCode asks for a code for addr and returns it from the recording mailer.
func (ts *testServer) requestCode(addr string) string {
	ts.t.Helper()
	before := len(ts.mails.sent())
	r := ts.post("/v2/user/login_code/", `{"email":"`+addr+`"}`)
	wantStatus(ts.t, r, http.StatusOK)
	ts.background.Wait()
	sent := ts.mails.sent()
	if len(sent) != before+1 {
		ts.t.Fatalf("asked for a code for %s: %d mails, want %d", addr, len(sent), before+1)
	}
	return sent[len(sent)-1].Code
}

// signIn signs addr in by email+code and returns the session cookies.
func (ts *testServer) signIn(addr string) []*http.Cookie {
	ts.t.Helper()
	code := ts.requestCode(addr)
	r := ts.post("/v2/user/login_code/verify/", `{"email":"`+addr+`","code":"`+code+`"}`)
	wantStatus(ts.t, r, http.StatusOK)
	return r.cookies()
}

// WorkOS-mode helpers: a browser-like cookie jar and a whole AuthKit sign-in against the fake WorkOS.

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
		if strings.Contains(name, "workos_state_") {
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

// emailUserID is the user id an email+code member gets: "user_" and 13 bytes of SHA-256 of the address, stable across
// restarts and key rotation (auth.go, handleVerifyCode).
func emailUserID(addr string) string {
	sum := sha256.Sum256([]byte("dashauth user\x00" + addr))
	return "user_" + hex.EncodeToString(sum[:13])
}
