package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose peer is a script of replies: each reply becomes readable
// once the client has written one more whole command, and is read chunk bytes at a time when
// chunk > 0. Write records what the client sent. With nothing to read, Read blocks like an
// idle server until the read deadline passes or the conn is closed, or, when eof is set,
// returns io.EOF like a server that hung up.
type scriptConn struct {
	mu        sync.Mutex
	replies   []string // not yet released
	script    []byte   // released, not yet read
	chunk     int
	eof       bool
	hangUp    int  // when > 0, the server hangs up on command number hangUp instead of answering
	failWrite bool // Write fails, as on a reset connection
	written   bytes.Buffer
	commands  int // whole commands in written
	closed    bool
	readDL    time.Time
	deadlines []time.Time   // every deadline the client set with SetDeadline
	changed   chan struct{} // closed and replaced when anything Read waits on changes
}

func newScriptConn(replies ...string) *scriptConn {
	return &scriptConn{replies: replies, changed: make(chan struct{})}
}

// wake tells a blocked Read to look again. c.mu is held.
func (c *scriptConn) wake() {
	if !c.closed {
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

func (c *scriptConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case c.closed:
			return 0, net.ErrClosed
		case len(c.script) > 0:
			if c.chunk > 0 && len(p) > c.chunk {
				p = p[:c.chunk]
			}
			n := copy(p, c.script)
			c.script = c.script[n:]
			return n, nil
		case c.eof || (c.hangUp > 0 && c.commands >= c.hangUp):
			return 0, io.EOF
		case !c.readDL.IsZero() && !time.Now().Before(c.readDL):
			return 0, os.ErrDeadlineExceeded
		}
		changed := c.changed
		var expired <-chan time.Time
		if !c.readDL.IsZero() {
			timer := time.NewTimer(time.Until(c.readDL))
			defer timer.Stop()
			expired = timer.C
		}
		c.mu.Unlock()
		select {
		case <-changed:
		case <-expired:
		}
		c.mu.Lock()
	}
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if c.failWrite {
		return 0, syscall.ECONNRESET
	}
	c.written.Write(p)
	// Count whole commands (arrays of bulk strings, which readReply parses too) and release
	// one reply for each new one.
	r := &respConn{br: bufio.NewReader(bytes.NewReader(c.written.Bytes()))}
	n := 0
	for {
		if _, err := r.readReply(); err != nil {
			break
		}
		n++
	}
	for ; c.commands < n && len(c.replies) > 0; c.commands++ {
		c.script = append(c.script, c.replies[0]...)
		c.replies = c.replies[1:]
	}
	c.commands = n
	c.wake()
	return len(p), nil
}

func (c *scriptConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.changed)
	}
	return nil
}

func (c *scriptConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, t)
	c.mu.Unlock()
	return c.SetReadDeadline(t)
}

func (c *scriptConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDL = t
	c.wake()
	return nil
}

func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }
func (c *scriptConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50000}
}
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6379}
}

func (c *scriptConn) sent() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written.String()
}

func (c *scriptConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// scriptedStore returns a store for rawURL whose dials return conns in order, and the count
// of dials so far.
func scriptedStore(t *testing.T, rawURL string, opts redisOptions, conns ...*scriptConn) (*redisStore, *atomic.Int32) {
	t.Helper()
	s, err := newRedisStore(rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var dials atomic.Int32
	s.pool.dial = func(context.Context) (net.Conn, error) {
		i := int(dials.Add(1)) - 1
		if i >= len(conns) {
			return nil, errors.New("test: no more scripted connections")
		}
		return conns[i], nil
	}
	return s, &dials
}

// bulk writes args the way a command is expected on the wire.
func wire(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func TestRedisWire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		call   func(s *redisStore) (any, error)
		reply  string
		sent   string
		result any
	}{
		{
			name: "get hit",
			call: func(s *redisStore) (any, error) {
				v, ok, err := s.Get(ctx, "k")
				return fmt.Sprintf("%s %v", v, ok), err
			},
			reply:  "$5\r\nvalue\r\n",
			sent:   "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
			result: "value true",
		},
		{
			name: "get of an empty value",
			call: func(s *redisStore) (any, error) {
				v, ok, err := s.Get(ctx, "k")
				return fmt.Sprintf("%q %v", v, ok), err
			},
			reply:  "$0\r\n\r\n",
			sent:   "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
			result: `"" true`,
		},
		{
			name: "get miss",
			call: func(s *redisStore) (any, error) {
				v, ok, err := s.Get(ctx, "k")
				return fmt.Sprintf("%s %v", v, ok), err
			},
			reply:  "$-1\r\n",
			sent:   "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
			result: " false",
		},
		{
			name: "set",
			call: func(s *redisStore) (any, error) {
				return nil, s.Set(ctx, "dashauth:code:a@b.c", "123456", 10*time.Minute)
			},
			reply:  "+OK\r\n",
			sent:   "*5\r\n$3\r\nSET\r\n$19\r\ndashauth:code:a@b.c\r\n$6\r\n123456\r\n$2\r\nPX\r\n$6\r\n600000\r\n",
			result: nil,
		},
		{
			name:   "set with a ttl under a millisecond rounds up",
			call:   func(s *redisStore) (any, error) { return nil, s.Set(ctx, "k", "v", time.Microsecond) },
			reply:  "+OK\r\n",
			sent:   wire("SET", "k", "v", "PX", "1"),
			result: nil,
		},
		{
			name: "key and value with CR LF and spaces stay inside their bulk strings",
			call: func(s *redisStore) (any, error) {
				return nil, s.Set(ctx, "a b\r\n*1\r\n$8\r\nFLUSHALL", "x\r\n", time.Second)
			},
			reply:  "+OK\r\n",
			sent:   "*5\r\n$3\r\nSET\r\n$21\r\na b\r\n*1\r\n$8\r\nFLUSHALL\r\n$3\r\nx\r\n\r\n$2\r\nPX\r\n$4\r\n1000\r\n",
			result: nil,
		},
		{
			name:   "setnx sets",
			call:   func(s *redisStore) (any, error) { return s.SetNX(ctx, "k", "v", 3*time.Second) },
			reply:  "+OK\r\n",
			sent:   wire("SET", "k", "v", "PX", "3000", "NX"),
			result: true,
		},
		{
			name:   "setnx finds the key",
			call:   func(s *redisStore) (any, error) { return s.SetNX(ctx, "k", "v", 3*time.Second) },
			reply:  "$-1\r\n",
			sent:   wire("SET", "k", "v", "PX", "3000", "NX"),
			result: false,
		},
		{
			name: "incr",
			call: func(s *redisStore) (any, error) {
				n, left, err := s.Incr(ctx, "rl", time.Minute)
				return fmt.Sprint(n, left), err
			},
			reply:  "*2\r\n:7\r\n:41250\r\n",
			sent:   wire("EVAL", incrScript, "1", "rl", "60000"),
			result: "7 41.25s",
		},
		{
			name:   "del existed",
			call:   func(s *redisStore) (any, error) { return s.Del(ctx, "k") },
			reply:  ":1\r\n",
			sent:   "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n",
			result: true,
		},
		{
			name:   "del missing",
			call:   func(s *redisStore) (any, error) { return s.Del(ctx, "k") },
			reply:  ":0\r\n",
			sent:   "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n",
			result: false,
		},
		{
			name:   "ping",
			call:   func(s *redisStore) (any, error) { return nil, s.Ping(ctx) },
			reply:  "+PONG\r\n",
			sent:   "*1\r\n$4\r\nPING\r\n",
			result: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, chunk := range []int{0, 1} {
				conn := newScriptConn(tt.reply)
				conn.chunk = chunk
				s, _ := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{}, conn)
				got, err := tt.call(s)
				if err != nil {
					t.Fatalf("chunk %d: %v", chunk, err)
				}
				if got != tt.result {
					t.Errorf("chunk %d: result %#v; want %#v", chunk, got, tt.result)
				}
				if sent := conn.sent(); sent != tt.sent {
					t.Errorf("chunk %d: sent\n%q\nwant\n%q", chunk, sent, tt.sent)
				}
			}
		})
	}
}

func TestRedisHandshake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		replies []string
		sent    string
	}{
		{"redis://127.0.0.1:6379", nil, ""},
		{"redis://127.0.0.1:6379/0", nil, ""},
		{"redis://:s3cret@127.0.0.1:6379", []string{"+OK\r\n"}, wire("AUTH", "s3cret")},
		{"redis://alice:s3cret@127.0.0.1:6379", []string{"+OK\r\n"}, wire("AUTH", "alice", "s3cret")},
		{"redis://127.0.0.1:6379/3", []string{"+OK\r\n"}, wire("SELECT", "3")},
		{"redis://alice:p%40ss%3Aw%2Fd@127.0.0.1:6379/12", []string{"+OK\r\n", "+OK\r\n"}, wire("AUTH", "alice", "p@ss:w/d") + wire("SELECT", "12")},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			conn := newScriptConn(append(tt.replies, "+PONG\r\n")...)
			s, _ := scriptedStore(t, tt.url, redisOptions{}, conn)
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			if want := tt.sent + wire("PING"); conn.sent() != want {
				t.Errorf("sent\n%q\nwant\n%q", conn.sent(), want)
			}
		})
	}
}

func TestRedisAuthRefused(t *testing.T) {
	t.Parallel()
	const password = "hunter2-very-secret"
	tests := []struct{ name, reply string }{
		{"wrong password", "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{"no password configured", "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := newScriptConn(tt.reply)
			s, _ := scriptedStore(t, "redis://alice:"+password+"@127.0.0.1:6379", redisOptions{}, conn)
			err := s.Ping(context.Background())
			var re redisError
			if !errors.As(err, &re) {
				t.Fatalf("Ping: %v; want a redisError", err)
			}
			if !strings.Contains(err.Error(), "AUTH") {
				t.Errorf("error %q does not name AUTH", err)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains the password", err)
			}
			if !conn.isClosed() {
				t.Error("connection that failed AUTH left open")
			}
		})
	}
}

func TestRedisServerErrorKeepsConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const wrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"
	conn := newScriptConn("-"+wrongType+"\r\n", "$1\r\nv\r\n")
	s, dials := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{}, conn)
	_, _, err := s.Get(ctx, "k")
	var re redisError
	if !errors.As(err, &re) || string(re) != wrongType {
		t.Fatalf("Get: %v; want redisError %q", err, wrongType)
	}
	if errors.Is(err, errProtocol) {
		t.Error("a server error reply counted as a protocol error")
	}
	if v, ok, err := s.Get(ctx, "k"); err != nil || !ok || v != "v" {
		t.Fatalf("second Get = %q, %v, %v", v, ok, err)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials; want the connection kept after an error reply", n)
	}
}

func TestRedisUnexpectedReplies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	get := func(s *redisStore) error { _, _, err := s.Get(ctx, "k"); return err }
	set := func(s *redisStore) error { return s.Set(ctx, "k", "v", time.Second) }
	setnx := func(s *redisStore) error { _, err := s.SetNX(ctx, "k", "v", time.Second); return err }
	incr := func(s *redisStore) error { _, _, err := s.Incr(ctx, "k", time.Second); return err }
	del := func(s *redisStore) error { _, err := s.Del(ctx, "k"); return err }
	ping := func(s *redisStore) error { return s.Ping(ctx) }
	tests := []struct {
		name  string
		call  func(*redisStore) error
		reply string
	}{
		{"get integer", get, ":1\r\n"},
		{"get status", get, "+OK\r\n"},
		{"get array", get, "*1\r\n$1\r\nv\r\n"},
		{"set null", set, "$-1\r\n"},
		{"set other status", set, "+QUEUED\r\n"},
		{"setnx integer", setnx, ":1\r\n"},
		{"setnx bulk OK", setnx, "$2\r\nOK\r\n"},
		{"incr null array", incr, "*-1\r\n"},
		{"incr one element", incr, "*1\r\n:1\r\n"},
		{"incr three elements", incr, "*3\r\n:1\r\n:1\r\n:1\r\n"},
		{"incr bulk count", incr, "*2\r\n$1\r\n1\r\n:1000\r\n"},
		{"incr zero count", incr, "*2\r\n:0\r\n:1000\r\n"},
		{"incr no expiry", incr, "*2\r\n:1\r\n:-1\r\n"},
		{"incr integer", incr, ":1\r\n"},
		{"del two", del, ":2\r\n"},
		{"del negative", del, ":-1\r\n"},
		{"del bulk", del, "$1\r\n1\r\n"},
		{"ping OK", ping, "+OK\r\n"},
		{"ping bulk", ping, "$4\r\nPONG\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first := newScriptConn(tt.reply)
			second := newScriptConn("+PONG\r\n")
			s, dials := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{}, first, second)
			if err := tt.call(s); !errors.Is(err, errProtocol) {
				t.Fatalf("err = %v; want errProtocol", err)
			}
			if !first.isClosed() {
				t.Error("connection with an unexpected reply left open")
			}
			if err := s.Ping(ctx); err != nil || dials.Load() != 2 {
				t.Fatalf("Ping after = %v with %d dials; want a new connection", err, dials.Load())
			}
		})
	}
}

// readReplyFrom reads one reply from raw, as a connection would.
func readReplyFrom(raw string) (any, error) {
	c := &respConn{br: bufio.NewReaderSize(strings.NewReader(raw), maxLineLen)}
	return c.readReply()
}

func TestReadReply(t *testing.T) {
	t.Parallel()
	nested := func(depth int) (string, any) {
		raw, want := ":1\r\n", any(int64(1))
		for range depth {
			raw, want = "*1\r\n"+raw, []any{want}
		}
		return raw, want
	}
	deep4, deep4Want := nested(4)
	big := strings.Repeat("x", maxBulkLen)
	tests := []struct {
		raw  string
		want any
	}{
		{"+OK\r\n", "OK"},
		{"+\r\n", ""},
		{"-ERR unknown command\r\n", redisError("ERR unknown command")},
		{":0\r\n", int64(0)},
		{":-42\r\n", int64(-42)},
		{":9223372036854775807\r\n", int64(9223372036854775807)},
		{":-9223372036854775808\r\n", int64(-9223372036854775808)},
		{"$0\r\n\r\n", []byte{}},
		{"$-1\r\n", nil},
		{"$7\r\na\r\nb\x00\xff\r\r\n", []byte("a\r\nb\x00\xff\r")},
		{"$" + fmt.Sprint(maxBulkLen) + "\r\n" + big + "\r\n", []byte(big)},
		{"*-1\r\n", nil},
		{"*0\r\n", []any{}},
		{"*3\r\n:1\r\n$-1\r\n-ERR inner\r\n", []any{int64(1), nil, redisError("ERR inner")}},
		{deep4, deep4Want},
	}
	for _, tt := range tests {
		name := tt.raw
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := readReplyFrom(tt.raw)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v; want %#v", got, tt.want)
			}
		})
	}
}

func TestReadReplyMalformed(t *testing.T) {
	t.Parallel()
	deep5 := strings.Repeat("*1\r\n", 5) + ":1\r\n"
	tests := []struct {
		name, raw, msg string
	}{
		{"missing CR", "+OK\n", "does not end in CRLF"},
		{"bare LF inside a status", "+O\nK\r\n", "does not end in CRLF"},
		{"CR inside a status", "+O\rK\r\n", "CR inside a line"},
		{"empty line", "\r\n", "empty line"},
		{"unknown type byte", "?1\r\n", "unknown reply type"},
		{"RESP3 null", "_\r\n", "unknown reply type"},
		{"RESP3 map", "%1\r\n+a\r\n+b\r\n", "unknown reply type"},
		{"line too long", "+" + strings.Repeat("a", maxLineLen) + "\r\n", "line longer than"},
		{"integer empty", ":\r\n", "malformed integer"},
		{"integer plus sign", ":+1\r\n", "malformed integer"},
		{"integer space", ": 1\r\n", "malformed integer"},
		{"integer minus only", ":-\r\n", "malformed integer"},
		{"integer letters", ":12a\r\n", "malformed integer"},
		{"integer too long", ":12345678901234567890\r\n", "malformed integer"},
		{"integer overflow", ":9223372036854775808\r\n", "integer out of range"},
		{"huge bulk", "$999999999999\r\n", "bulk string longer than"},
		{"bulk one over the cap", fmt.Sprintf("$%d\r\n", maxBulkLen+1), "bulk string longer than"},
		{"bulk -2", "$-2\r\n", "negative bulk string length"},
		{"bulk -10", "$-10\r\n", "negative bulk string length"},
		{"bulk no length", "$\r\n", "bulk string without a length"},
		{"bulk length letters", "$abc\r\n", "malformed bulk string length"},
		{"bulk length plus", "$+3\r\nabc\r\n", "malformed bulk string length"},
		{"bulk length leading zero", "$03\r\nabc\r\n", "malformed bulk string length"},
		{"bulk length space", "$3 \r\nabc\r\n", "malformed bulk string length"},
		{"bulk without CRLF", "$3\r\nabcde\r\n", "bulk string not followed by CRLF"},
		{"bulk with LF only", "$3\r\nabc\n", "truncated bulk string"},
		{"truncated mid-bulk", "$10\r\nabc", "truncated bulk string"},
		{"truncated after bulk payload", "$3\r\nabc", "truncated bulk string"},
		{"truncated mid-line", "+OK", "truncated reply"},
		{"truncated mid-array", "*2\r\n:1\r\n", "truncated reply"},
		{"huge array", "*99999999999\r\n", "array longer than"},
		{"array one over the cap", fmt.Sprintf("*%d\r\n", maxArrayLen+1), "array longer than"},
		{"array -2", "*-2\r\n", "negative array length"},
		{"array length letters", "*x\r\n", "malformed array length"},
		{"nesting too deep", deep5, "nested deeper than"},
		{"bad element", "*2\r\n:1\r\n?\r\n", "unknown reply type"},
		{"reply over the budget", "*3\r\n" + strings.Repeat(fmt.Sprintf("$%d\r\n%s\r\n", maxBulkLen, strings.Repeat("x", maxBulkLen)), 3), "reply larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := readReplyFrom(tt.raw)
			if !errors.Is(err, errProtocol) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v; want errProtocol with %q", err, tt.msg)
			}
			// The same reply through a connection breaks it, and it stays broken.
			conn := newScriptConn(tt.raw)
			conn.eof = true
			c := newRespConn(conn)
			if _, err := c.do(context.Background(), time.Minute, "PING"); !errors.Is(err, errProtocol) {
				t.Fatalf("do: %v; want errProtocol", err)
			}
			if _, err := c.do(context.Background(), time.Minute, "PING"); !errors.Is(err, errProtocol) {
				t.Fatalf("do on the broken connection: %v; want the same error", err)
			}
			if n := strings.Count(conn.sent(), "PING"); n != 1 {
				t.Errorf("%d commands sent; want none after the connection broke", n)
			}
		})
	}
}

func TestReadReplyCleanEOF(t *testing.T) {
	t.Parallel()
	// A server that closes between replies is an I/O error, not a malformed reply.
	if _, err := readReplyFrom(""); err != io.EOF {
		t.Fatalf("err = %v; want io.EOF", err)
	}
}

func TestReadReplyHugeLengthReadsNothingMore(t *testing.T) {
	t.Parallel()
	// The bulk length is refused from its line: the client does not wait for a terabyte.
	conn := newScriptConn("$999999999999\r\n") // and then nothing: a read would block
	c := newRespConn(conn)
	if _, err := c.do(context.Background(), time.Hour, "GET", "k"); !errors.Is(err, errProtocol) {
		t.Fatalf("err = %v; want errProtocol", err)
	}
}

func TestRedisIdleConnectionClosedByServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name  string
		first *scriptConn
	}{
		{"hung up while idle", &scriptConn{replies: []string{"+PONG\r\n"}, eof: true, changed: make(chan struct{})}},
		{"sent data while idle", newScriptConn("+PONG\r\n+OK\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dials := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{}, tt.first, newScriptConn("+PONG\r\n"))
			for i := range 2 {
				if err := s.Ping(ctx); err != nil {
					t.Fatalf("Ping %d: %v", i, err)
				}
			}
			if n := dials.Load(); n != 2 {
				t.Errorf("%d dials; want the spoilt idle connection replaced", n)
			}
			if !tt.first.isClosed() {
				t.Error("spoilt connection left open")
			}
		})
	}
}

func TestRedisConnectionClosedAtReuse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The server closes the idle connection just as the next command goes out: the watch saw
	// nothing, so that command fails. It is not retried (the server may have run it), and the
	// next command dials again.
	first := newScriptConn("+PONG\r\n")
	first.hangUp = 2
	s, dials := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{}, first, newScriptConn("+OK\r\n"))
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetNX(ctx, "k", "v", time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("SetNX on the closing connection: %v; want EOF", err)
	}
	if set, err := s.SetNX(ctx, "k", "v", time.Second); err != nil || !set {
		t.Fatalf("SetNX after = %v, %v", set, err)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials; want 2", n)
	}
	if sent := first.sent(); strings.Count(sent, "SET") != 1 {
		t.Errorf("the failed command was sent again on the old connection: %q", sent)
	}
}

func TestRedisIdleConnectionReused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := newScriptConn("+PONG\r\n", "+PONG\r\n", "+PONG\r\n", "+PONG\r\n", "+PONG\r\n")
	s, dials := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{}, conn)
	for i := range 5 {
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping %d: %v", i, err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("%d dials for 5 sequential commands; want 1", n)
	}
}

func TestRedisCommandDeadline(t *testing.T) {
	t.Parallel()
	t.Run("command timeout", func(t *testing.T) {
		t.Parallel()
		conn := newScriptConn() // a server that never answers
		s, _ := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{CommandTimeout: 20 * time.Millisecond}, conn)
		before := time.Now()
		err := s.Ping(context.Background())
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Ping: %v; want a deadline error", err)
		}
		if dl := conn.deadlines[0]; dl.Before(before.Add(20 * time.Millisecond)) {
			t.Errorf("deadline %v is earlier than the command timeout allows", dl)
		}
		if !conn.isClosed() {
			t.Error("timed-out connection left open")
		}
	})
	t.Run("a sooner context deadline wins", func(t *testing.T) {
		t.Parallel()
		conn := newScriptConn("+PONG\r\n")
		s, _ := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{CommandTimeout: time.Hour}, conn)
		ctxDeadline := time.Now().Add(time.Minute)
		ctx, cancel := context.WithDeadline(context.Background(), ctxDeadline)
		defer cancel()
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if got := conn.deadlines[0]; !got.Equal(ctxDeadline) {
			t.Errorf("deadline %v; want the context's %v", got, ctxDeadline)
		}
	})
	t.Run("cancel interrupts a command", func(t *testing.T) {
		t.Parallel()
		conn := newScriptConn()
		s, _ := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{CommandTimeout: time.Hour}, conn)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for !strings.Contains(conn.sent(), "PING") {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		if err := s.Ping(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Ping: %v; want context.Canceled", err)
		}
		if !conn.isClosed() {
			t.Error("interrupted connection left open")
		}
	})
}

// TestRedisStalledServer runs against a real listener that accepts and never answers.
func TestRedisStalledServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	s, err := newRedisStore("redis://"+ln.Addr().String(), redisOptions{CommandTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Ping: %v; want a deadline error", err)
	}
	// A stalled TLS handshake is bounded by the dial timeout.
	s2, err := newRedisStore("rediss://"+ln.Addr().String(), redisOptions{DialTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Ping(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping over TLS: %v; want a deadline error", err)
	}
}

func TestRedisPoolBound(t *testing.T) {
	t.Parallel()
	conns := []*scriptConn{newScriptConn(), newScriptConn()} // both stall
	s, dials := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{PoolSize: 2, CommandTimeout: time.Hour}, conns...)
	busy, cancelBusy := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { s.Ping(busy) })
	}
	for !strings.Contains(conns[0].sent(), "PING") || !strings.Contains(conns[1].sent(), "PING") {
		time.Sleep(time.Millisecond)
	}
	// Both connections are busy: a third caller waits for one, and gives up with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("third Ping: %v; want to wait for a free connection until the deadline", err)
	}
	cancelBusy()
	wg.Wait()
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials; want at most the pool size", n)
	}
}

func TestRedisPoolWaitBounded(t *testing.T) {
	t.Parallel()
	s, dials := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{PoolSize: 2, CommandTimeout: 20 * time.Millisecond})
	s.pool.slots <- struct{}{} // two commands in progress elsewhere
	s.pool.slots <- struct{}{}
	// No context deadline: the wait for a free connection is bounded by CommandTimeout.
	err := s.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no free connection") {
		t.Fatalf("Ping: %v; want no free connection", err)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d dials beyond the pool size", n)
	}
}

func TestRedisIOErrorsBreakConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		conn *scriptConn
		want error
		opts redisOptions
	}{
		{"write fails", &scriptConn{failWrite: true, changed: make(chan struct{})}, syscall.ECONNRESET, redisOptions{}},
		{"stalls mid-bulk", newScriptConn("$10\r\nabc"), os.ErrDeadlineExceeded, redisOptions{CommandTimeout: 20 * time.Millisecond}},
		{"stalls mid-line", newScriptConn("+PON"), os.ErrDeadlineExceeded, redisOptions{CommandTimeout: 20 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dials := scriptedStore(t, "redis://127.0.0.1:6379", tt.opts, tt.conn, newScriptConn("$1\r\nv\r\n"))
			if _, _, err := s.Get(ctx, "k"); !errors.Is(err, tt.want) || errors.Is(err, errProtocol) {
				t.Fatalf("Get: %v; want %v", err, tt.want)
			}
			if !tt.conn.isClosed() {
				t.Error("connection left open after an I/O error")
			}
			if v, _, err := s.Get(ctx, "k"); err != nil || v != "v" || dials.Load() != 2 {
				t.Fatalf("Get after = %q, %v with %d dials; want a new connection", v, err, dials.Load())
			}
		})
	}
}

func TestRedisCanceledBeforeSending(t *testing.T) {
	t.Parallel()
	conn := newScriptConn("+PONG\r\n", "+PONG\r\n")
	s, dials := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{}, conn)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping: %v; want context.Canceled", err)
	}
	// Nothing was sent, so the connection is still in step and kept.
	if err := s.Ping(context.Background()); err != nil || dials.Load() != 1 {
		t.Fatalf("Ping after = %v with %d dials; want the same connection", err, dials.Load())
	}
	if n := strings.Count(conn.sent(), "PING"); n != 2 {
		t.Errorf("%d PINGs sent; want 2", n)
	}
}

func TestRedisDialFailure(t *testing.T) {
	t.Parallel()
	s, _ := scriptedStore(t, "redis://:topsecret@127.0.0.1:6379", redisOptions{})
	err := s.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "redis PING: dial") || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("Ping: %v; want a dial error without the password", err)
	}
}

func TestRedisClosed(t *testing.T) {
	t.Parallel()
	conn := newScriptConn("+PONG\r\n")
	s, _ := scriptedStore(t, "redis://127.0.0.1:6379", redisOptions{}, conn)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !conn.isClosed() {
		t.Error("idle connection left open by Close")
	}
	checkAll(t, s, errStoreClosed)
}

func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	valid := []struct {
		url  string
		want redisConfig
	}{
		{"redis://localhost:6379", redisConfig{addr: "localhost:6379", host: "localhost"}},
		{"redis://localhost", redisConfig{addr: "localhost:6379", host: "localhost"}},
		{"redis://localhost:6380/", redisConfig{addr: "localhost:6380", host: "localhost"}},
		{"redis://localhost:6379/0", redisConfig{addr: "localhost:6379", host: "localhost"}},
		{"redis://localhost:6379/15", redisConfig{addr: "localhost:6379", host: "localhost", db: 15}},
		{"redis://localhost:6379/9999", redisConfig{addr: "localhost:6379", host: "localhost", db: 9999}},
		{"REDIS://localhost:6379", redisConfig{addr: "localhost:6379", host: "localhost"}},
		{"rediss://cache.example.com:6380", redisConfig{addr: "cache.example.com:6380", host: "cache.example.com", useTLS: true}},
		{"redis://[::1]:6379", redisConfig{addr: "[::1]:6379", host: "::1"}},
		{"redis://:pw@localhost:6379", redisConfig{addr: "localhost:6379", host: "localhost", password: "pw"}},
		{"redis://user:pw@localhost:6379/2", redisConfig{addr: "localhost:6379", host: "localhost", username: "user", password: "pw", db: 2}},
		{"redis://user:p%40ss%2F%3Aword@localhost:6379", redisConfig{addr: "localhost:6379", host: "localhost", username: "user", password: "p@ss/:word"}},
	}
	for _, tt := range valid {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			got, err := parseRedisURL(tt.url)
			if err != nil || got != tt.want {
				t.Fatalf("= %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseRedisURLRejects(t *testing.T) {
	t.Parallel()
	// Each case is one change to the valid redis://user:Pa55w0rd-xyz@localhost:6379/2.
	const password = "Pa55w0rd-xyz"
	invalid := []string{
		"",
		"http://user:Pa55w0rd-xyz@localhost:6379/2",
		"unix://user:Pa55w0rd-xyz@localhost:6379/2",
		"redis:user:Pa55w0rd-xyz@localhost:6379/2",
		"redis:/user:Pa55w0rd-xyz@localhost:6379/2",
		"user:Pa55w0rd-xyz@localhost:6379/2",
		"redis://user:Pa55w0rd-xyz@:6379/2",
		"redis://user:Pa55w0rd-xyz@localhost:/2",
		"redis://user:Pa55w0rd-xyz@localhost:0/2",
		"redis://user:Pa55w0rd-xyz@localhost:65536/2",
		"redis://user:Pa55w0rd-xyz@localhost:63x9/2",
		"redis://user:Pa55w0rd-xyz@localhost:-6379/2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/-2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/02",
		"redis://user:Pa55w0rd-xyz@localhost:6379/10000",
		"redis://user:Pa55w0rd-xyz@localhost:6379/two",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2/",
		"redis://user:Pa55w0rd-xyz@localhost:6379//2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/ 2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2?db=3",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2?",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2?protocol=3",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2#frag",
		"redis://user@localhost:6379/2",
		"redis://user:@localhost:6379/2",
		"redis://user:Pa55w0rd-xyz%zz@localhost:6379/2",
		"redis://user:Pa55w0rd-xyz@local host:6379/2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2\n",
		"redis://user:Pa55w0rd-xyz@localhost:6379/Pa55w0rd-xyz",
		" redis://user:Pa55w0rd-xyz@localhost:6379/2",
	}
	for _, raw := range invalid {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			_, err := parseRedisURL(raw)
			if !errors.Is(err, errBadRedisURL) {
				t.Fatalf("err = %v; want errBadRedisURL", err)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains the password", err)
			}
			if _, err := newRedisStore(raw, redisOptions{}); err == nil {
				t.Error("newRedisStore accepted it")
			}
			if got := redactedURL(raw); strings.Contains(got, password) {
				t.Errorf("redactedURL = %q", got)
			}
		})
	}
}

func TestRedactedURL(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"redis://user:s3cret@localhost:6379/2": "redis://user:xxxxx@localhost:6379/2",
		"rediss://:s3cret@cache:6380":          "rediss://:xxxxx@cache:6380",
		"redis://localhost:6379":               "redis://localhost:6379",
		"redis://s3cret@localhost:6379":        "(invalid redis URL)",
		"http://user:s3cret@localhost":         "(invalid redis URL)",
	}
	for in, want := range tests {
		if got := redactedURL(in); got != want {
			t.Errorf("redactedURL(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestNewRedisStoreOptions(t *testing.T) {
	t.Parallel()
	s, err := newRedisStore("redis://localhost", redisOptions{TLSConfig: &tls.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	p := s.pool
	if p.dialTimeout != defaultRedisDialTimeout || p.commandTimeout != defaultRedisCommandTimeout || cap(p.slots) != defaultRedisPoolSize {
		t.Errorf("defaults: dial %v, command %v, pool %d", p.dialTimeout, p.commandTimeout, cap(p.slots))
	}
	if p.tlsConfig != nil {
		t.Error("redis:// uses TLS")
	}

	base := &tls.Config{MinVersion: tls.VersionTLS10}
	s, err = newRedisStore("rediss://cache.example.com:6380", redisOptions{TLSConfig: base, DialTimeout: time.Second, CommandTimeout: 3 * time.Second, PoolSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	p = s.pool
	if p.tlsConfig == nil || p.tlsConfig.ServerName != "cache.example.com" || p.tlsConfig.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS config: %+v; want ServerName from the URL and TLS 1.2 at least", p.tlsConfig)
	}
	if base.ServerName != "" || base.MinVersion != tls.VersionTLS10 {
		t.Error("the caller's TLS config was changed")
	}
	if p.dialTimeout != time.Second || p.commandTimeout != 3*time.Second || cap(p.slots) != 3 {
		t.Errorf("options: dial %v, command %v, pool %d", p.dialTimeout, p.commandTimeout, cap(p.slots))
	}

	s, _ = newRedisStore("rediss://cache.example.com", redisOptions{TLSConfig: &tls.Config{ServerName: "other.example", MinVersion: tls.VersionTLS13}})
	if c := s.pool.tlsConfig; c.ServerName != "other.example" || c.MinVersion != tls.VersionTLS13 {
		t.Errorf("explicit TLS settings not kept: %q %x", c.ServerName, c.MinVersion)
	}

	for _, opts := range []redisOptions{{DialTimeout: -1}, {CommandTimeout: -1}, {PoolSize: -1}} {
		if _, err := newRedisStore("redis://localhost", opts); err == nil {
			t.Errorf("%+v accepted", opts)
		}
	}
}

// encodeReply writes v, a value readReply returns, back in RESP2.
func encodeReply(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("$-1\r\n")
	case string:
		b.WriteString("+" + v + "\r\n")
	case redisError:
		b.WriteString("-" + string(v) + "\r\n")
	case int64:
		fmt.Fprintf(b, ":%d\r\n", v)
	case []byte:
		fmt.Fprintf(b, "$%d\r\n%s\r\n", len(v), v)
	case []any:
		fmt.Fprintf(b, "*%d\r\n", len(v))
		for _, e := range v {
			encodeReply(b, e)
		}
	default:
		panic(fmt.Sprintf("readReply returned a %T", v))
	}
}

// replyCost is what v holds, counted as readReply's budget counts it (at least).
func replyCost(v any, depth int) (cost, maxDepth int) {
	switch v := v.(type) {
	case []byte:
		return len(v), depth
	case string:
		return len(v), depth
	case redisError:
		return len(v), depth
	case []any:
		cost, maxDepth = len(v)*arraySlotCost, depth+1
		for _, e := range v {
			c, d := replyCost(e, depth+1)
			cost += c
			maxDepth = max(maxDepth, d)
		}
	}
	return cost, maxDepth
}

func FuzzReadReply(f *testing.F) {
	seeds := []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", ":-9223372036854775808\r\n", "$5\r\nhello\r\n",
		"$0\r\n\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n", "*2\r\n:1\r\n:60000\r\n",
		"*2\r\n*1\r\n+a\r\n$-1\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
		"+OK\n", "\r\n", "$999999999999\r\n", "$-2\r\n", "$3\r\nab", "?\r\n", "*1024\r\n", "$1048576\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &respConn{br: bufio.NewReaderSize(bytes.NewReader(data), maxLineLen)}
		v, err := c.readReply()
		if err != nil {
			if v != nil {
				t.Fatalf("value %#v with error %v", v, err)
			}
			if !errors.Is(err, errProtocol) && err != io.EOF {
				t.Fatalf("error %v is neither a protocol error nor a clean EOF", err)
			}
			return
		}
		if cost, depth := replyCost(v, 0); cost > maxReplyBytes || depth > maxNesting {
			t.Fatalf("reply holds %d bytes at depth %d; caps %d and %d", cost, depth, maxReplyBytes, maxNesting)
		}
		// What was read, written back, reads back the same.
		var b bytes.Buffer
		encodeReply(&b, v)
		again, err := readReplyFrom(b.String())
		if err != nil || !reflect.DeepEqual(normalise(again), normalise(v)) {
			t.Fatalf("re-read of %q = %#v, %v; want %#v", b.Bytes(), again, err, v)
		}
	})
}

// normalise maps a null array to a null bulk string, which encodeReply cannot tell apart.
func normalise(v any) any {
	if a, ok := v.([]any); ok {
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = normalise(e)
		}
		return out
	}
	return v
}

func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{
		"redis://localhost:6379", "rediss://user:pw@cache:6380/3", "redis://:pw@[::1]:6379/0",
		"redis://host:6379/2?x=1", "redis://u@h", "redis:h:1", "redis://h:99999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, err := parseRedisURL(raw)
		if err != nil {
			if !errors.Is(err, errBadRedisURL) {
				t.Fatalf("error %v is not errBadRedisURL", err)
			}
			if len(raw) >= 8 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error %q quotes the input", err)
			}
			return
		}
		if cfg.addr == "" || cfg.host == "" || cfg.db < 0 || cfg.db > maxRedisDB {
			t.Fatalf("accepted %q as %+v", raw, cfg)
		}
		if cfg.username != "" && cfg.password == "" {
			t.Fatalf("accepted a user without a password: %q", raw)
		}
		if cfg.password != "" {
			r := redactedURL(raw)
			u, err := url.Parse(r)
			if err != nil {
				t.Fatalf("redactedURL(%q) = %q does not parse: %v", raw, r, err)
			}
			if p, _ := u.User.Password(); p != "xxxxx" {
				t.Fatalf("redactedURL(%q) = %q keeps the password", raw, r)
			}
		}
	})
}
