package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Outcomes of verifyWebhookSignature. The webhook answers 401 to each of them;
// they are distinct so that logs and metrics can say why.
var (
	errWebhookSecretEmpty = errors.New("webhook secret is empty")
	errSignatureMissing   = errors.New("webhook signature header missing")
	errSignatureMalformed = errors.New("webhook signature header malformed")
	errSignatureExpired   = errors.New("webhook signature timestamp outside the window")
	errSignatureMismatch  = errors.New("webhook signature does not match")
)

const (
	// webhookTolerance is how far the signed timestamp may be from now, in either
	// direction: 3 minutes by the contract, which is also WorkOS's own default
	// (180 s in workos-go v4 pkg/webhooks NewClient). Checking the future side too
	// means a header cannot be made valid for longer by dating it ahead.
	webhookTolerance = 3 * time.Minute

	// maxWebhookSignatures bounds the v1 values in one header, and so the HMAC
	// comparisons an unauthenticated request can cause. A sender signs with one
	// secret, or with a few while it rotates secrets; 8 leaves room for that.
	maxWebhookSignatures = 8

	// maxSignatureHeader bounds the bytes looked at before parsing. The longest
	// well-formed header is "t=" + 19 digits + 8 × ", v1=" + 64 hex = 573 bytes.
	maxSignatureHeader = 1024

	// maxTimestampDigits: an int64 has at most 19 decimal digits.
	maxTimestampDigits = 19

	decimalDigits  = "0123456789"
	lowerHexDigits = "0123456789abcdef"
)

// verifyWebhookSignature checks a WorkOS-Signature header,
// "t=<unix ms>, v1=<hex HMAC-SHA256 of "<t>.<body>">" with one or more v1, against
// the raw request body. It returns nil only when the header is well formed, its
// timestamp is within webhookTolerance of now, and some v1 is the MAC of body.
//
// The checks run in a fixed order and each failure returns at once: secret,
// header presence and size, strict parse, time window, then the MACs.
func verifyWebhookSignature(header string, body, secret []byte, now time.Time) error {
	// An empty key is a misconfiguration; anyone can compute its MACs.
	if len(secret) == 0 {
		return errWebhookSecretEmpty
	}
	if header == "" {
		return errSignatureMissing
	}
	if len(header) > maxSignatureHeader {
		return fmt.Errorf("parse webhook signature: header is %d bytes, limit %d: %w",
			len(header), maxSignatureHeader, errSignatureMalformed)
	}
	ts, sigs, err := parseSignatureHeader(header)
	if err != nil {
		return err
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("parse webhook signature timestamp %q: %w", ts, errSignatureMalformed)
	}
	// Sub saturates instead of overflowing, so any int64 timestamp is safe here.
	if d := now.Sub(time.UnixMilli(ms)); d > webhookTolerance || d < -webhookTolerance {
		return fmt.Errorf("check webhook signature timestamp %q: %v from now, limit %v: %w",
			ts, d, webhookTolerance, errSignatureExpired)
	}
	want := webhookMAC(secret, ts, body)
	matched := false
	for _, sig := range sigs {
		// Compare every signature, in constant time each.
		if hmac.Equal(sig, want) {
			matched = true
		}
	}
	if !matched {
		return fmt.Errorf("check webhook signature at %q: %w", ts, errSignatureMismatch)
	}
	return nil
}

// parseSignatureHeader splits a header of exactly the form
// "t=<1-19 digits>,[ ]v1=<64 lower-case hex>" with 1 to maxWebhookSignatures v1
// elements. Anything else is rejected, never repaired.
func parseSignatureHeader(header string) (ts string, sigs [][]byte, err error) {
	malformed := func(elem, why string) error {
		return fmt.Errorf("parse webhook signature element %q: %s: %w", elem, why, errSignatureMalformed)
	}
	parts := strings.SplitN(header, ",", maxWebhookSignatures+2)
	if len(parts) < 2 {
		return "", nil, malformed(header, "want t and at least one v1")
	}
	if len(parts) > maxWebhookSignatures+1 {
		return "", nil, malformed(header, fmt.Sprintf("more than %d signatures", maxWebhookSignatures))
	}
	ts, ok := strings.CutPrefix(parts[0], "t=")
	if !ok || len(ts) > maxTimestampDigits || !allIn(ts, decimalDigits) {
		return "", nil, malformed(parts[0], "want t=<unix ms> first")
	}
	for _, p := range parts[1:] {
		p = strings.TrimPrefix(p, " ") // at most one space after a comma
		h, ok := strings.CutPrefix(p, "v1=")
		if !ok || len(h) != 2*sha256.Size || !allIn(h, lowerHexDigits) {
			return "", nil, malformed(p, "want v1=<64 lower-case hex>")
		}
		sig, err := hex.DecodeString(h)
		if err != nil {
			return "", nil, malformed(p, "unreachable: hex checked above")
		}
		sigs = append(sigs, sig)
	}
	return ts, sigs, nil
}

// webhookMAC is HMAC-SHA256 keyed by secret over "<ts>.<body>", as WorkOS signs.
func webhookMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// allIn reports whether s is non-empty and every byte of s is in alphabet.
// It works on bytes, so any non-ASCII input is rejected.
func allIn(s, alphabet string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return s != ""
}

// WorkOS ids are a type prefix and a ULID: 26 characters of Crockford base 32,
// upper case (https://github.com/ulid/spec).
const (
	ulidLen      = 26
	ulidAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

// validMagicAuthID reports whether id looks like a WorkOS magic auth id. The SDK
// puts the id into the URL path unescaped (workos-go v4.46.1
// usermanagement.GetMagicAuth: fmt.Sprintf("%s/user_management/magic_auth/%s")),
// so this check is what stops "../", "?" or "#" in a webhook body from steering
// the authenticated API request to another path.
func validMagicAuthID(id string) bool { return validWorkOSID(id, "magic_auth_") }

// validEventID reports whether id looks like a WorkOS event id. It becomes part of
// a Redis key, so it must be bounded and free of separators.
func validEventID(id string) bool { return validWorkOSID(id, "event_") }

func validWorkOSID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	return ok && len(rest) == ulidLen && allIn(rest, ulidAlphabet)
}

// Delivery bookkeeping for magic_auth.created (CONTRACT.md, "Webhook").
const (
	// webhookDoneTTL keeps a done event id for WorkOS's whole retry
	// window: it retries failed deliveries for 3 days.
	webhookDoneTTL = 72 * time.Hour
	// webhookLease is how long a claim on an event in progress lives. It
	// outlasts one delivery (workosTimeout + smtpTimeout) so a slow attempt
	// keeps it, and is short enough that a replica that crashed mid-delivery
	// blocks the event only until WorkOS's next retry.
	webhookLease = 60 * time.Second

	claimProcessing = "processing"
	claimDone       = "done"
)

// webhookEvent is the part of a WorkOS event the service reads.
type webhookEvent struct {
	ID    string          `json:"id"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// handleWebhook verifies a WorkOS event, and for magic_auth.created mails
// the code exactly once. It answers 2xx only once the mail was accepted
// (or the event needs no mail), so WorkOS retries every other outcome.
func (s *server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	if s.workos == nil {
		// In email+code mode there is no webhook: no secret to check a
		// signature with (every request would look forged) and no WorkOS
		// key to fetch a code with. Nor is it counted: anyone could
		// inflate the counters of a webhook that does not exist.
		writeError(w, http.StatusNotFound, "workos_not_enabled")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		s.metrics.inc("dashauth_webhook_events_total", "outcome", "rejected")
		return
	}
	secret := []byte(s.cfg.WorkOSWebhookSecret)
	if err := verifyWebhookSignature(r.Header.Get("WorkOS-Signature"), body, secret, s.now()); err != nil {
		s.metrics.inc("dashauth_webhook_events_total", "outcome", "rejected")
		s.log.Warn("webhook rejected", "err", err)
		writeError(w, http.StatusUnauthorized, "invalid_signature")
		return
	}
	var ev webhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		s.metrics.inc("dashauth_webhook_events_total", "outcome", "rejected")
		writeError(w, http.StatusBadRequest, "invalid_json")
		return
	}
	if ev.Event != "magic_auth.created" {
		s.metrics.inc("dashauth_webhook_events_total", "outcome", "ignored")
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
		return
	}
	var data struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil || !validEventID(ev.ID) || !validMagicAuthID(data.ID) {
		s.metrics.inc("dashauth_webhook_events_total", "outcome", "rejected")
		writeError(w, http.StatusBadRequest, "invalid_event")
		return
	}
	status, outcome := s.deliverMagicAuth(r.Context(), ev.ID, data.ID)
	s.metrics.inc("dashauth_webhook_events_total", "outcome", outcome)
	switch status {
	case http.StatusOK:
		writeJSON(w, status, map[string]string{"status": outcome})
	case http.StatusConflict:
		writeError(w, status, "delivery_in_progress")
	default:
		writeError(w, status, "delivery_failed")
	}
}

// deliverMagicAuth claims the event, fetches the magic auth and mails its
// code, and returns the HTTP status and the metrics outcome.
//
// The claim is a set-if-absent with a short lease: only one delivery of an
// event runs at a time across replicas. It becomes "done" for three days
// only after SMTP accepted the mail, and is released on failure so the
// retry WorkOS makes after our 503 can deliver. When the store itself
// fails, the mail goes out anyway: a duplicate login mail is harmless, a
// lost one locks a person out.
func (s *server) deliverMagicAuth(ctx context.Context, eventID, magicAuthID string) (status int, outcome string) {
	claim := s.key("webhook", eventID)
	// Bookkeeping must happen even if WorkOS hangs up mid-delivery.
	bg := context.WithoutCancel(ctx)
	deduped := true
	sctx, cancel := context.WithTimeout(bg, storeTimeout)
	defer cancel()
	set, err := s.store.SetNX(sctx, claim, claimProcessing, webhookLease)
	switch {
	case err != nil:
		deduped = false
		s.metrics.inc("dashauth_store_errors_total", "", "")
		s.metrics.inc("dashauth_webhook_undeduped_total", "", "")
		s.log.Error("webhook: store unreachable; delivering without de-duplication", "event", eventID, "err", err)
	case !set:
		state, found, err := s.store.Get(sctx, claim)
		switch {
		case err != nil:
			deduped = false
			s.metrics.inc("dashauth_store_errors_total", "", "")
			s.metrics.inc("dashauth_webhook_undeduped_total", "", "")
		case found && state == claimDone:
			s.metrics.inc("dashauth_dedup_hits_total", "", "")
			return http.StatusOK, "duplicate"
		default: // in progress elsewhere, or its lease ran out this instant
			s.metrics.inc("dashauth_dedup_hits_total", "", "")
			return http.StatusConflict, "duplicate"
		}
	}
	release := func() {
		if deduped {
			ctx, cancel := context.WithTimeout(bg, storeTimeout)
			defer cancel()
			if _, err := s.store.Del(ctx, claim); err != nil {
				s.log.Error("webhook: could not release claim; it expires with its lease", "event", eventID, "err", err)
			}
		}
	}

	ma, err := s.workos.magicAuth(ctx, magicAuthID)
	if err != nil {
		release()
		s.log.Error("webhook: fetch magic auth", "event", eventID, "magic_auth", magicAuthID, "err", err)
		return http.StatusServiceUnavailable, "failed"
	}
	expires, err := time.Parse(time.RFC3339Nano, ma.ExpiresAt)
	if err == nil && !s.now().Before(expires) {
		s.markDone(bg, claim, deduped)
		s.log.Info("webhook: magic auth already expired; no mail", "event", eventID)
		return http.StatusOK, "ignored"
	}
	addr, okAddr := parseEmail(ma.Email)
	if err != nil || !okAddr || !validCode(ma.Code) {
		release()
		s.log.Error("webhook: WorkOS returned a magic auth we cannot mail", "event", eventID, "magic_auth", magicAuthID)
		return http.StatusServiceUnavailable, "failed"
	}

	if err := s.mail.Send(ctx, s.magicAuthMail(eventID, addr, ma.Code, expires)); err != nil {
		release()
		s.metrics.inc("dashauth_mails_total", "result", "failed")
		s.log.Error("webhook: mail failed", "event", eventID, "err", err)
		return http.StatusServiceUnavailable, "failed"
	}
	s.metrics.inc("dashauth_mails_total", "result", "sent")
	s.markDone(bg, claim, deduped)
	return http.StatusOK, "delivered"
}

func (s *server) markDone(ctx context.Context, claim string, deduped bool) {
	if !deduped {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if err := s.store.Set(ctx, claim, claimDone, webhookDoneTTL); err != nil {
		s.metrics.inc("dashauth_store_errors_total", "", "")
		s.log.Error("webhook: could not mark event done; a retry may mail again", "key", claim, "err", err)
	}
}

func (s *server) magicAuthMail(eventID, addr, code string, expires time.Time) message {
	link := s.cfg.WorkOSSigninBaseURL
	_, domain, _ := strings.Cut(s.cfg.SMTP.From, "@")
	if domain == "" {
		domain = "dashauth.localhost"
	}
	// Both how long (what a reader wants to know) and until when (what
	// still holds if the mail is read late).
	validity := "It is valid for " + validFor(expires.Sub(s.now())) +
		" (until " + expires.UTC().Format("15:04 UTC") + ") and can be used once."
	return message{
		To:        addr,
		Subject:   "Your sign-in code",
		MessageID: "<" + eventID + "@" + domain + ">",
		Text: "Your sign-in code is:\r\n\r\n" + code + "\r\n\r\n" +
			validity + "\r\n" +
			"Go back to signing in: " + link + "\r\n\r\n" +
			"If you did not ask to sign in, ignore this mail.\r\n",
		HTML: "<p>Your sign-in code is:</p><p style=\"font-size:24px;font-family:monospace\"><b>" + code + "</b></p>" +
			"<p>" + validity + "</p>" +
			"<p><a href=\"" + html.EscapeString(link) + "\">Go back to signing in</a></p>" +
			"<p>If you did not ask to sign in, ignore this mail.</p>",
	}
}

// validFor says how long a code stays valid, rounded down to whole minutes so
// the mail never promises more time than the code has.
func validFor(left time.Duration) string {
	switch m := int64(left / time.Minute); {
	case m < 1:
		return "less than a minute"
	case m == 1:
		return "1 minute"
	default:
		return strconv.FormatInt(m, 10) + " minutes"
	}
}
