package e2e

// The container image, built and run as an operator would: the Dockerfile's
// final stage from a binary built here (no registry is reachable, so the
// golang:… build stage is replaced by --build-context build=<dir>), run with
// podman under the restrictions the Helm chart sets, signed in to by
// email+code with a production configuration, checked with dashauth check,
// and stopped with SIGTERM.
//
// Debian's podman on a VM like the CI's needs "--runtime runc" and explicit
// --ulimit values (runc otherwise fails "error setting rlimit type 7");
// imagePodmanRun adds them. The test runs podman as the user running the tests
// (root in CI); the user-namespace mapping is read, so it means the same
// rootless.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// imageMaxBytes is the goal for the image's size (contract: a static binary
// on scratch).
const imageMaxBytes = 8 << 20

// imageTools skips the test when buildah, podman or runc is missing, or fails
// it when DASHAUTH_REQUIRE_IMAGE=1 (CI).
func imageTools(t *testing.T) {
	t.Helper()
	var missing []string
	for _, name := range []string{"buildah", "podman", "runc"} {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := strings.Join(missing, ", ") + " not found; install them: apt-get install -y buildah podman runc"
	if os.Getenv("DASHAUTH_REQUIRE_IMAGE") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// imageCmd runs a command under a deadline and returns its stdout, stderr and
// error (an *exec.ExitError for a non-zero exit).
func imageCmd(timeout time.Duration, dir, name string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: gave up after %v", name, strings.Join(args, " "), timeout)
	}
	return stdout.String(), stderr.String(), err
}

// imageMust runs a command that must succeed and returns its stdout.
func imageMust(t *testing.T, name string, args ...string) string {
	t.Helper()
	stdout, stderr, err := imageCmd(5*time.Minute, "", name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// imagePodmanRun is "podman run" with the flags this kind of machine needs.
func imagePodmanRun(args ...string) []string {
	return append([]string{"--runtime", "runc", "run",
		"--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}, args...)
}

// imageRandom names images and containers (lower case, as tags must be).
func imageRandom() string { return strings.ToLower(rand.Text()[:12]) }

// buildImage builds the binary and the Dockerfile's final stage; the image is
// removed when the test ends.
func buildImage(t *testing.T) string {
	t.Helper()
	ctxDir := t.TempDir()
	certs := filepath.Join(ctxDir, "etc", "ssl", "certs")
	if err := os.MkdirAll(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(ctxDir, "dashauth"), ".")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("the image needs the host's CA bundle (apt-get install -y ca-certificates): %v", err)
	}
	if err := os.WriteFile(filepath.Join(certs, "ca-certificates.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "localhost/dashauth-e2e:" + imageRandom()
	t.Cleanup(func() { imageCmd(time.Minute, "", "podman", "rmi", "-f", tag) })
	stdout, stderr, err := imageCmd(5*time.Minute, "..", "buildah", "bud", "--pull=never", "--target", "final",
		"--build-context", "build="+ctxDir, "-t", tag, ".")
	if err != nil {
		t.Fatalf("buildah bud: %v\n%s%s", err, stdout, stderr)
	}
	return tag
}

// imageInspect is what podman image inspect says of the image.
type imageInspect struct {
	Size   int64
	Config struct {
		User         string
		Env          []string
		Entrypoint   []string
		Cmd          []string
		ExposedPorts map[string]struct{}
	}
}

// imageFiles lists the regular files and symlinks of the image's layers,
// read from "podman save".
func imageFiles(t *testing.T, tag string) map[string]*tar.Header {
	t.Helper()
	archive := filepath.Join(t.TempDir(), "image.tar")
	imageMust(t, "podman", "save", "--format", "docker-archive", "-o", archive, tag)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries := map[string][]byte{}
	outer := tar.NewReader(f)
	for {
		h, err := outer.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if entries[h.Name], err = io.ReadAll(outer); err != nil {
			t.Fatal(err)
		}
	}
	var manifest []struct{ Layers []string }
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("podman save wrote no single manifest: %v", err)
	}
	files := map[string]*tar.Header{}
	for _, layer := range manifest[0].Layers {
		inner := tar.NewReader(bytes.NewReader(entries[layer]))
		for {
			h, err := inner.Next()
			if err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("layer %s: %v", layer, err)
			}
			if h.Typeflag != tar.TypeDir {
				files[strings.TrimPrefix(h.Name, "./")] = h
			}
		}
	}
	return files
}

// imageMail is one message the mailbox accepted.
type imageMail struct {
	from string
	to   []string
	data []byte
}

// imageMailbox is a minimal SMTP server on 127.0.0.1 (plain text, no AUTH):
// what SMTP_TLS=none allows, for a relay on the same host. The container
// reaches it through the host network.
type imageMailbox struct {
	ln   net.Listener
	mu   sync.Mutex
	box  []imageMail
	news chan struct{}
}

func startImageMailbox(t *testing.T) *imageMailbox {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &imageMailbox{ln: ln, news: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); m.serve(c) }()
		}
	}()
	return m
}

func (m *imageMailbox) port() string {
	return strconv.Itoa(m.ln.Addr().(*net.TCPAddr).Port)
}

func (m *imageMailbox) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	reply := func(s string) { io.WriteString(c, s+"\r\n") }
	reply("220 mailbox ESMTP")
	var cur imageMail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			reply("250 mailbox")
		case "MAIL":
			cur = imageMail{from: imagePath(arg)}
			reply("250 ok")
		case "RCPT":
			cur.to = append(cur.to, imagePath(arg))
			reply("250 ok")
		case "DATA":
			reply("354 go ahead")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				cur.data = append(cur.data, strings.TrimPrefix(l, ".")...)
			}
			m.mu.Lock()
			m.box = append(m.box, cur)
			m.mu.Unlock()
			select {
			case m.news <- struct{}{}:
			default:
			}
			reply("250 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

// waitFor returns the first mail to addr.
func (m *imageMailbox) waitFor(t *testing.T, addr string) imageMail {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		m.mu.Lock()
		for _, mail := range m.box {
			if slices.Contains(mail.to, addr) {
				m.mu.Unlock()
				return mail
			}
		}
		m.mu.Unlock()
		select {
		case <-m.news:
		case <-deadline:
			t.Fatalf("no mail to %s arrived", addr)
		}
	}
}

// imagePath reads the address of "FROM:<a@b>" or "TO:<a@b>".
func imagePath(arg string) string {
	_, rest, _ := strings.Cut(arg, "<")
	path, _, _ := strings.Cut(rest, ">")
	return path
}

var imageCodeLine = regexp.MustCompile(`(?m)^(\d{6})\r?$`)

// imageMailedCode reads the code from the text/plain part of a multipart/
// alternative mail, checking the headers the contract names.
func imageMailedCode(t *testing.T, raw []byte, from string) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the mail does not parse: %v\n%s", err, raw)
	}
	if got := msg.Header.Get("From"); !strings.Contains(got, from) {
		t.Errorf("From: %q, want SMTP_FROM %s", got, from)
	}
	for _, h := range []string{"Date", "Message-Id"} {
		if msg.Header.Get(h) == "" {
			t.Errorf("the mail has no %s header", h)
		}
	}
	media, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || media != "multipart/alternative" {
		t.Fatalf("Content-Type %q, want multipart/alternative", msg.Header.Get("Content-Type"))
	}
	parts := multipart.NewReader(msg.Body, params["boundary"])
	var code string
	var types []string
	for {
		p, err := parts.NextPart()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		typ, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, typ)
		body, _ := io.ReadAll(p)
		if m := imageCodeLine.FindSubmatch(body); typ == "text/plain" && m != nil {
			code = string(m[1])
		}
	}
	if !slices.Equal(types, []string{"text/plain", "text/html"}) {
		t.Errorf("parts %v, want text/plain and text/html", types)
	}
	if code == "" {
		t.Fatalf("no code on a line of its own in the plain part:\n%s", raw)
	}
	return code
}

// imageHTTP sends a request as the dashboard's page would (Origin set) and
// returns the answer with its JSON body.
func imageHTTP(t *testing.T, method, url, body string, cookies ...*http.Cookie) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", imageDashboardURL)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	// The session cookies are __Host- and Secure: a cookie jar would not send
	// them over plain http to 127.0.0.1, so they are passed by hand.
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var v map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %q", method, url, resp.StatusCode, raw)
	}
	return resp, v
}

const (
	imageDashboardURL = "https://app.example.test"
	imageAPIURL       = "https://api.example.test"
	imageFrom         = "auth@example.test"
	imageMembersPath  = "/etc/dashauth/members.json"
)

// imageContainer is a dashauth container started in the background.
type imageContainer struct {
	name, url string
}

func (c *imageContainer) inspect(t *testing.T, format string) string {
	t.Helper()
	return strings.TrimSpace(imageMust(t, "podman", "container", "inspect", "--format", format, c.name))
}

func (c *imageContainer) logs(t *testing.T) string {
	t.Helper()
	stdout, stderr, _ := imageCmd(time.Minute, "", "podman", "logs", c.name)
	return stdout + stderr
}

// startImage runs the image with a production email+code configuration, as
// the Helm chart does: read-only root filesystem, no capabilities, no
// privilege escalation, the members file mounted read-only.
func startImage(t *testing.T, tag, smtpPort, jwtSecret string) *imageContainer {
	t.Helper()
	members := filepath.Join(t.TempDir(), "members.json")
	err := os.WriteFile(members, []byte(`{"members": [
		{"email": "ada@example.com", "organization_id": "org_acme", "role": "admin", "active": true}]}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &imageContainer{name: "dashauth-e2e-" + imageRandom(), url: "http://" + addr}
	t.Cleanup(func() { imageCmd(time.Minute, "", "podman", "rm", "-f", "-t", "0", c.name) })
	imageMust(t, "podman", imagePodmanRun("-d", "--name", c.name, "--network", "host",
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"-v", members+":"+imageMembersPath+":ro",
		"-e", "LISTEN_ADDR="+addr,
		"-e", "DASHBOARD_URL="+imageDashboardURL,
		"-e", "API_URL="+imageAPIURL,
		"-e", "JWT_SECRET="+jwtSecret,
		"-e", "SMTP_HOST=127.0.0.1", "-e", "SMTP_PORT="+smtpPort, "-e", "SMTP_TLS=none", "-e", "SMTP_FROM="+imageFrom,
		"-e", "MEMBERS_FILE="+imageMembersPath,
		tag)...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(c.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return c
		}
		if c.inspect(t, "{{.State.Running}}") != "true" || time.Now().After(deadline) {
			t.Fatalf("the container does not serve %s: %v\n%s", c.url, err, c.logs(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// imageProcStatus reads the Uid, Gid, CapEff and NoNewPrivs lines of a process.
func imageProcStatus(t *testing.T, pid string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	status := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			status[k] = strings.Fields(v)
		}
	}
	return status
}

// imageInsideID maps a host uid or gid to the container's user namespace through
// /proc/<pid>/uid_map or gid_map ("inside outside count" lines).
func imageInsideID(t *testing.T, pid, mapFile, hostID string) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/" + pid + "/" + mapFile)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := strconv.ParseInt(hostID, 10, 64)
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var in, out, n int64
		if _, err := fmt.Sscan(line, &in, &out, &n); err == nil && id >= out && id < out+n {
			return in + id - out
		}
	}
	t.Fatalf("host id %s is not mapped in %s", hostID, mapFile)
	return -1
}

func TestImage(t *testing.T) {
	imageTools(t)
	tag := buildImage(t)

	t.Run("contents, user and size", func(t *testing.T) {
		var inspected []imageInspect
		if err := json.Unmarshal([]byte(imageMust(t, "podman", "image", "inspect", tag)), &inspected); err != nil ||
			len(inspected) != 1 {
			t.Fatalf("podman image inspect: %v", err)
		}
		img := inspected[0]
		t.Logf("image size: %d bytes (%.2f MiB)", img.Size, float64(img.Size)/(1<<20))
		if img.Size > imageMaxBytes {
			t.Errorf("the image is %d bytes, over the goal of %d (8 MiB)", img.Size, imageMaxBytes)
		}
		uid, _, _ := strings.Cut(img.Config.User, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("USER %q, want a numeric non-root uid (Kubernetes' runAsNonRoot needs a number)", img.Config.User)
		}
		if !slices.Equal(img.Config.Entrypoint, []string{"/dashauth"}) || len(img.Config.Cmd) != 0 {
			t.Errorf("ENTRYPOINT %q CMD %q, want [/dashauth] and none", img.Config.Entrypoint, img.Config.Cmd)
		}
		if _, ok := img.Config.ExposedPorts["8080/tcp"]; !ok || !slices.Contains(img.Config.Env, "LISTEN_ADDR=0.0.0.0:8080") {
			t.Errorf("EXPOSE %v, ENV %v: want 8080/tcp and LISTEN_ADDR=0.0.0.0:8080", img.Config.ExposedPorts, img.Config.Env)
		}
		files := imageFiles(t, tag)
		var names []string
		for name := range files {
			names = append(names, name)
		}
		slices.Sort(names)
		if want := []string{"dashauth", "etc/ssl/certs/ca-certificates.crt"}; !slices.Equal(names, want) {
			t.Errorf("the image holds %q, want exactly %q", names, want)
		}
		if h := files["dashauth"]; h != nil && h.Mode&0o005 != 0o005 {
			t.Errorf("/dashauth has mode %o: user %s could not run it", h.Mode, img.Config.User)
		}
		if h := files["etc/ssl/certs/ca-certificates.crt"]; h != nil && (h.Mode&0o004 == 0 || h.Size < 1000) {
			t.Errorf("the CA bundle has mode %o and %d bytes: unreadable or empty", h.Mode, h.Size)
		}
	})

	t.Run("refuses to start without configuration", func(t *testing.T) {
		name := "dashauth-e2e-" + imageRandom()
		t.Cleanup(func() { imageCmd(time.Minute, "", "podman", "rm", "-f", "-t", "0", name) })
		// No network: were the refusal broken, nothing could reach it.
		stdout, stderr, err := imageCmd(time.Minute, "", "podman", imagePodmanRun("--rm", "--name", name, "--network", "none", tag)...)
		exit, ok := err.(*exec.ExitError)
		if !ok || exit.ExitCode() != 1 {
			t.Fatalf("exit %v, want status 1\nstdout: %s\nstderr: %s", err, stdout, stderr)
		}
		var line string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, "LISTEN_ADDR") {
				line = l
			}
		}
		if !strings.Contains(line, "DASHBOARD_URL") || strings.Contains(stderr, `"listening"`) {
			t.Errorf("no line names LISTEN_ADDR and what to set (DASHBOARD_URL):\n%s", stderr)
		}
	})

	t.Run("production email+code sign-in", func(t *testing.T) {
		mailbox := startImageMailbox(t)
		jwtSecret := "e2e-" + strings.Repeat(imageRandom(), 3)
		c := startImage(t, tag, mailbox.port(), jwtSecret)
		var code string

		t.Run("health", func(t *testing.T) {
			for _, path := range []string{"/healthz", "/readyz"} {
				if resp, v := imageHTTP(t, "GET", c.url+path, ""); resp.StatusCode != 200 || v["status"] != "ok" {
					t.Errorf("GET %s: %d %v", path, resp.StatusCode, v)
				}
			}
			if _, v := imageHTTP(t, "GET", c.url+"/v1/auth_config/", ""); v["login_flow"] != "email_code" {
				t.Errorf("auth_config: %v", v)
			}
		})

		t.Run("sign in", func(t *testing.T) {
			const addr = "ada@example.com"
			resp, v := imageHTTP(t, "POST", c.url+"/v2/user/login_code/", `{"email": "`+addr+`"}`)
			if resp.StatusCode != 200 || v["response_type"] != "CODE_SENT" {
				t.Fatalf("login_code: %d %v", resp.StatusCode, v)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != imageDashboardURL {
				t.Errorf("Access-Control-Allow-Origin %q, want %s", got, imageDashboardURL)
			}
			m := mailbox.waitFor(t, addr)
			if m.from != imageFrom {
				t.Errorf("MAIL FROM %q, want %s", m.from, imageFrom)
			}
			code = imageMailedCode(t, m.data, imageFrom)

			resp, v = imageHTTP(t, "POST", c.url+"/v2/user/login_code/verify/", `{"email": "`+addr+`", "code": "`+code+`"}`)
			if resp.StatusCode != 200 || v["response_type"] != "LOGIN_SUCCESSFUL" || v["organization_id"] != "org_acme" {
				t.Fatalf("verify: %d %v", resp.StatusCode, v)
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q on the response that sets the session", resp.Header.Get("Cache-Control"))
			}
			cookies := resp.Cookies()
			for _, name := range []string{"__Host-access_token", "__Host-refresh_token"} {
				i := slices.IndexFunc(cookies, func(c *http.Cookie) bool { return c.Name == name })
				if i < 0 {
					t.Fatalf("no %s cookie among %v", name, cookies)
				}
				ck := cookies[i]
				if !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge <= 0 {
					t.Errorf("%s: %s", name, ck)
				}
			}

			resp, v = imageHTTP(t, "GET", c.url+"/v2/user/me/", "", cookies...)
			user, _ := v["user"].(map[string]any)
			if resp.StatusCode != 200 || user["email"] != addr || v["organization_id"] != "org_acme" || v["login_method"] != "email_code" {
				t.Errorf("me with the session: %d %v", resp.StatusCode, v)
			}
			if resp, _ := imageHTTP(t, "GET", c.url+"/v2/user/me/", ""); resp.StatusCode != 401 {
				t.Errorf("me without a session: %d, want 401", resp.StatusCode)
			}
		})

		t.Run("dashauth check", func(t *testing.T) {
			stdout, stderr, err := imageCmd(time.Minute, "", "podman", "exec", c.name, "/dashauth", "check")
			// One line per check (contract, "Operations"): the configuration, then SMTP, the only dependency here.
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if err != nil || len(lines) != 2 || !strings.HasPrefix(lines[0], "ok config: ") ||
				!strings.HasPrefix(lines[1], "ok smtp: ") || !strings.Contains(lines[1], mailbox.port()) {
				t.Errorf("dashauth check: %v\n%s%s", err, stdout, stderr)
			}
		})

		t.Run("runs unprivileged", func(t *testing.T) {
			pid := c.inspect(t, "{{.State.Pid}}")
			cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
			if err != nil || string(cmdline) != "/dashauth\x00" {
				t.Fatalf("process %s is %q (%v), not /dashauth", pid, cmdline, err)
			}
			status := imageProcStatus(t, pid)
			for _, id := range []struct{ field, mapFile string }{{"Uid", "uid_map"}, {"Gid", "gid_map"}} {
				ids := status[id.field] // real, effective, saved, filesystem
				if slices.ContainsFunc(ids, func(h string) bool { return imageInsideID(t, pid, id.mapFile, h) == 0 }) || len(ids) != 4 {
					t.Errorf("%s %v: the process runs as root in its container", id.field, ids)
				}
			}
			if got := strings.Join(status["CapEff"], ""); strings.Trim(got, "0") != "" {
				t.Errorf("effective capabilities %s, want none", got)
			}
			if got := strings.Join(status["NoNewPrivs"], ""); got != "1" {
				t.Errorf("NoNewPrivs %s, want 1", got)
			}
		})

		t.Run("SIGTERM exits 0, secrets not logged", func(t *testing.T) {
			imageMust(t, "podman", "stop", "-t", "60", c.name)
			if got := c.inspect(t, "{{.State.ExitCode}}"); got != "0" {
				t.Errorf("exit code %s after SIGTERM, want 0", got)
			}
			logs := c.logs(t)
			if !strings.Contains(logs, `"msg":"stopped"`) {
				t.Errorf("no line says it stopped:\n%s", logs)
			}
			for _, secret := range []string{jwtSecret, code} {
				if secret != "" && strings.Contains(logs, secret) {
					t.Errorf("the log holds a secret (%.6s…):\n%s", secret, logs)
				}
			}
		})
	})
}
