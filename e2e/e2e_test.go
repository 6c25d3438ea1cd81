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

// startService builds dashauth and runs it in development mode on a free port.
func startService(t *testing.T, env ...string) *service {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dashauth")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	s := &service{url: fmt.Sprintf("http://localhost:%d", port), seen: make(chan struct{}, 1), eof: make(chan struct{})}
	cmd := exec.Command(bin)
	s.cmd = cmd
	cmd.Env = append([]string{
		fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", port),
		"DASHBOARD_URL=" + s.url,
		"API_URL=" + s.url,
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

var codeLine = regexp.MustCompile(`(?m)^(\d{6})\r?$`)

// code waits for the development-mode log line of the mail to addr.
func (s *service) code(t *testing.T, addr string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		for i := len(s.logs) - 1; i >= 0; i-- {
			if s.logs[i]["to"] == addr {
				text, _ := s.logs[i]["text"].(string)
				if m := codeLine.FindStringSubmatch(text); m != nil {
					s.mu.Unlock()
					return m[1]
				}
			}
		}
		s.mu.Unlock()
		select {
		case <-s.seen:
		case <-deadline:
			t.Fatalf("no code mailed to %s", addr)
		}
	}
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
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
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

// askForCode opens the page, asks for a code for addr, and returns the code
// the service wrote to its log.
func askForCode(t *testing.T, ctx context.Context, svc *service, addr string) string {
	t.Helper()
	run(t, ctx, "ask for a code",
		chromedp.Navigate(svc.url+"/"),
		chromedp.WaitVisible("#email-form"),
		chromedp.SendKeys("#email", addr),
		chromedp.Click(`#email-form button[type=submit]`),
		chromedp.WaitVisible("#code-form"),
	)
	return svc.code(t, addr)
}

func TestEmailCodeSignInInBrowser(t *testing.T) {
	svc := startService(t)
	ctx := browser(t)
	const addr = "ada@example.com"

	code := askForCode(t, ctx, svc, addr)

	var who, org string
	run(t, ctx, "enter the code",
		chromedp.SendKeys("#code", code),
		chromedp.Click(`#code-form button[type=submit]`),
		chromedp.WaitVisible("#me"),
		chromedp.Text("#me-email", &who),
		chromedp.Text("#me-org", &org),
	)
	if who != addr || org != "org_dev" {
		t.Fatalf("signed in as %q in %q", who, org)
	}
	screenshot(t, ctx, "signed-in")

	// A reload keeps the session (the cookies are HttpOnly: the page learns
	// who is signed in only from /v2/user/me/).
	var cookieText string
	run(t, ctx, "reload",
		chromedp.Reload(),
		chromedp.WaitVisible("#me"),
		chromedp.Evaluate(`document.cookie`, &cookieText),
	)
	if cookieText != "" {
		t.Fatalf("session cookies readable from script: %q", cookieText)
	}

	run(t, ctx, "sign out",
		chromedp.Click("#logout"),
		chromedp.WaitVisible("#email-form"),
		chromedp.Reload(),
		chromedp.WaitVisible("#email-form"),
	)
}

func TestWrongCodeInBrowser(t *testing.T) {
	svc := startService(t)
	ctx := browser(t)
	const addr = "bob@example.com"
	code := askForCode(t, ctx, svc, addr)
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
	var status string
	run(t, ctx, "enter a wrong code",
		chromedp.SendKeys("#code", wrong),
		chromedp.Click(`#code-form button[type=submit]`),
		chromedp.WaitVisible("#status"),
		chromedp.Poll(`document.getElementById("status").textContent.length > 0`, nil),
		chromedp.Text("#status", &status),
	)
	if !strings.Contains(status, "not valid") {
		t.Fatalf("status %q", status)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
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
