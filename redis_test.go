package main

// Tests of redisStore against a real redis-server (see redisserver_test.go).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newTestRedisStore returns a store for rawURL that counts its dials.
func newTestRedisStore(t testing.TB, rawURL string, opts redisOptions) (*redisStore, *atomic.Int32) {
	t.Helper()
	s, err := newRedisStore(rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var dials atomic.Int32
	dial := s.pool.dial
	s.pool.dial = func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx)
	}
	return s, &dials
}

// admin runs commands on its own connection to the test server, beside the store under test.
type admin struct {
	t *testing.T
	c *respConn
}

func newAdmin(t *testing.T, r *testRedis, auth ...string) *admin {
	t.Helper()
	nc, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	a := &admin{t: t, c: newRespConn(nc)}
	t.Cleanup(a.c.close)
	if len(auth) > 0 {
		a.do(append([]string{"AUTH"}, auth...)...)
	}
	return a
}

func (a *admin) do(args ...string) any {
	a.t.Helper()
	reply, err := a.c.do(context.Background(), 5*time.Second, args...)
	if err != nil {
		a.t.Fatalf("admin %s: %v", args[0], err)
	}
	return reply
}

func (a *admin) pttl(key string) time.Duration {
	a.t.Helper()
	ms, ok := a.do("PTTL", key).(int64)
	if !ok {
		a.t.Fatalf("PTTL %q: not an integer", key)
	}
	return time.Duration(ms) * time.Millisecond
}

// waitForIdleClosed waits until each idle connection of s has noticed that the server closed
// it. Any real pause between commands gives it that time; a test that acts within
// microseconds of the close has to wait. A connection that never notices fails the test.
func waitForIdleClosed(t *testing.T, s *redisStore) {
	t.Helper()
	var conns []*respConn
	for len(s.pool.idle) > 0 {
		conns = append(conns, <-s.pool.idle)
	}
	for _, c := range conns {
		for i := 0; len(c.idleDone) == 0; i++ {
			if i == 10_000 {
				t.Fatal("an idle connection did not notice in 10 s that the server closed it")
			}
			time.Sleep(time.Millisecond)
		}
		s.pool.idle <- c
	}
}

func TestRedisStoreContract(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s, _ := newTestRedisStore(t, r.URL(), redisOptions{})
	testStoreContract(t, s, "contract:")
}

func TestRedisStoreTTLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	s, _ := newTestRedisStore(t, r.URL(), redisOptions{})
	a := newAdmin(t, r)
	const ttl = time.Hour
	// Redis counts down from the moment it ran the command; half the ttl leaves ample room
	// for a slow machine and still tells milliseconds from seconds.
	inRange := func(name string, left time.Duration) {
		t.Helper()
		if left <= ttl/2 || left > ttl {
			t.Errorf("%s: %v left; want (%v, %v]", name, left, ttl/2, ttl)
		}
	}

	if err := s.Set(ctx, "set", "v", ttl); err != nil {
		t.Fatal(err)
	}
	inRange("Set", a.pttl("set"))

	if _, err := s.SetNX(ctx, "setnx", "v", ttl); err != nil {
		t.Fatal(err)
	}
	inRange("SetNX", a.pttl("setnx"))
	if _, err := s.SetNX(ctx, "setnx", "v", 2*ttl); err != nil {
		t.Fatal(err)
	}
	inRange("SetNX on an existing key leaves its ttl", a.pttl("setnx"))

	n, left, err := s.Incr(ctx, "counter", ttl)
	if err != nil || n != 1 {
		t.Fatalf("Incr = %d, %v", n, err)
	}
	if left != ttl {
		t.Errorf("new counter: %v left; want exactly %v", left, ttl)
	}
	inRange("Incr", a.pttl("counter"))
	if _, left, _ := s.Incr(ctx, "counter", 2*ttl); left > ttl {
		t.Errorf("second Incr renewed the ttl: %v left", left)
	}

	// A counter without expiry (written by something else) gets one.
	a.do("SET", "immortal", "41")
	if got := a.pttl("immortal"); got != -time.Millisecond {
		t.Fatalf("setup: PTTL %v; want -1 ms (no expiry)", got)
	}
	n, left, err = s.Incr(ctx, "immortal", ttl)
	if err != nil || n != 42 || left != ttl {
		t.Fatalf("Incr of a counter without expiry = %d, %v, %v; want 42, %v", n, left, err, ttl)
	}
	inRange("Incr repaired expiry", a.pttl("immortal"))

	// Keys really expire. Waiting past a short ttl is not a timing assertion: Redis removes
	// a key once its time has passed, however late we look.
	s.Set(ctx, "short", "v", 20*time.Millisecond)
	s.Incr(ctx, "shortcounter", 20*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if _, ok, err := s.Get(ctx, "short"); err != nil || ok {
		t.Errorf("Get after the ttl = %v, %v; want missing", ok, err)
	}
	if n, _, err := s.Incr(ctx, "shortcounter", ttl); err != nil || n != 1 {
		t.Errorf("Incr after the ttl = %d, %v; want a new counter at 1", n, err)
	}
}

// TestRedisStoreAdmit checks admitScript against a real Redis. Its clock is real time, so a
// retryAfter is checked within a range, and the window is left by sleeping past it (not a
// timing assertion: an event never counts again, however late we look).
func TestRedisStoreAdmit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	s, _ := newTestRedisStore(t, r.URL(), redisOptions{})
	a := newAdmin(t, r)

	t.Run("window and expiry", func(t *testing.T) {
		const window = time.Hour
		for i := range 2 {
			if ok, _, err := s.Admit(ctx, "rl:long", 2, window); err != nil || !ok {
				t.Fatalf("event %d: Admit = %v, %v", i+1, ok, err)
			}
		}
		ok, retry, err := s.Admit(ctx, "rl:long", 2, window)
		if err != nil || ok || retry <= window/2 || retry > window {
			t.Fatalf("third Admit = %v, %v, %v; want false, (%v, %v]", ok, retry, err, window/2, window)
		}
		if left := a.pttl("rl:long"); left <= window/2 || left > window {
			t.Errorf("PTTL %v; want (%v, %v]", left, window/2, window)
		}
		if n := a.do("ZCARD", "rl:long"); n != int64(2) {
			t.Errorf("ZCARD %v after a refusal; want 2", n)
		}
	})

	t.Run("admit again when the oldest leaves", func(t *testing.T) {
		const window = 300 * time.Millisecond
		if ok, _, err := s.Admit(ctx, "rl:short", 1, window); err != nil || !ok {
			t.Fatalf("first Admit = %v, %v", ok, err)
		}
		ok, retry, err := s.Admit(ctx, "rl:short", 1, window)
		if err != nil || ok || retry <= 0 || retry > window {
			t.Fatalf("second Admit = %v, %v, %v; want false, (0, %v]", ok, retry, err, window)
		}
		time.Sleep(retry + 5*time.Millisecond)
		if ok, _, err := s.Admit(ctx, "rl:short", 1, window); err != nil || !ok {
			t.Fatalf("Admit after retryAfter = %v, %v; want admitted", ok, err)
		}
		// The set goes window after its newest event.
		time.Sleep(window + 100*time.Millisecond)
		if n := a.do("EXISTS", "rl:short"); n != int64(0) {
			t.Errorf("EXISTS %v after the window; want 0", n)
		}
	})

	t.Run("same millisecond", func(t *testing.T) {
		// Two scripts in one MULTI run back to back, nearly always within one millisecond.
		// Every round must count both events; some round must have had them share a score,
		// or the test did not test what it says.
		shared := false
		for round := 0; round < 50 && !shared; round++ {
			key := "rl:same:" + strconv.Itoa(round)
			a.do("MULTI")
			for range 2 {
				a.do("EVAL", admitScript, "1", key, "10", "60000", randomID(8))
			}
			replies, ok := a.do("EXEC").([]any)
			if !ok || len(replies) != 2 {
				t.Fatalf("EXEC: %v", replies)
			}
			for _, rep := range replies {
				if v, ok := rep.([]any); !ok || len(v) != 2 || v[0] != int64(1) {
					t.Fatalf("round %d: script reply %v; want {1, 0}", round, rep)
				}
			}
			if n := a.do("ZCARD", key); n != int64(2) {
				t.Fatalf("round %d: ZCARD %v; want 2", round, n)
			}
			scores, ok := a.do("ZRANGE", key, "0", "-1", "WITHSCORES").([]any)
			if !ok || len(scores) != 4 {
				t.Fatalf("ZRANGE: %v", scores)
			}
			shared = string(scores[1].([]byte)) == string(scores[3].([]byte))
		}
		if !shared {
			t.Fatal("no round ran both events in one millisecond")
		}
	})

	t.Run("every key expires", func(t *testing.T) {
		keys, ok := a.do("KEYS", "rl:*").([]any)
		if !ok || len(keys) == 0 {
			t.Fatalf("KEYS: %v", keys)
		}
		for _, k := range keys {
			if left := a.pttl(string(k.([]byte))); left <= 0 || left > time.Hour {
				t.Errorf("%s: PTTL %v; want (0, 1h]", k, left)
			}
		}
	})

	t.Run("wrong type", func(t *testing.T) {
		a.do("SET", "rl:plain", "v", "PX", "60000")
		if ok, _, err := s.Admit(ctx, "rl:plain", 1, time.Minute); err == nil || ok {
			t.Fatalf("Admit on a string = %v, %v; want an error", ok, err)
		}
	})
}

func TestRedisStorePassword(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const password = "correct-horse-battery"
	r := startRedis(t, "--requirepass", password)
	addr := r.Addr()

	s, _ := newTestRedisStore(t, "redis://:"+password+"@"+addr, redisOptions{})
	if err := s.Set(ctx, "k", "v", time.Minute); err != nil {
		t.Fatalf("with the password: %v", err)
	}

	const wrong = "wrong-horse-battery"
	bad, _ := newTestRedisStore(t, "redis://:"+wrong+"@"+addr, redisOptions{})
	err := bad.Ping(ctx)
	var re redisError
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "WRONGPASS") || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("wrong password: %v; want a WRONGPASS error reply from AUTH", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), password) {
		t.Fatalf("error %q contains a password", err)
	}

	none, _ := newTestRedisStore(t, r.URL(), redisOptions{})
	if _, _, err := none.Get(ctx, "k"); !errors.As(err, &re) || !strings.HasPrefix(string(re), "NOAUTH") {
		t.Fatalf("no password: %v; want NOAUTH", err)
	}
}

func TestRedisStoreACLUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// alice may touch only app:* keys, so a command that works proves she, and not the
	// default user, is signed in.
	r := startRedis(t, "--user", "alice", "on", ">alice-pw", "~app:*", "+@all")
	s, _ := newTestRedisStore(t, "redis://alice:alice-pw@"+r.Addr(), redisOptions{})
	if err := s.Set(ctx, "app:k", "v", time.Minute); err != nil {
		t.Fatalf("Set app:k as alice: %v", err)
	}
	if n, _, err := s.Incr(ctx, "app:n", time.Minute); err != nil || n != 1 {
		t.Fatalf("Incr app:n as alice = %d, %v", n, err)
	}
	var re redisError
	if err := s.Set(ctx, "other:k", "v", time.Minute); !errors.As(err, &re) || !strings.HasPrefix(string(re), "NOPERM") {
		t.Fatalf("Set other:k as alice: %v; want NOPERM", err)
	}
	// The refusal is an answer, not a broken connection: the next command works.
	if _, ok, err := s.Get(ctx, "app:k"); err != nil || !ok {
		t.Fatalf("Get after NOPERM = %v, %v", ok, err)
	}

	bad, _ := newTestRedisStore(t, "redis://alice:not-her-pw@"+r.Addr(), redisOptions{})
	err := bad.Ping(ctx)
	if !errors.As(err, &re) || !strings.HasPrefix(string(re), "WRONGPASS") || strings.Contains(err.Error(), "not-her-pw") {
		t.Fatalf("wrong ACL password: %v", err)
	}
}

func TestRedisStoreSelect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	s, _ := newTestRedisStore(t, r.URL()+"/3", redisOptions{})
	if err := s.Set(ctx, "k", "in db 3", time.Minute); err != nil {
		t.Fatal(err)
	}
	a := newAdmin(t, r)
	if reply := a.do("GET", "k"); reply != nil {
		t.Fatalf("db 0 has the key: %q", reply)
	}
	a.do("SELECT", "3")
	if reply, _ := a.do("GET", "k").([]byte); string(reply) != "in db 3" {
		t.Fatalf("db 3 has %q", reply)
	}

	out, _ := newTestRedisStore(t, r.URL()+"/16", redisOptions{}) // redis.conf: databases 16
	var re redisError
	if err := out.Ping(ctx); !errors.As(err, &re) || !strings.Contains(err.Error(), "SELECT 16") {
		t.Fatalf("db 16: %v; want SELECT refused", err)
	}
}

func TestRedisStoreKilledConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	s, dials := newTestRedisStore(t, r.URL(), redisOptions{})
	if err := s.Set(ctx, "k", "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	a := newAdmin(t, r)
	if killed, _ := a.do("CLIENT", "KILL", "TYPE", "normal").(int64); killed != 1 {
		t.Fatalf("CLIENT KILL closed %d connections; want the store's one", killed)
	}
	waitForIdleClosed(t, s)
	if v, ok, err := s.Get(ctx, "k"); err != nil || !ok || v != "v" {
		t.Fatalf("Get after CLIENT KILL = %q, %v, %v", v, ok, err)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials; want 2 (one reconnect)", n)
	}
}

func TestRedisStoreRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t, "--requirepass", "pw")
	s, dials := newTestRedisStore(t, "redis://:pw@"+r.Addr()+"/2", redisOptions{})
	if err := s.Set(ctx, "k", "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	r.Restart()
	waitForIdleClosed(t, s)
	// Without persistence the restarted server is empty; the store reconnects, AUTHs and
	// SELECTs again, and works.
	if _, ok, err := s.Get(ctx, "k"); err != nil || ok {
		t.Fatalf("Get after restart = %v, %v; want missing", ok, err)
	}
	if err := s.Set(ctx, "k", "v2", time.Minute); err != nil {
		t.Fatal(err)
	}
	a := newAdmin(t, r, "pw")
	a.do("SELECT", "2")
	if v, _ := a.do("GET", "k").([]byte); string(v) != "v2" {
		t.Fatalf("db 2 after restart has %q", v)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d dials; want 2 (one reconnect)", n)
	}
}

func TestRedisStoreStopped(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s, _ := newTestRedisStore(t, r.URL(), redisOptions{DialTimeout: time.Second, CommandTimeout: time.Second})
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Kill()
	waitForIdleClosed(t, s)
	// The idle connection died with the server and the port refuses: an error, not a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 2 {
		if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "dial") {
			t.Fatalf("Ping %d of a stopped server: %v; want a dial error", i, err)
		}
	}
}

func TestRedisStoreConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRedis(t)
	const poolSize = 4
	s, dials := newTestRedisStore(t, r.URL(), redisOptions{PoolSize: poolSize})
	const workers, each = 64, 50
	var wg sync.WaitGroup
	var taken atomic.Int32
	for w := range workers {
		wg.Go(func() {
			key := "w" + strconv.Itoa(w)
			for i := range each {
				if _, _, err := s.Incr(ctx, "total", time.Minute); err != nil {
					t.Error(err)
					return
				}
				if err := s.Set(ctx, key, strconv.Itoa(i), time.Minute); err != nil {
					t.Error(err)
					return
				}
				if v, _, err := s.Get(ctx, key); err != nil || v != strconv.Itoa(i) {
					t.Errorf("Get %s = %q, %v; want %d", key, v, err, i)
					return
				}
				if set, err := s.SetNX(ctx, "once", key, time.Minute); err != nil {
					t.Error(err)
				} else if set {
					taken.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if v, _, err := s.Get(ctx, "total"); err != nil || v != strconv.Itoa(workers*each) {
		t.Errorf("total = %q, %v; want %d", v, err, workers*each)
	}
	if n := taken.Load(); n != 1 {
		t.Errorf("SetNX succeeded %d times; want once", n)
	}
	if n := dials.Load(); n > poolSize {
		t.Errorf("%d dials with a pool of %d", n, poolSize)
	}
	info, _ := newAdmin(t, r).do("INFO", "clients").([]byte)
	if !strings.Contains(string(info), "connected_clients:"+strconv.Itoa(poolSize+1)+"\r\n") &&
		!strings.Contains(string(info), "connected_clients:"+strconv.Itoa(poolSize)+"\r\n") {
		t.Errorf("server sees more clients than the pool and the admin:\n%s", info)
	}
}

func TestRedisStoreTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	roots, certFile, keyFile := writeTestCert(t, dir, "localhost")
	r := startRedis(t, "--port", "0", "--tls-port", "{port}",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-auth-clients", "no")
	port := strconv.Itoa(r.port)

	s, _ := newTestRedisStore(t, "rediss://localhost:"+port, redisOptions{TLSConfig: &tls.Config{RootCAs: roots}})
	if err := s.Set(ctx, "k", "over tls", time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, _, err := s.Get(ctx, "k"); err != nil || v != "over tls" {
		t.Fatalf("Get = %q, %v", v, err)
	}

	// The certificate is checked: a name it was not issued for, or an unknown issuer, fails.
	var hostErr x509.HostnameError
	other, _ := newTestRedisStore(t, "rediss://127.0.0.1:"+port, redisOptions{TLSConfig: &tls.Config{RootCAs: roots}})
	if err := other.Ping(ctx); !errors.As(err, &hostErr) {
		t.Errorf("Ping by IP: %v; want a hostname mismatch", err)
	}
	var authErr x509.UnknownAuthorityError
	untrusted, _ := newTestRedisStore(t, "rediss://localhost:"+port, redisOptions{})
	if err := untrusted.Ping(ctx); !errors.As(err, &authErr) {
		t.Errorf("Ping without the CA: %v; want an unknown authority", err)
	}
	// And plain redis:// to a TLS port fails instead of talking in clear.
	plain, _ := newTestRedisStore(t, "redis://localhost:"+port, redisOptions{CommandTimeout: time.Second})
	if err := plain.Ping(ctx); err == nil {
		t.Error("redis:// to a TLS port answered")
	}
}

// writeTestCert writes a CA-signed certificate for host into dir and returns the CA pool
// and the certificate and key files.
func writeTestCert(t *testing.T, dir, host string) (*x509.CertPool, string, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dashauth test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return roots, certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkRedisSetNX measures one set-if-absent round trip through the pool.
func BenchmarkRedisSetNX(b *testing.B) {
	b.ReportAllocs()
	r := startRedis(b)
	s, _ := newTestRedisStore(b, r.URL(), redisOptions{})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		set, err := s.SetNX(ctx, "bench:"+strconv.Itoa(i), "1", time.Minute)
		if err != nil || !set {
			b.Fatalf("SetNX = %v, %v", set, err)
		}
	}
}
