package main

// hostilepeers_test.go points the service at peers that misbehave: a Redis
// that answers garbage, a huge length, nothing, or hangs up mid-reply; an
// SMTP server that refuses, drops or stalls at each stage of the exchange.
// In every case the service must not panic (the harness counts recovered
// panics), must answer within its configured deadlines, and must answer
// 503 or a clear error rather than a wrong success.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileRedis is a TCP server that reads RESP commands and answers each
// with whatever its behaviour writes.
type hostileRedis struct {
	ln net.Listener
	// behave handles one command on conn; it returns false to hang up.
	behave func(conn net.Conn) bool

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
	stop  chan struct{}
}

func startHostileRedis(t *testing.T, behave func(conn net.Conn) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileRedis{ln: ln, behave: behave, conns: map[net.Conn]bool{}, stop: make(chan struct{})}
	h.wg.Add(1)
	go h.serve()
	t.Cleanup(func() {
		close(h.stop)
		ln.Close()
		h.mu.Lock()
		for c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return "redis://" + ln.Addr().String()
}

func (h *hostileRedis) serve() {
	defer h.wg.Done()
	for {
		conn, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns[conn] = true
		h.mu.Unlock()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer conn.Close()
			br := bufio.NewReader(conn)
			for readRESPCommand(br) == nil && h.behave(conn) {
			}
		}()
	}
}

// readRESPCommand reads one command: an array of bulk strings.
func readRESPCommand(br *bufio.Reader) error {
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil {
		return err
	}
	for range n {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, br, int64(size)+2); err != nil {
			return err
		}
	}
	return nil
}

// replyWith answers every command with raw, and keeps the connection.
func replyWith(raw string) func(net.Conn) bool {
	return func(conn net.Conn) bool {
		_, err := io.WriteString(conn, raw)
		return err == nil
	}
}

// hangUpAfter writes raw, then closes the connection.
func hangUpAfter(raw string) func(net.Conn) bool {
	return func(conn net.Conn) bool {
		io.WriteString(conn, raw)
		return false
	}
}

// hostileRedisBehaviours are the ways the fake Redis misbehaves.
func hostileRedisBehaviours() []struct {
	name   string
	behave func(net.Conn) bool
} {
	return []struct {
		name   string
		behave func(net.Conn) bool
	}{
		{"garbage", replyWith("hello, this is not RESP\r\n")},
		{"huge bulk length", replyWith("$99999999999\r\n")},
		{"huge array length", replyWith("*99999999\r\n")},
		{"bulk longer than the cap", replyWith("$" + strconv.Itoa(maxBulkLen+1) + "\r\n")},
		{"endless line", replyWith("+" + strings.Repeat("a", 64<<10))},
		{"deep nesting", replyWith(strings.Repeat("*1\r\n", 64) + ":1\r\n")},
		{"RESP3 map", replyWith("%1\r\n+a\r\n+b\r\n")},
		{"integer to everything", replyWith(":1\r\n")},
		{"error to everything", replyWith("-ERR no\r\n")},
		{"bare LF", replyWith("+OK\n")},
		{"nothing", func(net.Conn) bool { return true }},
		{"hang up at once", func(net.Conn) bool { return false }},
		{"hang up mid-reply", hangUpAfter("$10\r\nabc")},
		{"hang up mid-array", hangUpAfter("*2\r\n:1\r\n")},
		{"trickle", func(conn net.Conn) bool {
			for _, b := range []byte("+PONG\r\n") {
				time.Sleep(time.Second)
				if _, err := conn.Write([]byte{b}); err != nil {
					return false
				}
			}
			return true
		}},
	}
}

// answerWithin serves r and fails the test if no answer comes within
// bound. The bound is the configured deadline with a wide margin: it only
// tells a missing deadline (which hangs for ever) from a working one.
func answerWithin(t *testing.T, ts *testServer, r *http.Request, bound time.Duration) response {
	t.Helper()
	done := make(chan response, 1)
	go func() {
		rec := httptest.NewRecorder()
		ts.handler.ServeHTTP(rec, r)
		resp := response{ResponseRecorder: rec}
		json.Unmarshal(rec.Body.Bytes(), &resp.json) // a non-JSON body fails the status checks
		done <- resp
	}()
	select {
	case resp := <-done:
		return resp
	case <-time.After(bound):
		t.Fatalf("%s %s: no answer within %v", r.Method, r.URL.Path, bound)
		return response{}
	}
}

// sessionToken signs a token of typ for a session the store holds or not.
func sessionToken(t *testing.T, ts *testServer, typ string) string {
	t.Helper()
	now := ts.clock.Now()
	tok, err := signToken(ts.keys[0], claims{
		Iss: ts.cfg.APIURL, Aud: tokenAudience, Sub: "user_1", Email: "ada@example.com", Org: "org_acme",
		Sid: "sess_" + strings.Repeat("1", 32), Typ: typ, Jti: randomID(16),
		Iat: now.Unix(), Exp: now.Add(ts.cfg.AccessTTL).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestHostileRedis: whatever a broken Redis answers, every endpoint that
// needs state answers 503 (never 500, never a wrong 2xx or 401) within the
// store's deadline, sends no mail and panics nowhere.
func TestHostileRedis(t *testing.T) {
	t.Parallel()
	// The slowest path waits for the Redis command timeout once or twice
	// per request (storeTimeout caps the whole request's state calls).
	bound := 2*storeTimeout + 10*time.Second
	for _, b := range hostileRedisBehaviours() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, testEnv(
				"MEMBERS_FILE", writeMembers(t, testMembers),
				"REDIS_URL", startHostileRedis(t, b.behave),
			))
			f := &hostileFixture{t: t, ts: ts}
			access := &http.Cookie{Name: "access_token", Value: sessionToken(t, ts, "access")}
			refreshCookie := &http.Cookie{Name: "refresh_token", Value: sessionToken(t, ts, "refresh")}
			for _, tc := range []struct {
				name string
				r    *http.Request
			}{
				{"readyz", f.req("GET", "/readyz", "")},
				{"login code", f.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)},
				{"verify", f.post("/v2/user/login_code/verify/", verifyBody("ada@example.com", "123456"))},
				{"me", withCookies(f.req("GET", "/v2/user/me/", ""), access)},
				{"refresh", withCookies(f.post("/v2/user/token_refresh/", ""), refreshCookie)},
				{"logout", withCookies(f.post("/v2/user/logout/", ""), access)},
			} {
				r := answerWithin(t, ts, tc.r, bound)
				if r.Code != http.StatusServiceUnavailable {
					t.Errorf("%s: %d %s, want 503", tc.name, r.Code, r.Body)
				}
				if len(r.Result().Cookies()) != 0 {
					t.Errorf("%s: set cookies %v", tc.name, r.Result().Cookies())
				}
			}
			ts.background.Wait()
			if n := len(ts.mails.sent()); n != 0 {
				t.Errorf("%d mails sent while the store was broken", n)
			}
			if ts.metrics.get("dashauth_store_errors_total", "", "") == 0 {
				t.Error("store errors were not counted")
			}
		})
	}
}

// smtpFaults are the ways the test SMTP server fails at one stage.
func smtpFaults() []struct {
	name  string
	fault testSMTPFailure
} {
	var out []struct {
		name  string
		fault testSMTPFailure
	}
	for _, stage := range []smtpStage{stageGreeting, stageHello, stageMail, stageRcpt, stageData, stageEnd} {
		for _, f := range []testSMTPFailure{{Code: 421}, {Code: 451}, {Code: 554}, {Drop: true}, {Stall: true}} {
			f.Stage = stage
			name := fmt.Sprintf("%s %d", stage, f.Code)
			switch {
			case f.Drop:
				name = string(stage) + " drop"
			case f.Stall:
				name = string(stage) + " stall"
			}
			out = append(out, struct {
				name  string
				fault testSMTPFailure
			}{name, f})
		}
	}
	return out
}

// hostileSMTPTimeout is the SMTP deadline of these tests: short, so that a
// stall costs a second, and the same mechanism as the production 15 s.
const hostileSMTPTimeout = time.Second

// smtpServerFor starts a test SMTP server failing with fault and points
// ts's mailer at it.
func smtpServerFor(t *testing.T, ts *testServer, fault testSMTPFailure) *testSMTPServer {
	t.Helper()
	srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Username: "dashauth", Password: "smtp-password", Fail: fault})
	cfg := srv.Config()
	cfg.Timeout = hostileSMTPTimeout
	m, err := newSMTPMailer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.server.mail = m
	return srv
}

// TestHostileSMTPLoginCode: an SMTP server that refuses, drops or stalls at
// any stage never changes the answer to a code request (the mail goes out
// after it), is given up on at the SMTP deadline, and is counted as a
// failed mail; nothing is counted as sent.
func TestHostileSMTPLoginCode(t *testing.T) {
	t.Parallel()
	for _, tc := range smtpFaults() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newEmailCodeServer(t)
			srv := smtpServerFor(t, ts, tc.fault)
			r := answerWithin(t, ts, (&hostileFixture{t: t, ts: ts}).post("/v2/user/login_code/", `{"email":"ada@example.com"}`), storeTimeout+10*time.Second)
			wantSignin(t, r, http.StatusOK, codeSent)
			waitBackground(t, ts, hostileSMTPTimeout+10*time.Second)
			if got := ts.metrics.get("dashauth_mails_total", "result", "failed"); got != 1 {
				t.Errorf("mails failed = %d, want 1", got)
			}
			if got := ts.metrics.get("dashauth_mails_total", "result", "sent"); got != 0 {
				t.Errorf("mails sent = %d, want 0", got)
			}
			if n := srv.Count(); n != 0 {
				t.Errorf("server accepted %d mails", n)
			}
		})
	}
}

// TestHostileSMTPQuitFailure: a server that takes the mail and then fails
// QUIT has the mail; the service counts it sent, once.
func TestHostileSMTPQuitFailure(t *testing.T) {
	t.Parallel()
	for _, fault := range []testSMTPFailure{{Code: 554}, {Drop: true}, {Stall: true}} {
		fault.Stage = stageQuit
		ts := newEmailCodeServer(t)
		srv := smtpServerFor(t, ts, fault)
		wantSignin(t, ts.post("/v2/user/login_code/", `{"email":"ada@example.com"}`), http.StatusOK, codeSent)
		waitBackground(t, ts, hostileSMTPTimeout+10*time.Second)
		if got := ts.metrics.get("dashauth_mails_total", "result", "sent"); got != 1 || srv.Count() != 1 {
			t.Errorf("%+v: counted %d sent, server has %d", fault, got, srv.Count())
		}
	}
}

// waitBackground waits for the mail sent after a response, failing the
// test (instead of hanging it) if that takes far longer than its deadline.
func waitBackground(t *testing.T, ts *testServer, bound time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		ts.background.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(bound):
		t.Fatalf("background mail still running after %v", bound)
	}
}

// TestHostileRedisWorkOS: in WorkOS mode a broken Redis must not lose a
// webhook event (the contract: deliver as if the event were new, a
// duplicate is possible, a lost mail is not), and must not let an AuthKit
// state be used without being spent (503, WorkOS never asked).
func TestHostileRedisWorkOS(t *testing.T) {
	t.Parallel()
	bound := 2*storeTimeout + workosTimeout + 10*time.Second
	for _, b := range hostileRedisBehaviours() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			fake.setMembership(testAda.ID, testOrgID, "active")
			ts := newWorkOSTestServer(t, fake, "REDIS_URL", startHostileRedis(t, b.behave))

			d := newDelivery(t, ts, fake)
			r := answerWithin(t, ts, webhookRequest(ts, d.body), bound)
			if r.Code != http.StatusOK || r.field("status") != "delivered" {
				t.Fatalf("webhook: %d %s, want 200 delivered", r.Code, r.Body)
			}
			if sent := ts.mails.sent(); len(sent) != 1 || !strings.Contains(sent[0].Text, d.code) {
				t.Fatalf("%d mails, want the one code", len(sent))
			}
			if ts.metrics.get("dashauth_webhook_undeduped_total", "", "") != 1 {
				t.Error("delivery without de-duplication was not counted")
			}

			br := newBrowser(ts)
			code, state := fake.authorize(t, br.startSignin(), adaGrant())
			req := withCookies((&hostileFixture{t: t, ts: ts}).post(callbackPath, callbackBody(code, state)), br.cookies()...)
			r = answerWithin(t, ts, req, bound)
			if r.Code != http.StatusServiceUnavailable {
				t.Errorf("callback: %d %s, want 503", r.Code, r.Body)
			}
			for _, c := range r.Result().Cookies() {
				if c.Value != "" {
					t.Errorf("callback set cookie %s", c.Name)
				}
			}
			if n := fake.calls(fakeAuthenticatePath); n != 0 {
				t.Errorf("the code was exchanged %d times without the state being spent", n)
			}
		})
	}
}

// TestHostileSMTPWebhookStalls: an SMTP server that stalls after the
// greeting (at EHLO, MAIL or RCPT) holds a webhook delivery only until the
// SMTP deadline: 503, the claim released, and WorkOS's retry delivers one
// mail. (TestWebhookSMTPFailures covers refusals and drops at every stage,
// and stalls at the greeting, DATA and the end of data.)
func TestHostileSMTPWebhookStalls(t *testing.T) {
	t.Parallel()
	for _, stage := range []smtpStage{stageHello, stageMail, stageRcpt} {
		t.Run(string(stage), func(t *testing.T) {
			t.Parallel()
			ts, fake, srv := newDeliveryServer(t, testSMTPFailure{Stage: stage, Stall: true, Times: 1})
			d := newDelivery(t, ts, fake)
			normal := ts.mail
			ts.mail = configuredMailer(t, ts, srv, hostileSMTPTimeout)
			r := answerWithin(t, ts, webhookRequest(ts, d.body), hostileSMTPTimeout+workosTimeout+10*time.Second)
			ts.mail = normal
			wantAnswer(t, r, http.StatusServiceUnavailable, "error", "delivery_failed")
			wantNoClaim(t, ts, d.eventID)
			wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
			wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "duplicate")
			if n := srv.Count(); n != 1 {
				t.Fatalf("%d mails in total, want 1", n)
			}
		})
	}
}

// TestHostileWorkOSSelectOrganization: WorkOS failing at the second step of
// a sign-in, the organization choice, answers 503 with no session, like the
// first step does (TestWorkOSUnavailable).
func TestHostileWorkOSSelectOrganization(t *testing.T) {
	t.Parallel()
	for name, fault := range map[string]fakeFault{
		"500": fault500, "invalid JSON": faultInvalidJSON, "huge body": faultHugeBody,
		"huge error body": faultHugeErrorBody, "stall": faultStall, "stall in body": faultStallBody,
		"redirect": faultRedirect,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newHostileFixture(t, true)
			f.ts.workos.timeout = 2 * time.Second
			b := f.pendingChoice()
			f.fake.setFault(fakeAuthenticatePath, fault)
			req := withCookies(f.post(selectOrgPath, `{"organization_id":"`+testOrgID+`"}`), b.cookies()...)
			r := answerWithin(t, f.ts, req, f.ts.workos.timeout+10*time.Second)
			if r.Code != http.StatusServiceUnavailable || r.field("error") != "workos_unavailable" {
				t.Fatalf("%d %s, want 503 workos_unavailable", r.Code, r.Body)
			}
			for _, c := range r.Result().Cookies() {
				if c.Value != "" {
					t.Errorf("set cookie %s", c.Name)
				}
			}
			if n := f.fake.calls(fakeRedirectPath); n != 0 {
				t.Error("a redirect from WorkOS was followed")
			}
		})
	}
}
