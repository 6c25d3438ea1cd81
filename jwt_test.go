package main

// Tokens (signToken, verifyToken) and the one strict JSON reader, parseObject: hostile tokens, the clock's edges, key
// rotation, tokens other libraries write, the shared vectors, fuzz targets and benchmarks. Sessions and sealed
// cookies are in session_test.go.

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	jwtKey      = "test-current-key-0123456789abcdef0123456789"
	jwtPrevKey  = "test-previous-key-0123456789abcdef012345678"
	jwtOtherKey = "test-unrelated-key-0123456789abcdef01234567"
	jwtIssuer   = "https://api.example.com"
	jwtNow      = 1700000000
	// jwtPayload is what signToken writes for jwtClaims(), member for member.
	jwtPayload    = `{"iss":"https://api.example.com","aud":"dashboard","sub":"user_1","email":"ada@example.com","org":"org_acme","sid":"sess_1","typ":"access","jti":"jti_1","iat":1699999940,"exp":1700000840}`
	jwtHeaderJSON = `{"alg":"HS256","typ":"JWT"}`
)

func jwtClaims() claims {
	return claims{Iss: jwtIssuer, Aud: "dashboard", Sub: "user_1", Email: "ada@example.com", Org: "org_acme",
		Sid: "sess_1", Typ: "access", Jti: "jti_1", Iat: jwtNow - 60, Exp: jwtNow + 840}
}

func jwtKeys() [][]byte { return [][]byte{[]byte(jwtKey), []byte(jwtPrevKey)} }

// jwtSignRaw builds a token from raw header and payload bytes with a valid HMAC-SHA256, as another library (or an
// attacker holding the key) would, so a test reaches the checks behind the signature. It uses nothing of jwt.go.
func jwtSignRaw(key []byte, header, payload string) string {
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	h := hmac.New(sha256.New, key)
	h.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(h.Sum(nil))
}

func jwtMustSign(tb testing.TB, key []byte, c claims) string {
	tb.Helper()
	tok, err := signToken(key, c)
	if err != nil {
		tb.Fatalf("signToken: %v", err)
	}
	return tok
}

// jwtEdit changes exactly one occurrence of old in s, so that each case is one change to a valid fixture.
func jwtEdit(tb testing.TB, s, old, new string) string {
	tb.Helper()
	if n := strings.Count(s, old); n != 1 {
		tb.Fatalf("fixture: %q occurs %d times in %q", old, n, s)
	}
	return strings.Replace(s, old, new, 1)
}

// tokenSentinels are the outcomes verifyToken gives for a bad token; every refusal is one of them.
var tokenSentinels = []error{errMalformedToken, errBadSignature, errWrongClaim, errTokenExpired, errTokenFromFuture}

func isTokenRejection(err error) bool {
	for _, e := range tokenSentinels {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// wantTokenErr checks err against want (nil: accepted) exactly: the sentinel by errors.Is, and no other sentinel.
func wantTokenErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	for _, e := range tokenSentinels {
		if e != want && errors.Is(err, e) {
			t.Fatalf("err = %v is also %v", err, e)
		}
	}
}

func TestSignTokenFixture(t *testing.T) {
	t.Parallel()
	tok := jwtMustSign(t, []byte(jwtKey), jwtClaims())
	if want := jwtSignRaw([]byte(jwtKey), jwtHeaderJSON, jwtPayload); tok != want {
		t.Fatalf("signToken = %s, want %s", tok, want)
	}
	if !strings.HasPrefix(tok, tokenHeader+".") {
		t.Fatalf("header of %s is not tokenHeader", tok)
	}
	if h, _ := base64.RawURLEncoding.DecodeString(tokenHeader); string(h) != jwtHeaderJSON {
		t.Fatalf("tokenHeader decodes to %s", h)
	}
}

func TestSignTokenRoundTrip(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"access", "refresh"} {
		c := jwtClaims()
		c.Typ = typ
		c.Email = "o'brien+<tag>&x@example.com" // characters encoding/json would escape
		c.Sub = "üser_ñ_日本"                     // UTF-8 is fine
		tok := jwtMustSign(t, []byte(jwtKey), c)
		got, err := verifyToken(tok, jwtKeys(), jwtIssuer, typ, time.Unix(jwtNow, 0))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if got != c {
			t.Fatalf("%s: got %+v, want %+v", typ, got, c)
		}
	}
}

// TestVerifyTokenHostile: every token but the valid ones is refused with the one sentinel its fault calls for, no
// claims come back with an error, and no error repeats the token.
func TestVerifyTokenHostile(t *testing.T) {
	t.Parallel()
	key := []byte(jwtKey)
	valid := jwtMustSign(t, key, jwtClaims())
	header, rest, _ := strings.Cut(valid, ".")
	payloadSeg, sigSeg, _ := strings.Cut(rest, ".")
	if len(payloadSeg)%4 == 0 || len(sigSeg) != 43 {
		t.Fatal("fixture: the payload needs a partial last base64 quantum, the signature 43 characters")
	}
	// payload signs the fixture payload with edits applied: old, new pairs.
	payload := func(edits ...string) string {
		p := jwtPayload
		for i := 0; i+1 < len(edits); i += 2 {
			p = jwtEdit(t, p, edits[i], edits[i+1])
		}
		return jwtSignRaw(key, jwtHeaderJSON, p)
	}
	raw := func(p string) string { return jwtSignRaw(key, jwtHeaderJSON, p) }
	hdr := func(h string) string { return jwtSignRaw(key, h, jwtPayload) }
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	// lowBits sets a low bit of a last base64 character whose low bits must be zero: the same bytes, another spelling.
	lowBits := func(seg string) string {
		i := strings.IndexByte(alphabet, seg[len(seg)-1])
		return seg[:len(seg)-1] + string(alphabet[i|1])
	}
	otherFirst := func(seg string) string {
		if seg[0] == 'A' {
			return "B" + seg[1:]
		}
		return "A" + seg[1:]
	}
	// withMAC signs header.payload segments as given, so only their spelling is wrong.
	withMAC := func(segs string) string {
		return segs + "." + base64.RawURLEncoding.EncodeToString(mac(key, []byte(segs)))
	}
	// Exactly maxTokenBytes: a 3011-byte payload encodes to 4015 characters, 36+1+4015+1+43 = 4096.
	jtiOf := func(payloadLen int) string { return strings.Repeat("j", payloadLen-len(jwtPayload)+len("jti_1")) }
	atLimit := payload(`"jti_1"`, `"`+jtiOf(3011)+`"`)
	overLimit := payload(`"jti_1"`, `"`+jtiOf(3012)+`"`)
	if len(atLimit) != maxTokenBytes || len(overLimit) != maxTokenBytes+1 {
		t.Fatalf("fixture: lengths %d, %d", len(atLimit), len(overLimit))
	}
	c := jwtClaims()
	c.Typ = "refresh"
	refresh := jwtMustSign(t, key, c)

	tests := []struct {
		name, token string
		typ         string // "" is "access"
		want        error  // nil: accepted
	}{
		{"valid", valid, "", nil},
		{"valid refresh", refresh, "refresh", nil},
		{"signed with the previous key", jwtMustSign(t, []byte(jwtPrevKey), jwtClaims()), "", nil},
		{"exactly 4096 bytes", atLimit, "", nil},

		// Size and shape.
		{"4097 bytes", overLimit, "", errMalformedToken},
		{"1 MiB", valid + strings.Repeat("A", 1<<20), "", errMalformedToken},
		{"1 MiB of dots", strings.Repeat(".", 1<<20), "", errMalformedToken},
		{"1 MiB payload, valid mac", raw(strings.Repeat(" ", 1<<20) + jwtPayload), "", errMalformedToken},
		{"empty", "", "", errMalformedToken},
		{"one segment", header, "", errMalformedToken},
		{"two segments", header + "." + payloadSeg, "", errMalformedToken},
		{"four segments", valid + ".x", "", errMalformedToken},
		{"four segments, empty last", valid + ".", "", errMalformedToken},
		{"dots only", "..", "", errMalformedToken},
		{"empty header", "." + payloadSeg + "." + sigSeg, "", errMalformedToken},
		{"empty payload, valid mac", withMAC(header + "."), "", errMalformedToken},
		{"empty signature", header + "." + payloadSeg + ".", "", errMalformedToken},
		{"leading space", " " + valid, "", errMalformedToken},
		{"trailing newline", valid + "\n", "", errMalformedToken},
		{"Bearer prefix", "Bearer " + valid, "", errMalformedToken},
		{"NUL byte", valid[:5] + "\x00" + valid[5:], "", errMalformedToken},

		// The header: only tokenHeader, byte for byte, whatever the MAC.
		{"alg none, valid mac", hdr(`{"alg":"none","typ":"JWT"}`), "", errMalformedToken},
		{"alg none, no signature", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payloadSeg + ".", "", errMalformedToken},
		{"alg None", hdr(`{"alg":"None","typ":"JWT"}`), "", errMalformedToken},
		{"alg HS512", hdr(`{"alg":"HS512","typ":"JWT"}`), "", errMalformedToken},
		{"alg HS384", hdr(`{"alg":"HS384","typ":"JWT"}`), "", errMalformedToken},
		{"alg RS256", hdr(`{"alg":"RS256","typ":"JWT"}`), "", errMalformedToken},
		{"alg hs256 in lower case", hdr(`{"alg":"hs256","typ":"JWT"}`), "", errMalformedToken},
		{"kid added", hdr(`{"alg":"HS256","typ":"JWT","kid":"x"}`), "", errMalformedToken},
		{"jku added", hdr(`{"alg":"HS256","typ":"JWT","jku":"https://evil.example/keys"}`), "", errMalformedToken},
		{"crit added", hdr(`{"alg":"HS256","typ":"JWT","crit":["exp"]}`), "", errMalformedToken},
		{"whitespace in header", hdr(`{"alg":"HS256", "typ":"JWT"}`), "", errMalformedToken},
		{"header members reordered", hdr(`{"typ":"JWT","alg":"HS256"}`), "", errMalformedToken},
		{"no typ in header", hdr(`{"alg":"HS256"}`), "", errMalformedToken},
		{"typ jwt in lower case", hdr(`{"alg":"HS256","typ":"jwt"}`), "", errMalformedToken},
		{"duplicate alg in header", hdr(`{"alg":"none","alg":"HS256","typ":"JWT"}`), "", errMalformedToken},
		{"header with a pad character", tokenHeader + "=." + payloadSeg + "." + sigSeg, "", errMalformedToken},

		// Base64: one spelling only.
		{"signature padded", valid + "=", "", errMalformedToken},
		{"payload padded, valid mac", withMAC(header + "." + base64.URLEncoding.EncodeToString([]byte(jwtPayload))), "", errMalformedToken},
		{"payload in standard base64, valid mac", withMAC(header + "." + base64.StdEncoding.EncodeToString([]byte(jwtPayload+"??>"))), "", errMalformedToken},
		{"'+' in signature", header + "." + payloadSeg + "." + sigSeg[:42] + "+", "", errMalformedToken},
		{"'/' in signature", header + "." + payloadSeg + "." + "/" + sigSeg[1:], "", errMalformedToken},
		{"'*' in signature", header + "." + payloadSeg + "." + sigSeg[:42] + "*", "", errMalformedToken},
		{"signature trailing bits set", header + "." + payloadSeg + "." + lowBits(sigSeg), "", errMalformedToken},
		{"payload trailing bits set, valid mac", withMAC(header + "." + lowBits(payloadSeg)), "", errMalformedToken},
		{"LF inside signature", header + "." + payloadSeg + "." + sigSeg[:10] + "\n" + sigSeg[10:], "", errMalformedToken},
		{"CR inside signature", header + "." + payloadSeg + "." + sigSeg[:10] + "\r" + sigSeg[10:], "", errMalformedToken},
		{"CRLF after signature", valid + "\r\n", "", errMalformedToken},
		{"CR inside payload", header + "." + payloadSeg[:10] + "\r" + payloadSeg[10:] + "." + sigSeg, "", errMalformedToken},
		{"CRLF inside payload, valid mac", withMAC(header + "." + payloadSeg[:10] + "\r\n" + payloadSeg[10:]), "", errMalformedToken},
		{"space inside signature", header + "." + payloadSeg + "." + sigSeg[:10] + " " + sigSeg[10:], "", errMalformedToken},
		{"signature truncated by 4", valid[:len(valid)-4], "", errMalformedToken},
		{"signature truncated by 1", valid[:len(valid)-1], "", errMalformedToken},
		{"signature of 31 bytes", header + "." + payloadSeg + "." + base64.RawURLEncoding.EncodeToString(mac(key, []byte(header+"."+payloadSeg))[:31]), "", errMalformedToken},
		{"signature extended", valid + "AAAA", "", errMalformedToken},
		{"signature doubled", valid + sigSeg, "", errMalformedToken},
		{"signature of SHA-512 length", header + "." + payloadSeg + "." + strings.Repeat("A", 86), "", errMalformedToken},

		// The signature.
		{"signature of an unknown key", jwtMustSign(t, []byte(jwtOtherKey), jwtClaims()), "", errBadSignature},
		{"payload changed, signature kept", header + "." + base64.RawURLEncoding.EncodeToString([]byte(jwtEdit(t, jwtPayload, "user_1", "user_2"))) + "." + sigSeg, "", errBadSignature},
		{"first signature character changed", header + "." + payloadSeg + "." + otherFirst(sigSeg), "", errBadSignature},
		{"signature all zero", header + "." + payloadSeg + "." + strings.Repeat("A", 43), "", errBadSignature},
		{"signature of another token", header + "." + payloadSeg + "." + refresh[strings.LastIndexByte(refresh, '.')+1:], "", errBadSignature},
		{"alg none header, our signature", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payloadSeg + "." + sigSeg, "", errMalformedToken},

		// The payload JSON, behind a valid MAC.
		{"payload not JSON", raw("not json"), "", errMalformedToken},
		{"payload empty object", raw("{}"), "", errMalformedToken},
		{"payload null", raw("null"), "", errMalformedToken},
		{"payload a string", raw(`"` + strings.ReplaceAll(jwtPayload, `"`, `\"`) + `"`), "", errMalformedToken},
		{"payload an array", raw("[" + jwtPayload + "]"), "", errMalformedToken},
		{"two objects", raw(jwtPayload + jwtPayload), "", errMalformedToken},
		{"trailing garbage", raw(jwtPayload + "x"), "", errMalformedToken},
		{"trailing comma in object", payload(`840}`, `840,}`), "", errMalformedToken},
		{"truncated object", raw(jwtPayload[:len(jwtPayload)-1]), "", errMalformedToken},
		{"byte order mark", raw("\ufeff" + jwtPayload), "", errMalformedToken},
		{"duplicate sub", payload(`"sub":"user_1"`, `"sub":"user_1","sub":"user_2"`), "", errMalformedToken},
		{"duplicate iss, same value", payload(`"aud"`, `"iss":"https://api.example.com","aud"`), "", errMalformedToken},
		{"duplicate iss spelled \\u0069ss", payload(`"aud"`, `"\u0069ss":"https://evil.example.com","aud"`), "", errMalformedToken},
		{"duplicate exp spelled \\u0065xp", payload(`,"exp":1700000840`, `,"exp":1700000840,"\u0065xp":9999999999`), "", errMalformedToken},
		{"duplicate typ, second refresh", payload(`"jti"`, `"typ":"refresh","jti"`), "refresh", errMalformedToken},
		{"ISS in upper case", payload(`"iss"`, `"ISS"`), "", errMalformedToken},
		{"Sub capitalised", payload(`"sub"`, `"Sub"`), "", errMalformedToken},
		{"ISS added beside iss", payload(`"aud"`, `"ISS":"https://evil.example.com","aud"`), "", errMalformedToken},
		{"sub with a trailing space in its name", payload(`"sub"`, `"sub "`), "", errMalformedToken},
		{"unknown claim", payload(`"jti":"jti_1",`, `"jti":"jti_1","admin":true,`), "", errMalformedToken},
		{"nbf added", payload(`"jti":"jti_1",`, `"jti":"jti_1","nbf":1699999940,`), "", errMalformedToken},
		{"roles added", payload(`"jti":"jti_1",`, `"jti":"jti_1","roles":["admin"],`), "", errMalformedToken},
		{"empty name added", payload(`"jti":"jti_1",`, `"jti":"jti_1","":"x",`), "", errMalformedToken},
		{"missing iss", payload(`"iss":"https://api.example.com",`, ``), "", errMalformedToken},
		{"missing aud", payload(`"aud":"dashboard",`, ``), "", errMalformedToken},
		{"missing sub", payload(`"sub":"user_1",`, ``), "", errMalformedToken},
		{"missing email", payload(`"email":"ada@example.com",`, ``), "", errMalformedToken},
		{"missing org", payload(`"org":"org_acme",`, ``), "", errMalformedToken},
		{"missing sid", payload(`"sid":"sess_1",`, ``), "", errMalformedToken},
		{"missing typ", payload(`"typ":"access",`, ``), "", errMalformedToken},
		{"missing jti", payload(`"jti":"jti_1",`, ``), "", errMalformedToken},
		{"missing iat", payload(`"iat":1699999940,`, ``), "", errMalformedToken},
		{"missing exp", payload(`,"exp":1700000840`, ``), "", errMalformedToken},
		{"empty sub", payload(`"sub":"user_1"`, `"sub":""`), "", errMalformedToken},
		{"empty email", payload(`"email":"ada@example.com"`, `"email":""`), "", errMalformedToken},
		{"sid null", payload(`"sid":"sess_1"`, `"sid":null`), "", errMalformedToken},
		{"sid true", payload(`"sid":"sess_1"`, `"sid":true`), "", errMalformedToken},
		{"sub a number", payload(`"sub":"user_1"`, `"sub":1`), "", errMalformedToken},
		{"unknown typ", payload(`"typ":"access"`, `"typ":"admin"`), "admin", errMalformedToken},
		{"aud an array", payload(`"aud":"dashboard"`, `"aud":["dashboard"]`), "", errMalformedToken},
		{"sub a nested object", payload(`"sub":"user_1"`, `"sub":{"id":"user_1"}`), "", errMalformedToken},
		{"exp a nested object", payload(`"exp":1700000840`, `"exp":{"$gt":0}`), "", errMalformedToken},
		{"exp null", payload(`"exp":1700000840`, `"exp":null`), "", errMalformedToken},
		{"exp as a string", payload(`"exp":1700000840`, `"exp":"1700000840"`), "", errMalformedToken},
		{"iat as a string \"1\"", payload(`"iat":1699999940`, `"iat":"1"`), "", errMalformedToken},
		{"exp as 1.0 form", payload(`"exp":1700000840`, `"exp":1700000840.0`), "", errMalformedToken},
		{"exp in exponent form", payload(`"exp":1700000840`, `"exp":1.70000084e9`), "", errMalformedToken},
		{"exp as 1e10", payload(`"exp":1700000840`, `"exp":1e10`), "", errMalformedToken},
		{"exp as 1E10", payload(`"exp":1700000840`, `"exp":1E10`), "", errMalformedToken},
		{"exp negative", payload(`"exp":1700000840`, `"exp":-1700000840`), "", errMalformedToken},
		{"iat negative", payload(`"iat":1699999940`, `"iat":-1`), "", errMalformedToken},
		{"exp minus zero", payload(`"exp":1700000840`, `"exp":-0`), "", errMalformedToken},
		{"exp with a leading zero", payload(`"exp":1700000840`, `"exp":01700000840`), "", errMalformedToken},
		{"exp with a leading plus", payload(`"exp":1700000840`, `"exp":+1700000840`), "", errMalformedToken},
		{"exp beyond year 9999", payload(`"exp":1700000840`, `"exp":253402300800`), "", errMalformedToken},
		{"exp int64 max", payload(`"exp":1700000840`, `"exp":9223372036854775807`), "", errMalformedToken},
		{"exp beyond int64", payload(`"exp":1700000840`, `"exp":9223372036854775808`), "", errMalformedToken},
		{"exp of 400 digits", payload(`"exp":1700000840`, `"exp":1`+strings.Repeat("0", 400)), "", errMalformedToken},
		{"iat zero", payload(`"iat":1699999940`, `"iat":0`), "", errMalformedToken},
		{"exp equal to iat", payload(`"exp":1700000840`, `"exp":1699999940`), "", errMalformedToken},
		{"exp before iat", payload(`"exp":1700000840`, `"exp":1699999939`), "", errMalformedToken},
		{"invalid UTF-8 in sub", payload(`"user_1"`, "\"user_\xff\""), "", errMalformedToken},
		{"invalid UTF-8 in a name", payload(`"sub"`, "\"s\xffub\""), "", errMalformedToken},
		{"overlong UTF-8 slash in iss", payload(`"https://api.example.com"`, "\"https:\xc0\xaf\xc0\xafapi.example.com\""), "", errMalformedToken},
		{"lone surrogate escape in sub", payload(`"user_1"`, `"user_\ud800"`), "", errMalformedToken},
		{"U+FFFD in sub", payload(`"user_1"`, `"user_\ufffd"`), "", errMalformedToken},
		{"raw control byte in sub", payload(`"user_1"`, "\"user\x01_1\""), "", errMalformedToken},
		{"escaped NUL in sub", payload(`"user_1"`, `"user_1\u0000"`), "", errMalformedToken},
		{"escaped newline in email", payload(`"ada@example.com"`, `"ada@example.com\r\nBcc: eve@example.com"`), "", errMalformedToken},
		{"escaped quote in sub", payload(`"user_1"`, `"user_\"1"`), "", errMalformedToken},
		{"escaped backslash in sub", payload(`"user_1"`, `"user_\\1"`), "", errMalformedToken},

		// Claims that do not match this verifier.
		{"wrong iss", payload(`"iss":"https://api.example.com"`, `"iss":"https://evil.example.com"`), "", errWrongClaim},
		{"iss with a trailing slash", payload(`"iss":"https://api.example.com"`, `"iss":"https://api.example.com/"`), "", errWrongClaim},
		{"iss in upper case", payload(`"iss":"https://api.example.com"`, `"iss":"HTTPS://API.EXAMPLE.COM"`), "", errWrongClaim},
		{"wrong aud", payload(`"aud":"dashboard"`, `"aud":"other"`), "", errWrongClaim},
		{"aud Dashboard", payload(`"aud":"dashboard"`, `"aud":"Dashboard"`), "", errWrongClaim},
		{"refresh where access is expected", refresh, "access", errWrongClaim},
		{"access where refresh is expected", valid, "refresh", errWrongClaim},
		{"wrong iss and expired", payload(`"iss":"https://api.example.com"`, `"iss":"https://evil.example.com"`,
			`"iat":1699999940`, `"iat":1699990000`, `"exp":1700000840`, `"exp":1699990001`), "", errWrongClaim},

		// Time, at the verifier's clock jwtNow (the edges are in TestVerifyTokenClock).
		{"expired 61 s ago", payload(`"iat":1699999940`, `"iat":1699999000`, `"exp":1700000840`, `"exp":1699999939`), "", errTokenExpired},
		{"expired 60 s ago", payload(`"iat":1699999940`, `"iat":1699999000`, `"exp":1700000840`, `"exp":1699999940`), "", errTokenExpired},
		{"expired 59 s ago", payload(`"iat":1699999940`, `"iat":1699999000`, `"exp":1700000840`, `"exp":1699999941`), "", nil},
		{"issued 61 s ahead", payload(`"iat":1699999940`, `"iat":1700000061`), "", errTokenFromFuture},
		{"issued 60 s ahead", payload(`"iat":1699999940`, `"iat":1700000060`), "", nil},
		{"issued a day ahead", payload(`"iat":1699999940`, `"iat":1700086400`, `"exp":1700000840`, `"exp":1700090000`), "", errTokenFromFuture},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ := cmp.Or(tc.typ, "access")
			c, err := verifyToken(tc.token, jwtKeys(), jwtIssuer, typ, time.Unix(jwtNow, 0))
			wantTokenErr(t, err, tc.want)
			if tc.want == nil {
				// What was accepted re-verifies, and re-signs to a token that verifies to the same claims.
				again, err := verifyToken(jwtMustSign(t, []byte(jwtKey), c), jwtKeys(), jwtIssuer, typ, time.Unix(jwtNow, 0))
				if err != nil || again != c {
					t.Fatalf("re-signed claims: %+v, %v; want %+v", again, err, c)
				}
				return
			}
			if c != (claims{}) {
				t.Fatalf("claims returned with an error: %+v", c)
			}
			// Tokens are credentials: an error never repeats one (here, its signature).
			if i := strings.LastIndexByte(tc.token, '.'); i >= 0 && len(tc.token)-i > 20 && strings.Contains(err.Error(), tc.token[i+1:]) {
				t.Fatalf("the error quotes the token: %v", err)
			}
		})
	}
}

// TestVerifyTokenClock checks the exact edges of the 60 s leeway on both sides: valid before exp+60 s, and from iat-60 s.
func TestVerifyTokenClock(t *testing.T) {
	t.Parallel()
	c := jwtClaims() // iat = jwtNow-60, exp = jwtNow+840
	tok := jwtMustSign(t, []byte(jwtKey), c)
	exp, iat := time.Unix(c.Exp, 0), time.Unix(c.Iat, 0)
	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"at iat", iat, nil},
		{"just before exp", exp.Add(-time.Nanosecond), nil},
		{"at exp, inside the leeway", exp, nil},
		{"59 s after exp", exp.Add(59 * time.Second), nil},
		{"last nanosecond of the leeway", exp.Add(60*time.Second - time.Nanosecond), nil},
		{"60 s after exp", exp.Add(60 * time.Second), errTokenExpired},
		{"61 s after exp", exp.Add(61 * time.Second), errTokenExpired},
		{"a year after exp", exp.AddDate(1, 0, 0), errTokenExpired},
		{"in the year 9999", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), errTokenExpired},
		{"iat 59 s ahead of the clock", iat.Add(-59 * time.Second), nil},
		{"iat 60 s ahead of the clock", iat.Add(-60 * time.Second), nil},
		{"iat 60.5 s ahead of the clock", iat.Add(-60*time.Second - 500*time.Millisecond), errTokenFromFuture},
		{"iat 61 s ahead of the clock", iat.Add(-61 * time.Second), errTokenFromFuture},
		{"iat 10 minutes ahead of the clock", iat.Add(-10 * time.Minute), errTokenFromFuture},
		{"the zero time", time.Time{}, errTokenFromFuture},
		{"the Unix epoch", time.Unix(0, 0), errTokenFromFuture},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := verifyToken(tok, jwtKeys(), jwtIssuer, "access", tc.now)
			wantTokenErr(t, err, tc.want)
			if err == nil && got != c {
				t.Fatalf("claims %+v, want %+v", got, c)
			}
		})
	}
}

// TestVerifyTokenKeys: the current key and the previous one (JWT_SECRET_PREVIOUS) verify; any other does not.
func TestVerifyTokenKeys(t *testing.T) {
	t.Parallel()
	cur, prev, other := []byte(jwtKey), []byte(jwtPrevKey), []byte(jwtOtherKey)
	tests := []struct {
		name   string
		signer []byte
		keys   [][]byte
		want   error
	}{
		{"current key", cur, [][]byte{cur, prev}, nil},
		{"current key alone", cur, [][]byte{cur}, nil},
		{"previous key still accepted", prev, [][]byte{cur, prev}, nil},
		{"previous key once retired", prev, [][]byte{cur}, errBadSignature},
		{"unknown key", other, [][]byte{cur, prev}, errBadSignature},
		{"current key with a byte more", append([]byte(jwtKey), 'x'), [][]byte{cur, prev}, errBadSignature},
		{"current key with a byte less", cur[:len(cur)-1], [][]byte{cur, prev}, errBadSignature},
		{"no keys at all", cur, nil, errBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := verifyToken(jwtMustSign(t, tc.signer, jwtClaims()), tc.keys, jwtIssuer, "access", time.Unix(jwtNow, 0))
			wantTokenErr(t, err, tc.want)
		})
	}
}

// TestSignTokenRefuses: signToken writes only claims verifyToken would accept, and nothing over 4096 bytes.
func TestSignTokenRefuses(t *testing.T) {
	t.Parallel()
	fits := 4096 - len(jwtMustSign(t, []byte(jwtKey), jwtClaims())) // characters of room left in the token
	tests := []struct {
		name string
		edit func(*claims)
		ok   bool
	}{
		{"the fixture", func(*claims) {}, true},
		{"exp at the year 9999 limit", func(c *claims) { c.Exp = maxUnix }, true},
		{"a token of exactly 4096 bytes", func(c *claims) { c.Jti += strings.Repeat("j", fits*3/4) }, true},
		{"DEL and non-ASCII are fine", func(c *claims) { c.Sub = "user\x7f_ü" }, true},
		{"empty iss", func(c *claims) { c.Iss = "" }, false},
		{"empty aud", func(c *claims) { c.Aud = "" }, false},
		{"empty sub", func(c *claims) { c.Sub = "" }, false},
		{"empty email", func(c *claims) { c.Email = "" }, false},
		{"empty org", func(c *claims) { c.Org = "" }, false},
		{"empty sid", func(c *claims) { c.Sid = "" }, false},
		{"empty jti", func(c *claims) { c.Jti = "" }, false},
		{"typ neither access nor refresh", func(c *claims) { c.Typ = "admin" }, false},
		{"no iat", func(c *claims) { c.Iat = 0 }, false},
		{"negative iat", func(c *claims) { c.Iat = -5 }, false},
		{"exp equal to iat", func(c *claims) { c.Exp = c.Iat }, false},
		{"exp beyond the year 9999", func(c *claims) { c.Exp = maxUnix + 1 }, false},
		{"a quote in sub", func(c *claims) { c.Sub = `user"1` }, false},
		{"a backslash in org", func(c *claims) { c.Org = `org\1` }, false},
		{"a newline in email", func(c *claims) { c.Email = "ada@example.com\r\nBcc: eve@example.com" }, false},
		{"a NUL in sid", func(c *claims) { c.Sid = "sess\x00" }, false},
		{"invalid UTF-8 in sub", func(c *claims) { c.Sub = "user\xff" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := jwtClaims()
			tc.edit(&c)
			tok, err := signToken([]byte(jwtKey), c)
			if (err == nil) != tc.ok || (tok != "") != tc.ok {
				t.Fatalf("signToken = %q, %v; want ok %v", tok, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			got, err := verifyToken(tok, jwtKeys(), jwtIssuer, "access", time.Unix(c.Iat, 0))
			if err != nil || got != c {
				t.Fatalf("the token verifies to %+v, %v", got, err)
			}
		})
	}
	c := jwtClaims()
	c.Jti += strings.Repeat("j", fits*3/4+3) // a token over 4096 bytes
	if tok, err := signToken([]byte(jwtKey), c); !errors.Is(err, errMalformedToken) || tok != "" {
		t.Fatalf("over 4096 bytes: %q, %v", tok, err)
	}
}

// TestVerifyTokenInterop (issue 9, finding 9): the claims are ordinary JSON, so a token another library signs with the
// key over the same claims, in its own spelling, is accepted with the very same claims. The payloads are written by
// hand or by encoding/json and signed with HMAC-SHA256 here, not by signToken.
func TestVerifyTokenInterop(t *testing.T) {
	t.Parallel()
	want := jwtClaims()
	std := func(indent string, escapeHTML bool, v any) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", indent)
		enc.SetEscapeHTML(escapeHTML)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return b.String() // with the encoder's trailing newline: insignificant whitespace too
	}
	asMap := map[string]any{"iss": want.Iss, "aud": want.Aud, "sub": want.Sub, "email": want.Email, "org": want.Org,
		"sid": want.Sid, "typ": want.Typ, "jti": want.Jti, "iat": want.Iat, "exp": want.Exp}
	html := want
	html.Email = "o'brien+<tag>&x@example.com"
	htmlMap := map[string]any{}
	for k, v := range asMap {
		htmlMap[k] = v
	}
	htmlMap["email"] = html.Email
	tests := []struct {
		name, payload string
		want          claims
	}{
		{"reversed member order",
			`{"exp":1700000840,"iat":1699999940,"jti":"jti_1","typ":"access","sid":"sess_1","org":"org_acme","email":"ada@example.com","sub":"user_1","aud":"dashboard","iss":"https://api.example.com"}`, want},
		{"numbers first, strings after",
			`{"iat":1699999940,"exp":1700000840,"sub":"user_1","iss":"https://api.example.com","typ":"access","aud":"dashboard","org":"org_acme","jti":"jti_1","sid":"sess_1","email":"ada@example.com"}`, want},
		{"a space after every colon and comma",
			`{"iss": "https://api.example.com", "aud": "dashboard", "sub": "user_1", "email": "ada@example.com", "org": "org_acme", "sid": "sess_1", "typ": "access", "jti": "jti_1", "iat": 1699999940, "exp": 1700000840}`, want},
		{"whitespace everywhere JSON allows it",
			" \t\r\n{ \"iss\" :\t\"https://api.example.com\" ,\r\n \"aud\" : \"dashboard\" , \"sub\":\"user_1\",\n\"email\":\"ada@example.com\",\"org\":\"org_acme\",\"sid\":\"sess_1\",\"typ\":\"access\",\"jti\":\"jti_1\",\"iat\" : 1699999940 ,\"exp\":1700000840\n}\n ", want},
		{"escaped slashes",
			`{"iss":"https:\/\/api.example.com","aud":"dashboard","sub":"user_1","email":"ada@example.com","org":"org_acme","sid":"sess_1","typ":"access","jti":"jti_1","iat":1699999940,"exp":1700000840}`, want},
		{"unicode escapes in values",
			`{"iss":"https:\u002f\u002fapi.example.com","aud":"\u0064ashboard","sub":"\u0075ser_1","email":"ada\u0040example.com","org":"org\u005Facme","sid":"sess_1","typ":"access","jti":"jti_1","iat":1699999940,"exp":1700000840}`, want},
		{"unicode escapes in names",
			`{"\u0069ss":"https://api.example.com","aud":"dashboard","s\u0075b":"user_1","email":"ada@example.com","org":"org_acme","sid":"sess_1","\u0074\u0079\u0070":"access","jti":"jti_1","iat":1699999940,"\u0065xp":1700000840}`, want},
		{"a surrogate pair escape", strings.Replace(jwtPayload, `"user_1"`, `"user_\ud83d\ude00"`, 1),
			func() claims { c := want; c.Sub = "user_😀"; return c }()},
		{"encoding/json, sorted members", std("", true, asMap), want},
		{"encoding/json, indented", std("  ", true, asMap), want},
		{"encoding/json, HTML escaped as \\u003c \\u0026", std("", true, htmlMap), html},
		{"encoding/json, HTML not escaped", std("", false, htmlMap), html},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := jwtSignRaw([]byte(jwtKey), jwtHeaderJSON, tc.payload)
			got, err := verifyToken(tok, jwtKeys(), jwtIssuer, "access", time.Unix(jwtNow, 0))
			if err != nil {
				t.Fatalf("refused %s: %v", tc.payload, err)
			}
			if got != tc.want {
				t.Fatalf("claims %+v, want %+v", got, tc.want)
			}
			// Our own spelling of the same claims verifies to the same claims too.
			if again, err := verifyToken(jwtMustSign(t, []byte(jwtKey), got), jwtKeys(), jwtIssuer, "access", time.Unix(jwtNow, 0)); err != nil || again != got {
				t.Fatalf("re-signed: %+v, %v", again, err)
			}
		})
	}
}

// TestJWTSharedVectors: every case of the shared vectors (testdata/vectors/jwt-access.json, a copy of
// /work/shared/vectors/jwt-access.json) gets its stated verdict.
func TestJWTSharedVectors(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors", "jwt-access.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Secret string
		APIURL string `json:"api_url"`
		Now    int64
		Cases  []struct{ Name, Token, Want string }
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) < 20 || v.Secret == "" || v.APIURL == "" {
		t.Fatalf("vectors: %d cases, secret %q, api_url %q", len(v.Cases), v.Secret, v.APIURL)
	}
	keys, now := [][]byte{[]byte(v.Secret)}, time.Unix(v.Now, 0)
	for _, tc := range v.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			c, err := verifyToken(tc.Token, keys, v.APIURL, "access", now)
			switch tc.Want {
			case "accept":
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if again, err := verifyToken(jwtMustSign(t, keys[0], c), keys, v.APIURL, "access", now); err != nil || again != c {
					t.Fatalf("re-signed: %+v, %v", again, err)
				}
			case "reject":
				if !isTokenRejection(err) {
					t.Fatalf("err = %v, want one of the token errors", err)
				}
			default:
				t.Fatalf("verdict %q", tc.Want)
			}
		})
	}
}

// jwtParseTarget is a set of fields for parseObject tests: two strings and an integer.
type jwtParseTarget struct {
	email, code string
	iat         int64
}

func (p *jwtParseTarget) fields() []field {
	return []field{{"email", &p.email, nil}, {"code", &p.code, nil}, {"iat", nil, &p.iat}}
}

func TestParseObject(t *testing.T) {
	t.Parallel()
	deepObject := strings.Repeat(`{"email":`, 100000)
	tests := []struct {
		name, body, reason string
		want               jwtParseTarget // when reason is ""
	}{
		{"one member", `{"email":"ada@example.com"}`, "", jwtParseTarget{email: "ada@example.com"}},
		{"all members", `{"email":"a","code":"123456","iat":17}`, "", jwtParseTarget{"a", "123456", 17}},
		{"any order", `{"iat":0,"code":"1","email":"a"}`, "", jwtParseTarget{"a", "1", 0}},
		{"empty object", `{}`, "", jwtParseTarget{}},
		{"whitespace around and inside", " \r\n\t{ \"email\" : \"a\" ,\n\"code\":\"b\" } \n", "", jwtParseTarget{email: "a", code: "b"}},
		{"escapes decoded", `{"email":"a\/b\u0040c\n\"\\"}`, "", jwtParseTarget{email: "a/b@c\n\"\\"}},
		{"escaped name", `{"\u0065mail":"a"}`, "", jwtParseTarget{email: "a"}},
		{"empty string", `{"email":""}`, "", jwtParseTarget{}},
		{"invalid UTF-8 is refused", "{\"email\":\"a\xffb\"}", "invalid_email", jwtParseTarget{}},
		{"lone surrogate becomes U+FFFD", `{"email":"\ud800"}`, "", jwtParseTarget{email: "\ufffd"}},
		{"a string of brackets", `{"email":"` + strings.Repeat("[", 10000) + `"}`, "", jwtParseTarget{email: strings.Repeat("[", 10000)}},
		{"a 1 MiB string", `{"email":"` + strings.Repeat("x", 1<<20) + `"}`, "", jwtParseTarget{email: strings.Repeat("x", 1<<20)}},
		{"int64 max", `{"iat":9223372036854775807}`, "", jwtParseTarget{iat: 9223372036854775807}},

		// Not one JSON object.
		{"empty", ``, "invalid_json", jwtParseTarget{}},
		{"whitespace only", " \n", "invalid_json", jwtParseTarget{}},
		{"null", `null`, "invalid_json", jwtParseTarget{}},
		{"true", `true`, "invalid_json", jwtParseTarget{}},
		{"a number", `1`, "invalid_json", jwtParseTarget{}},
		{"a string", `"x"`, "invalid_json", jwtParseTarget{}},
		{"an array", `[]`, "invalid_json", jwtParseTarget{}},
		{"an array of the object", `[{"email":"a"}]`, "invalid_json", jwtParseTarget{}},
		{"deep arrays", strings.Repeat("[", 100000), "invalid_json", jwtParseTarget{}},
		{"byte order mark", "\ufeff{\"email\":\"a\"}", "invalid_json", jwtParseTarget{}},
		{"unterminated object", `{"email":"a"`, "invalid_json", jwtParseTarget{}},
		{"unterminated string", `{"email":"a`, "invalid_email", jwtParseTarget{}},
		{"missing colon", `{"email" "a"}`, "invalid_json", jwtParseTarget{}},
		{"missing comma", `{"email":"a" "code":"b"}`, "invalid_json", jwtParseTarget{}},
		{"trailing comma", `{"email":"a",}`, "invalid_json", jwtParseTarget{}},
		{"single quotes", `{'email':'a'}`, "invalid_json", jwtParseTarget{}},
		{"bare name", `{email:"a"}`, "invalid_json", jwtParseTarget{}},
		{"number as name", `{1:"a"}`, "invalid_json", jwtParseTarget{}},
		{"raw NUL in string", "{\"email\":\"a\x00\"}", "invalid_email", jwtParseTarget{}},
		{"raw newline in string", "{\"email\":\"a\nb\"}", "invalid_email", jwtParseTarget{}},
		{"bad escape", `{"email":"\x41"}`, "invalid_email", jwtParseTarget{}},
		{"short unicode escape", `{"email":"\u41"}`, "invalid_email", jwtParseTarget{}},
		{"leading zero", `{"iat":01}`, "invalid_iat", jwtParseTarget{}},
		{"comment", `{"email":"a"/* x */}`, "invalid_json", jwtParseTarget{}},

		// Trailing data.
		{"a second object", `{"email":"a"}{}`, "invalid_json", jwtParseTarget{}},
		{"a second object after a space", `{"email":"a"} {"email":"b"}`, "invalid_json", jwtParseTarget{}},
		{"garbage after", `{"email":"a"} x`, "invalid_json", jwtParseTarget{}},
		{"a closing brace more", `{"email":"a"}}`, "invalid_json", jwtParseTarget{}},
		{"NUL after", "{\"email\":\"a\"}\x00", "invalid_json", jwtParseTarget{}},
		{"a number after", `{"email":"a"}1`, "invalid_json", jwtParseTarget{}},

		// Members.
		{"unknown member", `{"email":"a","admin":true}`, "unknown_field", jwtParseTarget{}},
		{"unknown member first", `{"admin":true,"email":"a"}`, "unknown_field", jwtParseTarget{}},
		{"unknown member with deep value", `{"x":` + strings.Repeat("[", 100000), "unknown_field", jwtParseTarget{}},
		{"case variant Email", `{"Email":"a"}`, "unknown_field", jwtParseTarget{}},
		{"case variant EMAIL", `{"EMAIL":"a"}`, "unknown_field", jwtParseTarget{}},
		{"name with a trailing space", `{"email ":"a"}`, "unknown_field", jwtParseTarget{}},
		{"name with a NUL", `{"email\u0000":"a"}`, "unknown_field", jwtParseTarget{}},
		{"empty name", `{"":"a"}`, "unknown_field", jwtParseTarget{}},
		{"Kelvin sign for k", `{"\u212aey":"a"}`, "unknown_field", jwtParseTarget{}},
		{"duplicate", `{"email":"a","email":"b"}`, "duplicate_field", jwtParseTarget{}},
		{"duplicate, same value", `{"email":"a","email":"a"}`, "duplicate_field", jwtParseTarget{}},
		{"duplicate spelled with an escape", `{"email":"a","\u0065mail":"b"}`, "duplicate_field", jwtParseTarget{}},
		{"duplicate integer", `{"iat":1,"code":"x","iat":2}`, "duplicate_field", jwtParseTarget{}},

		// Values of the wrong kind.
		{"number for a string", `{"email":1}`, "invalid_email", jwtParseTarget{}},
		{"null for a string", `{"email":null}`, "invalid_email", jwtParseTarget{}},
		{"true for a string", `{"code":true}`, "invalid_code", jwtParseTarget{}},
		{"object for a string", `{"email":{"$ne":1}}`, "invalid_email", jwtParseTarget{}},
		{"array for a string", `{"email":["a"]}`, "invalid_email", jwtParseTarget{}},
		{"deep nesting", deepObject, "invalid_email", jwtParseTarget{}},
		{"deep arrays as a value", `{"code":` + strings.Repeat("[", 100000), "invalid_code", jwtParseTarget{}},
		{"string for an integer", `{"iat":"1"}`, "invalid_iat", jwtParseTarget{}},
		{"null for an integer", `{"iat":null}`, "invalid_iat", jwtParseTarget{}},
		{"1.0", `{"iat":1.0}`, "invalid_json", jwtParseTarget{}},
		{"1e9", `{"iat":1e9}`, "invalid_json", jwtParseTarget{}},
		{"1E9", `{"iat":1E9}`, "invalid_json", jwtParseTarget{}},
		{"negative", `{"iat":-1}`, "invalid_iat", jwtParseTarget{}},
		{"minus zero", `{"iat":-0}`, "invalid_iat", jwtParseTarget{}},
		{"beyond int64", `{"iat":9223372036854775808}`, "invalid_iat", jwtParseTarget{}},
		{"20 digits", `{"iat":10000000000000000000}`, "invalid_iat", jwtParseTarget{}},
		{"huge number", `{"iat":1` + strings.Repeat("0", 10000) + `}`, "invalid_iat", jwtParseTarget{}},
		{"object for an integer", `{"iat":{}}`, "invalid_iat", jwtParseTarget{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got jwtParseTarget
			reason := parseObject([]byte(tc.body), got.fields())
			if reason != tc.reason {
				t.Fatalf("parseObject(%.60q) = %q, want %q", tc.body, reason, tc.reason)
			}
			if reason == "" && got != tc.want {
				t.Fatalf("parseObject(%.60q) read %.60q, %.60q, %d", tc.body, got.email, got.code, got.iat)
			}
		})
	}
}

// TestJSONBodiesThroughRoutes: the reasons reach the client as 400 {"error": reason}, and decodeBody adds missing_<name>.
func TestJSONBodiesThroughRoutes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, testEnv())
	tests := []struct {
		path, body string
		status     int
		reason     string
	}{
		{"/v2/user/login_code/", `{"email":"ada@example.com"`, http.StatusBadRequest, "invalid_json"},
		{"/v2/user/login_code/", `{"email":"ada@example.com"} {}`, http.StatusBadRequest, "invalid_json"},
		{"/v2/user/login_code/", `{"email":"ada@example.com","admin":true}`, http.StatusBadRequest, "unknown_field"},
		{"/v2/user/login_code/", `{"EMAIL":"ada@example.com"}`, http.StatusBadRequest, "unknown_field"},
		{"/v2/user/login_code/", `{"email":"eve@example.com","\u0065mail":"ada@example.com"}`, http.StatusBadRequest, "duplicate_field"},
		{"/v2/user/login_code/", `{"email":["ada@example.com"]}`, http.StatusBadRequest, "invalid_email"},
		{"/v2/user/login_code/", `{}`, http.StatusBadRequest, "missing_email"},
		{"/v2/user/login_code/", `{"email":""}`, http.StatusBadRequest, "missing_email"},
		{"/v2/user/login_code/verify/", `{"email":"ada@example.com"}`, http.StatusBadRequest, "missing_code"},
		{"/v2/user/login_code/verify/", `{"email":"ada@example.com","code":123456}`, http.StatusBadRequest, "invalid_code"},
		{"/v2/user/login_code/", `{"email":"` + strings.Repeat("a", 16<<10) + `"}`, http.StatusRequestEntityTooLarge, "body_too_large"},
	}
	for _, tc := range tests {
		r := ts.post(tc.path, tc.body)
		if r.Code != tc.status || r.field("error") != tc.reason || len(r.json) != 1 {
			t.Errorf("POST %s %.50q: %d %s, want %d {\"error\":%q}", tc.path, tc.body, r.Code, r.Body, tc.status, tc.reason)
		}
	}
	ts.background.Wait()
	if n := len(ts.mails.sent()); n != 0 {
		t.Errorf("refused bodies sent %d mails", n)
	}
}

// jwtReadFuzzString reads the one string argument of a corpus file of go test fuzz v1.
func jwtReadFuzzString(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	arg, ok := strings.CutPrefix(lines[len(lines)-1], "string(")
	s, err := strconv.Unquote(strings.TrimSuffix(arg, ")"))
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !ok || err != nil {
		t.Fatalf("%s is not one string of go test fuzz v1", path)
	}
	return s
}

// TestFuzzVerifyTokenCorpus: the stored corpus was made with this file's keys, issuer and clock, so its valid tokens
// still verify and the fuzzer starts from tokens that reach every check.
func TestFuzzVerifyTokenCorpus(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "fuzz", "FuzzVerifyToken")
	for name, typ := range map[string]string{"valid_current_key": "access", "valid_previous_key": "access", "refresh_token": "refresh"} {
		if _, err := verifyToken(jwtReadFuzzString(t, filepath.Join(dir, name)), jwtKeys(), jwtIssuer, typ, time.Unix(jwtNow, 0)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := jwtReadFuzzString(t, filepath.Join(dir, "valid_current_key")); got != jwtMustSign(t, []byte(jwtKey), jwtClaims()) {
		t.Errorf("valid_current_key is not signToken's spelling of jwtClaims: %s", got)
	}
}

// FuzzVerifyToken: verifyToken never panics and refuses only with its sentinels; what it accepts is for this verifier,
// verifies again to the same claims, and its claims re-sign to a token that verifies to them. Each input is tried as a
// token and as a payload signed with a valid MAC, so mutations reach the JSON checks behind the signature.
func FuzzVerifyToken(f *testing.F) {
	c := jwtClaims()
	f.Add(jwtMustSign(f, []byte(jwtKey), c))
	f.Add(jwtPayload)
	f.Add(strings.Replace(jwtPayload, `"iss"`, `"\u0069ss"`, 1))
	f.Add(strings.Replace(jwtPayload, `"aud"`, `"\u0069ss":"x","aud"`, 1))
	f.Add(strings.Replace(jwtPayload, `"sub"`, `"SUB"`, 1))
	f.Add(strings.Replace(jwtPayload, `https://`, `https:\/\/`, 1))
	f.Add(strings.Replace(jwtPayload, `1700000840`, `1.70000084e9`, 1))
	f.Add(jwtPayload + jwtPayload)
	f.Add("")
	now := time.Unix(jwtNow, 0)
	f.Fuzz(func(t *testing.T, s string) {
		check := func(token string) {
			for _, typ := range []string{"access", "refresh"} {
				c, err := verifyToken(token, jwtKeys(), jwtIssuer, typ, now)
				if err != nil {
					if !isTokenRejection(err) {
						t.Fatalf("refused with an unclassified error: %v", err)
					}
					if c != (claims{}) {
						t.Fatalf("claims with an error: %+v", c)
					}
					continue
				}
				if c.Iss != jwtIssuer || c.Aud != "dashboard" || c.Typ != typ || checkShape(c) != nil ||
					now.Unix()-c.Exp >= leeway || c.Iat-now.Unix() > leeway {
					t.Fatalf("accepted claims %+v", c)
				}
				if again, err := verifyToken(token, jwtKeys(), jwtIssuer, typ, now); err != nil || again != c {
					t.Fatalf("verifies once as %+v, then as %+v, %v", c, again, err)
				}
				resigned, err := signToken([]byte(jwtKey), c)
				if err != nil {
					t.Fatalf("accepted claims %+v do not sign: %v", c, err)
				}
				if again, err := verifyToken(resigned, jwtKeys(), jwtIssuer, typ, now); err != nil || again != c {
					t.Fatalf("claims %+v re-signed verify as %+v, %v", c, again, err)
				}
			}
		}
		check(s)
		check(jwtSignRaw([]byte(jwtKey), jwtHeaderJSON, s))
	})
}

// FuzzParseFields: parseObject never panics; an object it accepts is valid JSON with only known members, each once,
// whose values encoding/json reads the same.
func FuzzParseFields(f *testing.F) {
	for _, s := range []string{`{"email":"a@b.co","code":"123456"}`, `{"email":"a","email":"b"}`, `{"email":{}}`,
		`{"code":"\u0000"}`, `{"email":"a"} {}`, `[`, `{"email":"\ud800"}`, `{}`, `{"iat":17}`, `{"iat":1e3}`,
		`{"\u0065mail":"a","email":"b"}`} {
		f.Add([]byte(s))
	}
	known := map[string]bool{"email": true, "code": true, "iat": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		var got jwtParseTarget
		if parseObject(body, got.fields()) != "" {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		// Walk the members independently of parseObject's bookkeeping: each is known and appears once.
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("accepted %q, which is not an object", body)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			name, _ := tok.(string)
			if err != nil || !known[name] || seen[name] {
				t.Fatalf("accepted %q with member %q (known %v, seen %v)", body, name, known[name], seen[name])
			}
			seen[name] = true
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("accepted %q: %v", body, err)
			}
			switch v := v.(type) {
			case string:
				if name == "iat" || (name == "email" && v != got.email) || (name == "code" && v != got.code) {
					t.Fatalf("accepted %q: %s read as %q", body, name, v)
				}
			case json.Number:
				if name != "iat" || string(v) != strconv.FormatInt(got.iat, 10) {
					t.Fatalf("accepted %q: %s %s read as %d", body, name, v, got.iat)
				}
			default:
				t.Fatalf("accepted %q: %s is %T", body, name, v)
			}
		}
	})
}

// BenchmarkVerifyToken verifies the valid access token of the shared vectors with every check; bench/ runs
// golang-jwt on the same token for comparison.
func BenchmarkVerifyToken(b *testing.B) {
	const (
		token  = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImF1ZCI6ImRhc2hib2FyZCIsInN1YiI6InVzZXJfMSIsImVtYWlsIjoiYWRhQGV4YW1wbGUuY29tIiwib3JnIjoib3JnX2FjbWUiLCJzaWQiOiJzZXNzXzEiLCJ0eXAiOiJhY2Nlc3MiLCJqdGkiOiJqdGlfMSIsImlhdCI6MTY5OTk5OTk0MCwiZXhwIjoxNzAwMDAwODQwfQ.RmxMbphzNShULxKQmKtBsRae9gMv2l16xjetVnfuKmk"
		secret = "jwt-vectors-secret-0123456789abcdef0123456789"
	)
	keys := [][]byte{[]byte(secret)}
	now := time.Unix(1700000000, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := verifyToken(token, keys, "https://api.example.com", "access", now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignToken signs a typical access token.
func BenchmarkSignToken(b *testing.B) {
	key, c := []byte(jwtKey), jwtClaims()
	c.Sub, c.Sid, c.Jti = "user_0123456789abcdef012345", "sess_"+strings.Repeat("0", 32), strings.Repeat("a", 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := signToken(key, c); err != nil {
			b.Fatal(err)
		}
	}
}
