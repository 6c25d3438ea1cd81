package main

// Tests of the magic_auth.created delivery (CONTRACT.md, "Webhook"): through the
// real mux, with signed requests, a fake WorkOS API and, where the wire matters,
// the real smtpMailer against a test SMTP server.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const webhookPath = "/v1/workos_webhook/"

// signWebhook is a WorkOS-Signature header for body, signed with secret at t, as
// WorkOS signs: "t=<unix ms>, v1=<hex HMAC-SHA256 of "<t>.<body>">".
func signWebhook(body []byte, secret string, t time.Time) string {
	ts := strconv.FormatInt(t.UnixMilli(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ", v1=" + hex.EncodeToString(m.Sum(nil))
}

// delivery is one magic auth registered with the fake WorkOS, and the signed
// magic_auth.created event that announces it.
type delivery struct {
	eventID, magicAuthID, email, code string
	expires                           time.Time
	body                              string
}

// newDelivery registers a magic auth valid for 10 minutes from the server's now.
func newDelivery(t *testing.T, ts *testServer, fake *fakeWorkOS) delivery {
	t.Helper()
	code, err := newCode()
	if err != nil {
		t.Fatal(err)
	}
	d := delivery{
		eventID:     "event_" + fakeULID(),
		magicAuthID: "magic_auth_" + fakeULID(),
		email:       "ada@example.com",
		code:        code,
		expires:     ts.clock.Now().Add(10 * time.Minute),
	}
	fake.addMagicAuth(d.magicAuthID, d.email, d.code, d.expires)
	d.body = eventBody(d.eventID, "magic_auth.created", d.magicAuthID, d.email, d.expires)
	return d
}

// eventBody is a WorkOS event shaped like the ones WorkOS sends.
func eventBody(eventID, event, dataID, email string, expires time.Time) string {
	const workosTime = "2006-01-02T15:04:05.000Z07:00"
	b, err := json.Marshal(map[string]any{
		"id":    eventID,
		"event": event,
		"data": map[string]any{
			"object": "magic_auth", "id": dataID, "user_id": "user_01JCDE3FGHJKMNPQRSTVWXYZ03",
			"email": email, "expires_at": expires.UTC().Format(workosTime),
			"created_at": expires.Add(-10 * time.Minute).UTC().Format(workosTime),
			"updated_at": expires.Add(-10 * time.Minute).UTC().Format(workosTime),
		},
		"created_at": expires.Add(-10 * time.Minute).UTC().Format(workosTime),
	})
	if err != nil {
		panic(err) // unreachable: plain values
	}
	return string(b)
}

// webhookRequest is body POSTed to the webhook, signed now with the test secret.
func webhookRequest(ts *testServer, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, webhookPath, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.9:4321"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("WorkOS-Signature", signWebhook([]byte(body), testWorkOSWebhookSecret, ts.clock.Now()))
	return r
}

// webhook delivers body, signed now with the test secret.
func (ts *testServer) webhook(body string) response {
	ts.t.Helper()
	return ts.do(request{method: http.MethodPost, path: webhookPath, body: body, header: map[string]string{
		"WorkOS-Signature": signWebhook([]byte(body), testWorkOSWebhookSecret, ts.clock.Now()),
	}})
}

// wantAnswer checks a webhook answer's status and its status or error field.
func wantAnswer(t *testing.T, r response, status int, field, value string) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.field(field); got != value {
		t.Fatalf("%s %q, want %q; body %s", field, got, value, r.Body.String())
	}
}

// newDeliveryServer is a WorkOS-mode server whose mail goes through the real
// smtpMailer, configured from SMTP_* like in production (STARTTLS), to a test
// SMTP server that misbehaves as fail says.
func newDeliveryServer(t *testing.T, fail testSMTPFailure, extraEnv ...string) (*testServer, *fakeWorkOS, *testSMTPServer) {
	t.Helper()
	fake := newFakeWorkOS(t)
	srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Fail: fail})
	c := srv.Config()
	env := append([]string{
		"SMTP_HOST", c.Host, "SMTP_PORT", strconv.Itoa(c.Port), "SMTP_FROM", c.From, "SMTP_TLS", "starttls",
	}, extraEnv...)
	ts := newWorkOSTestServer(t, fake, env...)
	ts.mail = configuredMailer(t, ts, srv, 0)
	return ts, fake, srv
}

// configuredMailer is the smtpMailer the server's SMTP_* configuration makes,
// trusting srv's certificate, with timeout when it is not 0.
func configuredMailer(t *testing.T, ts *testServer, srv *testSMTPServer, timeout time.Duration) mailer {
	t.Helper()
	cfg := ts.cfg.SMTP
	cfg.RootCAs = srv.CertPool()
	if timeout != 0 {
		cfg.Timeout = timeout
	}
	m, err := newSMTPMailer(cfg)
	if err != nil {
		t.Fatalf("newSMTPMailer: %v", err)
	}
	return m
}

// metric reads one series from GET /metrics; a missing series fails the test.
func metric(t *testing.T, ts *testServer, series string) uint64 {
	t.Helper()
	r := ts.get("/metrics")
	wantStatus(t, r, http.StatusOK)
	for _, line := range strings.Split(r.Body.String(), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if ok && name == series {
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				t.Fatalf("metrics %s: %q", series, value)
			}
			return n
		}
	}
	t.Fatalf("metrics lack %s:\n%s", series, r.Body.String())
	return 0
}

// outcomes are the dashauth_webhook_events_total series.
type outcomes struct{ delivered, duplicate, ignored, rejected, failed uint64 }

func wantOutcomes(t *testing.T, ts *testServer, want outcomes) {
	t.Helper()
	got := outcomes{}
	for name, dst := range map[string]*uint64{
		"delivered": &got.delivered, "duplicate": &got.duplicate, "ignored": &got.ignored,
		"rejected": &got.rejected, "failed": &got.failed,
	} {
		*dst = metric(t, ts, `dashauth_webhook_events_total{outcome="`+name+`"}`)
	}
	if got != want {
		t.Fatalf("webhook outcomes %+v, want %+v", got, want)
	}
}

// memoryKeys returns the keys of the server's memory store that contain part,
// with the time each expires, so tests check what is stored without assuming
// how the key is spelled beyond the contract.
func memoryKeys(t *testing.T, ts *testServer, part string) map[string]time.Time {
	t.Helper()
	ms, ok := ts.store.(*memoryStore)
	if !ok {
		t.Fatalf("store is %T, not the memory store", ts.store)
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	keys := map[string]time.Time{}
	for k, e := range ms.entries {
		if strings.Contains(k, part) && ts.clock.Now().Before(e.expires) {
			keys[k] = e.expires
		}
	}
	return keys
}

// wantNoClaim fails when anything about the event is left in the store: a
// failed delivery must release its claim so that WorkOS's retry delivers.
func wantNoClaim(t *testing.T, ts *testServer, eventID string) {
	t.Helper()
	if keys := memoryKeys(t, ts, eventID); len(keys) != 0 {
		t.Fatalf("a failed delivery left %v in the store", keys)
	}
}

// wantDoneFor checks that exactly one key, under prefix, holds the event as done
// for exactly ttl from now: present a millisecond before, gone at ttl.
func wantDoneFor(t *testing.T, ts *testServer, prefix, eventID string, ttl time.Duration) {
	t.Helper()
	keys := memoryKeys(t, ts, eventID)
	if len(keys) != 1 {
		t.Fatalf("keys with the event id: %v, want exactly one", keys)
	}
	for key, expires := range keys {
		if !strings.HasPrefix(key, prefix) {
			t.Errorf("done key %q is not under the prefix %q", key, prefix)
		}
		if left := expires.Sub(ts.clock.Now()); left != ttl {
			t.Errorf("done key %q expires in %v, want %v", key, left, ttl)
		}
		ctx := context.Background()
		ts.clock.Advance(ttl - time.Millisecond)
		if v, ok, err := ts.store.Get(ctx, key); err != nil || !ok || v != claimDone {
			t.Errorf("a millisecond before its TTL, done key %q = %q, %v, %v", key, v, ok, err)
		}
		ts.clock.Advance(time.Millisecond)
		if _, ok, _ := ts.store.Get(ctx, key); ok {
			t.Errorf("done key %q outlived its TTL", key)
		}
	}
}

// wantCodeNotLogged fails when the code appears in the service's log: a
// login code is a credential.
func wantCodeNotLogged(t *testing.T, ts *testServer, code string) {
	t.Helper()
	if regexp.MustCompile(`\b` + code + `\b`).MatchString(ts.logs.String()) {
		t.Errorf("the code %s is in the log:\n%s", code, ts.logs.String())
	}
}

// smtpMail is a received mail taken apart.
type smtpMail struct {
	header      mail.Header
	contentType string
	plain, html string
}

func parseMail(t *testing.T, raw []byte) smtpMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("mail does not parse: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("mail Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	out := smtpMail{header: msg.Header, contentType: mt}
	if mt != "multipart/alternative" {
		return out
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("mail part: %v", err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("mail part body: %v", err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch pt {
		case "text/plain":
			out.plain = string(body)
		case "text/html":
			out.html = string(body)
		default:
			t.Fatalf("unexpected mail part %q", pt)
		}
	}
	return out
}

// TestWebhookDeliversMagicAuthCode is the main path: the code is fetched and
// mailed, the answer is 200 only once SMTP has the mail, and the event is
// remembered as done for WorkOS's 3-day retry window.
func TestWebhookDeliversMagicAuthCode(t *testing.T) {
	t.Parallel()
	ts, fake, srv := newDeliveryServer(t, testSMTPFailure{})
	d := newDelivery(t, ts, fake)

	r := ts.webhook(d.body)
	wantAnswer(t, r, http.StatusOK, "status", "delivered")
	// The handler has returned, so the mail was accepted before the answer.
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails at the time of the 200, want 1", len(msgs))
	}
	if n := fake.calls(fakeMagicAuthPath); n != 1 {
		t.Fatalf("magic auth fetched %d times, want 1", n)
	}
	got := msgs[0]
	if got.From != "dashauth@example.com" || len(got.To) != 1 || got.To[0] != d.email || !got.TLS {
		t.Fatalf("envelope from %q to %q, TLS %v", got.From, got.To, got.TLS)
	}

	m := parseMail(t, got.Data)
	if m.contentType != "multipart/alternative" {
		t.Fatalf("mail is %q, want multipart/alternative", m.contentType)
	}
	if id := m.header.Get("Message-ID"); !strings.Contains(id, d.eventID) || !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, ">") {
		t.Errorf("Message-ID %q does not carry the event id %q", id, d.eventID)
	}
	if _, err := m.header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if from := m.header.Get("From"); from != "dashauth@example.com" {
		t.Errorf("From %q", from)
	}
	if to := m.header.Get("To"); to != d.email {
		t.Errorf("To %q", to)
	}
	if !regexp.MustCompile(`(?m)^` + d.code + `\r?$`).MatchString(m.plain) {
		t.Errorf("the code %s is not on a line of its own in the plain part:\n%s", d.code, m.plain)
	}
	// How long the code is valid: WorkOS's codes live 10 minutes.
	if !strings.Contains(m.plain, "10 minutes") || !strings.Contains(m.html, "10 minutes") {
		t.Errorf("the mail does not say the code is valid for 10 minutes:\n%s\n%s", m.plain, m.html)
	}
	if !strings.Contains(m.plain, testWorkOSSigninBaseURL) || !strings.Contains(m.html, `href="`+testWorkOSSigninBaseURL+`"`) {
		t.Errorf("the mail does not link to WORKOS_SIGNIN_BASE_URL:\n%s\n%s", m.plain, m.html)
	}
	if !strings.Contains(m.html, d.code) {
		t.Errorf("the HTML part lacks the code:\n%s", m.html)
	}
	wantOutcomes(t, ts, outcomes{delivered: 1})
	if n := metric(t, ts, `dashauth_mails_total{result="sent"}`); n != 1 {
		t.Errorf("mails sent = %d, want 1", n)
	}

	// WorkOS retries the same event: no second fetch, no second mail.
	hits := metric(t, ts, "dashauth_dedup_hits_total")
	r = ts.webhook(d.body)
	wantAnswer(t, r, http.StatusOK, "status", "duplicate")
	if n := srv.Count(); n != 1 {
		t.Fatalf("%d mails after a retry, want 1", n)
	}
	if n := fake.calls(fakeMagicAuthPath); n != 1 {
		t.Fatalf("a retry fetched the magic auth again (%d calls)", n)
	}
	if got := metric(t, ts, "dashauth_dedup_hits_total"); got != hits+1 {
		t.Errorf("dedup hits %d → %d, want one more", hits, got)
	}
	wantOutcomes(t, ts, outcomes{delivered: 1, duplicate: 1})

	// Done for exactly 259200 s, under the default prefix.
	wantDoneFor(t, ts, "dashauth:", d.eventID, 259200*time.Second)
	wantCodeNotLogged(t, ts, d.code)
}

// TestWebhookDoneKeyUnderPrefix: the done mark lives under REDIS_KEY_PREFIX.
func TestWebhookDoneKeyUnderPrefix(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake, "REDIS_KEY_PREFIX", "tenant-7:")
	d := newDelivery(t, ts, fake)
	wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
	if n := len(ts.mails.sent()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	wantDoneFor(t, ts, "tenant-7:", d.eventID, 259200*time.Second)
}

// TestMagicAuthMailValidity: the mail says how long the code is still valid
// when it is sent, never more, and until when.
func TestMagicAuthMailValidity(t *testing.T) {
	t.Parallel()
	ts := newWorkOSTestServer(t, newFakeWorkOS(t))
	now := ts.clock.Now()
	for _, tc := range []struct {
		left time.Duration
		want string
	}{
		{10 * time.Minute, "valid for 10 minutes (until 12:10 UTC)"},
		{10*time.Minute - time.Millisecond, "valid for 9 minutes (until 12:09 UTC)"},
		{6*time.Minute + 30*time.Second, "valid for 6 minutes (until 12:06 UTC)"},
		{90 * time.Second, "valid for 1 minute (until 12:01 UTC)"},
		{59 * time.Second, "valid for less than a minute (until 12:00 UTC)"},
	} {
		m := ts.magicAuthMail("event_"+fakeULID(), "ada@example.com", "123456", now.Add(tc.left))
		if !strings.Contains(m.Text, tc.want) || !strings.Contains(m.HTML, tc.want) {
			t.Errorf("%v left: mail says\n%s\n%s\nwant %q", tc.left, m.Text, m.HTML, tc.want)
		}
		if err := checkMessage(m); err != nil {
			t.Errorf("%v left: %v", tc.left, err)
		}
	}
}

// TestWebhookIgnoresOtherEvents: any other event answers 200 and does nothing.
func TestWebhookIgnoresOtherEvents(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	d := newDelivery(t, ts, fake)
	for i, event := range []string{"user.created", "session.created", "magic_auth.updated", "MAGIC_AUTH.CREATED", "magic_auth.created ", ""} {
		body := eventBody("event_"+fakeULID(), event, d.magicAuthID, d.email, d.expires)
		wantAnswer(t, ts.webhook(body), http.StatusOK, "status", "ignored")
		wantOutcomes(t, ts, outcomes{ignored: uint64(i + 1)})
	}
	wantNothingDelivered(t, fake, ts, "other events")
}

// TestWebhookExpiredMagicAuth: a code that expired before the event arrived is
// not mailed, and the event is done (WorkOS need not retry it).
func TestWebhookExpiredMagicAuth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		left time.Duration // from the server's now to expiry
	}{
		{"expired a second ago", -time.Second},
		{"expires this instant", 0},
		{"expired days ago", -72 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			ts := newWorkOSTestServer(t, fake)
			d := newDelivery(t, ts, fake)
			fake.addMagicAuth(d.magicAuthID, d.email, d.code, ts.clock.Now().Add(tc.left))
			wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "ignored")
			if n := len(ts.mails.sent()); n != 0 {
				t.Fatalf("an expired code was mailed (%d mails)", n)
			}
			if n := fake.calls(fakeMagicAuthPath); n != 1 {
				t.Fatalf("magic auth fetched %d times, want 1", n)
			}
			wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "duplicate")
			if n := fake.calls(fakeMagicAuthPath); n != 1 {
				t.Fatalf("the retry fetched again (%d calls)", n)
			}
			wantOutcomes(t, ts, outcomes{ignored: 1, duplicate: 1})
		})
	}
}

// TestWebhookWorkOSFailures: when WorkOS fails or stalls the answer is 503, the
// claim is released, and WorkOS's retry delivers exactly one mail.
func TestWebhookWorkOSFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault fakeFault
		// stalls: the fault only ends when the client gives up, so the
		// attempt runs with a short WorkOS client timeout.
		stalls bool
	}{
		{"500", fault500, false},
		{"invalid JSON", faultInvalidJSON, false},
		{"huge body", faultHugeBody, false},
		{"huge error body", faultHugeErrorBody, false},
		{"stall", faultStall, true},
		{"stall mid-body", faultStallBody, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			ts := newWorkOSTestServer(t, fake)
			d := newDelivery(t, ts, fake)
			fake.setFaultTimes(fakeMagicAuthPath, tc.fault, 1)
			client := ts.workos.um.HTTPClient
			if tc.stalls {
				// The SDK's http.Client is the only WorkOS timeout the
				// server exposes; workosTimeout (10 s) is a constant.
				ts.workos.um.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond}
			}
			wantAnswer(t, ts.webhook(d.body), http.StatusServiceUnavailable, "error", "delivery_failed")
			ts.workos.um.HTTPClient = client
			if n := len(ts.mails.sent()); n != 0 {
				t.Fatalf("%d mails after a failed fetch", n)
			}
			wantNoClaim(t, ts, d.eventID)
			wantOutcomes(t, ts, outcomes{failed: 1})

			wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
			wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "duplicate")
			if n := len(ts.mails.sent()); n != 1 {
				t.Fatalf("%d mails in total, want 1", n)
			}
			if n := fake.calls(fakeMagicAuthPath); n != 2 {
				t.Fatalf("magic auth fetched %d times, want 2", n)
			}
			wantOutcomes(t, ts, outcomes{failed: 1, delivered: 1, duplicate: 1})
			wantCodeNotLogged(t, ts, d.code)
		})
	}
}

// TestWebhookUnmailableMagicAuth: a magic auth WorkOS returns that cannot be
// mailed (unknown, bad address, bad code, no expiry) is a failure WorkOS should
// retry, and nothing reaches the mailer.
func TestWebhookUnmailableMagicAuth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(m *fakeMagicAuth)
	}{
		{"unknown id", nil},
		{"address with a header", func(m *fakeMagicAuth) { m.Email = "ada@example.com\r\nBcc: eve@example.com" }},
		{"two addresses", func(m *fakeMagicAuth) { m.Email = "ada@example.com, eve@example.com" }},
		{"empty address", func(m *fakeMagicAuth) { m.Email = "" }},
		{"code with a newline", func(m *fakeMagicAuth) { m.Code = "12345\n6" }},
		{"five-digit code", func(m *fakeMagicAuth) { m.Code = "12345" }},
		{"empty code", func(m *fakeMagicAuth) { m.Code = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			ts := newWorkOSTestServer(t, fake)
			d := newDelivery(t, ts, fake)
			m := fakeMagicAuth{ID: d.magicAuthID, UserID: "user_" + fakeULID(), Email: d.email, Code: d.code,
				ExpiresAt: d.expires, CreatedAt: d.expires.Add(-10 * time.Minute)}
			if tc.change == nil {
				// The event names a magic auth WorkOS does not know.
				d.body = eventBody(d.eventID, "magic_auth.created", "magic_auth_"+fakeULID(), d.email, d.expires)
			} else {
				tc.change(&m)
				fake.putMagicAuth(m)
			}
			wantAnswer(t, ts.webhook(d.body), http.StatusServiceUnavailable, "error", "delivery_failed")
			if n := len(ts.mails.sent()); n != 0 {
				t.Fatalf("%d mails", n)
			}
			wantNoClaim(t, ts, d.eventID)
			wantOutcomes(t, ts, outcomes{failed: 1})
		})
	}
}

// TestWebhookSMTPFailures: SMTP refusing (4xx, 5xx) or dropping the connection
// at any stage, or stalling, answers 503 with the claim released, and the
// retry delivers exactly one mail in total.
func TestWebhookSMTPFailures(t *testing.T) {
	t.Parallel()
	type smtpCase struct {
		name string
		fail testSMTPFailure
	}
	var cases []smtpCase
	for _, stage := range []smtpStage{stageGreeting, stageHello, stageMail, stageRcpt, stageData, stageEnd} {
		cases = append(cases,
			smtpCase{fmt.Sprintf("%s 421", stage), testSMTPFailure{Stage: stage, Code: 421, Times: 1}},
			smtpCase{fmt.Sprintf("%s 451", stage), testSMTPFailure{Stage: stage, Code: 451, Times: 1}},
			smtpCase{fmt.Sprintf("%s 550", stage), testSMTPFailure{Stage: stage, Code: 550, Times: 1}},
			smtpCase{fmt.Sprintf("%s 554", stage), testSMTPFailure{Stage: stage, Code: 554, Times: 1}},
			smtpCase{fmt.Sprintf("%s dropped", stage), testSMTPFailure{Stage: stage, Drop: true, Times: 1}},
		)
	}
	for _, stage := range []smtpStage{stageGreeting, stageData, stageEnd} {
		cases = append(cases, smtpCase{fmt.Sprintf("%s stalled", stage), testSMTPFailure{Stage: stage, Stall: true, Times: 1}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts, fake, srv := newDeliveryServer(t, tc.fail)
			d := newDelivery(t, ts, fake)
			normal := ts.mail
			if tc.fail.Stall {
				// The stalled exchange ends at the mailer's deadline.
				ts.mail = configuredMailer(t, ts, srv, 300*time.Millisecond)
			}
			wantAnswer(t, ts.webhook(d.body), http.StatusServiceUnavailable, "error", "delivery_failed")
			ts.mail = normal
			if n := srv.Count(); n != 0 {
				t.Fatalf("the failing server accepted %d mails", n)
			}
			wantNoClaim(t, ts, d.eventID)
			wantOutcomes(t, ts, outcomes{failed: 1})

			wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
			wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "duplicate")
			if n := srv.Count(); n != 1 {
				t.Fatalf("%d mails in total, want 1", n)
			}
			wantOutcomes(t, ts, outcomes{failed: 1, delivered: 1, duplicate: 1})
			wantCodeNotLogged(t, ts, d.code)
			if sent, failed := metric(t, ts, `dashauth_mails_total{result="sent"}`), metric(t, ts, `dashauth_mails_total{result="failed"}`); sent != 1 || failed != 1 {
				t.Errorf("mails sent %d failed %d, want 1 and 1", sent, failed)
			}
		})
	}
}

// TestWebhookSMTPQuitFails: once the server accepted the mail a failed QUIT
// changes nothing: 200, done, and no second mail on retry.
func TestWebhookSMTPQuitFails(t *testing.T) {
	t.Parallel()
	for _, fail := range []testSMTPFailure{
		{Stage: stageQuit, Code: 554},
		{Stage: stageQuit, Drop: true},
	} {
		ts, fake, srv := newDeliveryServer(t, fail)
		d := newDelivery(t, ts, fake)
		wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
		wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "duplicate")
		if n := srv.Count(); n != 1 {
			t.Fatalf("QUIT %+v: %d mails, want 1", fail, n)
		}
	}
}

// TestWebhookStaleClaim: a claim left "processing" by a replica that crashed
// mid-delivery holds the event off (409) only until its lease runs out.
func TestWebhookStaleClaim(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	d := newDelivery(t, ts, fake)
	if err := ts.store.Set(context.Background(), ts.key("webhook", d.eventID), claimProcessing, webhookLease); err != nil {
		t.Fatal(err)
	}
	wantAnswer(t, ts.webhook(d.body), http.StatusConflict, "error", "delivery_in_progress")
	ts.clock.Advance(webhookLease - time.Millisecond)
	wantAnswer(t, ts.webhook(d.body), http.StatusConflict, "error", "delivery_in_progress")
	wantNothingDelivered(t, fake, ts, "a claimed event")
	ts.clock.Advance(time.Millisecond)
	wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
	if n := len(ts.mails.sent()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	if webhookLease != 60*time.Second {
		t.Errorf("lease %v, want about a minute (60 s)", webhookLease)
	}
	wantOutcomes(t, ts, outcomes{duplicate: 2, delivered: 1})
}

// seqClock numbers events, so a test can tell what happened before what
// without reading a clock.
type seqClock struct{ n atomic.Int64 }

func (c *seqClock) tick() int64 { return c.n.Add(1) }

// gatedMailer holds the first Send until release is closed, then passes it to
// next, or fails it with holdErr. Later Sends go to next at once, so a second
// mail shows up as a second mail instead of a hang. It notes the tick at
// which each mail was accepted.
type gatedMailer struct {
	next    mailer
	clock   *seqClock
	holdErr error
	entered chan struct{} // closed when the first Send arrives
	release chan struct{}

	mu       sync.Mutex
	sends    int
	accepted []int64
}

func newGatedMailer(t *testing.T, next mailer, clock *seqClock, holdErr error) *gatedMailer {
	g := &gatedMailer{next: next, clock: clock, holdErr: holdErr,
		entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(g.open) // never leave a handler stuck
	return g
}

func (g *gatedMailer) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

func (g *gatedMailer) Send(ctx context.Context, m message) error {
	g.mu.Lock()
	g.sends++
	first := g.sends == 1
	g.mu.Unlock()
	if first {
		close(g.entered)
		<-g.release
		if g.holdErr != nil {
			return g.holdErr
		}
	}
	if err := g.next.Send(ctx, m); err != nil {
		return err
	}
	g.mu.Lock()
	g.accepted = append(g.accepted, g.clock.tick())
	g.mu.Unlock()
	return nil
}

func (g *gatedMailer) acceptedAt() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int64(nil), g.accepted...)
}

// orderedResponse is a webhook answer and the tick at which its status was written.
type orderedResponse struct {
	status int
	field  string // "status" or "error" value
	at     int64
	from   string
}

// orderedWriter notes the tick of the status line.
type orderedWriter struct {
	*httptest.ResponseRecorder
	clock *seqClock
	at    int64
}

func (w *orderedWriter) WriteHeader(code int) {
	if w.at == 0 {
		w.at = w.clock.tick()
	}
	w.ResponseRecorder.WriteHeader(code)
}

func (w *orderedWriter) Write(b []byte) (int, error) {
	if w.at == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseRecorder.Write(b)
}

// serveOrdered runs one request; it is safe to call from any goroutine.
func serveOrdered(ts *testServer, r *http.Request, clock *seqClock, from string) orderedResponse {
	w := &orderedWriter{ResponseRecorder: httptest.NewRecorder(), clock: clock}
	ts.handler.ServeHTTP(w, r)
	var body map[string]string
	json.Unmarshal(w.Body.Bytes(), &body)
	field := body["status"]
	if field == "" {
		field = body["error"]
	}
	return orderedResponse{status: w.Code, field: field, at: w.at, from: from}
}

// overlap sends one request per server at once and holds the first mail
// until every other answer is in, so every duplicate overlaps the delivery.
// It returns the answers, the held one last.
func overlap(t *testing.T, gate *gatedMailer, clock *seqClock, targets []*testServer, body string) []orderedResponse {
	t.Helper()
	results := make(chan orderedResponse, len(targets))
	for i, ts := range targets {
		r := webhookRequest(ts, body)
		go func() { results <- serveOrdered(ts, r, clock, fmt.Sprint("request ", i)) }()
	}
	var got []orderedResponse
	for held := false; !held; {
		select {
		case <-gate.entered:
			held = true
		case r := <-results:
			got = append(got, r)
			if len(got) == len(targets) {
				t.Fatalf("no request reached the mailer: %+v", got)
			}
		}
	}
	for len(got) < len(targets)-1 {
		got = append(got, <-results)
	}
	gate.open()
	return append(got, <-results)
}

// wantOneDelivery checks answers from overlap: the held request delivered,
// after the mail was accepted; every other one answered 409 (never 2xx while
// the delivery was in flight).
func wantOneDelivery(t *testing.T, got []orderedResponse, accepted []int64) {
	t.Helper()
	if len(accepted) != 1 {
		t.Fatalf("%d mails accepted, want 1; answers %+v", len(accepted), got)
	}
	delivered := 0
	for _, r := range got {
		switch {
		case r.status == http.StatusOK && r.field == "delivered":
			delivered++
		case r.status == http.StatusConflict && r.field == "delivery_in_progress":
		default:
			t.Errorf("%s answered %d %q while the delivery was in flight", r.from, r.status, r.field)
		}
		if r.status >= 200 && r.status < 300 && r.at < accepted[0] {
			t.Errorf("%s answered %d (tick %d) before the mail was accepted (tick %d)", r.from, r.status, r.at, accepted[0])
		}
	}
	if delivered != 1 {
		t.Errorf("%d answers say delivered, want 1: %+v", delivered, got)
	}
}

// TestWebhookConcurrentDuplicates: eight deliveries of one event at once, with
// a slow SMTP exchange: one mail, seven 409s, and no 2xx before the mail.
func TestWebhookConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	ts, fake, srv := newDeliveryServer(t, testSMTPFailure{})
	d := newDelivery(t, ts, fake)
	clock := &seqClock{}
	gate := newGatedMailer(t, ts.mail, clock, nil)
	ts.mail = gate

	const n = 8
	targets := make([]*testServer, n)
	for i := range targets {
		targets[i] = ts
	}
	got := overlap(t, gate, clock, targets, d.body)
	wantOneDelivery(t, got, gate.acceptedAt())
	if c := srv.Count(); c != 1 {
		t.Fatalf("the SMTP server got %d mails, want 1", c)
	}
	if c := fake.calls(fakeMagicAuthPath); c != 1 {
		t.Errorf("magic auth fetched %d times, want 1", c)
	}

	// Duplicates after the delivery are answered 200 from the done mark.
	var wg sync.WaitGroup
	late := make(chan orderedResponse, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			late <- serveOrdered(ts, webhookRequest(ts, d.body), clock, fmt.Sprint("late ", i))
		}()
	}
	wg.Wait()
	close(late)
	for r := range late {
		if r.status != http.StatusOK || r.field != "duplicate" {
			t.Errorf("%s answered %d %q, want 200 duplicate", r.from, r.status, r.field)
		}
	}
	if c := srv.Count(); c != 1 {
		t.Fatalf("the SMTP server got %d mails, want 1", c)
	}
	wantOutcomes(t, ts, outcomes{delivered: 1, duplicate: 2*n - 1})
}

// TestWebhookFailingAttemptOverlapped: while a first attempt that will fail is
// in flight, a duplicate gets 409, not 2xx (a 2xx would make WorkOS stop
// retrying and the code would be lost); the next retry delivers.
func TestWebhookFailingAttemptOverlapped(t *testing.T) {
	t.Parallel()
	ts, fake, srv := newDeliveryServer(t, testSMTPFailure{})
	d := newDelivery(t, ts, fake)
	clock := &seqClock{}
	gate := newGatedMailer(t, ts.mail, clock, fmt.Errorf("smtp send: 451 try again later"))
	ts.mail = gate

	got := overlap(t, gate, clock, []*testServer{ts, ts}, d.body)
	first, dup := got[1], got[0]
	if dup.status != http.StatusConflict || dup.field != "delivery_in_progress" {
		t.Fatalf("the overlapping duplicate answered %d %q, want 409", dup.status, dup.field)
	}
	if first.status != http.StatusServiceUnavailable {
		t.Fatalf("the failing attempt answered %d %q, want 503", first.status, first.field)
	}
	wantNoClaim(t, ts, d.eventID)
	if c := srv.Count(); c != 0 {
		t.Fatalf("%d mails after the failure", c)
	}

	wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
	wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "duplicate")
	if c := srv.Count(); c != 1 {
		t.Fatalf("%d mails in total, want 1", c)
	}
	wantOutcomes(t, ts, outcomes{failed: 1, duplicate: 2, delivered: 1})
}

// TestWebhookStoreUnreachable: without the store the mail still goes out (a
// duplicate mail is possible, a lost one is not), and it is counted.
func TestWebhookStoreUnreachable(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ts.store = failingStore{}
	d := newDelivery(t, ts, fake)
	wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
	if n := len(ts.mails.sent()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	if n := metric(t, ts, "dashauth_webhook_undeduped_total"); n != 1 {
		t.Errorf("undeduped = %d, want 1", n)
	}
	wantOutcomes(t, ts, outcomes{delivered: 1})

	// A failing mail still answers 503, so WorkOS retries.
	ts.mails.fail(fmt.Errorf("smtp down too"))
	e := newDelivery(t, ts, fake)
	wantAnswer(t, ts.webhook(e.body), http.StatusServiceUnavailable, "error", "delivery_failed")
	ts.mails.fail(nil)
	wantAnswer(t, ts.webhook(e.body), http.StatusOK, "status", "delivered")
	if n := metric(t, ts, "dashauth_webhook_undeduped_total"); n != 3 {
		t.Errorf("undeduped = %d, want 3", n)
	}
	wantOutcomes(t, ts, outcomes{delivered: 2, failed: 1})
}

// flakyStore is a memory store whose chosen operations fail, like a Redis
// that goes away between two commands of one delivery.
type flakyStore struct {
	store
	mu   sync.Mutex
	down map[string]bool // "Get", "Set", "SetNX", "Del"
}

func (f *flakyStore) fails(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down[op]
}

func (f *flakyStore) set(op string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[op] = down
}

func (f *flakyStore) Get(ctx context.Context, key string) (string, bool, error) {
	if f.fails("Get") {
		return "", false, errStoreDown
	}
	return f.store.Get(ctx, key)
}

func (f *flakyStore) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	if f.fails("Set") {
		return errStoreDown
	}
	return f.store.Set(ctx, key, value, ttl)
}

func (f *flakyStore) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if f.fails("SetNX") {
		return false, errStoreDown
	}
	return f.store.SetNX(ctx, key, value, ttl)
}

func (f *flakyStore) Del(ctx context.Context, key string) (bool, error) {
	if f.fails("Del") {
		return false, errStoreDown
	}
	return f.store.Del(ctx, key)
}

// TestWebhookStoreFailsMidDelivery: the store failing after the claim never
// loses a mail, and a claim it could not release blocks only for the lease.
func TestWebhookStoreFailsMidDelivery(t *testing.T) {
	t.Parallel()

	t.Run("release fails", func(t *testing.T) {
		t.Parallel()
		fake := newFakeWorkOS(t)
		ts := newWorkOSTestServer(t, fake)
		fs := &flakyStore{store: ts.store, down: map[string]bool{}}
		ts.store = fs
		d := newDelivery(t, ts, fake)
		fake.setFaultTimes(fakeMagicAuthPath, fault500, 1)
		fs.set("Del", true)
		wantAnswer(t, ts.webhook(d.body), http.StatusServiceUnavailable, "error", "delivery_failed")
		fs.set("Del", false)
		wantAnswer(t, ts.webhook(d.body), http.StatusConflict, "error", "delivery_in_progress")
		ts.clock.Advance(webhookLease)
		wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
		if n := len(ts.mails.sent()); n != 1 {
			t.Fatalf("%d mails, want 1", n)
		}
	})

	t.Run("claim taken, state unreadable", func(t *testing.T) {
		t.Parallel()
		fake := newFakeWorkOS(t)
		ts := newWorkOSTestServer(t, fake)
		fs := &flakyStore{store: ts.store, down: map[string]bool{}}
		ts.store = fs
		d := newDelivery(t, ts, fake)
		if err := ts.store.Set(context.Background(), ts.key("webhook", d.eventID), claimProcessing, webhookLease); err != nil {
			t.Fatal(err)
		}
		fs.set("Get", true)
		wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
		if n := len(ts.mails.sent()); n != 1 {
			t.Fatalf("%d mails, want 1", n)
		}
		if n := metric(t, ts, "dashauth_webhook_undeduped_total"); n != 1 {
			t.Errorf("undeduped = %d, want 1", n)
		}
	})

	t.Run("done mark fails", func(t *testing.T) {
		t.Parallel()
		fake := newFakeWorkOS(t)
		ts := newWorkOSTestServer(t, fake)
		fs := &flakyStore{store: ts.store, down: map[string]bool{}}
		ts.store = fs
		d := newDelivery(t, ts, fake)
		fs.set("Set", true)
		wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
		if n := len(ts.mails.sent()); n != 1 {
			t.Fatalf("%d mails, want 1", n)
		}
		if n := metric(t, ts, "dashauth_store_errors_total"); n == 0 {
			t.Error("the failed done mark was not counted as a store error")
		}
	})
}

// TestWebhookRejectsBadSignature: every signature failure is 401 and nothing
// is fetched or mailed.
func TestWebhookRejectsBadSignature(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	d := newDelivery(t, ts, fake)
	now := ts.clock.Now()
	good := signWebhook([]byte(d.body), testWorkOSWebhookSecret, now)
	for i, tc := range []struct {
		name, header, body string
	}{
		{"missing", "", d.body},
		{"malformed", "t=" + strconv.FormatInt(now.UnixMilli(), 10), d.body},
		{"no timestamp", strings.Replace(good, "t=", "v0=", 1), d.body},
		{"wrong secret", signWebhook([]byte(d.body), testWorkOSWebhookSecret+"x", now), d.body},
		{"body changed", good, strings.Replace(d.body, d.eventID, "event_"+fakeULID(), 1)},
		{"upper-case hex", good[:strings.Index(good, "v1=")+3] + strings.ToUpper(good[strings.Index(good, "v1=")+3:]), d.body},
		{"too old", signWebhook([]byte(d.body), testWorkOSWebhookSecret, now.Add(-webhookTolerance-time.Millisecond)), d.body},
		{"too far ahead", signWebhook([]byte(d.body), testWorkOSWebhookSecret, now.Add(webhookTolerance+time.Millisecond)), d.body},
		{"seconds, not milliseconds", "t=" + strconv.FormatInt(now.Unix(), 10) + good[strings.Index(good, ","):], d.body},
	} {
		r := ts.do(request{method: http.MethodPost, path: webhookPath, body: tc.body,
			header: map[string]string{"WorkOS-Signature": tc.header}})
		if r.Code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", tc.name, r.Code, r.Body)
		}
		wantOutcomes(t, ts, outcomes{rejected: uint64(i + 1)})
	}
	wantNothingDelivered(t, fake, ts, "unsigned requests")
	// The fixture itself is good.
	wantAnswer(t, ts.webhook(d.body), http.StatusOK, "status", "delivered")
}

// TestWebhookBodyTooLarge: a body over 1 MiB is 413 and nothing is fetched,
// whether its length is announced or it arrives chunked.
func TestWebhookBodyTooLarge(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	d := newDelivery(t, ts, fake)
	// A genuine, signed event padded past the limit.
	big := strings.TrimSuffix(d.body, "}") + `,"pad":"` + strings.Repeat("x", maxWebhookBody) + `"}`
	for _, chunked := range []bool{false, true} {
		r := webhookRequest(ts, big)
		if chunked {
			r.ContentLength = -1 // what a chunked request looks like to the handler
		}
		rec := httptest.NewRecorder()
		ts.handler.ServeHTTP(rec, r)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked %v: %d %s, want 413", chunked, rec.Code, rec.Body)
		}
	}
	if n := fake.calls(fakeMagicAuthPath); n != 0 {
		t.Fatalf("an oversized event fetched %d magic auths", n)
	}
	if n := ts.metrics.get("dashauth_webhook_events_total", "outcome", "rejected"); n != 2 {
		t.Errorf("rejected = %d after two oversized events, want 2", n)
	}
	// Exactly 1 MiB is within the limit.
	exact := strings.TrimSuffix(d.body, "}") + `,"pad":"` + strings.Repeat("x", maxWebhookBody-len(d.body)-9) + `"}`
	if len(exact) != maxWebhookBody {
		t.Fatalf("padding: %d bytes", len(exact))
	}
	wantAnswer(t, ts.webhook(exact), http.StatusOK, "status", "delivered")
}

// TestWebhookRejectsBadEvents: a genuine event whose ids are not WorkOS ids, or
// that is not JSON, is 400 and nothing is fetched; the id never reaches the
// SDK, which would put it into the URL path unescaped.
func TestWebhookRejectsBadEvents(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	d := newDelivery(t, ts, fake)
	for i, tc := range []struct{ name, body, reason string }{
		{"magic auth id with a path", eventBody(d.eventID, "magic_auth.created", "magic_auth_../../x", d.email, d.expires), "invalid_event"},
		{"magic auth id with a query", eventBody(d.eventID, "magic_auth.created", d.magicAuthID+"?x=1", d.email, d.expires), "invalid_event"},
		{"magic auth id of another type", eventBody(d.eventID, "magic_auth.created", "user_"+fakeULID(), d.email, d.expires), "invalid_event"},
		{"empty magic auth id", eventBody(d.eventID, "magic_auth.created", "", d.email, d.expires), "invalid_event"},
		{"event id with a separator", eventBody("event_:"+fakeULID()[1:], "magic_auth.created", d.magicAuthID, d.email, d.expires), "invalid_event"},
		{"empty event id", eventBody("", "magic_auth.created", d.magicAuthID, d.email, d.expires), "invalid_event"},
		{"data not an object", `{"id":"` + d.eventID + `","event":"magic_auth.created","data":"` + d.magicAuthID + `"}`, "invalid_event"},
		{"no data", `{"id":"` + d.eventID + `","event":"magic_auth.created"}`, "invalid_event"},
		{"not JSON", `{"id":"` + d.eventID + `",`, "invalid_json"},
	} {
		r := ts.webhook(tc.body)
		if r.Code != http.StatusBadRequest || r.field("error") != tc.reason {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, r.Code, r.Body, tc.reason)
		}
		wantOutcomes(t, ts, outcomes{rejected: uint64(i + 1)})
	}
	wantNothingDelivered(t, fake, ts, "bad events")
}

// TestWebhookEmailCodeMode: without WorkOS the webhook does not exist (404),
// whether or not a webhook secret is configured, and nothing is fetched.
func TestWebhookEmailCodeMode(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	d := delivery{eventID: "event_" + fakeULID(), magicAuthID: "magic_auth_" + fakeULID(),
		email: "ada@example.com", code: "123456", expires: newTestClock().Now().Add(10 * time.Minute)}
	fake.addMagicAuth(d.magicAuthID, d.email, d.code, d.expires)
	d.body = eventBody(d.eventID, "magic_auth.created", d.magicAuthID, d.email, d.expires)
	for _, env := range [][]string{
		nil,
		{"WORKOS_WEBHOOK_SECRET", testWorkOSWebhookSecret, "WORKOS_API_KEY", testWorkOSAPIKey, "WORKOS_API_BASE_URL", fake.URL},
	} {
		ts := newTestServer(t, testEnv(append(env, "MEMBERS_FILE", writeMembers(t, testMembers))...))
		for _, header := range []string{signWebhook([]byte(d.body), testWorkOSWebhookSecret, ts.clock.Now()), ""} {
			r := ts.do(request{method: http.MethodPost, path: webhookPath, body: d.body,
				header: map[string]string{"WorkOS-Signature": header}})
			if r.Code != http.StatusNotFound || r.field("error") != "workos_not_enabled" {
				t.Errorf("env %v, signed %v: %d %s, want 404 workos_not_enabled", env, header != "", r.Code, r.Body)
			}
		}
		if n := len(ts.mails.sent()); n != 0 {
			t.Fatalf("%d mails in email+code mode", n)
		}
		wantOutcomes(t, ts, outcomes{})
	}
	if n := fake.calls(fakeMagicAuthPath); n != 0 {
		t.Fatalf("email+code mode fetched %d magic auths", n)
	}
}

// wantNothingDelivered fails the test if what was sent fetched a magic auth
// from WorkOS or sent a mail.
func wantNothingDelivered(t *testing.T, fake *fakeWorkOS, ts *testServer, what string) {
	t.Helper()
	if n := fake.calls(fakeMagicAuthPath); n != 0 {
		t.Fatalf("%s fetched a magic auth %d times", what, n)
	}
	if n := len(ts.mails.sent()); n != 0 {
		t.Fatalf("%s sent %d mails", what, n)
	}
}
