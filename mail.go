package main

// The one mail the service sends, a sign-in code: its address grammar, how it is written, and its delivery over SMTP.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// codeMail is a sign-in code on its way to To, with a Link back to signing in. ID is a Message-ID's left part (the
// WorkOS event's, so a retry repeats it) or "".
type codeMail struct {
	To, Code, Link, ID string
	Expires            time.Time
}

// mailer sends a code mail; nil means it was accepted for delivery.
type mailer interface {
	Send(ctx context.Context, m codeMail) error
}

const (
	maxAddressBytes = 254              // the longest path SMTP carries (RFC 5321 §4.5.3.1.3)
	smtpTimeout     = 15 * time.Second // one whole exchange: enough for a slow relay
)

var errUnmailable = errors.New("not a mail the service writes to the wire")

// parseEmail is the service's one address grammar, stricter than RFC 5322 on purpose: one bare address, an ASCII local
// part, a dotted domain of letters, digits and hyphens. It returns it in lower case.
func parseEmail(s string) (string, bool) {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || len(s) > maxAddressBytes || local == "" || len(local) > 64 || strings.Trim(local, ".") != local ||
		strings.Contains(local, "..") || strings.Trim(local, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+/=?^_`{|}~-") != "" {
		return "", false
	}
	labels := strings.Split(domain, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' ||
			strings.Trim(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" || len(labels) < 2 {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

func validCode(code string) bool { return len(code) == 6 && strings.Trim(code, "0123456789") == "" }

// buildMessage writes m as multipart/alternative (RFC 2046). Every value is checked first, and the whole mail must be
// printable ASCII in lines of at most 998 bytes (RFC 5322 §2.1.1): 7bit, and no input byte can start a header or part.
func buildMessage(from string, m codeMail, now time.Time) ([]byte, error) {
	_, domain, _ := strings.Cut(from, "@")
	if _, ok := parseEmail(m.To); !ok || !validCode(m.Code) || strings.Trim(m.ID, idBytes) != "" || strings.Trim(m.Link, printableASCII) != "" {
		return nil, fmt.Errorf("mail to %q: %w", m.To, errUnmailable)
	}
	id := cmp.Or(m.ID, randomID(16))
	boundary := "=_" + randomID(12) // "=_" is not in any body we write
	validity := "It can be used once, until " + m.Expires.UTC().Format("15:04 UTC") + "."
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: Your sign-in code\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"%s\"\r\n",
		from, m.To, now.Format(time.RFC1123Z), id, domain, boundary)
	part := "\r\n--" + boundary + "\r\nContent-Type: text/%s; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
	fmt.Fprintf(&b, part+"Your sign-in code is:\r\n\r\n%s\r\n\r\n%s\r\nGo back to signing in: %s\r\n\r\n"+
		"If you did not ask to sign in, ignore this mail.\r\n", "plain", m.Code, validity, m.Link)
	fmt.Fprintf(&b, part+"<p>Your sign-in code is:</p>\r\n<p style=\"font-size:24px;font-family:monospace\"><b>%s</b></p>\r\n"+
		"<p>%s</p>\r\n<p><a href=\"%s\">Go back to signing in</a></p>\r\n<p>If you did not ask to sign in, ignore this mail.</p>\r\n",
		"html", m.Code, validity, html.EscapeString(m.Link))
	b.WriteString("\r\n--" + boundary + "--\r\n")
	for _, line := range strings.Split(b.String(), "\r\n") {
		if len(line) > 998 || strings.Trim(line, printableASCII) != "" {
			return nil, fmt.Errorf("mail to %q: a line is not printable ASCII within 998 bytes: %w", m.To, errUnmailable)
		}
	}
	return b.Bytes(), nil
}

// printableASCII is every byte from space to tilde; idBytes the base64url alphabet, also that of WorkOS ids.
const (
	printableASCII = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
	idBytes        = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
)

type smtpConfig struct {
	Host, Port, Username, Password, From string
	TLS                                  string         // "starttls", "tls" (implicit) or "none" (loopback only)
	RootCAs                              *x509.CertPool // nil: the system's
}

// smtpMailer sends over SMTP. net/smtp's SendMail has no deadline and uses TLS only "if possible"; this requires it.
type smtpMailer struct{ cfg smtpConfig }

func (s smtpMailer) Send(ctx context.Context, m codeMail) error {
	raw, err := buildMessage(s.cfg.From, m, time.Now())
	if err == nil {
		err = s.exchange(ctx, m.To, raw)
	}
	return err
}

// exchange speaks SMTP within smtpTimeout and ctx; with raw nil it stops after AUTH (dashauth check).
func (s smtpMailer) exchange(ctx context.Context, to string, raw []byte) (err error) {
	addr := net.JoinHostPort(s.cfg.Host, s.cfg.Port)
	ctx, cancel := context.WithTimeout(ctx, smtpTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp dial %s: %w", addr, err)
	}
	defer conn.Close()
	dialed := conn // the end of ctx, by deadline or cancel, wakes any read or write
	defer context.AfterFunc(ctx, func() { dialed.SetDeadline(time.Unix(1, 0)) })()
	step := "greeting"
	defer func() {
		if err != nil {
			err = fmt.Errorf("smtp %s at %s: %w", step, addr, errors.Join(ctx.Err(), err))
		}
	}()
	tc := &tls.Config{ServerName: s.cfg.Host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	if s.cfg.TLS == "tls" {
		conn = tls.Client(conn, tc)
	}
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err == nil {
		step, err = "EHLO", c.Hello("localhost")
	}
	if err == nil && s.cfg.TLS == "starttls" {
		// Never clear text: a server that does not offer STARTTLS, or an attacker who strips it, gets nothing.
		step, err = "STARTTLS", errors.New("the server does not offer STARTTLS")
		if ok, _ := c.Extension("STARTTLS"); ok {
			err = c.StartTLS(tc)
		}
	}
	if err == nil && s.cfg.Username != "" {
		step, err = "AUTH", c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host))
	}
	if err == nil && raw == nil {
		step, err = "QUIT", c.Quit()
	}
	if err != nil || raw == nil {
		return err
	}
	step, err = "MAIL FROM", c.Mail(s.cfg.From)
	if err == nil {
		step, err = "RCPT TO", c.Rcpt(to)
	}
	var wc io.WriteCloser
	if err == nil {
		step = "DATA"
		if wc, err = c.Data(); err == nil {
			_, err = wc.Write(raw)
		}
		if err == nil {
			err = wc.Close() // the server's verdict on the mail
		}
	}
	if err == nil {
		c.Quit() // the mail is accepted: a failed QUIT must not make a caller retry and mail it twice
	}
	return err
}

// logMailer is development mode's mailer: the code goes to the log, plainly.
type logMailer struct{ log *slog.Logger }

func (l logMailer) Send(_ context.Context, m codeMail) error {
	if _, err := buildMessage("dev@dashauth.localhost", m, time.Now()); err != nil {
		return err
	}
	l.log.Info(fmt.Sprintf("login code for %s: %s", m.To, m.Code), "valid_until", m.Expires.UTC().Format(time.RFC3339))
	return nil
}

// sendCode is the one way a code is mailed, by email+code and by the webhook alike.
func (s *server) sendCode(ctx context.Context, to, code string, expires time.Time, id string) error {
	link := map[bool]string{true: s.cfg.WorkOSSigninBaseURL, false: s.cfg.DashboardURL}[s.workos != nil]
	if err := s.mail.Send(ctx, codeMail{To: to, Code: code, Expires: expires, Link: link, ID: id}); err != nil {
		s.count("dashauth_mails_total", "failed")
		s.log.Error("mail failed", "err", err)
		return err
	}
	s.count("dashauth_mails_total", "sent")
	return nil
}
