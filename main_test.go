package main

// run, the routes table, guard and endpoint, /metrics, /healthz and /readyz, and what the service logs.

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logEntry is one JSON log line.
type logEntry map[string]any

func (e logEntry) str(key string) string { s, _ := e[key].(string); return s }

// parseLogEntries reads JSON log lines; a line that is not JSON fails the test.
func parseLogEntries(t *testing.T, text string) []logEntry {
	t.Helper()
	var out []logEntry
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" {
			continue
		}
		var e logEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, line)
		}
		out = append(out, e)
	}
	return out
}

func (ts *testServer) logEntries() []logEntry { return parseLogEntries(ts.t, ts.logs.String()) }

// entriesWithMsg returns the entries whose msg is msg.
func entriesWithMsg(entries []logEntry, msg string) []logEntry {
	var out []logEntry
	for _, e := range entries {
		if e.str("msg") == msg {
			out = append(out, e)
		}
	}
	return out
}

// serveRaw sends r through the server's whole handler chain.
func (ts *testServer) serveRaw(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, r)
	return rec
}

// jsonBodyOfSize is {"email":"aaa…"} of exactly n bytes.
func jsonBodyOfSize(n int) string { return `{"email":"` + strings.Repeat("a", n-12) + `"}` }

// --- WorkOS webhook events, for run's drain test and the replicas' tests.

// magicAuthCreated is a magic_auth.created event as WorkOS sends it.
func magicAuthCreated(eventID, magicAuthID string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"event":"magic_auth.created","data":{"object":"magic_auth","id":%q,"email":"ada@example.com"},"created_at":"2026-11-27T12:00:00.000Z"}`,
		eventID, magicAuthID)
}

// workosSignatureAt is the WorkOS-Signature header for body, signed at now with the fake's webhook secret.
func workosSignatureAt(body []byte, now time.Time) string {
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	return "t=" + ts + ", v1=" + hex.EncodeToString(mac([]byte(testWorkOSWebhookSecret), []byte(ts), []byte{'.'}, body))
}

// newMagicAuthEvent registers a live magic auth for ada@example.com with fake and returns a signed event for it at
// now, with the code.
func newMagicAuthEvent(fake *fakeWorkOS, now time.Time) (body []byte, signature, code string) {
	id := "magic_auth_" + fakeULID()
	code = fmt.Sprintf("%06d", time.Now().UnixNano()%1_000_000)
	fake.addMagicAuth(id, "ada@example.com", code, now.Add(10*time.Minute))
	body = magicAuthCreated("event_"+fakeULID(), id)
	return body, workosSignatureAt(body, now), code
}

// webhookRequest is a POST of a signed event to the webhook.
func webhookRequest(body []byte, signature string) *http.Request {
	r := httptest.NewRequest("POST", "/v1/workos_webhook/", strings.NewReader(string(body)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("WorkOS-Signature", signature)
	r.RemoteAddr = "192.0.2.7:4321"
	return r
}

// workosFront stands in front of a fakeWorkOS: it answers GET /user_management/users (the one read dashauth check
// makes, which the fake lacks) and, once hold is called, holds every magic-auth fetch until release.
type workosFront struct {
	*httptest.Server
	fake    *fakeWorkOS
	entered chan struct{} // a value each time a magic-auth fetch is held

	mu      sync.Mutex
	gate    chan struct{} // nil: nothing held
	release func()
}

func newWorkOSFront(t *testing.T, fake *fakeWorkOS) *workosFront {
	t.Helper()
	f := &workosFront{fake: fake, entered: make(chan struct{}, 64)}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && r.URL.Path == "/user_management/users":
			if fake.bearerOK(w, r) {
				fakeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{},
					"list_metadata": map[string]any{"before": nil, "after": nil}})
			}
			return
		case strings.HasPrefix(r.URL.Path, fakeMagicAuthPath):
			f.mu.Lock()
			gate := f.gate
			f.mu.Unlock()
			if gate != nil {
				f.entered <- struct{}{}
				select {
				case <-gate:
				case <-r.Context().Done():
					return
				}
			}
		}
		fake.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// hold makes every later magic-auth fetch wait for release; the test's end releases them too.
func (f *workosFront) hold(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	f.mu.Lock()
	f.gate, f.release = gate, func() { once.Do(func() { close(gate) }) }
	f.mu.Unlock()
	t.Cleanup(f.release)
}

// workosEnv is a WorkOS-mode environment that talks to base.
func workosEnv(base string) map[string]string {
	return map[string]string{"IS_WORKOS_INTEGRATED": "true", "WORKOS_CLIENT_ID": testWorkOSClientID,
		"WORKOS_API_KEY": testWorkOSAPIKey, "WORKOS_WEBHOOK_SECRET": testWorkOSWebhookSecret,
		"WORKOS_SIGNIN_BASE_URL": testWorkOSSigninBaseURL, "WORKOS_API_BASE_URL": base}
}

// --- run: the whole service on a real listener.

// runningService is run in a goroutine, listening on a loopback port of its own choosing.
type runningService struct {
	url, port string
	stderr    *syncBuffer
	cancel    context.CancelFunc
	exited    chan struct{} // closed once run returned, err set
	err       error
}

// startRun starts run with env (LISTEN_ADDR 127.0.0.1:0 unless set) and waits for its "listening" line.
func startRun(t *testing.T, env map[string]string) *runningService {
	t.Helper()
	if env["LISTEN_ADDR"] == "" {
		env["LISTEN_ADDR"] = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc := &runningService{stderr: &syncBuffer{}, cancel: cancel, exited: make(chan struct{})}
	go func() {
		svc.err = run(ctx, nil, getenvFrom(env), io.Discard, svc.stderr)
		close(svc.exited)
	}()
	t.Cleanup(cancel)
	deadline := time.Now().Add(10 * time.Second) // a bound against a hang, not a measure
	for {
		for _, e := range parseLogEntries(t, svc.stderr.String()) {
			if e.str("msg") == "listening" {
				_, svc.port, _ = net.SplitHostPort(e.str("addr"))
				svc.url = "http://127.0.0.1:" + svc.port
				return svc
			}
		}
		select {
		case <-svc.exited:
			t.Fatalf("run returned before listening: %v\n%s", svc.err, svc.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not listen:\n%s", svc.stderr.String())
		}
	}
}

// stop cancels run's context and returns what run returned.
func (svc *runningService) stop() error {
	svc.cancel()
	<-svc.exited
	return svc.err
}

// waitForLog waits until stderr holds a line with msg.
func (svc *runningService) waitForLog(t *testing.T, msg string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if len(entriesWithMsg(parseLogEntries(t, svc.stderr.String()), msg)) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q line:\n%s", msg, svc.stderr.String())
		}
	}
}

// runToEnd runs run to its return, bounded so that one that serves fails the test instead of hanging it.
func runToEnd(t *testing.T, args []string, env map[string]string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { done <- run(ctx, args, getenvFrom(env), &out, &errOut) }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("run did not return:\n%s", errOut.String())
	}
	return out.String(), errOut.String(), err
}

func TestRunDevelopmentMode(t *testing.T) {
	t.Parallel()
	svc := startRun(t, map[string]string{})
	entries := parseLogEntries(t, svc.stderr.String())
	if msg := entries[0].str("msg"); !strings.Contains(msg, "open http://localhost:"+svc.port+" ") {
		t.Errorf("the first log line does not say which URL to open (port %s): %q", svc.port, msg)
	}
	for _, want := range []string{"JWT_SECRET", "SMTP_HOST"} {
		if !strings.Contains(svc.stderr.String(), want) {
			t.Errorf("no warning names %s:\n%s", want, svc.stderr.String())
		}
	}
	if listening := entriesWithMsg(entries, "listening")[0]; listening.str("login_flow") != "email_code" {
		t.Errorf("the listening line does not name the sign-in flow: %v", listening)
	}
	res, err := http.Get(svc.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("healthz %d, headers %v", res.StatusCode, res.Header)
	}
	if err := svc.stop(); err != nil {
		t.Fatalf("run after its context ended = %v, want nil", err)
	}
	entries = parseLogEntries(t, svc.stderr.String())
	if last := entries[len(entries)-1].str("msg"); last != "stopped" {
		t.Errorf("the last line is %q, want stopped", last)
	}
	if _, err := http.Get(svc.url + "/healthz"); err == nil {
		t.Error("still answering after run returned")
	}
}

func TestRunRefusesBadConfiguration(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DASHBOARD_URL": "https://app.example.com", "LISTEN_ADDR": "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"SMTP_PASSWORD": cfgSMTPPassword, "JWT_SECRET": cfgShortJWTSecret}
	stdout, stderr, err := runToEnd(t, nil, env)
	if err == nil {
		t.Fatal("run started with a production configuration lacking API_URL, JWT_SECRET, SMTP and MEMBERS_FILE")
	}
	for _, name := range []string{"API_URL", "JWT_SECRET", "SMTP_HOST", "MEMBERS_FILE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s:\n%v", name, err)
		}
	}
	if stdout != "" || stderr != "" {
		t.Errorf("run wrote before refusing: stdout %q, stderr %q", stdout, stderr)
	}
	wantNoSecret(t, "run's error", err.Error())
}

// TestRunLogsNoRedisPassword: neither the start nor a Redis that does not answer logs the URL's password.
func TestRunLogsNoRedisPassword(t *testing.T) {
	t.Parallel()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	svc := startRun(t, map[string]string{"REDIS_URL": "redis://app:" + cfgRedisPassword + "@" + addr + "/2"})
	res, err := http.Get(svc.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with Redis unreachable: %d", res.StatusCode)
	}
	if err := svc.stop(); err != nil {
		t.Fatal(err)
	}
	wantNoSecret(t, "the log", svc.stderr.String())
}

func TestRunArguments(t *testing.T) {
	t.Parallel()
	if _, _, err := runToEnd(t, []string{"serve"}, nil); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("run serve = %v, want a usage error", err)
	}
	if _, _, err := runToEnd(t, []string{"check", "extra"}, nil); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("run check extra = %v, want a usage error", err)
	}
	// A taken port is an error naming the address, not a hang.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, _, err = runToEnd(t, nil, map[string]string{"LISTEN_ADDR": ln.Addr().String()})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("run on a taken port = %v", err)
	}
}

// TestRunDrainsInFlightRequests: a webhook whose WorkOS call is slow is in flight when the context ends. It finishes
// (200 after the mail) before run returns nil, and nothing new is accepted meanwhile.
func TestRunDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	front := newWorkOSFront(t, fake)
	front.hold(t)
	svc := startRun(t, workosEnv(front.URL))
	body, signature, code := newMagicAuthEvent(fake, time.Now())

	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", svc.url+"/v1/workos_webhook/", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("WorkOS-Signature", signature)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		answered <- answer{status: res.StatusCode, body: string(b)}
	}()
	select {
	case <-front.entered:
	case a := <-answered:
		t.Fatalf("the webhook answered before fetching its magic auth: %+v", a)
	}

	svc.cancel()
	svc.waitForLog(t, "shutting down: draining requests and deliveries in flight")
	select {
	case <-svc.exited:
		t.Fatalf("run returned (%v) with a request in flight", svc.err)
	default:
	}
	front.release()

	a := <-answered
	if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, `"delivered"`) {
		t.Fatalf("the request in flight got %+v, want 200 delivered", a)
	}
	if err := svc.stop(); err != nil {
		t.Fatalf("run = %v, want nil", err)
	}
	var mailed, stopped int
	for i, e := range parseLogEntries(t, svc.stderr.String()) {
		switch {
		case e.str("msg") == "login code for ada@example.com: "+code:
			mailed = i
		case e.str("msg") == "stopped":
			stopped = i
		}
	}
	if mailed == 0 || stopped < mailed {
		t.Errorf("the code was mailed at line %d, run stopped at line %d:\n%s", mailed, stopped, svc.stderr.String())
	}
}

// --- Routing through the real mux.

// contractRoutes is every path of the contract, with the answer each gives in email+code mode and in WorkOS mode to
// a request of the right method and an empty or empty-object body: "error=…", "field=value", or "" (not JSON).
var contractRoutes = []struct {
	method, path, body string
	email              int
	emailWant          string
	workos             int
	workosWant         string
}{
	{"POST", "/v2/user/login_code/", `{}`, 400, "error=missing_email", 404, "error=email_code_login_disabled"},
	{"POST", "/v2/user/login_code/verify/", `{}`, 400, "error=missing_email", 404, "error=email_code_login_disabled"},
	{"POST", "/v2/user/workos_login_url/", `{}`, 404, "error=workos_not_enabled", 400, "error=missing_redirect_url"},
	{"POST", "/v2/user/workos_signin_callback/", `{}`, 404, "error=workos_not_enabled", 400, "error=missing_code"},
	{"POST", "/v2/user/workos_select_organization/", `{}`, 404, "error=workos_not_enabled", 400, "error=missing_organization_id"},
	{"POST", "/v1/workos_webhook/", `{}`, 404, "error=workos_not_enabled", 401, "error=invalid_signature"},
	{"GET", "/v2/user/me/", "", 401, "error=not_signed_in", 401, "error=not_signed_in"},
	{"POST", "/v2/user/token_refresh/", "", 401, "error=not_signed_in", 401, "error=not_signed_in"},
	{"POST", "/v2/user/logout/", "", 200, "status=logged_out", 200, "status=logged_out"},
	{"GET", "/v1/auth_config/", "", 200, "login_flow=email_code", 200, "login_flow=workos"},
	{"GET", "/healthz", "", 200, "status=ok", 200, "status=ok"},
	{"GET", "/readyz", "", 200, "status=ok", 200, "status=ok"},
	{"GET", "/metrics", "", 200, "", 200, ""},
	{"GET", "/", "", 200, "", 200, ""},
	{"GET", "/en/callback", "", 200, "", 200, ""},
	{"GET", "/static/app.js", "", 200, "", 200, ""},
	{"GET", "/static/style.css", "", 200, "", 200, ""},
}

// wantAnswer checks a status and a "field=value" of the JSON body ("" for a body that must not be JSON).
func wantAnswer(t *testing.T, what string, r response, status int, want string) {
	t.Helper()
	name, value, _ := strings.Cut(want, "=")
	switch {
	case r.Code != status:
		t.Errorf("%s: %d %s, want %d %s", what, r.Code, r.Body, status, want)
	case want == "" && r.json != nil:
		t.Errorf("%s: a JSON body %s", what, r.Body)
	case want != "" && r.field(name) != value:
		t.Errorf("%s: %s, want %s", what, r.Body, want)
	}
}

func TestEveryContractPathAnswers(t *testing.T) {
	t.Parallel()
	email := newTestServer(t, testEnv())
	workos, _ := newWorkOSFlow(t)
	for _, rt := range contractRoutes {
		r := email.do(request{method: rt.method, path: rt.path, body: rt.body})
		wantAnswer(t, "email+code mode "+rt.method+" "+rt.path, r, rt.email, rt.emailWant)
		r = workos.do(request{method: rt.method, path: rt.path, body: rt.body})
		wantAnswer(t, "WorkOS mode "+rt.method+" "+rt.path, r, rt.workos, rt.workosWant)
	}
}

func TestWrongMethod(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	for _, rt := range contractRoutes {
		for _, method := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			if method == rt.method {
				continue
			}
			r := ts.do(request{method: method, path: rt.path, body: `{"email":"ada@example.com"}`})
			what := method + " " + rt.path
			wantAnswer(t, what, r, http.StatusMethodNotAllowed, "error=method_not_allowed")
			if allow := r.Header().Get("Allow"); allow != rt.method {
				t.Errorf("%s: Allow %q, want %q", what, allow, rt.method)
			}
		}
	}
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 0 {
		t.Errorf("requests answered 405 sent %d mails", n)
	}
}

// TestNotFound: unknown paths, paths below or beside a route, and unclean paths are 404 JSON, whatever the method,
// and change nothing.
func TestNotFound(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	for _, path := range []string{
		"/nope", "/v2/", "/v2/user/", "/index.html", "/static/", "/static/index.html", "/static/app.js/",
		"/v2/user/login_code/x", "/v2/user/login_code/verify/x", "/v2/user/me/x", "/healthz/", "/metrics/x", "/en/callback/",
		"//v2/user/login_code/", "/v2//user/login_code/", "/v2/user/login_code//", "/v2/user/./login_code/",
		"/v2/user/x/../login_code/", "/static/../main.go", "/static/./app.js", "/./healthz", "/v2/user/login_code/.",
	} {
		for _, method := range []string{"GET", "POST"} {
			r := ts.do(request{method: method, path: path, body: `{"email":"ada@example.com"}`})
			wantAnswer(t, method+" "+path, r, http.StatusNotFound, "error=not_found")
		}
	}
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 0 {
		t.Errorf("requests answered 404 sent %d mails", n)
	}
	mem := ts.store.(*memoryStore)
	mem.mu.Lock()
	keys := len(mem.m)
	mem.mu.Unlock()
	if keys != 0 {
		t.Errorf("requests answered 404 wrote %d store keys", keys)
	}
	// The address's limit of one code a minute is untouched.
	wantStatus(t, ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`), http.StatusOK)
}

// TestMissingTrailingSlashIsNotFound: contract paths keep their trailing slash; without it a path is unknown (404
// JSON), not redirected: a 307 would have a browser post its body again to the other path.
func TestMissingTrailingSlashIsNotFound(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	for _, path := range []string{"/v2/user/login_code", "/v2/user/login_code/verify", "/v2/user/me", "/v2/user/token_refresh",
		"/v2/user/logout", "/v1/auth_config", "/v1/workos_webhook"} {
		for _, method := range []string{"GET", "POST"} {
			r := ts.do(request{method: method, path: path, body: `{"email":"ada@example.com"}`})
			if r.Code != http.StatusNotFound || r.field("error") != "not_found" {
				t.Errorf("%s %s: %d, Location %q, want 404 not_found", method, path, r.Code, r.Header().Get("Location"))
			}
		}
	}
}

// TestRoutingComesFirst: a path that does not exist, a wrong method and the flow that is off answer as such, before
// the Origin, Content-Type and body checks.
func TestRoutingComesFirst(t *testing.T) {
	t.Parallel()
	email := newTestServer(t, testEnv())
	workos, _ := newWorkOSFlow(t)
	for _, tc := range []struct {
		ts             *testServer
		method, path   string
		status         int
		reason, server string
	}{
		{email, "POST", "/nope", 404, "not_found", "email"},
		{email, "PUT", "/v2/user/login_code/", 405, "method_not_allowed", "email"},
		{email, "POST", "/v2/user/me/", 405, "method_not_allowed", "email"},
		{email, "POST", "/v2/user/workos_login_url/", 404, "workos_not_enabled", "email"},
		{email, "POST", "/v1/workos_webhook/", 404, "workos_not_enabled", "email"},
		{workos, "POST", "/v2/user/login_code/", 404, "email_code_login_disabled", "workos"},
		{workos, "POST", "/v2/user/login_code/verify/", 404, "email_code_login_disabled", "workos"},
	} {
		for name, req := range map[string]request{
			"foreign Origin": {header: map[string]string{"Origin": "https://evil.example"}, body: `{"email":"ada@example.com"}`},
			"text/plain":     {header: map[string]string{"Content-Type": "text/plain"}, body: `{"email":"ada@example.com"}`},
			"oversized body": {body: jsonBodyOfSize(maxAPIBody + 1)},
			"not JSON":       {body: `{`},
		} {
			req.method, req.path = tc.method, tc.path
			r := tc.ts.do(req)
			wantAnswer(t, fmt.Sprintf("%s mode, %s %s with %s", tc.server, tc.method, tc.path, name), r, tc.status, "error="+tc.reason)
		}
	}
}

// TestRequestBodyReasons: decodeBody's 400 reasons, through the endpoints that use it.
func TestRequestBodyReasons(t *testing.T) {
	t.Parallel()
	email := newTestServer(t, testEnv())
	workos, _ := newWorkOSFlow(t)
	for _, tc := range []struct {
		ts         *testServer
		path, body string
		status     int
		reason     string
	}{
		{email, "/v2/user/login_code/", `{}`, 400, "missing_email"},
		{email, "/v2/user/login_code/", `{"email":""}`, 400, "missing_email"},
		{email, "/v2/user/login_code/verify/", `{"email":"ada@example.com"}`, 400, "missing_code"},
		{email, "/v2/user/login_code/verify/", `{"email":"ada@example.com","code":""}`, 400, "missing_code"},
		{email, "/v2/user/login_code/", ``, 400, "invalid_json"},
		{email, "/v2/user/login_code/", `[]`, 400, "invalid_json"},
		{email, "/v2/user/login_code/", `{"email":"a@example.com"} {}`, 400, "invalid_json"},
		{email, "/v2/user/login_code/", `{"email":"a@example.com","admin":true}`, 400, "unknown_field"},
		{email, "/v2/user/login_code/", `{"email":"a@example.com","email":"b@example.com"}`, 400, "duplicate_field"},
		{email, "/v2/user/login_code/", `{"email":1}`, 400, "invalid_email"},
		{email, "/v2/user/login_code/", `{"email":"ada"}`, 400, "invalid_email"},
		{workos, loginURLPath, `{"screen_hint":"sign-in"}`, 400, "missing_redirect_url"},
		{workos, loginURLPath, `{"redirect_url":"` + testRedirectURL + `"}`, 200, ""}, // screen_hint is optional
		{workos, loginURLPath, `{"redirect_url":"` + testRedirectURL + `","screen_hint":"maybe"}`, 400, "invalid_screen_hint"},
		{workos, loginURLPath, `{"redirect_url":"https://evil.example/en/callback"}`, 400, "invalid_redirect_url"},
	} {
		r := tc.ts.do(request{method: "POST", path: tc.path, body: tc.body, header: map[string]string{"Content-Type": "application/json"}})
		if r.Code != tc.status || r.field("error") != tc.reason {
			t.Errorf("POST %s %s: %d %s, want %d %q", tc.path, tc.body, r.Code, r.Body, tc.status, tc.reason)
		}
	}
	// A body that breaks off is 400, not 500.
	req := httptest.NewRequest("POST", "/v2/user/login_code/", io.MultiReader(strings.NewReader(`{"email":`), iotestErrReader{}))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	if rec := email.serveRaw(req); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"unreadable_body"`) {
		t.Errorf("a body that breaks off: %d %s", rec.Code, rec.Body)
	}
}

// iotestErrReader fails every read, as a connection that drops mid-body.
type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// TestServeCutsSlowClients: a connection that never finishes its request header is closed by the server's
// read-header timeout, rather than holding a goroutine for ever.
func TestServeCutsSlowClients(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the read-header timeout")
	}
	ts := newTestServer(t, testEnv())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ts.serve(ctx, ln) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// No blank line: the header never ends. The read deadline is a bound against a hang, not a measure.
	fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	conn.SetReadDeadline(time.Now().Add(readHeaderTimeout + 20*time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("the server never closed a connection whose header did not end: %v", err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("serve = %v, want nil", err)
	}
}

func TestClientIPBehindProxies(t *testing.T) {
	t.Parallel()
	cfg, _, err := loadEnv(map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cfg: cfg}
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"203.0.113.9:5000", nil, "203.0.113.9"},
		{"203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"}, // an untrusted peer's header is ignored
		{"10.0.0.1:5000", nil, "10.0.0.1"},                       // a proxy without the header: itself
		{"10.0.0.1:5000", []string{"1.2.3.4"}, "1.2.3.4"},
		{"10.0.0.1:5000", []string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"}, // hops the client wrote, on the left, are ignored
		{"10.0.0.1:5000", []string{"1.2.3.4, 10.0.0.2"}, "1.2.3.4"},
		{"10.0.0.1:5000", []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},
		{"10.0.0.1:5000", []string{"1.2.3.4:443"}, "1.2.3.4"},
		{"10.0.0.1:5000", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"10.0.0.1:5000", []string{"[2001:db8::1]"}, "10.0.0.1"}, // brackets only with a port, as in a URL authority
		{"10.0.0.1:5000", []string{"garbage"}, "10.0.0.1"},
		{"10.0.0.1:5000", []string{"1.2.3.4, garbage"}, "10.0.0.1"},
		{"10.0.0.1:5000", []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"[::ffff:10.0.0.1]:5000", []string{"1.2.3.4"}, "1.2.3.4"},
		{"[fd00::5]:5000", []string{"::ffff:1.2.3.4"}, "1.2.3.4"},
		{"not-an-address", nil, "0.0.0.0"},
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

// --- guard and endpoint.

func TestCORSAndOrigin(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv("API_URL", "http://localhost:9090"))
	preflight := func(origin string) response {
		return ts.do(request{method: "OPTIONS", path: "/v2/user/login_code/", header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}})
	}
	post := func(origin, addr string) response {
		return ts.do(request{method: "POST", path: "/v2/user/login_code/", body: `{"email":"` + addr + `"}`,
			header: map[string]string{"Origin": origin}})
	}
	for i, tc := range []struct {
		origin        string
		cors, postOK  bool
		preflightCode int
	}{
		{"http://localhost:8080", true, true, 204},
		{"http://127.0.0.1:8080", true, true, 204},   // development mode: one origin
		{"http://localhost:9090", false, true, 403},  // API_URL: its own page may post, but gets no CORS
		{"https://evil.example", false, false, 403},  // another site
		{"http://localhost:8081", false, false, 403}, // another port
		{"https://localhost:8080", false, false, 403},
		{"http://localhost:8080.evil.example", false, false, 403},
		{"null", false, false, 403},
	} {
		p := preflight(tc.origin)
		if p.Code != tc.preflightCode {
			t.Errorf("preflight from %s: %d %s, want %d", tc.origin, p.Code, p.Body, tc.preflightCode)
		}
		acao := p.Header().Get("Access-Control-Allow-Origin")
		if tc.cors && (acao != tc.origin || p.Header().Get("Access-Control-Allow-Credentials") != "true" ||
			!strings.Contains(p.Header().Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(p.Header().Get("Access-Control-Allow-Methods"), "GET") ||
			!strings.EqualFold(p.Header().Get("Access-Control-Allow-Headers"), "Content-Type") || p.Body.Len() != 0) {
			t.Errorf("preflight from %s: headers %v, body %q", tc.origin, p.Header(), p.Body)
		}
		if !tc.cors && (acao != "" || p.Header().Get("Access-Control-Allow-Credentials") != "") {
			t.Errorf("preflight from %s got CORS headers %v", tc.origin, p.Header())
		}
		if !tc.cors && p.field("error") != "origin_not_allowed" {
			t.Errorf("preflight from %s: %s", tc.origin, p.Body)
		}

		r := post(tc.origin, fmt.Sprintf("person%d@example.com", i))
		switch {
		case tc.postOK && r.Code != http.StatusOK:
			t.Errorf("POST from %s: %d %s", tc.origin, r.Code, r.Body)
		case !tc.postOK && (r.Code != http.StatusForbidden || r.field("error") != "origin_not_allowed"):
			t.Errorf("POST from %s: %d %s, want 403 origin_not_allowed", tc.origin, r.Code, r.Body)
		}
		if got := r.Header().Get("Access-Control-Allow-Origin"); (got != "") != tc.cors {
			t.Errorf("POST from %s: Access-Control-Allow-Origin %q", tc.origin, got)
		}
	}
	if g := ts.get("/v2/user/me/"); g.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a request without Origin got CORS headers %v", g.Header())
	}
	// No Origin at all (curl, a same-origin GET-less client) is fine.
	wantStatus(t, ts.post("/v2/user/login_code/", `{"email":"no-origin@example.com"}`), http.StatusOK)
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 4 {
		t.Errorf("%d mails, want 4: one per allowed POST", n)
	}
}

func TestOriginInProduction(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, prodEnv("DASHBOARD_URL", "https://App.Example.com:443/", "MEMBERS_FILE",
		writeMembers(t, `{"members": []}`)))
	for i, tc := range []struct {
		origin string
		status int
		cors   bool
	}{
		{"https://app.example.com", 200, true}, // as a browser writes the configured origin
		{"https://api.example.com", 200, false},
		{"http://app.example.com", 403, false},
		{"https://app.example.com:8443", 403, false},
		{"http://127.0.0.1:8080", 403, false},
		{"http://localhost:8080", 403, false},
	} {
		r := ts.do(request{method: "POST", path: "/v2/user/login_code/", body: fmt.Sprintf(`{"email":"p%d@example.com"}`, i),
			header: map[string]string{"Origin": tc.origin}})
		if r.Code != tc.status {
			t.Errorf("POST from %s: %d %s, want %d", tc.origin, r.Code, r.Body, tc.status)
		}
		if got := r.Header().Get("Access-Control-Allow-Origin"); (got == tc.origin) != tc.cors {
			t.Errorf("POST from %s: Access-Control-Allow-Origin %q", tc.origin, got)
		}
	}
}

// TestWebhookIsExemptFromOrigin: WorkOS's calls are proved by their signature, not their Origin.
func TestWebhookIsExemptFromOrigin(t *testing.T) {
	t.Parallel()
	ts, _ := newWorkOSFlow(t)
	body := []byte(`{"id":"event_01HXXXXXXXXXXXXXXXXXXXXXXX","event":"user.created","data":{"id":"user_01"}}`)
	for _, tc := range []struct {
		signature string
		status    int
	}{
		{"", http.StatusUnauthorized},
		{workosSignatureAt(body, ts.clock.Now()), http.StatusOK},
	} {
		req := webhookRequest(body, tc.signature)
		req.Header.Set("Origin", "https://evil.example")
		if rec := ts.serveRaw(req); rec.Code != tc.status {
			t.Errorf("webhook with a foreign Origin, signature %q: %d %s, want %d", tc.signature, rec.Code, rec.Body, tc.status)
		}
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	accepted := 0
	for i, tc := range []struct {
		contentType string
		status      int
	}{
		{"application/x-www-form-urlencoded", 415},
		{"multipart/form-data; boundary=x", 415},
		{"text/plain", 415},
		{"text/plain; charset=utf-8", 415},
		{"", 415},
		{"application/json-patch+json", 415},
		{"application/jsonp", 415},
		{"application/json", 200},
		{"application/json; charset=utf-8", 200},
		{"Application/JSON", 200},
	} {
		r := ts.do(request{method: "POST", path: "/v2/user/login_code/", body: fmt.Sprintf(`{"email":"p%d@example.com"}`, i),
			header: map[string]string{"Content-Type": tc.contentType}})
		if r.Code != tc.status {
			t.Errorf("Content-Type %q: %d %s, want %d", tc.contentType, r.Code, r.Body, tc.status)
		}
		if tc.status == 415 && r.field("error") != "content_type_must_be_application_json" {
			t.Errorf("Content-Type %q: %s", tc.contentType, r.Body)
		}
		if tc.status == 200 {
			accepted++
		}
	}
	// A POST without a body needs no Content-Type.
	wantAnswer(t, "logout without a body", ts.post("/v2/user/logout/", ""), 200, "status=logged_out")
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != accepted {
		t.Errorf("%d mails, want %d: a refused body sends none", n, accepted)
	}
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	email := newTestServer(t, testEnv())
	workos, _ := newWorkOSFlow(t)
	post := func(ts *testServer, path, body string, streamed bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if streamed { // chunked: no Content-Length to refuse early
			r.ContentLength = -1
			r.Body = io.NopCloser(io.MultiReader(strings.NewReader(body)))
		}
		return ts.serveRaw(r)
	}
	for _, streamed := range []bool{false, true} {
		for _, tc := range []struct {
			ts           *testServer
			path         string
			size, status int
		}{
			{email, "/v2/user/login_code/", maxAPIBody, 400}, // read whole: the address is what is wrong
			{email, "/v2/user/login_code/", maxAPIBody + 1, 413},
			{email, "/v2/user/login_code/verify/", 1 << 20, 413},
			{workos, "/v2/user/workos_login_url/", maxAPIBody + 1, 413},
			{workos, "/v1/workos_webhook/", maxAPIBody + 1, 401}, // the webhook takes up to 1 MiB
			{workos, "/v1/workos_webhook/", maxWebhookBody + 1, 413},
		} {
			rec := post(tc.ts, tc.path, jsonBodyOfSize(tc.size), streamed)
			if rec.Code != tc.status {
				t.Errorf("%s with %d bytes (streamed %v): %d %s, want %d", tc.path, tc.size, streamed, rec.Code, rec.Body, tc.status)
			}
			if tc.status == 413 && !strings.Contains(rec.Body.String(), `"body_too_large"`) {
				t.Errorf("%s 413 body %s", tc.path, rec.Body)
			}
		}
	}
}

func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	for _, req := range []request{
		{method: "GET", path: "/"},
		{method: "GET", path: "/en/callback?code=x&state=y"},
		{method: "GET", path: "/static/app.js"},
		{method: "GET", path: "/static/style.css"},
		{method: "GET", path: "/healthz"},
		{method: "GET", path: "/metrics"},
		{method: "GET", path: "/v2/user/me/"},
		{method: "GET", path: "/nope"},
		{method: "GET", path: "/v2//user/me/"},
		{method: "DELETE", path: "/v2/user/logout/"},
		{method: "POST", path: "/v2/user/login_code/", body: `{`},
		{method: "POST", path: "/v2/user/login_code/", body: jsonBodyOfSize(maxAPIBody + 1)},
		{method: "POST", path: "/v2/user/login_code/", body: "x", header: map[string]string{"Content-Type": "text/plain"}},
		{method: "POST", path: "/v2/user/login_code/", body: `{}`, header: map[string]string{"Origin": "https://evil.example"}},
		{method: "OPTIONS", path: "/v2/user/login_code/", header: map[string]string{"Origin": "http://localhost:8080", "Access-Control-Request-Method": "POST"}},
		{method: "OPTIONS", path: "/v2/user/login_code/", header: map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}},
	} {
		r := ts.do(req)
		wantSecurityHeaders(t, req.method+" "+req.path, r.Header())
	}
}

func wantSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
		"Referrer-Policy": "no-referrer", "Vary": "Origin"} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %s %q, want %q", what, name, got, want)
		}
	}
}

func TestPages(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	for path, contentType := range map[string]string{
		"/": "text/html; charset=utf-8", "/en/callback": "text/html; charset=utf-8",
		"/static/app.js": "text/javascript; charset=utf-8", "/static/style.css": "text/css; charset=utf-8",
	} {
		r := ts.get(path)
		wantStatus(t, r, http.StatusOK)
		csp := r.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q allows inline code", path, csp)
		}
		if got := r.Header().Get("Content-Type"); got != contentType {
			t.Errorf("%s: Content-Type %q, want %q", path, got, contentType)
		}
		if r.Body.Len() == 0 {
			t.Errorf("%s: empty", path)
		}
	}
	page := ts.get("/en/callback").Body.String()
	if !strings.Contains(page, `src="/static/app.js"`) || !strings.Contains(page, `href="/static/style.css"`) {
		t.Error("the callback page does not load its script and style")
	}
	if regexp.MustCompile(`<script>|\son[a-z]+=`).MatchString(page) {
		t.Error("the page has inline script, which its CSP blocks")
	}
}

// TestPageCarriesTheLoginFlow: the page names the sign-in flow (main.go replaces {{login_flow}} in it), so the right
// form renders before its script asks /v1/auth_config/.
func TestPageCarriesTheLoginFlow(t *testing.T) {
	t.Parallel()
	email := newTestServer(t, testEnv()).get("/").Body.String()
	workosTS, _ := newWorkOSFlow(t)
	workos := workosTS.get("/").Body.String()
	if strings.Contains(email, "{{") || strings.Contains(workos, "{{") {
		t.Fatal("a template placeholder reached the page")
	}
	if !strings.Contains(email, "email_code") || email == workos {
		t.Errorf("the page does not name its sign-in flow: the email+code and WorkOS pages are the same %d bytes, "+
			"neither says email_code (web/index.html has no {{login_flow}} to replace)", len(email))
	}
}

func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("a bug") })
	mux.HandleFunc("/abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	h := ts.guard(mux)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"internal_error"`) {
		t.Fatalf("a panic answered %d %s", rec.Code, rec.Body)
	}
	wantSecurityHeaders(t, "the 500", rec.Header())
	if n := ts.metric("dashauth_http_panics_total", ""); n != 1 {
		t.Fatalf("dashauth_http_panics_total = %d, want 1", n)
	}
	if !strings.Contains(ts.get("/metrics").Body.String(), "\ndashauth_http_panics_total 1\n") {
		t.Error("/metrics does not show the panic")
	}
	entries := ts.logEntries()
	if p := entriesWithMsg(entries, "handler panic"); len(p) != 1 || p[0].str("path") != "/boom" || p[0].str("panic") != "a bug" {
		t.Errorf("panic log lines %v", p)
	}
	if r := entriesWithMsg(entries, "request refused"); len(r) != 1 || r[0]["status"] != 500.0 || r[0].str("error") != "internal_error" {
		t.Errorf("refusal log lines %v", r)
	}

	// The server's own signal to drop a connection passes through.
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("guard swallowed http.ErrAbortHandler: recovered %v", v)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/abort", nil))
	}()
	if n := ts.metric("dashauth_http_panics_total", ""); n != 1 {
		t.Errorf("http.ErrAbortHandler counted as a panic: %d", n)
	}
	ts.counters["dashauth_http_panics_total\x00"].Store(0) // deliberate: the harness fails a test with panics
}

// --- /metrics, /healthz, /readyz.

// readMetricsPage scrapes /metrics into series → value, checking HELP and TYPE come once per family, first.
func readMetricsPage(t *testing.T, ts *testServer) map[string]string {
	t.Helper()
	r := ts.get("/metrics")
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	series, typed := map[string]string{}, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(r.Body.String()))
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, kind, _ := strings.Cut(name, " ")
			if typed[name] || kind != "counter" {
				t.Errorf("TYPE of %s twice or not a counter: %q", name, line)
			}
			typed[name] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		family, _, _ := strings.Cut(name, "{")
		if _, err := strconv.ParseUint(value, 10, 64); !ok || err != nil || !typed[family] {
			t.Errorf("not a sample of a typed counter: %q", line)
		}
		series[name] = value
	}
	return series
}

func TestMetricsStartAtZero(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	series := readMetricsPage(t, ts)
	want := 0
	for _, f := range counterFamilies {
		for _, v := range f.values {
			name := f.name
			if f.label != "" {
				name += fmt.Sprintf("{%s=%q}", f.label, v)
			}
			want++
			if series[name] != "0" {
				t.Errorf("%s = %q at start, want 0", name, series[name])
			}
		}
	}
	if len(series) != want {
		t.Errorf("%d series, want %d", len(series), want)
	}
	// The contract's series, and the two that alert on abuse and bugs, by name.
	for _, name := range []string{`dashauth_signins_total{response_type="LOGIN_SUCCESSFUL"}`,
		`dashauth_signins_total{response_type="CODE_SENT"}`, `dashauth_signins_total{response_type="LINK_EXPIRED"}`,
		`dashauth_webhook_events_total{outcome="delivered"}`, `dashauth_webhook_events_total{outcome="duplicate"}`,
		`dashauth_webhook_events_total{outcome="ignored"}`, `dashauth_webhook_events_total{outcome="rejected"}`,
		`dashauth_webhook_events_total{outcome="failed"}`, `dashauth_mails_total{result="sent"}`, `dashauth_mails_total{result="failed"}`,
		"dashauth_dedup_hits_total", "dashauth_rate_limited_total", "dashauth_http_panics_total"} {
		if series[name] != "0" {
			t.Errorf("%s = %q at start, want 0", name, series[name])
		}
	}
}

func TestMetricsCount(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	code := ts.requestCode("ada@example.com")
	wantStatus(t, ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`), http.StatusTooManyRequests)
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1_000_000)
	wantStatus(t, ts.post("/v2/user/login_code/verify/", `{"email":"ada@example.com","code":"`+wrong+`"}`), http.StatusBadRequest)
	wantStatus(t, ts.post("/v2/user/login_code/verify/", `{"email":"ada@example.com","code":"`+code+`"}`), http.StatusOK)
	wantStatus(t, ts.post("/v2/user/login_code/verify/", `{"email":"ada@example.com","code":"`+code+`"}`), http.StatusBadRequest)
	ts.mails.fail(errors.New("smtp down"))
	wantStatus(t, ts.post("/v2/user/login_code/", `{"email":"bob@example.com"}`), http.StatusOK)
	ts.background.Wait()

	series := readMetricsPage(t, ts)
	for name, want := range map[string]string{
		`dashauth_signins_total{response_type="CODE_SENT"}`:        "2",
		`dashauth_signins_total{response_type="LINK_INVALID"}`:     "1",
		`dashauth_signins_total{response_type="LOGIN_SUCCESSFUL"}`: "1",
		`dashauth_signins_total{response_type="LINK_EXPIRED"}`:     "1",
		`dashauth_mails_total{result="sent"}`:                      "1",
		`dashauth_mails_total{result="failed"}`:                    "1",
		"dashauth_rate_limited_total":                              "1",
		"dashauth_http_panics_total":                               "0",
		`dashauth_webhook_events_total{outcome="delivered"}`:       "0",
	} {
		if series[name] != want {
			t.Errorf("%s = %q, want %s", name, series[name], want)
		}
	}
}

// TestLimitsLapseInMemoryMode: with the memory store, once a limit's window has passed with nothing in it, the next
// request is admitted, on the limit of one code a minute as on the client limits. (The limit's key has expired then;
// an expired key must read as absent, or admit's compare-and-set can never replace it.)
func TestLimitsLapseInMemoryMode(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	ts.requestCode("ada@example.com")
	ts.clock.Advance(time.Minute + time.Second)
	r := ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)
	if r.Code != http.StatusOK {
		t.Errorf("a second code a minute after the first: %d %s, Retry-After %q", r.Code, r.Body, r.Header().Get("Retry-After"))
	}
	ts.clock.Advance(time.Hour) // every window has lapsed
	if r := ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`); r.Code != http.StatusOK {
		t.Errorf("a code an hour later: %d %s, Retry-After %q", r.Code, r.Body, r.Header().Get("Retry-After"))
	}
	if r := ts.post("/v2/user/login_code/verify/", `{"email":"ada@example.com","code":"000000"}`); r.Code == http.StatusTooManyRequests {
		t.Errorf("verify an hour later: %d %s", r.Code, r.Body)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	memory := newTestServer(t, testEnv())
	wantAnswer(t, "healthz", memory.get("/healthz"), 200, "status=ok")
	wantAnswer(t, "readyz with the memory store", memory.get("/readyz"), 200, "status=ok")

	rs := startRedis(t)
	ts := newTestServer(t, testEnv("REDIS_URL", rs.URL()))
	wantAnswer(t, "readyz with Redis", ts.get("/readyz"), 200, "status=ok")
	rs.Kill()
	r := ts.get("/readyz")
	wantAnswer(t, "readyz with Redis down", r, 503, "reason=redis_unreachable")
	if r.field("status") == "ok" || r.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("readyz with Redis down: %s %v", r.Body, r.Header())
	}
	wantAnswer(t, "healthz with Redis down", ts.get("/healthz"), 200, "status=ok")
	rs.Restart()
	wantAnswer(t, "readyz with Redis back", ts.get("/readyz"), 200, "status=ok")
}

// pingProbe is a store whose Ping records the time its context leaves it, and fails.
type pingProbe struct {
	store
	left chan time.Duration
}

func (p pingProbe) Ping(ctx context.Context) error {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(time.Hour)
	}
	p.left <- time.Until(d)
	return errors.New("down")
}

// TestReadyzAnswersWithinTheProbeTimeout: Kubernetes waits 1 s for a probe; readyz gives the store less than that.
func TestReadyzAnswersWithinTheProbeTimeout(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	probe := pingProbe{ts.store, make(chan time.Duration, 1)}
	ts.store = probe
	wantAnswer(t, "readyz", ts.get("/readyz"), 503, "reason=redis_unreachable")
	if left := <-probe.left; left > time.Second || left <= 0 {
		t.Errorf("readyz gave the store %v, want under 1 s", left)
	}
}

// TestReadyzWithAStalledRedis: a Redis that accepts and never answers fails readyz by readyz's own deadline, with a
// password (AUTH on connecting) as without.
func TestReadyzWithAStalledRedis(t *testing.T) {
	t.Parallel()
	stalled, _ := startSilentListener(t)
	for _, url := range []string{"redis://" + stalled, "redis://:" + cfgRedisPassword + "@" + stalled} {
		ts := newTestServer(t, testEnv("REDIS_URL", url))
		wantAnswer(t, "readyz", ts.get("/readyz"), 503, "reason=redis_unreachable")
		warn := entriesWithMsg(ts.logEntries(), "readyz: the store does not answer")
		if len(warn) != 1 || !strings.Contains(warn[0].str("err"), context.DeadlineExceeded.Error()) {
			t.Errorf("%s: readyz did not give up at its own deadline: %v", strings.Replace(url, cfgRedisPassword, "…", 1), warn)
		}
		wantNoSecret(t, "the log", ts.logs.String())
	}
}

// --- Logs.

// downStore fails every call, as an unreachable Redis.
type downStore struct{}

func (downStore) Get(context.Context, string) (string, bool, error) {
	return "", false, errors.New("store down")
}
func (downStore) Put(context.Context, string, string, string, time.Duration) (bool, error) {
	return false, errors.New("store down")
}
func (downStore) Ping(context.Context) error { return errors.New("store down") }

// TestEveryRefusalIsLogged: each answer but a 2xx leaves one "request refused" line with its method, path, status and
// reason, and the client, never the query.
func TestEveryRefusalIsLogged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		req    request
		status int
		reason string
		setup  func(*testServer)
	}{
		{"unknown path", request{method: "GET", path: "/nope?code=123456"}, 404, "not_found", nil},
		{"unclean path", request{method: "GET", path: "/v2/user/../user/me/"}, 404, "not_found", nil},
		{"wrong method", request{method: "DELETE", path: "/v2/user/logout/"}, 405, "method_not_allowed", nil},
		{"flow off", request{method: "POST", path: "/v2/user/workos_login_url/", body: `{}`}, 404, "workos_not_enabled", nil},
		{"foreign origin", request{method: "POST", path: "/v2/user/login_code/", body: `{}`,
			header: map[string]string{"Origin": "https://evil.example"}}, 403, "origin_not_allowed", nil},
		{"foreign preflight", request{method: "OPTIONS", path: "/v2/user/login_code/",
			header: map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}}, 403, "origin_not_allowed", nil},
		{"not JSON", request{method: "POST", path: "/v2/user/login_code/", body: "x",
			header: map[string]string{"Content-Type": "text/plain"}}, 415, "content_type_must_be_application_json", nil},
		{"too large", request{method: "POST", path: "/v2/user/login_code/", body: jsonBodyOfSize(maxAPIBody + 1)}, 413, "body_too_large", nil},
		{"bad JSON", request{method: "POST", path: "/v2/user/login_code/", body: `{`}, 400, "invalid_json", nil},
		{"bad address", request{method: "POST", path: "/v2/user/login_code/", body: `{"email":"ada"}`}, 400, "invalid_email", nil},
		{"rate limited", request{method: "POST", path: "/v2/user/login_code/", body: `{"email":"ada@example.com"}`}, 429, "rate_limited",
			func(ts *testServer) { ts.requestCode("ada@example.com") }},
		{"stale session", request{method: "GET", path: "/v2/user/me/", cookies: []*http.Cookie{{Name: "access_token", Value: "x.y.z"}}},
			401, "session_expired", nil},
		{"store down", request{method: "POST", path: "/v2/user/login_code/", body: `{"email":"ada@example.com"}`}, 503, "state_unavailable",
			func(ts *testServer) { ts.store = downStore{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, testEnv())
			if tc.setup != nil {
				tc.setup(ts)
			}
			before := len(entriesWithMsg(ts.logEntries(), "request refused"))
			wantAnswer(t, tc.name, ts.do(tc.req), tc.status, "error="+tc.reason)
			refused := entriesWithMsg(ts.logEntries(), "request refused")[before:]
			path, _, _ := strings.Cut(tc.req.path, "?")
			if len(refused) != 1 {
				t.Fatalf("%d request refused lines, want 1:\n%s", len(refused), ts.logs.String())
			}
			e := refused[0]
			if e.str("method") != tc.req.method || e.str("path") != path || e["status"] != float64(tc.status) ||
				e.str("error") != tc.reason || e.str("client") != "192.0.2.1" {
				t.Errorf("log line %v", e)
			}
			if level := map[bool]string{true: "ERROR", false: "INFO"}[tc.status >= 500]; e.str("level") != level {
				t.Errorf("level %q, want %s", e.str("level"), level)
			}
		})
	}
}

// TestQuietAnswers: 2xx answers and a 401 to a visitor without any session cookie write no line at the info level.
func TestQuietAnswers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	for _, req := range []request{
		{method: "GET", path: "/"}, {method: "GET", path: "/en/callback?code=c&state=s"}, {method: "GET", path: "/static/app.js"},
		{method: "GET", path: "/healthz"}, {method: "GET", path: "/readyz"}, {method: "GET", path: "/metrics"},
		{method: "GET", path: "/v1/auth_config/"}, {method: "POST", path: "/v2/user/logout/"},
		{method: "GET", path: "/v2/user/me/"}, {method: "POST", path: "/v2/user/token_refresh/"},
		{method: "OPTIONS", path: "/v2/user/me/", header: map[string]string{"Origin": "http://localhost:8080", "Access-Control-Request-Method": "GET"}},
		{method: "GET", path: "/v2/user/me/", cookies: []*http.Cookie{{Name: "theme", Value: "dark"}}},
	} {
		r := ts.do(req)
		if r.Code/100 != 2 && r.Code != http.StatusUnauthorized {
			t.Errorf("%s %s: %d %s", req.method, req.path, r.Code, r.Body)
		}
	}
	if logs := ts.logs.String(); logs != "" {
		t.Errorf("quiet answers were logged:\n%s", logs)
	}
	// With LOG_LEVEL=debug, every request has its line, by path alone.
	debug := newTestServer(t, testEnv("LOG_LEVEL", "debug"))
	wantStatus(t, debug.get("/en/callback?code=c0de&state=st4te"), http.StatusOK)
	wantStatus(t, debug.get("/healthz"), http.StatusOK)
	lines := entriesWithMsg(debug.logEntries(), "request")
	if len(lines) != 2 || lines[0].str("path") != "/en/callback" || lines[0].str("method") != "GET" || lines[1].str("path") != "/healthz" {
		t.Errorf("debug request lines %v", lines)
	}
	if _, ok := lines[0]["duration_ms"]; !ok {
		t.Errorf("a debug request line without its duration: %v", lines[0])
	}
	if strings.Contains(debug.logs.String(), "c0de") || strings.Contains(debug.logs.String(), "st4te") {
		t.Errorf("the query reached the log:\n%s", debug.logs.String())
	}
}

// secretsIn returns the values of the session and state cookies of rs.
func secretsIn(rs ...response) []string {
	var out []string
	for _, r := range rs {
		for _, c := range r.cookies() {
			if len(c.Value) > 8 {
				out = append(out, c.Value)
			}
		}
	}
	return out
}

// wantLogsFree fails when a log line holds one of secrets, or a code as a number of its own. except is a line that
// may hold the code: development mode's "login code for" line.
func wantLogsFree(t *testing.T, logs []logEntry, secrets, codes []string, except string) {
	t.Helper()
	for _, e := range logs {
		if except != "" && strings.HasPrefix(e.str("msg"), except) {
			continue
		}
		line, _ := json.Marshal(e)
		for _, s := range append(slices.Clone(secrets), cfgSecrets...) {
			if strings.Contains(string(line), s) {
				t.Errorf("a log line holds a secret %.12q…: %s", s, line)
			}
		}
		for _, c := range codes {
			if regexp.MustCompile(`(^|[^0-9])` + c + `([^0-9]|$)`).Match(line) {
				t.Errorf("a log line holds the code %s: %s", c, line)
			}
		}
	}
}

// TestLogsHoldNoSecretsEmailCode runs email+code sign-in, refresh and logout at the debug level, with codes written
// to the log as in development mode: only the "login code for" line holds a code, and no line a token, a cookie, a
// password or a query.
func TestLogsHoldNoSecretsEmailCode(t *testing.T) {
	t.Parallel()
	rs := startRedis(t, "--requirepass", cfgRedisPassword)
	ts := newTestServer(t, testEnv("LOG_LEVEL", "debug", "JWT_SECRET", cfgJWTSecret,
		"REDIS_URL", "redis://:"+cfgRedisPassword+"@"+rs.Addr()))
	ts.mail = logMailer{ts.log}

	wantStatus(t, ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`), http.StatusOK)
	ts.background.Wait()
	var code string
	for _, e := range ts.logEntries() {
		if c, ok := strings.CutPrefix(e.str("msg"), "login code for ada@example.com: "); ok {
			code = c
		}
	}
	if !validCode(code) {
		t.Fatalf("no login code line:\n%s", ts.logs.String())
	}
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1_000_000)
	bad := ts.post("/v2/user/login_code/verify/", `{"email":"ada@example.com","code":"`+wrong+`"}`)
	wantStatus(t, bad, http.StatusBadRequest)
	signed := ts.post("/v2/user/login_code/verify/", `{"email":"ada@example.com","code":"`+code+`"}`)
	wantStatus(t, signed, http.StatusOK)
	wantStatus(t, ts.get("/v2/user/me/", signed.cookies()...), http.StatusOK)
	refreshed := ts.post("/v2/user/token_refresh/", "", signed.cookies()...)
	wantStatus(t, refreshed, http.StatusOK)
	ts.clock.Advance(time.Minute)
	wantStatus(t, ts.post("/v2/user/token_refresh/", "", signed.cookies()...), http.StatusUnauthorized) // replay: revoked
	wantStatus(t, ts.get("/v2/user/me/", refreshed.cookies()...), http.StatusUnauthorized)
	wantStatus(t, ts.get("/en/callback?code=01SECRETCODE0000000000000000&state=s3cretstate"), http.StatusOK)
	wantStatus(t, ts.post("/v2/user/logout/", "", refreshed.cookies()...), http.StatusOK)

	// And the Redis password, when Redis is gone.
	rs.Kill()
	wantStatus(t, ts.post("/v2/user/login_code/", `{"email":"bob@example.com"}`), http.StatusServiceUnavailable)
	wantStatus(t, ts.get("/readyz"), http.StatusServiceUnavailable)

	secrets := append(secretsIn(signed, refreshed), "01SECRETCODE", "s3cretstate", "code=", "state=")
	wantLogsFree(t, ts.logEntries(), secrets, []string{code, wrong}, "login code for ")
	if n := len(entriesWithMsg(ts.logEntries(), "login code for ada@example.com: "+code)); n != 1 {
		t.Errorf("%d login code lines, want 1", n)
	}
}

// TestLogsHoldNoSecretsWorkOS: a WorkOS sign-in, an organization choice, a webhook mail and an SMTP failure leave no
// code, token, state, pending token, API key or password in the log.
func TestLogsHoldNoSecretsWorkOS(t *testing.T) {
	t.Parallel()
	smtp := newTestSMTPServer(t, testSMTPOptions{Username: "mailer", Password: "the-right-one"})
	fake := newFakeWorkOS(t)
	fake.setMembership(testAda.ID, testOrgID, "active")
	ts := newWorkOSTestServer(t, fake, "LOG_LEVEL", "debug", "SMTP_HOST", smtp.Host, "SMTP_PORT", strconv.Itoa(smtp.Port),
		"SMTP_FROM", "login@example.com", "SMTP_TLS", "none", "SMTP_USERNAME", "mailer", "SMTP_PASSWORD", cfgSMTPPassword)

	b := newBrowser(ts)
	code, state := fake.authorize(t, b.startSignin(), adaGrant())
	signed := b.callback(code, state)
	wantStatus(t, signed, http.StatusOK)
	wantStatus(t, b.callback(code, state), http.StatusBadRequest) // a replay

	choose := newBrowser(ts)
	g := adaGrant()
	g.Err, g.Organizations = "organization_selection_required", []fakeOrg{{testOrgID, "Acme"}, {testOtherOrgID, "Other"}}
	choice := choose.signinWith(fake, g)
	wantStatus(t, choice, http.StatusOK)
	var pending []string // WorkOS's pending authentication token, and the cookie that seals it
	fake.mu.Lock()
	for token := range fake.pending {
		pending = append(pending, token)
	}
	fake.mu.Unlock()
	pending = append(pending, choose.jar["workos_pending"])
	chosen := choose.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`)
	wantStatus(t, chosen, http.StatusOK)

	ts.mail = smtpMailer{ts.cfg.SMTP} // the real one: AUTH fails with the wrong password
	body, signature, mailCode := newMagicAuthEvent(fake, ts.clock.Now())
	if rec := ts.serveRaw(webhookRequest(body, signature)); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("webhook with SMTP refusing AUTH: %d %s", rec.Code, rec.Body)
	}
	wantStatus(t, ts.post("/v2/user/logout/", "", b.cookies()...), http.StatusOK)

	secrets := append(secretsIn(signed, choice, chosen), code, state, testWorkOSAPIKey, testWorkOSWebhookSecret,
		signature[strings.Index(signature, "v1=")+3:])
	secrets = append(secrets, pending...)
	if len(entriesWithMsg(ts.logEntries(), "mail failed")) != 1 {
		t.Errorf("the SMTP failure was not logged:\n%s", ts.logs.String())
	}
	wantLogsFree(t, ts.logEntries(), secrets, []string{mailCode}, "")
}
