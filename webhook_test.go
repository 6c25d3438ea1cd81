package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// signatureVectors is testdata/vectors/webhook-signature.json, computed
// independently of this code from the contract.
type signatureVectors struct {
	Secret string `json:"secret"`
	NowMs  int64  `json:"now_ms"`
	Body   string `json:"body"`
	Cases  []struct {
		Name   string `json:"name"`
		Header string `json:"header"`
		Want   string `json:"want"`
	} `json:"cases"`
}

func loadSignatureVectors(tb testing.TB) signatureVectors {
	tb.Helper()
	raw, err := os.ReadFile("testdata/vectors/webhook-signature.json")
	if err != nil {
		tb.Fatal(err)
	}
	var v signatureVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatalf("decode vectors: %v", err)
	}
	if v.Secret == "" || len(v.Cases) == 0 {
		tb.Fatal("vectors file has no secret or no cases")
	}
	return v
}

// signForTest is the tests' own WorkOS signer: hex HMAC-SHA256 of "<ts>.<body>".
func signForTest(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "." + string(body)))
	return hex.EncodeToString(m.Sum(nil))
}

// isSignatureError reports whether err is one of verifyWebhookSignature's outcomes.
func isSignatureError(err error) bool {
	for _, s := range []error{errWebhookSecretEmpty, errSignatureMissing,
		errSignatureMalformed, errSignatureExpired, errSignatureMismatch} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// sigFixture is one valid signed request; each test case changes one thing in it.
type sigFixture struct {
	secret, body []byte
	ms           int64
	ts, sig      string
	now          time.Time
}

func newSigFixture() sigFixture {
	f := sigFixture{
		secret: []byte("whsec_test_fixture_secret"),
		body:   []byte(`{"id":"event_01JCDE3FGHJKMNPQRSTVWXYZ01","event":"magic_auth.created"}`),
		ms:     1700000000000,
	}
	f.ts = strconv.FormatInt(f.ms, 10)
	f.sig = signForTest(f.secret, f.ts, f.body)
	f.now = time.UnixMilli(f.ms)
	return f
}

func (f sigFixture) header() string { return "t=" + f.ts + ", v1=" + f.sig }

func TestVerifyWebhookSignatureVectors(t *testing.T) {
	t.Parallel()
	v := loadSignatureVectors(t)
	now := time.UnixMilli(v.NowMs)
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			err := verifyWebhookSignature(c.Header, []byte(v.Body), []byte(v.Secret), now)
			switch c.Want {
			case "accept":
				if err != nil {
					t.Fatalf("header %q: got %v, want accept", c.Header, err)
				}
			case "reject":
				if err == nil {
					t.Fatalf("header %q: accepted, want reject", c.Header)
				}
				if !isSignatureError(err) {
					t.Fatalf("header %q: error %v is not a signature sentinel", c.Header, err)
				}
			default:
				t.Fatalf("unknown verdict %q", c.Want)
			}
		})
	}
}

func TestVerifyWebhookSignatureAccepts(t *testing.T) {
	t.Parallel()
	f := newSigFixture()
	zero := strings.Repeat("0", 64)
	cases := []struct{ name, header string }{
		{"fixture", f.header()},
		{"no space after comma", "t=" + f.ts + ",v1=" + f.sig},
		{"first of several matches", "t=" + f.ts + ", v1=" + f.sig + ", v1=" + zero},
		{"middle of several matches", "t=" + f.ts + ", v1=" + zero + ",v1=" + f.sig + ", v1=" + zero},
		{"last of several matches", "t=" + f.ts + ",v1=" + zero + ", v1=" + f.sig},
		{"8 signatures, last matches", "t=" + f.ts + strings.Repeat(", v1="+zero, 7) + ", v1=" + f.sig},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := verifyWebhookSignature(c.header, f.body, f.secret, f.now); err != nil {
				t.Fatalf("header %q: %v", c.header, err)
			}
		})
	}
}

func TestVerifyWebhookSignatureHostileHeaders(t *testing.T) {
	t.Parallel()
	f := newSigFixture()
	ts, sig, valid := f.ts, f.sig, f.header()
	zero := strings.Repeat("0", 64)
	secs := strconv.FormatInt(f.ms/1000, 10)
	cases := []struct {
		name, header string
		want         error
	}{
		{"empty", "", errSignatureMissing},
		{"only t", "t=" + ts, errSignatureMalformed},
		{"only t with comma", "t=" + ts + ",", errSignatureMalformed},
		{"only v1", "v1=" + sig, errSignatureMalformed},
		{"v1 before t", "v1=" + sig + ", t=" + ts, errSignatureMalformed},
		{"t twice", "t=" + ts + ", t=" + ts + ", v1=" + sig, errSignatureMalformed},
		{"t again after v1", valid + ", t=" + ts, errSignatureMalformed},
		{"t empty", "t=, v1=" + sig, errSignatureMalformed},
		{"t plus sign", "t=+" + ts + ", v1=" + signForTest(f.secret, "+"+ts, f.body), errSignatureMalformed},
		{"t minus sign", "t=-" + ts + ", v1=" + sig, errSignatureMalformed},
		{"t leading space", "t= " + ts + ", v1=" + sig, errSignatureMalformed},
		{"t trailing space", "t=" + ts + " , v1=" + sig, errSignatureMalformed},
		{"t letters", "t=" + ts + "a, v1=" + sig, errSignatureMalformed},
		{"t hex", "t=0x" + strconv.FormatInt(f.ms, 16) + ", v1=" + sig, errSignatureMalformed},
		{"t decimal", "t=" + secs + ".000, v1=" + signForTest(f.secret, secs+".000", f.body), errSignatureMalformed},
		{"t exponent", "t=1.7e12, v1=" + sig, errSignatureMalformed},
		{"t 20 digits", "t=17000000000000000000, v1=" + sig, errSignatureMalformed},
		{"t 19 digits over int64", "t=9999999999999999999, v1=" + sig, errSignatureMalformed},
		{"t non-ASCII digit", "t=\u0661" + ts[1:] + ", v1=" + sig, errSignatureMalformed},
		{"t key upper case", "T=" + ts + ", v1=" + sig, errSignatureMalformed},
		{"t without =", "t" + ts + ", v1=" + sig, errSignatureMalformed},
		{"t with :", "t:" + ts + ", v1=" + sig, errSignatureMalformed},
		{"space before t", " " + valid, errSignatureMalformed},
		{"seconds instead of ms", "t=" + secs + ", v1=" + signForTest(f.secret, secs, f.body), errSignatureExpired},
		{"v1 empty", "t=" + ts + ", v1=", errSignatureMalformed},
		{"v1 upper-case hex", "t=" + ts + ", v1=" + strings.ToUpper(sig), errSignatureMalformed},
		{"v1 63 chars (odd)", "t=" + ts + ", v1=" + sig[:63], errSignatureMalformed},
		{"v1 65 chars", "t=" + ts + ", v1=" + sig + "0", errSignatureMalformed},
		{"v1 62 chars", "t=" + ts + ", v1=" + sig[:62], errSignatureMalformed},
		{"v1 128 chars", "t=" + ts + ", v1=" + sig + sig, errSignatureMalformed},
		{"v1 non-hex", "t=" + ts + ", v1=g" + sig[1:], errSignatureMalformed},
		{"v1 0x prefix", "t=" + ts + ", v1=0x" + sig[2:], errSignatureMalformed},
		{"v1 base64", "t=" + ts + ", v1=" + sig[:63] + "=", errSignatureMalformed},
		{"v1 key upper case", "t=" + ts + ", V1=" + sig, errSignatureMalformed},
		{"unknown key v0", "t=" + ts + ", v0=" + sig, errSignatureMalformed},
		{"unknown key v2", "t=" + ts + ", v2=" + sig, errSignatureMalformed},
		{"unknown key after v1", valid + ", x=1", errSignatureMalformed},
		{"key without =", "t=" + ts + ", v1" + sig, errSignatureMalformed},
		{"trailing comma", valid + ",", errSignatureMalformed},
		{"trailing comma and space", valid + ", ", errSignatureMalformed},
		{"leading comma", "," + valid, errSignatureMalformed},
		{"empty element", "t=" + ts + ",, v1=" + sig, errSignatureMalformed},
		{"double space", "t=" + ts + ",  v1=" + sig, errSignatureMalformed},
		{"tab", "t=" + ts + ",\tv1=" + sig, errSignatureMalformed},
		{"space after =", "t=" + ts + ", v1= " + sig, errSignatureMalformed},
		{"trailing space", valid + " ", errSignatureMalformed},
		{"trailing newline", valid + "\n", errSignatureMalformed},
		{"CRLF", valid + "\r\n", errSignatureMalformed},
		{"NUL", valid + "\x00", errSignatureMalformed},
		{"semicolon separator", "t=" + ts + "; v1=" + sig, errSignatureMalformed},
		{"very long header", valid + strings.Repeat(", v1="+zero, 15), errSignatureMalformed},
		{"long garbage", strings.Repeat("x", maxSignatureHeader+1), errSignatureMalformed},
		{"9 signatures, last matches", "t=" + ts + strings.Repeat(", v1="+zero, 8) + ", v1=" + sig, errSignatureMalformed},
		{"one bit off in v1", "t=" + ts + ", v1=" + flipHex(sig), errSignatureMismatch},
		{"v1 of another timestamp", "t=" + ts + ", v1=" + signForTest(f.secret, strconv.FormatInt(f.ms+1, 10), f.body), errSignatureMismatch},
		{"all zero v1", "t=" + ts + ", v1=" + zero, errSignatureMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := verifyWebhookSignature(c.header, f.body, f.secret, f.now)
			if !errors.Is(err, c.want) {
				t.Fatalf("header %q: got %v, want %v", c.header, err, c.want)
			}
			if strings.Contains(err.Error(), string(f.secret)) {
				t.Fatalf("error %q contains the secret", err)
			}
		})
	}
}

// flipHex changes the last hex digit of s to another valid lower-case one.
func flipHex(s string) string {
	last := s[len(s)-1]
	if last == '0' {
		return s[:len(s)-1] + "1"
	}
	return s[:len(s)-1] + "0"
}

func TestVerifyWebhookSignatureBody(t *testing.T) {
	t.Parallel()
	f := newSigFixture()
	for i := range f.body {
		changed := bytes.Clone(f.body)
		changed[i] ^= 0x01
		if err := verifyWebhookSignature(f.header(), changed, f.secret, f.now); !errors.Is(err, errSignatureMismatch) {
			t.Errorf("body with byte %d changed: got %v, want %v", i, err, errSignatureMismatch)
		}
	}
	others := map[string][]byte{
		"byte appended":      append(bytes.Clone(f.body), ' '),
		"byte dropped":       f.body[:len(f.body)-1],
		"empty":              nil,
		"re-encoded":         bytes.ReplaceAll(f.body, []byte(`":"`), []byte(`": "`)),
		"first byte dropped": f.body[1:],
	}
	for name, b := range others {
		if err := verifyWebhookSignature(f.header(), b, f.secret, f.now); !errors.Is(err, errSignatureMismatch) {
			t.Errorf("body %s: got %v, want %v", name, err, errSignatureMismatch)
		}
	}
	// An empty body is still signed and verified like any other.
	h := "t=" + f.ts + ", v1=" + signForTest(f.secret, f.ts, nil)
	if err := verifyWebhookSignature(h, nil, f.secret, f.now); err != nil {
		t.Errorf("signed empty body: %v", err)
	}
}

func TestVerifyWebhookSignatureSecret(t *testing.T) {
	t.Parallel()
	f := newSigFixture()
	// A header made with the empty key must not pass when the key is unset.
	emptyKeyHeader := "t=" + f.ts + ", v1=" + signForTest(nil, f.ts, f.body)
	wrong := bytes.Clone(f.secret)
	wrong[len(wrong)-1] ^= 0x01
	cases := []struct {
		name   string
		header string
		secret []byte
		want   error
	}{
		{"nil secret", emptyKeyHeader, nil, errWebhookSecretEmpty},
		{"empty secret", emptyKeyHeader, []byte{}, errWebhookSecretEmpty},
		{"empty secret, fixture header", f.header(), []byte{}, errWebhookSecretEmpty},
		{"secret one bit off", f.header(), wrong, errSignatureMismatch},
		{"secret with extra byte", f.header(), append(bytes.Clone(f.secret), 'x'), errSignatureMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := verifyWebhookSignature(c.header, f.body, c.secret, f.now); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestVerifyWebhookSignatureWindow(t *testing.T) {
	t.Parallel()
	f := newSigFixture()
	ms := time.Millisecond
	cases := []struct {
		name string
		now  time.Time // the verifier's clock; the header is always signed at f.ms
		want error
	}{
		{"same instant", f.now, nil},
		{"180 s later", f.now.Add(180 * time.Second), nil},
		{"180 s earlier", f.now.Add(-180 * time.Second), nil},
		{"180.001 s later", f.now.Add(180*time.Second + ms), errSignatureExpired},
		{"180.001 s earlier", f.now.Add(-180*time.Second - ms), errSignatureExpired},
		{"180 s and 1 ns later", f.now.Add(180*time.Second + 1), errSignatureExpired},
		{"180 s and 1 ns earlier", f.now.Add(-180*time.Second - 1), errSignatureExpired},
		{"a day later", f.now.Add(24 * time.Hour), errSignatureExpired},
		{"a day earlier", f.now.Add(-24 * time.Hour), errSignatureExpired},
		{"zero time", time.Time{}, errSignatureExpired},
		{"with monotonic reading", time.Now().Add(-time.Since(f.now)), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := verifyWebhookSignature(f.header(), f.body, f.secret, c.now); !errors.Is(err, c.want) {
				t.Fatalf("now %v: got %v, want %v", c.now, err, c.want)
			}
		})
	}
	// Extreme timestamps that still parse are out of the window, never wrapped in.
	for _, tms := range []int64{0, 1, math.MaxInt64} {
		ts := strconv.FormatInt(tms, 10)
		h := "t=" + ts + ", v1=" + signForTest(f.secret, ts, f.body)
		if err := verifyWebhookSignature(h, f.body, f.secret, f.now); !errors.Is(err, errSignatureExpired) {
			t.Errorf("t=%s: got %v, want %v", ts, err, errSignatureExpired)
		}
	}
}

// TestVerifyWebhookSignatureOrder pins the order of the checks: when a request
// fails several, the first in order is reported.
func TestVerifyWebhookSignatureOrder(t *testing.T) {
	t.Parallel()
	f := newSigFixture()
	late := f.now.Add(time.Hour)
	cases := []struct {
		name   string
		header string
		secret []byte
		now    time.Time
		want   error
	}{
		{"secret before header", "", nil, f.now, errWebhookSecretEmpty},
		{"secret before parse", "garbage", nil, f.now, errWebhookSecretEmpty},
		{"parse before window", "t=0, v1=", f.secret, f.now, errSignatureMalformed},
		{"window before MAC", "t=" + f.ts + ", v1=" + strings.Repeat("0", 64), f.secret, late, errSignatureExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := verifyWebhookSignature(c.header, f.body, c.secret, c.now); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestValidMagicAuthID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id   string
		want bool
	}{
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ02", true},
		{"magic_auth_00000000000000000000000000", true},
		{"magic_auth_ZZZZZZZZZZZZZZZZZZZZZZZZZZ", true},
		{"magic_auth_0123456789ABCDEFGHJKMNPQRS", true},
		{"", false},
		{"magic_auth_", false},
		{"magic_auth_../../users", false},
		{"magic_auth_../../../user_management/users", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXY/..", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0?", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0#", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWX%2F", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0 ", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0\x00", false},
		{"magic_auth_01jcde3fghjkmnpqrstvwxyz02", false},       // lower case
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0", false},        // 25
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ023", false},      // 27
		{"magic_auth_01JCDE3FGHIKMNPQRSTVWXYZ02", false},       // I
		{"magic_auth_01JCDE3FGHJLMNPQRSTVWXYZ02", false},       // L
		{"magic_auth_01JCDE3FGHJKMNOQRSTVWXYZ02", false},       // O
		{"magic_auth_01JCDE3FGHJKMNPQRSTUWXYZ02", false},       // U
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYＺ", false},         // full-width Z: 26 bytes
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYÉ0", false},        // Latin-1 letter: 26 bytes
		{"MAGIC_AUTH_01JCDE3FGHJKMNPQRSTVWXYZ02", false},       // prefix case
		{"magic-auth_01JCDE3FGHJKMNPQRSTVWXYZ02", false},       // prefix spelling
		{" magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ02", false},      // leading space
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ01", false},            // another type
		{"magic_auth_magic_auth_01JCDE3FGHJKMNPQRSTVW", false}, // prefix twice
	}
	for _, c := range cases {
		if got := validMagicAuthID(c.id); got != c.want {
			t.Errorf("validMagicAuthID(%q) = %v, want %v", c.id, got, c.want)
		}
	}
}

func TestValidEventID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id   string
		want bool
	}{
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ01", true},
		{"event_7ZZZZZZZZZZZZZZZZZZZZZZZZZ", true},
		{"", false},
		{"event_", false},
		{"event_../../x", false},
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ0:", false},  // Redis key separator
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ0*", false},  // glob character
		{"event_01jcde3fghjkmnpqrstvwxyz01", false},  // lower case
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ0", false},   // 25
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ012", false}, // 27
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ0I", false},  // I
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ0L", false},  // L
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ0O", false},  // O
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ0U", false},  // U
		{"event_01JCDE3FGHJKMNPQRSTVWXYＺ", false},    // full-width Z: 26 bytes
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ01\n", false},
		{"Event_01JCDE3FGHJKMNPQRSTVWXYZ01", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ02", false},
		{"event_" + strings.Repeat("0", 1<<16), false},
	}
	for _, c := range cases {
		if got := validEventID(c.id); got != c.want {
			t.Errorf("validEventID(%.60q) = %v, want %v", c.id, got, c.want)
		}
	}
}

// The ids in the vectors' sample event are real-shaped WorkOS ids.
func TestValidIDsOnVectorBody(t *testing.T) {
	t.Parallel()
	v := loadSignatureVectors(t)
	var ev struct {
		ID   string `json:"id"`
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(v.Body), &ev); err != nil {
		t.Fatal(err)
	}
	if !validEventID(ev.ID) {
		t.Errorf("validEventID(%q) = false", ev.ID)
	}
	if !validMagicAuthID(ev.Data.ID) {
		t.Errorf("validMagicAuthID(%q) = false", ev.Data.ID)
	}
}

// FuzzVerifyWebhookSignature checks that no header or body makes the verifier
// panic, that it accepts only headers carrying the genuine MAC, and that a
// header from this file's own signer, within the window, is accepted for its
// body and rejected once any single byte of that body changes.
func FuzzVerifyWebhookSignature(f *testing.F) {
	v := loadSignatureVectors(f)
	for i, c := range v.Cases {
		f.Add(c.Header, []byte(v.Body), int64(i)*20000-180000, uint(i), byte(1<<(i%8)))
	}
	f.Add("t=1,v", []byte("x"), int64(math.MinInt64), uint(math.MaxUint), byte(0))
	f.Add(",", []byte{}, int64(math.MaxInt64), uint(0), byte(0xff))
	secret := []byte(v.Secret)
	now := time.UnixMilli(v.NowMs)
	window := webhookTolerance.Milliseconds()
	f.Fuzz(func(t *testing.T, header string, body []byte, skewMs int64, pos uint, mask byte) {
		err := verifyWebhookSignature(header, body, secret, now)
		if err == nil {
			ts, _, _ := strings.Cut(strings.TrimPrefix(header, "t="), ",")
			if !strings.HasPrefix(header, "t=") || !strings.Contains(header, "v1="+signForTest(secret, ts, body)) {
				t.Fatalf("accepted %q without the genuine signature", header)
			}
		} else if !isSignatureError(err) {
			t.Fatalf("header %q: error %v is not a signature sentinel", header, err)
		}

		ts := strconv.FormatInt(v.NowMs+skewMs%(window+1), 10)
		signed := "t=" + ts + ", v1=" + signForTest(secret, ts, body)
		if err := verifyWebhookSignature(signed, body, secret, now); err != nil {
			t.Fatalf("own signature %q rejected: %v", signed, err)
		}
		if len(body) == 0 {
			return
		}
		if mask == 0 {
			mask = 0xff
		}
		changed := bytes.Clone(body)
		changed[pos%uint(len(body))] ^= mask
		if err := verifyWebhookSignature(signed, changed, secret, now); !errors.Is(err, errSignatureMismatch) {
			t.Fatalf("body changed at %d: got %v, want %v", pos%uint(len(body)), err, errSignatureMismatch)
		}
	})
}
