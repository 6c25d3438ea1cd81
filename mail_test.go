package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

const testFrom = "dashauth@example.com"

// mailNow is the injected clock: 2025-03-04 05:06:07 at UTC+1.
var mailNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))

// testRandom returns a reader of the bytes 0, 1, 2, ... so ids and boundaries are fixed.
func testRandom() io.Reader {
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(i)
	}
	return bytes.NewReader(b)
}

// validMessage is the fixture every hostile case changes in one place. Its text has a
// code on a line of its own and a line starting with "." (which SMTP must dot-stuff).
func validMessage() message {
	return message{
		To:      "ada@example.com",
		Subject: "Your sign-in code",
		Text:    "Your sign-in code is:\n\n123456\n\nIt expires in 10 minutes.\n.hidden line\n",
		HTML:    `<p style="x">Your sign-in code is <b>123456</b>.</p>`,
	}
}

func TestBuildMessageGolden(t *testing.T) {
	t.Parallel()
	got, err := buildMessage(testFrom, validMessage(), mailNow, testRandom())
	if err != nil {
		t.Fatalf("buildMessage: %v", err)
	}
	want := "From: dashauth@example.com\r\n" +
		"To: ada@example.com\r\n" +
		"Subject: Your sign-in code\r\n" +
		"Date: Tue, 04 Mar 2025 05:06:07 +0100\r\n" +
		"Message-ID: <000102030405060708090a0b0c0d0e0f@example.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=\"=_101112131415161718191a1b\"\r\n" +
		"\r\n" +
		"--=_101112131415161718191a1b\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"\r\n" +
		"Your sign-in code is:\r\n" +
		"\r\n" +
		"123456\r\n" +
		"\r\n" +
		"It expires in 10 minutes.\r\n" +
		".hidden line\r\n" +
		"\r\n" +
		"--=_101112131415161718191a1b\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"\r\n" +
		"<p style=3D\"x\">Your sign-in code is <b>123456</b>.</p>\r\n" +
		"--=_101112131415161718191a1b--\r\n"
	if string(got) != want {
		t.Errorf("buildMessage =\n%q\nwant\n%q", got, want)
	}
	checkCRLF(t, got)
	text, html := parseParts(t, got)
	if want := "Your sign-in code is:\r\n\r\n123456\r\n\r\nIt expires in 10 minutes.\r\n.hidden line\r\n"; text != want {
		t.Errorf("decoded text = %q, want %q", text, want)
	}
	if html != validMessage().HTML {
		t.Errorf("decoded html = %q, want %q", html, validMessage().HTML)
	}
}

// checkCRLF fails unless every CR in b starts a CRLF and every LF ends one.
func checkCRLF(t *testing.T, b []byte) {
	t.Helper()
	for i, c := range b {
		if c == '\r' && (i+1 == len(b) || b[i+1] != '\n') || c == '\n' && (i == 0 || b[i-1] != '\r') {
			t.Fatalf("bare CR or LF at byte %d of %q", i, b)
		}
	}
}

// parseParts reads raw as a mail reader would and returns its two decoded parts.
func parseParts(t testing.TB, raw []byte) (text, html string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("mail.ReadMessage: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var got []string
	for _, wantType := range []string{"text/plain; charset=utf-8", "text/html; charset=utf-8"} {
		p, err := r.NextPart() // decodes quoted-printable
		if err != nil {
			t.Fatalf("part %q: %v", wantType, err)
		}
		if ct := p.Header.Get("Content-Type"); ct != wantType {
			t.Fatalf("part Content-Type = %q, want %q", ct, wantType)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %q: %v", wantType, err)
		}
		got = append(got, string(b))
	}
	if _, err := r.NextPart(); err != io.EOF {
		t.Fatalf("after two parts: %v, want io.EOF", err)
	}
	return got[0], got[1]
}

// rawPlainPart returns the plain part of raw as sent: still quoted-printable.
func rawPlainPart(t *testing.T, raw []byte) string {
	t.Helper()
	const start = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	_, rest, ok := strings.Cut(string(raw), start)
	body, _, ok2 := strings.Cut(rest, "\r\n--=_")
	if !ok || !ok2 {
		t.Fatalf("no plain part in %q", raw)
	}
	return body
}

func TestBuildMessageCodeOnItsOwnLine(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("Ein sehr langer Satz über Anmeldecodes, ", 5) // > 76 bytes, non-ASCII
	for _, tc := range []struct {
		name, text string
		want       string // the encoded code line with what must surround it
		at         string // "start" or "end" when the line must begin or end the part
	}{
		{"LF", "Code:\n123456\nBye\n", "\r\n123456\r\n", ""},
		{"CRLF", "Code:\r\n123456\r\nBye\r\n", "\r\n123456\r\n", ""},
		{"CR", "Code:\r123456\rBye\r", "\r\n123456\r\n", ""},
		{"first line", "123456\nBye", "123456\r\n", "start"},
		{"last line", "Code:\n123456", "\r\n123456", "end"},
		{"after a soft-broken long line", long + "\n123456\n" + long, "\r\n123456\r\n", ""},
		{"after non-ASCII", "Ihr Code für heute:\n\n123456\n\nGrüße\n", "\r\n123456\r\n", ""},
		{"after trailing space", "Code: \n123456\n", "=20\r\n123456\r\n", ""},
		{"after a bare CR and an encoded byte", "Code\ré\n123456\n", "\r\n123456\r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := validMessage()
			m.Text = tc.text
			raw, err := buildMessage(testFrom, m, mailNow, testRandom())
			if err != nil {
				t.Fatalf("buildMessage: %v", err)
			}
			plain := rawPlainPart(t, raw)
			if !strings.Contains(plain, tc.want) ||
				tc.at == "start" && !strings.HasPrefix(plain, tc.want) || tc.at == "end" && !strings.HasSuffix(plain, tc.want) {
				t.Errorf("plain part %q lacks %q (at %q)", plain, tc.want, tc.at)
			}
			for line := range strings.SplitSeq(plain, "\r\n") {
				if len(line) > 76 { // RFC 2045 §6.7 (5)
					t.Errorf("quoted-printable line of %d bytes: %q", len(line), line)
				}
			}
			checkCRLF(t, raw)
		})
	}
}

func TestBuildMessageMessageID(t *testing.T) {
	t.Parallel()
	m := validMessage()
	m.MessageID = "<magic_auth_01HXYZ.event_02@dashauth.example.org>"
	raw, err := buildMessage(testFrom, m, mailNow, testRandom())
	if err != nil {
		t.Fatalf("buildMessage: %v", err)
	}
	if !bytes.Contains(raw, []byte("\r\nMessage-ID: <magic_auth_01HXYZ.event_02@dashauth.example.org>\r\n")) {
		t.Errorf("given Message-ID not used: %q", raw)
	}

	// Generated ids and boundaries come from the random source, and differ per mail.
	var ids, boundaries []string
	for range 2 {
		raw, err := buildMessage("noreply@mail.example.net", validMessage(), mailNow, rand.Reader)
		if err != nil {
			t.Fatalf("buildMessage: %v", err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("mail.ReadMessage: %v", err)
		}
		id := msg.Header.Get("Message-ID")
		if err := checkMessageID(id); err != nil || !strings.HasSuffix(id, "@mail.example.net>") || len(id) != 1+32+len("@mail.example.net>") {
			t.Errorf("generated Message-ID %q (%v)", id, err)
		}
		_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		ids, boundaries = append(ids, id), append(boundaries, params["boundary"])
	}
	if ids[0] == ids[1] || boundaries[0] == boundaries[1] {
		t.Errorf("two mails share a Message-ID or boundary: %q %q", ids, boundaries)
	}
}

func TestBuildMessageRandomFailure(t *testing.T) {
	t.Parallel()
	boom := errors.New("entropy gone")
	_, err := buildMessage(testFrom, validMessage(), mailNow, iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Fatalf("buildMessage with a failing random source: %v, want %v", err, boom)
	}
}

func TestBuildMessageSubjectEncoding(t *testing.T) {
	t.Parallel()
	for _, subject := range []string{
		"Votre code de connexion",
		"Votre code de connexion — valable 10 minutes",
		"Ihr Anmeldecode: äöü ß",
		strings.Repeat("é", 100), // 200 bytes: the longest subject, many encoded words
		"日本語のサインインコード",
	} {
		m := validMessage()
		m.Subject = subject
		raw, err := buildMessage(testFrom, m, mailNow, testRandom())
		if err != nil {
			t.Fatalf("buildMessage(subject %q): %v", subject, err)
		}
		header, _, _ := strings.Cut(string(raw), "\r\n\r\n")
		for line := range strings.SplitSeq(header, "\r\n") {
			if len(line) > 76 && strings.Contains(line, "=?") || len(line) > 78 || strings.ContainsFunc(line, func(r rune) bool { return r > '~' }) {
				t.Errorf("subject %q: header line %q longer than 78 bytes or not ASCII", subject, line)
			}
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("mail.ReadMessage: %v", err)
		}
		got, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		if err != nil || got != subject {
			t.Errorf("Subject decodes to %q (%v), want %q", got, err, subject)
		}
	}
}

// hostileCases each change one field of validMessage (or the sender).
var hostileCases = []struct {
	name   string
	change func(m *message, from *string)
	want   error
}{
	{"to CRLF Bcc", func(m *message, _ *string) { m.To = "ada@example.com\r\nBcc: eve@example.com" }, errBadHeader},
	{"to LF Bcc", func(m *message, _ *string) { m.To = "ada@example.com\nBcc: eve@example.com" }, errBadHeader},
	{"to CR Bcc", func(m *message, _ *string) { m.To = "ada@example.com\rBcc: eve@example.com" }, errBadHeader},
	{"to NUL", func(m *message, _ *string) { m.To = "ada@example.com\x00" }, errBadHeader},
	{"to tab", func(m *message, _ *string) { m.To = "ada@example.com\t" }, errBadHeader},
	{"to DEL", func(m *message, _ *string) { m.To = "ada\x7f@example.com" }, errBadHeader},
	{"to display name", func(m *message, _ *string) { m.To = "Ada <ada@example.com>" }, errBadAddress},
	{"to quoted display name", func(m *message, _ *string) { m.To = `"Ada, Countess" <ada@example.com>` }, errBadAddress},
	{"to angle brackets", func(m *message, _ *string) { m.To = "<ada@example.com>" }, errBadAddress},
	{"to comment", func(m *message, _ *string) { m.To = "ada@example.com (Ada)" }, errBadAddress},
	{"to two addresses", func(m *message, _ *string) { m.To = "ada@example.com, eve@example.com" }, errBadAddress},
	{"to two addresses no space", func(m *message, _ *string) { m.To = "ada@example.com,eve@example.com" }, errBadAddress},
	{"to semicolon list", func(m *message, _ *string) { m.To = "ada@example.com;eve@example.com" }, errBadAddress},
	{"to group", func(m *message, _ *string) { m.To = "team: ada@example.com, eve@example.com;" }, errBadAddress},
	{"to leading space", func(m *message, _ *string) { m.To = " ada@example.com" }, errBadAddress},
	{"to no at", func(m *message, _ *string) { m.To = "ada.example.com" }, errBadAddress},
	{"to no domain", func(m *message, _ *string) { m.To = "ada@" }, errBadAddress},
	{"to non-ASCII", func(m *message, _ *string) { m.To = "adä@example.com" }, errBadAddress},
	{"to 255 bytes", func(m *message, _ *string) { m.To = longAddress(255) }, errBadAddress},
	{"to empty", func(m *message, _ *string) { m.To = "" }, errBadAddress},
	{"from CRLF Bcc", func(_ *message, f *string) { *f = testFrom + "\r\nBcc: eve@example.com" }, errBadHeader},
	{"from LF", func(_ *message, f *string) { *f = testFrom + "\nX: y" }, errBadHeader},
	{"from NUL", func(_ *message, f *string) { *f = "dash\x00auth@example.com" }, errBadHeader},
	{"from display name", func(_ *message, f *string) { *f = "Dashauth <" + testFrom + ">" }, errBadAddress},
	{"from two addresses", func(_ *message, f *string) { *f = testFrom + ", eve@example.com" }, errBadAddress},
	{"from 255 bytes", func(_ *message, f *string) { *f = longAddress(255) }, errBadAddress},
	{"from empty", func(_ *message, f *string) { *f = "" }, errBadAddress},
	{"subject CRLF Bcc", func(m *message, _ *string) { m.Subject = "Code\r\nBcc: eve@example.com" }, errBadHeader},
	{"subject LF", func(m *message, _ *string) { m.Subject = "Code\nBcc: eve@example.com" }, errBadHeader},
	{"subject CR", func(m *message, _ *string) { m.Subject = "Code\rBcc: eve@example.com" }, errBadHeader},
	{"subject CRLF CRLF body", func(m *message, _ *string) { m.Subject = "Code\r\n\r\nfake body" }, errBadHeader},
	{"subject NUL", func(m *message, _ *string) { m.Subject = "Code\x00" }, errBadHeader},
	{"subject non-ASCII with LF", func(m *message, _ *string) { m.Subject = "Café\nBcc: eve@example.com" }, errBadHeader},
	{"subject empty", func(m *message, _ *string) { m.Subject = "" }, errBadHeader},
	{"subject 201 bytes", func(m *message, _ *string) { m.Subject = strings.Repeat("s", 201) }, errBadHeader},
	{"message id CRLF Bcc", func(m *message, _ *string) { m.MessageID = "<a@b>\r\nBcc: eve@example.com" }, errBadHeader},
	{"message id LF", func(m *message, _ *string) { m.MessageID = "<a@b>\n" }, errBadHeader},
	{"message id NUL", func(m *message, _ *string) { m.MessageID = "<a\x00@b>" }, errBadHeader},
	{"message id no brackets", func(m *message, _ *string) { m.MessageID = "a@b" }, errBadHeader},
	{"message id no at", func(m *message, _ *string) { m.MessageID = "<ab>" }, errBadHeader},
	{"message id empty left", func(m *message, _ *string) { m.MessageID = "<@b>" }, errBadHeader},
	{"message id empty right", func(m *message, _ *string) { m.MessageID = "<a@>" }, errBadHeader},
	{"message id two ats", func(m *message, _ *string) { m.MessageID = "<a@b@c>" }, errBadHeader},
	{"message id nested", func(m *message, _ *string) { m.MessageID = "<<a@b>>" }, errBadHeader},
	{"message id two ids", func(m *message, _ *string) { m.MessageID = "<a@b> <c@d>" }, errBadHeader},
	{"message id space", func(m *message, _ *string) { m.MessageID = "<a b@c>" }, errBadHeader},
	{"message id non-ASCII", func(m *message, _ *string) { m.MessageID = "<ä@b>" }, errBadHeader},
	{"message id 251 bytes", func(m *message, _ *string) { m.MessageID = "<" + strings.Repeat("a", 245) + "@b.c>" }, errBadHeader},
	{"body over 1 MiB", func(m *message, _ *string) { m.HTML = strings.Repeat("h", 1<<20-len(m.Text)+1) }, errMessageTooLarge},
}

// longAddress returns a syntactically valid address of n bytes.
func longAddress(n int) string {
	domain := strings.Repeat(strings.Repeat("d", 62)+".", 3)
	return strings.Repeat("a", n-len("@")-len(domain)-len("com")) + "@" + domain + "com"
}

func TestBuildMessageRejectsHostileHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, from := validMessage(), testFrom
			tc.change(&m, &from)
			raw, err := buildMessage(from, m, mailNow, testRandom())
			if !errors.Is(err, tc.want) || raw != nil {
				t.Fatalf("buildMessage = %q, %v; want nil, %v", raw, err, tc.want)
			}
		})
	}
}

func TestBuildMessageBoundaries(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(m *message, from *string)
	}{
		{"to 254 bytes", func(m *message, _ *string) { m.To = longAddress(254) }},
		{"from 254 bytes", func(_ *message, f *string) { *f = longAddress(254) }},
		{"subject 200 bytes", func(m *message, _ *string) { m.Subject = strings.Repeat("s", 200) }},
		{"message id 250 bytes", func(m *message, _ *string) { m.MessageID = "<" + strings.Repeat("a", 244) + "@b.c>" }},
		{"body of 1 MiB", func(m *message, _ *string) { m.HTML = strings.Repeat("h", 1<<20-len(m.Text)) }},
		{"plus address", func(m *message, _ *string) { m.To = "ada+codes@sub.example.co.uk" }},
		{"empty bodies", func(m *message, _ *string) { m.Text, m.HTML = "", "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, from := validMessage(), testFrom
			tc.change(&m, &from)
			raw, err := buildMessage(from, m, mailNow, testRandom())
			if err != nil {
				t.Fatalf("buildMessage: %v", err)
			}
			text, html := parseParts(t, raw)
			if text != strings.ReplaceAll(m.Text, "\n", "\r\n") || html != m.HTML {
				t.Errorf("parts do not decode to the input")
			}
		})
	}
}

// TestSendRejectsHostileHeaders checks that nothing reaches the network: no connection
// for a bad message, and no mailer at all for a bad sender.
func TestSendRejectsHostileHeaders(t *testing.T) {
	t.Parallel()
	srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true})
	for _, tc := range hostileCases {
		m, from := validMessage(), testFrom
		tc.change(&m, &from)
		cfg := srv.Config()
		cfg.From = from
		mailer, err := newSMTPMailer(cfg)
		if from != testFrom {
			if !errors.Is(err, errBadSMTPConfig) || !errors.Is(err, tc.want) || mailer != nil {
				t.Errorf("%s: newSMTPMailer = %v, want %v and %v", tc.name, err, errBadSMTPConfig, tc.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("newSMTPMailer: %v", err)
		}
		if err := mailer.Send(t.Context(), m); !errors.Is(err, tc.want) {
			t.Errorf("%s: Send = %v, want %v", tc.name, err, tc.want)
		}
	}
	if n := srv.Connections(); n != 0 {
		t.Errorf("server saw %d connections, want 0", n)
	}
}

func TestLogMailer(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := logMailer{log: slog.New(slog.NewJSONHandler(&buf, nil))}
	var _ mailer = l
	m := validMessage()
	if err := l.Send(t.Context(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.Bytes(), err)
	}
	if line["to"] != m.To || line["subject"] != m.Subject || line["text"] != m.Text || line["level"] != "INFO" {
		t.Errorf("log line %v lacks to, subject or text of %+v", line, m)
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 1 {
		t.Errorf("%d log lines, want 1", n)
	}
	for _, tc := range hostileCases {
		m, from := validMessage(), testFrom
		tc.change(&m, &from)
		if from != testFrom {
			continue // a log mailer has no sender
		}
		buf.Reset()
		if err := l.Send(t.Context(), m); !errors.Is(err, tc.want) || buf.Len() != 0 {
			t.Errorf("%s: Send = %v and logged %q; want %v and nothing", tc.name, err, buf.Bytes(), tc.want)
		}
	}
}

func TestNewSMTPMailerConfig(t *testing.T) {
	t.Parallel()
	valid := smtpConfig{Host: "smtp.example.com", Port: 587, From: testFrom, TLS: "starttls"}
	for _, tc := range []struct {
		name   string
		change func(c *smtpConfig)
		ok     bool
	}{
		{"valid starttls", func(c *smtpConfig) {}, true},
		{"valid tls", func(c *smtpConfig) { c.TLS, c.Port = "tls", 465 }, true},
		{"none localhost", func(c *smtpConfig) { c.TLS, c.Host = "none", "localhost" }, true},
		{"none LOCALHOST", func(c *smtpConfig) { c.TLS, c.Host = "none", "LOCALHOST" }, true},
		{"none 127.0.0.1", func(c *smtpConfig) { c.TLS, c.Host = "none", "127.0.0.1" }, true},
		{"none 127.1.2.3", func(c *smtpConfig) { c.TLS, c.Host = "none", "127.1.2.3" }, true},
		{"none ::1", func(c *smtpConfig) { c.TLS, c.Host = "none", "::1" }, true},
		{"none remote name", func(c *smtpConfig) { c.TLS = "none" }, false},
		{"none private address", func(c *smtpConfig) { c.TLS, c.Host = "none", "10.0.0.1" }, false},
		{"none unspecified address", func(c *smtpConfig) { c.TLS, c.Host = "none", "0.0.0.0" }, false},
		{"none localhost subdomain", func(c *smtpConfig) { c.TLS, c.Host = "none", "localhost.example.com" }, false},
		{"none 127 as a name", func(c *smtpConfig) { c.TLS, c.Host = "none", "127.0.0.1.example.com" }, false},
		{"none bracketed ::1", func(c *smtpConfig) { c.TLS, c.Host = "none", "[::1]" }, false},
		{"tls empty", func(c *smtpConfig) { c.TLS = "" }, false},
		{"tls upper case", func(c *smtpConfig) { c.TLS = "STARTTLS" }, false},
		{"tls ssl", func(c *smtpConfig) { c.TLS = "ssl" }, false},
		{"host empty", func(c *smtpConfig) { c.Host = "" }, false},
		{"host CRLF", func(c *smtpConfig) { c.Host = "smtp.example.com\r\n" }, false},
		{"host with port", func(c *smtpConfig) { c.Host = "smtp.example.com:25/x" }, false},
		{"port 0", func(c *smtpConfig) { c.Port = 0 }, false},
		{"port 65536", func(c *smtpConfig) { c.Port = 65536 }, false},
		{"from display name", func(c *smtpConfig) { c.From = "D <" + testFrom + ">" }, false},
		{"timeout negative", func(c *smtpConfig) { c.Timeout = -time.Second }, false},
		{"local name CRLF", func(c *smtpConfig) { c.LocalName = "mx\r\nMAIL FROM:<x@y>" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tc.change(&cfg)
			m, err := newSMTPMailer(cfg)
			if tc.ok != (err == nil) || !tc.ok && (m != nil || !errors.Is(err, errBadSMTPConfig)) {
				t.Fatalf("newSMTPMailer(%+v) = %v, %v; want ok %v or %v", cfg, m, err, tc.ok, errBadSMTPConfig)
			}
		})
	}
	m, err := newSMTPMailer(valid)
	if err != nil || m.cfg.Timeout != 30*time.Second || m.cfg.LocalName != "localhost" {
		t.Errorf("defaults: %+v, %v; want a 30s timeout and local name localhost", m, err)
	}
}

// newTestMailer makes a mailer for srv with a fixed clock and random source, so the
// bytes it sends equal buildMessage's.
func newTestMailer(t *testing.T, cfg smtpConfig) *smtpMailer {
	t.Helper()
	m, err := newSMTPMailer(cfg)
	if err != nil {
		t.Fatalf("newSMTPMailer: %v", err)
	}
	m.now = func() time.Time { return mailNow }
	m.random = testRandom()
	return m
}

func TestSendEndToEnd(t *testing.T) {
	t.Parallel()
	want, err := buildMessage(testFrom, validMessage(), mailNow, testRandom())
	if err != nil {
		t.Fatalf("buildMessage: %v", err)
	}
	for _, tc := range []struct {
		name    string
		opts    testSMTPOptions
		config  func(c *smtpConfig)
		tls     bool
		wantCmd []string
	}{
		{"starttls with auth", testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "pa ss\x01word"}, nil, true,
			[]string{"EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"starttls without auth", testSMTPOptions{STARTTLS: true}, nil, true,
			[]string{"EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"starttls to localhost", testSMTPOptions{STARTTLS: true}, func(c *smtpConfig) { c.Host = "localhost" }, true,
			[]string{"EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"implicit tls with auth", testSMTPOptions{ImplicitTLS: true, Username: "mailer", Password: "secret"}, nil, true,
			[]string{"EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"none to loopback", testSMTPOptions{}, nil, false,
			[]string{"EHLO", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"none to loopback with auth", testSMTPOptions{Username: "mailer", Password: "secret"}, nil, false,
			[]string{"EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"starttls offered but tls none", testSMTPOptions{STARTTLS: true}, func(c *smtpConfig) { c.TLS = "none" }, false,
			[]string{"EHLO", "MAIL", "RCPT", "DATA", "QUIT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, tc.opts)
			cfg := srv.Config()
			cfg.LocalName = "mx.dashauth.example"
			if tc.config != nil {
				tc.config(&cfg)
			}
			if err := newTestMailer(t, cfg).Send(t.Context(), validMessage()); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("server received %d mails, want 1", len(got))
			}
			if got[0].From != testFrom || !slices.Equal(got[0].To, []string{"ada@example.com"}) ||
				got[0].TLS != tc.tls || got[0].User != tc.opts.Username {
				t.Errorf("received from %q to %q tls %v user %q; want %q, ada@example.com, %v, %q",
					got[0].From, got[0].To, got[0].TLS, got[0].User, testFrom, tc.tls, tc.opts.Username)
			}
			if !bytes.Equal(got[0].Data, want) {
				t.Errorf("received\n%q\nwant\n%q", got[0].Data, want)
			}
			if v := srv.Verbs(); !slices.Equal(v, tc.wantCmd) {
				t.Errorf("commands %q, want %q", v, tc.wantCmd)
			}
			if c := srv.Commands(); c[0] != "EHLO mx.dashauth.example" {
				t.Errorf("first command %q, want EHLO with the local name", c[0])
			}
		})
	}
}

// TestSendNeverFallsBackToClearText: a STARTTLS or TLS failure sends no credentials
// and no mail.
func TestSendNeverFallsBackToClearText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   testSMTPOptions
		config func(t *testing.T, c *smtpConfig)
		check  func(t *testing.T, err error)
	}{
		{"starttls not offered", testSMTPOptions{Username: "mailer", Password: "secret"},
			func(_ *testing.T, c *smtpConfig) { c.TLS = "starttls" },
			func(t *testing.T, err error) {
				if !errors.Is(err, errNoSTARTTLS) {
					t.Errorf("Send = %v, want %v", err, errNoSTARTTLS)
				}
			}},
		{"EHLO refused, HELO has no extensions", testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "secret",
			Fail: testSMTPFailure{Stage: stageHello, Code: 502, Times: 1}},
			func(_ *testing.T, c *smtpConfig) {},
			func(t *testing.T, err error) {
				if !errors.Is(err, errNoSTARTTLS) {
					t.Errorf("Send = %v, want %v", err, errNoSTARTTLS)
				}
			}},
		{"starttls untrusted certificate", testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "secret"},
			func(_ *testing.T, c *smtpConfig) { c.RootCAs = nil },
			func(t *testing.T, err error) {
				if !errors.As(err, new(*tls.CertificateVerificationError)) {
					t.Errorf("Send = %v, want a certificate verification error", err)
				}
			}},
		{"implicit tls untrusted certificate", testSMTPOptions{ImplicitTLS: true, Username: "mailer", Password: "secret"},
			func(_ *testing.T, c *smtpConfig) { c.RootCAs = nil },
			func(t *testing.T, err error) {
				if !errors.As(err, new(*tls.CertificateVerificationError)) {
					t.Errorf("Send = %v, want a certificate verification error", err)
				}
			}},
		{"starttls certificate from another authority", testSMTPOptions{STARTTLS: true},
			func(t *testing.T, c *smtpConfig) { _, c.RootCAs = newTestCertificate(t) },
			func(t *testing.T, err error) {
				if !errors.As(err, new(*tls.CertificateVerificationError)) {
					t.Errorf("Send = %v, want a certificate verification error", err)
				}
			}},
		{"implicit tls server spoken to in clear", testSMTPOptions{ImplicitTLS: true},
			func(_ *testing.T, c *smtpConfig) { c.TLS = "starttls" },
			func(t *testing.T, err error) {
				if err == nil {
					t.Error("Send succeeded")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, tc.opts)
			cfg := srv.Config()
			cfg.Timeout = 2 * time.Second
			tc.config(t, &cfg)
			err := newTestMailer(t, cfg).Send(t.Context(), validMessage())
			tc.check(t, err)
			for _, v := range srv.Verbs() {
				if v == "AUTH" || v == "MAIL" {
					t.Errorf("server received %s: %q", v, srv.Commands())
				}
			}
			if srv.Count() != 0 {
				t.Errorf("server accepted %d mails, want 0", srv.Count())
			}
		})
	}
}

func TestSendWrongPassword(t *testing.T) {
	t.Parallel()
	srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "right"})
	cfg := srv.Config()
	cfg.Password = "wrong"
	err := newTestMailer(t, cfg).Send(t.Context(), validMessage())
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 535 {
		t.Fatalf("Send = %v, want a 535 reply", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q contains the password", err)
	}
	if slices.Contains(srv.Verbs(), "MAIL") || srv.Count() != 0 {
		t.Errorf("server got MAIL or a mail: %q", srv.Commands())
	}
}

var allStages = []smtpStage{stageGreeting, stageHello, stageMail, stageRcpt, stageData, stageEnd}

func TestSendRefused(t *testing.T) {
	t.Parallel()
	for _, stage := range allStages {
		for _, code := range []int{421, 451, 452, 550, 554} {
			t.Run(string(stage)+"/"+strconv.Itoa(code), func(t *testing.T) {
				t.Parallel()
				srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Fail: testSMTPFailure{Stage: stage, Code: code}})
				err := newTestMailer(t, srv.Config()).Send(t.Context(), validMessage())
				var te *textproto.Error
				if !errors.As(err, &te) || te.Code != code {
					t.Fatalf("Send = %v, want a %d reply", err, code)
				}
				if srv.Count() != 0 {
					t.Errorf("server accepted %d mails", srv.Count())
				}
			})
		}
	}
}

func TestSendDropped(t *testing.T) {
	t.Parallel()
	for _, stage := range allStages {
		t.Run(string(stage), func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Fail: testSMTPFailure{Stage: stage, Drop: true}})
			if err := newTestMailer(t, srv.Config()).Send(t.Context(), validMessage()); err == nil {
				t.Fatal("Send succeeded on a dropped connection")
			}
			if srv.Count() != 0 {
				t.Errorf("server accepted %d mails", srv.Count())
			}
		})
	}
}

func TestSendStalled(t *testing.T) {
	t.Parallel()
	for _, implicit := range []bool{false, true} {
		for _, stage := range allStages {
			name := string(stage)
			if implicit {
				name += "/implicit tls"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: !implicit, ImplicitTLS: implicit,
					Fail: testSMTPFailure{Stage: stage, Stall: true}})
				cfg := srv.Config()
				cfg.Timeout = 200 * time.Millisecond
				err := newTestMailer(t, cfg).Send(context.Background(), validMessage())
				// On a loaded machine the deadline can strike while dialing,
				// which net reports as its own timeout error.
				var ne net.Error
				if !errors.Is(err, os.ErrDeadlineExceeded) && !(errors.As(err, &ne) && ne.Timeout()) {
					t.Fatalf("Send = %v, want a timeout", err)
				}
				if srv.Count() != 0 {
					t.Errorf("server accepted %d mails", srv.Count())
				}
			})
		}
	}
}

func TestSendContext(t *testing.T) {
	t.Parallel()
	t.Run("cancelled while the server stalls", func(t *testing.T) {
		t.Parallel()
		srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Fail: testSMTPFailure{Stage: stageData, Stall: true}})
		cfg := srv.Config()
		cfg.Timeout = time.Hour // only the cancellation can end the exchange
		ctx, cancel := context.WithCancel(t.Context())
		m := newTestMailer(t, cfg)
		done := make(chan error, 1)
		go func() { done <- m.Send(ctx, validMessage()) }()
		<-srv.Stalled()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want %v", err, context.Canceled)
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		t.Parallel()
		srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := newTestMailer(t, srv.Config()).Send(ctx, validMessage()); !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want %v", err, context.Canceled)
		}
		if srv.Count() != 0 {
			t.Errorf("server accepted %d mails", srv.Count())
		}
	})
	t.Run("context deadline shorter than the timeout", func(t *testing.T) {
		t.Parallel()
		srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Fail: testSMTPFailure{Stage: stageGreeting, Stall: true}})
		cfg := srv.Config()
		cfg.Timeout = time.Hour
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		if err := newTestMailer(t, cfg).Send(ctx, validMessage()); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send = %v, want %v", err, context.DeadlineExceeded)
		}
	})
}

// TestSendQuitFailure: once the server accepted the mail, a failed QUIT is no reason
// for the caller to send it again.
func TestSendQuitFailure(t *testing.T) {
	t.Parallel()
	for _, f := range []testSMTPFailure{{Stage: stageQuit, Drop: true}, {Stage: stageQuit, Code: 421}} {
		srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Fail: f})
		if err := newTestMailer(t, srv.Config()).Send(t.Context(), validMessage()); err != nil {
			t.Errorf("%+v: Send = %v, want nil", f, err)
		}
		if n := srv.Count(); n != 1 {
			t.Errorf("%+v: server accepted %d mails, want 1", f, n)
		}
	}
}

func TestSendRetryAfterFailure(t *testing.T) {
	t.Parallel()
	srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "secret"})
	m := newTestMailer(t, srv.Config())
	m.random = rand.Reader
	srv.SetFailure(testSMTPFailure{Stage: stageEnd, Code: 451, Times: 1})
	if err := m.Send(t.Context(), validMessage()); err == nil {
		t.Fatal("first Send succeeded, want the 451")
	}
	if err := m.Send(t.Context(), validMessage()); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	srv.SetFailure(testSMTPFailure{Stage: stageRcpt, Drop: true})
	if err := m.Send(t.Context(), validMessage()); err == nil {
		t.Fatal("third Send succeeded, want the dropped connection")
	}
	if n := srv.Count(); n != 1 {
		t.Errorf("server accepted %d mails, want 1", n)
	}
	if n := srv.Connections(); n != 3 {
		t.Errorf("server saw %d connections, want 3", n)
	}
}

// FuzzBuildMessage: whatever the recipient, subject and text, buildMessage either
// refuses, or writes exactly the expected headers with the inputs intact.
func FuzzBuildMessage(f *testing.F) {
	m := validMessage()
	f.Add(m.To, m.Subject, m.Text)
	f.Add(m.To, "Code\r\nBcc: eve@example.com", m.Text)
	f.Add("ada@example.com\r\nBcc: eve@example.com", m.Subject, m.Text)
	f.Add("Ada <ada@example.com>", m.Subject, m.Text)
	f.Add(m.To, "Café — votre code", "Code:\r\n123456\r\n")
	f.Add(m.To, "=?utf-8?q?Bcc:_eve?=", "a\rb\r\r\nc\n.\r\n..\n")
	f.Add(m.To, " spaced  subject ", "--=_101112131415161718191a1b--\r\n")
	f.Add(m.To, strings.Repeat("é", 100), strings.Repeat("x", 200)+" \t\n")
	f.Add("a@b", "\x00", "\x00\xff\xfe")
	f.Add("0@0", "0", "0000\r\xf2\n") // mime/quotedprintable loses this LF unless given LFs only
	f.Fuzz(func(t *testing.T, to, subject, text string) {
		m := message{To: to, Subject: subject, Text: text, HTML: "<p>" + text + "</p>"}
		raw, err := buildMessage(testFrom, m, mailNow, testRandom())
		if err != nil {
			if !errors.Is(err, errBadHeader) && !errors.Is(err, errBadAddress) && !errors.Is(err, errMessageTooLarge) {
				t.Fatalf("buildMessage: unexpected error %v", err)
			}
			return
		}
		checkCRLF(t, raw)
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("mail.ReadMessage: %v", err)
		}
		keys := make([]string, 0, len(msg.Header))
		for k, v := range msg.Header {
			if len(v) != 1 {
				t.Errorf("header %s appears %d times", k, len(v))
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := []string{"Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To"}
		if !slices.Equal(keys, want) {
			t.Fatalf("header keys %q, want %q", keys, want)
		}
		if msg.Header.Get("To") != to || msg.Header.Get("From") != testFrom {
			t.Errorf("To %q From %q, want %q %q", msg.Header.Get("To"), msg.Header.Get("From"), to, testFrom)
		}
		if d, err := msg.Header.Date(); err != nil || !d.Equal(mailNow) {
			t.Errorf("Date %v (%v), want %v", d, err, mailNow)
		}
		if utf8.ValidString(subject) && !strings.Contains(subject, "=?") {
			got, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if err != nil || got != subject && got != strings.TrimSpace(subject) {
				t.Errorf("Subject decodes to %q (%v), want %q", got, err, subject)
			}
		}
		plain, html := parseParts(t, raw)
		crlf := func(s string) string {
			s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
			return strings.ReplaceAll(s, "\n", "\r\n")
		}
		if plain != crlf(m.Text) || html != crlf(m.HTML) {
			t.Errorf("parts decode to %q and %q, want %q and %q", plain, html, crlf(m.Text), crlf(m.HTML))
		}
	})
}
