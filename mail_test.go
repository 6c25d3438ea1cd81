package main

// Tests of mail.go: the one address grammar, the code mail exactly as it goes on the wire, and the SMTP exchange
// against servers that refuse, drop, stall or lose STARTTLS at every step.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const mailTestFrom = "dashauth@example.com"

// mailTestNow is buildMessage's clock here: 2026-11-27 13:00:00 at UTC+1.
var mailTestNow = time.Date(2026, 11, 27, 13, 0, 0, 0, time.FixedZone("", 3600))

// mailFixture is the valid mail each case changes in one place. Its link has bytes HTML must escape.
func mailFixture() codeMail {
	return codeMail{
		To:      "ada@example.com",
		Code:    "042917",
		Expires: time.Date(2026, 11, 27, 12, 10, 0, 0, time.UTC),
		Link:    "https://dashauth-test.authkit.app/sign-in?next=/a&b='c'",
		ID:      "event_01JCDE3FGHJKMNPQRSTVWXYZ01",
	}
}

// mailLongAddress is a valid address of n bytes (254 at most for a valid one), with a 64-byte local part.
func mailLongAddress(n int) string {
	return strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." +
		strings.Repeat("d", n-64-1-63-1-63-1)
}

func TestParseEmail(t *testing.T) {
	t.Parallel()
	accepted := []struct{ in, want string }{
		{"ada@example.com", "ada@example.com"},
		{"Ada.L+tag@Mail.Example.ORG", "ada.l+tag@mail.example.org"},
		{"a@b.co", "a@b.co"},
		{"o'brien@example.ie", "o'brien@example.ie"},
		{"x!#$%&'*+/=?^_`{|}~-y@example.com", "x!#$%&'*+/=?^_`{|}~-y@example.com"},
		{"ada@sub-domain.example.co.uk", "ada@sub-domain.example.co.uk"},
		{"ada@xn--exmple-cua.com", "ada@xn--exmple-cua.com"},
		{"ada@123.example", "ada@123.example"},
		{strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
		{"ada@" + strings.Repeat("b", 63) + ".com", "ada@" + strings.Repeat("b", 63) + ".com"},
		{mailLongAddress(254), mailLongAddress(254)},
	}
	for _, c := range accepted {
		t.Run("accepts "+c.in[:min(len(c.in), 40)], func(t *testing.T) {
			t.Parallel()
			if got, ok := parseEmail(c.in); !ok || got != c.want {
				t.Fatalf("parseEmail(%q) = %q, %v; want %q, true", c.in, got, ok, c.want)
			}
		})
	}
	refused := map[string]string{
		"empty":                  "",
		"no at":                  "ada.example.com",
		"no local part":          "@example.com",
		"no domain":              "ada@",
		"missing dot":            "ada@example",
		"two ats":                "ada@exa@mple.com",
		"display name":           "Ada <ada@example.com>",
		"angle brackets":         "<ada@example.com>",
		"quoted display name":    `"Ada, Countess" <ada@example.com>`,
		"quoted local part":      `"ada"@example.com`,
		"quoted with space":      `"ada lovelace"@example.com`,
		"comment after":          "ada@example.com (Ada)",
		"comment in local part":  "ada(x)@example.com",
		"comma list":             "ada@example.com,eve@example.com",
		"comma list with space":  "ada@example.com, eve@example.com",
		"semicolon list":         "ada@example.com;eve@example.com",
		"group":                  "team: ada@example.com;",
		"leading space":          " ada@example.com",
		"trailing space":         "ada@example.com ",
		"space in local part":    "ada lovelace@example.com",
		"tab":                    "ada\t@example.com",
		"CRLF Bcc":               "ada@example.com\r\nBcc: eve@example.com",
		"LF":                     "ada@example.com\n",
		"CR":                     "ada\r@example.com",
		"NUL":                    "ada\x00@example.com",
		"DEL":                    "ada\x7f@example.com",
		"backslash":              `ada\@example.com`,
		"non-ASCII local part":   "adä@example.com",
		"non-ASCII domain":       "ada@exämple.com",
		"Cyrillic homograph":     "adа@example.com",
		"Kelvin sign":            "\u212a@example.com",
		"invalid UTF-8":          "ada\xff@example.com",
		"IPv4 literal":           "ada@[127.0.0.1]",
		"IPv6 literal":           "ada@[IPv6:::1]",
		"port":                   "ada@example.com:25",
		"path":                   "ada@example.com/x",
		"leading dot":            ".ada@example.com",
		"trailing dot":           "ada.@example.com",
		"two dots":               "a..da@example.com",
		"empty label":            "ada@example..com",
		"leading empty label":    "ada@.example.com",
		"trailing dot in domain": "ada@example.com.",
		"label leading hyphen":   "ada@-example.com",
		"label trailing hyphen":  "ada@example-.com",
		"underscore in domain":   "ada@exa_mple.com",
		"local part of 65":       strings.Repeat("a", 65) + "@example.com",
		"label of 64":            "ada@" + strings.Repeat("b", 64) + ".com",
		"255 bytes":              mailLongAddress(255),
	}
	for name, in := range refused {
		t.Run("refuses "+name, func(t *testing.T) {
			t.Parallel()
			if got, ok := parseEmail(in); ok {
				t.Fatalf("parseEmail(%q) = %q, true; want refused", in, got)
			}
		})
	}
}

// FuzzParseEmail: an accepted address is its input in lower case, parses again to itself, holds nothing but
// printable ASCII outside the bytes that could make it more than one bare address, fits SMTP's limits, and can be
// written into a mail.
func FuzzParseEmail(f *testing.F) {
	f.Add("ada@example.com")
	f.Add("Ada.L+tag@Mail.Example.org")
	f.Add("ada@example.com\r\nBcc: eve@example.com")
	f.Add(mailLongAddress(254))
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := parseEmail(in)
		if !ok {
			return
		}
		if out != strings.ToLower(in) {
			t.Fatalf("parseEmail(%q) = %q, not the input in lower case", in, out)
		}
		if again, ok := parseEmail(out); !ok || again != out {
			t.Fatalf("parseEmail(%q) = %q, %v; an accepted address must parse to itself", out, again, ok)
		}
		local, domain, _ := strings.Cut(out, "@")
		if strings.Count(out, "@") != 1 || len(out) > 254 || local == "" || len(local) > 64 || !strings.Contains(domain, ".") {
			t.Fatalf("parseEmail(%q) accepted %q", in, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),:;<>[\]`, c) >= 0 {
				t.Fatalf("parseEmail(%q) accepted %q with byte %q", in, out, c)
			}
		}
		m := mailFixture()
		m.To = out
		if _, err := buildMessage(mailTestFrom, m, mailTestNow); err != nil {
			t.Fatalf("an accepted address cannot be mailed: %v", err)
		}
	})
}

func TestValidCode(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]bool{
		"000000": true, "123456": true, "999999": true,
		"": false, "12345": false, "1234567": false, "12345a": false, "123 456": false, "12345\n": false,
		"-12345": false, "+12345": false, "١٢٣٤٥٦": false, "１２３４５６": false,
	} {
		if got := validCode(code); got != want {
			t.Errorf("validCode(%q) = %v, want %v", code, got, want)
		}
	}
}

// mailPart is one part of a multipart mail, undecoded.
type mailPart struct {
	header textproto.MIMEHeader
	body   string
}

// mailParsed is a mail taken apart by net/mail and mime/multipart, as a mail reader would.
type mailParsed struct {
	header      mail.Header
	headerLines []string // the top-level header block, line by line
	parts       []mailPart
}

func (p mailParsed) plain() string { return p.parts[0].body }
func (p mailParsed) html() string  { return p.parts[1].body }

// mailParse reads raw as a mail reader would and requires what every mail of the service is: a
// multipart/alternative message of a text/plain and a text/html part, in that order, nothing else.
func mailParse(t testing.TB, raw []byte) mailParsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("mail.ReadMessage: %v\n%s", err, raw)
	}
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	out := mailParsed{header: msg.Header, headerLines: strings.Split(head, "\r\n")}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative with a boundary", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for _, want := range []string{"text/plain; charset=us-ascii", "text/html; charset=us-ascii"} {
		p, err := r.NextRawPart()
		if err != nil {
			t.Fatalf("part %s: %v", want, err)
		}
		if ct := p.Header.Get("Content-Type"); ct != want || len(p.Header) != 2 || p.Header.Get("Content-Transfer-Encoding") != "7bit" {
			t.Fatalf("part headers %v, want exactly Content-Type %q and Content-Transfer-Encoding 7bit", p.Header, want)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %s: %v", want, err)
		}
		out.parts = append(out.parts, mailPart{p.Header, string(body)})
	}
	if _, err := r.NextRawPart(); err != io.EOF {
		t.Fatalf("after two parts: %v, want io.EOF", err)
	}
	return out
}

// mailWantWire fails unless raw is what may cross SMTP as 7bit: CRLF line ends only, every line printable ASCII of at
// most 998 bytes (RFC 5322 §2.1.1).
func mailWantWire(t testing.TB, raw []byte) {
	t.Helper()
	for i, c := range raw {
		if c == '\r' && (i+1 == len(raw) || raw[i+1] != '\n') || c == '\n' && (i == 0 || raw[i-1] != '\r') {
			t.Fatalf("bare CR or LF at byte %d of %q", i, raw)
		}
	}
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("mail does not end in CRLF: %q", raw)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(raw), "\r\n"), "\r\n") {
		if len(line) > 998 || strings.ContainsFunc(line, func(r rune) bool { return r < ' ' || r > '~' }) {
			t.Fatalf("line %d is not printable ASCII within 998 bytes: %q", i+1, line)
		}
	}
}

// mailHeaderNames lists a header's names, sorted, failing on any that appears twice.
func mailHeaderNames(t testing.TB, h mail.Header) []string {
	t.Helper()
	var names []string
	for k, v := range h {
		if len(v) != 1 {
			t.Fatalf("header %s appears %d times", k, len(v))
		}
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

var mailWantHeaders = []string{"Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To"}

func TestBuildMessage(t *testing.T) {
	t.Parallel()
	m := mailFixture()
	raw, err := buildMessage(mailTestFrom, m, mailTestNow)
	if err != nil {
		t.Fatalf("buildMessage: %v", err)
	}
	mailWantWire(t, raw)
	p := mailParse(t, raw)
	if names := mailHeaderNames(t, p.header); !slices.Equal(names, mailWantHeaders) || len(p.headerLines) != len(mailWantHeaders) {
		t.Fatalf("header lines %q, want one each of %q", p.headerLines, mailWantHeaders)
	}
	for name, want := range map[string]string{
		"From": mailTestFrom, "To": m.To, "Subject": "Your sign-in code", "MIME-Version": "1.0",
		"Message-ID": "<event_01JCDE3FGHJKMNPQRSTVWXYZ01@example.com>",
	} {
		if got := p.header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if d, err := p.header.Date(); err != nil || !d.Equal(mailTestNow) {
		t.Errorf("Date %v (%v), want %v", d, err, mailTestNow)
	}

	plain := strings.Split(p.plain(), "\r\n")
	if !slices.Contains(plain, m.Code) {
		t.Errorf("the code %s is not on a line of its own in the plain part:\n%s", m.Code, p.plain())
	}
	for _, want := range []string{"It can be used once, until 12:10 UTC.", "Go back to signing in: " + m.Link} {
		if !slices.Contains(plain, want) {
			t.Errorf("the plain part lacks the line %q:\n%s", want, p.plain())
		}
	}
	for _, want := range []string{"<b>" + m.Code + "</b>", "until 12:10 UTC.", `<a href="` + html.EscapeString(m.Link) + `">`} {
		if !strings.Contains(p.html(), want) {
			t.Errorf("the HTML part lacks %q:\n%s", want, p.html())
		}
	}
	if strings.Contains(p.html(), m.Link) {
		t.Errorf("the HTML part has the link unescaped:\n%s", p.html())
	}

	t.Run("expiry in another zone is written in UTC", func(t *testing.T) {
		t.Parallel()
		m := mailFixture()
		m.Expires = time.Date(2026, 11, 27, 7, 10, 59, 0, time.FixedZone("", -5*3600))
		raw, err := buildMessage(mailTestFrom, m, mailTestNow)
		if err != nil {
			t.Fatalf("buildMessage: %v", err)
		}
		if p := mailParse(t, raw); !strings.Contains(p.plain(), "until 12:10 UTC.") || !strings.Contains(p.html(), "until 12:10 UTC.") {
			t.Errorf("expiry not written as 12:10 UTC:\n%s\n%s", p.plain(), p.html())
		}
	})
}

func TestBuildMessageMessageID(t *testing.T) {
	t.Parallel()
	m := mailFixture()
	raw, err := buildMessage("noreply@mail.example.net", m, mailTestNow)
	if err != nil {
		t.Fatalf("buildMessage: %v", err)
	}
	if got := mailParse(t, raw).header.Get("Message-ID"); got != "<"+m.ID+"@mail.example.net>" {
		t.Errorf("Message-ID %q, want <%s@mail.example.net>", got, m.ID)
	}

	// Without an id, each mail has its own random one, and its own boundary.
	random := regexp.MustCompile(`^<[0-9a-f]{32}@example\.com>$`)
	var ids, boundaries []string
	for range 2 {
		m.ID = ""
		raw, err := buildMessage(mailTestFrom, m, mailTestNow)
		if err != nil {
			t.Fatalf("buildMessage: %v", err)
		}
		p := mailParse(t, raw)
		id := p.header.Get("Message-ID")
		if !random.MatchString(id) {
			t.Errorf("generated Message-ID %q", id)
		}
		_, params, _ := mime.ParseMediaType(p.header.Get("Content-Type"))
		ids, boundaries = append(ids, id), append(boundaries, params["boundary"])
	}
	if ids[0] == ids[1] || boundaries[0] == boundaries[1] {
		t.Errorf("two mails share a Message-ID or a boundary: %q %q", ids, boundaries)
	}
}

// mailUnmailable are the mails buildMessage must refuse, each one change to the fixture.
var mailUnmailable = []struct {
	name   string
	change func(m *codeMail)
}{
	{"to display name", func(m *codeMail) { m.To = "Ada <ada@example.com>" }},
	{"to quoted", func(m *codeMail) { m.To = `"ada lovelace"@example.com` }},
	{"to CRLF Bcc", func(m *codeMail) { m.To = "ada@example.com\r\nBcc: eve@example.com" }},
	{"to LF", func(m *codeMail) { m.To = "ada@example.com\n" }},
	{"to list", func(m *codeMail) { m.To = "ada@example.com, eve@example.com" }},
	{"to space", func(m *codeMail) { m.To = " ada@example.com" }},
	{"to non-ASCII", func(m *codeMail) { m.To = "adä@example.com" }},
	{"to 255 bytes", func(m *codeMail) { m.To = mailLongAddress(255) }},
	{"to empty", func(m *codeMail) { m.To = "" }},
	{"code of 5 digits", func(m *codeMail) { m.Code = "12345" }},
	{"code of 7 digits", func(m *codeMail) { m.Code = "1234567" }},
	{"code empty", func(m *codeMail) { m.Code = "" }},
	{"code with a letter", func(m *codeMail) { m.Code = "12345a" }},
	{"code with CRLF", func(m *codeMail) { m.Code = "123\r\n456" }},
	{"code of Arabic digits", func(m *codeMail) { m.Code = "١٢٣٤٥٦" }},
	{"id CRLF Bcc", func(m *codeMail) { m.ID = "event_1\r\nBcc: eve@example.com" }},
	{"id with brackets", func(m *codeMail) { m.ID = "<a@b>" }},
	{"id with at", func(m *codeMail) { m.ID = "a@b" }},
	{"id with space", func(m *codeMail) { m.ID = "event 1" }},
	{"id with dot", func(m *codeMail) { m.ID = "event.1" }},
	{"id with colon", func(m *codeMail) { m.ID = "event:1" }},
	{"id non-ASCII", func(m *codeMail) { m.ID = "évent_1" }},
	{"id over a line", func(m *codeMail) { m.ID = strings.Repeat("a", 990) }},
	{"link non-ASCII", func(m *codeMail) { m.Link = "https://exämple.com/" }},
	{"link LF", func(m *codeMail) { m.Link = "https://example.com/\nX: y" }},
	{"link CR", func(m *codeMail) { m.Link = "https://example.com/\rX: y" }},
	{"link CRLF", func(m *codeMail) { m.Link = "https://example.com/\r\nBcc: eve@example.com" }},
	{"link CRLF dot line", func(m *codeMail) { m.Link = "https://example.com/\r\n.\r\nMAIL FROM:<eve@example.com>" }},
	{"link CRLF boundary-like", func(m *codeMail) { m.Link = "https://example.com/\r\n--=_x--" }},
	{"link NUL", func(m *codeMail) { m.Link = "https://example.com/\x00" }},
	{"link tab", func(m *codeMail) { m.Link = "https://example.com/\tx" }},
	{"link over a line", func(m *codeMail) { m.Link = "https://example.com/" + strings.Repeat("a", 1000) }},
}

func TestBuildMessageRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range mailUnmailable {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := mailFixture()
			tc.change(&m)
			if raw, err := buildMessage(mailTestFrom, m, mailTestNow); !errors.Is(err, errUnmailable) || raw != nil {
				t.Fatalf("buildMessage = %q, %v; want nil, %v", raw, err, errUnmailable)
			}
		})
	}
}

func TestBuildMessageAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(m *codeMail)
	}{
		{"to of 254 bytes", func(m *codeMail) { m.To = mailLongAddress(254) }},
		{"to plus address", func(m *codeMail) { m.To = "ada+codes@sub.example.co.uk" }},
		{"code of zeros", func(m *codeMail) { m.Code = "000000" }},
		{"id of one byte", func(m *codeMail) { m.ID = "a" }},
		{"id of every id byte", func(m *codeMail) { m.ID = idBytes }},
		{"link empty", func(m *codeMail) { m.Link = "" }},
		{"link of 900 bytes", func(m *codeMail) { m.Link = "https://example.com/" + strings.Repeat("a", 880) }},
		{"link with every HTML special", func(m *codeMail) { m.Link = `https://example.com/?a=<b>&c="d"&e='f'` }},
		{"link with a dot and a boundary-like text", func(m *codeMail) { m.Link = ".--=_x-- ." }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := mailFixture()
			tc.change(&m)
			raw, err := buildMessage(mailTestFrom, m, mailTestNow)
			if err != nil {
				t.Fatalf("buildMessage: %v", err)
			}
			mailWantWire(t, raw)
			p := mailParse(t, raw)
			if p.header.Get("To") != m.To || !strings.Contains(p.plain(), "\r\n"+m.Code+"\r\n") ||
				!strings.Contains(p.plain(), m.Link) || !strings.Contains(p.html(), html.EscapeString(m.Link)) {
				t.Fatalf("the mail does not carry To, the code or the link:\n%s", raw)
			}
		})
	}
}

// FuzzBuildMessage: whatever the address, code, id and link, buildMessage never panics; it refuses every input a
// checked one would not pass, and the mail it writes parses as exactly the expected headers and two parts, 7bit and
// CRLF throughout, carrying the code on its own line and the link, with no new header line made from an input byte.
func FuzzBuildMessage(f *testing.F) {
	m := mailFixture()
	f.Add(m.To, m.Code, m.ID, m.Link)
	for _, tc := range mailUnmailable {
		m := mailFixture()
		tc.change(&m)
		f.Add(m.To, m.Code, m.ID, m.Link)
	}
	f.Fuzz(func(t *testing.T, to, code, id, link string) {
		m := codeMail{To: to, Code: code, ID: id, Link: link, Expires: mailFixture().Expires}
		raw, err := buildMessage(mailTestFrom, m, mailTestNow)
		_, toOK := parseEmail(to)
		valid := toOK && validCode(code) && strings.Trim(id, idBytes) == "" && strings.Trim(link, printableASCII) == ""
		if err != nil {
			if !errors.Is(err, errUnmailable) || raw != nil {
				t.Fatalf("buildMessage = %q, %v; want nil and %v", raw, err, errUnmailable)
			}
			if valid && len(id) <= 900 && len(html.EscapeString(link)) <= 900 {
				t.Fatalf("a valid mail was refused: %v", err)
			}
			return
		}
		if !valid {
			t.Fatalf("buildMessage accepted to %q code %q id %q link %q", to, code, id, link)
		}
		mailWantWire(t, raw)
		p := mailParse(t, raw)
		if names := mailHeaderNames(t, p.header); !slices.Equal(names, mailWantHeaders) || len(p.headerLines) != len(mailWantHeaders) {
			t.Fatalf("header lines %q, want one each of %q", p.headerLines, mailWantHeaders)
		}
		if p.header.Get("To") != to || p.header.Get("From") != mailTestFrom || p.header.Get("Subject") != "Your sign-in code" {
			t.Fatalf("To %q From %q Subject %q", p.header.Get("To"), p.header.Get("From"), p.header.Get("Subject"))
		}
		if id != "" && p.header.Get("Message-ID") != "<"+id+"@example.com>" {
			t.Fatalf("Message-ID %q, want <%s@example.com>", p.header.Get("Message-ID"), id)
		}
		if !strings.Contains(p.plain(), "\r\n"+code+"\r\n") || !strings.Contains(p.plain(), "Go back to signing in: "+link+"\r\n") ||
			!strings.Contains(p.html(), `<a href="`+html.EscapeString(link)+`">`) {
			t.Fatalf("the code or the link is not where it belongs:\n%s", raw)
		}
	})
}

// SMTP. Every exchange below is against a real server on 127.0.0.1: testSMTPServer (smtpserver_test.go), or
// mailPeer for what that one cannot do.

// mailSend sends the fixture through an smtpMailer for cfg.
func mailSend(ctx context.Context, cfg smtpConfig) error {
	return smtpMailer{cfg}.Send(ctx, mailFixture())
}

// mailWantStep fails unless err is an exchange's error naming step.
func mailWantStep(t *testing.T, err error, cfg smtpConfig, step string) {
	t.Helper()
	if prefix := "smtp " + step + " at " + net.JoinHostPort(cfg.Host, cfg.Port) + ": "; err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("error %v, want one starting %q", err, prefix)
	}
}

// mailIsTimeout reports whether err is a deadline running out, of the connection or of the context.
func mailIsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func TestSMTPSend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		opts  testSMTPOptions
		host  string // instead of 127.0.0.1
		tls   bool
		verbs []string
	}{
		{"starttls with auth", testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "pa ss\x01word"}, "", true,
			[]string{"EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"starttls without auth", testSMTPOptions{STARTTLS: true}, "", true,
			[]string{"EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"starttls to localhost by name", testSMTPOptions{STARTTLS: true}, "localhost", true,
			[]string{"EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"implicit tls with auth", testSMTPOptions{ImplicitTLS: true, Username: "mailer", Password: "secret"}, "", true,
			[]string{"EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"none on loopback", testSMTPOptions{}, "", false, []string{"EHLO", "MAIL", "RCPT", "DATA", "QUIT"}},
		{"none on loopback with auth", testSMTPOptions{Username: "mailer", Password: "secret"}, "", false,
			[]string{"EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, tc.opts)
			cfg := srv.Config()
			if tc.host != "" {
				cfg.Host = tc.host
			}
			if err := mailSend(t.Context(), cfg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("the server accepted %d mails, want 1", len(got))
			}
			if got[0].From != mailTestFrom || !slices.Equal(got[0].To, []string{"ada@example.com"}) ||
				got[0].TLS != tc.tls || got[0].User != tc.opts.Username {
				t.Errorf("received from %q to %q TLS %v user %q; want %q, ada@example.com, %v, %q",
					got[0].From, got[0].To, got[0].TLS, got[0].User, mailTestFrom, tc.tls, tc.opts.Username)
			}
			mailWantWire(t, got[0].Data)
			if p := mailParse(t, got[0].Data); p.header.Get("To") != "ada@example.com" ||
				!strings.Contains(p.plain(), "\r\n"+mailFixture().Code+"\r\n") {
				t.Errorf("the received mail lacks the address or the code:\n%s", got[0].Data)
			}
			if v := srv.Verbs(); !slices.Equal(v, tc.verbs) {
				t.Errorf("commands %q, want %q", v, tc.verbs)
			}
		})
	}
}

// TestSMTPSendRefusesUnmailable: a mail buildMessage refuses never opens a connection.
func TestSMTPSendRefusesUnmailable(t *testing.T) {
	t.Parallel()
	srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true})
	for _, tc := range mailUnmailable {
		m := mailFixture()
		tc.change(&m)
		if err := (smtpMailer{srv.Config()}).Send(t.Context(), m); !errors.Is(err, errUnmailable) {
			t.Errorf("%s: Send = %v, want %v", tc.name, err, errUnmailable)
		}
	}
	if n := srv.Connections(); n != 0 {
		t.Errorf("the server saw %d connections, want 0", n)
	}
}

// TestSMTPNeverInClearText: when the TLS asked for cannot be had, no credentials, no MAIL FROM and no mail cross the
// connection.
func TestSMTPNeverInClearText(t *testing.T) {
	t.Parallel()
	auth := testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "secret"}
	_, otherCA := newTestCertificate(t)
	for _, tc := range []struct {
		name   string
		opts   testSMTPOptions
		change func(c *smtpConfig)
		step   string
		verbs  []string
	}{
		{"server without STARTTLS", testSMTPOptions{Username: "mailer", Password: "secret"},
			func(c *smtpConfig) { c.TLS = "starttls" }, "STARTTLS", []string{"EHLO"}},
		{"EHLO refused, HELO has no extensions", testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "secret",
			Fail: testSMTPFailure{Stage: stageHello, Code: 502, Times: 1}}, nil, "STARTTLS", []string{"EHLO", "HELO"}},
		{"STARTTLS to an untrusted certificate", auth, func(c *smtpConfig) { c.RootCAs = otherCA }, "STARTTLS",
			[]string{"EHLO", "STARTTLS"}},
		{"implicit TLS to an untrusted certificate", testSMTPOptions{ImplicitTLS: true, Username: "mailer", Password: "secret"},
			func(c *smtpConfig) { c.RootCAs = otherCA }, "greeting", nil},
		{"STARTTLS to an implicit TLS server", testSMTPOptions{ImplicitTLS: true, Username: "mailer", Password: "secret"},
			func(c *smtpConfig) { c.TLS = "starttls" }, "greeting", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, tc.opts)
			cfg := srv.Config()
			if tc.change != nil {
				tc.change(&cfg)
			}
			// A client speaking plain text to an implicit TLS server waits for a greeting that never comes.
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			mailWantStep(t, mailSend(ctx, cfg), cfg, tc.step)
			if v := srv.Verbs(); !slices.Equal(v, tc.verbs) {
				t.Errorf("commands %q, want %q", v, tc.verbs)
			}
			if srv.Count() != 0 {
				t.Errorf("the server accepted %d mails", srv.Count())
			}
		})
	}

	t.Run("an attacker strips STARTTLS from the EHLO reply", func(t *testing.T) {
		t.Parallel()
		srv := newTestSMTPServer(t, auth)
		cfg := srv.Config()
		var seen func() string
		cfg.Port, seen = mailStripProxy(t, srv)
		err := mailSend(t.Context(), cfg)
		mailWantStep(t, err, cfg, "STARTTLS")
		if v := srv.Verbs(); !slices.Equal(v, []string{"EHLO"}) {
			t.Errorf("the server got %q, want only EHLO", v)
		}
		for _, secret := range []string{"AUTH", "MAIL", "RCPT", "DATA", mailFixture().Code} {
			if strings.Contains(seen(), secret) {
				t.Errorf("the attacker saw %q in clear text:\n%s", secret, seen())
			}
		}
	})
}

// mailStages are the testSMTPServer stages and the step an exchange names when it fails there.
var mailStages = []struct {
	stage smtpStage
	step  string
}{
	{stageGreeting, "greeting"}, {stageHello, "EHLO"}, {stageMail, "MAIL FROM"}, {stageRcpt, "RCPT TO"},
	{stageData, "DATA"}, {stageEnd, "DATA"},
}

// TestSMTPRefusals: a 4xx or 5xx at any step fails the exchange with the server's reply and an error naming the step,
// and no mail is accepted.
func TestSMTPRefusals(t *testing.T) {
	t.Parallel()
	for _, s := range mailStages {
		for _, code := range []int{421, 451, 554} {
			t.Run(fmt.Sprintf("%s %d", s.stage, code), func(t *testing.T) {
				t.Parallel()
				srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "secret",
					Fail: testSMTPFailure{Stage: s.stage, Code: code}})
				err := mailSend(t.Context(), srv.Config())
				mailWantReply(t, err, code)
				mailWantStep(t, err, srv.Config(), s.step)
				if srv.Count() != 0 {
					t.Errorf("the server accepted %d mails", srv.Count())
				}
			})
		}
	}
	t.Run("AUTH 535 wrong password", func(t *testing.T) {
		t.Parallel()
		srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "right"})
		cfg := srv.Config()
		cfg.Password = "wrong-password"
		err := mailSend(t.Context(), cfg)
		mailWantReply(t, err, 535)
		mailWantStep(t, err, cfg, "AUTH")
		if strings.Contains(err.Error(), cfg.Password) {
			t.Errorf("the error %q holds the password", err)
		}
		if slices.Contains(srv.Verbs(), "MAIL") || srv.Count() != 0 {
			t.Errorf("the server got MAIL or a mail after refusing AUTH: %q", srv.Verbs())
		}
	})
	for _, tc := range []struct {
		verb, reply string
		code        int
	}{
		{"STARTTLS", "454 4.7.0 TLS not available due to temporary reason", 454},
		{"STARTTLS", "501 5.5.4 syntax error", 501},
		{"AUTH", "454 4.7.0 temporary authentication failure", 454},
		{"AUTH", "535 5.7.8 authentication credentials invalid", 535},
	} {
		t.Run(fmt.Sprintf("%s %d", tc.verb, tc.code), func(t *testing.T) {
			t.Parallel()
			peer := newMailPeer(t, mailPeerOptions{Refuse: map[string]string{tc.verb: tc.reply}})
			err := mailSend(t.Context(), peer.Config())
			mailWantReply(t, err, tc.code)
			mailWantStep(t, err, peer.Config(), tc.verb)
			if slices.Contains(peer.Verbs(), "MAIL") || peer.Mails() != 0 {
				t.Errorf("the server got MAIL or a mail after refusing %s: %q", tc.verb, peer.Verbs())
			}
		})
	}
}

// mailWantReply fails unless err carries the server's reply code.
func mailWantReply(t *testing.T, err error, code int) {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != code {
		t.Fatalf("error %v, want the server's %d reply", err, code)
	}
}

// TestSMTPDropped: a connection closed at any step fails the exchange; no mail is accepted.
func TestSMTPDropped(t *testing.T) {
	t.Parallel()
	for _, s := range mailStages {
		t.Run(string(s.stage), func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Fail: testSMTPFailure{Stage: s.stage, Drop: true}})
			err := mailSend(t.Context(), srv.Config())
			mailWantStep(t, err, srv.Config(), s.step)
			if srv.Count() != 0 {
				t.Errorf("the server accepted %d mails", srv.Count())
			}
		})
	}
}

// TestSMTPStalls: a server that stops answering at any step is given up on at the context's deadline, which is
// sooner than smtpTimeout.
func TestSMTPStalls(t *testing.T) {
	t.Parallel()
	type stall struct {
		name, step string
		start      func(t *testing.T) (smtpConfig, func() int)
	}
	var cases []stall
	for _, implicit := range []bool{false, true} {
		for _, s := range mailStages {
			name := string(s.stage)
			if implicit {
				name += " implicit TLS"
			}
			cases = append(cases, stall{name, s.step, func(t *testing.T) (smtpConfig, func() int) {
				srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: !implicit, ImplicitTLS: implicit, Username: "mailer",
					Password: "secret", Fail: testSMTPFailure{Stage: s.stage, Stall: true}})
				return srv.Config(), srv.Count
			}})
		}
	}
	for _, verb := range []string{"STARTTLS", "AUTH"} {
		cases = append(cases, stall{verb, verb, func(t *testing.T) (smtpConfig, func() int) {
			peer := newMailPeer(t, mailPeerOptions{StallAt: verb})
			return peer.Config(), peer.Mails
		}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, count := tc.start(t)
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			err := mailExchangeBounded(t, ctx, cfg)
			if !mailIsTimeout(err) {
				t.Fatalf("error %v, want a timeout", err)
			}
			mailWantStep(t, err, cfg, tc.step)
			if n := count(); n != 0 {
				t.Errorf("the server accepted %d mails", n)
			}
		})
	}
}

// mailExchangeBounded sends the fixture and returns its error, failing the test if the exchange outlives
// smtpTimeout: only a deadline that is not the context's could make it take so long.
func mailExchangeBounded(t *testing.T, ctx context.Context, cfg smtpConfig) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- mailSend(ctx, cfg) }()
	select {
	case err := <-done:
		return err
	case <-time.After(smtpTimeout - time.Second):
		t.Fatal("the exchange ignored the context's deadline")
		return nil
	}
}

// TestSMTPCancelled: cancelling the context ends the exchange at once, mid-DATA included.
func TestSMTPCancelled(t *testing.T) {
	t.Parallel()
	for _, s := range []smtpStage{stageGreeting, stageRcpt, stageData, stageEnd} {
		t.Run("while the server stalls at "+string(s), func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Fail: testSMTPFailure{Stage: s, Stall: true}})
			ctx, cancel := context.WithCancel(t.Context()) // no deadline: only the cancellation can end it soon
			done := make(chan error, 1)
			go func() { done <- mailSend(ctx, srv.Config()) }()
			<-srv.Stalled()
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("error %v, want %v", err, context.Canceled)
			}
			if srv.Count() != 0 {
				t.Errorf("the server accepted %d mails", srv.Count())
			}
		})
	}
	t.Run("before the exchange", func(t *testing.T) {
		t.Parallel()
		srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := mailSend(ctx, srv.Config()); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want %v", err, context.Canceled)
		}
		if srv.Count() != 0 {
			t.Errorf("the server accepted %d mails", srv.Count())
		}
	})
}

// TestSMTPQuitFailure: once the server accepted the mail, a failed QUIT is success, so the caller does not mail
// again.
func TestSMTPQuitFailure(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]testSMTPFailure{
		"554": {Stage: stageQuit, Code: 554}, "421": {Stage: stageQuit, Code: 421},
		"drop": {Stage: stageQuit, Drop: true}, "stall": {Stage: stageQuit, Stall: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Fail: f})
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			if err := mailExchangeBounded(t, ctx, srv.Config()); err != nil {
				t.Errorf("Send = %v, want nil", err)
			}
			if n := srv.Count(); n != 1 {
				t.Errorf("the server accepted %d mails, want 1", n)
			}
		})
	}
}

// TestSMTPProbe is dashauth check's probe, exchange(ctx, "", nil): connect, EHLO, TLS, AUTH, QUIT, and no MAIL FROM.
func TestSMTPProbe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   testSMTPOptions
		change func(c *smtpConfig)
		verbs  []string
		step   string // "": the probe passes
	}{
		{"starttls with auth", testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "secret"}, nil,
			[]string{"EHLO", "STARTTLS", "EHLO", "AUTH", "QUIT"}, ""},
		{"implicit tls with auth", testSMTPOptions{ImplicitTLS: true, Username: "mailer", Password: "secret"}, nil,
			[]string{"EHLO", "AUTH", "QUIT"}, ""},
		{"none on loopback", testSMTPOptions{}, nil, []string{"EHLO", "QUIT"}, ""},
		{"wrong password", testSMTPOptions{STARTTLS: true, Username: "mailer", Password: "secret"},
			func(c *smtpConfig) { c.Password = "wrong" }, []string{"EHLO", "STARTTLS", "EHLO", "AUTH"}, "AUTH"},
		{"no STARTTLS", testSMTPOptions{Username: "mailer", Password: "secret"},
			func(c *smtpConfig) { c.TLS = "starttls" }, []string{"EHLO"}, "STARTTLS"},
		{"greeting refused", testSMTPOptions{STARTTLS: true, Fail: testSMTPFailure{Stage: stageGreeting, Code: 554}}, nil,
			nil, "greeting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, tc.opts)
			cfg := srv.Config()
			if tc.change != nil {
				tc.change(&cfg)
			}
			err := smtpMailer{cfg}.exchange(t.Context(), "", nil)
			if tc.step == "" && err != nil {
				t.Fatalf("probe: %v", err)
			} else if tc.step != "" {
				mailWantStep(t, err, cfg, tc.step)
			}
			// net/smtp answers a refused AUTH with "*" before it quits; that is not a command of the probe.
			v := slices.DeleteFunc(srv.Verbs(), func(v string) bool { return v == "*" || tc.step != "" && v == "QUIT" })
			if !slices.Equal(v, tc.verbs) {
				t.Errorf("commands %q, want %q", v, tc.verbs)
			}
			if srv.Count() != 0 {
				t.Errorf("the probe sent %d mails", srv.Count())
			}
		})
	}
}

func TestLogMailer(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l := logMailer{slog.New(slog.NewJSONHandler(&buf, nil))}
	m := mailFixture()
	if err := l.Send(t.Context(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(buf.String()), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if line["msg"] != "login code for ada@example.com: 042917" || line["level"] != "INFO" ||
		line["valid_until"] != "2026-11-27T12:10:00Z" {
		t.Errorf("log line %v, want the address, the code and the expiry", line)
	}
	for _, tc := range mailUnmailable {
		m := mailFixture()
		tc.change(&m)
		before := buf.String()
		if err := l.Send(t.Context(), m); !errors.Is(err, errUnmailable) || buf.String() != before {
			t.Errorf("%s: Send = %v and logged %q; want %v and nothing", tc.name, err, strings.TrimPrefix(buf.String(), before), errUnmailable)
		}
	}
}

// mailPeerOptions says how a mailPeer misbehaves.
type mailPeerOptions struct {
	Refuse  map[string]string // verb ("STARTTLS", "AUTH", ...) → the reply it gets instead of success
	StallAt string            // the verb at which the peer stops answering
	Hold    bool              // hold the answer to a message's final "." until Release
}

// mailPeer is a scripted SMTP server on 127.0.0.1 for what testSMTPServer cannot do: refuse or stall at STARTTLS and
// AUTH, and hold the answer to a message's final "." until the test releases it. It offers STARTTLS and AUTH PLAIN
// (taking any credentials), and counts a message as soon as its final "." arrives, as a real server queues it then.
type mailPeer struct {
	opts    mailPeerOptions
	ln      net.Listener
	port    string
	tls     *tls.Config
	pool    *x509.CertPool
	hold    chan struct{}
	release sync.Once
	reached chan string // the verb, each time a stall or a hold begins
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
	verbs []string
	mails int
}

func newMailPeer(t *testing.T, opts mailPeerOptions) *mailPeer {
	t.Helper()
	cert, pool := newTestCertificate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p := &mailPeer{opts: opts, ln: ln, port: port, pool: pool, hold: make(chan struct{}), reached: make(chan string, 16),
		tls: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Release()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Config is a starttls configuration for the peer, with credentials, trusting its certificate.
func (p *mailPeer) Config() smtpConfig {
	return smtpConfig{Host: "127.0.0.1", Port: p.port, Username: "mailer", Password: "secret", From: mailTestFrom,
		TLS: "starttls", RootCAs: p.pool}
}

// Release lets every held answer go, now and later.
func (p *mailPeer) Release() { p.release.Do(func() { close(p.hold) }) }

// Reached receives the verb each time the peer begins to stall or hold.
func (p *mailPeer) Reached() <-chan string { return p.reached }

func (p *mailPeer) Mails() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mails
}

func (p *mailPeer) Verbs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.verbs)
}

func (p *mailPeer) serve() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns[conn] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer conn.Close()
			p.session(conn)
		}()
	}
}

func (p *mailPeer) session(conn net.Conn) {
	r := bufio.NewReader(conn)
	say := func(s string) { io.WriteString(conn, s+"\r\n") }
	signal := func(verb string) {
		select {
		case p.reached <- verb:
		default:
		}
	}
	secure := false
	say("220 peer ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), " ")
		verb = strings.ToUpper(verb)
		p.mu.Lock()
		p.verbs = append(p.verbs, verb)
		p.mu.Unlock()
		if verb == p.opts.StallAt {
			signal(verb)
			io.Copy(io.Discard, conn) // until the client or the cleanup closes it
			return
		}
		if reply, ok := p.opts.Refuse[verb]; ok {
			say(reply)
			continue
		}
		switch verb {
		case "EHLO":
			ext := "250-peer\r\n"
			if !secure {
				ext += "250-STARTTLS\r\n"
			}
			say(ext + "250 AUTH PLAIN")
		case "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(conn, p.tls)
			if tc.Handshake() != nil {
				return
			}
			conn, r, secure = tc, bufio.NewReader(tc), true
		case "AUTH":
			say("235 ok")
		case "MAIL", "RCPT":
			say("250 ok")
		case "DATA":
			say("354 go ahead")
			for line != ".\r\n" {
				if line, err = r.ReadString('\n'); err != nil {
					return
				}
			}
			p.mu.Lock()
			p.mails++
			p.mu.Unlock()
			if p.opts.Hold {
				signal("END")
				<-p.hold
			}
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 not recognized")
		}
	}
}

// mailStripProxy is a man in the middle in front of srv that deletes STARTTLS from the EHLO reply. It returns the
// port to connect to instead of srv's, and a func returning everything the client sent through it.
func mailStripProxy(t *testing.T, srv *testSMTPServer) (string, func() string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var seen syncBuffer
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)))
			if err != nil {
				client.Close()
				return
			}
			mu.Lock()
			conns = append(conns, client, server)
			mu.Unlock()
			wg.Add(2)
			go func() { // client → server, as seen
				defer wg.Done()
				io.Copy(server, io.TeeReader(client, &seen))
				server.Close()
			}()
			go func() { // server → client, line by line, without STARTTLS
				defer wg.Done()
				defer client.Close()
				br := bufio.NewReader(server)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if strings.EqualFold(line, "250-STARTTLS\r\n") {
						continue
					}
					if _, err := io.WriteString(client, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, seen.String
}
