// Command dashauth signs people in to a self-hosted dashboard: email+code or WorkOS AuthKit, JWT cookie sessions, and
// the WorkOS webhook that mails magic-auth codes exactly once. SECURITY.md maps what it defends to code and proof.
package main

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then drains and returns nil; with "check" it is dashauth check.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, warnings, err := loadConfig(getenv)
	if len(args) == 1 && args[0] == "check" {
		return check(ctx, cfg, err, stdout)
	} else if len(args) > 0 {
		return errors.New("usage: dashauth [check]")
	} else if err != nil {
		return fmt.Errorf("dashauth: the configuration is not usable:\n%w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	s, err := newServer(cfg, log, time.Now)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err)
	}
	if cfg.Dev {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		log.Warn("development mode: open http://localhost:" + port + " to sign in; login codes are written to this log")
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	log.Info("listening", "addr", ln.Addr().String(), "login_flow", s.flow(), "redis", cfg.RedisURL != "")
	return s.serve(ctx, ln)
}

// Without these a client that sends nothing holds a goroutine for ever. A webhook answers after its delivery.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = deliveryTimeout + 5*time.Second
	shutdownGrace     = deliveryTimeout + 5*time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 32 << 10 // two 4 KiB session cookies and more, with room to spare
	maxAPIBody        = 16 << 10 // sign-in bodies are a few short strings
	maxWebhookBody    = 1 << 20  // contract, "Webhook"
)

type server struct {
	cfg       config
	log       *slog.Logger
	store     store
	mail      mailer
	members   memberList             // nil: anyone, in development mode
	workos    *usermanagement.Client // nil unless IS_WORKOS_INTEGRATED
	keys      [][]byte               // JWT keys, the current one first
	counters  map[string]*atomic.Uint64
	verified  sync.Map // token → claims (verify)
	verifiedN atomic.Int64
	now       func() time.Time
	// background is work that outlives its request (mails, deliveries); shutdown waits for it.
	background sync.WaitGroup
}

func newServer(cfg config, log *slog.Logger, now func() time.Time) (*server, error) {
	s := &server{cfg: cfg, log: log, now: now, store: newMemoryStore(now, memoryMaxKeys), mail: logMailer{log},
		keys:     slices.DeleteFunc([][]byte{cfg.JWTSecret, cfg.JWTSecretPrevious}, func(k []byte) bool { return k == nil }),
		counters: make(map[string]*atomic.Uint64)}
	for _, f := range counterFamilies {
		for _, v := range f.values {
			s.counters[f.name+"\x00"+v] = new(atomic.Uint64)
		}
	}
	if cfg.SMTP.Host != "" {
		s.mail = smtpMailer{cfg.SMTP}
	}
	if cfg.WorkOS { // the SDK's client, bounded in time and in what it reads (workosTransport)
		s.workos = usermanagement.NewClient(cfg.WorkOSAPIKey)
		s.workos.Endpoint = cfg.WorkOSAPIBaseURL
		s.workos.HTTPClient = &http.Client{Timeout: workosTimeout, Transport: workosTransport{}}
	}
	var err error
	if s.members, err = loadMembers(cfg.MembersFile); err == nil && cfg.RedisURL != "" {
		s.store, err = newRedisStore(cfg.RedisURL)
	}
	return s, err
}

func (s *server) flow() string {
	return map[bool]string{true: "workos", false: "email_code"}[s.cfg.WorkOS]
}

func (s *server) key(parts ...string) string { return s.cfg.KeyPrefix + strings.Join(parts, ":") }

// serve answers on ln until ctx is done, then drains requests and background work within the grace, then closes.
func (s *server) serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: draining requests and deliveries in flight")
	grace, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srv.Shutdown(grace)
	srv.Close() // what the grace did not end
	drained := make(chan struct{})
	go func() { s.background.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-grace.Done():
		s.log.Warn("shutdown grace over: work still in flight is abandoned")
	}
	if rs, ok := s.store.(*redisStore); ok {
		rs.Close()
	}
	s.log.Info("stopped")
	return nil
}

// check is dashauth check: the configuration loaded as a start would, then each dependency reached, a line each.
func check(ctx context.Context, cfg config, err error, out io.Writer) error {
	var s *server
	if err == nil {
		s, err = newServer(cfg, slog.New(slog.DiscardHandler), time.Now)
	}
	if err != nil {
		fmt.Fprintf(out, "fail config: %s\n", strings.ReplaceAll(err.Error(), "\n", "\nfail config: "))
		return errors.New("dashauth check: the configuration is not usable")
	}
	fmt.Fprintf(out, "ok config: %s sign-in, development mode %v, Redis %v\n", s.flow(), cfg.Dev, cfg.RedisURL != "")
	var failed error
	report := func(name, ok string, err error) {
		if failed = cmp.Or(failed, err); err != nil {
			fmt.Fprintf(out, "fail %s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", "; "))
		} else {
			fmt.Fprintf(out, "ok %s: %s\n", name, ok)
		}
	}
	if rs, ok := s.store.(*redisStore); ok {
		key := s.key("check", randomID(8))
		_, err1 := rs.Put(ctx, key, "", "1", 10*time.Second)
		_, err2 := rs.Put(ctx, key, anyValue, "", 0)
		report("redis", "PING, and a key written and removed under "+cfg.KeyPrefix, errors.Join(rs.Ping(ctx), err1, err2))
		rs.Close()
	}
	if m, ok := s.mail.(smtpMailer); ok {
		auth := map[bool]string{true: ", AUTH as " + cfg.SMTP.Username, false: ", no AUTH (SMTP_USERNAME unset)"}[cfg.SMTP.Username != ""]
		report("smtp", net.JoinHostPort(cfg.SMTP.Host, cfg.SMTP.Port)+" answers EHLO, TLS "+cfg.SMTP.TLS+auth, m.exchange(ctx, "", nil))
	}
	if s.workos != nil {
		_, err := s.workos.ListUsers(ctx, usermanagement.ListUsersOpts{Limit: 1}) // one authenticated read
		report("workos", "the API key reads "+cfg.WorkOSAPIBaseURL, err)
	}
	if failed != nil {
		return errors.New("dashauth check: a dependency failed")
	}
	return nil
}

// route is one endpoint: method, exact path, the sign-in flow it belongs to ("" for either).
type route struct {
	method, path, flow string
	h                  http.HandlerFunc
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	notFound := func(w http.ResponseWriter, r *http.Request) { s.fail(w, r, http.StatusNotFound, "not_found") }
	answer := func(v map[string]string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, v) }
	}
	for _, rt := range []route{
		{"POST", "/v2/user/login_code/", "email_code", s.handleLoginCode},
		{"POST", "/v2/user/login_code/verify/", "email_code", s.handleVerifyCode},
		{"POST", "/v2/user/workos_login_url/", "workos", s.handleWorkOSLoginURL},
		{"POST", "/v2/user/workos_signin_callback/", "workos", s.handleWorkOSCallback},
		{"POST", "/v2/user/workos_select_organization/", "workos", s.handleWorkOSSelectOrganization},
		{"POST", "/v1/workos_webhook/", "workos", s.handleWebhook},
		{"GET", "/v2/user/me/", "", s.handleMe},
		{"POST", "/v2/user/token_refresh/", "", s.handleRefresh},
		{"POST", "/v2/user/logout/", "", s.handleLogout},
		{"GET", "/v1/auth_config/", "", answer(map[string]string{"login_flow": s.flow()})},
		{"GET", "/healthz", "", answer(map[string]string{"status": "ok"})},
		{"GET", "/readyz", "", s.handleReady},
		{"GET", "/metrics", "", s.handleMetrics},
		{"GET", "/", "", s.page("index.html")},
		{"GET", "/en/callback", "", s.page("index.html")}, // its script finishes a WorkOS sign-in
		{"GET", "/static/app.js", "", s.page("app.js")},
		{"GET", "/static/style.css", "", s.page("style.css")},
	} {
		exact := rt.path
		if strings.HasSuffix(exact, "/") {
			exact += "{$}" // else the pattern would match every path below it too
		}
		mux.HandleFunc(rt.method+" "+exact, s.endpoint(rt))
		if bare := strings.TrimSuffix(rt.path, "/"); bare != rt.path && bare != "" {
			mux.HandleFunc(bare, notFound) // else the mux would redirect there, and a browser re-post its body
		}
		mux.HandleFunc(exact, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", rt.method)
			s.fail(w, r, http.StatusMethodNotAllowed, "method_not_allowed")
		})
	}
	mux.HandleFunc("/", notFound)
	return s.guard(mux)
}

// endpoint refuses the flow that is off (404), a POST from another site (403: login CSRF; the webhook has its
// signature), and a body not declared JSON (415: a cross-site form cannot send one).
func (s *server) endpoint(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin, post := r.Header.Get("Origin"), r.Method == http.MethodPost
		mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch {
		case rt.flow != "" && rt.flow != s.flow():
			s.fail(w, r, http.StatusNotFound, map[string]string{"workos": "workos_not_enabled", "email_code": "email_code_login_disabled"}[rt.flow])
		case post && origin != "" && rt.path != "/v1/workos_webhook/" &&
			!s.cfg.sameOrigin(origin, s.cfg.DashboardURL) && !s.cfg.sameOrigin(origin, s.cfg.APIURL):
			s.fail(w, r, http.StatusForbidden, "origin_not_allowed")
		case post && r.ContentLength != 0 && (err != nil || mediaType != "application/json"):
			s.fail(w, r, http.StatusUnsupportedMediaType, "content_type_must_be_application_json")
		default:
			rt.h(w, r)
		}
	}
}

// guard is every request's first step: panic recovery, security headers, CORS for DASHBOARD_URL alone, 404 for an
// unclean path (the mux would redirect it), and a log line for a slow request.
func (s *server) guard(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() {
			if v := recover(); v == http.ErrAbortHandler {
				panic(v) // the server's own signal to drop the connection
			} else if v != nil {
				s.count("dashauth_http_panics_total", "")
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				s.fail(w, r, http.StatusInternalServerError, "internal_error")
			}
			if d := time.Since(start); d >= time.Second || s.cfg.LogRequests {
				s.log.Info("request", "method", r.Method, "path", r.URL.Path, "duration_ms", d.Milliseconds())
			}
		}()
		h, origin := w.Header(), r.Header.Get("Origin")
		h["X-Content-Type-Options"] = []string{"nosniff"}
		h["X-Frame-Options"] = []string{"DENY"}
		h["Referrer-Policy"] = []string{"no-referrer"} // the callback URL carries a WorkOS code
		h["Vary"] = []string{"Origin"}
		allowed := origin != "" && s.cfg.sameOrigin(origin, s.cfg.DashboardURL)
		if allowed {
			h["Access-Control-Allow-Origin"] = []string{origin}
			h["Access-Control-Allow-Credentials"] = []string{"true"}
			h["Access-Control-Expose-Headers"] = []string{"Retry-After"} // so the dashboard can count the wait down
		}
		clean := path.Clean(r.URL.Path)
		if strings.HasSuffix(r.URL.Path, "/") && clean != "/" {
			clean += "/"
		}
		switch preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""; {
		case preflight && !allowed:
			s.fail(w, r, http.StatusForbidden, "origin_not_allowed")
		case preflight:
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
		case clean != r.URL.Path:
			s.fail(w, r, http.StatusNotFound, "not_found")
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// fail answers and logs an error, never with the query, headers or body: they carry codes, cookies and tokens.
func (s *server) fail(w http.ResponseWriter, r *http.Request, status int, reason string) {
	level := map[bool]slog.Level{true: slog.LevelError, false: slog.LevelInfo}[status >= 500]
	s.log.Log(r.Context(), level, "request refused", "method", r.Method, "path", r.URL.Path,
		"status", status, "error", reason, "client", s.clientIP(r).String())
	writeJSON(w, status, map[string]string{"error": reason})
}

func (s *server) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	s.count("dashauth_store_errors_total", "")
	s.log.Error("state store failed", "path", r.URL.Path, "err", err)
	s.fail(w, r, http.StatusServiceUnavailable, "state_unavailable")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v) // cannot fail: maps and structs of strings
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// readBody reads a body of at most limit bytes, answering 413 or 400 itself.
func (s *server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if errors.As(err, new(*http.MaxBytesError)) {
		s.fail(w, r, http.StatusRequestEntityTooLarge, "body_too_large")
	} else if err != nil {
		s.fail(w, r, http.StatusBadRequest, "unreadable_body")
	}
	return body, err == nil
}

// decodeBody reads a sign-in body (parseObject), every field non-empty but the optional one; it answers 400 itself.
func (s *server) decodeBody(w http.ResponseWriter, r *http.Request, fields []field, optional string) bool {
	body, ok := s.readBody(w, r, maxAPIBody)
	if !ok {
		return false
	}
	reason := parseObject(body, fields)
	for _, f := range fields {
		if reason == "" && *f.s == "" && f.name != optional {
			reason = "missing_" + f.name
		}
	}
	if reason != "" {
		s.fail(w, r, http.StatusBadRequest, reason)
	}
	return reason == ""
}

func (s *server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 800*time.Millisecond) // a Kubernetes probe waits 1 s
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readyz: the store does not answer", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "redis_unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// counterFamilies are the counters of /metrics; every series is there from the start, at 0.
var counterFamilies = []struct {
	name, label, help string
	values            []string
}{
	{"dashauth_signins_total", "response_type", "Sign-in answers by response_type.", []string{loginSuccessful,
		membershipDeactivated, membershipNotFound, organizationSelectionRequired, linkInvalid, linkExpired, codeSent}},
	{"dashauth_webhook_events_total", "outcome", "WorkOS webhook deliveries by outcome.",
		[]string{"delivered", "duplicate", "ignored", "rejected", "failed", "undeliverable"}},
	{"dashauth_mails_total", "result", "Code mails handed to SMTP (or the log) by result.", []string{"sent", "failed"}},
	{"dashauth_dedup_hits_total", "", "Webhook events answered from the de-duplication record.", []string{""}},
	{"dashauth_webhook_undeduped_total", "", "Webhook events mailed without de-duplication: the store failed.", []string{""}},
	{"dashauth_store_errors_total", "", "State store (Redis) calls that failed.", []string{""}},
	{"dashauth_rate_limited_total", "", "Requests refused with 429.", []string{""}},
	{"dashauth_refresh_reuse_total", "action", "Spent refresh tokens presented again, by action.", []string{"refused", "revoked"}},
	{"dashauth_workos_errors_total", "reason", "WorkOS sign-ins answered with an error, by reason.", []string{"workos_unavailable"}},
	{"dashauth_http_panics_total", "", "Handler panics recovered (always a bug).", []string{""}},
}

// count adds one to a series ("" in a family without a label); an unknown one panics, a bug the tests catch.
func (s *server) count(family, value string) { s.counters[family+"\x00"+value].Add(1) }

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	for _, f := range counterFamilies {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", f.name, f.help, f.name)
		for _, v := range f.values {
			series := f.name
			if f.label != "" {
				series += fmt.Sprintf("{%s=%q}", f.label, v)
			}
			fmt.Fprintf(w, "%s %d\n", series, s.counters[f.name+"\x00"+v].Load())
		}
	}
}

//go:embed web
var webFiles embed.FS

// page serves a file of web/ (no build step) under a CSP allowing only this origin's own script, style and API.
func (s *server) page(name string) http.HandlerFunc {
	body, _ := webFiles.ReadFile("web/" + name) // cannot fail: the files are embedded
	body = bytes.ReplaceAll(body, []byte("{{login_flow}}"), []byte(s.flow()))
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
			"connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
		w.Header().Set("Cache-Control", "no-store")
		w.Write(body)
	}
}

// config is the environment (contract, "Configuration"), parsed and checked once at start.
type config struct {
	ListenAddr                                         string
	DashboardURL                                       string   // an origin, written as browsers write Origin
	APIURL                                             string   // an origin; the JWT issuer
	RedirectURLs                                       []string // exactly the URLs redirect_url may be
	WorkOS                                             bool
	WorkOSClientID, WorkOSAPIKey, WorkOSWebhookSecret  string
	WorkOSSigninBaseURL, WorkOSAPIBaseURL              string
	JWTSecret, JWTSecretPrevious                       []byte
	AccessTTL, RefreshTTL, RefreshReuse, SessionMaxAge time.Duration
	RedisURL, KeyPrefix                                string
	SMTP                                               smtpConfig // no Host: mail goes to the log
	MembersFile, CookieDomain                          string
	TrustedProxies                                     []netip.Prefix
	LogRequests                                        bool // LOG_LEVEL=debug: a line for every request
	// Dev: DASHBOARD_URL is http://localhost or 127.0.0.1. A random key, mail to the log, anyone signs in, no Secure.
	Dev bool
}

// loadConfig returns every problem at once, a line each, and warnings for what development mode let through.
func loadConfig(getenv func(string) string) (cfg config, warnings []string, err error) {
	var problems []error
	need := func(ok bool, format string, args ...any) bool {
		if !ok {
			problems = append(problems, fmt.Errorf(format, args...))
		}
		return ok
	}
	env := func(name, def string) string { return cmp.Or(strings.TrimSpace(getenv(name)), def) }
	cfg.ListenAddr = env("LISTEN_ADDR", "127.0.0.1:8080")
	listenHost, port, err := net.SplitHostPort(cfg.ListenAddr)
	need(err == nil && validPort(port), "LISTEN_ADDR %q is not host:port", cfg.ListenAddr)
	local := "http://localhost:" + map[bool]string{true: port, false: "8080"}[validPort(port) && port != "0"] // dev mode's origin
	cfg.DashboardURL, err = parseOrigin(env("DASHBOARD_URL", local))
	need(err == nil, "DASHBOARD_URL: %v", err)
	_, cfg.Dev = swapLoopback(cfg.DashboardURL) // an http://localhost or http://127.0.0.1 origin
	cfg.APIURL, err = parseOrigin(env("API_URL", local))
	need(err == nil, "API_URL: %v", err)
	need(cfg.Dev || env("API_URL", "") != "", "API_URL is required outside development mode: it is this service's public origin and the JWT issuer")
	if cfg.Dev && !isLoopback(listenHost) && need(env("DASHBOARD_URL", "") != "", "LISTEN_ADDR %q is not a loopback address, "+
		"and development mode (DASHBOARD_URL unset) never listens on the network: set DASHBOARD_URL (e.g. "+
		"http://localhost:8080) to do so on purpose, or configure production", cfg.ListenAddr) {
		warnings = append(warnings, "development mode on a non-loopback LISTEN_ADDR: anyone who reaches it can sign in")
	}
	defaultRedirect := ""
	if cfg.DashboardURL != "" {
		defaultRedirect = cfg.DashboardURL + "/en/callback"
	}
	for _, raw := range strings.Split(env("ALLOWED_REDIRECT_URLS", defaultRedirect), ",") {
		raw = strings.TrimSpace(raw)
		u, err := parseBaseURL(raw)
		if raw == "" || !need(err == nil && u.Path != "" && u.String() == raw,
			"ALLOWED_REDIRECT_URLS: %q is not a full http(s) URL with a path, in canonical form", raw) {
			continue
		}
		cfg.RedirectURLs = append(cfg.RedirectURLs, raw)
		if swapped, ok := swapLoopback(raw); ok && cfg.Dev {
			cfg.RedirectURLs = append(cfg.RedirectURLs, swapped)
		}
	}
	integrated := env("IS_WORKOS_INTEGRATED", "false")
	cfg.WorkOS = need(integrated == "true" || integrated == "false", "IS_WORKOS_INTEGRATED %q must be \"true\" or \"false\"", integrated) &&
		integrated == "true"
	cfg.WorkOSClientID, cfg.WorkOSAPIKey = env("WORKOS_CLIENT_ID", ""), env("WORKOS_API_KEY", "")
	cfg.WorkOSWebhookSecret, cfg.WorkOSSigninBaseURL = env("WORKOS_WEBHOOK_SECRET", ""), env("WORKOS_SIGNIN_BASE_URL", "")
	cfg.WorkOSAPIBaseURL = strings.TrimSuffix(env("WORKOS_API_BASE_URL", "https://api.workos.com"), "/")
	_, err = parseBaseURL(cfg.WorkOSAPIBaseURL)
	need(err == nil, "WORKOS_API_BASE_URL: %v", err)
	for _, v := range [][2]string{{"WORKOS_CLIENT_ID", cfg.WorkOSClientID}, {"WORKOS_API_KEY", cfg.WorkOSAPIKey},
		{"WORKOS_WEBHOOK_SECRET", cfg.WorkOSWebhookSecret}, {"WORKOS_SIGNIN_BASE_URL", cfg.WorkOSSigninBaseURL}} {
		need(v[1] != "" || !cfg.WorkOS, "%s is required when IS_WORKOS_INTEGRATED is \"true\"", v[0])
	}
	_, err = parseBaseURL(cfg.WorkOSSigninBaseURL)
	need(err == nil || cfg.WorkOSSigninBaseURL == "", "WORKOS_SIGNIN_BASE_URL: %v", err)
	secret, prev := getenv("JWT_SECRET"), getenv("JWT_SECRET_PREVIOUS")
	if secret == "" && cfg.Dev {
		warnings = append(warnings, "JWT_SECRET is not set: a random key, so sessions end with the process")
		cfg.JWTSecret = []byte(randomID(32))
	} else if need(len(secret) >= minKeyBytes, "JWT_SECRET must be at least %d bytes (it is %d)", minKeyBytes, len(secret)) {
		cfg.JWTSecret = []byte(secret)
	}
	if prev != "" && need(len(prev) >= minKeyBytes, "JWT_SECRET_PREVIOUS must be at least %d bytes (it is %d)", minKeyBytes, len(prev)) {
		cfg.JWTSecretPrevious = []byte(prev)
	}
	duration := func(name, def string) time.Duration {
		d, err := time.ParseDuration(env(name, def))
		need(err == nil && d >= time.Second, "%s %q is not a Go duration of at least 1s, such as %q", name, env(name, def), def)
		return d
	}
	cfg.AccessTTL, cfg.RefreshTTL = duration("ACCESS_TOKEN_TTL", "15m"), duration("REFRESH_TOKEN_TTL", "168h")
	cfg.RefreshReuse, cfg.SessionMaxAge = duration("REFRESH_REUSE_INTERVAL", "10s"), duration("SESSION_MAX_AGE", "720h")
	need(cfg.AccessTTL <= cfg.RefreshTTL || cfg.RefreshTTL < time.Second,
		"ACCESS_TOKEN_TTL %v is longer than REFRESH_TOKEN_TTL %v", cfg.AccessTTL, cfg.RefreshTTL)
	cfg.RedisURL, cfg.KeyPrefix = env("REDIS_URL", ""), env("REDIS_KEY_PREFIX", "dashauth:")
	if cfg.RedisURL != "" {
		_, err = newRedisStore(cfg.RedisURL)
		need(err == nil, "%v", err)
	}
	cfg.SMTP = smtpConfig{Host: env("SMTP_HOST", ""), Username: env("SMTP_USERNAME", ""),
		Password: getenv("SMTP_PASSWORD"), From: env("SMTP_FROM", ""), TLS: env("SMTP_TLS", "starttls")}
	// Submission with STARTTLS is port 587 (RFC 6409), implicit TLS 465 (RFC 8314).
	cfg.SMTP.Port = env("SMTP_PORT", map[bool]string{true: "465", false: "587"}[cfg.SMTP.TLS == "tls"])
	_, fromOK := parseEmail(cfg.SMTP.From)
	if cfg.SMTP.Host == "" && cfg.SMTP.From == "" && cfg.Dev {
		warnings = append(warnings, "SMTP_HOST is not set: login codes are written to the log")
	} else if need(cfg.SMTP.Host != "" && !strings.ContainsAny(cfg.SMTP.Host, " \t\r\n/[]@") && fromOK,
		"SMTP_HOST and SMTP_FROM (one bare address) are required to send login codes") {
		need(validPort(cfg.SMTP.Port) && cfg.SMTP.Port != "0", "SMTP_PORT %q is not a port number", cfg.SMTP.Port)
		need(slices.Contains([]string{"starttls", "tls", "none"}, cfg.SMTP.TLS), "SMTP_TLS %q must be starttls, tls or none", cfg.SMTP.TLS)
		// In clear text the password and every code cross the network: only a relay on this machine may.
		need(cfg.SMTP.TLS != "none" || isLoopback(cfg.SMTP.Host), "SMTP_TLS none is allowed only for a loopback SMTP_HOST, not %q", cfg.SMTP.Host)
	}
	// Plain http in development mode carries no Domain cookies.
	cfg.MembersFile, cfg.CookieDomain = env("MEMBERS_FILE", ""), map[bool]string{false: env("COOKIE_DOMAIN", "")}[cfg.Dev]
	need(cfg.MembersFile != "" || cfg.Dev || cfg.WorkOS, "MEMBERS_FILE is required: without it nobody may sign in with email+code")
	need(!strings.ContainsAny(cfg.CookieDomain, " ;,\"\t\r\n"), "COOKIE_DOMAIN %q is not a domain", cfg.CookieDomain)
	for _, raw := range strings.Split(env("TRUSTED_PROXIES", ""), ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(raw))
		if need(err == nil || strings.TrimSpace(raw) == "", "TRUSTED_PROXIES %q is not a CIDR such as 10.0.0.0/8", raw) && err == nil {
			cfg.TrustedProxies = append(cfg.TrustedProxies, p.Masked())
		}
	}
	level := env("LOG_LEVEL", "info")
	cfg.LogRequests = need(level == "info" || level == "debug", "LOG_LEVEL %q must be info or debug", level) && level == "debug"
	return cfg, warnings, errors.Join(problems...) // nil when there are none
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535 && strconv.Itoa(n) == s
}

func isLoopback(host string) bool {
	a, err := netip.ParseAddr(host)
	return host == "localhost" || err == nil && a.IsLoopback()
}

// parseOrigin writes scheme://host[:port][/] as a browser writes Origin (RFC 6454 §6.1): lower case, no default port.
func parseOrigin(raw string) (string, error) {
	u, err := parseBaseURL(strings.TrimSuffix(raw, "/"))
	if err == nil && u.Path != "" {
		err = fmt.Errorf("%q must be an origin (scheme://host[:port]) without a path", raw)
	}
	if err != nil {
		return "", err
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.ToLower(strings.TrimSuffix(u.Host, ":"+p))
	}
	return u.Scheme + "://" + host, nil
}

// parseBaseURL accepts an absolute http(s) URL without user info, query or fragment.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(raw, "\\ \t\r\n") ||
		(u.Port() != "" && !validPort(u.Port())) {
		return nil, fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	return u, nil
}

// swapLoopback turns http://localhost:port/… into http://127.0.0.1:port/… and back: one origin in development mode.
func swapLoopback(raw string) (string, bool) {
	for _, p := range [][2]string{{"http://localhost", "http://127.0.0.1"}, {"http://127.0.0.1", "http://localhost"}} {
		if rest, ok := strings.CutPrefix(raw, p[0]); ok && (rest == "" || rest[0] == ':' || rest[0] == '/') {
			return p[1] + rest, true
		}
	}
	return "", false
}

// sameOrigin compares origins; in development mode localhost and 127.0.0.1 are one.
func (c *config) sameOrigin(a, b string) bool {
	swapped, _ := swapLoopback(a)
	return a == b || c.Dev && swapped == b
}
