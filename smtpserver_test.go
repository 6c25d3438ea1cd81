package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpStage names the point of an SMTP exchange at which a testSMTPServer misbehaves.
type smtpStage string

const (
	stageGreeting smtpStage = "GREETING" // instead of the 220 greeting
	stageHello    smtpStage = "EHLO"     // in reply to EHLO or HELO
	stageMail     smtpStage = "MAIL"     // in reply to MAIL FROM
	stageRcpt     smtpStage = "RCPT"     // in reply to RCPT TO
	stageData     smtpStage = "DATA"     // in reply to DATA (instead of 354)
	stageEnd      smtpStage = "END"      // in reply to the message's final "."
	stageQuit     smtpStage = "QUIT"     // in reply to QUIT
)

// testSMTPFailure is how a testSMTPServer misbehaves. Exactly one of Code, Drop and
// Stall should be set; the zero value means no failure.
type testSMTPFailure struct {
	Stage smtpStage
	Code  int  // reply with this code (4xx or 5xx) instead of success
	Drop  bool // close the connection instead of replying
	Stall bool // never reply; hold the connection until the client gives up
	Times int  // misbehave this many times, then behave; 0: every time
}

// testSMTPOptions configures newTestSMTPServer.
type testSMTPOptions struct {
	STARTTLS    bool   // offer STARTTLS, with a certificate for 127.0.0.1 and localhost
	ImplicitTLS bool   // speak TLS from the first byte
	Username    string // when set, require AUTH PLAIN with Username and Password before MAIL
	Password    string
	Fail        testSMTPFailure // the initial failure mode; see SetFailure
}

// receivedMail is one message a testSMTPServer accepted.
type receivedMail struct {
	From string
	To   []string
	Data []byte // dot-unstuffed, CRLF line ends kept, without the final ".\r\n"
	TLS  bool   // the message arrived over TLS
	User string // the AUTH PLAIN user, "" without AUTH
}

// testSMTPServer is a small SMTP server on 127.0.0.1 for tests; it stops when the
// test ends. All methods are safe for concurrent use.
type testSMTPServer struct {
	Host string // always "127.0.0.1"
	Port int

	opts      testSMTPOptions
	ln        net.Listener
	pool      *x509.CertPool
	tlsConfig *tls.Config
	stalled   chan struct{}
	wg        sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	fail     testSMTPFailure
	live     map[net.Conn]bool
	closed   bool
	conns    int
	commands []string
	messages []receivedMail
}

// maxTestSMTPData bounds one message, as SIZE announces.
const maxTestSMTPData = 10 << 20

// newTestSMTPServer starts a server on 127.0.0.1:0.
//
//	srv := newTestSMTPServer(t, testSMTPOptions{STARTTLS: true, Username: "u", Password: "p"})
//	m, err := newSMTPMailer(srv.Config()) // RootCAs trusts srv's certificate
//	err = m.Send(ctx, msg)
//	got := srv.Messages()
func newTestSMTPServer(t testing.TB, opts testSMTPOptions) *testSMTPServer {
	t.Helper()
	cert, pool := newTestCertificate(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("test smtp listen: %v", err)
	}
	s := &testSMTPServer{
		Host:      "127.0.0.1",
		Port:      ln.Addr().(*net.TCPAddr).Port,
		opts:      opts,
		ln:        ln,
		pool:      pool,
		tlsConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		stalled:   make(chan struct{}, 64),
		fail:      opts.Fail,
		live:      map[net.Conn]bool{},
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

// newTestCertificate makes a self-signed ECDSA P-256 certificate for 127.0.0.1, ::1
// and localhost, valid for an hour either side of now, and a pool that trusts it.
func newTestCertificate(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("test certificate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"dashauth test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("test certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("test certificate parse: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// CertPool trusts the server's certificate.
func (s *testSMTPServer) CertPool() *x509.CertPool { return s.pool }

// Config returns a valid smtpConfig for this server: its TLS mode, its credentials and its
// certificate trusted.
func (s *testSMTPServer) Config() smtpConfig {
	mode := "none"
	if s.opts.STARTTLS {
		mode = "starttls"
	}
	if s.opts.ImplicitTLS {
		mode = "tls"
	}
	return smtpConfig{
		Host: s.Host, Port: strconv.Itoa(s.Port), Username: s.opts.Username, Password: s.opts.Password,
		From: "dashauth@example.com", TLS: mode, RootCAs: s.pool,
	}
}

// SetFailure changes how the server misbehaves from the next stage on.
func (s *testSMTPServer) SetFailure(f testSMTPFailure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = f
}

// Messages returns the messages accepted so far, oldest first.
func (s *testSMTPServer) Messages() []receivedMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedMail(nil), s.messages...)
}

// Count returns how many messages were accepted.
func (s *testSMTPServer) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// Connections returns how many connections were accepted.
func (s *testSMTPServer) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Commands returns every command line received, oldest first, AUTH arguments redacted.
func (s *testSMTPServer) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Verbs returns the command verbs received, oldest first ("EHLO", "MAIL", ...).
func (s *testSMTPServer) Verbs() []string {
	var verbs []string
	for _, c := range s.Commands() {
		v, _, _ := strings.Cut(c, " ")
		verbs = append(verbs, strings.ToUpper(v))
	}
	return verbs
}

// Stalled receives a value each time the server starts to stall a connection.
func (s *testSMTPServer) Stalled() <-chan struct{} { return s.stalled }

func (s *testSMTPServer) close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.live {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *testSMTPServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.live[conn] = true
		s.conns++
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				conn.Close()
				s.mu.Lock()
				delete(s.live, conn)
				s.mu.Unlock()
			}()
			s.handle(conn)
		}()
	}
}

// trip reports whether the server must misbehave at stage, and how.
func (s *testSMTPServer) trip(stage smtpStage) (testSMTPFailure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fail
	if f.Stage != stage || f.Code == 0 && !f.Drop && !f.Stall {
		return f, false
	}
	if f.Times > 0 {
		s.fail.Times--
		if s.fail.Times == 0 {
			s.fail = testSMTPFailure{}
		}
	}
	return f, true
}

// testSMTPSession is the state of one connection.
type testSMTPSession struct {
	s      *testSMTPServer
	conn   net.Conn
	r      *bufio.Reader
	tls    bool
	hello  bool
	user   string
	inMail bool
	from   string
	to     []string
	closed bool // the session must end
}

func (s *testSMTPServer) handle(raw net.Conn) {
	ss := &testSMTPSession{s: s, conn: raw}
	if s.opts.ImplicitTLS {
		tc := tls.Server(raw, s.tlsConfig)
		if tc.Handshake() != nil {
			return
		}
		ss.conn, ss.tls = tc, true
	}
	ss.r = bufio.NewReaderSize(ss.conn, 4096)
	if ss.misbehave(stageGreeting) {
		return
	}
	ss.reply("220 localhost ESMTP test")
	for !ss.closed {
		line, err := ss.readLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		if verb == "AUTH" {
			line = "AUTH <redacted>"
		}
		s.commands = append(s.commands, line)
		s.mu.Unlock()
		ss.command(verb, arg)
	}
}

func (ss *testSMTPSession) command(verb, arg string) {
	opts := ss.s.opts
	switch verb {
	case "EHLO":
		if ss.misbehave(stageHello) {
			return
		}
		ss.hello = true
		lines := []string{"250-localhost greets " + arg}
		if opts.STARTTLS && !ss.tls {
			lines = append(lines, "250-STARTTLS")
		}
		if opts.Username != "" {
			lines = append(lines, "250-AUTH PLAIN")
		}
		ss.reply(strings.Join(append(lines, fmt.Sprintf("250 SIZE %d", maxTestSMTPData)), "\r\n"))
	case "HELO":
		if ss.misbehave(stageHello) {
			return
		}
		ss.hello = true
		ss.reply("250 localhost")
	case "STARTTLS":
		if !opts.STARTTLS || ss.tls {
			ss.reply("502 5.5.1 STARTTLS not offered")
			return
		}
		ss.reply("220 2.0.0 ready to start TLS")
		tc := tls.Server(ss.conn, ss.s.tlsConfig)
		if tc.Handshake() != nil {
			ss.closed = true
			return
		}
		// RFC 3207 §4.2: forget everything learnt before TLS.
		*ss = testSMTPSession{s: ss.s, conn: tc, r: bufio.NewReaderSize(tc, 4096), tls: true}
	case "AUTH":
		ss.auth(arg)
	case "MAIL":
		from, ok := pathArg(arg, "FROM:")
		switch {
		case !ss.hello || ss.inMail:
			ss.reply("503 5.5.1 bad sequence of commands")
		case opts.Username != "" && ss.user == "":
			ss.reply("530 5.7.0 authentication required")
		case !ok:
			ss.reply("501 5.5.4 syntax: MAIL FROM:<address>")
		case ss.misbehave(stageMail):
		default:
			ss.inMail, ss.from = true, from
			ss.reply("250 2.1.0 ok")
		}
	case "RCPT":
		to, ok := pathArg(arg, "TO:")
		switch {
		case !ss.inMail:
			ss.reply("503 5.5.1 need MAIL first")
		case !ok:
			ss.reply("501 5.5.4 syntax: RCPT TO:<address>")
		case ss.misbehave(stageRcpt):
		default:
			ss.to = append(ss.to, to)
			ss.reply("250 2.1.5 ok")
		}
	case "DATA":
		switch {
		case len(ss.to) == 0:
			ss.reply("503 5.5.1 need RCPT first")
		case ss.misbehave(stageData):
		default:
			ss.reply("354 end data with <CR><LF>.<CR><LF>")
			ss.data()
		}
	case "RSET":
		ss.inMail, ss.from, ss.to = false, "", nil
		ss.reply("250 2.0.0 ok")
	case "NOOP":
		ss.reply("250 2.0.0 ok")
	case "QUIT":
		if ss.misbehave(stageQuit) {
			ss.closed = true
			return
		}
		ss.reply("221 2.0.0 bye")
		ss.closed = true
	default:
		ss.reply("502 5.5.2 command not recognized")
	}
}

func (ss *testSMTPSession) auth(arg string) {
	mech, initial, _ := strings.Cut(arg, " ")
	if ss.s.opts.Username == "" || !strings.EqualFold(mech, "PLAIN") || ss.user != "" {
		ss.reply("504 5.5.4 unrecognized authentication type")
		return
	}
	if initial == "" {
		ss.reply("334 ")
		line, err := ss.readLine()
		if err != nil {
			ss.closed = true
			return
		}
		initial = line
	}
	dec, err := base64.StdEncoding.DecodeString(initial)
	parts := strings.Split(string(dec), "\x00")
	if err != nil || len(parts) != 3 || parts[1] != ss.s.opts.Username || parts[2] != ss.s.opts.Password {
		ss.reply("535 5.7.8 authentication credentials invalid")
		return
	}
	ss.user = parts[1]
	ss.reply("235 2.7.0 authentication successful")
}

// data reads a message up to its final "." line and accepts it, unless told to fail.
func (ss *testSMTPSession) data() {
	var buf []byte
	for {
		line, err := ss.r.ReadSlice('\n')
		if err != nil || !strings.HasSuffix(string(line), "\r\n") {
			ss.closed = true // I/O error, overlong or bare-LF line: give up on the session
			return
		}
		if string(line) == ".\r\n" {
			break
		}
		if line[0] == '.' {
			line = line[1:]
		}
		if len(buf)+len(line) > maxTestSMTPData {
			ss.closed = true
			return
		}
		buf = append(buf, line...)
	}
	if ss.misbehave(stageEnd) {
		ss.inMail, ss.from, ss.to = false, "", nil
		return
	}
	ss.s.mu.Lock()
	ss.s.messages = append(ss.s.messages, receivedMail{From: ss.from, To: ss.to, Data: buf, TLS: ss.tls, User: ss.user})
	ss.s.mu.Unlock()
	ss.inMail, ss.from, ss.to = false, "", nil
	ss.reply("250 2.0.0 ok: queued")
}

// misbehave acts out the failure set for stage, if any, and reports whether it did.
func (ss *testSMTPSession) misbehave(stage smtpStage) bool {
	f, ok := ss.s.trip(stage)
	if !ok {
		return false
	}
	switch {
	case f.Stall:
		select {
		case ss.s.stalled <- struct{}{}:
		default:
		}
		_, _ = io.Copy(io.Discard, ss.conn) // until the client or the cleanup closes it
		ss.closed = true
	case f.Drop:
		ss.closed = true
	default:
		ss.reply(fmt.Sprintf("%d test failure at %s", f.Code, stage))
		ss.closed = stage == stageGreeting
	}
	return true
}

// pathArg returns the address of "FROM:<a@b> PARAMS" for prefix "FROM:".
func pathArg(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	path, _, _ := strings.Cut(arg[len(prefix):], " ")
	addr, ok := strings.CutPrefix(path, "<")
	addr, ok2 := strings.CutSuffix(addr, ">")
	return addr, ok && ok2
}

func (ss *testSMTPSession) readLine() (string, error) {
	line, err := ss.r.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok {
		ss.reply("500 5.5.2 line must end in CRLF")
		return "", errors.New("test smtp: bare LF")
	}
	return s, nil
}

func (ss *testSMTPSession) reply(s string) {
	if _, err := io.WriteString(ss.conn, s+"\r\n"); err != nil {
		ss.closed = true
	}
}
