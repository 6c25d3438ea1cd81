package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"time"
)

// message is one mail to one recipient.
type message struct {
	To        string // one bare address
	Subject   string
	Text      string // text/plain part
	HTML      string // text/html part
	MessageID string // optional "<id@host>"; generated when empty
}

// mailer sends a message; a nil error means the mail was accepted for delivery.
type mailer interface {
	Send(ctx context.Context, m message) error
}

var (
	errBadHeader       = errors.New("bad mail header value")
	errBadAddress      = errors.New("not one bare mail address")
	errMessageTooLarge = errors.New("mail body too large")
	errBadSMTPConfig   = errors.New("bad smtp configuration")
	errNoSTARTTLS      = errors.New("smtp server does not offer STARTTLS")
)

const (
	// RFC 5321 §4.5.3.1.3: a path is at most 256 octets including "<" and ">".
	maxAddressBytes = 254
	// A subject is one short line; 200 bytes keeps even the folded Q-encoded form far
	// below RFC 5322 §2.1.1's 998-byte line limit.
	maxSubjectBytes = 200
	// RFC 5322 §3.6.4 sets no length; 250 bytes fits any id we or a caller would make.
	maxMessageIDBytes = 250
	// Our mails are a few kilobytes; the cap only stops a runaway caller.
	maxBodyBytes       = 1 << 20
	defaultSMTPTimeout = 30 * time.Second
)

type smtpConfig struct {
	Host                     string
	Port                     int
	Username, Password, From string
	TLS                      string // "starttls", "tls" (implicit) or "none"
	Timeout                  time.Duration
	RootCAs                  *x509.CertPool // nil: the system roots
	LocalName                string         // EHLO name; "localhost" when empty
}

type smtpMailer struct {
	cfg    smtpConfig
	now    func() time.Time
	random io.Reader
}

// newSMTPMailer checks cfg once, so a bad value stops the service at start rather
// than failing the first mail.
func newSMTPMailer(cfg smtpConfig) (*smtpMailer, error) {
	if cfg.Host == "" || strings.ContainsAny(cfg.Host, " \t\r\n\x00/[]") {
		return nil, fmt.Errorf("smtp host %q: %w", cfg.Host, errBadSMTPConfig)
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("smtp port %d: %w", cfg.Port, errBadSMTPConfig)
	}
	if err := checkAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("smtp from: %w: %w", errBadSMTPConfig, err)
	}
	switch cfg.TLS {
	case "starttls", "tls":
	case "none":
		// Without TLS the password and every mailed sign-in code cross the network in
		// clear, readable and alterable by anyone on the path; only a relay on this
		// machine (loopback never leaves the host) may be spoken to that way.
		if !isLoopback(cfg.Host) {
			return nil, fmt.Errorf("smtp tls %q for non-loopback host %q: %w", cfg.TLS, cfg.Host, errBadSMTPConfig)
		}
	default:
		return nil, fmt.Errorf("smtp tls %q (want starttls, tls or none): %w", cfg.TLS, errBadSMTPConfig)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("smtp timeout %v: %w", cfg.Timeout, errBadSMTPConfig)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultSMTPTimeout
	}
	if cfg.LocalName == "" {
		cfg.LocalName = "localhost"
	}
	if err := checkHeaderValue("smtp local name", cfg.LocalName); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadSMTPConfig, err)
	}
	return &smtpMailer{cfg: cfg, now: time.Now, random: rand.Reader}, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback()
}

// Send delivers m in one SMTP exchange bounded by ctx and cfg.Timeout. A nil error
// means the server accepted the mail (its reply to the end of DATA).
func (s *smtpMailer) Send(ctx context.Context, m message) (err error) {
	raw, err := buildMessage(s.cfg.From, m, s.now(), s.random)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	// One deadline for the whole exchange: a server that accepts and then stalls or
	// trickles bytes cannot hold the caller (and its webhook request) any longer.
	deadline, ctxDeadline := time.Now().Add(s.cfg.Timeout), false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	defer func() {
		// When ctx ended the exchange, say so (its timer may fire just after the
		// connection's); the I/O error it provoked stays wrapped.
		cause := ctx.Err()
		if cause == nil && ctxDeadline && errors.Is(err, os.ErrDeadlineExceeded) {
			cause = context.DeadlineExceeded
		}
		if err != nil && cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
	}()
	dialer := net.Dialer{Deadline: deadline}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp dial %q: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("smtp deadline %q: %w", addr, err)
	}
	// A deadline in the past wakes any blocked read or write once ctx is done.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := s.exchange(conn, m.To, raw); err != nil {
		return fmt.Errorf("smtp send to %q via %q: %w", m.To, addr, err)
	}
	return nil
}

func (s *smtpMailer) exchange(conn net.Conn, to string, raw []byte) error {
	host := s.cfg.Host
	// TLS 1.2 is the floor of RFC 8996 and RFC 9325 §4.1 (no TLS 1.0 or 1.1).
	tlsConfig := &tls.Config{ServerName: host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	if s.cfg.TLS == "tls" {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if err := c.Hello(s.cfg.LocalName); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if s.cfg.TLS == "starttls" {
		// Never fall back to clear text: a server (or an attacker stripping the
		// extension from its reply) that does not offer STARTTLS gets nothing.
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errNoSTARTTLS
		}
		if err := c.StartTLS(tlsConfig); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if s.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, host)); err != nil {
			return fmt.Errorf("AUTH PLAIN: %w", err)
		}
	}
	if err := c.Mail(s.cfg.From); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err == nil {
		_, err = w.Write(raw)
	}
	if err == nil {
		err = w.Close() // reads the server's verdict on the mail
	}
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	// The server has taken the mail; a failed QUIT must not make a caller retry and
	// deliver it twice.
	_ = c.Quit()
	return nil
}

// buildMessage renders m as an RFC 5322 multipart/alternative message with CRLF
// line endings, after checking every header value.
func buildMessage(from string, m message, now time.Time, random io.Reader) ([]byte, error) {
	if err := checkAddress(from); err != nil {
		return nil, fmt.Errorf("mail from: %w", err)
	}
	if err := checkMessage(m); err != nil {
		return nil, err
	}
	var rnd [28]byte
	if _, err := io.ReadFull(random, rnd[:]); err != nil {
		return nil, fmt.Errorf("mail random: %w", err)
	}
	id := m.MessageID
	if id == "" {
		id = "<" + hex.EncodeToString(rnd[:16]) + "@" + from[strings.LastIndexByte(from, '@')+1:] + ">"
	}
	// "=_" never occurs in quoted-printable output, so no body can contain the boundary;
	// 96 random bits keep it unique and the Content-Type line under 78 characters.
	boundary := "=_" + hex.EncodeToString(rnd[16:])
	subject := mime.QEncoding.Encode("utf-8", m.Subject)
	if subject != m.Subject {
		// Encoded words never contain a space, so each space separates two of them;
		// folding there and before the first keeps every line within RFC 2047 §2's
		// 76 characters.
		subject = "\r\n " + strings.ReplaceAll(subject, " ", "\r\n ")
	}
	var b bytes.Buffer // its writes cannot fail, so none is checked below
	for _, h := range [][2]string{
		{"From", from}, {"To", m.To}, {"Subject", subject},
		{"Date", now.Format(time.RFC1123Z)}, {"Message-ID", id}, {"MIME-Version", "1.0"},
		{"Content-Type", `multipart/alternative; boundary="` + boundary + `"`},
	} {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	// RFC 2046 §5.1.1: each part follows "--boundary" and the CRLF before the
	// delimiter belongs to it; quoted-printable keeps lines short and 7-bit.
	for _, p := range [][2]string{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		b.WriteString("\r\n--" + boundary + "\r\nContent-Type: " + p[0] +
			"; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		// Only LF line ends reach the encoder: it drops the LF of "\r\xe9\n" (a CR, an
		// encoded byte, an LF), which would join the next line, say a code, to this one.
		body := strings.ReplaceAll(strings.ReplaceAll(p[1], "\r\n", "\n"), "\r", "\n")
		qw := quotedprintable.NewWriter(&b)
		_, _ = io.WriteString(qw, body)
		_ = qw.Close()
	}
	b.WriteString("\r\n--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

// checkMessage checks what a message carries into headers, and its size.
func checkMessage(m message) error {
	if err := checkAddress(m.To); err != nil {
		return fmt.Errorf("mail to: %w", err)
	}
	if m.Subject == "" || len(m.Subject) > maxSubjectBytes {
		return fmt.Errorf("subject of %d bytes: %w", len(m.Subject), errBadHeader)
	}
	if err := checkHeaderValue("subject", m.Subject); err != nil {
		return err
	}
	if m.MessageID != "" {
		if err := checkMessageID(m.MessageID); err != nil {
			return err
		}
	}
	if len(m.Text)+len(m.HTML) > maxBodyBytes {
		return fmt.Errorf("%d bytes: %w", len(m.Text)+len(m.HTML), errMessageTooLarge)
	}
	return nil
}

// checkMessageID accepts "<left@right>" in printable ASCII (RFC 5322 §3.6.4's msg-id,
// without its rarely used quoted and bracketed forms).
func checkMessageID(id string) error {
	if len(id) > maxMessageIDBytes {
		return fmt.Errorf("message id of %d bytes: %w", len(id), errBadHeader)
	}
	inner, ok1 := strings.CutPrefix(id, "<")
	inner, ok2 := strings.CutSuffix(inner, ">")
	left, right, ok3 := strings.Cut(inner, "@")
	if !ok1 || !ok2 || !ok3 || left == "" || right == "" ||
		strings.ContainsFunc(left+right, func(r rune) bool { return r <= ' ' || r > '~' || strings.ContainsRune("<>@", r) }) {
		return fmt.Errorf("message id %q: %w", id, errBadHeader)
	}
	return nil
}

// checkHeaderValue rejects control characters: CR or LF would end the header and
// start one of the caller's choosing, and NUL or the rest have no place in one.
func checkHeaderValue(name, v string) error {
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%s %q: %w", name, v, errBadHeader)
	}
	return nil
}

// checkAddress accepts exactly one bare ASCII address ("ada@example.com"): no display
// name, no list, no comment, nothing net/mail would rewrite.
func checkAddress(s string) error {
	if s == "" || len(s) > maxAddressBytes {
		return fmt.Errorf("address of %d bytes: %w", len(s), errBadAddress)
	}
	if err := checkHeaderValue("address", s); err != nil {
		return err
	}
	if a, err := mail.ParseAddress(s); err != nil || a.Name != "" || a.Address != s ||
		strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return fmt.Errorf("address %q: %w", s, errBadAddress)
	}
	return nil
}

// logMailer is the development-mode mailer: it writes each mail to the log instead.
type logMailer struct{ log *slog.Logger }

func (l logMailer) Send(ctx context.Context, m message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	l.log.InfoContext(ctx, "mail written to the log instead of sent (development mode)",
		"to", m.To, "subject", m.Subject, "text", m.Text)
	return nil
}
