package main

// Two replicas sharing one real redis-server (REDIS_URL), with the same JWT_SECRET and REDIS_KEY_PREFIX: whatever one
// remembers, the other sees at once. Each replica has its own test clock; they start at the same instant and tests
// move them together.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const replicaKeyPrefix = "replicas-test:"

// newReplicaPair starts two email+code replicas (development mode: anyone may sign in) sharing r.
func newReplicaPair(t *testing.T, r *testRedis) (a, b *testServer) {
	t.Helper()
	env := func() map[string]string { return testEnv("REDIS_URL", r.URL(), "REDIS_KEY_PREFIX", replicaKeyPrefix) }
	return newTestServer(t, env()), newTestServer(t, env())
}

// newWorkOSReplica starts a WorkOS-mode replica sharing r, talking to the WorkOS API at base.
func newWorkOSReplica(t *testing.T, r *testRedis, fake *fakeWorkOS, base string) *testServer {
	t.Helper()
	return newWorkOSTestServer(t, fake, "REDIS_URL", r.URL(), "REDIS_KEY_PREFIX", replicaKeyPrefix, "WORKOS_API_BASE_URL", base)
}

// moveClocks advances every replica's clock by d.
func moveClocks(d time.Duration, replicas ...*testServer) {
	for _, ts := range replicas {
		ts.clock.Advance(d)
	}
}

func (ts *testServer) verifyCode(addr, code string) response {
	ts.t.Helper()
	return ts.post("/v2/user/login_code/verify/", fmt.Sprintf(`{"email":%q,"code":%q}`, addr, code))
}

// wantResponseType checks a sign-in answer; one that is not LOGIN_SUCCESSFUL sets no cookie.
func wantResponseType(t *testing.T, what string, r response, status int, responseType string) {
	t.Helper()
	if r.Code != status || r.field("response_type") != responseType {
		t.Errorf("%s: %d %s, want %d %s", what, r.Code, r.Body, status, responseType)
	}
	if responseType != loginSuccessful && len(r.cookies()) != 0 {
		t.Errorf("%s: %s set cookies %v", what, responseType, r.cookies())
	}
}

// anotherCode is a well-formed code that is not code.
func anotherCode(t *testing.T, code string) string {
	return fmt.Sprintf("%06d", (mustAtoi(t, code)+1)%1_000_000)
}

func TestReplicasShareCodes(t *testing.T) {
	t.Parallel()
	a, b := newReplicaPair(t, startRedis(t))
	code := a.requestCode("ada@example.com")
	// The limit of one code a minute per address is one limit.
	r := b.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)
	if r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != "60" {
		t.Errorf("B's code within A's minute: %d %s, Retry-After %q; want 429, 60", r.Code, r.Body, r.Header().Get("Retry-After"))
	}
	wantResponseType(t, "the code from A on B", b.verifyCode("ada@example.com", code), 200, loginSuccessful)
	wantResponseType(t, "the same code again on A", a.verifyCode("ada@example.com", code), 400, linkExpired)
	wantResponseType(t, "the same code again on B", b.verifyCode("ada@example.com", code), 400, linkExpired)

	// A new code asked on B after the minute replaces A's old one for both.
	moveClocks(time.Minute, a, b)
	first := a.requestCode("bob@example.com")
	moveClocks(time.Minute, a, b)
	second := b.requestCode("bob@example.com")
	if first != second {
		wantResponseType(t, "the replaced code on A", a.verifyCode("bob@example.com", first), 400, linkInvalid)
	}
	wantResponseType(t, "the new code on A", a.verifyCode("bob@example.com", second), 200, loginSuccessful)
}

func TestReplicasShareWrongTries(t *testing.T) {
	t.Parallel()
	a, b := newReplicaPair(t, startRedis(t))
	code := a.requestCode("ada@example.com")
	for i := range codeMaxTries {
		ts := []*testServer{a, b}[i%2]
		wantResponseType(t, fmt.Sprintf("wrong try %d", i+1), ts.verifyCode("ada@example.com", anotherCode(t, code)), 400, linkInvalid)
	}
	wantResponseType(t, "the right code on B after five wrong", b.verifyCode("ada@example.com", code), 400, linkExpired)
	wantResponseType(t, "the right code on A after five wrong", a.verifyCode("ada@example.com", code), 400, linkExpired)
}

// TestReplicasShareRateLimits: one client's verify requests count once over both replicas.
func TestReplicasShareRateLimits(t *testing.T) {
	t.Parallel()
	a, b := newReplicaPair(t, startRedis(t))
	for i := range 30 {
		ts := []*testServer{a, b}[i%2]
		if r := ts.verifyCode("nobody@example.com", "123456"); r.Code == http.StatusTooManyRequests {
			t.Fatalf("verify %d of 30 refused", i+1)
		}
	}
	for _, ts := range []*testServer{a, b} {
		r := ts.verifyCode("nobody@example.com", "123456")
		if r.Code != http.StatusTooManyRequests || r.field("error") != "rate_limited" || r.Header().Get("Retry-After") == "" {
			t.Errorf("the 31st verify: %d %s", r.Code, r.Body)
		}
	}
	// Another client is not affected.
	r := b.do(request{method: "POST", path: "/v2/user/login_code/verify/", body: `{"email":"nobody@example.com","code":"123456"}`,
		remote: "198.51.100.9:5555"})
	if r.Code == http.StatusTooManyRequests {
		t.Errorf("another client was limited: %s", r.Body)
	}
}

func TestReplicasShareSessions(t *testing.T) {
	t.Parallel()
	a, b := newReplicaPair(t, startRedis(t))
	cookies := a.signIn("ada@example.com")
	meA, meB := a.get("/v2/user/me/", cookies...), b.get("/v2/user/me/", cookies...)
	wantStatus(t, meB, http.StatusOK)
	if meA.Body.String() != meB.Body.String() || meB.field("login_method") != "email_code" {
		t.Errorf("me on A %s, on B %s", meA.Body, meB.Body)
	}
	// B refreshes what A issued; A accepts what B issued.
	r := b.post("/v2/user/token_refresh/", "", cookies...)
	wantStatus(t, r, http.StatusOK)
	fresh := r.cookies()
	wantStatus(t, a.get("/v2/user/me/", fresh...), http.StatusOK)

	wantStatus(t, a.post("/v2/user/logout/", "", fresh...), http.StatusOK)
	for _, tc := range []struct {
		name    string
		ts      *testServer
		cookies []*http.Cookie
	}{
		{"B, fresh tokens", b, fresh},
		{"A, fresh tokens", a, fresh},
		{"B, first tokens", b, cookies},
	} {
		if r := tc.ts.get("/v2/user/me/", tc.cookies...); r.Code != http.StatusUnauthorized {
			t.Errorf("%s: me after logout on A: %d %s", tc.name, r.Code, r.Body)
		}
		if r := tc.ts.post("/v2/user/token_refresh/", "", tc.cookies...); r.Code != http.StatusUnauthorized {
			t.Errorf("%s: refresh after logout on A: %d %s", tc.name, r.Code, r.Body)
		}
	}
}

// TestReplicasRefreshReplay: a spent refresh token presented on the other replica within REFRESH_REUSE_INTERVAL only
// fails; later it revokes the session, which the first replica sees at once.
func TestReplicasRefreshReplay(t *testing.T) {
	t.Parallel()
	a, b := newReplicaPair(t, startRedis(t))
	cookies := a.signIn("ada@example.com")
	r := a.post("/v2/user/token_refresh/", "", cookies...)
	wantStatus(t, r, http.StatusOK)
	fresh := r.cookies()

	r = b.post("/v2/user/token_refresh/", "", cookies...) // another tab, at once
	if r.Code != http.StatusUnauthorized || r.field("error") != "refresh_token_spent" {
		t.Errorf("a concurrent refresh on B: %d %s", r.Code, r.Body)
	}
	wantStatus(t, a.get("/v2/user/me/", fresh...), http.StatusOK)
	if n := b.metric("dashauth_refresh_reuse_total", "refused"); n != 1 {
		t.Errorf("B refused %d reuses, want 1", n)
	}

	moveClocks(a.cfg.RefreshReuse+time.Second, a, b)
	wantStatus(t, b.post("/v2/user/token_refresh/", "", cookies...), http.StatusUnauthorized)
	if n := b.metric("dashauth_refresh_reuse_total", "revoked"); n != 1 {
		t.Fatalf("B revoked %d sessions, want 1", n)
	}
	if r := a.get("/v2/user/me/", fresh...); r.Code != http.StatusUnauthorized {
		t.Errorf("me on A after B revoked the session: %d %s", r.Code, r.Body)
	}
	if r := a.post("/v2/user/token_refresh/", "", fresh...); r.Code != http.StatusUnauthorized {
		t.Errorf("refresh on A after B revoked the session: %d %s", r.Code, r.Body)
	}
}

// TestReplicasWebhookMailsOnce: one event delivered eight times at once, four to each replica, while the first
// delivery's WorkOS call is held: seven 409s, then one 200 after one mail; retries on both answer 200 duplicate, and
// the done mark is in Redis for WorkOS's 3-day retry window.
func TestReplicasWebhookMailsOnce(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	fake := newFakeWorkOS(t)
	front := newWorkOSFront(t, fake)
	a, b := newWorkOSReplica(t, rs, fake, front.URL), newWorkOSReplica(t, rs, fake, front.URL)
	body, signature, code := newMagicAuthEvent(fake, a.clock.Now())
	front.hold(t)

	answers := make(chan *httptest.ResponseRecorder, 8)
	for i := range 8 {
		ts := []*testServer{a, b}[i%2]
		go func() { answers <- ts.serveRaw(webhookRequest(body, signature)) }()
	}
	<-front.entered
	for range 7 {
		if rec := <-answers; rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), `"delivery_in_progress"`) {
			t.Errorf("an overlapping delivery: %d %s, want 409 delivery_in_progress", rec.Code, rec.Body)
		}
	}
	front.release()
	if rec := <-answers; rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"delivered"`) {
		t.Fatalf("the delivery: %d %s, want 200 delivered", rec.Code, rec.Body)
	}
	for _, ts := range []*testServer{a, b} {
		if rec := ts.serveRaw(webhookRequest(body, signature)); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"duplicate"`) {
			t.Errorf("a retry after the delivery: %d %s, want 200 duplicate", rec.Code, rec.Body)
		}
	}
	a.background.Wait()
	b.background.Wait()
	mails := append(a.mails.sent(), b.mails.sent()...)
	if len(mails) != 1 || mails[0].Code != code || mails[0].To != "ada@example.com" {
		t.Fatalf("mails %+v, want exactly one with the code", mails)
	}
	if n := fake.calls(fakeMagicAuthPath); n != 1 {
		t.Errorf("the magic auth was fetched %d times, want 1", n)
	}
	if n := a.metric("dashauth_webhook_events_total", "delivered") + b.metric("dashauth_webhook_events_total", "delivered"); n != 1 {
		t.Errorf("%d deliveries counted, want 1", n)
	}

	var ev struct{ ID string }
	json.Unmarshal(body, &ev)
	key := replicaKeyPrefix + "webhook:" + ev.ID
	if v, _ := redisCommand(t, rs.URL(), "GET", key).([]byte); string(v) != "done" {
		t.Errorf("%s = %q, want done", key, v)
	}
	const window = 72 * time.Hour
	if ms, _ := redisCommand(t, rs.URL(), "PTTL", key).(int64); ms > window.Milliseconds() || ms < (window-time.Minute).Milliseconds() {
		t.Errorf("%s expires in %v, want about %v", key, time.Duration(ms)*time.Millisecond, window)
	}
}

// TestReplicasRedisDownAndBack: with Redis gone, sign-in and sessions answer 503 (never 500, never a sign-out) and the
// webhook still mails, counted as undeduped; once Redis is back everything works again without a restart.
func TestReplicasRedisDownAndBack(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	fake := newFakeWorkOS(t)
	a, b := newReplicaPair(t, rs)
	w := newWorkOSReplica(t, rs, fake, fake.URL)
	cookies := a.signIn("ada@example.com")
	wantStatus(t, b.get("/v2/user/me/", cookies...), http.StatusOK)

	rs.Kill()
	for _, tc := range []struct {
		name string
		r    response
	}{
		{"login code on A", a.post("/v2/user/login_code/", `{"email":"bob@example.com"}`)},
		{"verify on B", b.verifyCode("ada@example.com", "123456")},
		{"me on B", b.get("/v2/user/me/", cookies...)},
		{"refresh on B", b.post("/v2/user/token_refresh/", "", cookies...)},
		{"logout on A", a.post("/v2/user/logout/", "", cookies...)},
		{"readyz on A", a.get("/readyz")},
		{"WorkOS login URL", w.post(loginURLPath, `{"redirect_url":"`+testRedirectURL+`"}`)},
	} {
		// The login URL writes nothing to the store: it still works.
		want := map[bool]int{true: http.StatusOK, false: http.StatusServiceUnavailable}[tc.name == "WorkOS login URL"]
		if tc.r.Code != want {
			t.Errorf("%s with Redis down: %d %s, want %d", tc.name, tc.r.Code, tc.r.Body, want)
		}
	}
	if cookieNamed(b.post("/v2/user/token_refresh/", "", cookies...).cookies(), "access_token") != nil {
		t.Error("a refresh with Redis down touched the session cookies")
	}

	body, signature, code := newMagicAuthEvent(fake, w.clock.Now())
	if rec := w.serveRaw(webhookRequest(body, signature)); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"delivered"`) {
		t.Fatalf("webhook with Redis down: %d %s, want 200 delivered", rec.Code, rec.Body)
	}
	if sent := w.mails.sent(); len(sent) != 1 || sent[0].Code != code {
		t.Fatalf("mails with Redis down %+v, want the code mailed", sent)
	}
	if n := w.metric("dashauth_webhook_undeduped_total", ""); n != 1 {
		t.Errorf("dashauth_webhook_undeduped_total = %d, want 1", n)
	}

	rs.Restart() // without persistence: every key is gone
	for _, ts := range []*testServer{a, b, w} {
		wantAnswer(t, "readyz with Redis back", ts.get("/readyz"), 200, "status=ok")
	}
	code = a.requestCode("ada@example.com")
	r := b.verifyCode("ada@example.com", code)
	wantResponseType(t, "a code from A on B after Redis came back", r, 200, loginSuccessful)
	wantStatus(t, a.get("/v2/user/me/", r.cookies()...), http.StatusOK)
	body, signature, _ = newMagicAuthEvent(fake, w.clock.Now())
	for _, want := range []string{`"delivered"`, `"duplicate"`} {
		if rec := w.serveRaw(webhookRequest(body, signature)); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("webhook with Redis back: %d %s, want 200 %s", rec.Code, rec.Body, want)
		}
	}
	if n := w.metric("dashauth_webhook_undeduped_total", ""); n != 1 {
		t.Errorf("dashauth_webhook_undeduped_total = %d after Redis came back, want still 1", n)
	}
}

// heldMailer holds each mail until release, then hands it to next.
type heldMailer struct {
	next    mailer
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func newHeldMailer(t *testing.T, next mailer) *heldMailer {
	m := &heldMailer{next: next, entered: make(chan struct{}, 8), gate: make(chan struct{})}
	t.Cleanup(m.release)
	return m
}

func (m *heldMailer) release() { m.once.Do(func() { close(m.gate) }) }

func (m *heldMailer) Send(ctx context.Context, msg codeMail) error {
	m.entered <- struct{}{}
	<-m.gate
	return m.next.Send(ctx, msg)
}

// TestReplicasRedisDiesMidDelivery: Redis dies after the claim, while the mail is with SMTP. The mail was accepted, so
// the answer is 200 (a 503 would have WorkOS mail the code again); the done mark it could not write is counted.
func TestReplicasRedisDiesMidDelivery(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	fake := newFakeWorkOS(t)
	w := newWorkOSReplica(t, rs, fake, fake.URL)
	held := newHeldMailer(t, w.mails)
	w.mail = held
	body, signature, code := newMagicAuthEvent(fake, w.clock.Now())

	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() { answered <- w.serveRaw(webhookRequest(body, signature)) }()
	select {
	case <-held.entered:
	case rec := <-answered:
		t.Fatalf("the delivery answered %d %s without mailing", rec.Code, rec.Body)
	}
	storeErrors := w.metric("dashauth_store_errors_total", "")
	rs.Kill()
	held.release()
	if rec := <-answered; rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"delivered"`) {
		t.Fatalf("answered %d %s after the mail was accepted, want 200 delivered", rec.Code, rec.Body)
	}
	if sent := w.mails.sent(); len(sent) != 1 || sent[0].Code != code {
		t.Fatalf("mails %+v, want one with the code", sent)
	}
	if n := w.metric("dashauth_store_errors_total", ""); n <= storeErrors {
		t.Errorf("the lost done mark was not counted (store errors %d → %d)", storeErrors, n)
	}
}
