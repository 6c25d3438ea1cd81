package main

// The auditor's list of hostile requests: every endpoint, driven through the real handler chain, each request checked
// for its exact answer and for what it must not do (set a cookie, send a mail, call WorkOS, change the store, reveal a
// secret). Several cases repeat checks that also live next to the code they test; here they are in one table, with the
// side effects checked too. SECURITY.md points into this table by case name (TestHostileRequests/<name>).
//
// Then the properties a table cannot show: members and strangers look alike (TestHostileUserEnumeration), a copy of
// the store and the log give nothing away, slow and oversized clients are cut by the real server's limits, and a Redis
// that answers garbage turns into 503s, never a 500, a wrong success or a sign-out. Every name here starts with
// hostile, apart from the other test files.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// hostileWebhookSecret is the webhook secret of the email+code server: it must ignore the webhook all the same.
	hostileWebhookSecret = "whsec_hostile_test_secret_0123456789"
	// hostileClient is the address every hostile request comes from; the set-up (sign-ins, codes) comes from the
	// harness's own 192.0.2.1, so it uses none of the hostile client's limits.
	hostileClient = "198.51.100.7:4711"
	hostileEvil   = "https://evil.example"

	hostileLoginCode = "/v2/user/login_code/"
	hostileVerify    = "/v2/user/login_code/verify/"
	hostileMe        = "/v2/user/me/"
	hostileRefresh   = "/v2/user/token_refresh/"
	hostileLogout    = "/v2/user/logout/"
	hostileHook      = "/v1/workos_webhook/"
	hostileAda       = `{"email":"ada@example.com"}`

	// A magic_auth.created event as WorkOS sends it, and an event the service ignores.
	hostileEventID     = "event_01JCDE3FGHJKMNPQRSTVWXYZ01"
	hostileMagicAuthID = "magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ02"
	hostileMagicEvent  = `{"id":"` + hostileEventID + `","event":"magic_auth.created","data":{"object":"magic_auth","id":"` + hostileMagicAuthID + `"}}`
	hostileOtherEvent  = `{"id":"event_01JCDE3FGHJKMNPQRSTVWXYZ09","event":"user.created","data":{"object":"user","id":"user_01JCDE3FGHJKMNPQRSTVWXYZ03"}}`
)

// hostileCase is one hostile request and what it may do.
type hostileCase struct {
	name string
	// build prepares the fresh server (signs in, asks for a code, moves the clock) and returns the hostile request.
	// Whatever build does is the "before" the checks compare against.
	build func(f *hostileFixture) *http.Request
	// status is the exact answer; want, when set, is "field=value" the JSON answer must hold.
	status int
	want   string
	// mayChange names what the request may write or delete in the store: a key kind (the part of a key after
	// REDIS_KEY_PREFIX up to the first ':', such as "rl" or "tries") or a longer prefix of it ("rl:verify"). Empty:
	// the store must be exactly as before.
	mayChange []string
	// clears: the answer clears at least one cookie (logout, a spent sign-in's state), and sets none. Otherwise no
	// Set-Cookie at all.
	clears bool
	// workos runs the case on a WorkOS-mode server in front of a fake WorkOS API; otherwise email+code mode.
	workos bool
	// callsWorkOS allows calls to the fake WorkOS API; by default a hostile request must not cause one.
	callsWorkOS bool
	// counted is a series ("family" or "family{value}") the request must add exactly one to.
	counted string
	// env is more environment, name, value pairs.
	env []string
}

// hostileFixture is one fresh server and what cases use to build their request.
type hostileFixture struct {
	t       *testing.T
	ts      *testServer
	fake    *fakeWorkOS    // WorkOS mode only
	secret  string         // the webhook secret the server checks
	codes   []string       // every code handed out while building: none may appear in the answer
	signed  []*http.Cookie // Ada's session, once session() made it
	workosN func() int     // calls to the fake WorkOS so far
}

func newHostileFixture(t *testing.T, tc hostileCase) *hostileFixture {
	t.Helper()
	if tc.workos {
		fake := newFakeWorkOS(t)
		fake.setMembership(testAda.ID, testOrgID, "active")
		f := &hostileFixture{t: t, ts: newWorkOSTestServer(t, fake, tc.env...), fake: fake, secret: testWorkOSWebhookSecret}
		f.workosN = func() int { // every request that reached the fake, whatever its path
			fake.mu.Lock()
			defer fake.mu.Unlock()
			n := 0
			for _, c := range fake.counts {
				n += c
			}
			return n
		}
		return f
	}
	ts := newAuthCodeServer(t, append([]string{"WORKOS_WEBHOOK_SECRET", hostileWebhookSecret}, tc.env...)...)
	return &hostileFixture{t: t, ts: ts, secret: hostileWebhookSecret, workosN: func() int { return 0 }}
}

// req builds a request from the hostile client. A body makes it application/json; kv are header name, value pairs,
// and an empty value deletes the header.
func (f *hostileFixture) req(method, path, body string, kv ...string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.RemoteAddr = hostileClient
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			r.Header.Del(kv[i])
		} else {
			r.Header.Set(kv[i], kv[i+1])
		}
	}
	return r
}

func (f *hostileFixture) post(path, body string, kv ...string) *http.Request {
	return f.req("POST", path, body, kv...)
}

// serve sends r through the real handler chain and wants status: the set-up's own requests.
func (f *hostileFixture) serve(r *http.Request, status int) *httptest.ResponseRecorder {
	f.t.Helper()
	rec := httptest.NewRecorder()
	f.ts.handler.ServeHTTP(rec, r)
	if rec.Code != status {
		f.t.Fatalf("set-up %s %s: %d %s, want %d", r.Method, r.URL.Path, rec.Code, rec.Body, status)
	}
	return rec
}

// hostileWithCookies adds cookies to r, as a browser sends them back.
func hostileWithCookies(r *http.Request, cookies ...*http.Cookie) *http.Request {
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// hostileNamed keeps the cookies of cookies with one of names.
func hostileNamed(cookies []*http.Cookie, names ...string) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range cookies {
		if slices.Contains(names, c.Name) {
			out = append(out, c)
		}
	}
	return out
}

func hostileCookieValue(cookies []*http.Cookie, name string) string {
	if c := cookieNamed(cookies, name); c != nil {
		return c.Value
	}
	return ""
}

// code asks for a code for addr from the set-up client and returns it.
func (f *hostileFixture) code(addr string) string {
	f.t.Helper()
	code := f.ts.requestCode(addr)
	f.codes = append(f.codes, code)
	return code
}

// session signs Ada in (once per fixture) and returns her two cookies.
func (f *hostileFixture) session() []*http.Cookie {
	f.t.Helper()
	if f.signed == nil {
		code := f.code("ada@example.com")
		r := f.ts.post(hostileVerify, hostileVerifyBody("ada@example.com", code))
		wantStatus(f.t, r, http.StatusOK)
		f.signed = hostileNamed(r.cookies(), "access_token", "refresh_token")
	}
	return f.signed
}

// refreshed spends cookies' refresh token for a new pair, from the set-up client.
func (f *hostileFixture) refreshed(cookies []*http.Cookie) []*http.Cookie {
	f.t.Helper()
	r := f.ts.post(hostileRefresh, "", hostileNamed(cookies, "refresh_token")...)
	wantStatus(f.t, r, http.StatusOK)
	return hostileNamed(r.cookies(), "access_token", "refresh_token")
}

// claimsOf reads the claims of one of the server's tokens with the service's own strict reader.
func (f *hostileFixture) claimsOf(token string) claims {
	f.t.Helper()
	var c claims
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || parseObject(payload, c.fields()) != "" {
		f.t.Fatalf("the server's own token does not read: %v", err)
	}
	return c
}

// forge signs a changed copy of the live session's access claims with the server's own key: what someone holding the
// key could do, so that each case shows which check, not the signature, stops the token.
func (f *hostileFixture) forge(change func(*claims)) string {
	f.t.Helper()
	c := f.claimsOf(hostileCookieValue(f.session(), "access_token"))
	change(&c)
	tok, err := signToken(f.ts.keys[0], c)
	if err != nil {
		f.t.Fatalf("forge: %v", err)
	}
	return tok
}

// foreignToken signs the live session's access claims as another JWT library might write them: the members in the
// given order, with a space after each colon. A member is "name" (the claim's value; the name may change case) or
// "name=<raw JSON>".
func (f *hostileFixture) foreignToken(members ...string) string {
	f.t.Helper()
	c := f.claimsOf(hostileCookieValue(f.session(), "access_token"))
	values := map[string]string{}
	for _, fl := range c.fields() {
		if fl.s != nil {
			b, _ := json.Marshal(*fl.s)
			values[fl.name] = string(b)
		} else {
			values[fl.name] = strconv.FormatInt(*fl.n, 10)
		}
	}
	var parts []string
	for _, m := range members {
		name, raw, explicit := strings.Cut(m, "=")
		if !explicit {
			raw = values[strings.ToLower(name)]
		}
		parts = append(parts, fmt.Sprintf("%q: %s", name, raw))
	}
	return jwtSignRaw(f.ts.keys[0], jwtHeaderJSON, "{"+strings.Join(parts, ", ")+"}")
}

// me is GET /v2/user/me/ with an access cookie holding token.
func (f *hostileFixture) me(token string) *http.Request {
	return hostileWithCookies(f.req("GET", hostileMe, ""), &http.Cookie{Name: "access_token", Value: token})
}

// refresh is POST /v2/user/token_refresh/ with a refresh cookie holding token.
func (f *hostileFixture) refresh(token string) *http.Request {
	return hostileWithCookies(f.post(hostileRefresh, ""), &http.Cookie{Name: "refresh_token", Value: token})
}

func hostileVerifyBody(addr, code string) string {
	return fmt.Sprintf(`{"email":%q,"code":%q}`, addr, code)
}

func hostileCallbackBody(code, state string) string {
	return fmt.Sprintf(`{"code":%q,"state":%q}`, code, state)
}

// hostileSig is a WorkOS-Signature header for body, signed with secret at at.
func hostileSig(secret, body string, at time.Time) string {
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	return "t=" + ts + ", v1=" + hookMAC([]byte(secret), ts, []byte(body))
}

func (f *hostileFixture) webhook(body, signature string) *http.Request {
	return f.post(hostileHook, body, "WorkOS-Signature", signature)
}

// signedWebhook is a genuine, current delivery of body.
func (f *hostileFixture) signedWebhook(body string) *http.Request {
	return f.webhook(body, hostileSig(f.secret, body, f.ts.clock.Now()))
}

// hostileMalformedSig is a webhook whose header is form(ts, sig) for a genuine ts and sig: only the form is wrong.
func hostileMalformedSig(form func(ts, sig string) string) func(f *hostileFixture) *http.Request {
	return func(f *hostileFixture) *http.Request {
		ts := strconv.FormatInt(f.ts.clock.Now().UnixMilli(), 10)
		return f.webhook(hostileMagicEvent, form(ts, hookMAC([]byte(f.secret), ts, []byte(hostileMagicEvent))))
	}
}

// magicAuth registers hostileMagicAuthID with the fake WorkOS, mailed to email, expiring at expires, and returns the
// event that announces it.
func (f *hostileFixture) magicAuth(email string, expires time.Time) string {
	f.codes = append(f.codes, "424242")
	f.fake.addMagicAuth(hostileMagicAuthID, email, "424242", expires)
	return hostileMagicEvent
}

// startSignin starts an AuthKit sign-in in a new browser and plays AuthKit: it returns the browser (holding the state
// cookie), the code and the state.
func (f *hostileFixture) startSignin(g fakeGrant) (*browser, string, string) {
	f.t.Helper()
	b := newBrowser(f.ts)
	code, state := f.fake.authorize(f.t, b.startSignin(), g)
	return b, code, state
}

// pendingChoice runs a sign-in to the point where Ada must pick one of two organizations, and returns her browser
// holding the pending cookie.
func (f *hostileFixture) pendingChoice() *browser {
	f.t.Helper()
	g := adaGrant()
	g.Err = "organization_selection_required"
	g.Organizations = []fakeOrg{{testOrgID, "Acme"}, {testOtherOrgID, "Other"}}
	b := newBrowser(f.ts)
	if r := b.signinWith(f.fake, g); r.field("response_type") != organizationSelectionRequired {
		f.t.Fatalf("sign-in answered %d %s, want a pending choice", r.Code, r.Body)
	}
	return b
}

// flood sends the n requests build makes (from the hostile client, unless build says otherwise) and wants each
// answered with status.
func (f *hostileFixture) flood(n, status int, build func(i int) *http.Request) {
	f.t.Helper()
	for i := range n {
		f.serve(build(i), status)
	}
}

// fullStore replaces the store with a memory store of max keys and fills it: in email+code mode Ada asks for a code
// (four keys: the set-up client's limit, the address's two limits, the code); webhook events marked done fill the
// rest.
func (f *hostileFixture) fullStore(max int) {
	f.t.Helper()
	ms := newMemoryStore(f.ts.clock.Now, max)
	f.ts.store = ms
	if !f.ts.cfg.WorkOS {
		f.code("ada@example.com")
	}
	for i := 0; len(f.storeSnapshot()) < max; i++ {
		if ok, err := ms.Put(context.Background(), f.ts.key("webhook", fmt.Sprintf("event_FILL%022d", i)), "", "done", webhookDoneTTL); !ok || err != nil {
			f.t.Fatalf("filling the store: %v, %v", ok, err)
		}
	}
}

func hostileFlip(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

// hostileTamper changes the character at i of s into another base64url character.
func hostileTamper(s string, i int) string {
	return s[:i] + hostileFlip(s[i]) + s[i+1:]
}

// storeSnapshot returns the live entries of the memory store, key → value and expiry, read under its lock.
func (f *hostileFixture) storeSnapshot() map[string]string {
	f.t.Helper()
	ms, ok := f.ts.store.(*memoryStore)
	if !ok {
		f.t.Fatalf("the store is a %T, not the memory store", f.ts.store)
	}
	now := f.ts.clock.Now()
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make(map[string]string, len(ms.m))
	for k, e := range ms.m {
		if now.Before(e.expires) {
			out[k] = e.value + " until " + e.expires.Format(time.RFC3339Nano)
		}
	}
	return out
}

// hostileChanged lists the keys that differ between two snapshots, sorted.
func hostileChanged(before, after map[string]string) []string {
	var keys []string
	for k, v := range before {
		if w, ok := after[k]; !ok || w != v {
			keys = append(keys, k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// hostileMayChange reports whether key (under prefix) is of one of the kinds allowed.
func hostileMayChange(prefix, key string, allowed []string) bool {
	rest := strings.TrimPrefix(key, prefix)
	return slices.ContainsFunc(allowed, func(kind string) bool { return strings.HasPrefix(rest, kind+":") })
}

// hostileSeries reads a series written "family" or "family{value}".
func (s *server) hostileSeries(series string) uint64 {
	family, value, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	return s.metric(family, value)
}

// runHostileCase sends one case's request and checks every invariant.
func runHostileCase(t *testing.T, tc hostileCase) {
	f := newHostileFixture(t, tc)
	ts := f.ts
	r := tc.build(f)
	ts.background.Wait()
	mailsBefore, callsBefore := len(ts.mails.sent()), f.workosN()
	storeBefore := f.storeSnapshot()
	var countedBefore uint64
	if tc.counted != "" {
		countedBefore = ts.hostileSeries(tc.counted)
	}

	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, r)
	ts.background.Wait()

	if rec.Code != tc.status {
		t.Errorf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var answer map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Errorf("the body is not a JSON object: %q", rec.Body)
	}
	if rec.Code >= 400 && answer["error"] == nil && answer["response_type"] == nil {
		t.Errorf("an error answer without error or response_type: %s", rec.Body)
	}
	if field, value, ok := strings.Cut(tc.want, "="); ok && fmt.Sprint(answer[field]) != value {
		t.Errorf("answer %s, want %s", strings.TrimSpace(rec.Body.String()), tc.want)
	}
	if rec.Code == http.StatusTooManyRequests {
		if n, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || n < 1 {
			t.Errorf("429 with Retry-After %q", rec.Header().Get("Retry-After"))
		}
	}
	seen := strings.TrimSpace(rec.Body.String()) + fmt.Sprint(rec.Header())
	secrets := map[string]string{"JWT secret": string(ts.keys[0]), "webhook secret": f.secret, "API key": testWorkOSAPIKey}
	for _, code := range f.codes {
		secrets["code "+code] = code
	}
	for what, s := range secrets {
		if strings.Contains(seen, s) {
			t.Errorf("the answer reveals the %s", what)
		}
	}
	cleared := 0
	for _, c := range rec.Result().Cookies() {
		if !tc.clears || c.Value != "" || c.MaxAge >= 0 {
			t.Errorf("Set-Cookie %s", c)
		} else {
			cleared++
		}
	}
	if tc.clears && cleared == 0 {
		t.Errorf("no cookie cleared")
	}
	if n := len(ts.mails.sent()) - mailsBefore; n != 0 {
		t.Errorf("%d mails sent", n)
	}
	if n := f.workosN() - callsBefore; n != 0 && !tc.callsWorkOS {
		t.Errorf("%d calls to WorkOS", n)
	}
	for _, k := range hostileChanged(storeBefore, f.storeSnapshot()) {
		if !hostileMayChange(ts.cfg.KeyPrefix, k, tc.mayChange) {
			t.Errorf("store key %q changed", k)
		}
	}
	if tc.counted != "" {
		if n := ts.hostileSeries(tc.counted) - countedBefore; n != 1 {
			t.Errorf("%s rose by %d, want 1", tc.counted, n)
		}
	}
}

// TestHostileRequests runs the table: each hostile request on a fresh server, its exact status and answer, and no
// cookie, mail, WorkOS call, store change or secret beyond what the case allows. The harness also fails the test if a
// handler panicked (dashauth_http_panics_total).
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	cases := hostileRequestCases()
	if len(cases) < 150 {
		t.Errorf("%d hostile cases, want at least 150", len(cases))
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("two cases named %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runHostileCase(t, tc)
		})
	}
}

// hostileRequestCases is the table. Each case starts from a fresh server.
func hostileRequestCases() []hostileCase {
	body := func(path, b string, kv ...string) func(f *hostileFixture) *http.Request {
		return func(f *hostileFixture) *http.Request { return f.post(path, b, kv...) }
	}
	get := func(method, path string) func(f *hostileFixture) *http.Request {
		return func(f *hostileFixture) *http.Request { return f.req(method, path, "") }
	}
	loginURL := func(redirect string) func(f *hostileFixture) *http.Request {
		return func(f *hostileFixture) *http.Request {
			b, _ := json.Marshal(map[string]string{"redirect_url": redirect})
			return f.post(loginURLPath, string(b))
		}
	}
	bigEmail := strings.Repeat("a", 15<<10) + "@example.com"
	const (
		sessionExpired = "error=session_expired"
		badSignature   = "error=invalid_signature"
		badRedirect    = "error=invalid_redirect_url"
		rateLimited    = "error=rate_limited"
		expired        = "response_type=" + linkExpired
		invalid        = "response_type=" + linkInvalid
	)

	return []hostileCase{
		// Routing: only the contract's exact paths and methods reach a handler.
		{name: "unknown path", build: get("GET", "/admin/"), status: 404, want: "error=not_found"},
		{name: "API path without its trailing slash", build: get("GET", "/v2/user/me"), status: 404},
		{name: "dot-dot path onto a route", build: get("GET", "/a/../v2/user/me/"), status: 404},
		{name: "double slash onto a route", build: get("GET", "/v2/user//me/"), status: 404},
		{name: "subpath of login_code sends no code", build: body(hostileLoginCode+"x", hostileAda), status: 404},
		{name: "subpath of verify starts no session", build: func(f *hostileFixture) *http.Request {
			return f.post(hostileVerify+"x", hostileVerifyBody("ada@example.com", f.code("ada@example.com")))
		}, status: 404},
		{name: "subpath of logout revokes nothing", build: func(f *hostileFixture) *http.Request {
			return hostileWithCookies(f.post(hostileLogout+"x", ""), f.session()...)
		}, status: 404},
		{name: "subpath of token_refresh spends nothing", build: func(f *hostileFixture) *http.Request {
			return hostileWithCookies(f.post(hostileRefresh+"x", ""), f.session()...)
		}, status: 404},
		{name: "subpath of the webhook", build: func(f *hostileFixture) *http.Request {
			r := f.signedWebhook(hostileOtherEvent)
			r.URL.Path += "x"
			return r
		}, status: 404, workos: true},
		{name: "GET on a POST endpoint", build: get("GET", hostileLoginCode), status: 405, want: "error=method_not_allowed"},
		{name: "PUT on me", build: get("PUT", hostileMe), status: 405},
		{name: "TRACE on me", build: get("TRACE", hostileMe), status: 405},
		{name: "static path traversal", build: get("GET", "/static/../main.go"), status: 404},
		{name: "static encoded traversal", build: get("GET", "/static/..%2fmain.go"), status: 404},
		{name: "static file that is not an asset", build: get("GET", "/static/index.html"), status: 404},

		// Content types and sizes.
		{name: "form post", build: body(hostileLoginCode, "email=ada@example.com", "Content-Type", "application/x-www-form-urlencoded"),
			status: 415, want: "error=content_type_must_be_application_json"},
		{name: "text/plain post (no preflight)", build: body(hostileLoginCode, hostileAda, "Content-Type", "text/plain"), status: 415},
		{name: "multipart post", build: body(hostileLoginCode, hostileAda, "Content-Type", "multipart/form-data; boundary=x"), status: 415},
		{name: "post without content type", build: body(hostileLoginCode, hostileAda, "Content-Type", ""), status: 415},
		{name: "json-like content type", build: body(hostileLoginCode, hostileAda, "Content-Type", "application/jsonp"), status: 415},
		{name: "malformed content type", build: body(hostileLoginCode, hostileAda, "Content-Type", "application/json charset=utf-8"), status: 415},
		{name: "content type with a malformed parameter", build: body(hostileLoginCode, hostileAda, "Content-Type", "application/json; charset"), status: 415},
		{name: "oversized body, declared", build: body(hostileLoginCode, `{"email":"`+strings.Repeat("a", maxAPIBody)+`"}`),
			status: 413, want: "error=body_too_large"},
		{name: "oversized body, chunked", build: func(f *hostileFixture) *http.Request {
			r := f.post(hostileLoginCode, `{"email":"`+strings.Repeat("a", maxAPIBody)+`"}`)
			r.ContentLength = -1 // length unknown: the limit applies while reading
			return r
		}, status: 413, want: "error=body_too_large"},
		{name: "oversized webhook body", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(`{"pad":"` + strings.Repeat("a", maxWebhookBody) + `"}`)
		}, status: 413, workos: true, counted: "dashauth_webhook_events_total{rejected}"},
		{name: "empty body", build: func(f *hostileFixture) *http.Request {
			return f.req("POST", hostileLoginCode, "", "Content-Type", "application/json")
		}, status: 400, want: "error=invalid_json"},
		{name: "64 KiB cookie", build: func(f *hostileFixture) *http.Request {
			return f.me(strings.Repeat("A", 64<<10))
		}, status: 401, want: sessionExpired},
		{name: "64 KiB signature header", build: func(f *hostileFixture) *http.Request {
			ts := strconv.FormatInt(f.ts.clock.Now().UnixMilli(), 10)
			sig := hookMAC([]byte(f.secret), ts, []byte(hostileMagicEvent))
			return f.webhook(hostileMagicEvent, "t="+ts+strings.Repeat(", v1="+sig, 1000))
		}, status: 401, want: badSignature, workos: true},

		// JSON request bodies.
		{name: "duplicate key", build: body(hostileLoginCode, `{"email":"eve@evil.example","email":"ada@example.com"}`), status: 400, want: "error=duplicate_field"},
		{name: "duplicate key spelled with an escape", build: body(hostileLoginCode, `{"email":"eve@evil.example","\u0065mail":"ada@example.com"}`),
			status: 400, want: "error=duplicate_field"},
		{name: "key in another case", build: body(hostileLoginCode, `{"Email":"ada@example.com"}`), status: 400, want: "error=unknown_field"},
		{name: "unknown field", build: body(hostileLoginCode, `{"email":"ada@example.com","admin":true}`), status: 400, want: "error=unknown_field"},
		{name: "deeply nested objects", build: body(hostileLoginCode, strings.Repeat(`{"email":`, 1500)), status: 400},
		{name: "deeply nested arrays", build: body(hostileLoginCode, `{"email":`+strings.Repeat("[", 5000)), status: 400},
		{name: "huge string", build: body(hostileLoginCode, `{"email":"`+bigEmail+`"}`), status: 400, want: "error=invalid_email"},
		{name: "NUL in email, escaped", build: body(hostileLoginCode, `{"email":"ada\u0000@example.com"}`), status: 400, want: "error=invalid_email"},
		{name: "NUL byte in body", build: body(hostileLoginCode, "{\"email\":\"ada\x00@example.com\"}"), status: 400},
		{name: "CR LF Bcc in email", build: body(hostileLoginCode, `{"email":"ada@example.com\r\nBcc: eve@evil.example"}`), status: 400, want: "error=invalid_email"},
		{name: "trailing LF in email", build: body(hostileLoginCode, `{"email":"ada@example.com\n"}`), status: 400, want: "error=invalid_email"},
		{name: "display name", build: body(hostileLoginCode, `{"email":"Ada <ada@example.com>"}`), status: 400, want: "error=invalid_email"},
		{name: "two addresses", build: body(hostileLoginCode, `{"email":"ada@example.com,eve@evil.example"}`), status: 400, want: "error=invalid_email"},
		{name: "homograph address", build: body(hostileLoginCode, `{"email":"adа@example.com"}`), status: 400, want: "error=invalid_email"},
		{name: "invalid UTF-8", build: body(hostileLoginCode, "{\"email\":\"ada\xff@example.com\"}"), status: 400, want: "error=invalid_email"},
		{name: "lone surrogate", build: body(hostileLoginCode, `{"email":"ada\ud800@example.com"}`), status: 400, want: "error=invalid_email"},
		{name: "operator object for email", build: body(hostileLoginCode, `{"email":{"$ne":null}}`), status: 400, want: "error=invalid_email"},
		{name: "array body", build: body(hostileLoginCode, `[{"email":"ada@example.com"}]`), status: 400, want: "error=invalid_json"},
		{name: "trailing JSON", build: body(hostileLoginCode, hostileAda+`{"email":"eve@evil.example"}`), status: 400, want: "error=invalid_json"},
		{name: "code as a number", build: body(hostileVerify, `{"email":"ada@example.com","code":123456}`), status: 400, want: "error=invalid_code"},
		{name: "code missing", build: body(hostileVerify, hostileAda), status: 400, want: "error=missing_code"},

		// Cross-site requests (login CSRF and friends).
		{name: "cross-site Origin", build: body(hostileLoginCode, hostileAda, "Origin", hostileEvil), status: 403, want: "error=origin_not_allowed"},
		{name: "Origin null", build: body(hostileLoginCode, hostileAda, "Origin", "null"), status: 403},
		{name: "Origin with the dashboard as a prefix", build: body(hostileLoginCode, hostileAda, "Origin", "http://localhost:8080.evil.example"), status: 403},
		{name: "Origin on another port", build: body(hostileLoginCode, hostileAda, "Origin", "http://localhost:8081"), status: 403},
		{name: "Origin with another scheme", build: body(hostileLoginCode, hostileAda, "Origin", "https://localhost:8080"), status: 403},
		{name: "cross-site verify spends no code", build: func(f *hostileFixture) *http.Request {
			return f.post(hostileVerify, hostileVerifyBody("ada@example.com", f.code("ada@example.com")), "Origin", hostileEvil)
		}, status: 403},
		{name: "cross-site logout revokes nothing", build: func(f *hostileFixture) *http.Request {
			return hostileWithCookies(f.post(hostileLogout, "", "Origin", hostileEvil), f.session()...)
		}, status: 403},
		{name: "cross-site refresh spends nothing", build: func(f *hostileFixture) *http.Request {
			return hostileWithCookies(f.post(hostileRefresh, "", "Origin", hostileEvil), f.session()...)
		}, status: 403},
		{name: "cross-site preflight", build: func(f *hostileFixture) *http.Request {
			return f.req("OPTIONS", hostileLoginCode, "", "Origin", hostileEvil, "Access-Control-Request-Method", "POST")
		}, status: 403, want: "error=origin_not_allowed"},

		// Session tokens.
		{name: "no cookie", build: get("GET", hostileMe), status: 401, want: "error=not_signed_in"},
		{name: "tampered signature", build: func(f *hostileFixture) *http.Request {
			tok := hostileCookieValue(f.session(), "access_token")
			return f.me(hostileTamper(tok, len(tok)-3))
		}, status: 401, want: sessionExpired},
		{name: "tampered payload", build: func(f *hostileFixture) *http.Request {
			parts := strings.Split(hostileCookieValue(f.session(), "access_token"), ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			other := strings.Replace(string(payload), `"org":"org_acme"`, `"org":"org_other"`, 1)
			return f.me(parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(other)) + "." + parts[2])
		}, status: 401, want: sessionExpired},
		{name: "truncated token", build: func(f *hostileFixture) *http.Request {
			tok := hostileCookieValue(f.session(), "access_token")
			return f.me(tok[:len(tok)-10])
		}, status: 401},
		{name: "token without signature", build: func(f *hostileFixture) *http.Request {
			tok := hostileCookieValue(f.session(), "access_token")
			return f.me(tok[:strings.LastIndexByte(tok, '.')+1])
		}, status: 401},
		{name: "alg none", build: func(f *hostileFixture) *http.Request {
			parts := strings.Split(hostileCookieValue(f.session(), "access_token"), ".")
			none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
			return f.me(none + "." + parts[1] + ".")
		}, status: 401},
		{name: "alg switched to HS512 with a valid MAC", build: func(f *hostileFixture) *http.Request {
			parts := strings.Split(hostileCookieValue(f.session(), "access_token"), ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			return f.me(jwtSignRaw(f.ts.keys[0], `{"alg":"HS512","typ":"JWT"}`, string(payload)))
		}, status: 401},
		{name: "refresh token as access token", build: func(f *hostileFixture) *http.Request {
			return f.me(hostileCookieValue(f.session(), "refresh_token"))
		}, status: 401},
		{name: "access token as refresh token", build: func(f *hostileFixture) *http.Request {
			return f.refresh(hostileCookieValue(f.session(), "access_token"))
		}, status: 401, want: sessionExpired},
		{name: "expired access token", build: func(f *hostileFixture) *http.Request {
			tok := hostileCookieValue(f.session(), "access_token")
			f.ts.clock.Advance(f.ts.cfg.AccessTTL + leeway*time.Second)
			return f.me(tok)
		}, status: 401},
		{name: "token issued in the future", build: func(f *hostileFixture) *http.Request {
			return f.me(f.forge(func(c *claims) { c.Iat += 2 * leeway; c.Exp += 2 * leeway }))
		}, status: 401},
		{name: "token of another key", build: func(f *hostileFixture) *http.Request {
			c := f.claimsOf(hostileCookieValue(f.session(), "access_token"))
			tok, _ := signToken([]byte(jwtOtherKey), c)
			return f.me(tok)
		}, status: 401, want: sessionExpired},
		{name: "token of another issuer", build: func(f *hostileFixture) *http.Request {
			return f.me(f.forge(func(c *claims) { c.Iss = hostileEvil }))
		}, status: 401},
		{name: "token of another audience", build: func(f *hostileFixture) *http.Request {
			return f.me(f.forge(func(c *claims) { c.Aud = "admin" }))
		}, status: 401},
		{name: "token for a session that does not exist", build: func(f *hostileFixture) *http.Request {
			return f.me(f.forge(func(c *claims) { c.Sid = "sess_" + strings.Repeat("0", 32) }))
		}, status: 401},
		{name: "token of a logged-out session", build: func(f *hostileFixture) *http.Request {
			cookies := f.session()
			wantStatus(f.t, f.ts.post(hostileLogout, "", cookies...), http.StatusOK)
			return f.me(hostileCookieValue(cookies, "access_token"))
		}, status: 401, want: sessionExpired},
		{name: "cookie under a prefixed name", build: func(f *hostileFixture) *http.Request {
			return hostileWithCookies(f.req("GET", hostileMe, ""), &http.Cookie{Name: "__Host-access_token", Value: hostileCookieValue(f.session(), "access_token")})
		}, status: 401, want: "error=not_signed_in"},
		// Tokens other libraries write are accepted (RFC 7519 leaves member order and whitespace free); duplicate,
		// case-variant and unknown claim names are not, signature or no.
		{name: "token signed with another member order", build: func(f *hostileFixture) *http.Request {
			return f.me(f.foreignToken("exp", "iat", "jti", "typ", "sid", "org", "email", "sub", "aud", "iss"))
		}, status: 200, want: "login_method=email_code"},
		{name: "token with a duplicate claim", build: func(f *hostileFixture) *http.Request {
			return f.me(f.foreignToken("iss", "aud", "sub", "email", "org", "sid", "typ", "jti", "iat", "exp", `org="org_other"`))
		}, status: 401, want: sessionExpired},
		{name: "token with a duplicate claim spelled with an escape", build: func(f *hostileFixture) *http.Request {
			return f.me(f.foreignToken("iss", "aud", "sub", "email", "org", "sid", "typ", "jti", "iat", "exp", `\u006frg="org_other"`))
		}, status: 401, want: sessionExpired},
		{name: "token with a case-variant claim", build: func(f *hostileFixture) *http.Request {
			return f.me(f.foreignToken("iss", "aud", "sub", "email", "org", "sid", "typ", "jti", "iat", "exp", `ORG="org_other"`))
		}, status: 401, want: sessionExpired},
		{name: "token with a claim renamed in another case", build: func(f *hostileFixture) *http.Request {
			return f.me(f.foreignToken("iss", "aud", "Sub", "email", "org", "sid", "typ", "jti", "iat", "exp"))
		}, status: 401, want: sessionExpired},
		{name: "token with an unknown claim", build: func(f *hostileFixture) *http.Request {
			return f.me(f.foreignToken("iss", "aud", "sub", "email", "org", "sid", "typ", "jti", "iat", "exp", "admin=true"))
		}, status: 401, want: sessionExpired},
		{name: "token with exp as a string", build: func(f *hostileFixture) *http.Request {
			c := f.claimsOf(hostileCookieValue(f.session(), "access_token"))
			return f.me(f.foreignToken("iss", "aud", "sub", "email", "org", "sid", "typ", "jti", "iat", fmt.Sprintf(`exp="%d"`, c.Exp)))
		}, status: 401, want: sessionExpired},

		// Refresh and logout.
		{name: "tampered refresh token", build: func(f *hostileFixture) *http.Request {
			tok := hostileCookieValue(f.session(), "refresh_token")
			return f.refresh(hostileTamper(tok, len(tok)-3))
		}, status: 401, want: sessionExpired},
		{name: "spent refresh token within the reuse interval", build: func(f *hostileFixture) *http.Request {
			first := f.session()
			f.refreshed(first)
			return f.refresh(hostileCookieValue(first, "refresh_token"))
		}, status: 401, want: "error=refresh_token_spent", counted: "dashauth_refresh_reuse_total{refused}"},
		{name: "spent refresh token replayed later revokes the session", build: func(f *hostileFixture) *http.Request {
			first := f.session()
			f.refreshed(first)
			f.ts.clock.Advance(f.ts.cfg.RefreshReuse + time.Second)
			return f.refresh(hostileCookieValue(first, "refresh_token"))
		}, status: 401, want: "error=refresh_token_spent", mayChange: []string{"session"}, clears: true,
			counted: "dashauth_refresh_reuse_total{revoked}"},
		{name: "refresh token two rotations old revokes the session", build: func(f *hostileFixture) *http.Request {
			first := f.session()
			f.refreshed(f.refreshed(first)) // no time passes: well within the reuse interval
			return f.refresh(hostileCookieValue(first, "refresh_token"))
		}, status: 401, want: "error=refresh_token_spent", mayChange: []string{"session"}, clears: true,
			counted: "dashauth_refresh_reuse_total{revoked}"},
		{name: "refresh past SESSION_MAX_AGE", build: func(f *hostileFixture) *http.Request {
			cookies := f.session()
			f.ts.clock.Advance(50 * time.Minute)
			cookies = f.refreshed(cookies) // its refresh token ends with the session, at the hour
			f.ts.clock.Advance(10*time.Minute + leeway/2*time.Second)
			return f.refresh(hostileCookieValue(cookies, "refresh_token")) // still within the token's leeway
		}, status: 401, want: sessionExpired, env: []string{"SESSION_MAX_AGE", "1h"}},
		{name: "me past SESSION_MAX_AGE", build: func(f *hostileFixture) *http.Request {
			cookies := f.session()
			f.ts.clock.Advance(59 * time.Minute)
			cookies = f.refreshed(cookies)
			f.ts.clock.Advance(time.Minute)
			return f.me(hostileCookieValue(cookies, "access_token"))
		}, status: 401, want: sessionExpired, env: []string{"SESSION_MAX_AGE", "1h"}},
		{name: "logout with a forged token", build: func(f *hostileFixture) *http.Request {
			c := f.claimsOf(hostileCookieValue(f.session(), "access_token"))
			tok, _ := signToken([]byte(jwtOtherKey), c)
			return hostileWithCookies(f.post(hostileLogout, ""), &http.Cookie{Name: "access_token", Value: tok})
		}, status: 200, want: "status=logged_out", clears: true},

		// Login codes: guessing and flooding. A verify is counted against its client (rl:verify) and a guess against
		// its code (tries).
		{name: "sixth guess is refused even when right", build: func(f *hostileFixture) *http.Request {
			code := f.code("ada@example.com")
			for range codeMaxTries {
				wantStatus(f.t, f.ts.post(hostileVerify, hostileVerifyBody("ada@example.com", authOtherCode(code))), http.StatusBadRequest)
			}
			return f.post(hostileVerify, hostileVerifyBody("ada@example.com", code))
		}, status: 400, want: expired, mayChange: []string{"rl:verify"}},
		{name: "fifth wrong guess burns the code", build: func(f *hostileFixture) *http.Request {
			code := f.code("ada@example.com")
			for range codeMaxTries - 1 {
				wantStatus(f.t, f.ts.post(hostileVerify, hostileVerifyBody("ada@example.com", authOtherCode(code))), http.StatusBadRequest)
			}
			return f.post(hostileVerify, hostileVerifyBody("ada@example.com", authOtherCode(code)))
		}, status: 400, want: invalid, mayChange: []string{"tries", "rl:verify"}},
		{name: "malformed code counts as a guess", build: func(f *hostileFixture) *http.Request {
			return f.post(hostileVerify, hostileVerifyBody("ada@example.com", f.code("ada@example.com")+"\n"))
		}, status: 400, want: invalid, mayChange: []string{"tries", "rl:verify"}},
		{name: "used code", build: func(f *hostileFixture) *http.Request {
			f.session()
			return f.post(hostileVerify, hostileVerifyBody("ada@example.com", f.codes[0]))
		}, status: 400, want: expired, mayChange: []string{"rl:verify"}},
		{name: "code of another address", build: func(f *hostileFixture) *http.Request {
			return f.post(hostileVerify, hostileVerifyBody("bob@example.com", f.code("ada@example.com")))
		}, status: 400, want: expired, mayChange: []string{"rl:verify"}},
		{name: "expired code", build: func(f *hostileFixture) *http.Request {
			code := f.code("ada@example.com")
			f.ts.clock.Advance(codeTTL)
			return f.post(hostileVerify, hostileVerifyBody("ada@example.com", code))
		}, status: 400, want: expired, mayChange: []string{"rl:verify"}},
		{name: "guess with no code pending", build: body(hostileVerify, hostileVerifyBody("ada@example.com", "123456")),
			status: 400, want: expired, mayChange: []string{"rl:verify"}},
		{name: "31st verify from one client, even with the right code", build: func(f *hostileFixture) *http.Request {
			code := f.code("ada@example.com")
			f.flood(30, http.StatusBadRequest, func(i int) *http.Request {
				return f.post(hostileVerify, hostileVerifyBody(fmt.Sprintf("user%d@example.com", i), "123456"))
			})
			return f.post(hostileVerify, hostileVerifyBody("ada@example.com", code))
		}, status: 429, want: rateLimited, counted: "dashauth_rate_limited_total"},
		{name: "second code within a minute", build: func(f *hostileFixture) *http.Request {
			f.code("ada@example.com")
			return f.post(hostileLoginCode, hostileAda)
		}, status: 429, want: rateLimited, mayChange: []string{"rl:client"}, counted: "dashauth_rate_limited_total"},
		{name: "sixth code within 15 minutes", build: func(f *hostileFixture) *http.Request {
			for range 5 {
				f.code("ada@example.com")
				f.ts.clock.Advance(time.Minute + time.Second)
			}
			return f.post(hostileLoginCode, hostileAda)
		}, status: 429, want: rateLimited, mayChange: []string{"rl:client", "rl:addr1m"}},
		{name: "31st request from one client", build: func(f *hostileFixture) *http.Request {
			f.flood(30, http.StatusOK, func(i int) *http.Request {
				return f.post(hostileLoginCode, fmt.Sprintf(`{"email":"user%d@example.com"}`, i))
			})
			return f.post(hostileLoginCode, hostileAda)
		}, status: 429, want: rateLimited},
		{name: "31st request from one IPv6 subnet, each from a new address", build: func(f *hostileFixture) *http.Request {
			f.flood(30, http.StatusOK, func(i int) *http.Request {
				r := f.post(hostileLoginCode, fmt.Sprintf(`{"email":"user%d@example.com"}`, i))
				r.RemoteAddr = fmt.Sprintf("[2001:db8:1:2:%x::1]:4711", i+1)
				return r
			})
			r := f.post(hostileLoginCode, hostileAda)
			r.RemoteAddr = "[2001:db8:1:2:ffff:ffff:ffff:ffff]:4711"
			return r
		}, status: 429, want: rateLimited},
		{name: "X-Forwarded-For from an untrusted peer", build: func(f *hostileFixture) *http.Request {
			f.flood(30, http.StatusOK, func(i int) *http.Request {
				return f.post(hostileLoginCode, fmt.Sprintf(`{"email":"user%d@example.com"}`, i))
			})
			return f.post(hostileLoginCode, hostileAda, "X-Forwarded-For", "203.0.113.99")
		}, status: 429, want: rateLimited},
		{name: "X-Forwarded-For hop with a port from a trusted proxy", build: func(f *hostileFixture) *http.Request {
			// Each request through another proxy and from another port of the client: one client all the same.
			f.flood(30, http.StatusOK, func(i int) *http.Request {
				r := f.post(hostileLoginCode, fmt.Sprintf(`{"email":"user%d@example.com"}`, i), "X-Forwarded-For", fmt.Sprintf("203.0.113.5:%d", 40000+i))
				r.RemoteAddr = fmt.Sprintf("10.0.0.%d:5000", i+1)
				return r
			})
			r := f.post(hostileLoginCode, hostileAda, "X-Forwarded-For", "6.6.6.6, 203.0.113.5:443")
			r.RemoteAddr = "10.0.0.99:5000"
			return r
		}, status: 429, want: rateLimited, env: []string{"TRUSTED_PROXIES", "10.0.0.0/8"}},

		// The memory store at its cap refuses new keys (503) and evicts nothing: a flood cannot void a pending code, a
		// session or a limit.
		{name: "memory store full refuses a new code, evicts nothing", build: func(f *hostileFixture) *http.Request {
			f.fullStore(4)
			return f.post(hostileLoginCode, `{"email":"bob@example.com"}`)
		}, status: 503, want: "error=state_unavailable", counted: "dashauth_store_errors_total"},
		{name: "memory store full refuses a verify, the pending code stays", build: func(f *hostileFixture) *http.Request {
			f.fullStore(4)
			return f.post(hostileVerify, hostileVerifyBody("ada@example.com", f.codes[0]))
		}, status: 503, want: "error=state_unavailable"},
		{name: "memory store full refuses a callback before the exchange", build: func(f *hostileFixture) *http.Request {
			b, code, state := f.startSignin(adaGrant())
			f.fullStore(3)
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(code, state)), b.cookies()...)
		}, status: 503, want: "error=state_unavailable", workos: true},

		// Mode gating: each flow's endpoints exist only in its mode.
		{name: "WorkOS login URL in email+code mode", build: body(loginURLPath, `{"redirect_url":"`+testRedirectURL+`"}`),
			status: 404, want: "error=workos_not_enabled"},
		{name: "WorkOS callback in email+code mode", build: body(callbackPath, `{"code":"c","state":"s"}`), status: 404},
		{name: "organization choice in email+code mode", build: body(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), status: 404},
		{name: "email code in WorkOS mode", build: body(hostileLoginCode, hostileAda), status: 404, want: "error=email_code_login_disabled", workos: true},
		{name: "code verify in WorkOS mode", build: body(hostileVerify, hostileVerifyBody("ada@example.com", "123456")), status: 404, workos: true},

		// AuthKit: open redirects, forged or replayed state, pending choices. login_url writes nothing to the store;
		// callback and select_organization count against their client (rl:workos).
		{name: "redirect to another site", build: loginURL("https://evil.example/en/callback"), status: 400, want: badRedirect, workos: true},
		{name: "redirect scheme-relative", build: loginURL("//evil.example/en/callback"), status: 400, want: badRedirect, workos: true},
		{name: "redirect with the dashboard as user info", build: loginURL("http://localhost:8080@evil.example/en/callback"), status: 400, want: badRedirect, workos: true},
		{name: "redirect with a backslash", build: loginURL(`http://localhost:8080\@evil.example/en/callback`), status: 400, want: badRedirect, workos: true},
		{name: "redirect to a lookalike host", build: loginURL("http://localhost:8080.evil.example/en/callback"), status: 400, want: badRedirect, workos: true},
		{name: "redirect to another path", build: loginURL("http://localhost:8080/en/callback/../../admin"), status: 400, want: badRedirect, workos: true},
		{name: "redirect with a query", build: loginURL("http://localhost:8080/en/callback?next=https://evil.example"), status: 400, want: badRedirect, workos: true},
		{name: "redirect with a fragment", build: loginURL("http://localhost:8080/en/callback#https://evil.example"), status: 400, want: badRedirect, workos: true},
		{name: "redirect percent-encoded", build: loginURL("http://localhost:8080/en%2Fcallback"), status: 400, want: badRedirect, workos: true},
		{name: "redirect to javascript", build: loginURL("javascript:alert(document.cookie)//localhost:8080/en/callback"), status: 400, want: badRedirect, workos: true},
		{name: "redirect with a trailing slash", build: loginURL(testRedirectURL + "/"), status: 400, want: badRedirect, workos: true},
		{name: "redirect over https", build: loginURL("https://localhost:8080/en/callback"), status: 400, want: badRedirect, workos: true},
		{name: "redirect with a NUL", build: loginURL(testRedirectURL + "%00"), status: 400, want: badRedirect, workos: true},
		{name: "screen hint that AuthKit does not know", build: body(loginURLPath, `{"redirect_url":"`+testRedirectURL+`","screen_hint":"admin"}`),
			status: 400, want: "error=invalid_screen_hint", workos: true},
		{name: "cross-site login URL", build: body(loginURLPath, `{"redirect_url":"`+testRedirectURL+`"}`, "Origin", hostileEvil), status: 403, workos: true},
		{name: "callback without a state cookie", build: func(f *hostileFixture) *http.Request {
			_, code, state := f.startSignin(adaGrant())
			return f.post(callbackPath, hostileCallbackBody(code, state))
		}, status: 400, want: expired, workos: true, mayChange: []string{"rl:workos"}},
		{name: "callback with another sign-in's state", build: func(f *hostileFixture) *http.Request {
			b, code, _ := f.startSignin(adaGrant())
			_, _, theirs := f.startSignin(adaGrant())
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(code, theirs)), b.cookies()...)
		}, status: 400, want: invalid, workos: true, mayChange: []string{"rl:workos"}},
		{name: "callback with a tampered state", build: func(f *hostileFixture) *http.Request {
			b, code, state := f.startSignin(adaGrant())
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(code, hostileTamper(state, 20))), b.cookies()...)
		}, status: 400, want: invalid, workos: true, mayChange: []string{"rl:workos"}},
		{name: "callback with a state sealed by another deployment", build: func(f *hostileFixture) *http.Request {
			other := newWorkOSTestServer(f.t, f.fake, "JWT_SECRET", jwtOtherKey)
			code, state := f.fake.authorize(f.t, newBrowser(other).startSignin(), adaGrant())
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(code, state)), &http.Cookie{Name: other.stateCookieName(state), Value: "1"})
		}, status: 400, want: invalid, workos: true, mayChange: []string{"rl:workos"}},
		{name: "pending choice presented as the state", build: func(f *hostileFixture) *http.Request {
			b := f.pendingChoice()
			pending := b.jar["workos_pending"]
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody("code_x", pending)), &http.Cookie{Name: f.ts.stateCookieName(pending), Value: "1"})
		}, status: 400, want: invalid, workos: true, mayChange: []string{"rl:workos"}},
		{name: "callback replaying a spent state", build: func(f *hostileFixture) *http.Request {
			b, code, state := f.startSignin(adaGrant())
			saved := b.cookies()
			wantStatus(f.t, b.callback(code, state), http.StatusOK)
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(code, state)), saved...)
		}, status: 400, want: expired, clears: true, workos: true, mayChange: []string{"rl:workos"}},
		{name: "callback after the sign-in expired", build: func(f *hostileFixture) *http.Request {
			b, code, state := f.startSignin(adaGrant())
			f.ts.clock.Advance(signinTTL)
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(code, state)), b.cookies()...)
		}, status: 400, want: expired, clears: true, workos: true, mayChange: []string{"rl:workos"}},
		{name: "callback with a code WorkOS refuses", build: func(f *hostileFixture) *http.Request {
			b, _, state := f.startSignin(adaGrant())
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody("code_forged", state)), b.cookies()...)
		}, status: 400, want: invalid, clears: true, workos: true, callsWorkOS: true, mayChange: []string{"wstate", "rl:workos"}},
		{name: "callback WorkOS answers with a step to finish first", build: func(f *hostileFixture) *http.Request {
			g := adaGrant()
			g.Err = "mfa_challenge"
			b, code, state := f.startSignin(g)
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(code, state)), b.cookies()...)
		}, status: 400, want: invalid, clears: true, workos: true, callsWorkOS: true, mayChange: []string{"wstate", "rl:workos"}},
		{name: "callback with a huge code", build: func(f *hostileFixture) *http.Request {
			b, _, state := f.startSignin(adaGrant())
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(strings.Repeat("c", 8<<10), state)), b.cookies()...)
		}, status: 400, want: invalid, workos: true, mayChange: []string{"rl:workos"}},
		{name: "cross-site callback", build: func(f *hostileFixture) *http.Request {
			b, code, state := f.startSignin(adaGrant())
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(code, state), "Origin", hostileEvil), b.cookies()...)
		}, status: 403, workos: true},
		{name: "61st callback from one client, even a genuine one", build: func(f *hostileFixture) *http.Request {
			b, code, state := f.startSignin(adaGrant())
			f.flood(60, http.StatusBadRequest, func(i int) *http.Request {
				return f.post(callbackPath, hostileCallbackBody("code", fmt.Sprintf("state%d", i)))
			})
			return hostileWithCookies(f.post(callbackPath, hostileCallbackBody(code, state)), b.cookies()...)
		}, status: 429, want: rateLimited, workos: true, counted: "dashauth_rate_limited_total"},
		{name: "organization choice after 60 callbacks from one client", build: func(f *hostileFixture) *http.Request {
			b := f.pendingChoice()
			f.flood(60, http.StatusBadRequest, func(i int) *http.Request {
				return f.post(callbackPath, hostileCallbackBody("code", fmt.Sprintf("state%d", i)))
			})
			return hostileWithCookies(f.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), b.cookies()...)
		}, status: 429, want: rateLimited, workos: true},
		{name: "organization choice without a pending sign-in", build: body(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`),
			status: 400, want: expired, workos: true, mayChange: []string{"rl:workos"}},
		{name: "organization that was not offered", build: func(f *hostileFixture) *http.Request {
			b := f.pendingChoice()
			return hostileWithCookies(f.post(selectOrgPath, `{"organization_id":"org_01HEVIL00000000000000000000"}`), b.cookies()...)
		}, status: 400, want: invalid, workos: true, mayChange: []string{"rl:workos"}},
		{name: "sealed state presented as the pending choice", build: func(f *hostileFixture) *http.Request {
			authURL := newBrowser(f.ts).startSignin()
			u, _ := url.Parse(authURL)
			return hostileWithCookies(f.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), &http.Cookie{Name: "workos_pending", Value: u.Query().Get("state")})
		}, status: 400, want: invalid, workos: true, mayChange: []string{"rl:workos"}},
		{name: "tampered pending choice", build: func(f *hostileFixture) *http.Request {
			b := f.pendingChoice()
			return hostileWithCookies(f.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), &http.Cookie{Name: "workos_pending", Value: hostileTamper(b.jar["workos_pending"], 30)})
		}, status: 400, want: invalid, workos: true, mayChange: []string{"rl:workos"}},
		{name: "pending choice replayed", build: func(f *hostileFixture) *http.Request {
			b := f.pendingChoice()
			saved := b.cookies()
			wantStatus(f.t, b.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), http.StatusOK)
			return hostileWithCookies(f.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), saved...)
		}, status: 400, want: expired, clears: true, workos: true, mayChange: []string{"rl:workos"}},
		{name: "pending choice after it expired", build: func(f *hostileFixture) *http.Request {
			b := f.pendingChoice()
			f.ts.clock.Advance(signinTTL)
			return hostileWithCookies(f.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), b.cookies()...)
		}, status: 400, want: expired, clears: true, workos: true, mayChange: []string{"rl:workos"}},

		// Webhook: forged, replayed, stale and future deliveries.
		{name: "webhook without signature", build: body(hostileHook, hostileMagicEvent), status: 401, want: badSignature, workos: true,
			counted: "dashauth_webhook_events_total{rejected}"},
		{name: "webhook signed with another secret", build: func(f *hostileFixture) *http.Request {
			return f.webhook(hostileMagicEvent, hostileSig("whsec_guess", hostileMagicEvent, f.ts.clock.Now()))
		}, status: 401, want: badSignature, workos: true},
		{name: "webhook signature of another body", build: func(f *hostileFixture) *http.Request {
			return f.webhook(hostileMagicEvent, hostileSig(f.secret, hostileOtherEvent, f.ts.clock.Now()))
		}, status: 401, want: badSignature, workos: true},
		{name: "webhook stale by 3 minutes and 1 ms", build: func(f *hostileFixture) *http.Request {
			return f.webhook(hostileMagicEvent, hostileSig(f.secret, hostileMagicEvent, f.ts.clock.Now().Add(-webhookTolerance-time.Millisecond)))
		}, status: 401, want: badSignature, workos: true},
		{name: "webhook from 3 minutes and 1 ms in the future", build: func(f *hostileFixture) *http.Request {
			return f.webhook(hostileMagicEvent, hostileSig(f.secret, hostileMagicEvent, f.ts.clock.Now().Add(webhookTolerance+time.Millisecond)))
		}, status: 401, want: badSignature, workos: true},
		{name: "webhook replayed an hour later", build: func(f *hostileFixture) *http.Request {
			sig := hostileSig(f.secret, hostileMagicEvent, f.ts.clock.Now())
			f.ts.clock.Advance(time.Hour)
			return f.webhook(hostileMagicEvent, sig)
		}, status: 401, want: badSignature, workos: true},
		{name: "webhook timestamp in seconds", build: func(f *hostileFixture) *http.Request {
			ts := strconv.FormatInt(f.ts.clock.Now().Unix(), 10)
			return f.webhook(hostileMagicEvent, "t="+ts+", v1="+hookMAC([]byte(f.secret), ts, []byte(hostileMagicEvent)))
		}, status: 401, want: badSignature, workos: true},
		{name: "signature header: empty", build: hostileMalformedSig(func(ts, sig string) string { return " " }), status: 401, workos: true},
		{name: "signature header: v1 before t", build: hostileMalformedSig(func(ts, sig string) string { return "v1=" + sig + ", t=" + ts }), status: 401, workos: true},
		{name: "signature header: t only", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts }), status: 401, workos: true},
		{name: "signature header: v1 only", build: hostileMalformedSig(func(ts, sig string) string { return "v1=" + sig }), status: 401, workos: true},
		{name: "signature header: empty t", build: hostileMalformedSig(func(ts, sig string) string { return "t=, v1=" + sig }), status: 401, workos: true},
		{name: "signature header: t with a sign", build: hostileMalformedSig(func(ts, sig string) string { return "t=+" + ts + ", v1=" + sig }), status: 401, workos: true},
		{name: "signature header: negative t", build: hostileMalformedSig(func(ts, sig string) string { return "t=-" + ts + ", v1=" + sig }), status: 401, workos: true},
		{name: "signature header: t beyond int64", build: hostileMalformedSig(func(ts, sig string) string { return "t=99999999999999999999, v1=" + sig }), status: 401, workos: true},
		{name: "signature header: t in full-width digits", build: hostileMalformedSig(func(ts, sig string) string { return "t=１７００, v1=" + sig }), status: 401, workos: true},
		{name: "signature header: quoted t", build: hostileMalformedSig(func(ts, sig string) string { return `t="` + ts + `", v1=` + sig }), status: 401, workos: true},
		{name: "signature header: upper-case T", build: hostileMalformedSig(func(ts, sig string) string { return "T=" + ts + ", v1=" + sig }), status: 401, workos: true},
		{name: "signature header: spaces around =", build: hostileMalformedSig(func(ts, sig string) string { return "t = " + ts + ", v1 = " + sig }), status: 401, workos: true},
		{name: "signature header: upper-case hex", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=" + strings.ToUpper(sig) }), status: 401, workos: true},
		{name: "signature header: 63 hex digits", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=" + sig[:63] }), status: 401, workos: true},
		{name: "signature header: 65 hex digits", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=" + sig + "0" }), status: 401, workos: true},
		{name: "signature header: v0 scheme", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + ", v0=" + sig }), status: 401, workos: true},
		{name: "signature header: two spaces after a comma", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + ",  v1=" + sig }), status: 401, workos: true},
		{name: "signature header: tab after a comma", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + ",\tv1=" + sig }), status: 401, workos: true},
		{name: "signature header: semicolons", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + "; v1=" + sig }), status: 401, workos: true},
		{name: "signature header: trailing comma", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=" + sig + "," }), status: 401, workos: true},
		{name: "signature header: two t", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + ", t=" + ts + ", v1=" + sig }), status: 401, workos: true},
		{name: "signature header: genuine v1 ninth", build: hostileMalformedSig(func(ts, sig string) string {
			return "t=" + ts + strings.Repeat(", v1="+strings.Repeat("0", 64), maxSignatures) + ", v1=" + sig
		}), status: 401, workos: true},
		{name: "signature header: hex with 0x", build: hostileMalformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=0x" + sig[2:] }), status: 401, workos: true},
		{name: "webhook with a form content type", build: func(f *hostileFixture) *http.Request {
			r := f.signedWebhook(hostileMagicEvent)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, status: 415, workos: true},
		{name: "webhook from a browser origin, forged", build: func(f *hostileFixture) *http.Request {
			r := f.webhook(hostileMagicEvent, hostileSig("whsec_guess", hostileMagicEvent, f.ts.clock.Now()))
			r.Header.Set("Origin", hostileEvil)
			return r
		}, status: 401, want: badSignature, workos: true},
		{name: "signed webhook that is not JSON", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(`{"id":`)
		}, status: 400, want: "error=invalid_json", workos: true},
		{name: "signed webhook with a path in the event id", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(strings.Replace(hostileMagicEvent, hostileEventID, "event_../../../x", 1))
		}, status: 400, want: "error=invalid_event", workos: true},
		{name: "signed webhook with a path in the magic auth id", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(strings.Replace(hostileMagicEvent, hostileMagicAuthID, "magic_auth_../../users/user_1", 1))
		}, status: 400, want: "error=invalid_event", workos: true},
		{name: "signed webhook with a query in the magic auth id", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(strings.Replace(hostileMagicEvent, hostileMagicAuthID, "magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ?x=1", 1))
		}, status: 400, want: "error=invalid_event", workos: true},
		{name: "signed webhook of an ignored event", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(hostileOtherEvent)
		}, status: 200, want: "status=ignored", workos: true},
		{name: "webhook replayed within the window after delivery", build: func(f *hostileFixture) *http.Request {
			ev := f.magicAuth("ada@example.com", f.ts.clock.Now().Add(10*time.Minute))
			f.serve(f.signedWebhook(ev), http.StatusOK)
			f.ts.clock.Advance(time.Minute)
			return f.signedWebhook(ev)
		}, status: 200, want: "status=duplicate", workos: true, counted: "dashauth_dedup_hits_total"},
		{name: "webhook retried while a delivery is in progress", build: func(f *hostileFixture) *http.Request {
			ev := f.magicAuth("ada@example.com", f.ts.clock.Now().Add(10*time.Minute))
			if ok, err := f.ts.store.Put(context.Background(), f.ts.key("webhook", hostileEventID), "", "claimed "+randomID(16), webhookLease); !ok || err != nil {
				f.t.Fatalf("claim: %v, %v", ok, err)
			}
			return f.signedWebhook(ev)
		}, status: 409, want: "error=delivery_in_progress", workos: true},
		{name: "webhook for a magic auth WorkOS does not know", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(hostileMagicEvent)
		}, status: 503, want: "error=delivery_failed", workos: true, callsWorkOS: true, counted: "dashauth_webhook_events_total{failed}"},
		{name: "webhook for an expired magic auth", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(f.magicAuth("ada@example.com", f.ts.clock.Now().Add(-time.Second)))
		}, status: 200, want: "status=ignored", workos: true, callsWorkOS: true, mayChange: []string{"webhook"}},
		{name: "webhook for an undeliverable magic auth", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(f.magicAuth("ada@example.com\r\nBcc: eve@evil.example", f.ts.clock.Now().Add(10*time.Minute)))
		}, status: 200, want: "status=undeliverable", workos: true, callsWorkOS: true, mayChange: []string{"webhook"},
			counted: "dashauth_webhook_events_total{undeliverable}"},
		{name: "unsigned webhook in email+code mode", build: body(hostileHook, hostileMagicEvent), status: 404, want: "error=workos_not_enabled"},
		{name: "signed magic_auth.created in email+code mode", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(hostileMagicEvent)
		}, status: 404, want: "error=workos_not_enabled"},
	}
}

// TestHostileUserEnumeration: a member (active or not) and a stranger get the same status, body and headers, after
// the same store work (every call, key and value size, with the address's id made generic), for every step of a
// script that asks, asks too soon, guesses, burns a code, lets it expire and asks again. Only the mail differs, and it
// is sent after the answer. No timing is measured: the same work is what makes the time the same.
func TestHostileUserEnumeration(t *testing.T) {
	t.Parallel()
	type step struct {
		status  int
		body    string
		headers http.Header
		ops     []string
	}
	script := func(addr string) ([]step, int) {
		ts := newAuthCodeServer(t)
		log := &authStoreLog{store: ts.store, hide: map[string]string{ts.addressID(addr): "<address>"}}
		ts.store = log
		// Each code asked for is replaced, beneath the log, by one no guess below matches: a random code could.
		ask := func() response {
			r := ts.post(hostileLoginCode, `{"email":"`+addr+`"}`)
			if r.Code == http.StatusOK {
				if ok, err := log.store.Put(context.Background(), ts.key("code", ts.addressID(addr)), anyValue, ts.codeHash(addr, "111111"), codeTTL); !ok || err != nil {
					t.Fatalf("replacing the code: %v, %v", ok, err)
				}
			}
			return r
		}
		guess := func(code string) func() response {
			return func() response { return ts.post(hostileVerify, hostileVerifyBody(addr, code)) }
		}
		var steps []step
		for _, do := range []func() response{
			ask, ask, // a code, then 429 too soon
			guess("000000"), guess("abcdef"), guess("000001"), guess("000002"), guess("000003"), guess("000004"), // burned
			func() response { ts.clock.Advance(codeTTL); return guess("000005")() }, // expired
			ask, guess("999999"), // a fresh code, a wrong guess
			func() response { return ts.post(hostileVerify, hostileVerifyBody(strings.ToUpper(addr), "999998")) }, // the same address in capitals
		} {
			log.mu.Lock()
			log.ops = nil
			log.mu.Unlock()
			r := do()
			log.mu.Lock()
			steps = append(steps, step{r.Code, r.Body.String(), r.Header(), slices.Clone(log.ops)})
			log.mu.Unlock()
		}
		ts.background.Wait()
		return steps, len(ts.mails.sent())
	}
	member, mails := script("ada@example.com")
	if mails != 2 {
		t.Fatalf("the member got %d mails, want 2", mails)
	}
	wantStatuses := []int{200, 429, 400, 400, 400, 400, 400, 400, 400, 200, 400, 400}
	for i, s := range member {
		if s.status != wantStatuses[i] {
			t.Fatalf("member step %d: %d %s, want %d", i, s.status, s.body, wantStatuses[i])
		}
	}
	for _, addr := range []string{"bob@example.com", "eve@example.com", "eve@evil.example"} { // inactive, strangers
		got, mails := script(addr)
		if want := map[string]int{"bob@example.com": 2}[addr]; mails != want {
			t.Errorf("%s got %d mails, want %d", addr, mails, want)
		}
		for i := range member {
			m, g := member[i], got[i]
			if g.status != m.status || g.body != m.body || !maps.EqualFunc(g.headers, m.headers, slices.Equal) {
				t.Errorf("%s step %d: %d %v %s; member: %d %v %s", addr, i, g.status, g.headers, g.body, m.status, m.headers, m.body)
			}
			if !slices.Equal(g.ops, m.ops) {
				t.Errorf("%s step %d, store work:\n%s\nmember's:\n%s", addr, i, strings.Join(g.ops, "\n"), strings.Join(m.ops, "\n"))
			}
		}
	}
}

// TestHostileStoreHoldsNoCode: a copy of the store (a Redis dump, a replica, a backup) gives away neither a pending
// code nor who asked for one: it holds an HMAC of the code under a key derived from JWT_SECRET, and addresses only as
// HMACs.
func TestHostileStoreHoldsNoCode(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, hostileCase{})
	code := f.code("ada@example.com")
	f.code("bob@example.com")
	wantStatus(t, f.ts.post(hostileVerify, hostileVerifyBody("ada@example.com", authOtherCode(code))), http.StatusBadRequest)
	entries := f.storeSnapshot()
	if got := entries[f.ts.key("code", f.ts.addressID("ada@example.com"))]; !strings.HasPrefix(got, f.ts.codeHash("ada@example.com", code)+" until ") {
		t.Fatalf("code entry %q, want the code's HMAC", got)
	}
	for k, v := range entries {
		for _, c := range f.codes {
			if strings.Contains(k+v, c) {
				t.Errorf("store entry %q = %q holds the code %s", k, v, c)
			}
		}
		// Keys and values are hex, which can spell "ada"; an address always carries its "@" and domain.
		if strings.Contains(k+v, "@") || strings.Contains(strings.ToLower(k+v), "example") {
			t.Errorf("store entry %q = %q names an address", k, v)
		}
	}
}

// TestHostileLogsHoldNoSecrets sends hostile requests in both modes (wrong codes, forged and tampered tokens, a spent
// refresh token, forged and tampered webhooks, tampered and replayed states, codes WorkOS refuses), then looks in the
// log for every secret, and for every value the attacker sent that would be one if it were right: none may be there.
func TestHostileLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, hostileCase{})
	ts := f.ts
	cookies := f.session()
	code := f.codes[0]
	ts.clock.Advance(time.Minute)
	fresh := f.refreshed(cookies)
	ts.clock.Advance(time.Minute)
	wrong := authOtherCode(f.code("bob@example.com"))
	forgedToken := f.forge(func(c *claims) { c.Org = "org_other" })
	forgedToken = forgedToken[:len(forgedToken)-4] + "AAAA"
	forgedSig := hostileSig("whsec_guess", hostileMagicEvent, ts.clock.Now())
	for _, r := range []*http.Request{
		f.refresh(hostileCookieValue(cookies, "refresh_token")), // spent: revokes
		f.post(hostileVerify, hostileVerifyBody("bob@example.com", wrong)),
		f.me(forgedToken),
		f.me(hostileCookieValue(fresh, "access_token") + "x"),
		f.webhook(hostileMagicEvent, forgedSig),
		hostileWithCookies(f.post(hostileLogout, ""), fresh...),
	} {
		ts.handler.ServeHTTP(httptest.NewRecorder(), r)
	}

	w := newHostileFixture(t, hostileCase{workos: true})
	b, authCode, state := w.startSignin(adaGrant())
	tampered := hostileTamper(state, 25)
	refused := "code_" + randomID(12)
	signature := hostileSig(w.secret, hostileMagicEvent, w.ts.clock.Now())
	for _, r := range []*http.Request{
		hostileWithCookies(w.post(callbackPath, hostileCallbackBody(authCode, tampered)), b.cookies()...),
		hostileWithCookies(w.post(callbackPath, hostileCallbackBody(refused, state)), b.cookies()...),             // WorkOS refuses
		hostileWithCookies(w.post(callbackPath, hostileCallbackBody(authCode, state)), b.cookies()...),            // replayed
		w.webhook(hostileMagicEvent+" ", signature),                                                               // a genuine signature, another body
		w.webhook(hostileMagicEvent, forgedSig),                                                                   // another secret
		w.signedWebhook(w.magicAuth("eve@example.com\r\nBcc: x@evil.example", w.ts.clock.Now().Add(time.Minute))), // unmailable
	} {
		w.ts.handler.ServeHTTP(httptest.NewRecorder(), r)
	}
	ts.background.Wait()
	w.ts.background.Wait()

	secrets := []string{string(ts.keys[0]), hostileWebhookSecret, testWorkOSWebhookSecret, testWorkOSAPIKey,
		forgedToken, forgedSig[strings.Index(forgedSig, "v1=")+3:], signature[strings.Index(signature, "v1=")+3:],
		state, tampered, authCode, refused}
	for _, c := range append(cookies, fresh...) {
		secrets = append(secrets, c.Value)
	}
	wantLogsFree(t, ts.logEntries(), secrets, []string{code, wrong}, "")
	wantLogsFree(t, w.ts.logEntries(), secrets, []string{"424242"}, "")
	if len(entriesWithMsg(ts.logEntries(), "request refused")) < 4 || len(entriesWithMsg(w.ts.logEntries(), "request refused")) < 2 ||
		len(entriesWithMsg(w.ts.logEntries(), "sign-in")) < 3 {
		t.Fatalf("the refusals were not logged; the check above proves nothing:\n%s\n%s", ts.logs.String(), w.ts.logs.String())
	}
}

// hostileListen serves ts on a real loopback listener, with the server's real limits, until the test ends.
func hostileListen(t *testing.T, ts *testServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// hostileReadUntilClosed reads conn until the server closes it, or until bound, which only makes a broken server fail
// the test instead of hanging it. It reports whether the server closed the connection.
func hostileReadUntilClosed(conn net.Conn, bound time.Duration) (string, bool) {
	conn.SetReadDeadline(time.Now().Add(bound))
	b, err := io.ReadAll(bufio.NewReader(conn))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return string(b), false
	}
	return string(b), true
}

// hostileTrickle writes b a byte at a time, one every interval, until it is written, the connection fails or stop
// closes; with loop it starts over at the end.
func hostileTrickle(conn net.Conn, b []byte, interval time.Duration, loop bool, stop <-chan struct{}) {
	for i := 0; i < len(b) || loop; i++ {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		if _, err := conn.Write([]byte{b[i%len(b)]}); err != nil {
			return
		}
	}
}

// TestHostileSlowBodyIsCut sends a request whose body trickles in a byte at a time and never completes: the server's
// read timeout ends it, with no code stored and no mail sent.
func TestHostileSlowBodyIsCut(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the read timeout")
	}
	f := newHostileFixture(t, hostileCase{})
	conn, err := net.Dial("tcp", hostileListen(t, f.ts))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := hostileAda
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", hostileLoginCode, len(body)+100)
	stop := make(chan struct{})
	defer close(stop)
	go hostileTrickle(conn, []byte(body), 500*time.Millisecond, true, stop)
	got, closed := hostileReadUntilClosed(conn, readTimeout+20*time.Second)
	if !closed {
		t.Fatal("the server never cut a connection whose body trickled in")
	}
	if strings.HasPrefix(got, "HTTP/1.1 200") || strings.Contains(got, codeSent) {
		t.Errorf("a request whose body never completed was served: %q", got)
	}
	f.ts.background.Wait()
	if n := len(f.ts.mails.sent()); n != 0 {
		t.Errorf("%d mails sent", n)
	}
	if _, found, _ := f.ts.store.Get(context.Background(), f.ts.key("code", f.ts.addressID("ada@example.com"))); found {
		t.Error("a code was stored for a request that never completed")
	}
}

// TestHostileSlowHeaderIsCut is a slowloris: the header arrives a byte every half second, so that no single read
// waits long. The read-header timeout counts from the first byte, so the server closes the connection all the same,
// and no handler answers.
func TestHostileSlowHeaderIsCut(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the read-header timeout")
	}
	f := newHostileFixture(t, hostileCase{})
	conn, err := net.Dial("tcp", hostileListen(t, f.ts))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stop := make(chan struct{})
	defer close(stop)
	header := "GET /healthz HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Pad: slowloris\r\n", 100)
	go hostileTrickle(conn, []byte(header), 500*time.Millisecond, false, stop)
	got, closed := hostileReadUntilClosed(conn, readHeaderTimeout+20*time.Second)
	if !closed {
		t.Fatal("the server never cut a connection whose header trickled in")
	}
	// The server may say 400 as it hangs up; no handler may answer.
	if status, _, _ := strings.Cut(got, "\r\n"); got != "" && status != "HTTP/1.1 400 Bad Request" || strings.Contains(got, "application/json") {
		t.Errorf("a request whose header never completed was answered: %q", got)
	}
}

// TestHostileOversizedHeaderIsRefused sends more header bytes than maxHeaderBytes over a real connection: the server
// refuses them with 431 and never reaches a handler.
func TestHostileOversizedHeaderIsRefused(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, hostileCase{})
	conn, err := net.Dial("tcp", hostileListen(t, f.ts))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nCookie: access_token=%s\r\n\r\n", hostileMe, strings.Repeat("A", 2*maxHeaderBytes))
	got, closed := hostileReadUntilClosed(conn, readHeaderTimeout+20*time.Second)
	if !closed || !strings.HasPrefix(got, "HTTP/1.1 431 ") {
		t.Fatalf("closed %v, answer %.60q; want 431", closed, got)
	}
	if n := len(entriesWithMsg(f.ts.logEntries(), "request refused")); n != 0 {
		t.Errorf("a handler saw the request: %d refusals logged", n)
	}
}

// TestHostileRedis: whatever a broken Redis answers (redis_test.go's hostileRedisBehaviours), every endpoint that
// needs state answers 503 within the store's deadlines (never a 500, a wrong 2xx, or a 401 that would sign the person
// out), sets no cookie and sends no mail; a WorkOS callback is refused before its code is exchanged; and a webhook
// still delivers its mail (a duplicate is possible, a lost mail is not), counted as undeduped.
func TestHostileRedis(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the Redis command timeout")
	}
	bound := 4*redisCommandTimeout + 10*time.Second // a hang detector: a request makes at most a few store calls
	for _, h := range hostileRedisBehaviours() {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			peer := func() string {
				p := startFakeRedisPeer(t, h.answer)
				p.mu.Lock()
				p.greeting, p.trickle = h.greeting, h.trickle
				p.mu.Unlock()
				return p.URL()
			}
			ts := newAuthCodeServer(t, "REDIS_URL", peer())
			f := &hostileFixture{t: t, ts: ts}
			now := ts.clock.Now()
			token := func(typ string) *http.Cookie {
				tok, err := signToken(ts.keys[0], claims{Iss: ts.cfg.APIURL, Aud: "dashboard", Sub: "user_1", Email: "ada@example.com",
					Org: "org_acme", Sid: "sess_" + strings.Repeat("1", 32), Typ: typ, Jti: randomID(16), Iat: now.Unix(), Exp: now.Add(time.Hour).Unix()})
				if err != nil {
					t.Fatal(err)
				}
				return &http.Cookie{Name: typ + "_token", Value: tok}
			}
			w := &hostileFixture{t: t, fake: newFakeWorkOS(t)}
			w.fake.setMembership(testAda.ID, testOrgID, "active")
			w.ts = newWorkOSTestServer(t, w.fake, "REDIS_URL", peer())
			w.secret = testWorkOSWebhookSecret
			b := newBrowser(w.ts)
			authCode, state := w.fake.authorize(t, b.startSignin(), adaGrant()) // login_url needs no store
			for _, tc := range []struct {
				name   string
				ts     *testServer
				r      *http.Request
				status int
			}{
				{"readyz", ts, f.req("GET", "/readyz", ""), 503},
				{"login code", ts, f.post(hostileLoginCode, hostileAda), 503},
				{"verify", ts, f.post(hostileVerify, hostileVerifyBody("ada@example.com", "123456")), 503},
				{"me", ts, hostileWithCookies(f.req("GET", hostileMe, ""), token("access")), 503},
				{"refresh", ts, hostileWithCookies(f.post(hostileRefresh, ""), token("refresh")), 503},
				{"logout", ts, hostileWithCookies(f.post(hostileLogout, ""), token("access")), 503},
				{"callback", w.ts, hostileWithCookies(w.post(callbackPath, hostileCallbackBody(authCode, state)), b.cookies()...), 503},
				{"webhook", w.ts, w.signedWebhook(w.magicAuth("ada@example.com", now.Add(10*time.Minute))), 200},
			} {
				done := make(chan *httptest.ResponseRecorder, 1)
				go func() {
					rec := httptest.NewRecorder()
					tc.ts.handler.ServeHTTP(rec, tc.r)
					done <- rec
				}()
				var rec *httptest.ResponseRecorder
				select {
				case rec = <-done:
				case <-time.After(bound):
					t.Fatalf("%s: no answer within %v", tc.name, bound)
				}
				if rec.Code != tc.status {
					t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.status)
				}
				for _, c := range rec.Result().Cookies() {
					if c.Value != "" {
						t.Errorf("%s: set cookie %s", tc.name, c.Name)
					}
				}
			}
			ts.background.Wait()
			w.ts.background.Wait()
			if n := len(ts.mails.sent()); n != 0 {
				t.Errorf("%d mails sent by email+code while the store was broken", n)
			}
			if sent := w.ts.mails.sent(); len(sent) != 1 || sent[0].Code != "424242" {
				t.Errorf("the webhook mailed %v, want the one code", sent)
			}
			if n := w.ts.metric("dashauth_webhook_undeduped_total", ""); n != 1 {
				t.Errorf("undeduped deliveries counted %d, want 1", n)
			}
			if n := w.fake.calls(fakeAuthenticatePath); n != 0 {
				t.Errorf("the code was exchanged %d times while its state could not be spent", n)
			}
			if ts.metric("dashauth_store_errors_total", "") == 0 {
				t.Error("store errors were not counted")
			}
		})
	}
}
