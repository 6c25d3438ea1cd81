package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	testKey      = "test-current-key-0123456789abcdef0123456789"
	testPrevKey  = "test-previous-key-0123456789abcdef012345678"
	testOtherKey = "test-unrelated-key-0123456789abcdef01234567"
	testIssuer   = "https://api.example.com"
	testNow      = 1700000000
	// testPayload is what signToken writes for testClaims(), field for field.
	testPayload = `{"iss":"https://api.example.com","aud":"dashboard","sub":"user_1","email":"ada@example.com","org":"org_acme","sid":"sess_1","typ":"access","jti":"jti_1","iat":1699999940,"exp":1700000840}`
	testHeader  = `{"alg":"HS256","typ":"JWT"}`
)

func testClaims() claims {
	return claims{
		Iss: testIssuer, Aud: "dashboard", Sub: "user_1", Email: "ada@example.com",
		Org: "org_acme", Sid: "sess_1", Typ: "access", Jti: "jti_1",
		Iat: testNow - 60, Exp: testNow + 840,
	}
}

func testKeys() [][]byte { return [][]byte{[]byte(testKey), []byte(testPrevKey)} }

// signRaw builds a token from raw header and payload JSON with a valid MAC, so a test
// can reach the checks that sit behind the signature.
func signRaw(key []byte, header, payload string) string {
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	h := hmac.New(sha256.New, key)
	h.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(h.Sum(nil))
}

func mustSign(t testing.TB, key []byte, c claims) string {
	t.Helper()
	tok, err := signToken(key, c)
	if err != nil {
		t.Fatalf("signToken: %v", err)
	}
	return tok
}

// mustReplace changes exactly one occurrence of old in s, so each case is one change.
func mustReplace(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("fixture: %q occurs %d times in %q", old, strings.Count(s, old), s)
	}
	return strings.Replace(s, old, new, 1)
}

// isRejection reports whether err is one of the outcomes verifyToken gives for a bad token.
func isRejection(err error) bool {
	for _, e := range []error{errMalformedToken, errBadSignature, errWrongClaim, errTokenExpired, errTokenFromFuture} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func TestSignTokenFixture(t *testing.T) {
	t.Parallel()
	tok := mustSign(t, []byte(testKey), testClaims())
	if want := signRaw([]byte(testKey), testHeader, testPayload); tok != want {
		t.Fatalf("signToken = %s, want %s", tok, want)
	}
}

func TestVectors(t *testing.T) {
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
	if len(v.Cases) == 0 {
		t.Fatal("no cases")
	}
	keys := [][]byte{[]byte(v.Secret)}
	for _, tc := range v.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			c, err := verifyToken(tc.Token, keys, v.APIURL, "access", time.Unix(v.Now, 0))
			switch tc.Want {
			case "accept":
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				// An independent signer and ours agree byte for byte.
				if again := mustSign(t, keys[0], c); again != tc.Token {
					t.Fatalf("re-signed as %s", again)
				}
			case "reject":
				if !isRejection(err) {
					t.Fatalf("err = %v, want a rejection", err)
				}
			default:
				t.Fatalf("want %q", tc.Want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"access", "refresh"} {
		c := testClaims()
		c.Typ = typ
		c.Email = `o'brien+<tag>&"x"@example.com` // characters JSON escapes
		tok := mustSign(t, []byte(testKey), c)
		if !strings.HasPrefix(tok, tokenHeader+".") {
			t.Fatalf("%s: header of %s", typ, tok)
		}
		got, err := verifyToken(tok, testKeys(), testIssuer, typ, time.Unix(testNow, 0))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if got != c {
			t.Fatalf("%s: got %+v, want %+v", typ, got, c)
		}
	}
}

func TestVerifyTokenHostile(t *testing.T) {
	t.Parallel()
	key := []byte(testKey)
	valid := mustSign(t, key, testClaims())
	header, rest, _ := strings.Cut(valid, ".")
	payloadSeg, sigSeg, _ := strings.Cut(rest, ".")
	if len(payloadSeg)%4 == 0 {
		t.Fatal("fixture: payload needs a partial last base64 quantum")
	}
	payload := func(old, new string) string { return signRaw(key, testHeader, mustReplace(t, testPayload, old, new)) }
	hdr := func(h string) string { return signRaw(key, h, testPayload) }
	// flipLow sets a low bit of a final base64 character whose low bits must be zero.
	flipLow := func(seg string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, seg[len(seg)-1])
		return seg[:len(seg)-1] + string(alphabet[i|1])
	}
	otherFirst := func(seg string) string {
		if seg[0] == 'A' {
			return "B" + seg[1:]
		}
		return "A" + seg[1:]
	}
	stdPadded := base64.URLEncoding.EncodeToString([]byte(testPayload))
	withPaddedPayload := header + "." + stdPadded
	withPaddedPayload += "." + base64.RawURLEncoding.EncodeToString(mac(key, withPaddedPayload))
	withLoosePayload := header + "." + flipLow(payloadSeg)
	withLoosePayload += "." + base64.RawURLEncoding.EncodeToString(mac(key, withLoosePayload))
	// exactly maxTokenBytes: a 3011-byte payload encodes to 4015 characters.
	jtiFor := func(n int) string { return strings.Repeat("j", n-len(testPayload)+len("jti_1")) }
	atLimit := signRaw(key, testHeader, mustReplace(t, testPayload, `"jti_1"`, `"`+jtiFor(3011)+`"`))
	overLimit := signRaw(key, testHeader, mustReplace(t, testPayload, `"jti_1"`, `"`+jtiFor(3012)+`"`))
	if len(atLimit) != maxTokenBytes || len(overLimit) != maxTokenBytes+1 {
		t.Fatalf("fixture: lengths %d, %d", len(atLimit), len(overLimit))
	}

	tests := []struct {
		name  string
		token string
		typ   string // default "access"
		want  error  // nil: accepted
	}{
		{"valid", valid, "", nil},
		{"valid refresh", payload(`"typ":"access"`, `"typ":"refresh"`), "refresh", nil},
		{"exactly 4096 bytes", atLimit, "", nil},

		// Size and shape.
		{"4097 bytes", overLimit, "", errMalformedToken},
		{"1 MB", valid + strings.Repeat("A", 1<<20), "", errMalformedToken},
		{"1 MB of dots", strings.Repeat(".", 1<<20), "", errMalformedToken},
		{"empty", "", "", errMalformedToken},
		{"one segment", header, "", errMalformedToken},
		{"two segments", header + "." + payloadSeg, "", errMalformedToken},
		{"four segments", valid + ".x", "", errMalformedToken},
		{"four segments, empty last", valid + ".", "", errMalformedToken},
		{"dots only", "..", "", errMalformedToken},
		{"empty header", "." + payloadSeg + "." + sigSeg, "", errMalformedToken},
		{"empty payload, valid mac", signRaw(key, testHeader, ""), "", errMalformedToken},
		{"empty signature", header + "." + payloadSeg + ".", "", errMalformedToken},
		{"leading space", " " + valid, "", errMalformedToken},
		{"trailing newline", valid + "\n", "", errMalformedToken},
		{"newline inside signature", header + "." + payloadSeg + "." + sigSeg[:10] + "\n" + sigSeg[10:], "", errMalformedToken},
		{"CR inside payload", header + "." + payloadSeg[:10] + "\r" + payloadSeg[10:] + "." + sigSeg, "", errMalformedToken},
		{"NUL byte", valid[:5] + "\x00" + valid[5:], "", errMalformedToken},

		// Header: only the constant is accepted, whatever the MAC.
		{"alg none, valid mac", hdr(`{"alg":"none","typ":"JWT"}`), "", errMalformedToken},
		{"alg none, no signature", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payloadSeg + ".", "", errMalformedToken},
		{"alg HS512", hdr(`{"alg":"HS512","typ":"JWT"}`), "", errMalformedToken},
		{"alg RS256", hdr(`{"alg":"RS256","typ":"JWT"}`), "", errMalformedToken},
		{"alg hs256 lower case", hdr(`{"alg":"hs256","typ":"JWT"}`), "", errMalformedToken},
		{"kid added", hdr(`{"alg":"HS256","typ":"JWT","kid":"x"}`), "", errMalformedToken},
		{"whitespace in header", hdr(`{"alg":"HS256", "typ":"JWT"}`), "", errMalformedToken},
		{"header keys reordered", hdr(`{"typ":"JWT","alg":"HS256"}`), "", errMalformedToken},
		{"no typ in header", hdr(`{"alg":"HS256"}`), "", errMalformedToken},

		// Base64.
		{"padding on signature", valid + "=", "", errMalformedToken},
		{"padding on payload, valid mac", withPaddedPayload, "", errMalformedToken},
		{"'+' in signature (standard alphabet)", header + "." + payloadSeg + "." + sigSeg[:42] + "+", "", errMalformedToken},
		{"'/' in signature (standard alphabet)", header + "." + payloadSeg + "." + "/" + sigSeg[1:], "", errMalformedToken},
		{"bad character in signature", header + "." + payloadSeg + "." + sigSeg[:42] + "*", "", errMalformedToken},
		{"signature trailing bits set", header + "." + payloadSeg + "." + flipLow(sigSeg), "", errMalformedToken},
		{"payload trailing bits set, valid mac", withLoosePayload, "", errMalformedToken},
		{"signature truncated", valid[:len(valid)-4], "", errMalformedToken},
		{"signature one byte short", valid[:len(valid)-2], "", errMalformedToken},
		{"signature extended", valid + "AAAA", "", errMalformedToken},

		// Signature.
		{"signature of another key", mustSign(t, []byte(testOtherKey), testClaims()), "", errBadSignature},
		{"payload changed, signature kept", header + "." + base64.RawURLEncoding.EncodeToString([]byte(mustReplace(t, testPayload, "user_1", "user_2"))) + "." + sigSeg, "", errBadSignature},
		{"first signature character changed", header + "." + payloadSeg + "." + otherFirst(sigSeg), "", errBadSignature},

		// Payload JSON, behind a valid MAC.
		{"payload not JSON", signRaw(key, testHeader, "not json"), "", errMalformedToken},
		{"payload is an array", signRaw(key, testHeader, "["+testPayload+"]"), "", errMalformedToken},
		{"two JSON objects", signRaw(key, testHeader, testPayload+testPayload), "", errMalformedToken},
		{"trailing garbage", signRaw(key, testHeader, testPayload+"x"), "", errMalformedToken},
		{"trailing space", signRaw(key, testHeader, testPayload+" "), "", errMalformedToken},
		{"space after colon", payload(`"sub":"user_1"`, `"sub": "user_1"`), "", errMalformedToken},
		{"keys reordered", payload(`"iss":"https://api.example.com","aud":"dashboard"`, `"aud":"dashboard","iss":"https://api.example.com"`), "", errMalformedToken},
		{"duplicate key", payload(`"sub":"user_1"`, `"sub":"user_1","sub":"user_2"`), "", errMalformedToken},
		{"key in upper case", payload(`"sub"`, `"SUB"`), "", errMalformedToken},
		{"unicode escape in value", payload(`"user_1"`, `"\u0075ser_1"`), "", errMalformedToken},
		{"invalid UTF-8 in value", payload(`"user_1"`, "\"user_\xff\""), "", errMalformedToken},
		{"unknown claim", payload(`"jti":"jti_1",`, `"jti":"jti_1","admin":true,`), "", errMalformedToken},
		{"nbf added", payload(`"jti":"jti_1",`, `"jti":"jti_1","nbf":1699999940,`), "", errMalformedToken},
		{"missing exp", payload(`,"exp":1700000840`, ``), "", errMalformedToken},
		{"missing iat", payload(`"iat":1699999940,`, ``), "", errMalformedToken},
		{"exp null", payload(`"exp":1700000840`, `"exp":null`), "", errMalformedToken},
		{"exp as string", payload(`"exp":1700000840`, `"exp":"1700000840"`), "", errMalformedToken},
		{"exp as float", payload(`"exp":1700000840`, `"exp":1700000840.0`), "", errMalformedToken},
		{"exp in exponent form", payload(`"exp":1700000840`, `"exp":1.70000084e9`), "", errMalformedToken},
		{"exp negative", payload(`"exp":1700000840`, `"exp":-1700000840`), "", errMalformedToken},
		{"exp beyond year 9999", payload(`"exp":1700000840`, `"exp":9223372036854775807`), "", errMalformedToken},
		{"exp beyond int64", payload(`"exp":1700000840`, `"exp":9223372036854775808`), "", errMalformedToken},
		{"iat zero", payload(`"iat":1699999940`, `"iat":0`), "", errMalformedToken},
		{"exp equal to iat", payload(`"exp":1700000840`, `"exp":1699999940`), "", errMalformedToken},
		{"exp before iat", payload(`"exp":1700000840`, `"exp":1699999939`), "", errMalformedToken},
		{"missing sub", payload(`"sub":"user_1",`, ``), "", errMalformedToken},
		{"empty sub", payload(`"sub":"user_1"`, `"sub":""`), "", errMalformedToken},
		{"empty email", payload(`"email":"ada@example.com"`, `"email":""`), "", errMalformedToken},
		{"missing org", payload(`"org":"org_acme",`, ``), "", errMalformedToken},
		{"sid null", payload(`"sid":"sess_1"`, `"sid":null`), "", errMalformedToken},
		{"missing jti", payload(`"jti":"jti_1",`, ``), "", errMalformedToken},
		{"missing typ", payload(`"typ":"access",`, ``), "", errMalformedToken},
		{"unknown typ", payload(`"typ":"access"`, `"typ":"admin"`), "admin", errMalformedToken},
		{"aud as array", payload(`"aud":"dashboard"`, `"aud":["dashboard"]`), "", errMalformedToken},

		// Claims that do not match.
		{"wrong iss", payload(`"iss":"https://api.example.com"`, `"iss":"https://evil.example.com"`), "", errWrongClaim},
		{"iss with trailing slash", payload(`"iss":"https://api.example.com"`, `"iss":"https://api.example.com/"`), "", errWrongClaim},
		{"wrong aud", payload(`"aud":"dashboard"`, `"aud":"other"`), "", errWrongClaim},
		{"refresh as access", payload(`"typ":"access"`, `"typ":"refresh"`), "access", errWrongClaim},
		{"access as refresh", valid, "refresh", errWrongClaim},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ := tc.typ
			if typ == "" {
				typ = "access"
			}
			c, err := verifyToken(tc.token, testKeys(), testIssuer, typ, time.Unix(testNow, 0))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if again := mustSign(t, []byte(testKey), c); again != tc.token {
					t.Fatalf("re-signed as %s", again)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if c != (claims{}) {
				t.Fatalf("claims returned with an error: %+v", c)
			}
			// Tokens are credentials: an error never repeats one (here, its last 20 bytes).
			if len(tc.token) >= 40 && strings.Contains(err.Error(), tc.token[len(tc.token)-20:]) {
				t.Fatalf("error quotes the token: %v", err)
			}
		})
	}
}

// TestVerifyTokenClock checks the exact edges of the 60 s leeway on both sides.
func TestVerifyTokenClock(t *testing.T) {
	t.Parallel()
	c := testClaims() // iat = testNow-60, exp = testNow+840
	tok := mustSign(t, []byte(testKey), c)
	exp, iat := time.Unix(c.Exp, 0), time.Unix(c.Iat, 0)
	tests := []struct {
		name string
		now  time.Time
		want error
	}{
		{"at iat", iat, nil},
		{"just before exp", exp.Add(-time.Nanosecond), nil},
		{"at exp (inside leeway)", exp, nil},
		{"59 s after exp", exp.Add(59 * time.Second), nil},
		{"last nanosecond of leeway", exp.Add(60*time.Second - time.Nanosecond), nil},
		{"60 s after exp", exp.Add(60 * time.Second), errTokenExpired},
		{"61 s after exp", exp.Add(61 * time.Second), errTokenExpired},
		{"a year after exp", exp.AddDate(1, 0, 0), errTokenExpired},
		{"iat 59 s ahead", iat.Add(-59 * time.Second), nil},
		{"iat 60 s ahead", iat.Add(-60 * time.Second), nil},
		{"iat 60.5 s ahead", iat.Add(-60*time.Second - 500*time.Millisecond), errTokenFromFuture},
		{"iat 61 s ahead", iat.Add(-61 * time.Second), errTokenFromFuture},
		{"iat 10 minutes ahead", iat.Add(-10 * time.Minute), errTokenFromFuture},
		{"zero time", time.Time{}, errTokenFromFuture},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := verifyToken(tok, testKeys(), testIssuer, "access", tc.now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyTokenRotation(t *testing.T) {
	t.Parallel()
	now := time.Unix(testNow, 0)
	cur, prev, other := []byte(testKey), []byte(testPrevKey), []byte(testOtherKey)
	tests := []struct {
		name   string
		signer []byte
		keys   [][]byte
		want   error
	}{
		{"current key", cur, [][]byte{cur, prev}, nil},
		{"previous key still accepted", prev, [][]byte{cur, prev}, nil},
		{"previous key once retired", prev, [][]byte{cur}, errBadSignature},
		{"unrelated key", other, [][]byte{cur, prev}, errBadSignature},
		{"no keys", cur, nil, errBadKey},
		{"short key among keys", cur, [][]byte{cur, cur[:31]}, errBadKey},
		{"empty key", cur, [][]byte{{}}, errBadKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := mustSign(t, tc.signer, testClaims())
			_, err := verifyToken(tok, tc.keys, testIssuer, "access", now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignTokenRefuses(t *testing.T) {
	t.Parallel()
	key := []byte(testKey)
	tests := []struct {
		name string
		key  []byte
		edit func(*claims)
		want error
	}{
		{"32-byte key", key[:32], func(*claims) {}, nil},
		{"31-byte key", key[:31], func(*claims) {}, errBadKey},
		{"nil key", nil, func(*claims) {}, errBadKey},
		{"empty sub", key, func(c *claims) { c.Sub = "" }, errBadClaims},
		{"empty iss", key, func(c *claims) { c.Iss = "" }, errBadClaims},
		{"typ neither access nor refresh", key, func(c *claims) { c.Typ = "admin" }, errBadClaims},
		{"no iat", key, func(c *claims) { c.Iat = 0 }, errBadClaims},
		{"exp equal to iat", key, func(c *claims) { c.Exp = c.Iat }, errBadClaims},
		{"exp beyond year 9999", key, func(c *claims) { c.Exp = maxUnixSeconds + 1 }, errBadClaims},
		{"token over 4096 bytes", key, func(c *claims) { c.Jti = strings.Repeat("j", 3100) }, errBadClaims},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := testClaims()
			tc.edit(&c)
			tok, err := signToken(tc.key, c)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil && tok != "" {
				t.Fatalf("token returned with an error")
			}
		})
	}
}

// FuzzVerifyToken checks that verifyToken never panics, that every refusal is one of its
// sentinels, and, like age's FuzzMalleability, that every accepted token is the one
// signToken writes for its claims: no second spelling of a token exists. Each input is
// tried as a token and also as a payload signed with a valid MAC, so mutations reach the
// JSON checks that sit behind the signature.
func FuzzVerifyToken(f *testing.F) {
	c := testClaims()
	f.Add(mustSign(f, []byte(testKey), c))
	f.Add(mustSign(f, []byte(testPrevKey), c))
	c.Typ = "refresh"
	f.Add(mustSign(f, []byte(testKey), c))
	f.Add(testPayload)
	f.Add(strings.Replace(testPayload, `"typ":"access"`, `"typ":"refresh"`, 1))
	f.Add(strings.Replace(testPayload, `"sub"`, `"SUB"`, 1))
	f.Add(testPayload + testPayload)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		now := time.Unix(testNow, 0)
		check := func(token string) {
			for _, typ := range []string{"access", "refresh"} {
				c, err := verifyToken(token, testKeys(), testIssuer, typ, now)
				if err != nil {
					if !isRejection(err) {
						t.Fatalf("unclassified error: %v", err)
					}
					continue
				}
				if c.Iss != testIssuer || c.Aud != tokenAudience || c.Typ != typ {
					t.Fatalf("accepted claims %+v", c)
				}
				a, _ := signToken([]byte(testKey), c)
				b, _ := signToken([]byte(testPrevKey), c)
				if token != a && token != b {
					t.Fatalf("accepted %q, which re-signs as %q", token, a)
				}
			}
		}
		check(s)
		check(signRaw([]byte(testKey), testHeader, s))
	})
}

// BenchmarkVerifyToken verifies the valid access token of the shared
// vectors; bench/ runs golang-jwt on the same token for comparison.
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
