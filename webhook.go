package main

// The WorkOS webhook (contract, "Webhook"): the signature checked, then each magic_auth.created code mailed once.

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

const (
	webhookTolerance   = 3 * time.Minute // either way (contract): a header dated ahead cannot last longer
	maxSignatures      = 8               // v1 values (one per secret while WorkOS rotates): bounds the MACs compared
	maxSignatureHeader = 1024            // the longest well-formed header is 573 bytes
	// The lease outlasts a whole delivery, so only a dead or frozen replica loses its claim (model/README.md).
	deliveryTimeout = workosTimeout + smtpTimeout + 4*redisCommandTimeout
	webhookLease    = 60 * time.Second
	webhookDoneTTL  = 72 * time.Hour
)

var (
	errSignatureMissing   = errors.New("webhook signature header missing")
	errSignatureMalformed = errors.New("webhook signature header malformed")
	errSignatureExpired   = errors.New("webhook signature timestamp outside the window")
	errSignatureMismatch  = errors.New("webhook signature does not match")
)

// verifyWebhookSignature checks "t=<unix ms>,[ ]v1=<hex>[,…]" against the raw body: nil only when it parses strictly,
// t is within webhookTolerance of now, and some v1 is HMAC-SHA256(secret, "<t>.<body>"). Cheapest checks first.
func verifyWebhookSignature(header string, body, secret []byte, now time.Time) error {
	parts := strings.SplitN(header, ",", maxSignatures+2)
	ts, ok := strings.CutPrefix(parts[0], "t=")
	ms, tsOK := parseDigits([]byte(ts), 19)
	switch {
	case len(secret) == 0: // anyone can compute the MACs of an empty key
		return errors.New("webhook secret is empty")
	case header == "":
		return errSignatureMissing
	case len(header) > maxSignatureHeader || !ok || !tsOK || len(parts) < 2 || len(parts) > maxSignatures+1:
		return fmt.Errorf("%w: want t=<unix ms> and 1 to %d v1 values", errSignatureMalformed, maxSignatures)
	}
	var sigs [maxSignatures][32]byte
	for i, p := range parts[1:] {
		h, ok := strings.CutPrefix(strings.TrimPrefix(p, " "), "v1=")
		if !ok || len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
			return fmt.Errorf("%w: %q is not v1=<64 lower-case hex>", errSignatureMalformed, p)
		}
		hex.Decode(sigs[i][:], []byte(h))
	}
	if d := now.Sub(time.UnixMilli(ms)); d > webhookTolerance || d < -webhookTolerance {
		return fmt.Errorf("%w: %v from now", errSignatureExpired, d)
	}
	want, matched := mac(secret, []byte(ts), []byte{'.'}, body), false
	for _, sig := range sigs[:len(parts)-1] { // every one: no early exit
		matched = hmac.Equal(sig[:], want) || matched
	}
	if !matched {
		return errSignatureMismatch
	}
	return nil
}

// validWorkOSID reports whether id is prefix and a ULID. The SDK puts the id in its API path unescaped.
func validWorkOSID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	return ok && len(rest) == 26 && strings.Trim(rest, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == ""
}

// handleWebhook answers 2xx only once the mail was accepted or needs no sending, so that WorkOS retries the rest.
func (s *server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		ID, Event string
		Data      struct{ ID string }
	}
	body, ok := s.readBody(w, r, maxWebhookBody)
	err := verifyWebhookSignature(r.Header.Get("WorkOS-Signature"), body, []byte(s.cfg.WorkOSWebhookSecret), s.now())
	switch {
	case !ok: // answered
	case err != nil:
		s.log.Warn("webhook rejected", "err", err)
		s.fail(w, r, http.StatusUnauthorized, "invalid_signature")
	case json.Unmarshal(body, &ev) != nil:
		s.fail(w, r, http.StatusBadRequest, "invalid_json")
	case ev.Event != "magic_auth.created":
		s.count("dashauth_webhook_events_total", "ignored")
		s.log.Info("webhook", "event", ev.Event, "outcome", "ignored")
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
		return
	case !validWorkOSID(ev.ID, "event_") || !validWorkOSID(ev.Data.ID, "magic_auth_"):
		s.fail(w, r, http.StatusBadRequest, "invalid_event")
	default:
		// The delivery runs on its own clock: cut short after SMTP took the mail, it would be mailed again.
		answer := make(chan func(), 1)
		s.background.Go(func() {
			status, outcome := s.deliver(ev.ID, ev.Data.ID)
			s.count("dashauth_webhook_events_total", outcome)
			s.log.Info("webhook", "event", ev.ID, "outcome", outcome, "status", status)
			answer <- func() {
				if status == http.StatusOK {
					writeJSON(w, status, map[string]string{"status": outcome})
				} else {
					s.fail(w, r, status, map[int]string{409: "delivery_in_progress", 503: "delivery_failed"}[status])
				}
			}
		})
		select {
		case f := <-answer:
			f()
		case <-r.Context().Done(): // WorkOS stopped waiting; its retry finds the outcome
		}
		return
	}
	s.count("dashauth_webhook_events_total", "rejected")
}

// deliver claims an event (set-if-absent of an owner token, with a lease), fetches its magic auth and mails the code.
// The claim turns "done" for 3 days after SMTP accepted the mail, or is released for WorkOS's retry; both, and a
// renewal before the mail, only while the claim is still ours. When the store fails the mail goes out anyway: a
// duplicate code is harmless, a lost one locks a person out.
func (s *server) deliver(eventID, magicAuthID string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	key, token := s.key("webhook", eventID), "claimed "+randomID(16)
	claimed, err := s.store.Put(ctx, key, "", token, webhookLease)
	fenced := err == nil
	if err != nil {
		s.undeduped(eventID, err)
	} else if !claimed {
		s.count("dashauth_dedup_hits_total", "")
		if state, _, err := s.store.Get(ctx, key); err == nil && state == "done" {
			return http.StatusOK, "duplicate"
		}
		return http.StatusConflict, "duplicate" // in progress elsewhere
	}
	settle := func(value string, ttl time.Duration) {
		if !fenced {
			return
		}
		// Not ctx: a done mark after the delivery's deadline still has the rest of the lease.
		if ok, err := s.store.Put(context.Background(), key, token, value, ttl); err != nil || !ok {
			s.count("dashauth_store_errors_total", "")
			s.log.Error("webhook: claim lost or store failed; WorkOS's retry settles it", "event", eventID, "err", err)
		}
	}
	ma, err := s.workos.GetMagicAuth(ctx, usermanagement.GetMagicAuthOpts{MagicAuth: magicAuthID}) // a valid id: the SDK does not escape it
	if err != nil {
		settle("", 0)
		s.log.Error("webhook: fetch magic auth", "event", eventID, "magic_auth", magicAuthID, "err", err)
		return http.StatusServiceUnavailable, "failed"
	}
	expires, err := time.Parse(time.RFC3339Nano, ma.ExpiresAt)
	addr, ok := parseEmail(ma.Email)
	if err == nil && !s.now().Before(expires) {
		settle("done", webhookDoneTTL)
		return http.StatusOK, "ignored" // expired: no mail
	}
	if err != nil || !ok || !validCode(ma.Code) {
		settle("done", webhookDoneTTL) // no retry can make it mailable: 200, so WorkOS stops
		s.log.Error("webhook: a magic auth that cannot be mailed (address, code or expiry)", "event", eventID, "magic_auth", magicAuthID)
		return http.StatusOK, "undeliverable"
	}
	if fenced {
		switch ok, err := s.store.Put(ctx, key, token, token, webhookLease); {
		case err != nil:
			fenced = false
			s.undeduped(eventID, err)
		case !ok:
			s.log.Error("webhook: the lease ran out before the mail; another delivery owns the event", "event", eventID)
			return http.StatusConflict, "duplicate"
		}
	}
	if err := s.sendCode(ctx, addr, ma.Code, expires, eventID); err != nil {
		settle("", 0)
		return http.StatusServiceUnavailable, "failed"
	}
	settle("done", webhookDoneTTL)
	return http.StatusOK, "delivered"
}

func (s *server) undeduped(eventID string, err error) {
	s.count("dashauth_store_errors_total", "")
	s.count("dashauth_webhook_undeduped_total", "")
	s.log.Error("webhook: store unreachable; delivering without de-duplication", "event", eventID, "err", err)
}
