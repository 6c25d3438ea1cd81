package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
