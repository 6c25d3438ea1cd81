package main

// Shared state (webhook claims, codes, limits, sessions) behind one interface: memory for one replica, Redis for more.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type store interface {
	// Get returns the value at key; ok is false when there is none.
	Get(ctx context.Context, key string) (value string, ok bool, err error)
	// Put makes key hold value for ttl (delete it for "") if it now holds old ("": nothing; anyValue: anything), and
	// reports whether it did, atomically.
	Put(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error)
	Ping(ctx context.Context) error
}

const anyValue = "\x00any" // Put's old for "whatever the key holds, if anything"

var (
	errStoreClosed = errors.New("store closed")
	errProtocol    = errors.New("redis protocol error")
)

// admit records an event under key if fewer than max happened in the sliding window, else says when a place frees.
// The value is the events' unix milliseconds, written back by compare-and-set, so replicas cannot race past max.
func admit(ctx context.Context, st store, now time.Time, key string, max int, window time.Duration) (bool, time.Duration, error) {
	for range 8 {
		old, _, err := st.Get(ctx, key)
		if err != nil {
			return false, 0, err
		}
		var kept []string
		for _, t := range strings.Fields(old) {
			if ms, _ := strconv.ParseInt(t, 10, 64); now.Before(time.UnixMilli(ms).Add(window)) {
				kept = append(kept, t)
			}
		}
		if len(kept) >= max {
			oldest, _ := strconv.ParseInt(kept[0], 10, 64)
			return false, time.UnixMilli(oldest).Add(window).Sub(now), nil
		}
		value := strings.Join(append(kept, strconv.FormatInt(now.UnixMilli(), 10)), " ")
		if ok, err := st.Put(ctx, key, old, value, window); ok || err != nil {
			return ok, 0, err
		}
	}
	return false, time.Second, nil // eight requests raced this one for the key: too many at once
}

// memoryStore holds at most max keys, then refuses new ones (503) rather than evict: every key protects someone.
type memoryStore struct {
	now   func() time.Time
	max   int
	mu    sync.Mutex
	m     map[string]memEntry
	swept time.Time
}

type memEntry struct {
	value   string
	expires time.Time
}

const memoryMaxKeys = 100_000 // entries of a few hundred bytes at most: about 50 MiB

func newMemoryStore(now func() time.Time, max int) *memoryStore {
	return &memoryStore{now: now, max: max, m: make(map[string]memEntry)}
}

func (s *memoryStore) Get(_ context.Context, key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && s.now().Before(e.expires) {
		return e.value, true, nil
	}
	return "", false, nil
}

func (s *memoryStore) Put(_ context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e, ok := s.m[key]
	if ok = ok && now.Before(e.expires); !ok {
		e.value = ""
	}
	switch {
	case old != anyValue && old != e.value:
		return false, nil
	case value == "":
		delete(s.m, key)
		return true, nil
	case !ok && len(s.m) >= s.max && now.Sub(s.swept) >= time.Second:
		s.swept = now // full: sweep what expired, at most once a second
		maps.DeleteFunc(s.m, func(_ string, e memEntry) bool { return !now.Before(e.expires) })
	}
	if !ok && len(s.m) >= s.max {
		return false, fmt.Errorf("memory store full (%d keys)", s.max)
	}
	s.m[key] = memEntry{value, now.Add(ttl)}
	return true, nil
}

func (s *memoryStore) Ping(context.Context) error { return nil }

// redisStore speaks RESP2 over one pipelined connection: callers write in turn, and one reader hands each reply to
// the oldest waiting caller. An I/O or protocol error, a command unanswered in time, or a reply saying the server
// cannot write (a failover) closes the connection; the next command dials again.
type redisStore struct {
	addr, host string // host:port, and host for TLS
	useTLS     bool
	roots      *x509.CertPool // for rediss://; nil: the system's
	setup      [][]string     // AUTH and SELECT, as the URL asks

	mu     sync.Mutex // guards conn and closed; held while dialing
	conn   *redisConn
	closed bool
}

type redisConn struct {
	nc      net.Conn
	wmu     sync.Mutex // orders commands on the wire and in pending alike
	writers atomic.Int32
	bw      *bufio.Writer
	pending chan chan any // each command's reply, in the order written
	br      *bufio.Reader // the reader goroutine's alone
	dead    chan struct{} // closed, with err set, when the connection is done for
	err     error
	once    sync.Once
}

// The values kept are small: a longer line or value means a wrong server, refused before anything is allocated.
const (
	redisDialTimeout    = 2 * time.Second
	redisCommandTimeout = 2 * time.Second // from writing a command to its whole reply
	maxLineLen          = 4096            // also the read buffer: a longer line fails in bufio
	maxBulkLen          = 1 << 20
	maxInFlight         = 4096 // commands written and not yet answered
)

// redisError is an error reply: the server refused the command; the connection is in step.
type redisError string

func (e redisError) Error() string { return string(e) }

// newRedisStore reads redis://[user:pass@]host[:port][/db] or rediss://… and nothing it would not honour. Errors
// never quote the URL: a typo can put the password where a host was expected.
func newRedisStore(raw string) (*redisStore, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis" && u.Scheme != "rediss" || u.Opaque != "" || u.RawQuery != "" ||
		u.ForceQuery || u.Fragment != "" || u.Hostname() == "" {
		return nil, errors.New("REDIS_URL: want redis://[user:pass@]host[:port][/db] or rediss://…, no query or fragment")
	}
	port := cmp.Or(u.Port(), "6379")
	pass, _ := u.User.Password()
	db, _ := strings.CutPrefix(u.Path, "/")
	n, ok := parseDigits([]byte(cmp.Or(db, "0")), 4) // Redis ships with 16 databases; one in the thousands is a typo
	switch {
	case !validPort(port) || port == "0" || strings.HasSuffix(u.Host, ":") || strings.ContainsAny(u.Hostname(), "[]"):
		return nil, errors.New("REDIS_URL: want a host and a port from 1 to 65535")
	case u.User != nil && pass == "":
		return nil, errors.New("REDIS_URL: a user needs a password (redis://user:pass@host or redis://:pass@host)")
	case !ok || u.Path != "" && u.Path[0] != '/':
		return nil, errors.New("REDIS_URL: the path must be a database number from 0 to 9999")
	}
	s := &redisStore{addr: net.JoinHostPort(u.Hostname(), port), host: u.Hostname(), useTLS: u.Scheme == "rediss"}
	if user := u.User.Username(); user != "" {
		s.setup = append(s.setup, []string{"AUTH", user, pass})
	} else if pass != "" {
		s.setup = append(s.setup, []string{"AUTH", pass})
	}
	if n != 0 {
		s.setup = append(s.setup, []string{"SELECT", db})
	}
	return s, nil
}

func (s *redisStore) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed = true; s.conn != nil {
		s.conn.fail(errStoreClosed)
	}
}

// connection returns the live connection, or dials one and AUTHs and SELECTs on it before any caller's command.
func (s *redisStore) connection(ctx context.Context) (*redisConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errStoreClosed
	}
	if s.conn != nil {
		select {
		case <-s.conn.dead:
		default:
			return s.conn, nil
		}
	}
	nc, err := (&net.Dialer{Timeout: redisDialTimeout}).DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("redis dial %s: %w", s.addr, err)
	}
	raw := nc                                                                   // the AfterFunc's: nc may become TLS
	raw.SetDeadline(time.Now().Add(redisCommandTimeout))                        // the TLS handshake, AUTH and SELECT
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) }) // a /readyz probe waits less
	step := map[bool]string{true: "TLS", false: "setup"}[s.useTLS]
	if s.useTLS { // TLS 1.2 is the floor of RFC 8996
		tc := tls.Client(nc, &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12, RootCAs: s.roots})
		nc, err = tc, tc.Handshake()
	}
	c := &redisConn{nc: nc, bw: bufio.NewWriter(nc), br: bufio.NewReaderSize(nc, maxLineLen),
		pending: make(chan chan any, maxInFlight), dead: make(chan struct{})}
	for i := 0; i < len(s.setup) && err == nil; i++ {
		step = s.setup[i][0]
		writeCommand(c.bw, s.setup[i])
		var v any
		if err = c.bw.Flush(); err == nil {
			v = c.readReply()
		}
		if err = cmp.Or(err, replyError(v)); err == nil && v != "OK" {
			err = unexpected(v)
		}
	}
	if !stop() || err != nil { // a reply never echoes the password
		nc.Close()
		return nil, fmt.Errorf("redis %s %s: %w", step, s.addr, cmp.Or(ctx.Err(), err))
	}
	nc.SetDeadline(time.Time{})
	go c.readLoop()
	s.conn = c
	return c, nil
}

func (c *redisConn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.dead)
		c.nc.Close()
	})
}

// readLoop hands each reply to the oldest waiting call; reading while none waits notices a closed idle connection.
func (c *redisConn) readLoop() {
	for err := error(nil); err == nil; {
		v := c.readReply()
		err = replyError(v)
		// A replica after a failover or a server still loading is no use: the next dial reaches the primary.
		re, isReply := err.(redisError)
		if code, _, _ := strings.Cut(string(re), " "); isReply && code != "READONLY" && code != "LOADING" && code != "MASTERDOWN" {
			err = nil
		}
		var call chan any
		select {
		case call = <-c.pending:
		default:
			err = cmp.Or(err, fmt.Errorf("%w: a reply with no command", errProtocol))
		}
		if err != nil {
			c.fail(err) // first, so the caller's next command finds the connection closed
		}
		if call != nil {
			call <- v
		}
	}
}

// do sends one command and waits for its reply, the end of its connection, the command timeout or ctx.
func (s *redisStore) do(ctx context.Context, args ...string) (any, error) {
	c, err := s.connection(ctx)
	if err != nil {
		return nil, err
	}
	call := make(chan any, 1)
	c.writers.Add(1) // the last of a burst of callers flushes for them all: one write for many commands
	c.wmu.Lock()
	select {
	case c.pending <- call:
		writeCommand(c.bw, args)
	default:
		err = fmt.Errorf("redis: %d commands in flight", maxInFlight)
	}
	if c.writers.Add(-1) == 0 {
		if err := c.bw.Flush(); err != nil {
			c.fail(err) // every caller whose command it held learns it from dead
		}
	}
	c.wmu.Unlock()
	if err != nil {
		return nil, err
	}
	// A watchdog times the reply, so that a silent connection fails even when every caller gave up by its context.
	late := time.AfterFunc(redisCommandTimeout, func() {
		if len(call) == 0 { // no reply yet
			c.fail(fmt.Errorf("redis %s: no reply within %v", args[0], redisCommandTimeout))
		}
	})
	var v any
	select {
	case v = <-call:
	case <-c.dead:
		select {
		case v = <-call: // answered just before the connection ended
		default:
			return nil, c.err
		}
	case <-ctx.Done():
		return nil, ctx.Err() // the watchdog stays armed
	}
	late.Stop()
	return v, replyError(v)
}

// writeCommand writes args as bulk strings, read by length: no byte of an argument can end it or start a command.
func writeCommand(bw *bufio.Writer, args []string) {
	bw.Write(strconv.AppendInt(append(bw.AvailableBuffer(), '*'), int64(len(args)), 10))
	for _, a := range args {
		bw.Write(strconv.AppendInt(append(bw.AvailableBuffer(), "\r\n$"...), int64(len(a)), 10))
		bw.WriteString("\r\n")
		bw.WriteString(a)
	}
	bw.WriteString("\r\n")
}

// readReply reads a reply: a status string, int64, []byte (bulk), nil, a redisError, or another error for I/O or a
// reply out of protocol. No command sent answers with an array or a negative integer; RESP3 needs a HELLO 3.
func (c *redisConn) readReply() any {
	line, err := c.br.ReadSlice('\n')
	if err == nil && (len(line) < 3 || line[len(line)-2] != '\r' || bytes.IndexByte(line[:len(line)-2], '\r') >= 0) {
		err = errors.New("a line must be a type, a payload and CRLF")
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errProtocol, err) // a longer line is bufio.ErrBufferFull: maxLineLen is the buffer
	}
	p := line[1 : len(line)-2]
	n, isNum := parseDigits(p, 19)
	switch {
	case line[0] == '+' && string(p) == "OK":
		return "OK" // the common status, without a copy
	case line[0] == '+':
		return string(p)
	case line[0] == '-':
		return redisError(p)
	case line[0] == ':' && isNum:
		return n
	case line[0] == '$' && string(p) == "-1":
		return nil
	case line[0] == '$' && isNum && n <= maxBulkLen:
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.br, b); err != nil || b[n] != '\r' || b[n+1] != '\n' {
			return fmt.Errorf("%w: a bulk string cut short or not ended by CRLF: %v", errProtocol, err)
		}
		return b[:n]
	}
	return fmt.Errorf("%w: a malformed or unexpected %q reply", errProtocol, line[0])
}

func replyError(v any) error {
	err, _ := v.(error)
	return err
}

// parseDigits reads 1 to maxDigits decimal digits that fit an int64: no sign, no leading zero.
func parseDigits(p []byte, maxDigits int) (int64, bool) {
	if len(p) == 0 || len(p) > maxDigits || p[0] == '0' && len(p) > 1 {
		return 0, false
	}
	var n int64
	for _, b := range p {
		if b < '0' || b > '9' || n > (math.MaxInt64-int64(b-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(b-'0')
	}
	return n, true
}

// unexpected names a reply of the wrong kind by its type only: it may hold a secret.
func unexpected(v any) error { return fmt.Errorf("%w: unexpected %T reply", errProtocol, v) }

// putScript is Put's compare-and-set, or compare-and-delete, in one atomic step.
const putScript = `local v = redis.call('GET', KEYS[1])
if (v or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`

func (s *redisStore) Get(ctx context.Context, key string) (string, bool, error) {
	v, err := s.do(ctx, "GET", key)
	if b, ok := v.([]byte); ok || v == nil && err == nil {
		return string(b), ok, nil
	}
	return "", false, fmt.Errorf("redis GET %q: %w", key, cmp.Or(err, unexpected(v)))
}

func (s *redisStore) Put(ctx context.Context, key, old, value string, ttl time.Duration) (bool, error) {
	ms := strconv.FormatInt(int64((ttl+time.Millisecond-1)/time.Millisecond), 10)
	args := []string{"EVAL", putScript, "1", key, old, value, ms}
	switch {
	case old == anyValue && value == "":
		args = []string{"DEL", key}
	case old == anyValue:
		args = []string{"SET", key, value, "PX", ms}
	case old == "" && value != "":
		args = []string{"SET", key, value, "PX", ms, "NX"}
	}
	v, err := s.do(ctx, args...)
	if err == nil && (v == "OK" || v == int64(1) || v == nil || v == int64(0)) {
		return v == "OK" || v == int64(1) || args[0] == "DEL", nil // nothing to delete is done all the same
	}
	return false, fmt.Errorf("redis PUT %q: %w", key, cmp.Or(err, unexpected(v)))
}

func (s *redisStore) Ping(ctx context.Context) error {
	if v, err := s.do(ctx, "PING"); err != nil || v != "PONG" {
		return fmt.Errorf("redis PING: %w", cmp.Or(err, unexpected(v)))
	}
	return nil
}
