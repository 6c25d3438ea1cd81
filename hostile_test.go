package main

// hostile_test.go is the auditor's list of hostile requests: every endpoint,
// driven through the real handler chain, each request checked for its exact
// answer and for what it must not do (set a cookie, send a mail, change the
// store). Several cases repeat checks that also live next to the code they
// test (routes_test.go, session_test.go, auth_test.go, jwt_test.go,
// webhook_test.go); here they are in one table, with the side effects
// checked too. SECURITY.md points into this table by case name.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileWebhookSecret is the webhook secret of the email+code test server:
// the signature is checked before anything else, in both modes.
const hostileWebhookSecret = "whsec_hostile_test_secret_0123456789"

// hostileClient is the address every hostile request comes from.
const hostileClient = "198.51.100.7:4711"

// hostileCase is one hostile request and what it may do.
type hostileCase struct {
	name string
	// build prepares the fresh server (signs in, asks for a code, moves the
	// clock) and returns the hostile request. Whatever build does is the
	// "before" the invariants compare against.
	build func(f *hostileFixture) *http.Request
	// status is the exact answer.
	status int
	// mayChange names the kinds of store keys (the first segment after
	// REDIS_KEY_PREFIX, such as "rl" or "codetries") the request may write
	// or delete. Empty: the store must be exactly as before.
	mayChange []string
	// clears allows Set-Cookie headers that delete cookies (logout clears
	// the session, a spent sign-in its state); no case may set a cookie.
	clears bool
	// workos runs the case on a WorkOS-mode server with a fake WorkOS API
	// (the webhook and AuthKit endpoints); otherwise email+code mode.
	workos bool
	// callsWorkOS allows calls to the fake WorkOS API; by default a
	// hostile request must not cause one.
	callsWorkOS bool
}

// hostileFixture is one fresh server and the helpers cases use.
type hostileFixture struct {
	t      *testing.T
	ts     *testServer
	fake   *fakeWorkOS // WorkOS mode only
	secret string      // the webhook secret the server checks
}

// newHostileFixture is an email+code server (with a webhook secret set,
// which email+code mode must ignore), or with workos a WorkOS-mode server
// in front of a fake WorkOS API where Ada is an active member.
func newHostileFixture(t *testing.T, workos bool) *hostileFixture {
	if workos {
		fake := newFakeWorkOS(t)
		fake.setMembership(testAda.ID, testOrgID, "active")
		return &hostileFixture{t: t, ts: newWorkOSTestServer(t, fake), fake: fake, secret: testWorkOSWebhookSecret}
	}
	ts := newTestServer(t, testEnv(
		"MEMBERS_FILE", writeMembers(t, testMembers),
		"WORKOS_WEBHOOK_SECRET", hostileWebhookSecret,
	))
	return &hostileFixture{t: t, ts: ts, secret: hostileWebhookSecret}
}

// workosCalls is how many requests the fake WorkOS API has had.
func (f *hostileFixture) workosCalls() int {
	if f.fake == nil {
		return 0
	}
	return f.fake.calls(fakeAuthenticatePath) + f.fake.calls(fakeMembershipsPath) + f.fake.calls(fakeMagicAuthPath)
}

// req builds a request from the hostile client. A body makes it
// application/json; kv are header name, value pairs, and an empty value
// deletes the header.
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
			continue
		}
		r.Header.Set(kv[i], kv[i+1])
	}
	return r
}

// post is req for a JSON POST.
func (f *hostileFixture) post(path, body string, kv ...string) *http.Request {
	return f.req("POST", path, body, kv...)
}

// withCookies adds cookies to r, as a browser sends them back.
func withCookies(r *http.Request, cookies ...*http.Cookie) *http.Request {
	for _, c := range cookies {
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	return r
}

// session signs ada in and returns her two cookies.
func (f *hostileFixture) session() []*http.Cookie {
	return named(f.ts.signIn(), "access_token", "refresh_token")
}

// cookie returns the value of the named cookie.
func cookieValue(cookies []*http.Cookie, name string) string {
	if c := cookieNamed(cookies, name); c != nil {
		return c.Value
	}
	return ""
}

// claimsOf decodes the payload of one of our tokens (already trusted: the
// server signed it).
func (f *hostileFixture) claimsOf(token string) claims {
	f.t.Helper()
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		f.t.Fatalf("decode our own token: %v", err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		f.t.Fatalf("decode our own token: %v", err)
	}
	return c
}

// forge signs a changed copy of a live session's access claims with the
// server's own key: what an attacker who had the key could do, so each
// case shows which check, not the signature, stops the token.
func (f *hostileFixture) forge(change func(*claims)) string {
	f.t.Helper()
	c := f.claimsOf(cookieValue(f.session(), "access_token"))
	change(&c)
	tok, err := signToken(f.ts.keys[0], c)
	if err != nil {
		f.t.Fatalf("forge: %v", err)
	}
	return tok
}

// me is GET /v2/user/me/ with an access cookie holding token.
func (f *hostileFixture) me(token string) *http.Request {
	return withCookies(f.req("GET", "/v2/user/me/", ""), &http.Cookie{Name: "access_token", Value: token})
}

// code asks for a code for ada and returns it.
func (f *hostileFixture) code() string {
	f.t.Helper()
	code := f.ts.requestCode("ada@example.com")
	if code == "" {
		f.t.Fatal("no code mailed to ada")
	}
	return code
}

// verifyBody is the JSON of a verify request.
func verifyBody(addr, code string) string {
	return fmt.Sprintf(`{"email":%q,"code":%q}`, addr, code)
}

// A magic_auth.created event as WorkOS sends it, and an event the service ignores.
const (
	hostileEventID     = "event_01JCDE3FGHJKMNPQRSTVWXYZ01"
	hostileMagicAuthID = "magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ02"
	hostileMagicEvent  = `{"id":"` + hostileEventID + `","event":"magic_auth.created","data":{"object":"magic_auth","id":"` + hostileMagicAuthID + `"}}`
	hostileOtherEvent  = `{"id":"event_01JCDE3FGHJKMNPQRSTVWXYZ09","event":"user.created","data":{"object":"user","id":"user_01JCDE3FGHJKMNPQRSTVWXYZ03"}}`
)

// webhookSig is a WorkOS-Signature header for body, signed at at.
func webhookSig(secret, body string, at time.Time) string {
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	return "t=" + ts + ", v1=" + signForTest([]byte(secret), ts, []byte(body))
}

// webhook is a POST to the webhook with the given signature header.
func (f *hostileFixture) webhook(body, signature string) *http.Request {
	return f.post("/v1/workos_webhook/", body, "WorkOS-Signature", signature)
}

// signedWebhook is a genuine, current delivery of body.
func (f *hostileFixture) signedWebhook(body string) *http.Request {
	return f.webhook(body, webhookSig(f.secret, body, f.ts.clock.Now()))
}

// sigParts returns the timestamp and hex signature of a genuine header for body.
func (f *hostileFixture) sigParts(body string) (ts, sig string) {
	ts = strconv.FormatInt(f.ts.clock.Now().UnixMilli(), 10)
	return ts, signForTest([]byte(f.secret), ts, []byte(body))
}

// malformedSig builds a webhook request whose header is form(ts, sig) for a
// genuine ts and sig: only the form is wrong.
func malformedSig(form func(ts, sig string) string) func(f *hostileFixture) *http.Request {
	return func(f *hostileFixture) *http.Request {
		ts, sig := f.sigParts(hostileMagicEvent)
		return f.webhook(hostileMagicEvent, form(ts, sig))
	}
}

// hostileRequestCases is the table. Each case starts from a fresh server.
func hostileRequestCases() []hostileCase {
	const (
		loginCode = "/v2/user/login_code/"
		verify    = "/v2/user/login_code/verify/"
		me        = "/v2/user/me/"
		refresh   = "/v2/user/token_refresh/"
		logout    = "/v2/user/logout/"
		hook      = "/v1/workos_webhook/"
		ada       = `{"email":"ada@example.com"}`
		evil      = "https://evil.example"
	)
	body := func(path, b string, kv ...string) func(f *hostileFixture) *http.Request {
		return func(f *hostileFixture) *http.Request { return f.post(path, b, kv...) }
	}
	get := func(method, path string) func(f *hostileFixture) *http.Request {
		return func(f *hostileFixture) *http.Request { return f.req(method, path, "") }
	}
	bigEmail := strings.Repeat("a", 15<<10) + "@example.com"

	return []hostileCase{
		// Routing: only the contract's exact paths and methods reach a handler.
		{name: "unknown path", build: get("GET", "/admin/"), status: 404},
		{name: "API path without its trailing slash", build: get("GET", "/v2/user/me"), status: 404},
		{name: "dot-dot path onto a route", build: get("GET", "/a/../v2/user/me/"), status: 404},
		{name: "double slash onto a route", build: get("GET", "/v2/user//me/"), status: 404},
		{name: "subpath of login_code sends no code", build: body(loginCode+"x", ada), status: 404},
		{name: "subpath of verify starts no session", build: func(f *hostileFixture) *http.Request {
			return f.post(verify+"x", verifyBody("ada@example.com", f.code()))
		}, status: 404},
		{name: "subpath of logout revokes nothing", build: func(f *hostileFixture) *http.Request {
			return withCookies(f.post(logout+"x", ""), f.session()...)
		}, status: 404},
		{name: "subpath of token_refresh spends nothing", build: func(f *hostileFixture) *http.Request {
			return withCookies(f.post(refresh+"x", ""), f.session()...)
		}, status: 404},
		{name: "subpath of the webhook", build: func(f *hostileFixture) *http.Request {
			r := f.signedWebhook(hostileOtherEvent)
			r.URL.Path += "x"
			return r
		}, status: 404, workos: true},
		{name: "GET on a POST endpoint", build: get("GET", loginCode), status: 405},
		{name: "PUT on me", build: get("PUT", me), status: 405},
		{name: "TRACE on me", build: get("TRACE", me), status: 405},
		{name: "static path traversal", build: get("GET", "/static/../main.go"), status: 404},
		{name: "static encoded traversal", build: get("GET", "/static/..%2fmain.go"), status: 404},
		{name: "static file that is not an asset", build: get("GET", "/static/index.html"), status: 404},

		// Content types and sizes.
		{name: "form post", build: body(loginCode, "email=ada@example.com", "Content-Type", "application/x-www-form-urlencoded"), status: 415},
		{name: "text/plain post (no preflight)", build: body(loginCode, ada, "Content-Type", "text/plain"), status: 415},
		{name: "multipart post", build: body(loginCode, ada, "Content-Type", "multipart/form-data; boundary=x"), status: 415},
		{name: "post without content type", build: body(loginCode, ada, "Content-Type", ""), status: 415},
		{name: "json-like content type", build: body(loginCode, ada, "Content-Type", "application/jsonp"), status: 415},
		{name: "malformed content type", build: body(loginCode, ada, "Content-Type", "application/json; charset"), status: 415},
		{name: "oversized body, declared", build: body(loginCode, `{"email":"`+strings.Repeat("a", maxAPIBody)+`"}`), status: 413},
		{name: "oversized body, chunked", build: func(f *hostileFixture) *http.Request {
			r := f.post(loginCode, `{"email":"`+strings.Repeat("a", maxAPIBody)+`"}`)
			r.ContentLength = -1 // length unknown: the limit applies while reading
			return r
		}, status: 413},
		{name: "oversized webhook body", build: func(f *hostileFixture) *http.Request {
			b := `{"pad":"` + strings.Repeat("a", maxWebhookBody) + `"}`
			return f.webhook(b, webhookSig(f.secret, b, f.ts.clock.Now()))
		}, status: 413, workos: true},
		{name: "empty body", build: func(f *hostileFixture) *http.Request {
			return f.req("POST", loginCode, "", "Content-Type", "application/json")
		}, status: 400},
		{name: "64 KiB cookie", build: func(f *hostileFixture) *http.Request {
			return f.me(strings.Repeat("A", 64<<10))
		}, status: 401},
		{name: "64 KiB signature header", build: func(f *hostileFixture) *http.Request {
			ts, sig := f.sigParts(hostileMagicEvent)
			return f.webhook(hostileMagicEvent, "t="+ts+strings.Repeat(", v1="+sig, 1000))
		}, status: 401, workos: true},

		// JSON request bodies.
		{name: "duplicate key", build: body(loginCode, `{"email":"eve@evil.example","email":"ada@example.com"}`), status: 400},
		{name: "duplicate key spelled with an escape", build: body(loginCode, `{"email":"eve@evil.example","\u0065mail":"ada@example.com"}`), status: 400},
		{name: "key in another case", build: body(loginCode, `{"Email":"ada@example.com"}`), status: 400},
		{name: "unknown field", build: body(loginCode, `{"email":"ada@example.com","admin":true}`), status: 400},
		{name: "deeply nested objects", build: body(loginCode, strings.Repeat(`{"email":`, 1500)), status: 400},
		{name: "deeply nested arrays", build: body(loginCode, `{"email":`+strings.Repeat("[", 5000)), status: 400},
		{name: "huge string", build: body(loginCode, `{"email":"`+bigEmail+`"}`), status: 400},
		{name: "NUL in email, escaped", build: body(loginCode, `{"email":"ada\u0000@example.com"}`), status: 400},
		{name: "NUL byte in body", build: body(loginCode, "{\"email\":\"ada\x00@example.com\"}"), status: 400},
		{name: "CR LF Bcc in email", build: body(loginCode, `{"email":"ada@example.com\r\nBcc: eve@evil.example"}`), status: 400},
		{name: "trailing LF in email", build: body(loginCode, `{"email":"ada@example.com\n"}`), status: 400},
		{name: "display name", build: body(loginCode, `{"email":"Ada <ada@example.com>"}`), status: 400},
		{name: "two addresses", build: body(loginCode, `{"email":"ada@example.com,eve@evil.example"}`), status: 400},
		{name: "homograph address", build: body(loginCode, `{"email":"adа@example.com"}`), status: 400},
		{name: "invalid UTF-8", build: body(loginCode, "{\"email\":\"ada\xff@example.com\"}"), status: 400},
		{name: "lone surrogate", build: body(loginCode, `{"email":"ada\ud800@example.com"}`), status: 400},
		{name: "operator object for email", build: body(loginCode, `{"email":{"$ne":null}}`), status: 400},
		{name: "array body", build: body(loginCode, `[{"email":"ada@example.com"}]`), status: 400},
		{name: "trailing JSON", build: body(loginCode, ada+`{"email":"eve@evil.example"}`), status: 400},
		{name: "code as a number", build: body(verify, `{"email":"ada@example.com","code":123456}`), status: 400},
		{name: "code missing", build: body(verify, ada), status: 400},

		// Cross-site requests (login CSRF and friends).
		{name: "cross-site Origin", build: body(loginCode, ada, "Origin", evil), status: 403},
		{name: "Origin null", build: body(loginCode, ada, "Origin", "null"), status: 403},
		{name: "Origin with the dashboard as a prefix", build: body(loginCode, ada, "Origin", "http://localhost:8080.evil.example"), status: 403},
		{name: "Origin on another port", build: body(loginCode, ada, "Origin", "http://localhost:8081"), status: 403},
		{name: "Origin with another scheme", build: body(loginCode, ada, "Origin", "https://localhost:8080"), status: 403},
		{name: "cross-site verify spends no code", build: func(f *hostileFixture) *http.Request {
			return f.post(verify, verifyBody("ada@example.com", f.code()), "Origin", evil)
		}, status: 403},
		{name: "cross-site logout revokes nothing", build: func(f *hostileFixture) *http.Request {
			return withCookies(f.post(logout, "", "Origin", evil), f.session()...)
		}, status: 403},
		{name: "cross-site refresh spends nothing", build: func(f *hostileFixture) *http.Request {
			return withCookies(f.post(refresh, "", "Origin", evil), f.session()...)
		}, status: 403},
		{name: "cross-site preflight", build: func(f *hostileFixture) *http.Request {
			return f.req("OPTIONS", loginCode, "", "Origin", evil, "Access-Control-Request-Method", "POST")
		}, status: 403},

		// Session tokens.
		{name: "no cookie", build: get("GET", me), status: 401},
		{name: "tampered signature", build: func(f *hostileFixture) *http.Request {
			tok := cookieValue(f.session(), "access_token")
			return f.me(tok[:len(tok)-3] + flipChar(tok[len(tok)-3]) + tok[len(tok)-2:])
		}, status: 401},
		{name: "tampered payload", build: func(f *hostileFixture) *http.Request {
			tok := cookieValue(f.session(), "access_token")
			parts := strings.Split(tok, ".")
			c := f.claimsOf(tok)
			c.Org = "org_other"
			payload, _ := json.Marshal(c)
			return f.me(parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2])
		}, status: 401},
		{name: "truncated token", build: func(f *hostileFixture) *http.Request {
			tok := cookieValue(f.session(), "access_token")
			return f.me(tok[:len(tok)-10])
		}, status: 401},
		{name: "token without signature", build: func(f *hostileFixture) *http.Request {
			tok := cookieValue(f.session(), "access_token")
			return f.me(tok[:strings.LastIndexByte(tok, '.')+1])
		}, status: 401},
		{name: "alg none", build: func(f *hostileFixture) *http.Request {
			parts := strings.Split(cookieValue(f.session(), "access_token"), ".")
			none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
			return f.me(none + "." + parts[1] + ".")
		}, status: 401},
		{name: "alg switched to HS512 with a valid MAC", build: func(f *hostileFixture) *http.Request {
			parts := strings.Split(cookieValue(f.session(), "access_token"), ".")
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			return f.me(signRaw(f.ts.keys[0], `{"alg":"HS512","typ":"JWT"}`, string(payload)))
		}, status: 401},
		{name: "refresh token as access token", build: func(f *hostileFixture) *http.Request {
			return f.me(cookieValue(f.session(), "refresh_token"))
		}, status: 401},
		{name: "access token as refresh token", build: func(f *hostileFixture) *http.Request {
			return withCookies(f.post(refresh, ""), &http.Cookie{Name: "refresh_token", Value: cookieValue(f.session(), "access_token")})
		}, status: 401},
		{name: "expired access token", build: func(f *hostileFixture) *http.Request {
			tok := cookieValue(f.session(), "access_token")
			f.ts.clock.Advance(f.ts.cfg.AccessTTL + tokenLeewaySeconds*time.Second)
			return f.me(tok)
		}, status: 401},
		{name: "token issued in the future", build: func(f *hostileFixture) *http.Request {
			return f.me(f.forge(func(c *claims) { c.Iat += 2 * tokenLeewaySeconds; c.Exp += 2 * tokenLeewaySeconds }))
		}, status: 401},
		{name: "token of another key", build: func(f *hostileFixture) *http.Request {
			c := f.claimsOf(cookieValue(f.session(), "access_token"))
			tok, _ := signToken([]byte(testOtherKey), c)
			return f.me(tok)
		}, status: 401},
		{name: "token of another issuer", build: func(f *hostileFixture) *http.Request {
			return f.me(f.forge(func(c *claims) { c.Iss = "https://evil.example" }))
		}, status: 401},
		{name: "token of another audience", build: func(f *hostileFixture) *http.Request {
			return f.me(f.forge(func(c *claims) { c.Aud = "admin" }))
		}, status: 401},
		{name: "token for a session that does not exist", build: func(f *hostileFixture) *http.Request {
			return f.me(f.forge(func(c *claims) { c.Sid = "sess_" + strings.Repeat("0", 32) }))
		}, status: 401},
		{name: "token of a logged-out session", build: func(f *hostileFixture) *http.Request {
			cookies := f.session()
			wantStatus(f.t, f.ts.post(logout, "", cookies...), http.StatusOK)
			return f.me(cookieValue(cookies, "access_token"))
		}, status: 401},
		{name: "cookie under a prefixed name", build: func(f *hostileFixture) *http.Request {
			return withCookies(f.req("GET", me, ""), &http.Cookie{Name: "__Host-access_token", Value: cookieValue(f.session(), "access_token")})
		}, status: 401},
		{name: "tampered refresh token", build: func(f *hostileFixture) *http.Request {
			tok := cookieValue(f.session(), "refresh_token")
			return withCookies(f.post(refresh, ""), &http.Cookie{Name: "refresh_token", Value: tok[:len(tok)-3] + flipChar(tok[len(tok)-3]) + tok[len(tok)-2:]})
		}, status: 401},
		{name: "spent refresh token within the reuse interval", build: func(f *hostileFixture) *http.Request {
			cookies := f.session()
			wantStatus(f.t, f.ts.post(refresh, "", named(cookies, "refresh_token")...), http.StatusOK)
			return withCookies(f.post(refresh, ""), named(cookies, "refresh_token")...)
		}, status: 401},
		{name: "spent refresh token replayed later revokes the session", build: func(f *hostileFixture) *http.Request {
			cookies := f.session()
			wantStatus(f.t, f.ts.post(refresh, "", named(cookies, "refresh_token")...), http.StatusOK)
			f.ts.clock.Advance(f.ts.cfg.RefreshReuse + time.Second)
			return withCookies(f.post(refresh, ""), named(cookies, "refresh_token")...)
		}, status: 401, mayChange: []string{"session", "revoked"}},
		{name: "logout with a forged token", build: func(f *hostileFixture) *http.Request {
			c := f.claimsOf(cookieValue(f.session(), "access_token"))
			tok, _ := signToken([]byte(testOtherKey), c)
			return withCookies(f.post(logout, ""), &http.Cookie{Name: "access_token", Value: tok})
		}, status: 200, clears: true},

		// Login codes: guessing and flooding.
		{name: "sixth guess is refused even when right", build: func(f *hostileFixture) *http.Request {
			code := f.code()
			for range codeMaxTries {
				wantSignin(f.t, f.ts.verify("ada@example.com", otherCode(code)), http.StatusBadRequest, linkInvalid)
			}
			return f.post(verify, verifyBody("ada@example.com", code))
		}, status: 400, mayChange: []string{"codetries"}},
		{name: "fifth wrong guess burns the code", build: func(f *hostileFixture) *http.Request {
			code := f.code()
			for range codeMaxTries - 1 {
				wantSignin(f.t, f.ts.verify("ada@example.com", otherCode(code)), http.StatusBadRequest, linkInvalid)
			}
			return f.post(verify, verifyBody("ada@example.com", otherCode(code)))
		}, status: 400, mayChange: []string{"code", "codetries"}},
		{name: "malformed code counts as a guess", build: func(f *hostileFixture) *http.Request {
			return f.post(verify, verifyBody("ada@example.com", f.code()+"\n"))
		}, status: 400, mayChange: []string{"codetries"}},
		{name: "used code", build: func(f *hostileFixture) *http.Request {
			code := f.code()
			wantSignin(f.t, f.ts.verify("ada@example.com", code), http.StatusOK, loginSuccessful)
			return f.post(verify, verifyBody("ada@example.com", code))
		}, status: 400},
		{name: "code of another address", build: func(f *hostileFixture) *http.Request {
			return f.post(verify, verifyBody("bob@example.com", f.code()))
		}, status: 400},
		{name: "expired code", build: func(f *hostileFixture) *http.Request {
			code := f.code()
			f.ts.clock.Advance(codeTTL)
			return f.post(verify, verifyBody("ada@example.com", code))
		}, status: 400},
		{name: "guess with no code pending", build: body(verify, verifyBody("ada@example.com", "123456")), status: 400},
		{name: "second code within a minute", build: func(f *hostileFixture) *http.Request {
			f.code()
			return f.post(loginCode, ada)
		}, status: 429, mayChange: []string{"rl"}},
		{name: "sixth code within 15 minutes", build: func(f *hostileFixture) *http.Request {
			for range perAddressMax {
				f.code()
				f.ts.clock.Advance(perAddressGap)
			}
			return f.post(loginCode, ada)
		}, status: 429, mayChange: []string{"rl"}},
		{name: "31st request from one client", build: func(f *hostileFixture) *http.Request {
			for i := range perClientMax {
				r := httptest.NewRecorder()
				f.ts.handler.ServeHTTP(r, f.post(loginCode, fmt.Sprintf(`{"email":"user%d@example.com"}`, i)))
				wantStatus(f.t, response{ResponseRecorder: r}, http.StatusOK)
			}
			return f.post(loginCode, ada)
		}, status: 429, mayChange: []string{"rl"}},
		{name: "31st request from one IPv6 subnet, each from a new address", build: func(f *hostileFixture) *http.Request {
			for i := range perClientMax {
				r := f.post(loginCode, fmt.Sprintf(`{"email":"user%d@example.com"}`, i))
				r.RemoteAddr = fmt.Sprintf("[2001:db8:1:2:%x::1]:4711", i+1)
				rec := httptest.NewRecorder()
				f.ts.handler.ServeHTTP(rec, r)
				wantStatus(f.t, response{ResponseRecorder: rec}, http.StatusOK)
			}
			r := f.post(loginCode, ada)
			r.RemoteAddr = "[2001:db8:1:2:ffff:ffff:ffff:ffff]:4711"
			return r
		}, status: 429, mayChange: []string{"rl"}},
		{name: "X-Forwarded-For from an untrusted peer", build: func(f *hostileFixture) *http.Request {
			for i := range perClientMax {
				r := httptest.NewRecorder()
				f.ts.handler.ServeHTTP(r, f.post(loginCode, fmt.Sprintf(`{"email":"user%d@example.com"}`, i)))
				wantStatus(f.t, response{ResponseRecorder: r}, http.StatusOK)
			}
			return f.post(loginCode, ada, "X-Forwarded-For", "203.0.113.99")
		}, status: 429, mayChange: []string{"rl"}},

		// Mode gating: each flow's endpoints exist only in its mode.
		{name: "WorkOS login URL in email+code mode", build: body(loginURLPath, `{"redirect_url":"`+testRedirectURL+`"}`), status: 404},
		{name: "WorkOS callback in email+code mode", build: body(callbackPath, `{"code":"c","state":"s"}`), status: 404},
		{name: "email code in WorkOS mode", build: body(loginCode, ada), status: 404, workos: true},
		{name: "code verify in WorkOS mode", build: body(verify, verifyBody("ada@example.com", "123456")), status: 404, workos: true},

		// AuthKit: open redirects, forged or replayed state, pending choices.
		{name: "redirect to another site", build: loginURL("https://evil.example/en/callback"), status: 400, workos: true},
		{name: "redirect scheme-relative", build: loginURL("//evil.example/en/callback"), status: 400, workos: true},
		{name: "redirect with the dashboard as user info", build: loginURL("http://localhost:8080@evil.example/en/callback"), status: 400, workos: true},
		{name: "redirect with a backslash", build: loginURL(`http://localhost:8080\@evil.example/en/callback`), status: 400, workos: true},
		{name: "redirect to a lookalike host", build: loginURL("http://localhost:8080.evil.example/en/callback"), status: 400, workos: true},
		{name: "redirect to another path", build: loginURL("http://localhost:8080/en/callback/../../admin"), status: 400, workos: true},
		{name: "redirect with a query", build: loginURL("http://localhost:8080/en/callback?next=https://evil.example"), status: 400, workos: true},
		{name: "redirect with a fragment", build: loginURL("http://localhost:8080/en/callback#https://evil.example"), status: 400, workos: true},
		{name: "redirect percent-encoded", build: loginURL("http://localhost:8080/en%2Fcallback"), status: 400, workos: true},
		{name: "redirect to javascript", build: loginURL("javascript:alert(document.cookie)//localhost:8080/en/callback"), status: 400, workos: true},
		{name: "redirect with a trailing slash", build: loginURL(testRedirectURL + "/"), status: 400, workos: true},
		{name: "redirect over https", build: loginURL("https://localhost:8080/en/callback"), status: 400, workos: true},
		{name: "redirect with a NUL", build: loginURL(testRedirectURL + "%00"), status: 400, workos: true},
		{name: "cross-site login URL", build: body(loginURLPath, `{"redirect_url":"`+testRedirectURL+`"}`, "Origin", evil), status: 403, workos: true},
		{name: "callback without a state cookie", build: func(f *hostileFixture) *http.Request {
			code, state := f.fake.authorize(f.t, newBrowser(f.ts).startSignin(), adaGrant())
			return f.post(callbackPath, callbackBody(code, state))
		}, status: 400, workos: true},
		{name: "callback with another sign-in's state", build: func(f *hostileFixture) *http.Request {
			b := newBrowser(f.ts)
			code, _ := f.fake.authorize(f.t, b.startSignin(), adaGrant())
			_, theirs := f.fake.authorize(f.t, newBrowser(f.ts).startSignin(), adaGrant())
			return withCookies(f.post(callbackPath, callbackBody(code, theirs)), b.cookies()...)
		}, status: 400, workos: true},
		{name: "callback with a tampered state cookie", build: func(f *hostileFixture) *http.Request {
			b := newBrowser(f.ts)
			code, state := f.fake.authorize(f.t, b.startSignin(), adaGrant())
			name := b.stateCookieNames()[0]
			v := b.jar[name]
			return withCookies(f.post(callbackPath, callbackBody(code, state)), &http.Cookie{Name: name, Value: v[:20] + flipChar(v[20]) + v[21:]})
		}, status: 400, workos: true},
		{name: "callback replaying a spent state", build: func(f *hostileFixture) *http.Request {
			b := newBrowser(f.ts)
			code, state := f.fake.authorize(f.t, b.startSignin(), adaGrant())
			saved := b.cookies()
			wantStatus(f.t, b.callback(code, state), http.StatusOK)
			return withCookies(f.post(callbackPath, callbackBody(code, state)), saved...)
		}, status: 400, clears: true, workos: true},
		{name: "callback after the sign-in expired", build: func(f *hostileFixture) *http.Request {
			b := newBrowser(f.ts)
			code, state := f.fake.authorize(f.t, b.startSignin(), adaGrant())
			f.ts.clock.Advance(signinAttemptTTL)
			return withCookies(f.post(callbackPath, callbackBody(code, state)), b.cookies()...)
		}, status: 400, clears: true, workos: true},
		{name: "callback with a code WorkOS refuses", build: func(f *hostileFixture) *http.Request {
			b := newBrowser(f.ts)
			_, state := f.fake.authorize(f.t, b.startSignin(), adaGrant())
			return withCookies(f.post(callbackPath, callbackBody("code_forged", state)), b.cookies()...)
		}, status: 400, clears: true, workos: true, callsWorkOS: true, mayChange: []string{"wstate"}},
		{name: "callback with a huge code", build: func(f *hostileFixture) *http.Request {
			b := newBrowser(f.ts)
			_, state := f.fake.authorize(f.t, b.startSignin(), adaGrant())
			return withCookies(f.post(callbackPath, callbackBody(strings.Repeat("c", 8<<10), state)), b.cookies()...)
		}, status: 400, clears: true, workos: true, mayChange: []string{"wstate"}},
		{name: "cross-site callback", build: func(f *hostileFixture) *http.Request {
			b := newBrowser(f.ts)
			code, state := f.fake.authorize(f.t, b.startSignin(), adaGrant())
			return withCookies(f.post(callbackPath, callbackBody(code, state), "Origin", evil), b.cookies()...)
		}, status: 403, workos: true},
		{name: "organization choice without a pending sign-in", build: body(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), status: 400, workos: true},
		{name: "organization that was not offered", build: func(f *hostileFixture) *http.Request {
			b := f.pendingChoice()
			return withCookies(f.post(selectOrgPath, `{"organization_id":"org_01HEVIL00000000000000000000"}`), b.cookies()...)
		}, status: 400, workos: true},
		{name: "state cookie presented as the pending choice", build: func(f *hostileFixture) *http.Request {
			b := newBrowser(f.ts)
			b.startSignin()
			v := b.jar[b.stateCookieNames()[0]]
			return withCookies(f.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), &http.Cookie{Name: pendingCookieBase, Value: v})
		}, status: 400, workos: true},
		{name: "pending choice replayed", build: func(f *hostileFixture) *http.Request {
			b := f.pendingChoice()
			saved := b.cookies()
			wantStatus(f.t, b.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), http.StatusOK)
			return withCookies(f.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), saved...)
		}, status: 400, clears: true, workos: true},

		// Webhook: forged, replayed, stale and future deliveries.
		{name: "webhook without signature", build: func(f *hostileFixture) *http.Request {
			return f.post(hook, hostileMagicEvent)
		}, status: 401, workos: true},
		{name: "webhook signed with another secret", build: func(f *hostileFixture) *http.Request {
			return f.webhook(hostileMagicEvent, webhookSig("whsec_guess", hostileMagicEvent, f.ts.clock.Now()))
		}, status: 401, workos: true},
		{name: "webhook signature of another body", build: func(f *hostileFixture) *http.Request {
			return f.webhook(hostileMagicEvent, webhookSig(f.secret, hostileOtherEvent, f.ts.clock.Now()))
		}, status: 401, workos: true},
		{name: "webhook stale by 3 minutes and 1 ms", build: func(f *hostileFixture) *http.Request {
			return f.webhook(hostileMagicEvent, webhookSig(f.secret, hostileMagicEvent, f.ts.clock.Now().Add(-webhookTolerance-time.Millisecond)))
		}, status: 401, workos: true},
		{name: "webhook from 3 minutes and 1 ms in the future", build: func(f *hostileFixture) *http.Request {
			return f.webhook(hostileMagicEvent, webhookSig(f.secret, hostileMagicEvent, f.ts.clock.Now().Add(webhookTolerance+time.Millisecond)))
		}, status: 401, workos: true},
		{name: "webhook replayed an hour later", build: func(f *hostileFixture) *http.Request {
			sig := webhookSig(f.secret, hostileMagicEvent, f.ts.clock.Now())
			f.ts.clock.Advance(time.Hour)
			return f.webhook(hostileMagicEvent, sig)
		}, status: 401, workos: true},
		{name: "webhook timestamp in seconds", build: func(f *hostileFixture) *http.Request {
			ts := strconv.FormatInt(f.ts.clock.Now().Unix(), 10)
			return f.webhook(hostileMagicEvent, "t="+ts+", v1="+signForTest([]byte(f.secret), ts, []byte(hostileMagicEvent)))
		}, status: 401, workos: true},
		{name: "signature header: empty", build: malformedSig(func(ts, sig string) string { return " " }), status: 401, workos: true},
		{name: "signature header: v1 before t", build: malformedSig(func(ts, sig string) string { return "v1=" + sig + ", t=" + ts }), status: 401, workos: true},
		{name: "signature header: t only", build: malformedSig(func(ts, sig string) string { return "t=" + ts }), status: 401, workos: true},
		{name: "signature header: v1 only", build: malformedSig(func(ts, sig string) string { return "v1=" + sig }), status: 401, workos: true},
		{name: "signature header: empty t", build: malformedSig(func(ts, sig string) string { return "t=, v1=" + sig }), status: 401, workos: true},
		{name: "signature header: t with a sign", build: malformedSig(func(ts, sig string) string { return "t=+" + ts + ", v1=" + sig }), status: 401, workos: true},
		{name: "signature header: negative t", build: malformedSig(func(ts, sig string) string { return "t=-" + ts + ", v1=" + sig }), status: 401, workos: true},
		{name: "signature header: t beyond int64", build: malformedSig(func(ts, sig string) string { return "t=99999999999999999999, v1=" + sig }), status: 401, workos: true},
		{name: "signature header: t in full-width digits", build: malformedSig(func(ts, sig string) string { return "t=１７００, v1=" + sig }), status: 401, workos: true},
		{name: "signature header: quoted t", build: malformedSig(func(ts, sig string) string { return `t="` + ts + `", v1=` + sig }), status: 401, workos: true},
		{name: "signature header: upper-case T", build: malformedSig(func(ts, sig string) string { return "T=" + ts + ", v1=" + sig }), status: 401, workos: true},
		{name: "signature header: spaces around =", build: malformedSig(func(ts, sig string) string { return "t = " + ts + ", v1 = " + sig }), status: 401, workos: true},
		{name: "signature header: upper-case hex", build: malformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=" + strings.ToUpper(sig) }), status: 401, workos: true},
		{name: "signature header: 63 hex digits", build: malformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=" + sig[:63] }), status: 401, workos: true},
		{name: "signature header: 65 hex digits", build: malformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=" + sig + "0" }), status: 401, workos: true},
		{name: "signature header: v0 scheme", build: malformedSig(func(ts, sig string) string { return "t=" + ts + ", v0=" + sig }), status: 401, workos: true},
		{name: "signature header: two spaces after a comma", build: malformedSig(func(ts, sig string) string { return "t=" + ts + ",  v1=" + sig }), status: 401, workos: true},
		{name: "signature header: tab after a comma", build: malformedSig(func(ts, sig string) string { return "t=" + ts + ",\tv1=" + sig }), status: 401, workos: true},
		{name: "signature header: semicolons", build: malformedSig(func(ts, sig string) string { return "t=" + ts + "; v1=" + sig }), status: 401, workos: true},
		{name: "signature header: trailing comma", build: malformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=" + sig + "," }), status: 401, workos: true},
		{name: "signature header: two t", build: malformedSig(func(ts, sig string) string { return "t=" + ts + ", t=" + ts + ", v1=" + sig }), status: 401, workos: true},
		{name: "signature header: genuine v1 ninth", build: malformedSig(func(ts, sig string) string {
			return "t=" + ts + strings.Repeat(", v1="+strings.Repeat("0", 64), maxWebhookSignatures) + ", v1=" + sig
		}), status: 401, workos: true},
		{name: "signature header: hex with 0x", build: malformedSig(func(ts, sig string) string { return "t=" + ts + ", v1=0x" + sig[2:] }), status: 401, workos: true},
		{name: "webhook with a form content type", build: func(f *hostileFixture) *http.Request {
			r := f.signedWebhook(hostileMagicEvent)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, status: 415, workos: true},
		{name: "webhook from a browser origin, forged", build: func(f *hostileFixture) *http.Request {
			r := f.webhook(hostileMagicEvent, webhookSig("whsec_guess", hostileMagicEvent, f.ts.clock.Now()))
			r.Header.Set("Origin", evil)
			return r
		}, status: 401, workos: true},
		{name: "signed webhook that is not JSON", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(`{"id":`)
		}, status: 400, workos: true},
		{name: "signed webhook with a path in the event id", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(strings.Replace(hostileMagicEvent, hostileEventID, "event_../../../x", 1))
		}, status: 400, workos: true},
		{name: "signed webhook with a path in the magic auth id", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(strings.Replace(hostileMagicEvent, hostileMagicAuthID, "magic_auth_../../users/user_1", 1))
		}, status: 400, workos: true},
		{name: "signed webhook of an ignored event", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(hostileOtherEvent)
		}, status: 200, workos: true},
		{name: "webhook replayed within the window after delivery", build: func(f *hostileFixture) *http.Request {
			body := f.magicAuthEvent(f.ts.clock.Now().Add(10 * time.Minute))
			wantStatus(f.t, f.ts.webhook(body), http.StatusOK)
			f.ts.clock.Advance(time.Minute)
			return f.signedWebhook(body)
		}, status: 200, workos: true},
		{name: "webhook retried while a delivery is in progress", build: func(f *hostileFixture) *http.Request {
			body := f.magicAuthEvent(f.ts.clock.Now().Add(10 * time.Minute))
			if _, err := f.ts.store.SetNX(context.Background(), f.ts.key("webhook", hostileEventID), claimProcessing, webhookLease); err != nil {
				f.t.Fatal(err)
			}
			return f.signedWebhook(body)
		}, status: 409, workos: true},
		{name: "webhook for a magic auth WorkOS does not know", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(hostileMagicEvent)
		}, status: 503, workos: true, callsWorkOS: true},
		{name: "webhook for an expired magic auth", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(f.magicAuthEvent(f.ts.clock.Now().Add(-time.Second)))
		}, status: 200, workos: true, callsWorkOS: true, mayChange: []string{"webhook"}},
		{name: "unsigned webhook in email+code mode", build: func(f *hostileFixture) *http.Request {
			return f.post(hook, hostileMagicEvent)
		}, status: 404},
		{name: "signed magic_auth.created in email+code mode", build: func(f *hostileFixture) *http.Request {
			return f.signedWebhook(hostileMagicEvent)
		}, status: 404},
	}
}

// loginURL asks for an AuthKit URL that returns to redirect.
func loginURL(redirect string) func(f *hostileFixture) *http.Request {
	return func(f *hostileFixture) *http.Request {
		b, _ := json.Marshal(map[string]string{"redirect_url": redirect})
		return f.post(loginURLPath, string(b))
	}
}

// callbackBody is the JSON of a callback request.
func callbackBody(code, state string) string {
	return fmt.Sprintf(`{"code":%q,"state":%q}`, code, state)
}

// pendingChoice runs a sign-in to the point where Ada must pick one of two
// organizations, and returns her browser holding the pending cookie.
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

// magicAuthEvent registers hostileMagicAuthID for Ada with the fake WorkOS,
// expiring at expires, and returns the event that announces it.
func (f *hostileFixture) magicAuthEvent(expires time.Time) string {
	f.fake.addMagicAuth(hostileMagicAuthID, "ada@example.com", "424242", expires)
	return hostileMagicEvent
}

// flipChar returns another base64url character than b.
func flipChar(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

// storeSnapshot returns the live entries of a memory store, key → value and
// expiry, read under its lock.
func storeSnapshot(t *testing.T, s store, now time.Time) map[string]string {
	t.Helper()
	ms, ok := s.(*memoryStore)
	if !ok {
		t.Fatalf("store is %T, want *memoryStore", s)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	out := make(map[string]string, len(ms.entries))
	for k, e := range ms.entries {
		if now.Before(e.expires) {
			out[k] = e.value + " until " + e.expires.Format(time.RFC3339Nano)
		}
	}
	return out
}

// storeChanges lists the keys that differ between two snapshots, sorted.
func storeChanges(before, after map[string]string) []string {
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
	sort.Strings(keys)
	return keys
}

// keyKind is the first segment of a key after the prefix: "rl", "code", ...
func keyKind(prefix, key string) string {
	kind, _, _ := strings.Cut(strings.TrimPrefix(key, prefix), ":")
	return kind
}

// runHostileCase sends one case's request and checks every invariant.
func runHostileCase(t *testing.T, f *hostileFixture, tc hostileCase) {
	t.Helper()
	ts := f.ts
	r := tc.build(f)
	ts.background.Wait()
	mailsBefore := len(ts.mails.sent())
	callsBefore := f.workosCalls()
	storeBefore := storeSnapshot(t, ts.store, ts.clock.Now())

	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, r)
	ts.background.Wait()

	if rec.Code != tc.status {
		t.Errorf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var answer map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Errorf("body is not a JSON object: %q", rec.Body)
	}
	if rec.Code >= 400 && answer["error"] == nil && answer["response_type"] == nil {
		t.Errorf("error answer without error or response_type: %s", rec.Body)
	}
	for _, secret := range []string{string(ts.keys[0]), f.secret} {
		if strings.Contains(rec.Body.String(), secret) || strings.Contains(fmt.Sprint(rec.Header()), secret) {
			t.Errorf("the answer reveals a secret")
		}
	}
	for _, c := range rec.Result().Cookies() {
		if !tc.clears || c.Value != "" || c.MaxAge >= 0 {
			t.Errorf("Set-Cookie %s", c)
		}
	}
	if n := len(ts.mails.sent()) - mailsBefore; n != 0 {
		t.Errorf("%d mails sent", n)
	}
	if n := f.workosCalls() - callsBefore; n != 0 && !tc.callsWorkOS {
		t.Errorf("%d calls to WorkOS", n)
	}
	for _, k := range storeChanges(storeBefore, storeSnapshot(t, ts.store, ts.clock.Now())) {
		if !slices.Contains(tc.mayChange, keyKind(ts.cfg.KeyPrefix, k)) {
			t.Errorf("store key %q changed", k)
		}
	}
}

// TestHostileRequests runs the table: each hostile request on a fresh
// server, its exact status, and no cookie, mail or store change beyond what
// the case allows. The harness also fails the test if any handler panicked.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	cases := hostileRequestCases()
	// The table is the auditor's one list: at least 60 cases, every endpoint.
	if len(cases) < 60 {
		t.Errorf("%d hostile cases, want at least 60", len(cases))
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("two cases named %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runHostileCase(t, newHostileFixture(t, tc.workos), tc)
		})
	}
}

// TestHostileUserEnumeration compares what a member and a non-member see
// when they ask for a code: status, body and headers must be identical, and
// the time taken must be the same within noise. It is the one timing
// comparison in the suite. It is sound because the request path does the
// same work for both (rate limits, a new code stored, one members lookup);
// only the mail differs, and it is sent after the response. Medians of many
// interleaved calls ignore scheduler and GC spikes, and the bound (3x plus
// 1 ms) is far looser than a real difference, such as an SMTP exchange on
// the request path, would be.
func TestHostileUserEnumeration(t *testing.T) {
	t.Parallel()
	const n = 200
	var members strings.Builder
	members.WriteString(`{"members":[`)
	for i := range n {
		if i > 0 {
			members.WriteString(",")
		}
		fmt.Fprintf(&members, `{"email":"member%d@example.com","organization_id":"org_acme","role":"member","active":%v}`, i, i%2 == 0)
	}
	members.WriteString("]}")
	ts := newTestServer(t, testEnv("MEMBERS_FILE", writeMembers(t, members.String())))

	call := func(addr string, i int) (*httptest.ResponseRecorder, time.Duration) {
		r := httptest.NewRequest("POST", "/v2/user/login_code/", strings.NewReader(`{"email":"`+addr+`"}`))
		r.Header.Set("Content-Type", "application/json")
		// A client address each, so that no rate limit answers instead.
		r.RemoteAddr = fmt.Sprintf("10.%d.%d.1:4711", i/250, i%250)
		rec := httptest.NewRecorder()
		start := time.Now()
		ts.handler.ServeHTTP(rec, r)
		return rec, time.Since(start)
	}
	var memberTimes, otherTimes []time.Duration
	var first [2]*httptest.ResponseRecorder
	for i := range n {
		m, dm := call(fmt.Sprintf("member%d@example.com", i), 2*i)
		o, do := call(fmt.Sprintf("stranger%d@example.com", i), 2*i+1)
		memberTimes, otherTimes = append(memberTimes, dm), append(otherTimes, do)
		if m.Code != http.StatusOK || o.Code != http.StatusOK {
			t.Fatalf("call %d: member %d %s, non-member %d %s", i, m.Code, m.Body, o.Code, o.Body)
		}
		if m.Body.String() != o.Body.String() || fmt.Sprint(m.Header()) != fmt.Sprint(o.Header()) {
			t.Fatalf("call %d differs:\nmember     %v %s\nnon-member %v %s", i, m.Header(), m.Body, o.Header(), o.Body)
		}
		if first[0] == nil {
			first = [2]*httptest.ResponseRecorder{m, o}
		}
	}
	ts.background.Wait()
	if got := len(ts.mails.sent()); got != n {
		t.Fatalf("%d mails, want %d (members only)", got, n)
	}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	mm, mo := median(memberTimes), median(otherTimes)
	if mm > 3*mo+time.Millisecond || mo > 3*mm+time.Millisecond {
		t.Errorf("median time: member %v, non-member %v: the difference tells them apart", mm, mo)
	}
	t.Logf("median time: member %v, non-member %v", mm, mo)

	// The verify endpoint answers alike too, for a member and a stranger
	// without a code.
	ts.clock.Advance(codeTTL)
	a := ts.post("/v2/user/login_code/verify/", verifyBody("member0@example.com", "123456"))
	b := ts.post("/v2/user/login_code/verify/", verifyBody("stranger0@example.com", "123456"))
	if a.Code != b.Code || a.Body.String() != b.Body.String() || fmt.Sprint(a.Header()) != fmt.Sprint(b.Header()) {
		t.Errorf("verify differs: member %d %s, non-member %d %s", a.Code, a.Body, b.Code, b.Body)
	}
}

// serveForTest serves ts on a real loopback listener until the test ends.
func serveForTest(t *testing.T, ts *testServer) string {
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

// readUntilClosed reads conn until the server closes it, or until bound,
// which exists only so that a broken server fails the test instead of
// hanging it. It reports whether the server closed the connection.
func readUntilClosed(conn net.Conn, bound time.Duration) (got string, closed bool) {
	conn.SetReadDeadline(time.Now().Add(bound))
	b, err := io.ReadAll(bufio.NewReader(conn))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return string(b), false
	}
	return string(b), true
}

// TestHostileSlowBodyIsCut sends a request whose body trickles in a byte at
// a time and never completes: the server's read timeout must end it, with
// no mail sent and no store change.
func TestHostileSlowBodyIsCut(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the read timeout")
	}
	f := newHostileFixture(t, false)
	addr := serveForTest(t, f.ts)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"email":"ada@example.com"}`
	fmt.Fprintf(conn, "POST /v2/user/login_code/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body)+100)
	// Trickle the body, a byte every 500 ms, as long as the server listens.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{body[i%len(body)]}); err != nil {
				return
			}
		}
	}()
	got, closed := readUntilClosed(conn, readTimeout+20*time.Second)
	if !closed {
		t.Fatal("the server never cut a connection whose body trickled in")
	}
	if strings.Contains(got, "CODE_SENT") {
		t.Errorf("a request with a body that never completed was served: %q", got)
	}
	f.ts.background.Wait()
	if n := len(f.ts.mails.sent()); n != 0 {
		t.Errorf("%d mails sent", n)
	}
}

// TestHostileOversizedHeaderIsRefused sends more header bytes than
// maxHeaderBytes over a real connection: the server refuses them with 431
// and never reaches a handler.
func TestHostileOversizedHeaderIsRefused(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, false)
	addr := serveForTest(t, f.ts)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/user/me/ HTTP/1.1\r\nHost: x\r\nCookie: access_token=%s\r\n\r\n", strings.Repeat("A", 2*maxHeaderBytes))
	got, closed := readUntilClosed(conn, readHeaderTimeout+20*time.Second)
	if !closed || !strings.HasPrefix(got, "HTTP/1.1 431 ") {
		t.Fatalf("closed %v, answer %.60q; want 431", closed, got)
	}
}

// hookStore runs hook once, just before the first Set of key, so a test can
// land another request in the middle of a handler.
type hookStore struct {
	store
	mu   sync.Mutex
	key  string
	hook func()
}

func (h *hookStore) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	h.mu.Lock()
	hook := h.hook
	if key == h.key {
		h.hook = nil
	} else {
		hook = nil
	}
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	return h.store.Set(ctx, key, value, ttl)
}

// TestHostileLogoutDuringRefresh lands a logout between a refresh's read of
// the session record and its write of the record (which extends its life).
// Someone holding a stolen refresh token can refresh in a loop to keep such
// a window open; the logout must win all the same.
func TestHostileLogoutDuringRefresh(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, false)
	ts := f.ts
	cookies := f.session()
	sid := f.claimsOf(cookieValue(cookies, "access_token")).Sid
	hs := &hookStore{store: ts.store, key: ts.key("session", sid)}
	hs.hook = func() {
		wantStatus(t, ts.post("/v2/user/logout/", "", cookies...), http.StatusOK)
	}
	ts.server.store = hs
	ts.clock.Advance(time.Minute)

	r := ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	if hs.hook != nil {
		t.Fatal("the logout never ran inside the refresh")
	}
	wantStatus(t, r, http.StatusUnauthorized)
	if len(r.cookies()) != 0 {
		t.Errorf("refresh of a logged-out session set cookies: %v", r.cookies())
	}
	wantStatus(t, ts.get("/v2/user/me/", named(cookies, "access_token")...), http.StatusUnauthorized)
	if _, found, _ := ts.store.Get(context.Background(), ts.key("session", sid)); found {
		t.Error("the session record outlived the logout")
	}
}

// TestHostileStoreHoldsNoCode: a copy of the store (a Redis dump, a
// replica, a backup) gives away neither a pending code nor who asked for
// one: it holds an HMAC of the code under a key derived from JWT_SECRET,
// and addresses only as HMACs.
func TestHostileStoreHoldsNoCode(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, false)
	code := f.code()
	ms := f.ts.store.(*memoryStore)
	ms.mu.Lock()
	entries := map[string]string{}
	for k, e := range ms.entries {
		entries[k] = e.value
	}
	ms.mu.Unlock()
	id := f.ts.addressID("ada@example.com")
	if got := entries[f.ts.key("code", id)]; got != f.ts.codeHash("ada@example.com", code) {
		t.Fatalf("code entry %q, want the code's HMAC", got)
	}
	for k, v := range entries {
		if v == code || strings.Contains(k, code) {
			t.Errorf("store entry %q = %q holds the code", k, v)
		}
		// Keys and values are hex, which can spell "ada"; an address
		// always carries its "@" and domain.
		if strings.Contains(k+v, "@") || strings.Contains(strings.ToLower(k+v), "example.com") {
			t.Errorf("store entry %q = %q names the address", k, v)
		}
	}
}

// TestHostileLogsHoldNoSecrets signs in, refreshes, logs out and sends a
// few hostile requests, then looks for every secret in the log: the code,
// both tokens, the JWT and webhook secrets and a webhook signature.
func TestHostileLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, false)
	ts := f.ts
	code := f.code()
	r := ts.verify("ada@example.com", code)
	wantSignin(t, r, http.StatusOK, loginSuccessful)
	cookies := named(r.cookies(), "access_token", "refresh_token")
	ts.clock.Advance(time.Minute)
	fresh := named(ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...).cookies(), "access_token", "refresh_token")
	// The spent token again, a wrong code, a forged webhook, a bad cookie.
	ts.clock.Advance(time.Minute)
	ts.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	ts.verify("ada@example.com", otherCode(code))
	_, sig := f.sigParts(hostileMagicEvent)
	forged := webhookSig("whsec_guess", hostileMagicEvent, ts.clock.Now())
	for _, req := range []*http.Request{
		f.webhook(hostileMagicEvent, forged),
		f.webhook(hostileMagicEvent+" ", "t=1, v1="+sig),
		f.me(cookieValue(fresh, "access_token") + "x"),
		withCookies(f.post("/v2/user/logout/", ""), fresh...),
	} {
		ts.handler.ServeHTTP(httptest.NewRecorder(), req)
	}
	ts.background.Wait()
	logs := ts.logs.String()
	secrets := map[string]string{
		"login code":     `"` + code + `"`,
		"mailed code":    `\n` + code + `\r`,
		"JWT secret":     string(ts.keys[0]),
		"webhook secret": hostileWebhookSecret,
		"signature":      sig,
		"forged sig":     forged[strings.Index(forged, "v1=")+3:],
	}
	for _, c := range append(cookies, fresh...) {
		secrets[c.Name+" "+c.Value[:8]] = c.Value[strings.LastIndexByte(c.Value, '.')+1:]
	}
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds the %s", what)
		}
	}
	if !strings.Contains(logs, `"path":"/v2/user/token_refresh/"`) {
		t.Fatal("nothing was logged; the check above proves nothing")
	}
}

// TestSecurityMapIsCurrent reads the threat table in SECURITY.md and checks
// that every file:function it names is declared in that file, every test
// it names exists (and for TestHostileRequests/<case>, that the case is in
// the table), and that every fuzz target and every TestHostile* test is
// named somewhere in it.
func TestSecurityMapIsCurrent(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	decls := map[string]map[string]bool{} // file → "name" and "Recv.name"
	tests := map[string]bool{}
	fset := token.NewFileSet()
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		decls[file] = map[string]bool{}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			decls[file][fd.Name.Name] = true
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				recv := fd.Recv.List[0].Type
				if star, ok := recv.(*ast.StarExpr); ok {
					recv = star.X
				}
				if id, ok := recv.(*ast.Ident); ok {
					decls[file][id.Name+"."+fd.Name.Name] = true
				}
			}
			if strings.HasSuffix(file, "_test.go") && fd.Recv == nil &&
				(strings.HasPrefix(fd.Name.Name, "Test") || strings.HasPrefix(fd.Name.Name, "Fuzz")) {
				tests[fd.Name.Name] = true
			}
		}
	}
	caseNames := map[string]bool{}
	for _, c := range hostileRequestCases() {
		caseNames[c.name] = true
	}

	ticked := regexp.MustCompile("`([^`]+)`")
	location := regexp.MustCompile(`^([a-z_]+\.go):([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)$`)
	row := regexp.MustCompile(`^\| T\d+ \|`)
	named := map[string]bool{}
	rows := 0
	for _, line := range strings.Split(string(doc), "\n") {
		if !row.MatchString(line) {
			continue
		}
		rows++
		cells := strings.Split(line, "|")
		if len(cells) != 7 {
			t.Errorf("row %.20q has %d cells, want 5", line, len(cells)-2)
			continue
		}
		id := strings.TrimSpace(cells[1])
		where, proof := ticked.FindAllStringSubmatch(cells[4], -1), ticked.FindAllStringSubmatch(cells[5], -1)
		if len(where) == 0 || len(proof) == 0 {
			t.Errorf("%s: names no function or no test", id)
		}
		for _, m := range where {
			loc := location.FindStringSubmatch(m[1])
			if loc == nil {
				t.Errorf("%s: %q is not file.go:function", id, m[1])
				continue
			}
			if !decls[loc[1]][loc[2]] {
				t.Errorf("%s: %s does not declare %s", id, loc[1], loc[2])
			}
		}
		for _, m := range proof {
			name, sub, hasSub := strings.Cut(m[1], "/")
			named[name] = true
			switch {
			case !tests[name]:
				t.Errorf("%s: no test %s", id, name)
			case hasSub && name != "TestHostileRequests":
				t.Errorf("%s: %q: only TestHostileRequests cases may be named", id, m[1])
			case hasSub && !caseNames[sub]:
				t.Errorf("%s: TestHostileRequests has no case %q", id, sub)
			}
		}
	}
	if rows < 30 {
		t.Fatalf("found %d threat rows in SECURITY.md; is the table still there?", rows)
	}
	for name := range tests {
		if (strings.HasPrefix(name, "Fuzz") || strings.HasPrefix(name, "TestHostile")) && !named[name] {
			t.Errorf("SECURITY.md does not name %s", name)
		}
	}
}
