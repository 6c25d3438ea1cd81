// Package e2e drives the real sign-in page in headless Chromium against a
// dashauth binary built from the parent folder, as a person would use it.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds the browser; in CI (DASHAUTH_REQUIRE_BROWSER=1) a missing
// one fails the test instead of skipping it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found; install it: apt-get install -y chromium"
	if os.Getenv("DASHAUTH_REQUIRE_BROWSER") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// service is a running dashauth with its log lines.
type service struct {
	url  string
	cmd  *exec.Cmd
	eof  chan struct{} // closed when the log has been read to its end
	mu   sync.Mutex
	logs []map[string]any
	seen chan struct{}
}

// dashauthBinary is built once per test run, from the parent folder, into a folder TestMain removes.
var dashauthBinary struct {
	once      sync.Once
	dir, path string
	err       error
}

func buildDashauth(t *testing.T) string {
	t.Helper()
	b := &dashauthBinary
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "dashauth-e2e-bin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "dashauth")
		build := exec.Command("go", "build", "-o", b.path, ".")
		build.Dir = ".."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// screens is the folder of the pictures the page tests take: E2E_SCREENS, else a new temporary folder. TestMain
// prints it at the end.
var screens struct {
	once sync.Once
	dir  string
	err  error
}

func screensDir(t *testing.T) string {
	t.Helper()
	screens.once.Do(func() {
		if screens.dir = os.Getenv("E2E_SCREENS"); screens.dir != "" {
			screens.err = os.MkdirAll(screens.dir, 0o755)
		} else {
			screens.dir, screens.err = os.MkdirTemp("", "dashauth-e2e-screens-")
		}
	})
	if screens.err != nil {
		t.Fatal(screens.err)
	}
	return screens.dir
}

// TestMain is the package's one TestMain: it removes the built binary and says where the screenshots are.
func TestMain(m *testing.M) {
	code := m.Run()
	if dashauthBinary.dir != "" {
		os.RemoveAll(dashauthBinary.dir)
	}
	if screens.dir != "" {
		fmt.Printf("e2e screenshots: %s\n", screens.dir)
	}
	os.Exit(code)
}

// freeLocalPort finds a port for a server on 127.0.0.1.
func freeLocalPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startService runs dashauth in development mode on a free port, logging every request (LOG_LEVEL=debug); env
// comes last, so it may override DASHBOARD_URL or API_URL.
func startService(t *testing.T, env ...string) *service {
	t.Helper()
	bin := buildDashauth(t)
	port := freeLocalPort(t)
	s := &service{url: fmt.Sprintf("http://localhost:%d", port), seen: make(chan struct{}, 1), eof: make(chan struct{})}
	cmd := exec.Command(bin)
	s.cmd = cmd
	cmd.Env = append([]string{
		fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", port),
		"DASHBOARD_URL=" + s.url,
		"API_URL=" + s.url,
		"LOG_LEVEL=debug",
	}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			s.mu.Lock()
			s.logs = append(s.logs, line)
			s.mu.Unlock()
			select {
			case s.seen <- struct{}{}:
			default:
			}
			if line["msg"] == "listening" {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(io.Discard, stderr)
		close(s.eof)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("dashauth did not start listening")
	}
	return s
}

// codeLine is development mode's mail: the code in the log.
var codeLine = regexp.MustCompile(`^login code for (\S+): (\d{6})$`)

// code waits for the development-mode log line of a code mailed to addr and returns the newest.
func (s *service) code(t *testing.T, addr string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if codes := s.codes(addr); len(codes) > 0 {
			return codes[len(codes)-1]
		}
		select {
		case <-s.seen:
		case <-deadline:
			t.Fatalf("no code mailed to %s", addr)
		}
	}
}

// codes are the codes mailed to addr so far.
func (s *service) codes(addr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var codes []string
	for _, line := range s.logs {
		msg, _ := line["msg"].(string)
		if m := codeLine.FindStringSubmatch(msg); m != nil && m[1] == addr {
			codes = append(codes, m[2])
		}
	}
	return codes
}

func browser(t *testing.T) context.Context {
	t.Helper()
	// Chromium's helper processes may still be writing the profile for a
	// moment after the browser is stopped, so the profile is removed with
	// retries rather than by t.TempDir's one-shot cleanup.
	profile, err := os.MkdirTemp("", "dashauth-e2e-profile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // registered first, so it runs after the browser stops
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	// The browser is newer than the protocol tables of this chromedp, so
	// it reports events chromedp cannot decode; they do not matter here.
	quiet := chromedp.WithErrorf(func(string, ...any) {})
	ctx, cancel2 := chromedp.NewContext(actx, quiet)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// screenshot keeps a picture of the page when a step fails.
func screenshot(t *testing.T, ctx context.Context, name string) {
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err == nil {
		path := filepath.Join(os.TempDir(), "dashauth-e2e-"+name+".png")
		if os.WriteFile(path, png, 0o644) == nil {
			t.Logf("screenshot: %s", path)
		}
	}
}

func run(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		screenshot(t, ctx, strings.ReplaceAll(t.Name(), "/", "_"))
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: timed out", step)
		}
		t.Fatalf("%s: %v", step, err)
	}
}

// TestSIGTERMExitsZero: the real binary, stopped as an orchestrator stops
// it, drains and exits 0 with a last log line saying so.
func TestSIGTERMExitsZero(t *testing.T) {
	svc := startService(t)
	resp, err := http.Get(svc.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := svc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select { // read the whole log before Wait closes the pipe
	case <-svc.eof:
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not exit after SIGTERM")
	}
	if err := svc.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	draining := false
	for _, line := range svc.logs {
		if msg, _ := line["msg"].(string); strings.HasPrefix(msg, "shutting down") {
			draining = true
		}
	}
	if !draining {
		t.Error("no log line says the service is draining")
	}
}
