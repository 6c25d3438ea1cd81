package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The session token is a JWT (RFC 7519) with exactly one shape: HS256, our header, our
// claims. Nothing in a token chooses how it is checked.

const (
	// tokenHeader is the only header we sign or accept: the base64url (no padding) of
	// {"alg":"HS256","typ":"JWT"}, as CONTRACT.md (Session) fixes it. Comparing the encoded
	// segment byte for byte means alg, kid, whitespace or key order in a header can never
	// vary, so "alg":"none" and algorithm confusion are ruled out before any decoding.
	tokenHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

	// tokenAudience is the aud claim of every session token (CONTRACT.md, Session).
	tokenAudience = "dashboard"

	// minKeyBytes: RFC 7518 §3.2 requires an HS256 key of at least the hash output size,
	// 256 bits; CONTRACT.md's JWT_SECRET is "at least 32 bytes".
	minKeyBytes = sha256.Size

	// maxTokenBytes: browsers keep cookies of at least 4096 bytes (RFC 6265 §6.1, counting
	// name, value and attributes), and CONTRACT.md keeps each session cookie under that.
	// Nothing longer can be one of our cookies, so it is refused before any other work.
	maxTokenBytes = 4096

	// tokenLeewaySeconds tolerates clock skew between replicas: CONTRACT.md (Session)
	// allows 60 s for both exp and iat.
	tokenLeewaySeconds = 60

	// maxUnixSeconds (9999-12-31T23:59:59Z, the last instant RFC 3339 can write) bounds
	// iat and exp so that no time arithmetic on them can overflow an int64.
	maxUnixSeconds = 253402300799

	// sigBytes is the length of an HMAC-SHA256 tag.
	sigBytes = sha256.Size
)

// Outcomes callers branch on with errors.Is.
var (
	errBadKey          = errors.New("key missing or shorter than 32 bytes")
	errMalformedToken  = errors.New("malformed token")
	errBadSignature    = errors.New("bad token signature")
	errWrongClaim      = errors.New("token claim does not match")
	errTokenExpired    = errors.New("token expired")
	errTokenFromFuture = errors.New("token issued in the future")
	errBadClaims       = errors.New("claims cannot be signed")
)

// claims is the payload of a session token; its field order is the JSON order on the wire.
type claims struct {
	Iss   string `json:"iss"`
	Aud   string `json:"aud"`
	Sub   string `json:"sub"`
	Email string `json:"email"`
	Org   string `json:"org"`
	Sid   string `json:"sid"`
	Typ   string `json:"typ"` // "access" or "refresh"
	Jti   string `json:"jti"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// signToken returns the HS256 token for c under key.
func signToken(key []byte, c claims) (string, error) {
	if len(key) < minKeyBytes {
		return "", fmt.Errorf("sign token: %d-byte key: %w", len(key), errBadKey)
	}
	if err := checkShape(c); err != nil {
		return "", fmt.Errorf("sign token for sub %q: %w: %w", c.Sub, errBadClaims, err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err) // unreachable: only strings and ints
	}
	signed := tokenHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	token := signed + "." + base64.RawURLEncoding.EncodeToString(mac(key, signed))
	if len(token) > maxTokenBytes {
		return "", fmt.Errorf("sign token for sub %q: %d bytes, over %d: %w", c.Sub, len(token), maxTokenBytes, errBadClaims)
	}
	return token, nil
}

// verifyToken returns the claims of token if it is one we signed with one of keys (the
// current key first, then older ones still accepted during rotation), for issuer and of
// type typ ("access" or "refresh"), and valid at now.
//
// The checks run cheapest and least trusting first; the payload is decoded only after the
// MAC over the raw "header.payload" bytes has matched. Errors never quote the token: it is
// a bearer credential.
func verifyToken(token string, keys [][]byte, issuer, typ string, now time.Time) (claims, error) {
	if len(keys) == 0 {
		return claims{}, fmt.Errorf("verify token: no key: %w", errBadKey)
	}
	for _, k := range keys {
		if len(k) < minKeyBytes {
			return claims{}, fmt.Errorf("verify token: %d-byte key: %w", len(k), errBadKey)
		}
	}
	if len(token) > maxTokenBytes {
		return claims{}, fmt.Errorf("verify token: %d bytes: %w", len(token), errMalformedToken)
	}
	// Only the base64url alphabet and dots. Besides padding and whitespace, this stops CR
	// and LF, which the base64 decoder skips even in Strict mode: a newline in the
	// (unsigned) signature segment would otherwise give a second valid spelling of a token.
	for i := 0; i < len(token); i++ {
		if !isTokenByte(token[i]) {
			return claims{}, fmt.Errorf("verify token: byte %d is %q: %w", i, token[i], errMalformedToken)
		}
	}
	header, rest, ok1 := strings.Cut(token, ".")
	payloadSeg, sigSeg, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sigSeg, ".") {
		return claims{}, fmt.Errorf("verify token: not three segments: %w", errMalformedToken)
	}
	if header != tokenHeader {
		return claims{}, fmt.Errorf("verify token: header is not HS256/JWT: %w", errMalformedToken)
	}
	sig, err := decodeBase64URL(sigSeg)
	if err != nil || len(sig) != sigBytes {
		return claims{}, fmt.Errorf("verify token: signature encoding: %w", errMalformedToken)
	}
	if !macMatches(keys, token[:len(header)+1+len(payloadSeg)], sig) {
		return claims{}, fmt.Errorf("verify token: %w", errBadSignature)
	}

	c, err := decodeClaims(payloadSeg)
	if err != nil {
		return claims{}, fmt.Errorf("verify token: %w: %w", errMalformedToken, err)
	}
	switch {
	case c.Iss != issuer:
		return claims{}, fmt.Errorf("verify token: iss %q: %w", c.Iss, errWrongClaim)
	case c.Aud != tokenAudience:
		return claims{}, fmt.Errorf("verify token: aud %q: %w", c.Aud, errWrongClaim)
	case c.Typ != typ:
		return claims{}, fmt.Errorf("verify token: typ %q, want %q: %w", c.Typ, typ, errWrongClaim)
	}
	// Whole seconds, rounded down. checkShape bounds iat and exp to [1, maxUnixSeconds], so
	// these differences cannot overflow for any real clock. RFC 7519 §4.1.4: a token is
	// valid only while now is before exp; the leeway extends that.
	n := now.Unix()
	if n-c.Exp >= tokenLeewaySeconds {
		return claims{}, fmt.Errorf("verify token: exp %d, now %d: %w", c.Exp, n, errTokenExpired)
	}
	if c.Iat-n > tokenLeewaySeconds {
		return claims{}, fmt.Errorf("verify token: iat %d, now %d: %w", c.Iat, n, errTokenFromFuture)
	}
	return c, nil
}

// decodeClaims parses the payload segment strictly. A claim that is absent (or null)
// keeps its zero value, which checkShape refuses: every string must be non-empty and
// iat, exp at least 1. Numbers must be JSON integers: 1e9, 1.0 and "1" do not decode
// into an int64.
func decodeClaims(seg string) (claims, error) {
	payload, err := decodeBase64URL(seg)
	if err != nil {
		return claims{}, fmt.Errorf("payload encoding: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var c claims
	if err := dec.Decode(&c); err != nil {
		return claims{}, fmt.Errorf("payload: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return claims{}, errors.New("payload: data after the claims object")
	}
	if err := checkShape(c); err != nil {
		return claims{}, err
	}
	// Accept only the exact bytes signToken writes for these claims. encoding/json
	// matches keys case-insensitively, keeps the last of duplicate keys and replaces
	// invalid UTF-8; requiring the canonical form makes each token the single spelling of
	// its claims, so no other bytes can pass for it.
	canonical, err := json.Marshal(c)
	if err != nil || !bytes.Equal(canonical, payload) {
		return claims{}, errors.New("payload is not in canonical form")
	}
	return c, nil
}

// checkShape reports whether c is a claims set we would sign: every claim present and
// non-empty, a known typ, and 1 <= iat < exp <= maxUnixSeconds.
func checkShape(c claims) error {
	for _, f := range []struct{ name, v string }{
		{"iss", c.Iss}, {"aud", c.Aud}, {"sub", c.Sub}, {"email", c.Email},
		{"org", c.Org}, {"sid", c.Sid}, {"typ", c.Typ}, {"jti", c.Jti},
	} {
		if f.v == "" {
			return fmt.Errorf("claim %s missing or empty", f.name)
		}
	}
	if c.Typ != "access" && c.Typ != "refresh" {
		return fmt.Errorf("claim typ %q is neither access nor refresh", c.Typ)
	}
	if c.Iat < 1 || c.Iat > maxUnixSeconds || c.Exp < 1 || c.Exp > maxUnixSeconds {
		return fmt.Errorf("claims iat %d, exp %d: missing or out of range", c.Iat, c.Exp)
	}
	if c.Exp <= c.Iat {
		return fmt.Errorf("claims iat %d, exp %d: exp not after iat", c.Iat, c.Exp)
	}
	return nil
}

// decodeBase64URL decodes base64url without padding (RFC 7515 §2), strictly:
// only the 64 alphabet bytes, and no non-zero trailing bits, so every value
// has exactly one spelling. Go's decoder, even in Strict mode, skips CR and
// LF, which would give a second spelling; the alphabet check refuses them.
func decodeBase64URL(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' || !isTokenByte(s[i]) {
			return nil, fmt.Errorf("byte %d is not base64url", i)
		}
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// mac is HMAC-SHA256 of signed under key (RFC 7518 §3.2).
func mac(key []byte, signed string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(signed))
	return h.Sum(nil)
}

// macMatches compares sig with the MAC under every key in constant time. Which key
// matched is not secret, but trying them all keeps the loop free of early exits.
func macMatches(keys [][]byte, signed string, sig []byte) bool {
	ok := false
	for _, k := range keys {
		if hmac.Equal(mac(k, signed), sig) {
			ok = true
		}
	}
	return ok
}

// isTokenByte reports whether b may appear in a token: the base64url alphabet
// (RFC 4648 §5) or the segment separator.
func isTokenByte(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' ||
		b == '-' || b == '_' || b == '.'
}
