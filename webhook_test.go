package main

// Tests of webhook.go: the WorkOS-Signature check, and the magic_auth.created delivery through the real mux against
// the fake WorkOS, with the recording mailer or a real SMTP server. The last tests are issue 9's findings: a delivery
// outlives its request and the server's shutdown; a claim is fenced by its owner's token; a magic auth that can never
// be mailed is answered once and for all.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The signature.

// hookVectors is testdata/vectors/webhook-signature.json (the same file as /work/shared/vectors'), computed from the
// contract independently of this code.
type hookVectors struct {
	Secret string `json:"secret"`
	NowMs  int64  `json:"now_ms"`
	Body   string `json:"body"`
	Cases  []struct {
		Name   string `json:"name"`
		Header string `json:"header"`
		Want   string `json:"want"`
	} `json:"cases"`
}

func hookLoadVectors(tb testing.TB) hookVectors {
	tb.Helper()
	raw, err := os.ReadFile("testdata/vectors/webhook-signature.json")
	if err != nil {
		tb.Fatal(err)
	}
	var v hookVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatalf("vectors: %v", err)
	}
	if v.Secret == "" || len(v.Cases) == 0 {
		tb.Fatal("the vectors have no secret or no cases")
	}
	return v
}

// hookMAC is the tests' own WorkOS signer: the hex HMAC-SHA256 of "<ts>.<body>".
func hookMAC(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// hookHeader is the WorkOS-Signature header WorkOS sends for body at t.
func hookHeader(body []byte, secret string, t time.Time) string {
	ts := strconv.FormatInt(t.UnixMilli(), 10)
	return "t=" + ts + ", v1=" + hookMAC([]byte(secret), ts, body)
}

// hookSignatureError reports whether err is one of verifyWebhookSignature's outcomes for a non-empty secret.
func hookSignatureError(err error) bool {
	for _, s := range []error{errSignatureMissing, errSignatureMalformed, errSignatureExpired, errSignatureMismatch} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// hookSig is one valid signed request; each case changes one thing in it.
type hookSig struct {
	secret, body []byte
	ms           int64
	ts, sig      string
	now          time.Time
}

func newHookSig() hookSig {
	f := hookSig{
		secret: []byte("whsec_test_fixture_secret"),
		body:   []byte(`{"id":"event_01JCDE3FGHJKMNPQRSTVWXYZ01","event":"magic_auth.created"}`),
		ms:     1700000000000,
	}
	f.ts = strconv.FormatInt(f.ms, 10)
	f.sig = hookMAC(f.secret, f.ts, f.body)
	f.now = time.UnixMilli(f.ms)
	return f
}

func (f hookSig) header() string { return "t=" + f.ts + ", v1=" + f.sig }

func TestVerifyWebhookSignatureVectors(t *testing.T) {
	t.Parallel()
	v := hookLoadVectors(t)
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			err := verifyWebhookSignature(c.Header, []byte(v.Body), []byte(v.Secret), time.UnixMilli(v.NowMs))
			switch c.Want {
			case "accept":
				if err != nil {
					t.Fatalf("header %q: %v, want accepted", c.Header, err)
				}
			case "reject":
				if !hookSignatureError(err) {
					t.Fatalf("header %q: %v, want a signature error", c.Header, err)
				}
			default:
				t.Fatalf("unknown verdict %q", c.Want)
			}
		})
	}
}

func TestVerifyWebhookSignatureAccepts(t *testing.T) {
	t.Parallel()
	f := newHookSig()
	zero := strings.Repeat("0", 64)
	for name, header := range map[string]string{
		"fixture":                    f.header(),
		"no space after comma":       "t=" + f.ts + ",v1=" + f.sig,
		"first of several matches":   "t=" + f.ts + ", v1=" + f.sig + ", v1=" + zero,
		"middle of several matches":  "t=" + f.ts + ", v1=" + zero + ",v1=" + f.sig + ", v1=" + zero,
		"last of several matches":    "t=" + f.ts + ",v1=" + zero + ", v1=" + f.sig,
		"8 signatures, last matches": "t=" + f.ts + strings.Repeat(", v1="+zero, 7) + ", v1=" + f.sig,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := verifyWebhookSignature(header, f.body, f.secret, f.now); err != nil {
				t.Fatalf("header %q: %v", header, err)
			}
		})
	}
}

func TestVerifyWebhookSignatureHostileHeaders(t *testing.T) {
	t.Parallel()
	f := newHookSig()
	ts, sig, valid := f.ts, f.sig, f.header()
	zero := strings.Repeat("0", 64)
	secs := strconv.FormatInt(f.ms/1000, 10)
	for _, c := range []struct {
		name, header string
		want         error
	}{
		{"missing", "", errSignatureMissing},
		{"too long", valid + strings.Repeat(" ", maxSignatureHeader), errSignatureMalformed},
		{"long garbage", strings.Repeat("x", maxSignatureHeader+1), errSignatureMalformed},
		{"only t", "t=" + ts, errSignatureMalformed},
		{"only t with comma", "t=" + ts + ",", errSignatureMalformed},
		{"only v1", "v1=" + sig, errSignatureMalformed},
		{"t not first", "v1=" + sig + ", t=" + ts, errSignatureMalformed},
		{"t twice", "t=" + ts + ", t=" + ts + ", v1=" + sig, errSignatureMalformed},
		{"t again after v1", valid + ", t=" + ts, errSignatureMalformed},
		{"t empty", "t=, v1=" + sig, errSignatureMalformed},
		{"t plus sign", "t=+" + ts + ", v1=" + hookMAC(f.secret, "+"+ts, f.body), errSignatureMalformed},
		{"t minus sign", "t=-" + ts + ", v1=" + sig, errSignatureMalformed},
		{"t leading space", "t= " + ts + ", v1=" + sig, errSignatureMalformed},
		{"t trailing space", "t=" + ts + " , v1=" + sig, errSignatureMalformed},
		{"t non-digit", "t=" + ts + "a, v1=" + sig, errSignatureMalformed},
		{"t hex", "t=0x" + strconv.FormatInt(f.ms, 16) + ", v1=" + sig, errSignatureMalformed},
		{"t decimal", "t=" + secs + ".000, v1=" + hookMAC(f.secret, secs+".000", f.body), errSignatureMalformed},
		{"t exponent", "t=1.7e12, v1=" + sig, errSignatureMalformed},
		{"t of 20 digits", "t=17000000000000000000, v1=" + sig, errSignatureMalformed},
		{"t of 20 digits with leading zeros", "t=0" + strings.Repeat("0", 19-len(ts)) + ts + ", v1=" + sig, errSignatureMalformed},
		{"t of 19 digits over int64", "t=9999999999999999999, v1=" + sig, errSignatureMalformed},
		{"t of non-ASCII digits", "t=\u0661" + ts[1:] + ", v1=" + sig, errSignatureMalformed},
		{"T upper case", "T=" + ts + ", v1=" + sig, errSignatureMalformed},
		{"t without =", "t" + ts + ", v1=" + sig, errSignatureMalformed},
		{"space before t", " " + valid, errSignatureMalformed},
		{"9 v1", "t=" + ts + strings.Repeat(", v1="+zero, 8) + ", v1=" + sig, errSignatureMalformed},
		{"16 v1", valid + strings.Repeat(",v1="+zero, 15), errSignatureMalformed},
		{"v1 empty", "t=" + ts + ", v1=", errSignatureMalformed},
		{"v1 upper-case hex", "t=" + ts + ", v1=" + strings.ToUpper(sig), errSignatureMalformed},
		{"v1 short hex", "t=" + ts + ", v1=" + sig[:62], errSignatureMalformed},
		{"v1 odd hex", "t=" + ts + ", v1=" + sig[:63], errSignatureMalformed},
		{"v1 long hex", "t=" + ts + ", v1=" + sig + "0", errSignatureMalformed},
		{"v1 twice as long", "t=" + ts + ", v1=" + sig + sig, errSignatureMalformed},
		{"v1 non-hex", "t=" + ts + ", v1=g" + sig[1:], errSignatureMalformed},
		{"v1 0x", "t=" + ts + ", v1=0x" + sig[2:], errSignatureMalformed},
		{"V1 upper case", "t=" + ts + ", V1=" + sig, errSignatureMalformed},
		{"v0 scheme", "t=" + ts + ", v0=" + sig, errSignatureMalformed},
		{"v2 scheme", "t=" + ts + ", v2=" + sig, errSignatureMalformed},
		{"v1 and v0", valid + ", v0=" + sig, errSignatureMalformed},
		{"unknown key after v1", valid + ", x=1", errSignatureMalformed},
		{"v1 without =", "t=" + ts + ", v1" + sig, errSignatureMalformed},
		{"trailing comma", valid + ",", errSignatureMalformed},
		{"trailing comma and space", valid + ", ", errSignatureMalformed},
		{"leading comma", "," + valid, errSignatureMalformed},
		{"empty element", "t=" + ts + ",, v1=" + sig, errSignatureMalformed},
		{"double space", "t=" + ts + ",  v1=" + sig, errSignatureMalformed},
		{"tab", "t=" + ts + ",\tv1=" + sig, errSignatureMalformed},
		{"space after =", "t=" + ts + ", v1= " + sig, errSignatureMalformed},
		{"trailing space", valid + " ", errSignatureMalformed},
		{"trailing LF", valid + "\n", errSignatureMalformed},
		{"trailing CRLF", valid + "\r\n", errSignatureMalformed},
		{"NUL", valid + "\x00", errSignatureMalformed},
		{"semicolon", "t=" + ts + "; v1=" + sig, errSignatureMalformed},
		{"seconds, not milliseconds", "t=" + secs + ", v1=" + hookMAC(f.secret, secs, f.body), errSignatureExpired},
		{"one hex digit off", "t=" + ts + ", v1=" + hookFlipHex(sig), errSignatureMismatch},
		{"v1 of another time", "t=" + ts + ", v1=" + hookMAC(f.secret, strconv.FormatInt(f.ms+1, 10), f.body), errSignatureMismatch},
		{"all-zero v1", "t=" + ts + ", v1=" + zero, errSignatureMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := verifyWebhookSignature(c.header, f.body, f.secret, f.now)
			if !errors.Is(err, c.want) {
				t.Fatalf("header %q: %v, want %v", c.header, err, c.want)
			}
			if strings.Contains(err.Error(), string(f.secret)) {
				t.Fatalf("error %q holds the secret", err)
			}
		})
	}
}

// hookFlipHex changes the last digit of a lower-case hex string to another.
func hookFlipHex(s string) string {
	if s[len(s)-1] == '0' {
		return s[:len(s)-1] + "1"
	}
	return s[:len(s)-1] + "0"
}

func TestVerifyWebhookSignatureBody(t *testing.T) {
	t.Parallel()
	f := newHookSig()
	for i := range f.body {
		changed := bytes.Clone(f.body)
		changed[i] ^= 0x01
		if err := verifyWebhookSignature(f.header(), changed, f.secret, f.now); !errors.Is(err, errSignatureMismatch) {
			t.Errorf("body byte %d changed: %v, want %v", i, err, errSignatureMismatch)
		}
	}
	for name, b := range map[string][]byte{
		"byte appended": append(bytes.Clone(f.body), ' '), "last byte dropped": f.body[:len(f.body)-1],
		"first byte dropped": f.body[1:], "empty": nil,
		"re-encoded": bytes.ReplaceAll(f.body, []byte(`":"`), []byte(`": "`)),
	} {
		if err := verifyWebhookSignature(f.header(), b, f.secret, f.now); !errors.Is(err, errSignatureMismatch) {
			t.Errorf("body %s: %v, want %v", name, err, errSignatureMismatch)
		}
	}
	if err := verifyWebhookSignature("t="+f.ts+", v1="+hookMAC(f.secret, f.ts, nil), nil, f.secret, f.now); err != nil {
		t.Errorf("a signed empty body: %v", err)
	}
}

// TestVerifyWebhookSignatureWindow: 3 minutes either way, the boundary itself in, a nanosecond past it out.
func TestVerifyWebhookSignatureWindow(t *testing.T) {
	t.Parallel()
	f := newHookSig()
	for _, c := range []struct {
		name string
		now  time.Time // the verifier's clock; the header is signed at f.now
		want error
	}{
		{"same instant", f.now, nil},
		{"exactly 3 minutes later", f.now.Add(webhookTolerance), nil},
		{"exactly 3 minutes earlier", f.now.Add(-webhookTolerance), nil},
		{"3 minutes and 1 ns later", f.now.Add(webhookTolerance + 1), errSignatureExpired},
		{"3 minutes and 1 ns earlier", f.now.Add(-webhookTolerance - 1), errSignatureExpired},
		{"3 minutes and 1 ms later", f.now.Add(webhookTolerance + time.Millisecond), errSignatureExpired},
		{"3 minutes and 1 ms earlier", f.now.Add(-webhookTolerance - time.Millisecond), errSignatureExpired},
		{"a day later", f.now.Add(24 * time.Hour), errSignatureExpired},
		{"a day earlier", f.now.Add(-24 * time.Hour), errSignatureExpired},
		{"zero time", time.Time{}, errSignatureExpired},
		{"with a monotonic reading", time.Now().Add(-time.Since(f.now)), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if err := verifyWebhookSignature(f.header(), f.body, f.secret, c.now); !errors.Is(err, c.want) {
				t.Fatalf("now %v: %v, want %v", c.now, err, c.want)
			}
		})
	}
	if webhookTolerance != 3*time.Minute {
		t.Errorf("webhookTolerance %v, want the contract's 3 minutes", webhookTolerance)
	}
	// Extreme timestamps that parse are outside the window, never wrapped into it.
	for _, ms := range []int64{0, 1, math.MaxInt64} {
		ts := strconv.FormatInt(ms, 10)
		h := "t=" + ts + ", v1=" + hookMAC(f.secret, ts, f.body)
		if err := verifyWebhookSignature(h, f.body, f.secret, f.now); !errors.Is(err, errSignatureExpired) {
			t.Errorf("t=%s: %v, want %v", ts, err, errSignatureExpired)
		}
	}
}

// TestVerifyWebhookSignatureSecret: an empty secret refuses everything, a header made with the empty key included.
func TestVerifyWebhookSignatureSecret(t *testing.T) {
	t.Parallel()
	f := newHookSig()
	emptyKey := "t=" + f.ts + ", v1=" + hookMAC(nil, f.ts, f.body)
	for name, secret := range map[string][]byte{"nil": nil, "empty": {}} {
		for _, h := range []string{emptyKey, f.header(), ""} {
			if err := verifyWebhookSignature(h, f.body, secret, f.now); err == nil || hookSignatureError(err) {
				t.Errorf("%s secret, header %q: %v, want the empty-secret error", name, h, err)
			}
		}
	}
	wrong := bytes.Clone(f.secret)
	wrong[0] ^= 1
	for name, secret := range map[string][]byte{"one bit off": wrong, "a byte longer": append(bytes.Clone(f.secret), 'x')} {
		if err := verifyWebhookSignature(f.header(), f.body, secret, f.now); !errors.Is(err, errSignatureMismatch) {
			t.Errorf("secret %s: %v, want %v", name, err, errSignatureMismatch)
		}
	}
}

// TestVerifyWebhookSignatureOrder: a request failing several checks gets the first one's error.
func TestVerifyWebhookSignatureOrder(t *testing.T) {
	t.Parallel()
	f := newHookSig()
	late := f.now.Add(time.Hour)
	for _, c := range []struct {
		name, header string
		now          time.Time
		want         error
	}{
		{"parse before window", "t=0, v1=", f.now, errSignatureMalformed},
		{"parse of every v1 before window", "t=" + f.ts + ", v1=" + f.sig + ", v1=x", late, errSignatureMalformed},
		{"window before MAC", "t=" + f.ts + ", v1=" + strings.Repeat("0", 64), late, errSignatureExpired},
	} {
		if err := verifyWebhookSignature(c.header, f.body, f.secret, c.now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestValidWorkOSID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		id, prefix string
		want       bool
	}{
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ02", "magic_auth_", true},
		{"magic_auth_00000000000000000000000000", "magic_auth_", true},
		{"magic_auth_ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "magic_auth_", true},
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ01", "event_", true},
		{"", "magic_auth_", false},
		{"magic_auth_", "magic_auth_", false},
		{"magic_auth_../../users", "magic_auth_", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXY/..", "magic_auth_", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0?", "magic_auth_", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0#", "magic_auth_", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWX%2F", "magic_auth_", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0 ", "magic_auth_", false},
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0\x00", "magic_auth_", false},
		{"magic_auth_01jcde3fghjkmnpqrstvwxyz02", "magic_auth_", false},  // lower case
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ0", "magic_auth_", false},   // 25
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ023", "magic_auth_", false}, // 27
		{"magic_auth_01JCDE3FGHIKMNPQRSTVWXYZ02", "magic_auth_", false},  // I
		{"magic_auth_01JCDE3FGHJLMNPQRSTVWXYZ02", "magic_auth_", false},  // L
		{"magic_auth_01JCDE3FGHJKMNOQRSTVWXYZ02", "magic_auth_", false},  // O
		{"magic_auth_01JCDE3FGHJKMNPQRSTUWXYZ02", "magic_auth_", false},  // U
		{"magic_auth_01JCDE3FGHJKMNPQRSTVWXYＺ", "magic_auth_", false},    // full-width Z, 26 bytes
		{"MAGIC_AUTH_01JCDE3FGHJKMNPQRSTVWXYZ02", "magic_auth_", false},
		{" magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ02", "magic_auth_", false},
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ01", "magic_auth_", false}, // another kind
		{"user_01JCDE3FGHJKMNPQRSTVWXYZ01", "event_", false},
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ0:", "event_", false}, // the store's key separator
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ0*", "event_", false},
		{"event_01JCDE3FGHJKMNPQRSTVWXYZ01\n", "event_", false},
		{"event_" + strings.Repeat("0", 1<<16), "event_", false},
	} {
		if got := validWorkOSID(c.id, c.prefix); got != c.want {
			t.Errorf("validWorkOSID(%.60q, %q) = %v, want %v", c.id, c.prefix, got, c.want)
		}
	}
}

// FuzzVerifyWebhookSignature: no header or body makes the verifier panic; it accepts only a header carrying the
// genuine MAC; and a header from the tests' own signer within the window is accepted for its body and refused once
// any byte of that body changes.
func FuzzVerifyWebhookSignature(f *testing.F) {
	v := hookLoadVectors(f)
	for i, c := range v.Cases {
		f.Add(c.Header, []byte(v.Body), int64(i)*20000-180000, uint(i), byte(1<<(i%8)))
	}
	secret, now, window := []byte(v.Secret), time.UnixMilli(v.NowMs), webhookTolerance.Milliseconds()
	f.Fuzz(func(t *testing.T, header string, body []byte, skewMs int64, pos uint, mask byte) {
		if err := verifyWebhookSignature(header, body, secret, now); err == nil {
			ts, _, _ := strings.Cut(strings.TrimPrefix(header, "t="), ",")
			if !strings.HasPrefix(header, "t=") || !strings.Contains(header, "v1="+hookMAC(secret, ts, body)) {
				t.Fatalf("accepted %q without the genuine signature", header)
			}
		} else if !hookSignatureError(err) {
			t.Fatalf("header %q: %v is not a signature error", header, err)
		}
		ts := strconv.FormatInt(v.NowMs+skewMs%(window+1), 10)
		signed := "t=" + ts + ", v1=" + hookMAC(secret, ts, body)
		if err := verifyWebhookSignature(signed, body, secret, now); err != nil {
			t.Fatalf("own signature %q refused: %v", signed, err)
		}
		if len(body) == 0 {
			return
		}
		changed := bytes.Clone(body)
		changed[pos%uint(len(body))] ^= max(mask, 1)
		if err := verifyWebhookSignature(signed, changed, secret, now); !errors.Is(err, errSignatureMismatch) {
			t.Fatalf("body changed at %d: %v, want %v", pos%uint(len(body)), err, errSignatureMismatch)
		}
	})
}

// BenchmarkVerifyWebhookSignature verifies a genuine header over a 1 KiB body.
func BenchmarkVerifyWebhookSignature(b *testing.B) {
	f := newHookSig()
	body := []byte(`{"id":"event_01JCDE3FGHJKMNPQRSTVWXYZ01","event":"magic_auth.created","pad":"`)
	body = append(body, bytes.Repeat([]byte("x"), 1024-len(body)-2)...)
	body = append(body, `"}`...)
	header := "t=" + f.ts + ", v1=" + strings.Repeat("0", 64) + ", v1=" + hookMAC(f.secret, f.ts, body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := verifyWebhookSignature(header, body, f.secret, f.now); err != nil {
			b.Fatal(err)
		}
	}
}

// The delivery.

const hookPath = "/v1/workos_webhook/"

// hookEvent is a magic auth the fake WorkOS knows, valid for 10 minutes from the server's now, and the signed
// magic_auth.created event that names it.
type hookEvent struct {
	id, magicAuthID, email, code string
	expires                      time.Time
	body                         string
}

func newHookEvent(ts *testServer, fake *fakeWorkOS) hookEvent {
	ev := hookEvent{id: "event_" + fakeULID(), magicAuthID: "magic_auth_" + fakeULID(), email: "ada@example.com",
		code: fmt.Sprintf("%06d", rand.IntN(1_000_000)), expires: ts.clock.Now().Add(10 * time.Minute)}
	fake.addMagicAuth(ev.magicAuthID, ev.email, ev.code, ev.expires)
	ev.body = hookBody(ev.id, "magic_auth.created", ev.magicAuthID)
	return ev
}

// hookBody is a WorkOS event as WorkOS sends it (the service reads only id, event and data.id).
func hookBody(eventID, event, dataID string) string {
	b, _ := json.Marshal(map[string]any{
		"id": eventID, "event": event, "created_at": "2026-11-27T12:00:00.000Z",
		"data": map[string]any{"object": "magic_auth", "id": dataID, "user_id": "user_01JCDE3FGHJKMNPQRSTVWXYZ03",
			"email": "ada@example.com", "expires_at": "2026-11-27T12:10:00.000Z", "created_at": "2026-11-27T12:00:00.000Z"},
	})
	return string(b)
}

// hookRequest is body POSTed to the webhook, signed at the server's now.
func hookRequest(ts *testServer, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, hookPath, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.9:4321"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("WorkOS-Signature", hookHeader([]byte(body), testWorkOSWebhookSecret, ts.clock.Now()))
	return r
}

// hookServe runs one request through the real handler chain; it is safe from any goroutine.
func hookServe(ts *testServer, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	ts.handler.ServeHTTP(rec, r)
	return rec
}

// hookDo delivers body, signed now.
func hookDo(ts *testServer, body string) *httptest.ResponseRecorder {
	return hookServe(ts, hookRequest(ts, body))
}

// hookAnswer is an answer's status and its "status" or "error" field.
func hookAnswer(rec *httptest.ResponseRecorder) (int, string) {
	var body map[string]string
	json.Unmarshal(rec.Body.Bytes(), &body)
	if v, ok := body["status"]; ok {
		return rec.Code, v
	}
	return rec.Code, body["error"]
}

func wantHook(t *testing.T, rec *httptest.ResponseRecorder, status int, value string) {
	t.Helper()
	if code, got := hookAnswer(rec); code != status || got != value {
		t.Fatalf("answer %d %s, want %d %q", code, strings.TrimSpace(rec.Body.String()), status, value)
	}
}

// hookState is what the store holds for the event, "" for nothing.
func hookState(t *testing.T, ts *testServer, eventID string) string {
	t.Helper()
	v, ok, err := ts.store.Get(context.Background(), ts.key("webhook", eventID))
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	if !ok {
		return ""
	}
	return v
}

// wantHookDone checks that the event is done, and in the memory store for exactly the contract's 3 days.
func wantHookDone(t *testing.T, ts *testServer, eventID string) {
	t.Helper()
	if st := hookState(t, ts, eventID); st != "done" {
		t.Fatalf("the event's key holds %q, want done", st)
	}
	ms, ok := ts.store.(*memoryStore)
	if !ok {
		return
	}
	ms.mu.Lock()
	e := ms.m[ts.key("webhook", eventID)]
	ms.mu.Unlock()
	if left := e.expires.Sub(ts.clock.Now()); left != 259200*time.Second {
		t.Errorf("done for %v, want 259200 s", left)
	}
}

// wantHookReleased fails unless nothing is left of the event: a failed delivery lets WorkOS's retry deliver.
func wantHookReleased(t *testing.T, ts *testServer, eventID string) {
	t.Helper()
	if st := hookState(t, ts, eventID); st != "" {
		t.Fatalf("a failed delivery left %q in the store", st)
	}
}

var hookOutcomeNames = []string{"delivered", "duplicate", "ignored", "rejected", "failed", "undeliverable"}

// wantHookOutcomes compares every dashauth_webhook_events_total series with want (absent: 0).
func wantHookOutcomes(t *testing.T, ts *testServer, want map[string]uint64) {
	t.Helper()
	got := map[string]uint64{}
	for _, name := range hookOutcomeNames {
		if n := ts.metric("dashauth_webhook_events_total", name); n != 0 {
			got[name] = n
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("webhook outcomes %v, want %v", got, want)
	}
}

// wantHookMails fails unless the recording mailer has exactly n mails.
func wantHookMails(t *testing.T, ts *testServer, n int) {
	t.Helper()
	if got := len(ts.mails.sent()); got != n {
		t.Fatalf("%d mails, want %d", got, n)
	}
}

// wantHookFetches fails unless the fake WorkOS was asked for a magic auth n times.
func wantHookFetches(t *testing.T, fake *fakeWorkOS, n int) {
	t.Helper()
	if got := fake.calls(fakeMagicAuthPath); got != n {
		t.Fatalf("magic auth fetched %d times, want %d", got, n)
	}
}

// wantHookCodeNotLogged: a login code is a credential. (A time's fraction of a second is no code.)
func wantHookCodeNotLogged(t *testing.T, ts *testServer, code string) {
	t.Helper()
	if regexp.MustCompile(`(^|[^0-9.])` + code + `([^0-9]|$)`).MatchString(ts.logs.String()) {
		t.Errorf("the code %s is in the log:\n%s", code, ts.logs.String())
	}
}

// hookSMTP points ts's mail at a new test SMTP server, speaking STARTTLS.
func hookSMTP(t *testing.T, ts *testServer, fail testSMTPFailure) *testSMTPServer {
	t.Helper()
	srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "secret", Fail: fail})
	ts.mail = smtpMailer{srv.Config()}
	return srv
}

// TestWebhookDelivers is the main path: the code is fetched and mailed, 200 only once the mailer took the mail, and
// the event is done for WorkOS's 3-day retry window, so a retry is a duplicate: no fetch, no mail.
func TestWebhookDelivers(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ev := newHookEvent(ts, fake)

	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
	sent := ts.mails.sent()
	if len(sent) != 1 {
		t.Fatalf("%d mails at the time of the 200, want 1", len(sent))
	}
	if m := sent[0]; m.To != ev.email || m.Code != ev.code || !m.Expires.Equal(ev.expires) || m.Link != testWorkOSSigninBaseURL || m.ID != ev.id {
		t.Errorf("mail %+v, want to %s code %s until %v, link %s, id %s", m, ev.email, ev.code, ev.expires, testWorkOSSigninBaseURL, ev.id)
	}
	wantHookFetches(t, fake, 1)
	wantHookDone(t, ts, ev.id)
	wantHookOutcomes(t, ts, map[string]uint64{"delivered": 1})
	if n := ts.metric("dashauth_mails_total", "sent"); n != 1 {
		t.Errorf("mails sent %d, want 1", n)
	}

	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
	wantHookMails(t, ts, 1)
	wantHookFetches(t, fake, 1)
	wantHookOutcomes(t, ts, map[string]uint64{"delivered": 1, "duplicate": 1})
	if n := ts.metric("dashauth_dedup_hits_total", ""); n != 1 {
		t.Errorf("dedup hits %d, want 1", n)
	}
	wantHookCodeNotLogged(t, ts, ev.code)

	t.Run("under REDIS_KEY_PREFIX", func(t *testing.T) {
		t.Parallel()
		fake := newFakeWorkOS(t)
		ts := newWorkOSTestServer(t, fake, "REDIS_KEY_PREFIX", "tenant-7:")
		ev := newHookEvent(ts, fake)
		wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
		if v, ok, err := ts.store.Get(context.Background(), "tenant-7:webhook:"+ev.id); v != "done" || !ok || err != nil {
			t.Fatalf("tenant-7:webhook:<event id> = %q, %v, %v; want done", v, ok, err)
		}
	})

	t.Run("an address in upper case is mailed in lower case", func(t *testing.T) {
		t.Parallel()
		fake := newFakeWorkOS(t)
		ts := newWorkOSTestServer(t, fake)
		ev := newHookEvent(ts, fake)
		fake.addMagicAuth(ev.magicAuthID, "Ada.Lovelace@Example.COM", ev.code, ev.expires)
		wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
		if sent := ts.mails.sent(); len(sent) != 1 || sent[0].To != "ada.lovelace@example.com" {
			t.Fatalf("mails %+v, want one to ada.lovelace@example.com", sent)
		}
	})
}

// TestWebhookOverSMTP: the delivery through the real smtpMailer: one mail over TLS, shaped as the contract says.
func TestWebhookOverSMTP(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	srv := hookSMTP(t, ts, testSMTPFailure{})
	ev := newHookEvent(ts, fake)

	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails at the time of the 200, want 1", len(msgs))
	}
	if got := msgs[0]; got.From != "dashauth@example.com" || len(got.To) != 1 || got.To[0] != ev.email || !got.TLS || got.User != "mailer" {
		t.Fatalf("envelope from %q to %q, TLS %v, user %q", got.From, got.To, got.TLS, got.User)
	}
	mailWantWire(t, msgs[0].Data)
	p := mailParse(t, msgs[0].Data)
	if id := p.header.Get("Message-ID"); id != "<"+ev.id+"@example.com>" {
		t.Errorf("Message-ID %q, want <%s@example.com>", id, ev.id)
	}
	if !strings.Contains(p.plain(), "\r\n"+ev.code+"\r\n") || !strings.Contains(p.plain(), testWorkOSSigninBaseURL) ||
		!strings.Contains(p.html(), `href="`+testWorkOSSigninBaseURL+`"`) || !strings.Contains(p.plain(), "until 12:10 UTC") {
		t.Errorf("the mail lacks the code on its line, the expiry or the sign-in link:\n%s", msgs[0].Data)
	}
	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
	if n := srv.Count(); n != 1 {
		t.Fatalf("%d mails after a retry, want 1", n)
	}
	wantHookCodeNotLogged(t, ts, ev.code)
}

// hookSeq numbers events, so a test can tell what happened before what without reading a clock.
type hookSeq struct{ n atomic.Int64 }

func (s *hookSeq) tick() int64 { return s.n.Add(1) }

// hookMailGate holds the first mail until open, then passes it to next, or fails it with err; later mails pass at
// once, so a second mail shows as a second mail rather than a hang. It numbers each accepted mail on seq.
type hookMailGate struct {
	next    mailer
	seq     *hookSeq
	err     error
	entered chan struct{} // closed when the first mail arrives
	release chan struct{}
	once    sync.Once

	mu       sync.Mutex
	sends    int
	accepted []int64
}

func newHookMailGate(t *testing.T, next mailer, seq *hookSeq, err error) *hookMailGate {
	g := &hookMailGate{next: next, seq: seq, err: err, entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(g.open) // never leave a delivery held
	return g
}

func (g *hookMailGate) open() { g.once.Do(func() { close(g.release) }) }

func (g *hookMailGate) Send(ctx context.Context, m codeMail) error {
	g.mu.Lock()
	g.sends++
	first := g.sends == 1
	g.mu.Unlock()
	if first {
		close(g.entered)
		<-g.release
		if g.err != nil {
			return g.err
		}
	}
	if err := g.next.Send(ctx, m); err != nil {
		return err
	}
	g.mu.Lock()
	g.accepted = append(g.accepted, g.seq.tick())
	g.mu.Unlock()
	return nil
}

func (g *hookMailGate) acceptedAt() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int64(nil), g.accepted...)
}

// hookOrdered is an answer and the tick at which its status was written.
type hookOrdered struct {
	status int
	value  string
	at     int64
}

type hookOrderedWriter struct {
	*httptest.ResponseRecorder
	seq *hookSeq
	at  int64
}

func (w *hookOrderedWriter) WriteHeader(code int) {
	if w.at == 0 {
		w.at = w.seq.tick()
	}
	w.ResponseRecorder.WriteHeader(code)
}

func (w *hookOrderedWriter) Write(b []byte) (int, error) {
	if w.at == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseRecorder.Write(b)
}

func hookServeOrdered(ts *testServer, r *http.Request, seq *hookSeq) hookOrdered {
	w := &hookOrderedWriter{ResponseRecorder: httptest.NewRecorder(), seq: seq}
	ts.handler.ServeHTTP(w, r)
	status, value := hookAnswer(w.ResponseRecorder)
	return hookOrdered{status, value, w.at}
}

// hookOverlap sends n copies of body at once and holds the first mail until every other answer is in, so each copy
// overlaps the delivery. It returns the answers, the held one last.
func hookOverlap(t *testing.T, ts *testServer, gate *hookMailGate, seq *hookSeq, body string, n int) []hookOrdered {
	t.Helper()
	results := make(chan hookOrdered, n)
	for range n {
		r := hookRequest(ts, body)
		go func() { results <- hookServeOrdered(ts, r, seq) }()
	}
	var got []hookOrdered
	for held := false; !held; {
		select {
		case <-gate.entered:
			held = true
		case r := <-results:
			if got = append(got, r); len(got) == n {
				t.Fatalf("no copy reached the mailer: %+v", got)
			}
		}
	}
	for len(got) < n-1 {
		got = append(got, <-results)
	}
	gate.open()
	return append(got, <-results)
}

// TestWebhookConcurrentDuplicates: eight copies of one event at once: one mail; the one delivery answers 200 after
// the mail was accepted, every other copy 409 while it is in flight, never a 2xx before the mail.
func TestWebhookConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			var env []string
			if store == "redis" {
				env = []string{"REDIS_URL", startRedis(t).URL()}
			}
			ts := newWorkOSTestServer(t, fake, env...)
			ev := newHookEvent(ts, fake)
			seq := &hookSeq{}
			gate := newHookMailGate(t, ts.mails, seq, nil)
			ts.mail = gate

			const n = 8
			got := hookOverlap(t, ts, gate, seq, ev.body, n)
			accepted := gate.acceptedAt()
			if len(accepted) != 1 {
				t.Fatalf("%d mails accepted, want 1; answers %+v", len(accepted), got)
			}
			for i, r := range got {
				switch {
				case i == n-1 && r.status == http.StatusOK && r.value == "delivered":
				case i < n-1 && r.status == http.StatusConflict && r.value == "delivery_in_progress":
				default:
					t.Errorf("copy %d answered %d %q (the held one last)", i, r.status, r.value)
				}
				if r.status/100 == 2 && r.at < accepted[0] {
					t.Errorf("copy %d answered %d at tick %d, before the mail was accepted at tick %d", i, r.status, r.at, accepted[0])
				}
			}
			wantHookMails(t, ts, 1)
			wantHookFetches(t, fake, 1)
			wantHookOutcomes(t, ts, map[string]uint64{"delivered": 1, "duplicate": n - 1})

			// Copies after the delivery are answered 200 from the done mark.
			var wg sync.WaitGroup
			late := make(chan *httptest.ResponseRecorder, n)
			for range n {
				wg.Go(func() { late <- hookDo(ts, ev.body) })
			}
			wg.Wait()
			close(late)
			for rec := range late {
				wantHook(t, rec, http.StatusOK, "duplicate")
			}
			wantHookMails(t, ts, 1)
		})
	}
}

// TestWebhookFailingAttemptOverlapped: while a first attempt that will fail is in flight, a retry gets 409, not 2xx
// (a 2xx would make WorkOS stop retrying and lose the code); the next retry delivers.
func TestWebhookFailingAttemptOverlapped(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ev := newHookEvent(ts, fake)
	seq := &hookSeq{}
	gate := newHookMailGate(t, ts.mails, seq, errors.New("smtp: 451 try again later"))
	ts.mail = gate

	got := hookOverlap(t, ts, gate, seq, ev.body, 2)
	if got[0].status != http.StatusConflict || got[0].value != "delivery_in_progress" {
		t.Fatalf("the overlapping retry answered %d %q, want 409 delivery_in_progress", got[0].status, got[0].value)
	}
	if got[1].status != http.StatusServiceUnavailable || got[1].value != "delivery_failed" {
		t.Fatalf("the failing attempt answered %d %q, want 503 delivery_failed", got[1].status, got[1].value)
	}
	wantHookReleased(t, ts, ev.id)
	wantHookMails(t, ts, 0)

	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
	wantHookMails(t, ts, 1)
	wantHookOutcomes(t, ts, map[string]uint64{"failed": 1, "duplicate": 2, "delivered": 1})
}

// TestWebhookWorkOSFailures: when WorkOS fails or stalls the answer is 503, the claim is released, and the retry
// delivers exactly one mail.
func TestWebhookWorkOSFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault fakeFault
	}{
		{"500", fault500},
		{"invalid JSON", faultInvalidJSON},
		{"huge body", faultHugeBody},
		{"huge error body", faultHugeErrorBody},
		{"redirect", faultRedirect},
		{"stall", faultStall},
		{"stall mid-body", faultStallBody},
		{"not found yet", faultNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			ts := newWorkOSTestServer(t, fake)
			if tc.fault == faultStall || tc.fault == faultStallBody {
				// workosTimeout (10 s) is a constant; the client's own timeout is the same mechanism, shorter.
				ts.workos.HTTPClient = &http.Client{Timeout: time.Second, Transport: workosTransport{}}
			}
			ev := newHookEvent(ts, fake)
			ma := fakeMagicAuth{ID: ev.magicAuthID, UserID: "user_" + fakeULID(), Email: ev.email, Code: ev.code,
				ExpiresAt: ev.expires, CreatedAt: ev.expires.Add(-10 * time.Minute)}
			if tc.fault == faultNone { // WorkOS does not know the event's magic auth yet: 404
				fake.mu.Lock()
				delete(fake.magicAuths, ev.magicAuthID)
				fake.mu.Unlock()
			} else {
				fake.setFaultTimes(fakeMagicAuthPath, tc.fault, 1)
			}

			wantHook(t, hookDo(ts, ev.body), http.StatusServiceUnavailable, "delivery_failed")
			wantHookMails(t, ts, 0)
			wantHookReleased(t, ts, ev.id)
			wantHookOutcomes(t, ts, map[string]uint64{"failed": 1})
			if n := fake.calls(fakeRedirectPath); n != 0 {
				t.Errorf("a redirect from WorkOS was followed %d times", n)
			}

			fake.putMagicAuth(ma)
			wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
			wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
			wantHookMails(t, ts, 1)
			wantHookFetches(t, fake, 2)
			wantHookOutcomes(t, ts, map[string]uint64{"failed": 1, "delivered": 1, "duplicate": 1})
			wantHookCodeNotLogged(t, ts, ev.code)
		})
	}
}

// TestWebhookSMTPFailures: SMTP refusing or dropping the connection at any stage answers 503 with the claim
// released; the retry delivers exactly one mail. (A stall ends at smtpTimeout; mail_test.go's TestSMTPStalls shows
// each stage's stall ends at the deadline.)
func TestWebhookSMTPFailures(t *testing.T) {
	t.Parallel()
	for name, fail := range map[string]testSMTPFailure{
		"greeting 421":             {Stage: stageGreeting, Code: 421},
		"greeting drop":            {Stage: stageGreeting, Drop: true},
		"EHLO 554, so no STARTTLS": {Stage: stageHello, Code: 554},
		"MAIL 451":                 {Stage: stageMail, Code: 451},
		"RCPT 550":                 {Stage: stageRcpt, Code: 550},
		"RCPT drop":                {Stage: stageRcpt, Drop: true},
		"DATA 554":                 {Stage: stageData, Code: 554},
		"final . 451":              {Stage: stageEnd, Code: 451},
		"final . drop":             {Stage: stageEnd, Drop: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			ts := newWorkOSTestServer(t, fake)
			fail.Times = 1
			srv := hookSMTP(t, ts, fail)
			ev := newHookEvent(ts, fake)

			wantHook(t, hookDo(ts, ev.body), http.StatusServiceUnavailable, "delivery_failed")
			if n := srv.Count(); n != 0 {
				t.Fatalf("the failing server accepted %d mails", n)
			}
			wantHookReleased(t, ts, ev.id)
			wantHookOutcomes(t, ts, map[string]uint64{"failed": 1})

			wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
			wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
			if n := srv.Count(); n != 1 {
				t.Fatalf("%d mails in all, want 1", n)
			}
			wantHookOutcomes(t, ts, map[string]uint64{"failed": 1, "delivered": 1, "duplicate": 1})
			if sent, failed := ts.metric("dashauth_mails_total", "sent"), ts.metric("dashauth_mails_total", "failed"); sent != 1 || failed != 1 {
				t.Errorf("mails sent %d failed %d, want 1 and 1", sent, failed)
			}
			wantHookCodeNotLogged(t, ts, ev.code)
		})
	}
}

// TestWebhookSMTPQuitFails: once the server took the mail, a failed QUIT changes nothing: 200, done, no second mail.
func TestWebhookSMTPQuitFails(t *testing.T) {
	t.Parallel()
	for name, fail := range map[string]testSMTPFailure{"554": {Stage: stageQuit, Code: 554}, "drop": {Stage: stageQuit, Drop: true}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			ts := newWorkOSTestServer(t, fake)
			srv := hookSMTP(t, ts, fail)
			ev := newHookEvent(ts, fake)
			wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
			wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
			if n := srv.Count(); n != 1 {
				t.Fatalf("%d mails, want 1", n)
			}
			wantHookDone(t, ts, ev.id)
		})
	}
}

// TestWebhookExpiredMagicAuth: a code that expired before the event arrived is not mailed; the event is done.
func TestWebhookExpiredMagicAuth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		left time.Duration // from the server's now to the expiry
		want string
	}{
		{"expired days ago", -72 * time.Hour, "ignored"},
		{"expired a second ago", -time.Second, "ignored"},
		{"expires this instant", 0, "ignored"},
		{"expires in a millisecond", time.Millisecond, "delivered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			ts := newWorkOSTestServer(t, fake)
			ev := newHookEvent(ts, fake)
			fake.addMagicAuth(ev.magicAuthID, ev.email, ev.code, ts.clock.Now().Add(tc.left))
			wantHook(t, hookDo(ts, ev.body), http.StatusOK, tc.want)
			wantHookMails(t, ts, map[string]int{"ignored": 0, "delivered": 1}[tc.want])
			wantHookDone(t, ts, ev.id)
			wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
			wantHookFetches(t, fake, 1)
			wantHookOutcomes(t, ts, map[string]uint64{tc.want: 1, "duplicate": 1})
		})
	}
}

// TestWebhookIgnoresOtherEvents: any other event answers 200 ignored, fetches nothing and writes nothing.
func TestWebhookIgnoresOtherEvents(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ev := newHookEvent(ts, fake)
	events := []string{"user.created", "session.created", "magic_auth.updated", "MAGIC_AUTH.CREATED", "magic_auth.created ", ""}
	for _, event := range events {
		id := "event_" + fakeULID()
		wantHook(t, hookDo(ts, hookBody(id, event, ev.magicAuthID)), http.StatusOK, "ignored")
		if st := hookState(t, ts, id); st != "" {
			t.Errorf("event %q left %q in the store", event, st)
		}
	}
	wantHookOutcomes(t, ts, map[string]uint64{"ignored": uint64(len(events))})
	wantHookFetches(t, fake, 0)
	wantHookMails(t, ts, 0)
}

// TestWebhookRejectsBadEvents: a genuine event whose ids are not WorkOS ids, or that is not JSON, is 400 and fetches
// nothing: the id never reaches the SDK, which puts it into the URL path unescaped, nor a store key.
func TestWebhookRejectsBadEvents(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ev := newHookEvent(ts, fake)
	ulid := fakeULID()
	cases := []struct{ name, body, reason string }{
		{"magic auth id with ../", hookBody(ev.id, "magic_auth.created", "magic_auth_../../users"), "invalid_event"},
		{"magic auth id with ?", hookBody(ev.id, "magic_auth.created", ev.magicAuthID+"?x=1"), "invalid_event"},
		{"magic auth id in lower case", hookBody(ev.id, "magic_auth.created", "magic_auth_"+strings.ToLower(ulid)), "invalid_event"},
		{"magic auth id of another kind", hookBody(ev.id, "magic_auth.created", "user_"+ulid), "invalid_event"},
		{"magic auth id empty", hookBody(ev.id, "magic_auth.created", ""), "invalid_event"},
		{"event id with ../", hookBody("event_../../x", "magic_auth.created", ev.magicAuthID), "invalid_event"},
		{"event id with ?", hookBody(ev.id+"?", "magic_auth.created", ev.magicAuthID), "invalid_event"},
		{"event id in lower case", hookBody("event_"+strings.ToLower(ulid), "magic_auth.created", ev.magicAuthID), "invalid_event"},
		{"event id of another prefix", hookBody("evt_"+ulid, "magic_auth.created", ev.magicAuthID), "invalid_event"},
		{"event id with the key separator", hookBody("event_:"+ulid[1:], "magic_auth.created", ev.magicAuthID), "invalid_event"},
		{"event id empty", hookBody("", "magic_auth.created", ev.magicAuthID), "invalid_event"},
		{"no data", `{"id":"` + ev.id + `","event":"magic_auth.created"}`, "invalid_event"},
		{"data not an object", `{"id":"` + ev.id + `","event":"magic_auth.created","data":"` + ev.magicAuthID + `"}`, "invalid_json"},
		{"not JSON", `{"id":"` + ev.id + `",`, "invalid_json"},
	}
	for _, tc := range cases {
		if code, reason := hookAnswer(hookDo(ts, tc.body)); code != http.StatusBadRequest || reason != tc.reason {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, code, reason, tc.reason)
		}
	}
	wantHookOutcomes(t, ts, map[string]uint64{"rejected": uint64(len(cases))})
	wantHookFetches(t, fake, 0)
	wantHookMails(t, ts, 0)
	if st := hookState(t, ts, ev.id); st != "" {
		t.Errorf("a rejected event left %q in the store", st)
	}
}

// TestWebhookRejectsBadSignature: every signature failure is 401 and fetches nothing; the fixture itself is good.
func TestWebhookRejectsBadSignature(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ev := newHookEvent(ts, fake)
	now := ts.clock.Now()
	good := hookHeader([]byte(ev.body), testWorkOSWebhookSecret, now)
	v1 := strings.Index(good, "v1=") + 3
	cases := []struct{ name, header, body string }{
		{"missing", "", ev.body},
		{"malformed", "t=" + strconv.FormatInt(now.UnixMilli(), 10), ev.body},
		{"wrong secret", hookHeader([]byte(ev.body), testWorkOSWebhookSecret+"x", now), ev.body},
		{"body changed", good, strings.Replace(ev.body, ev.id, "event_"+fakeULID(), 1)},
		{"upper-case hex", good[:v1] + strings.ToUpper(good[v1:]), ev.body},
		{"too old", hookHeader([]byte(ev.body), testWorkOSWebhookSecret, now.Add(-webhookTolerance-time.Millisecond)), ev.body},
		{"too far ahead", hookHeader([]byte(ev.body), testWorkOSWebhookSecret, now.Add(webhookTolerance+time.Millisecond)), ev.body},
	}
	for _, tc := range cases {
		r := hookRequest(ts, tc.body)
		r.Header.Set("WorkOS-Signature", tc.header)
		if code, reason := hookAnswer(hookServe(ts, r)); code != http.StatusUnauthorized || reason != "invalid_signature" {
			t.Errorf("%s: %d %s, want 401 invalid_signature", tc.name, code, reason)
		}
	}
	wantHookOutcomes(t, ts, map[string]uint64{"rejected": uint64(len(cases))})
	wantHookFetches(t, fake, 0)
	wantHookMails(t, ts, 0)
	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
}

// TestWebhookBodyTooLarge: a body over 1 MiB is 413 and fetches nothing, its length declared or streamed; exactly
// 1 MiB is delivered.
func TestWebhookBodyTooLarge(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ev := newHookEvent(ts, fake)
	pad := func(n int) string {
		return strings.TrimSuffix(ev.body, "}") + `,"pad":"` + strings.Repeat("x", n) + `"}`
	}
	big := pad(maxWebhookBody)
	for _, streamed := range []bool{false, true} {
		r := hookRequest(ts, big)
		if streamed {
			r.ContentLength = -1 // as a chunked request shows to the handler
		}
		if code, reason := hookAnswer(hookServe(ts, r)); code != http.StatusRequestEntityTooLarge || reason != "body_too_large" {
			t.Errorf("streamed %v: %d %s, want 413 body_too_large", streamed, code, reason)
		}
	}
	wantHookFetches(t, fake, 0)
	wantHookOutcomes(t, ts, map[string]uint64{"rejected": 2})

	exact := pad(maxWebhookBody - len(ev.body) - len(`,"pad":""`))
	if len(exact) != maxWebhookBody {
		t.Fatalf("padding: %d bytes", len(exact))
	}
	wantHook(t, hookDo(ts, exact), http.StatusOK, "delivered")
}

// errHookStoreDown is the error of hookFaultyStore's failing calls.
var errHookStoreDown = errors.New("store unreachable (test)")

// hookFaultyStore is a store whose calls fail when fail says so; the others reach the store under it.
type hookFaultyStore struct {
	store
	fail func(op, old, value string) bool
}

func (s hookFaultyStore) Get(ctx context.Context, key string) (string, bool, error) {
	if s.fail("Get", "", "") {
		return "", false, errHookStoreDown
	}
	return s.store.Get(ctx, key)
}

func (s hookFaultyStore) Put(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	if s.fail("Put", old, value) {
		return false, errHookStoreDown
	}
	return s.store.Put(ctx, key, old, value, ttl)
}

// TestWebhookStoreUnreachable: without the store the mail still goes out (a duplicate is possible, a lost code is
// not), counted; a failing mail still answers 503 so that WorkOS retries.
func TestWebhookStoreUnreachable(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ts.store = hookFaultyStore{ts.store, func(string, string, string) bool { return true }}
	ev := newHookEvent(ts, fake)
	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
	wantHookMails(t, ts, 1)
	if n := ts.metric("dashauth_webhook_undeduped_total", ""); n != 1 {
		t.Errorf("undeduped %d, want 1", n)
	}
	if n := ts.metric("dashauth_store_errors_total", ""); n == 0 {
		t.Error("the store's failure was not counted")
	}
	wantHookOutcomes(t, ts, map[string]uint64{"delivered": 1})

	ts.mails.fail(errors.New("smtp down too"))
	other := newHookEvent(ts, fake)
	wantHook(t, hookDo(ts, other.body), http.StatusServiceUnavailable, "delivery_failed")
	ts.mails.fail(nil)
	wantHook(t, hookDo(ts, other.body), http.StatusOK, "delivered")
	wantHookMails(t, ts, 2)
	if n := ts.metric("dashauth_webhook_undeduped_total", ""); n != 3 {
		t.Errorf("undeduped %d, want 3", n)
	}
	wantHookOutcomes(t, ts, map[string]uint64{"delivered": 2, "failed": 1})

	t.Run("only the renewal fails", func(t *testing.T) {
		t.Parallel()
		fake := newFakeWorkOS(t)
		ts := newWorkOSTestServer(t, fake)
		ts.store = hookFaultyStore{ts.store, func(op, old, value string) bool { return op == "Put" && old != "" && old == value }}
		ev := newHookEvent(ts, fake)
		wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
		wantHookMails(t, ts, 1)
		if n := ts.metric("dashauth_webhook_undeduped_total", ""); n != 1 {
			t.Errorf("undeduped %d, want 1", n)
		}
	})
}

// TestWebhookStaleClaim: a claim left by a replica that died mid-delivery holds the event off (409) only for its
// lease.
func TestWebhookStaleClaim(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	ev := newHookEvent(ts, fake)
	if ok, err := ts.store.Put(context.Background(), ts.key("webhook", ev.id), "", "claimed dead-replica", webhookLease); !ok || err != nil {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	wantHook(t, hookDo(ts, ev.body), http.StatusConflict, "delivery_in_progress")
	ts.clock.Advance(webhookLease - time.Millisecond)
	wantHook(t, hookDo(ts, ev.body), http.StatusConflict, "delivery_in_progress")
	wantHookFetches(t, fake, 0)
	ts.clock.Advance(time.Millisecond)
	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered")
	wantHookMails(t, ts, 1)
	wantHookOutcomes(t, ts, map[string]uint64{"duplicate": 2, "delivered": 1})
}

// TestWebhookEmailCodeMode: without WorkOS the webhook does not exist (404), a secret configured or not; nothing is
// fetched, mailed or counted.
func TestWebhookEmailCodeMode(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	for _, env := range [][]string{nil, {"WORKOS_WEBHOOK_SECRET", testWorkOSWebhookSecret, "WORKOS_API_KEY", testWorkOSAPIKey,
		"WORKOS_API_BASE_URL", fake.URL}} {
		ts := newTestServer(t, testEnv(env...))
		ev := newHookEvent(ts, fake)
		for _, signed := range []bool{true, false} {
			r := hookRequest(ts, ev.body)
			if !signed {
				r.Header.Del("WorkOS-Signature")
			}
			if code, reason := hookAnswer(hookServe(ts, r)); code != http.StatusNotFound || reason != "workos_not_enabled" {
				t.Errorf("env %v, signed %v: %d %s, want 404 workos_not_enabled", env, signed, code, reason)
			}
		}
		wantHookMails(t, ts, 0)
		wantHookOutcomes(t, ts, map[string]uint64{})
		for _, f := range []string{"dashauth_dedup_hits_total", "dashauth_webhook_undeduped_total", "dashauth_store_errors_total"} {
			if n := ts.metric(f, ""); n != 0 {
				t.Errorf("%s = %d, want 0", f, n)
			}
		}
	}
	wantHookFetches(t, fake, 0)
}

// Issue 9, finding 3: a magic auth the service can never mail (an address it refuses to write to the wire, a code
// that is not six digits) is answered 200 undeliverable, counted and logged, mailed to no one, and done: WorkOS does
// not retry it for 3 days, and a retry is a duplicate.
func TestWebhookUndeliverable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(m *fakeMagicAuth)
	}{
		{"quoted address", func(m *fakeMagicAuth) { m.Email = `"ada lovelace"@example.com` }},
		{"address with a display name", func(m *fakeMagicAuth) { m.Email = "Ada <ada@example.com>" }},
		{"address with a space", func(m *fakeMagicAuth) { m.Email = "ada lovelace@example.com" }},
		{"address with CRLF", func(m *fakeMagicAuth) { m.Email = "ada@example.com\r\nBcc: eve@example.com" }},
		{"address with LF", func(m *fakeMagicAuth) { m.Email = "ada@example.com\nBcc: eve@example.com" }},
		{"two addresses", func(m *fakeMagicAuth) { m.Email = "ada@example.com, eve@example.com" }},
		{"non-ASCII address", func(m *fakeMagicAuth) { m.Email = "adä@example.com" }},
		{"empty address", func(m *fakeMagicAuth) { m.Email = "" }},
		{"code of 5 digits", func(m *fakeMagicAuth) { m.Code = "12345" }},
		{"code of 7 digits", func(m *fakeMagicAuth) { m.Code = "1234567" }},
		{"code with a letter", func(m *fakeMagicAuth) { m.Code = "12345a" }},
		{"code with LF", func(m *fakeMagicAuth) { m.Code = "12345\n" }},
		{"code of Arabic digits", func(m *fakeMagicAuth) { m.Code = "١٢٣٤٥٦" }},
		{"empty code", func(m *fakeMagicAuth) { m.Code = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := newFakeWorkOS(t)
			ts := newWorkOSTestServer(t, fake)
			ev := newHookEvent(ts, fake)
			m := fakeMagicAuth{ID: ev.magicAuthID, UserID: "user_" + fakeULID(), Email: ev.email, Code: ev.code,
				ExpiresAt: ev.expires, CreatedAt: ev.expires.Add(-10 * time.Minute)}
			tc.change(&m)
			fake.putMagicAuth(m)

			wantHook(t, hookDo(ts, ev.body), http.StatusOK, "undeliverable")
			wantHookMails(t, ts, 0)
			wantHookDone(t, ts, ev.id)
			wantHookOutcomes(t, ts, map[string]uint64{"undeliverable": 1})
			if !strings.Contains(ts.logs.String(), "cannot be mailed") || !strings.Contains(ts.logs.String(), ev.magicAuthID) {
				t.Errorf("the undeliverable magic auth is not logged:\n%s", ts.logs.String())
			}

			ts.clock.Advance(webhookDoneTTL - time.Second) // WorkOS's retries span 3 days
			wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
			wantHookFetches(t, fake, 1)
			wantHookMails(t, ts, 0)
		})
	}
}

// Issue 9, finding 1: WorkOS hanging up while SMTP is slow does not cut the delivery short. The handler returns, the
// mail is accepted and the event done; WorkOS's retry is a duplicate, not a second mail.
func TestWebhookOutlivesRequest(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	peer := newMailPeer(t, mailPeerOptions{Hold: true}) // holds its answer to the mail's final "."
	ts.mail = smtpMailer{peer.Config()}
	ev := newHookEvent(ts, fake)

	ctx, cancel := context.WithCancel(context.Background())
	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() { answered <- hookServe(ts, hookRequest(ts, ev.body).WithContext(ctx)) }()
	<-peer.Reached() // the mail is in, its answer held
	cancel()         // WorkOS stops waiting
	<-answered       // the handler returns at once, to no one
	if st := hookState(t, ts, ev.id); !strings.HasPrefix(st, "claimed ") {
		t.Fatalf("with the request gone the event's key holds %q, want the delivery's claim", st)
	}

	peer.Release()
	ts.background.Wait()
	if n := peer.Mails(); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	wantHookDone(t, ts, ev.id)
	wantHookOutcomes(t, ts, map[string]uint64{"delivered": 1})
	if n := ts.metric("dashauth_mails_total", "sent"); n != 1 {
		t.Errorf("mails sent %d, want 1", n)
	}

	wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
	if n := peer.Mails(); n != 1 {
		t.Fatalf("%d mails after the retry, want 1", n)
	}
}

// Issue 9, finding 1, at shutdown: serve's context ends while a delivery waits on a slow SMTP server; serve returns
// only after the delivery completed, and WorkOS gets its 200.
func TestWebhookShutdownWaitsForDelivery(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	ts := newWorkOSTestServer(t, fake)
	peer := newMailPeer(t, mailPeerOptions{Hold: true})
	ts.mail = smtpMailer{peer.Config()}
	ev := newHookEvent(ts, fake)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- ts.serve(ctx, ln) }()

	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+hookPath, strings.NewReader(ev.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("WorkOS-Signature", hookHeader([]byte(ev.body), testWorkOSWebhookSecret, ts.clock.Now()))
		res, err := client.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		answered <- answer{res.StatusCode, string(b), err}
	}()

	<-peer.Reached()
	cancel() // SIGTERM
	hookWaitFor(t, "serve to begin draining", func() bool { return strings.Contains(ts.logs.String(), "shutting down") })
	select {
	case err := <-served:
		t.Fatalf("serve returned (%v) with a delivery in flight", err)
	default:
	}
	peer.Release()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	// serve has returned: the delivery must be complete already, not merely running.
	if st := hookState(t, ts, ev.id); st != "done" {
		t.Errorf("when serve returned the event's key held %q, want done", st)
	}
	if n := ts.metric("dashauth_webhook_events_total", "delivered"); n != 1 {
		t.Errorf("when serve returned, delivered = %d, want 1", n)
	}
	if n := peer.Mails(); n != 1 {
		t.Errorf("%d mails, want 1", n)
	}
	a := <-answered
	if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, `"delivered"`) {
		t.Errorf("WorkOS got %d %q (%v), want 200 delivered", a.status, a.body, a.err)
	}
}

// hookWaitFor waits until cond holds, failing the test after 10 s.
func hookWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// hookWorkOSGate holds the first WorkOS call until open, then passes it on, or fails it with err; later calls pass
// at once.
type hookWorkOSGate struct {
	err     error
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	calls   atomic.Int64
}

// hookGateWorkOS puts a hookWorkOSGate between ts and WorkOS.
func hookGateWorkOS(t *testing.T, ts *testServer, err error) *hookWorkOSGate {
	g := &hookWorkOSGate{err: err, entered: make(chan struct{}), release: make(chan struct{})}
	ts.workos.HTTPClient = &http.Client{Timeout: workosTimeout, Transport: g}
	t.Cleanup(g.open)
	return g
}

func (g *hookWorkOSGate) open() { g.once.Do(func() { close(g.release) }) }

func (g *hookWorkOSGate) RoundTrip(r *http.Request) (*http.Response, error) {
	if g.calls.Add(1) == 1 {
		close(g.entered)
		select {
		case <-g.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
		if g.err != nil {
			return nil, g.err
		}
	}
	return workosTransport{}.RoundTrip(r)
}

// Issue 9, finding 2: a delivery that stalled past its lease has lost the event to another; its renewal or release
// must not undo the other's claim, and it must not mail a second time.
func TestWebhookFencing(t *testing.T) {
	t.Parallel()

	t.Run("the renewal of a stale claim fails, so no second mail", func(t *testing.T) {
		t.Parallel()
		fake := newFakeWorkOS(t)
		ts := newWorkOSTestServer(t, fake)
		ev := newHookEvent(ts, fake)
		gate := hookGateWorkOS(t, ts, nil)

		a := make(chan *httptest.ResponseRecorder, 1)
		go func() { a <- hookDo(ts, ev.body) }()
		<-gate.entered // A holds the claim and waits on WorkOS
		ts.clock.Advance(webhookLease)
		wantHook(t, hookDo(ts, ev.body), http.StatusOK, "delivered") // B took over and delivered
		gate.open()
		wantHook(t, <-a, http.StatusConflict, "delivery_in_progress")

		wantHookMails(t, ts, 1)
		wantHookDone(t, ts, ev.id)
		if !strings.Contains(ts.logs.String(), "lease ran out") {
			t.Errorf("the lost lease is not logged:\n%s", ts.logs.String())
		}
		wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
		wantHookMails(t, ts, 1)
	})

	t.Run("the release of a stale claim leaves the new owner's", func(t *testing.T) {
		t.Parallel()
		fake := newFakeWorkOS(t)
		ts := newWorkOSTestServer(t, fake)
		ev := newHookEvent(ts, fake)
		gate := hookGateWorkOS(t, ts, errors.New("WorkOS went away"))
		mailGate := newHookMailGate(t, ts.mails, &hookSeq{}, nil)
		ts.mail = mailGate

		a := make(chan *httptest.ResponseRecorder, 1)
		go func() { a <- hookDo(ts, ev.body) }()
		<-gate.entered // A holds the claim and waits on WorkOS, which will fail it
		ts.clock.Advance(webhookLease)
		b := make(chan *httptest.ResponseRecorder, 1)
		go func() { b <- hookDo(ts, ev.body) }()
		<-mailGate.entered // B took over and is mailing
		owner := hookState(t, ts, ev.id)
		if !strings.HasPrefix(owner, "claimed ") {
			t.Fatalf("B's claim reads %q", owner)
		}

		gate.open()
		wantHook(t, <-a, http.StatusServiceUnavailable, "delivery_failed")
		if st := hookState(t, ts, ev.id); st != owner {
			t.Fatalf("A's release changed B's claim %q to %q", owner, st)
		}
		wantHook(t, hookDo(ts, ev.body), http.StatusConflict, "delivery_in_progress") // C finds B at work

		mailGate.open()
		wantHook(t, <-b, http.StatusOK, "delivered")
		wantHookMails(t, ts, 1)
		wantHookDone(t, ts, ev.id)
		wantHook(t, hookDo(ts, ev.body), http.StatusOK, "duplicate")
		wantHookMails(t, ts, 1)
	})
}

// TestDeliveryDeadlineWithinLease: at most once rests on a delivery ending before its claim's lease can run out
// (model/README.md: with a deadline as long as the lease, spin finds a duplicate).
func TestDeliveryDeadlineWithinLease(t *testing.T) {
	if deliveryTimeout >= webhookLease {
		t.Fatalf("deliveryTimeout %v must stay below webhookLease %v", deliveryTimeout, webhookLease)
	}
}
