package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testRedis is a private redis-server for one test, on a free loopback port, without
// persistence. It is stopped when the test ends.
type testRedis struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	logfile *os.File
}

// redisMissing is the message for a machine without redis-server.
const redisMissing = "redis-server not found; install it: apt-get install -y redis-server"

// startRedis starts redis-server with args added to the defaults
// (--port N --bind 127.0.0.1 --save "" --appendonly no, in a temp dir). An arg "{port}" is
// replaced by the chosen port, for options such as --tls-port. Without redis-server on PATH
// the test is skipped, or fails when DASHAUTH_REQUIRE_REDIS=1 (as in CI).
func startRedis(t testing.TB, args ...string) *testRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("DASHAUTH_REQUIRE_REDIS") == "1" {
			t.Fatal(redisMissing)
		}
		t.Skip(redisMissing)
	}
	r := &testRedis{t: t, bin: bin, dir: t.TempDir(), args: args}
	t.Cleanup(r.Kill)
	// The port is free when chosen but another process may take it before redis-server binds
	// it; then redis-server exits, and a new port is tried.
	for attempt := 0; ; attempt++ {
		r.port = freePort(t)
		if err := r.start(); err == nil {
			return r
		} else if attempt == 4 {
			t.Fatalf("redis-server did not start: %v\n%s", err, r.log())
		}
	}
}

// URL returns redis://127.0.0.1:port, without credentials or database.
func (r *testRedis) URL() string { return "redis://" + r.Addr() }

// Addr returns 127.0.0.1:port.
func (r *testRedis) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Restart stops the server (SIGTERM, as an orderly restart does) and starts it again on the
// same port. Without persistence, every key is gone afterwards.
func (r *testRedis) Restart() {
	r.t.Helper()
	r.stop(syscall.SIGTERM)
	if err := r.start(); err != nil {
		r.t.Fatalf("redis-server did not restart: %v\n%s", err, r.log())
	}
}

// Kill stops the server at once (SIGKILL, as a crash) and leaves it stopped.
func (r *testRedis) Kill() { r.stop(syscall.SIGKILL) }

func (r *testRedis) start() error {
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--daemonize", "no",
	}
	for _, a := range r.args {
		args = append(args, strings.ReplaceAll(a, "{port}", strconv.Itoa(r.port)))
	}
	logfile, err := os.Create(filepath.Join(r.dir, "redis.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Dir = r.dir
	cmd.Stdout = logfile
	cmd.Stderr = logfile
	if err := cmd.Start(); err != nil {
		logfile.Close()
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited, r.logfile = cmd, exited, logfile
	r.mu.Unlock()

	// redis-server logs this line once it listens on every port it was given (a port taken
	// by another process makes it exit instead). The wait is bounded so that a wedged server
	// fails the test rather than hanging it.
	for range 1000 {
		select {
		case <-exited:
			return errExited
		default:
		}
		if strings.Contains(r.log(), "Ready to accept connections") {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.stop(syscall.SIGKILL)
	return errNotReady
}

const (
	errExited   = errorString("redis-server exited")
	errNotReady = errorString("redis-server not ready within 10 s")
)

type errorString string

func (e errorString) Error() string { return string(e) }

func (r *testRedis) stop(sig syscall.Signal) {
	r.mu.Lock()
	cmd, exited, logfile := r.cmd, r.exited, r.logfile
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	logfile.Close()
}

// log returns what redis-server wrote, for failure messages.
func (r *testRedis) log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	return string(bytes.TrimSpace(b))
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
