package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"time"
)

// Body limits. Sign-in requests are a few short strings; WorkOS events are
// small JSON documents, and the contract caps them at 1 MiB.
const (
	maxAPIBody     = 16 << 10
	maxWebhookBody = 1 << 20
)

// routes registers every endpoint, then wraps the mux in the middleware:
// recover → log → headers → CORS → route (404, 405, flow off) → Origin
// check → content type → body limit. Routing comes before the request
// checks, so an unknown path is a 404 whatever its body or Origin.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()

	// A pattern ending in "/" matches every path below it too, so the API
	// paths end in {$}: each matches its one path and nothing under it.
	mux.HandleFunc("POST /v2/user/login_code/{$}", s.handleLoginCode)
	mux.HandleFunc("POST /v2/user/login_code/verify/{$}", s.handleVerifyCode)

	mux.HandleFunc("POST /v2/user/workos_login_url/{$}", s.handleWorkOSLoginURL)
	mux.HandleFunc("POST /v2/user/workos_signin_callback/{$}", s.handleWorkOSCallback)
	mux.HandleFunc("POST /v2/user/workos_select_organization/{$}", s.handleWorkOSSelectOrganization)

	mux.HandleFunc("GET /v2/user/me/{$}", s.handleMe)
	mux.HandleFunc("POST /v2/user/token_refresh/{$}", s.handleRefresh)
	mux.HandleFunc("POST /v2/user/logout/{$}", s.handleLogout)

	mux.HandleFunc("POST /v1/workos_webhook/{$}", s.handleWebhook)
	mux.HandleFunc("GET /v1/auth_config/{$}", s.handleAuthConfig)

	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.HandleFunc("GET /metrics", s.handleMetrics)

	s.pageRoutes(mux)

	var h http.Handler = mux
	h = s.limitBody(h)
	h = s.requireJSON(h)
	h = s.checkOrigin(h)
	h = s.route(mux, h)
	h = s.cors(h)
	h = s.securityHeaders(h)
	h = s.logRequests(h)
	h = s.recoverPanics(h)
	return h
}

// flowEndpoints maps each endpoint of one sign-in flow to whether it is
// WorkOS's (true) or email+code's (false); the other flow's endpoints
// answer 404 with the error CONTRACT.md names.
var flowEndpoints = map[string]bool{
	"/v2/user/login_code/":                 false,
	"/v2/user/login_code/verify/":          false,
	"/v2/user/workos_login_url/":           true,
	"/v2/user/workos_signin_callback/":     true,
	"/v2/user/workos_select_organization/": true,
}

// route answers what no handler should see: 404 for an unknown path (and
// for one the mux would only redirect, such as a missing trailing slash),
// 405 with Allow for a known path and the wrong method, and 404 for the
// endpoints of the sign-in flow that is off. Everything else goes on to next.
func (s *server) route(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		_, path, _ := strings.Cut(pattern, " ")
		path = strings.TrimSuffix(path, "{$}")
		switch {
		case pattern == "":
			// No route: h is the mux's own 404 or 405 handler; ask it which.
			probe := &statusRecorder{header: make(http.Header)}
			h.ServeHTTP(probe, r)
			if probe.status == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", probe.header.Get("Allow"))
				writeError(w, http.StatusMethodNotAllowed, "method_not_allowed")
				return
			}
			writeError(w, http.StatusNotFound, "not_found")
			return
		case path != r.URL.Path && !strings.Contains(path, "{"), cleanPath(r.URL.Path) != r.URL.Path:
			writeError(w, http.StatusNotFound, "not_found") // the mux would redirect
			return
		}
		if workos, ok := flowEndpoints[path]; ok && workos != s.cfg.WorkOS {
			if workos {
				writeError(w, http.StatusNotFound, "workos_not_enabled")
			} else {
				writeError(w, http.StatusNotFound, "email_code_login_disabled")
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is path.Clean keeping a trailing slash, as the mux does.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// statusRecorder keeps only the status and headers a handler writes.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// recoverPanics turns a handler panic into a 500 so one bug does not take
// the process down. No input should reach it; the hostile-input tests check
// that the counter stays at zero.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // the server's own signal to drop the connection
			}
			s.metrics.inc("dashauth_http_panics_total", "", "")
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			writeError(w, http.StatusInternalServerError, "internal_error")
		}()
		next.ServeHTTP(w, r)
	})
}

// loggedWriter remembers the status for the request log.
type loggedWriter struct {
	http.ResponseWriter
	status int
}

func (w *loggedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *loggedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests writes one line per request. It logs the path but never the
// query, headers or body: those carry codes, cookies and tokens.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		lw := &loggedWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", lw.status,
			"duration_ms", s.now().Sub(start).Milliseconds(), "client", s.clientIP(r).String())
	})
}

func (s *server) securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// The callback page carries the WorkOS code in its URL; no Referer
		// may leak it to another site.
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// cors allows DASHBOARD_URL, and only it, to call the API with credentials.
func (s *server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && s.cfg.sameOrigin(origin, s.cfg.DashboardURL)
		w.Header().Add("Vary", "Origin")
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				writeError(w, http.StatusForbidden, "origin_not_allowed")
				return
			}
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkOrigin refuses a POST from another site (login CSRF): a browser
// always sends Origin on a cross-site POST. The webhook is exempt: WorkOS
// is not a browser, and its signature is its proof.
func (s *server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if r.Method == http.MethodPost && origin != "" && r.URL.Path != "/v1/workos_webhook/" &&
			!s.cfg.sameOrigin(origin, s.cfg.DashboardURL) && !s.cfg.sameOrigin(origin, s.cfg.APIURL) {
			writeError(w, http.StatusForbidden, "origin_not_allowed")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireJSON answers 415 to a POST body that is not application/json. A
// form post from another site cannot set that type without a preflight,
// so this also stops cross-site form posts.
func (s *server) requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.ContentLength != 0 {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, "content_type_must_be_application_json")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(maxAPIBody)
		webhook := r.URL.Path == "/v1/workos_webhook/"
		if webhook {
			limit = maxWebhookBody
		}
		if r.ContentLength > limit {
			if webhook && s.workos != nil {
				s.metrics.inc("dashauth_webhook_events_total", "outcome", "rejected")
			}
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// readBody reads the whole (already limited) body; it writes the error
// answer itself and returns ok=false when the body cannot be read.
func readBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large")
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "unreadable_body")
		return nil, false
	}
	return body, true
}

// decodeFields reads a request body that must be one flat JSON object of
// string values, with no unknown and no duplicate keys (two parsers that
// pick different duplicates are a classic bypass). required names the fields
// that must be present and non-empty. It writes the 400 itself.
func decodeFields(w http.ResponseWriter, r *http.Request, fields map[string]*string, required ...string) bool {
	body, ok := readBody(w, r)
	if !ok {
		return false
	}
	if reason := parseFields(body, fields); reason != "" {
		writeError(w, http.StatusBadRequest, reason)
		return false
	}
	for _, name := range required {
		if *fields[name] == "" {
			writeError(w, http.StatusBadRequest, "missing_"+name)
			return false
		}
	}
	return true
}

// parseFields is decodeFields' parser; it returns a snake_case reason or "".
func parseFields(body []byte, fields map[string]*string) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "invalid_json"
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "invalid_json"
		}
		name, _ := tok.(string) // keys are always strings in a valid object
		dst, known := fields[name]
		if !known {
			return "unknown_field"
		}
		if seen[name] {
			return "duplicate_field"
		}
		seen[name] = true
		tok, err = dec.Token()
		if err != nil {
			return "invalid_json"
		}
		v, isString := tok.(string)
		if !isString {
			return "invalid_" + name
		}
		*dst = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return "invalid_json"
	}
	if _, err := dec.Token(); err != io.EOF {
		return "invalid_json" // trailing data after the object
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal_error"}`) // unreachable: our own types
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, map[string]string{"error": reason})
}

// clientIP is the address rate limits count. It is the connecting address,
// unless that is a trusted proxy: then the right-most X-Forwarded-For entry
// that is not itself a trusted proxy. Entries left of it are whatever the
// client wrote and are never believed.
func (s *server) clientIP(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.IPv4Unspecified() // httptest or a unix socket; all share one bucket
	}
	addr := peer.Addr().Unmap()
	if !s.trusted(addr) {
		return addr
	}
	fwd := r.Header.Values("X-Forwarded-For")
	for i := len(fwd) - 1; i >= 0; i-- {
		hops := strings.Split(fwd[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return addr // a garbled header: fall back to the proxy itself
			}
			if hop = hop.Unmap(); !s.trusted(hop) {
				return hop
			}
			addr = hop
		}
	}
	return addr
}

func (s *server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (s *server) handleAuthConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"login_flow": s.loginFlow()})
}

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyTimeout bounds /readyz's PING: a probe must answer before the
// orchestrator's own probe timeout (1 s by default in Kubernetes).
const readyTimeout = 800 * time.Millisecond

func (s *server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readyz: store does not answer", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "redis_unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w)
}
