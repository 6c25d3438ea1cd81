package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestRouting(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	for _, tc := range []struct {
		method, path string
		status       int
		errorCode    string
	}{
		{"GET", "/nope", 404, "not_found"},
		{"GET", "/v2/user/me", 404, "not_found"}, // paths keep their trailing slash
		{"GET", "/v2/user/login_code/", 405, "method_not_allowed"},
		{"DELETE", "/v2/user/logout/", 405, "method_not_allowed"},
		{"GET", "/v2/user/workos_login_url/", 405, "method_not_allowed"},
		{"POST", "/v2/user/workos_login_url/", 404, "workos_not_enabled"},
		{"GET", "/static/../main.go", 404, "not_found"},
		{"GET", "/static/index.html", 404, "not_found"},
		{"GET", "/a/../v2/user/me/", 404, "not_found"},
		{"GET", "/v2/user//me/", 404, "not_found"},
		{"GET", "/static/./app.js", 404, "not_found"},
		{"POST", "/v2/user/login_code/x", 404, "not_found"},
	} {
		r := ts.do(request{method: tc.method, path: tc.path})
		if r.Code != tc.status || r.field("error") != tc.errorCode {
			t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.path, r.Code, r.Body, tc.status, tc.errorCode)
		}
		if tc.status == 405 && r.Header().Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
}

// TestRoutingBeforeRequestChecks: an unknown path or a disabled flow is a
// 404 whatever the request's body type or Origin.
func TestRoutingBeforeRequestChecks(t *testing.T) {
	t.Parallel()
	email := newEmailCodeServer(t)
	workos := newTestServer(t, testEnv(
		"IS_WORKOS_INTEGRATED", "true", "WORKOS_CLIENT_ID", "client_1", "WORKOS_API_KEY", "sk_test",
		"WORKOS_WEBHOOK_SECRET", "whsec", "WORKOS_SIGNIN_BASE_URL", "https://example.authkit.app"))
	for _, tc := range []struct {
		ts           *testServer
		path, reason string
	}{
		{email, "/nope", "not_found"},
		{email, "/v2/user/me/", "method_not_allowed"},
		{email, "/v2/user/workos_login_url/", "workos_not_enabled"},
		{workos, "/v2/user/login_code/", "email_code_login_disabled"},
	} {
		for _, header := range []map[string]string{
			{"Content-Type": "text/plain"},
			{"Content-Type": "application/json", "Origin": "https://evil.example"},
		} {
			r := tc.ts.do(request{method: "POST", path: tc.path, body: `{"email":"ada@example.com"}`, header: header})
			if r.field("error") != tc.reason {
				t.Errorf("POST %s with %v: %d %s, want %s", tc.path, header, r.Code, r.Body, tc.reason)
			}
		}
	}
}

func TestOperationsEndpoints(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		r := ts.get(path)
		wantStatus(t, r, http.StatusOK)
		if r.field("status") != "ok" {
			t.Errorf("%s: %s", path, r.Body)
		}
	}
	r := ts.get("/v1/auth_config/")
	if r.field("login_flow") != "email_code" {
		t.Errorf("auth_config %s", r.Body)
	}
	ts.signIn()
	m := ts.get("/metrics")
	wantStatus(t, m, http.StatusOK)
	body := m.Body.String()
	for _, want := range []string{
		"# TYPE dashauth_signins_total counter",
		`dashauth_signins_total{response_type="LOGIN_SUCCESSFUL"} 1`,
		`dashauth_signins_total{response_type="CODE_SENT"} 1`,
		`dashauth_webhook_events_total{outcome="duplicate"} 0`,
		`dashauth_mails_total{result="sent"} 1`,
		"dashauth_dedup_hits_total 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if !strings.HasPrefix(m.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("metrics Content-Type %q", m.Header().Get("Content-Type"))
	}
}

func TestReadyzWithoutStore(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	ts.store = failingStore{}
	r := ts.get("/readyz")
	wantStatus(t, r, http.StatusServiceUnavailable)
	if r.field("status") == "ok" {
		t.Error("readyz ok without its store")
	}
	// A failing store answers 503, never 500, on the sign-in paths too.
	r = ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)
	wantStatus(t, r, http.StatusServiceUnavailable)
}

// failingStore fails every call, like an unreachable Redis.
type failingStore struct{}

var errStoreDown = fmt.Errorf("store down")

func (failingStore) Get(context.Context, string) (string, bool, error) {
	return "", false, errStoreDown
}
func (failingStore) Set(context.Context, string, string, time.Duration) error {
	return errStoreDown
}
func (failingStore) SetNX(context.Context, string, string, time.Duration) (bool, error) {
	return false, errStoreDown
}
func (failingStore) Incr(context.Context, string, time.Duration) (int64, time.Duration, error) {
	return 0, 0, errStoreDown
}
func (failingStore) Admit(context.Context, string, int64, time.Duration) (bool, time.Duration, error) {
	return false, 0, errStoreDown
}
func (failingStore) Del(context.Context, string) (bool, error) { return false, errStoreDown }
func (failingStore) Ping(context.Context) error                { return errStoreDown }
func (failingStore) Close() error                              { return nil }

func TestContentTypeAndBodyLimits(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
	}{
		{"form post", "application/x-www-form-urlencoded", "email=ada@example.com", 415},
		{"text/plain (no preflight)", "text/plain", `{"email":"ada@example.com"}`, 415},
		{"missing content type", "", `{"email":"ada@example.com"}`, 415},
		{"json with charset", "application/json; charset=utf-8", `{"email":"ada@example.com"}`, 200},
		{"too large", "application/json", `{"email":"` + strings.Repeat("a", maxAPIBody) + `"}`, 413},
	} {
		r := ts.do(request{method: "POST", path: "/v2/user/login_code/", body: tc.body,
			header: map[string]string{"Content-Type": tc.contentType}})
		if r.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, r.Code, r.Body, tc.status)
		}
	}
}

func TestJSONBodies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body, reason string
	}{
		{`{"email":"ada@example.com"}`, ""},
		{` {"email" : "ada@example.com"} `, ""},
		{``, "invalid_json"},
		{`null`, "invalid_json"},
		{`[]`, "invalid_json"},
		{`"x"`, "invalid_json"},
		{`{"email":"a"`, "invalid_json"},
		{`{"email":"a"}{}`, "invalid_json"},
		{`{"email":"a"} x`, "invalid_json"},
		{`{"email":"a","email":"b"}`, "duplicate_field"},
		{`{"email":"a","admin":true}`, "unknown_field"},
		{`{"email":1}`, "invalid_email"},
		{`{"email":null}`, "invalid_email"},
		{`{"email":{"$ne":1}}`, "invalid_email"},
		{`{"email":["a"]}`, "invalid_email"},
		{`{"email":"` + strings.Repeat("[", 10000) + `"}`, ""},
		{strings.Repeat(`{"email":`, 10000), "invalid_email"},
		{`{"email":"\ud800"}`, ""},
		{"{\"email\":\"a\x00\"}", "invalid_json"},
	} {
		var email string
		got := parseFields([]byte(tc.body), map[string]*string{"email": &email})
		if got != tc.reason {
			t.Errorf("parseFields(%.40q) = %q, want %q", tc.body, got, tc.reason)
		}
	}
}

func TestMissingField(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	r := ts.post("/v2/user/login_code/verify/", `{"email":"ada@example.com"}`)
	wantStatus(t, r, http.StatusBadRequest)
	if r.field("error") != "missing_code" {
		t.Errorf("error %q", r.field("error"))
	}
}

func TestCORSAndOrigin(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	preflight := func(origin string) response {
		return ts.do(request{method: "OPTIONS", path: "/v2/user/login_code/", header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}})
	}
	for _, origin := range []string{"http://localhost:8080", "http://127.0.0.1:8080"} {
		r := preflight(origin)
		wantStatus(t, r, http.StatusNoContent)
		if r.Header().Get("Access-Control-Allow-Origin") != origin || r.Header().Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("preflight from %s: %v", origin, r.Header())
		}
	}
	for _, origin := range []string{"https://evil.example", "http://localhost:8081", "http://localhost:8080.evil.example", "null"} {
		r := preflight(origin)
		if r.Code != http.StatusForbidden || r.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s: %d %v", origin, r.Code, r.Header())
		}
		r = ts.do(request{method: "POST", path: "/v2/user/login_code/", body: `{"email":"ada@example.com"}`,
			header: map[string]string{"Origin": origin}})
		wantStatus(t, r, http.StatusForbidden)
	}
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 0 {
		t.Errorf("cross-site posts sent %d mails", n)
	}
	// Same-origin POST and no-Origin POST are fine.
	r := ts.do(request{method: "POST", path: "/v2/user/login_code/", body: `{"email":"ada@example.com"}`,
		header: map[string]string{"Origin": "http://localhost:8080"}})
	wantStatus(t, r, http.StatusOK)
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	page := ts.get("/")
	wantStatus(t, page, http.StatusOK)
	if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	for _, path := range []string{"/", "/en/callback", "/healthz", "/static/app.js"} {
		r := ts.get(path)
		wantStatus(t, r, http.StatusOK)
		if r.Header().Get("X-Content-Type-Options") != "nosniff" || r.Header().Get("Referrer-Policy") != "no-referrer" ||
			r.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, r.Header())
		}
	}
	if !strings.Contains(ts.get("/en/callback").Body.String(), "/static/app.js") {
		t.Error("callback page does not load its script")
	}
}

func TestRecoverPanics(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	h := ts.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("bug") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
	if ts.metrics.get("dashauth_http_panics_total", "", "") != 1 {
		t.Fatal("panic not counted")
	}
	// The cleanup check would flag this deliberate panic; reset it.
	ts.metrics.add("dashauth_http_panics_total", "", "", ^uint64(0))
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	s := &server{cfg: config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"203.0.113.9:5000", nil, "203.0.113.9"},
		{"203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"}, // untrusted peer: header ignored
		{"10.0.0.1:5000", nil, "10.0.0.1"},                       // trusted, no header: the proxy itself
		{"10.0.0.1:5000", []string{"1.2.3.4"}, "1.2.3.4"},
		{"10.0.0.1:5000", []string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"}, // client-written entries on the left are ignored
		{"10.0.0.1:5000", []string{"1.2.3.4, 10.0.0.2"}, "1.2.3.4"},
		{"10.0.0.1:5000", []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},
		{"10.0.0.1:5000", []string{"garbage"}, "10.0.0.1"},
		{"[::ffff:10.0.0.1]:5000", []string{"1.2.3.4"}, "1.2.3.4"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientIP(r).String(); got != tc.want {
			t.Errorf("clientIP(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func TestLoadConfigProduction(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"DASHBOARD_URL": "https://app.example.com",
		"API_URL":       "https://api.example.com",
		"JWT_SECRET":    strings.Repeat("k", 32),
		"SMTP_HOST":     "smtp.example.com",
		"SMTP_FROM":     "login@example.com",
		"MEMBERS_FILE":  "/etc/dashauth/members.json",
	}
	cfg, warnings, err := loadConfig(func(k string) string { return good[k] })
	if err != nil || len(warnings) != 0 || cfg.Dev {
		t.Fatalf("good production config: %v, %v, dev=%v", err, warnings, cfg.Dev)
	}
	if cfg.RedirectURLs[0] != "https://app.example.com/en/callback" || cfg.SMTP.Port != 587 {
		t.Errorf("defaults: %v %d", cfg.RedirectURLs, cfg.SMTP.Port)
	}
	for _, tc := range []struct {
		key, value, problem string
	}{
		{"JWT_SECRET", "", "JWT_SECRET is required"},
		{"JWT_SECRET", strings.Repeat("k", 31), "JWT_SECRET is 31 bytes"},
		{"SMTP_HOST", "", "SMTP_HOST and SMTP_FROM are required"},
		{"SMTP_TLS", "none", "SMTP"},
		{"SMTP_TLS", "ssl", "SMTP"},
		{"LISTEN_ADDR", "8080", "LISTEN_ADDR"},
		{"DASHBOARD_URL", "app.example.com", "DASHBOARD_URL"},
		{"DASHBOARD_URL", "https://app.example.com/path", "DASHBOARD_URL"},
		{"DASHBOARD_URL", "https://user@app.example.com", "DASHBOARD_URL"},
		{"ALLOWED_REDIRECT_URLS", "https://app.example.com/cb?x=1", "ALLOWED_REDIRECT_URLS"},
		{"ALLOWED_REDIRECT_URLS", "javascript:alert(1)", "ALLOWED_REDIRECT_URLS"},
		{"IS_WORKOS_INTEGRATED", "yes", "IS_WORKOS_INTEGRATED"},
		{"IS_WORKOS_INTEGRATED", "true", "WORKOS_CLIENT_ID is required"},
		{"ACCESS_TOKEN_TTL", "15", "ACCESS_TOKEN_TTL"},
		{"REFRESH_TOKEN_TTL", "-1h", "REFRESH_TOKEN_TTL"},
		{"TRUSTED_PROXIES", "10.0.0.1", "TRUSTED_PROXIES"},
		{"MEMBERS_FILE", "", "MEMBERS_FILE is required"},
	} {
		env := map[string]string{}
		for k, v := range good {
			env[k] = v
		}
		env[tc.key] = tc.value
		_, _, err := loadConfig(func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.problem) {
			t.Errorf("%s=%q: error %v, want one mentioning %q", tc.key, tc.value, err, tc.problem)
		}
	}
	// Every problem is reported, one per line.
	_, _, err = loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatalf("empty environment is development mode: %v", err)
	}
	env := map[string]string{"DASHBOARD_URL": "https://app.example.com"}
	_, _, err = loadConfig(func(k string) string { return env[k] })
	if err == nil || len(strings.Split(err.Error(), "\n")) < 3 {
		t.Errorf("want one line per problem, got %v", err)
	}
}

func TestOriginsAreCanonical(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://App.Example.com:443":  "https://app.example.com",
		"https://app.example.com/":     "https://app.example.com",
		"https://app.example.com:8443": "https://app.example.com:8443",
		"HTTP://LOCALHOST:80":          "http://localhost",
		"http://[::1]:80":              "http://[::1]",
		"http://LocalHost:8080":        "http://localhost:8080",
	} {
		got, err := parseOrigin(in)
		if err != nil || got != want {
			t.Errorf("parseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	cfg, _, err := loadConfig(func(k string) string {
		return map[string]string{"DASHBOARD_URL": "http://LocalHost:8080"}[k]
	})
	if err != nil || !cfg.Dev {
		t.Errorf("an upper-case localhost is development mode too: dev=%v, %v", cfg.Dev, err)
	}
}

func TestLoadConfigDevelopment(t *testing.T) {
	t.Parallel()
	cfg, warnings, err := loadConfig(func(string) string { return "" })
	if err != nil || !cfg.Dev || cfg.ListenAddr != "127.0.0.1:8080" || cfg.SMTPEnabled {
		t.Fatalf("dev config %+v, %v", cfg, err)
	}
	if len(warnings) < 2 {
		t.Errorf("warnings %q", warnings)
	}
	if !cfg.sameOrigin("http://127.0.0.1:8080", "http://localhost:8080") || cfg.sameOrigin("http://127.0.0.1:8081", "http://localhost:8080") {
		t.Error("dev origin equivalence")
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DASHBOARD_URL": "https://app.example.com", "LISTEN_ADDR": "127.0.0.1:0"}
	var out strings.Builder
	err := run(context.Background(), func(k string) string { return env[k] }, &out)
	if err == nil || !strings.Contains(err.Error(), "JWT_SECRET is required") {
		t.Fatalf("run = %v", err)
	}
	if strings.Contains(out.String(), "listening") {
		t.Error("listened despite bad config")
	}
}

// TestServeDrainsOnShutdown starts a real listener, begins a slow request,
// cancels the context, and checks that the request finishes and serve returns nil.
func TestServeDrainsOnShutdown(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.serve(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
}

// TestSlowClientIsCut opens a connection that sends half a request header
// and never finishes: the server's read-header timeout must close it.
func TestSlowClientIsCut(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the read-header timeout")
	}
	ts := newEmailCodeServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ts.serve(ctx, ln)

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // no blank line: headers never end
	// A generous bound, only so a broken server fails instead of hanging.
	conn.SetReadDeadline(time.Now().Add(readHeaderTimeout + 20*time.Second))
	_, err = io.ReadAll(bufio.NewReader(conn))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server never closed a slowloris connection")
	}
}

// FuzzParseFields: no body panics the request decoder; an accepted body is
// valid JSON, and its fields survive a round trip through encoding/json.
func FuzzParseFields(f *testing.F) {
	for _, s := range []string{`{"email":"a@b.co","code":"123456"}`, `{"email":"a","email":"b"}`, `{"email":{}}`,
		`{"code":"\u0000"}`, `{"email":"a"} {}`, `[`, `{"email":"\ud800"}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var email, code string
		fields := map[string]*string{"email": &email, "code": &code}
		if parseFields(body, fields) != "" {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		var std map[string]string
		if err := json.Unmarshal(body, &std); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		for name, v := range std {
			if *fields[name] != v {
				t.Fatalf("%s: decoder read %q, encoding/json %q", name, *fields[name], v)
			}
		}
	})
}

// TestRunServesAndStops starts the whole service as main does, with no
// configuration but a free port, answers a request, and stops cleanly when
// its context ends (what SIGTERM does through signal.NotifyContext).
func TestRunServesAndStops(t *testing.T) {
	t.Parallel()
	env := map[string]string{"LISTEN_ADDR": "127.0.0.1:0"}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(k string) string { return env[k] }, logs) }()

	var addr string
	for addr == "" {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
		for _, line := range strings.Split(logs.String(), "\n") {
			var entry struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "listening" {
				addr = entry.Addr
			}
		}
	}
	if !strings.Contains(logs.String(), "development mode") {
		t.Error("no line says the service is in development mode")
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after shutdown = %v, want nil", err)
	}
}

func TestRedisPasswordNeverLogged(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv("REDIS_URL", "redis://app:s3cret-redis-pw@127.0.0.1:1/2"))
	logs := ts.logs.String()
	if !strings.Contains(logs, "state store: redis") || strings.Contains(logs, "s3cret-redis-pw") {
		t.Fatalf("startup log leaks or lacks the store line:\n%s", logs)
	}
	// The store is unreachable: readyz says so, without the URL.
	r := ts.get("/readyz")
	wantStatus(t, r, http.StatusServiceUnavailable)
	if strings.Contains(ts.logs.String(), "s3cret-redis-pw") || strings.Contains(r.Body.String(), "s3cret") {
		t.Fatal("the Redis password reached a log line or a response")
	}
}

// TestRequestLogHasNoQuery: the callback page's URL carries a WorkOS code
// and state; the request log names the path only.
func TestRequestLogHasNoQuery(t *testing.T) {
	t.Parallel()
	ts := newEmailCodeServer(t)
	wantStatus(t, ts.get("/en/callback?code=01SECRETCODE0000000000000000&state=s3cretstate"), http.StatusOK)
	logs := ts.logs.String()
	if !strings.Contains(logs, `"path":"/en/callback"`) {
		t.Fatalf("no request line for the callback page:\n%s", logs)
	}
	if strings.Contains(logs, "01SECRETCODE") || strings.Contains(logs, "s3cretstate") {
		t.Fatalf("the query reached the log:\n%s", logs)
	}
}
