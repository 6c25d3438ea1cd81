package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// recordingMailer keeps every message; err, when set, fails every Send.
type recordingMailer struct {
	mu   sync.Mutex
	msgs []message
	err  error
}

func (m *recordingMailer) Send(ctx context.Context, msg message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.msgs = append(m.msgs, msg)
	return nil
}

func (m *recordingMailer) sent() []message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]message(nil), m.msgs...)
}

func (m *recordingMailer) fail(err error) {
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
}

// testServer is a server with a hand-moved clock and a recording mailer,
// driven through its real handler chain.
type testServer struct {
	*server
	t       *testing.T
	clock   *testClock
	mails   *recordingMailer
	handler http.Handler
	logs    *syncBuffer
}

// testEnv is a development-mode environment with a fixed JWT key.
func testEnv(overrides ...string) map[string]string {
	env := map[string]string{
		"JWT_SECRET": "test-secret-0123456789abcdef0123456789abcdef",
	}
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
	log := slog.New(slog.NewJSONHandler(logs, nil))
	s, err := newServer(cfg, log, clock.Now)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	mails := &recordingMailer{}
	s.mail = mails
	t.Cleanup(func() {
		s.background.Wait()
		s.close()
		if n := s.metrics.get("dashauth_http_panics_total", "", ""); n != 0 {
			t.Errorf("%d handler panics were recovered; logs:\n%s", n, logs.String())
		}
	})
	return &testServer{server: s, t: t, clock: clock, mails: mails, handler: s.routes(), logs: logs}
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
