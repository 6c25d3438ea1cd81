package main

// Two replicas of the service sharing one real redis-server (see
// redisserver_test.go): whatever one of them remembers, the other must see.
// Each replica has its own test clock; both start at the same instant and
// tests move them together.

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newEmailCodeReplicas starts two email+code replicas with the same JWT
// secret and members file, sharing r.
func newEmailCodeReplicas(t *testing.T, r *testRedis) (a, b *testServer) {
	t.Helper()
	members := writeMembers(t, testMembers)
	env := func() map[string]string { return testEnv("REDIS_URL", r.URL(), "MEMBERS_FILE", members) }
	return newTestServer(t, env()), newTestServer(t, env())
}

// advance moves every replica's clock by d.
func advance(d time.Duration, replicas ...*testServer) {
	for _, ts := range replicas {
		ts.clock.Advance(d)
	}
}

// TestClusterCodeOnOneVerifiesOnOther: a code mailed by one replica signs in
// on the other, once, and the per-address rate limit is one limit.
func TestClusterCodeOnOneVerifiesOnOther(t *testing.T) {
	t.Parallel()
	a, b := newEmailCodeReplicas(t, startRedis(t))
	code := a.requestCode("ada@example.com")
	if code == "" {
		t.Fatal("no code mailed to a member")
	}
	// Within a minute of A's code, B refuses a new one for the same address.
	r := b.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)
	wantStatus(t, r, http.StatusTooManyRequests)

	wantSignin(t, b.verify("ada@example.com", code), http.StatusOK, loginSuccessful)
	wantSignin(t, a.verify("ada@example.com", code), http.StatusBadRequest, linkExpired)
	wantSignin(t, b.verify("ada@example.com", code), http.StatusBadRequest, linkExpired)
}

// TestClusterWrongTriesAreShared: five wrong tries spread over both replicas
// burn the code on both.
func TestClusterWrongTriesAreShared(t *testing.T) {
	t.Parallel()
	a, b := newEmailCodeReplicas(t, startRedis(t))
	code := a.requestCode("ada@example.com")
	for i := range codeMaxTries {
		ts := []*testServer{a, b}[i%2]
		wantSignin(t, ts.verify("ada@example.com", otherCode(code)), http.StatusBadRequest, linkInvalid)
	}
	wantSignin(t, b.verify("ada@example.com", code), http.StatusBadRequest, linkExpired)
}

// TestClusterSessionAndLogout: a session started on one replica is seen by
// the other, and a logout on one ends it on both.
func TestClusterSessionAndLogout(t *testing.T) {
	t.Parallel()
	a, b := newEmailCodeReplicas(t, startRedis(t))
	cookies := a.signIn()

	me := b.get("/v2/user/me/", named(cookies, "access_token")...)
	wantStatus(t, me, http.StatusOK)
	if u, _ := me.json["user"].(map[string]any); u["email"] != "ada@example.com" || me.field("organization_id") != "org_acme" {
		t.Fatalf("B's /me: %s", me.Body.String())
	}
	// B refreshes what A issued.
	r := b.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	wantStatus(t, r, http.StatusOK)
	fresh := r.cookies()
	wantStatus(t, a.get("/v2/user/me/", named(fresh, "access_token")...), http.StatusOK)

	wantStatus(t, a.post("/v2/user/logout/", "", named(fresh, "access_token", "refresh_token")...), http.StatusOK)
	for _, tc := range []struct {
		ts     *testServer
		name   string
		tokens []*http.Cookie
	}{
		{b, "B", fresh},
		{a, "A", fresh},
		{b, "B, first tokens", cookies},
	} {
		if r := tc.ts.get("/v2/user/me/", named(tc.tokens, "access_token")...); r.Code != http.StatusUnauthorized {
			t.Errorf("%s /me after logout on A: %d %s", tc.name, r.Code, r.Body)
		}
		if r := tc.ts.post("/v2/user/token_refresh/", "", named(tc.tokens, "refresh_token")...); r.Code != http.StatusUnauthorized {
			t.Errorf("%s refresh after logout on A: %d %s", tc.name, r.Code, r.Body)
		}
	}
}

// TestClusterRefreshReplayRevokes: a spent refresh token replayed on the other
// replica within REFRESH_REUSE_INTERVAL only fails; replayed later it revokes
// the session, and the replica that issued the new tokens sees that.
func TestClusterRefreshReplayRevokes(t *testing.T) {
	t.Parallel()
	a, b := newEmailCodeReplicas(t, startRedis(t))
	cookies := a.signIn()
	r := a.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	wantStatus(t, r, http.StatusOK)
	fresh := r.cookies()

	// A concurrent refresh from another tab, landing on B.
	r = b.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	wantStatus(t, r, http.StatusUnauthorized)
	wantStatus(t, a.get("/v2/user/me/", named(fresh, "access_token")...), http.StatusOK)

	advance(a.cfg.RefreshReuse+time.Second, a, b)
	r = b.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)
	wantStatus(t, r, http.StatusUnauthorized)
	if n := b.metrics.get("dashauth_refresh_reuse_total", "action", "revoked"); n != 1 {
		t.Fatalf("B revoked %d sessions, want 1", n)
	}
	if r := a.get("/v2/user/me/", named(fresh, "access_token")...); r.Code != http.StatusUnauthorized {
		t.Errorf("A /me after B revoked the session: %d %s", r.Code, r.Body)
	}
	if r := a.post("/v2/user/token_refresh/", "", named(fresh, "refresh_token")...); r.Code != http.StatusUnauthorized {
		t.Errorf("A refresh after B revoked the session: %d %s", r.Code, r.Body)
	}
}

// newWebhookReplicas starts two WorkOS-mode replicas sharing r and fake.
func newWebhookReplicas(t *testing.T, r *testRedis, fake *fakeWorkOS, extraEnv ...string) (a, b *testServer) {
	t.Helper()
	env := append([]string{"REDIS_URL", r.URL()}, extraEnv...)
	return newWorkOSTestServer(t, fake, env...), newWorkOSTestServer(t, fake, env...)
}

// sumOutcomes adds the replicas' webhook outcomes.
func sumOutcomes(t *testing.T, replicas ...*testServer) outcomes {
	t.Helper()
	var o outcomes
	for _, ts := range replicas {
		o.delivered += metric(t, ts, `dashauth_webhook_events_total{outcome="delivered"}`)
		o.duplicate += metric(t, ts, `dashauth_webhook_events_total{outcome="duplicate"}`)
		o.ignored += metric(t, ts, `dashauth_webhook_events_total{outcome="ignored"}`)
		o.rejected += metric(t, ts, `dashauth_webhook_events_total{outcome="rejected"}`)
		o.failed += metric(t, ts, `dashauth_webhook_events_total{outcome="failed"}`)
	}
	return o
}

// TestClusterWebhookOneMail: one event delivered to both replicas at once,
// four times each, with the mail held until every other answer is in: one
// mail through SMTP, 409 to every overlapping copy, and a done mark in Redis
// for WorkOS's 3-day retry window.
func TestClusterWebhookOneMail(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	fake := newFakeWorkOS(t)
	srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true})
	c := srv.Config()
	a, b := newWebhookReplicas(t, rs, fake,
		"SMTP_HOST", c.Host, "SMTP_PORT", strconv.Itoa(c.Port), "SMTP_FROM", c.From, "SMTP_TLS", "starttls")
	clock := &seqClock{}
	gate := newGatedMailer(t, configuredMailer(t, a, srv, 0), clock, nil)
	// Both replicas mail through the gate: whichever wins the claim is held.
	a.mail, b.mail = gate, gate

	d := newDelivery(t, a, fake)
	var targets []*testServer
	for range 4 {
		targets = append(targets, a, b)
	}
	got := overlap(t, gate, clock, targets, d.body)
	wantOneDelivery(t, got, gate.acceptedAt())
	if n := srv.Count(); n != 1 {
		t.Fatalf("the SMTP server got %d mails, want 1", n)
	}
	if n := fake.calls(fakeMagicAuthPath); n != 1 {
		t.Errorf("magic auth fetched %d times, want 1", n)
	}

	for _, ts := range []*testServer{a, b} {
		wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "duplicate")
	}
	if n := srv.Count(); n != 1 {
		t.Fatalf("the SMTP server got %d mails after the retries, want 1", n)
	}
	if got, want := sumOutcomes(t, a, b), (outcomes{delivered: 1, duplicate: 9}); got != want {
		t.Errorf("outcomes over both replicas %+v, want %+v", got, want)
	}

	admin := newAdmin(t, rs)
	keys, _ := admin.do("KEYS", "*"+d.eventID+"*").([]any)
	if len(keys) != 1 {
		t.Fatalf("keys with the event id: %q, want exactly one", keys)
	}
	key, _ := keys[0].([]byte)
	if !strings.HasPrefix(string(key), "dashauth:") {
		t.Errorf("done key %q is not under dashauth:", key)
	}
	// PTTL counts down in real time from the moment of the mark.
	const window = 259200 * time.Second
	if left := admin.pttl(string(key)); left > window || left < window-time.Minute {
		t.Errorf("done key %q PTTL %v, want about %v", key, left, window)
	}
}

// TestClusterRedisDown: with Redis gone the webhook still mails (and counts
// it), sign-in and sessions answer 503, never 500; once Redis is back both
// work again without a restart of the service.
func TestClusterRedisDown(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	fake := newFakeWorkOS(t)
	w, _ := newWebhookReplicas(t, rs, fake)
	e, f := newEmailCodeReplicas(t, rs)

	first := newDelivery(t, w, fake)
	wantAnswer(t, w.webhook(first.body), http.StatusOK, "status", "delivered")
	cookies := e.signIn()
	wantStatus(t, f.get("/v2/user/me/", named(cookies, "access_token")...), http.StatusOK)

	rs.Kill()

	d := newDelivery(t, w, fake)
	wantAnswer(t, w.webhook(d.body), http.StatusOK, "status", "delivered")
	if n := len(w.mails.sent()); n != 2 {
		t.Fatalf("%d mails, want 2", n)
	}
	if n := metric(t, w, "dashauth_webhook_undeduped_total"); n != 1 {
		t.Errorf("undeduped = %d, want 1", n)
	}
	for _, tc := range []struct {
		name string
		r    response
	}{
		{"login code", e.post("/v2/user/login_code/", `{"email":"ada@example.com"}`)},
		{"verify", f.verify("ada@example.com", "123456")},
		{"me", f.get("/v2/user/me/", named(cookies, "access_token")...)},
		{"refresh", f.post("/v2/user/token_refresh/", "", named(cookies, "refresh_token")...)},
		{"logout", e.post("/v2/user/logout/", "", named(cookies, "access_token")...)},
		{"readyz", e.get("/readyz")},
	} {
		if tc.r.Code != http.StatusServiceUnavailable {
			t.Errorf("%s with Redis down: %d %s, want 503", tc.name, tc.r.Code, tc.r.Body)
		}
	}

	rs.Restart() // without persistence: every key is gone

	for _, ts := range []*testServer{w, e, f} {
		wantStatus(t, ts.get("/readyz"), http.StatusOK)
	}
	again := newDelivery(t, w, fake)
	wantAnswer(t, w.webhook(again.body), http.StatusOK, "status", "delivered")
	wantAnswer(t, w.webhook(again.body), http.StatusOK, "status", "duplicate")
	if n := metric(t, w, "dashauth_webhook_undeduped_total"); n != 1 {
		t.Errorf("undeduped = %d after Redis came back, want still 1", n)
	}
	code := e.requestCode("ada@example.com")
	if code == "" {
		t.Fatal("no code mailed after Redis came back")
	}
	r := f.verify("ada@example.com", code)
	wantSignin(t, r, http.StatusOK, loginSuccessful)
	wantStatus(t, e.get("/v2/user/me/", named(r.cookies(), "access_token")...), http.StatusOK)
}

// TestClusterRedisDiesMidDelivery: Redis dies after the claim, while the mail
// is in flight. The mail was accepted, so the answer is 200 (a 503 would make
// WorkOS mail the code again); the done mark it could not write is counted.
func TestClusterRedisDiesMidDelivery(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	fake := newFakeWorkOS(t)
	w, _ := newWebhookReplicas(t, rs, fake)
	clock := &seqClock{}
	gate := newGatedMailer(t, w.mails, clock, nil)
	w.mail = gate
	d := newDelivery(t, w, fake)

	results := make(chan orderedResponse, 1)
	req := webhookRequest(w, d.body)
	go func() { results <- serveOrdered(w, req, clock, "delivery") }()
	select {
	case <-gate.entered:
	case r := <-results:
		t.Fatalf("the delivery answered %d %q without reaching the mailer", r.status, r.field)
	}
	errorsBefore := w.metrics.get("dashauth_store_errors_total", "", "")
	rs.Kill()
	gate.open()
	r := <-results
	if r.status != http.StatusOK || r.field != "delivered" {
		t.Fatalf("answered %d %q after the mail was accepted, want 200 delivered", r.status, r.field)
	}
	if n := len(w.mails.sent()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	if n := w.metrics.get("dashauth_store_errors_total", "", ""); n <= errorsBefore {
		t.Errorf("the lost done mark was not counted (store errors %d → %d)", errorsBefore, n)
	}
}
