package main

// Tests of redisStore: against real redis-servers (redisserver_test.go) for what Redis does, and against scripted
// TCP peers (fakeRedisPeer) for every byte a real server would never send.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// storeCallBound is how long a store call may take against a peer that misbehaves: the command timeout and a wide
// margin. It tells a missing deadline (a hang) from a working one; it is not a performance assertion.
const storeCallBound = redisCommandTimeout + time.Second

// newTestRedisStore returns a store for rawURL, closed when the test ends.
func newTestRedisStore(t testing.TB, rawURL string) *redisStore {
	t.Helper()
	s, err := newRedisStore(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// redisURLWith builds a URL with a password of any bytes, escaped as a URL needs.
func redisURLWith(user, password, addr, path string) string {
	return (&url.URL{Scheme: "redis", User: url.UserPassword(user, password), Host: addr, Path: path}).String()
}

// liveConn returns the store's connection, dead or alive, or nil before the first command.
func liveConn(s *redisStore) *redisConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// waitConnDead waits for c to end (the reader saw the close, or an error), failing the test if it never does.
func waitConnDead(t *testing.T, c *redisConn) {
	t.Helper()
	select {
	case <-c.dead:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection is still open 10 s after it should have ended")
	}
}

// returnsWithin runs call and fails the test if it has not returned within bound: a hang detector, with bound far
// above the deadline that should end the call.
func returnsWithin(t *testing.T, bound time.Duration, what string, call func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return err
	case <-time.After(bound):
		t.Fatalf("%s: no answer within %v", what, bound)
		return nil
	}
}

// storeCalls are one call of every kind dashauth makes.
var storeCalls = []struct {
	name string
	call func(ctx context.Context, st store) error
}{
	{"Get", func(ctx context.Context, st store) error { _, _, err := st.Get(ctx, "k"); return err }},
	{"Put if absent", func(ctx context.Context, st store) error {
		_, err := st.Put(ctx, "k", "", "v", time.Minute)
		return err
	}},
	{"Put any", func(ctx context.Context, st store) error {
		_, err := st.Put(ctx, "k", anyValue, "v", time.Minute)
		return err
	}},
	{"delete", func(ctx context.Context, st store) error { _, err := st.Put(ctx, "k", anyValue, "", 0); return err }},
	{"compare and set", func(ctx context.Context, st store) error {
		_, err := st.Put(ctx, "k", "v", "w", time.Minute)
		return err
	}},
	{"compare and delete", func(ctx context.Context, st store) error { _, err := st.Put(ctx, "k", "v", "", 0); return err }},
	{"Ping", func(ctx context.Context, st store) error { return st.Ping(ctx) }},
	{"admit", func(ctx context.Context, st store) error {
		_, _, err := admit(ctx, st, time.Now(), "rl", 5, time.Minute)
		return err
	}},
}

// redisAdmin is a connection to a test server beside the store under test, with its own minimal RESP reader (arrays
// included), so that what it sees does not depend on the code under test.
type redisAdmin struct {
	nc net.Conn
	br *bufio.Reader
}

// adminError is an error reply to the admin.
type adminError string

func newRedisAdmin(t testing.TB, addr string, auth ...string) *redisAdmin {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	a := &redisAdmin{nc: nc, br: bufio.NewReader(nc)}
	if len(auth) > 0 {
		a.do(t, append([]string{"AUTH"}, auth...)...)
	}
	return a
}

// do runs one command and returns its reply: string, int64, []byte, nil or []any. An error reply or I/O error fails
// the test.
func (a *redisAdmin) do(t testing.TB, args ...string) any {
	t.Helper()
	a.nc.SetDeadline(time.Now().Add(10 * time.Second))
	bw := bufio.NewWriter(a.nc)
	writeCommand(bw, args)
	v, err := any(nil), bw.Flush()
	if err == nil {
		v, err = a.read()
	}
	if err != nil {
		t.Fatalf("admin %s: %v", args[0], err)
	}
	if e, ok := v.(adminError); ok {
		t.Fatalf("admin %s: %s", args[0], string(e))
	}
	return v
}

func (a *redisAdmin) read() (any, error) {
	line, err := a.br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("admin: bad line %q", line)
	}
	p := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		return p, nil
	case '-':
		return adminError(p), nil
	case ':':
		return strconv.ParseInt(p, 10, 64)
	case '$', '*':
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, err
		}
		if line[0] == '$' {
			b := make([]byte, n+2)
			_, err := io.ReadFull(a.br, b)
			return b[:n], err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = a.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("admin: unknown reply %q", line)
}

// pttl is how long key has to live; false if there is no such key.
func (a *redisAdmin) pttl(t testing.TB, key string) (time.Duration, bool) {
	t.Helper()
	ms, _ := a.do(t, "PTTL", key).(int64)
	return time.Duration(ms) * time.Millisecond, ms != -2
}

// info returns one field of INFO section.
func (a *redisAdmin) info(t testing.TB, section, field string) string {
	t.Helper()
	b, _ := a.do(t, "INFO", section).([]byte)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO %s has no %s:\n%s", section, field, b)
	return ""
}

func (a *redisAdmin) get(t testing.TB, key string) string {
	t.Helper()
	b, _ := a.do(t, "GET", key).([]byte)
	return string(b)
}

func TestRedisStoreContract(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	a := newRedisAdmin(t, r.Addr())
	su := storeUnderTest{
		st:    newTestRedisStore(t, r.URL()),
		clock: newTestClock(),
		left: func(t *testing.T, key string) (time.Duration, bool) {
			return a.pttl(t, key)
		},
	}
	testStoreContract(t, su, "contract:")
}

// fakeRedisPeer is a TCP server that reads RESP commands and answers each as its script says: a Redis that
// misbehaves, or one whose every byte a test decides.
type fakeRedisPeer struct {
	t    testing.TB
	ln   net.Listener
	addr string
	wg   sync.WaitGroup

	mu       sync.Mutex
	answer   peerAnswer
	greeting string        // written on connecting, before any command
	trickle  time.Duration // between the bytes of a reply
	conns    int           // connections accepted
	closed   int           // connections the client closed
	commands [][]string
	open     map[net.Conn]bool
}

// peerAnswer is the reply to a command on connection number conn (from 1); "" sends nothing. hangUp closes the
// connection after the reply.
type peerAnswer func(conn int, args []string) (reply string, hangUp bool)

func startFakeRedisPeer(t testing.TB, answer peerAnswer) *fakeRedisPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeRedisPeer{t: t, ln: ln, addr: ln.Addr().String(), answer: answer, open: make(map[net.Conn]bool)}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *fakeRedisPeer) URL() string { return "redis://" + p.addr }

func (p *fakeRedisPeer) set(answer peerAnswer) {
	p.mu.Lock()
	p.answer, p.greeting, p.trickle = answer, "", 0
	p.mu.Unlock()
}

func (p *fakeRedisPeer) counts() (conns, closed, commands int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, p.closed, len(p.commands)
}

func (p *fakeRedisPeer) received() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]string(nil), p.commands...)
}

// waitCommands waits until the peer has read n commands in all.
func (p *fakeRedisPeer) waitCommands(t *testing.T, n int) {
	t.Helper()
	pollFor(t, fmt.Sprintf("the peer read %d commands", n), func() bool { _, _, got := p.counts(); return got >= n })
}

func (p *fakeRedisPeer) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		n, greeting := p.conns, p.greeting
		p.open[c] = true
		p.mu.Unlock()
		p.wg.Go(func() {
			defer c.Close()
			p.write(c, greeting)
			br := bufio.NewReader(c)
			for {
				args, err := readPeerCommand(br)
				if err != nil {
					p.mu.Lock()
					if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
						p.closed++
					} else if !errors.Is(err, net.ErrClosed) {
						p.t.Errorf("fake redis: %v", err)
					}
					p.mu.Unlock()
					return
				}
				p.mu.Lock()
				p.commands = append(p.commands, args)
				answer := p.answer
				p.mu.Unlock()
				reply, hangUp := answer(n, args)
				if !p.write(c, reply) || hangUp {
					return
				}
			}
		})
	}
}

func (p *fakeRedisPeer) write(c net.Conn, reply string) bool {
	p.mu.Lock()
	trickle := p.trickle
	p.mu.Unlock()
	if trickle == 0 {
		_, err := io.WriteString(c, reply)
		return err == nil
	}
	for i := range len(reply) {
		time.Sleep(trickle)
		if _, err := io.WriteString(c, reply[i:i+1]); err != nil {
			return false
		}
	}
	return true
}

// readPeerCommand reads one command as Redis does, strictly: an array of bulk strings in canonical RESP.
func readPeerCommand(br *bufio.Reader) ([]string, error) {
	n, err := readPeerLength(br, '*')
	if err != nil {
		return nil, err
	}
	args := make([]string, n)
	for i := range args {
		size, err := readPeerLength(br, '$')
		if err != nil {
			return nil, err
		}
		b := make([]byte, size+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		if !bytes.HasSuffix(b, []byte("\r\n")) {
			return nil, fmt.Errorf("argument %d not followed by CRLF: %q", i, b)
		}
		args[i] = string(b[:size])
	}
	return args, nil
}

func readPeerLength(br *bufio.Reader, typ byte) (int, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 4 || line[0] != typ || !strings.HasSuffix(line, "\r\n") {
		return 0, fmt.Errorf("want a %c line, got %q", typ, line)
	}
	n, err := strconv.Atoi(line[1 : len(line)-2])
	if err != nil || n < 0 || n > 1<<20 || strconv.Itoa(n) != line[1:len(line)-2] {
		return 0, fmt.Errorf("bad length in %q", line)
	}
	return n, nil
}

// replyAlways answers every command with reply.
func replyAlways(reply string) peerAnswer {
	return func(int, []string) (string, bool) { return reply, false }
}

// hangUpAfter writes reply, then closes the connection.
func hangUpAfter(reply string) peerAnswer {
	return func(int, []string) (string, bool) { return reply, true }
}

// redisLike answers as a Redis with no keys would: enough for a store to work.
func redisLike(_ int, args []string) (string, bool) {
	switch strings.ToUpper(args[0]) {
	case "PING":
		return "+PONG\r\n", false
	case "GET":
		return "$-1\r\n", false
	case "AUTH", "SELECT", "SET":
		return "+OK\r\n", false
	case "DEL", "EVAL":
		return ":1\r\n", false
	}
	return "-ERR unknown command\r\n", false
}

// TestRedisWire checks each call's command, byte for byte as the peer reads it strictly, and what each reply means.
func TestRedisWire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	get := func(s *redisStore) (any, error) {
		v, ok, err := s.Get(ctx, "k")
		return fmt.Sprintf("%q %v", v, ok), err
	}
	put := func(key, old, value string, ttl time.Duration) func(*redisStore) (any, error) {
		return func(s *redisStore) (any, error) { return s.Put(ctx, key, old, value, ttl) }
	}
	odd := "a b\r\n*1\r\n$8\r\nFLUSHALL\r\n"
	for _, tc := range []struct {
		name  string
		call  func(*redisStore) (any, error)
		reply string
		want  []string
		got   any
	}{
		{"get hit", get, "$5\r\nvalue\r\n", []string{"GET", "k"}, `"value" true`},
		{"get of an empty value", get, "$0\r\n\r\n", []string{"GET", "k"}, `"" true`},
		{"get miss", get, "$-1\r\n", []string{"GET", "k"}, `"" false`},
		{"set if absent", put("k", "", "v", time.Minute), "+OK\r\n", []string{"SET", "k", "v", "PX", "60000", "NX"}, true},
		{"set if absent: present", put("k", "", "v", time.Minute), "$-1\r\n", []string{"SET", "k", "v", "PX", "60000", "NX"}, false},
		{"set any", put("k", anyValue, "v", time.Minute), "+OK\r\n", []string{"SET", "k", "v", "PX", "60000"}, true},
		{"ttl under a millisecond rounds up", put("k", anyValue, "v", time.Microsecond), "+OK\r\n", []string{"SET", "k", "v", "PX", "1"}, true},
		{"ttl rounds up", put("k", anyValue, "v", 1500*time.Microsecond), "+OK\r\n", []string{"SET", "k", "v", "PX", "2"}, true},
		{"72h", put("k", anyValue, "done", 72*time.Hour), "+OK\r\n", []string{"SET", "k", "done", "PX", "259200000"}, true},
		{"CRLF stays inside its bulk string", put(odd, anyValue, odd, time.Second), "+OK\r\n", []string{"SET", odd, odd, "PX", "1000"}, true},
		{"delete", put("k", anyValue, "", 0), ":1\r\n", []string{"DEL", "k"}, true},
		{"delete of nothing", put("k", anyValue, "", 0), ":0\r\n", []string{"DEL", "k"}, true},
		{"compare and set", put("k", "old", "new", time.Minute), ":1\r\n", []string{"EVAL", putScript, "1", "k", "old", "new", "60000"}, true},
		{"compare and set: changed", put("k", "old", "new", time.Minute), ":0\r\n", []string{"EVAL", putScript, "1", "k", "old", "new", "60000"}, false},
		{"compare and delete", put("k", "token", "", 0), ":1\r\n", []string{"EVAL", putScript, "1", "k", "token", "", "0"}, true},
		{"ping", func(s *redisStore) (any, error) { return nil, s.Ping(ctx) }, "+PONG\r\n", []string{"PING"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startFakeRedisPeer(t, replyAlways(tc.reply))
			got, err := tc.call(newTestRedisStore(t, p.URL()))
			if err != nil || got != tc.got {
				t.Fatalf("= %#v, %v; want %#v", got, err, tc.got)
			}
			if cmds := p.received(); len(cmds) != 1 || !slices.Equal(cmds[0], tc.want) {
				t.Fatalf("sent %q; want %q", cmds, tc.want)
			}
		})
	}
}

// TestRedisUnexpectedReplies: a reply of the wrong kind for its command is an errProtocol error, not a wrong answer;
// it was still the reply to that command, so the connection stays in step and in use.
func TestRedisUnexpectedReplies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	call := func(name string) func(context.Context, store) error {
		for _, c := range storeCalls {
			if c.name == name {
				return c.call
			}
		}
		panic(name)
	}
	for _, tc := range []struct{ call, reply string }{
		{"Get", ":1\r\n"},
		{"Get", "+OK\r\n"},
		{"Put if absent", "+QUEUED\r\n"},
		{"Put if absent", "$2\r\nOK\r\n"},
		{"Put if absent", ":2\r\n"},
		{"Put any", "+PONG\r\n"},
		{"delete", ":2\r\n"},
		{"delete", "$1\r\n1\r\n"},
		{"compare and set", ":2\r\n"},
		{"compare and set", "$1\r\n1\r\n"},
		{"Ping", "+OK\r\n"},
		{"Ping", "$4\r\nPONG\r\n"},
	} {
		t.Run(tc.call+" "+tc.reply, func(t *testing.T) {
			t.Parallel()
			first := true
			p := startFakeRedisPeer(t, func(_ int, args []string) (string, bool) {
				if first {
					first = false
					return tc.reply, false
				}
				return redisLike(0, args)
			})
			s := newTestRedisStore(t, p.URL())
			err := call(tc.call)(ctx, s)
			if !errors.Is(err, errProtocol) {
				t.Fatalf("err = %v; want errProtocol", err)
			}
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping after: %v", err)
			}
			if conns, _, _ := p.counts(); conns != 1 {
				t.Fatalf("%d connections; want the first kept", conns)
			}
		})
	}
}

// TestRedisHandshake: AUTH and SELECT, as the URL asks, before the first command of each connection.
func TestRedisHandshake(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string // %s is the peer's address
		want [][]string
	}{
		{"redis://%s", nil},
		{"redis://%s/0", nil},
		{"redis://:s3cret@%s", [][]string{{"AUTH", "s3cret"}}},
		{"redis://alice:s3cret@%s", [][]string{{"AUTH", "alice", "s3cret"}}},
		{"redis://%s/3", [][]string{{"SELECT", "3"}}},
		{"redis://alice:p%%40ss%%3Aw%%2Fd@%s/12", [][]string{{"AUTH", "alice", "p@ss:w/d"}, {"SELECT", "12"}}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			p := startFakeRedisPeer(t, redisLike)
			if err := newTestRedisStore(t, fmt.Sprintf(tc.url, p.addr)).Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := append(tc.want, []string{"PING"})
			if got := p.received(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("sent %q; want %q", got, want)
			}
		})
	}
}

// TestRedisHandshakeRefused: a refused or unanswered AUTH fails the command, names AUTH, never shows the password,
// and closes the connection; the next command starts over on a new one.
func TestRedisHandshakeRefused(t *testing.T) {
	t.Parallel()
	const password = "hunter2-very-secret"
	for _, tc := range []struct{ name, reply string }{
		{"wrong password", "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{"no password set", "-ERR AUTH <password> called without any password configured for the default user.\r\n"},
		{"integer", ":1\r\n"},
		{"bulk OK", "$2\r\nOK\r\n"},
		{"malformed", "+OK\n"},
		{"no answer", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startFakeRedisPeer(t, func(_ int, args []string) (string, bool) {
				if args[0] == "AUTH" {
					return tc.reply, false
				}
				return redisLike(0, args)
			})
			s := newTestRedisStore(t, "redis://alice:"+password+"@"+p.addr)
			for i := range 2 {
				err := returnsWithin(t, storeCallBound, "Ping", func() error { return s.Ping(context.Background()) })
				if err == nil || !strings.Contains(err.Error(), "AUTH") || strings.Contains(err.Error(), password) {
					t.Fatalf("Ping %d: %v; want an AUTH error without the password", i, err)
				}
			}
			pollFor(t, "2 connections, both closed by the store after AUTH only", func() bool {
				conns, closed, cmds := p.counts()
				return conns == 2 && closed == 2 && cmds == 2
			})
		})
	}
}

// TestRedisHandshakeBoundByContext: the caller's context bounds AUTH and SELECT too (a /readyz probe waits 800 ms,
// less than the command timeout), and a connection whose handshake was cut short is closed, never used.
func TestRedisHandshakeBoundByContext(t *testing.T) {
	t.Parallel()
	p := startFakeRedisPeer(t, func(_ int, args []string) (string, bool) {
		if args[0] == "AUTH" {
			return "", false // never answered
		}
		return redisLike(0, args)
	})
	s := newTestRedisStore(t, "redis://:pw@"+p.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := returnsWithin(t, storeCallBound, "Ping", func() error { return s.Ping(ctx) })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("Ping: %v; want AUTH cut short by the context's deadline", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Ping(ctx) }()
	p.waitCommands(t, 2)
	cancel()
	if err := returnsWithin(t, storeCallBound, "Ping", func() error { return <-done }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping: %v; want AUTH cut short by the cancel", err)
	}
	pollFor(t, "both connections closed by the store", func() bool { _, closed, _ := p.counts(); return closed == 2 })
	if c := liveConn(s); c != nil {
		t.Fatal("a connection whose AUTH was cut short is kept")
	}
}

func TestRedisPassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const password = "correct horse:battery@staple/1%"
	r := startRedis(t, "--requirepass", password)

	s := newTestRedisStore(t, redisURLWith("", password, r.Addr(), ""))
	wantStorePut(t, s, "k", "", "v", time.Minute, true)
	wantStoreGet(t, s, "k", "v", true)

	const wrong = "wrong-horse-battery"
	err := newTestRedisStore(t, redisURLWith("", wrong, r.Addr(), "")).Ping(ctx)
	var re redisError
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "WRONGPASS") || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("wrong password: %v; want WRONGPASS from AUTH", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), "horse") {
		t.Fatalf("error %q shows a password", err)
	}
	none := newTestRedisStore(t, r.URL())
	if _, _, err := none.Get(ctx, "k"); !errors.As(err, &re) || !strings.HasPrefix(string(re), "NOAUTH") {
		t.Fatalf("no password: %v; want NOAUTH", err)
	}
}

func TestRedisACLUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	// alice may touch only app:* keys, so a write that works proves she, not the default user, is signed in.
	newRedisAdmin(t, r.Addr()).do(t, "ACL", "SETUSER", "alice", "on", ">alice-pw", "~app:*", "+@all")
	s := newTestRedisStore(t, "redis://alice:alice-pw@"+r.Addr())
	wantStorePut(t, s, "app:k", "", "v", time.Minute, true)
	wantStorePut(t, s, "app:k", "v", "w", time.Minute, true) // EVAL, its key checked too
	c := liveConn(s)
	var re redisError
	if _, err := s.Put(ctx, "other:k", anyValue, "v", time.Minute); !errors.As(err, &re) || !strings.HasPrefix(string(re), "NOPERM") {
		t.Fatalf("Put other:k as alice: %v; want NOPERM", err)
	}
	// A refusal is an answer, not a broken connection.
	wantStoreGet(t, s, "app:k", "w", true)
	if liveConn(s) != c {
		t.Fatal("NOPERM replaced the connection")
	}
	err := newTestRedisStore(t, "redis://alice:not-her-pw@"+r.Addr()).Ping(ctx)
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "WRONGPASS") || strings.Contains(err.Error(), "not-her-pw") {
		t.Fatalf("wrong ACL password: %v; want WRONGPASS without the password", err)
	}
}

func TestRedisSelect(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := newTestRedisStore(t, r.URL()+"/3")
	wantStorePut(t, s, "k", anyValue, "in db 3", time.Minute, true)
	a := newRedisAdmin(t, r.Addr())
	if v := a.do(t, "GET", "k"); v != nil {
		t.Fatalf("db 0 has the key: %q", v)
	}
	a.do(t, "SELECT", "3")
	if v := a.get(t, "k"); v != "in db 3" {
		t.Fatalf("db 3 has %q", v)
	}
	// redis.conf's default is 16 databases.
	err := newTestRedisStore(t, r.URL()+"/16").Ping(context.Background())
	var re redisError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "SELECT") {
		t.Fatalf("db 16: %v; want SELECT refused", err)
	}
}

// redisHasTLS tells whether redis-server was built with TLS: one without does not know the tls-port directive.
func redisHasTLS(t *testing.T) bool {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return true // startRedis skips, or fails, with its own message
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--port", "0", "--tls-port", "0", "--save", "", "--appendonly", "no")
	cmd.Dir = t.TempDir()
	out, _ := cmd.CombinedOutput()
	return !bytes.Contains(out, []byte("Bad directive"))
}

// writeRedisCert writes a certificate for localhost and 127.0.0.1 and its key as PEM files, and returns a pool that
// trusts it.
func writeRedisCert(t *testing.T) (roots *x509.CertPool, certFile, keyFile string) {
	cert, roots := newTestCertificate(t)
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: cert.Certificate[0]}, keyFile: {Type: "PRIVATE KEY", Bytes: key}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return roots, certFile, keyFile
}

func TestRedisTLS(t *testing.T) {
	t.Parallel()
	if !redisHasTLS(t) {
		t.Skip("this redis-server was built without TLS (make BUILD_TLS=yes): rediss:// is not tested against a real server")
	}
	ctx := context.Background()
	roots, certFile, keyFile := writeRedisCert(t)
	r := startRedis(t, "--port", "0", "--tls-port", "{port}", "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-auth-clients", "no", "--requirepass", "pw")
	port := strconv.Itoa(r.port)
	tlsStore := func(url string) *redisStore {
		s := newTestRedisStore(t, url)
		s.roots = roots
		return s
	}

	s := tlsStore("rediss://:pw@localhost:" + port + "/1") // AUTH and SELECT go over TLS too
	wantStorePut(t, s, "k", "", "over tls", time.Minute, true)
	wantStoreGet(t, s, "k", "over tls", true)

	// The certificate is checked: another name, or no trust in its issuer, fails.
	other := tlsStore("rediss://:pw@localhost:" + port)
	other.host = "redis.example.com"
	var hostErr x509.HostnameError
	if err := other.Ping(ctx); !errors.As(err, &hostErr) {
		t.Errorf("Ping with another server name: %v; want a hostname mismatch", err)
	}
	var authErr x509.UnknownAuthorityError
	if err := newTestRedisStore(t, "rediss://:pw@localhost:"+port).Ping(ctx); !errors.As(err, &authErr) {
		t.Errorf("Ping with the system's roots: %v; want an unknown authority", err)
	}
	// And redis:// to a TLS port fails rather than talk in clear.
	plain := newTestRedisStore(t, "redis://:pw@localhost:"+port)
	if err := returnsWithin(t, storeCallBound, "Ping", func() error { return plain.Ping(ctx) }); err == nil {
		t.Error("redis:// to a TLS port answered")
	}
}

// startSilentListener accepts connections and reads them, never writing: a server that hangs. stop closes every
// connection it accepted.
func startSilentListener(t *testing.T) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	stop = sync.OnceFunc(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// TestRedisTLSHandshakeStalls: a server that accepts the connection and never answers the TLS handshake fails the
// command within the dial and command timeouts; it does not hold the caller, and every caller queued behind it on
// the store's mutex, for as long as the request lives.
func TestRedisTLSHandshakeStalls(t *testing.T) {
	t.Parallel()
	s, err := newRedisStore("rediss://127.0.0.1:1") // the address is set below
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	addr, stop := startSilentListener(t)
	t.Cleanup(stop) // runs first: a hung handshake ends, and Close gets the mutex
	s.addr = addr
	err = returnsWithin(t, redisDialTimeout+redisCommandTimeout+time.Second, "Ping over a stalled TLS handshake",
		func() error { return s.Ping(context.Background()) })
	if err == nil {
		t.Fatal("Ping answered")
	}
}

// TestRedisRestartWhileIdle: a restart closes the idle connection; the reader notices, so the next command dials,
// authenticates and selects anew instead of failing on a dead socket.
func TestRedisRestartWhileIdle(t *testing.T) {
	t.Parallel()
	r := startRedis(t, "--requirepass", "pw")
	s := newTestRedisStore(t, "redis://:pw@"+r.Addr()+"/2")
	wantStorePut(t, s, "k", anyValue, "v", time.Minute, true)
	c := liveConn(s)
	r.Restart()
	waitConnDead(t, c)
	// Without persistence the restarted server is empty.
	wantStoreGet(t, s, "k", "", false)
	wantStorePut(t, s, "k", "", "v2", time.Minute, true)
	a := newRedisAdmin(t, r.Addr(), "pw")
	a.do(t, "SELECT", "2")
	if v := a.get(t, "k"); v != "v2" {
		t.Fatalf("db 2 after the restart has %q", v)
	}
}

// TestRedisKilled: with Redis gone every call fails at once (the port refuses), and works again once it is back.
func TestRedisKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	s := newTestRedisStore(t, r.URL())
	wantStorePut(t, s, "k", anyValue, "v", time.Minute, true)
	r.Kill()
	for _, c := range storeCalls {
		if err := returnsWithin(t, storeCallBound, c.name, func() error { return c.call(ctx, s) }); err == nil {
			t.Errorf("%s with Redis killed: no error", c.name)
		}
	}
	r.Restart()
	for _, c := range storeCalls {
		if err := returnsWithin(t, storeCallBound, c.name, func() error { return c.call(ctx, s) }); err != nil {
			t.Errorf("%s after the restart: %v", c.name, err)
		}
	}
}

// signalRedis sends sig to the test server's process.
func signalRedis(t *testing.T, r *testRedis, sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// TestRedisFrozen: a Redis that stops answering (SIGSTOP: the kernel still accepts and buffers) fails the command
// after redisCommandTimeout, and that connection is dropped: once Redis runs again the next command dials anew.
func TestRedisFrozen(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := newTestRedisStore(t, r.URL())
	wantStorePut(t, s, "k", anyValue, "v", time.Minute, true)
	c := liveConn(s)
	signalRedis(t, r, syscall.SIGSTOP)
	start := time.Now()
	err := returnsWithin(t, storeCallBound, "Put", func() error {
		_, err := s.Put(context.Background(), "k", anyValue, "w", time.Minute)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "no reply within") || time.Since(start) < redisCommandTimeout {
		t.Fatalf("Put to a frozen Redis: %v after %v; want no reply within %v", err, time.Since(start), redisCommandTimeout)
	}
	waitConnDead(t, c)
	signalRedis(t, r, syscall.SIGCONT)
	wantStorePut(t, s, "k2", anyValue, "v", time.Minute, true)
	if liveConn(s) == c {
		t.Fatal("the timed-out connection was used again")
	}
}

// TestRedisStalledServer: a server that accepts and never answers fails the command after redisCommandTimeout; the
// next command dials anew, and works when the server does.
func TestRedisStalledServer(t *testing.T) {
	t.Parallel()
	p := startFakeRedisPeer(t, replyAlways(""))
	s := newTestRedisStore(t, p.URL())
	start := time.Now()
	err := returnsWithin(t, storeCallBound, "Get", func() error { _, _, err := s.Get(context.Background(), "k"); return err })
	if err == nil || !strings.Contains(err.Error(), "no reply within "+redisCommandTimeout.String()) {
		t.Fatalf("Get: %v; want no reply within %v", err, redisCommandTimeout)
	}
	if d := time.Since(start); d < redisCommandTimeout {
		t.Fatalf("gave up after %v, before the command timeout", d)
	}
	p.set(redisLike)
	wantStoreGet(t, s, "k", "", false)
	if conns, closed, _ := p.counts(); conns != 2 || closed != 1 {
		t.Fatalf("%d connections, %d closed by the store; want the stalled one closed and a second", conns, closed)
	}
}

// replyHoldProxy forwards TCP between stores and a real Redis, and can hold Redis's replies back.
type replyHoldProxy struct {
	addr  string
	gate  sync.RWMutex // write-locked while replies are held
	held  bool         // the test goroutine's alone
	mu    sync.Mutex
	conns int
	sent  bytes.Buffer // what clients sent
}

func startReplyHoldProxy(t *testing.T, backend string) *replyHoldProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyHoldProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var open []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns++
			open = append(open, c, b)
			p.mu.Unlock()
			wg.Go(func() { // client to Redis, recorded
				defer b.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					p.mu.Lock()
					p.sent.Write(buf[:n])
					p.mu.Unlock()
					if _, werr := b.Write(buf[:n]); err != nil || werr != nil {
						return
					}
				}
			})
			wg.Go(func() { // Redis to client, through the gate
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := b.Read(buf)
					p.gate.RLock()
					_, werr := c.Write(buf[:n])
					p.gate.RUnlock()
					if err != nil || werr != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		if p.held {
			p.release()
		}
		ln.Close()
		p.mu.Lock()
		for _, c := range open {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *replyHoldProxy) hold()    { p.gate.Lock(); p.held = true }
func (p *replyHoldProxy) release() { p.held = false; p.gate.Unlock() }

// waitSent waits until clients have sent command at least n times in all.
func (p *replyHoldProxy) waitSent(t *testing.T, command []string, n int) {
	t.Helper()
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	writeCommand(bw, command)
	bw.Flush()
	pollFor(t, fmt.Sprintf("%q sent %d times", command, n), func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return bytes.Count(p.sent.Bytes(), b.Bytes()) >= n
	})
}

// TestRedisCallerGivesUp: a caller whose context ends while its reply is on the way gets ctx.Err(); its reply, when
// it comes, is dropped and not handed to the next caller, and the connection stays in use.
func TestRedisCallerGivesUp(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	p := startReplyHoldProxy(t, r.Addr())
	s := newTestRedisStore(t, "redis://"+p.addr)
	wantStorePut(t, s, "a", anyValue, "A", time.Minute, true)
	wantStorePut(t, s, "b", anyValue, "B", time.Minute, true)

	p.hold()
	// A deadline ends the wait...
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := s.Get(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get with a deadline: %v; want context.DeadlineExceeded", err)
	}
	// ...and so does a cancel once the command is out.
	ctx, cancel = context.WithCancel(context.Background())
	gave := make(chan error, 1)
	go func() { _, err := s.Put(ctx, "a", "A", "never", time.Minute); gave <- err }()
	p.waitSent(t, []string{"EVAL", putScript, "1", "a", "A", "never", "60000"}, 1)
	cancel()
	if err := <-gave; !errors.Is(err, context.Canceled) {
		t.Fatalf("Put cancelled: %v; want context.Canceled", err)
	}
	// The next caller waits behind both abandoned replies and gets its own.
	got := make(chan string, 1)
	go func() {
		v, ok, err := s.Get(context.Background(), "b")
		got <- fmt.Sprintf("%s %v %v", v, ok, err)
	}()
	p.waitSent(t, []string{"GET", "b"}, 1)
	p.release()
	if v := <-got; v != "B true <nil>" {
		t.Fatalf("Get b after two callers gave up = %s; want B true <nil>", v)
	}
	// The cancelled Put reached Redis: giving up does not undo a write.
	wantStoreGet(t, s, "a", "never", true)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns != 1 {
		t.Fatalf("%d connections; want the one kept throughout", p.conns)
	}
}

// TestRedisReplicaPromoted (issue 9, finding 7): a replica answers writes READONLY; that closes the connection, so
// that after a failover the next command dials whatever the address now leads to. Here the replica itself is
// promoted, without a restart, and the next write works on a new connection.
func TestRedisReplicaPromoted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := startRedis(t)
	replica := startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	pa, ra := newRedisAdmin(t, primary.Addr()), newRedisAdmin(t, replica.Addr())
	pollFor(t, "the replica linked to its primary", func() bool { return ra.info(t, "replication", "master_link_status") == "up" })
	pa.do(t, "SET", "k", "from the primary")

	s := newTestRedisStore(t, replica.URL())
	pollFor(t, "the key replicated, read through the store", func() bool {
		v, _, err := s.Get(ctx, "k") // reads work on a replica
		return err == nil && v == "from the primary"
	})
	c := liveConn(s)
	_, err := s.Put(ctx, "k", anyValue, "v", time.Minute)
	var re redisError
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "READONLY") {
		t.Fatalf("write to a replica: %v; want READONLY", err)
	}
	waitConnDead(t, c)

	ra.do(t, "REPLICAOF", "NO", "ONE")
	wantStorePut(t, s, "k", anyValue, "after the failover", time.Minute, true)
	if liveConn(s) == c {
		t.Fatal("the write went over the connection that answered READONLY")
	}
	if v := ra.get(t, "k"); v != "after the failover" {
		t.Fatalf("the promoted server holds %q", v)
	}
}

// TestRedisFailoverReplies: READONLY, LOADING and MASTERDOWN close the connection, and the command that follows at
// once dials anew; other error replies leave the connection in use. The scripted server answers a write of "fail"
// with the error, any other +OK.
func TestRedisFailoverReplies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reply  string
		redial bool
	}{
		{"READONLY You can't write against a read only replica.", true},
		{"LOADING Redis is loading the dataset in memory", true},
		{"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", true},
		{"ERR something else", false},
		{"WRONGTYPE Operation against a key holding the wrong kind of value", false},
		{"READONLYISH not the code", false},
	} {
		code, _, _ := strings.Cut(tc.reply, " ")
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			p := startFakeRedisPeer(t, func(conn int, args []string) (string, bool) {
				if args[0] == "SET" && args[2] == "fail" {
					return "-" + tc.reply + "\r\n", false
				}
				return redisLike(conn, args)
			})
			s := newTestRedisStore(t, p.URL())
			const rounds = 200
			for round := range rounds {
				_, err := s.Put(context.Background(), "k", anyValue, "fail", time.Minute)
				if re := redisError(""); !errors.As(err, &re) || string(re) != tc.reply {
					t.Fatalf("round %d: %v; want the error reply %q", round, err, tc.reply)
				}
				if ok, err := s.Put(context.Background(), "k", anyValue, "ok", time.Minute); err != nil || !ok {
					t.Fatalf("round %d: the next Put = %v, %v; want true", round, ok, err)
				}
			}
			want := 1
			if tc.redial {
				want = rounds + 1
			}
			if conns, _, _ := p.counts(); conns != want {
				t.Fatalf("%d connections after %d rounds; want %d", conns, rounds, want)
			}
		})
	}
}

// TestRedisPipelining: 64 callers at once share one connection, and each gets its own replies: values unique to the
// caller and the command, and replies of three kinds (bulk, status, integer) interleaved.
func TestRedisPipelining(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	a := newRedisAdmin(t, r.Addr())
	before, _ := strconv.Atoi(a.info(t, "stats", "total_connections_received"))
	s := newTestRedisStore(t, r.URL())
	const callers, each = 64, 200
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			last := map[string]string{}
			for i := range each {
				k := fmt.Sprintf("pipe:%d:%d", g, i%10)
				v := fmt.Sprintf("%d/%d", g, i)
				var ok, want bool
				var err error
				switch i % 4 {
				case 0:
					ok, err = s.Put(ctx, k, anyValue, v, time.Minute)
					want, last[k] = true, v
				case 1:
					var got string
					got, ok, err = s.Get(ctx, k)
					if want = last[k] != ""; err == nil && got != last[k] {
						t.Errorf("caller %d: Get %s = %q; want %q", g, k, got, last[k])
						return
					}
				case 2:
					ok, err = s.Put(ctx, k, last[k], v, time.Minute) // "" when absent: set if absent
					want, last[k] = true, v
				case 3:
					ok, err = s.Put(ctx, k, "stale "+v, v, time.Minute)
				}
				if err != nil || ok != want {
					t.Errorf("caller %d, command %d on %s: %v, %v; want %v", g, i, k, ok, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	after, _ := strconv.Atoi(a.info(t, "stats", "total_connections_received"))
	if after-before != 1 {
		t.Fatalf("%d connections for %d callers; want one, pipelined", after-before, callers)
	}
}

// TestRedisGiveUpsAmidPipelining: callers giving up at random moments, among callers that do not, shift no reply.
func TestRedisGiveUpsAmidPipelining(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := newTestRedisStore(t, r.URL())
	if err := s.Ping(context.Background()); err != nil { // connected before the first hasty caller
		t.Fatal(err)
	}
	const callers, each = 32, 150
	var gaveUp atomic.Int32
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			k := "mine:" + strconv.Itoa(g)
			for i := range each {
				// A hasty read of another key, abandoned after 0 to 200 µs, or answered.
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*50*time.Microsecond)
				_, _, err := s.Get(ctx, "decoy")
				cancel()
				if errors.Is(err, context.DeadlineExceeded) {
					gaveUp.Add(1)
				} else if err != nil {
					t.Errorf("hasty Get: %v", err)
					return
				}
				v := fmt.Sprintf("%d/%d", g, i)
				if ok, err := s.Put(context.Background(), k, anyValue, v, time.Minute); err != nil || !ok {
					t.Errorf("caller %d: Put = %v, %v", g, ok, err)
					return
				}
				if got, ok, err := s.Get(context.Background(), k); err != nil || !ok || got != v {
					t.Errorf("caller %d: Get = %q, %v, %v; want %q", g, got, ok, err, v)
					return
				}
			}
		})
	}
	wg.Wait()
	if gaveUp.Load() == 0 {
		t.Fatal("no caller gave up: the test tested nothing")
	}
}

// hostileRedis is one way a fake Redis misbehaves.
type hostileRedis struct {
	name     string
	answer   peerAnswer
	greeting string        // sent on connecting, a reply to no command
	trickle  time.Duration // between the bytes of a reply
}

func hostileRedisBehaviours() []hostileRedis {
	return []hostileRedis{
		{"garbage", replyAlways("hello, this is not RESP\r\n"), "", 0},
		{"binary garbage", replyAlways("\x00\xff\xfe\x80\r\n"), "", 0},
		{"huge bulk length", replyAlways("$99999999999\r\n"), "", 0},
		{"bulk one over the cap", replyAlways("$" + strconv.Itoa(maxBulkLen+1) + "\r\n"), "", 0},
		{"bulk length overflowing int64", replyAlways("$99999999999999999999999\r\n"), "", 0},
		{"huge array length", replyAlways("*99999999\r\n"), "", 0},
		{"negative bulk length", replyAlways("$-2\r\n"), "", 0},
		{"very negative bulk length", replyAlways("$-9223372036854775808\r\n"), "", 0},
		{"negative array length", replyAlways("*-5\r\n"), "", 0},
		{"bulk longer than announced", replyAlways("$2\r\nabcdef\r\n"), "", 0},
		{"endless line", replyAlways("+" + strings.Repeat("a", 64<<10)), "", 0},
		{"RESP3 map", replyAlways("%1\r\n+a\r\n+b\r\n"), "", 0},
		{"bare LF", replyAlways("+OK\n"), "", 0},
		{"error to everything", replyAlways("-ERR no\r\n"), "", 0},
		{"nothing", replyAlways(""), "", 0},
		{"hang up at once", hangUpAfter(""), "", 0},
		{"hang up mid-line", hangUpAfter("+PO"), "", 0},
		{"hang up mid-bulk", hangUpAfter("$10\r\nabc"), "", 0},
		{"trickle", replyAlways("+PONG\r\n"), "", 500 * time.Millisecond},
		{"reply with no command", replyAlways(""), ":42\r\n", 0},
	}
}

// TestRedisHostilePeers: whatever a broken peer does, every store call returns an error within the command timeout
// (and a margin), nothing panics, and the store works again as soon as the peer behaves.
func TestRedisHostilePeers(t *testing.T) {
	t.Parallel()
	for _, h := range hostileRedisBehaviours() {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			p := startFakeRedisPeer(t, h.answer)
			p.mu.Lock()
			p.greeting, p.trickle = h.greeting, h.trickle
			p.mu.Unlock()
			s := newTestRedisStore(t, p.URL())
			for _, c := range storeCalls {
				if err := returnsWithin(t, storeCallBound, c.name, func() error { return c.call(ctx, s) }); err == nil {
					t.Errorf("%s: no error", c.name)
				}
			}
			p.set(redisLike)
			for _, c := range storeCalls {
				if err := returnsWithin(t, storeCallBound, c.name, func() error { return c.call(ctx, s) }); err != nil {
					t.Errorf("%s once the peer behaves: %v", c.name, err)
				}
			}
		})
	}
}

// TestRedisReplyWithNoCommand: a reply that arrives while no command waits (the server is out of step) closes the
// connection: it would otherwise answer the next command.
func TestRedisReplyWithNoCommand(t *testing.T) {
	t.Parallel()
	p := startFakeRedisPeer(t, replyAlways("+PONG\r\n+PONG\r\n"))
	s := newTestRedisStore(t, p.URL())
	for i := range 2 {
		if err := s.Ping(context.Background()); err != nil {
			t.Fatalf("Ping %d: %v", i, err)
		}
		c := liveConn(s)
		waitConnDead(t, c)
		if !errors.Is(c.err, errProtocol) || !strings.Contains(c.err.Error(), "no command") {
			t.Fatalf("connection ended with %v; want a protocol error, a reply with no command", c.err)
		}
	}
	if conns, _, _ := p.counts(); conns != 2 {
		t.Fatalf("%d connections; want 2", conns)
	}
}

// TestRedisInFlightCap: commands waiting for replies are capped (maxInFlight); beyond, a command fails at once
// instead of queueing without bound. Not parallel: it holds 4096 goroutines, half the race detector's limit.
func TestRedisInFlightCap(t *testing.T) {
	p := startFakeRedisPeer(t, replyAlways(""))
	s := newTestRedisStore(t, p.URL())
	var wg sync.WaitGroup
	var answered atomic.Int32
	for range maxInFlight {
		wg.Go(func() {
			if s.Ping(context.Background()) == nil {
				answered.Add(1)
			}
		})
	}
	p.waitCommands(t, maxInFlight)
	err := returnsWithin(t, storeCallBound, "Ping", func() error { return s.Ping(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("command %d: %v; want refused, too many in flight", maxInFlight+1, err)
	}
	wg.Wait()
	if n := answered.Load(); n != 0 {
		t.Fatalf("%d commands answered by a server that never answers", n)
	}
}

func TestRedisClose(t *testing.T) {
	t.Parallel()
	p := startFakeRedisPeer(t, replyAlways(""))
	s := newTestRedisStore(t, p.URL())
	waiting := make(chan error, 1)
	go func() { waiting <- s.Ping(context.Background()) }()
	p.waitCommands(t, 1)
	s.Close()
	// The waiting call fails (with errStoreClosed, or the socket's close, whichever it sees first)...
	if err := returnsWithin(t, storeCallBound, "Ping", func() error { return <-waiting }); err == nil {
		t.Fatal("the waiting Ping answered")
	}
	// ...and every later one with errStoreClosed, without dialing.
	for _, c := range storeCalls {
		if err := c.call(context.Background(), s); !errors.Is(err, errStoreClosed) {
			t.Errorf("%s after Close: %v; want errStoreClosed", c.name, err)
		}
	}
	if conns, _, _ := p.counts(); conns != 1 {
		t.Fatalf("%d connections; want no dial after Close", conns)
	}
}

func TestRedisDialFailure(t *testing.T) {
	t.Parallel()
	s := newTestRedisStore(t, "redis://:topsecret@127.0.0.1:"+strconv.Itoa(freePort(t)))
	err := s.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "dial") || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("Ping: %v; want a dial error without the password", err)
	}
}

// benchRedis is the store the Redis benchmarks use, and a key prefix no earlier run used: bench/run's Redis
// (DASHAUTH_BENCH_REDIS, the one its peers use too) when set, else a private redis-server.
func benchRedis(b *testing.B) (*redisStore, string) {
	url := "redis://" + os.Getenv("DASHAUTH_BENCH_REDIS")
	if url == "redis://" {
		url = startRedis(b).URL()
	}
	return newTestRedisStore(b, url), "bench:ours:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
}

// BenchmarkRedisSetNX: one caller, one set-if-absent (SET key value PX 60000 NX) per round trip.
func BenchmarkRedisSetNX(b *testing.B) {
	s, prefix := benchRedis(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if ok, err := s.Put(ctx, prefix+strconv.Itoa(i), "", "1", time.Minute); err != nil || !ok {
			b.Fatalf("Put = %v, %v", ok, err)
		}
	}
}

// BenchmarkRedisSetNXParallel: 64 callers at once (GOMAXPROCS times the parallelism), pipelined on one connection.
func BenchmarkRedisSetNXParallel(b *testing.B) {
	s, prefix := benchRedis(b)
	ctx := context.Background()
	var n atomic.Int64
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((64 + procs - 1) / procs)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := s.Put(ctx, prefix+strconv.FormatInt(n.Add(1), 10), "", "1", time.Minute); err != nil || !ok {
				b.Errorf("Put = %v, %v", ok, err)
				return
			}
		}
	})
}

// TestRedisSilentConnectionIsReplaced: a connection whose replies stop (a primary gone without closing it) is ended
// by the reply watchdog even when every caller gives up sooner by its own context, as /readyz's 800 ms probe does;
// the next command dials again and the pod turns ready. The same holds once abandoned commands fill the pipeline.
func TestRedisSilentConnectionIsReplaced(t *testing.T) {
	t.Parallel()
	p := startFakeRedisPeer(t, func(conn int, args []string) (string, bool) {
		if conn == 1 {
			return "", false // the first connection never answers
		}
		return redisLike(conn, args)
	})
	ts := newTestServer(t, testEnv("REDIS_URL", p.URL()))
	ready := false
	for deadline := time.Now().Add(3 * redisCommandTimeout); !ready && time.Now().Before(deadline); {
		ready = ts.get("/readyz").Code == http.StatusOK
	}
	if conns, _, _ := p.counts(); !ready || conns < 2 {
		t.Fatalf("readyz ready %v after %v, %d connections dialed; want the silent one replaced", ready, 3*redisCommandTimeout, conns)
	}

	full := startFakeRedisPeer(t, replyAlways(""))
	s := newTestRedisStore(t, full.URL())
	var wg sync.WaitGroup
	for range maxInFlight + 10 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			s.Ping(ctx)
		})
	}
	wg.Wait()
	select {
	case <-liveConn(s).dead:
	case <-time.After(2 * redisCommandTimeout):
		t.Fatal("a connection full of abandoned commands was never ended")
	}
}

// TestRedisTLSFailureRacingCancel: a TLS peer that hangs up while the caller's context ends; under -race this caught
// the context's wake-up reading the connection variable the handshake was replacing.
func TestRedisTLSFailureRacingCancel(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.Read(make([]byte, 1)); time.Sleep(200 * time.Microsecond); c.Close() }()
		}
	}()
	s := newTestRedisStore(t, "rediss://"+ln.Addr().String())
	for i := range 3000 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(time.Duration(150+i%100) * time.Microsecond); cancel() }()
		if err := s.Ping(ctx); err == nil {
			t.Fatal("a TLS handshake that the peer hung up on passed")
		}
		cancel()
	}
}
