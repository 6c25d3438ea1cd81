// Command run measures every row of dashauth's performance table, dashauth and its peers interleaved round by
// round, and writes RESULTS.md. It is what bench/run runs; see bench/README.md.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	rounds   = flag.Int("rounds", 6, "rounds of every measurement, the peers and dashauth interleaved")
	httpDur  = flag.Duration("http", 5*time.Second, "wrk duration of one HTTP round")
	benchDur = flag.String("benchtime", "1s", "go test -benchtime of one micro-benchmark round")
	out      = flag.String("out", "RESULTS.md", "where to write the results")
)

const secret = "bench-secret-0123456789abcdef0123456789abcdef"

func main() {
	if len(os.Args) == 3 && os.Args[1] == "bare" {
		// The peer of the HTTP rows: a bare net/http handler answering 200.
		log.Fatal(http.ListenAndServe(os.Args[2], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
		})))
	}
	flag.Parse()
	log.SetFlags(0)
	var rlim syscall.Rlimit // 1,000 idle connections need more descriptors than the default 1,024
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rlim) == nil && rlim.Cur < 8192 {
		rlim.Cur = min(8192, rlim.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rlim)
	}
	root, _ := filepath.Abs("..")
	tmp, err := os.MkdirTemp("", "dashauth-bench")
	check(err)
	defer os.RemoveAll(tmp)
	stealStart := steal()
	started := time.Now()

	redisAddr, stopRedis := startRedis(tmp)
	defer stopRedis()
	os.Setenv("DASHAUTH_BENCH_REDIS", redisAddr)

	log.Print("building the test binaries and dashauth")
	ours, peers := filepath.Join(tmp, "ours.test"), filepath.Join(tmp, "peers.test")
	run(root, "go", "test", "-c", "-o", ours, ".")
	run(".", "go", "test", "-c", "-o", peers, ".")
	bin := filepath.Join(tmp, "dashauth")
	runEnv(root, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")

	var rows []row
	for _, m := range []struct {
		what, ours, peer, goal string
		limit                  float64
	}{
		{"HS256 verify, every claim checked, vs golang-jwt/v5 (strictest options)", "BenchmarkVerifyToken", "BenchmarkVerifyTokenGolangJWT", "≤ 0.5x", 0.5},
		{"HS256 sign vs golang-jwt/v5", "BenchmarkSignToken", "BenchmarkSignTokenGolangJWT", "≤ 0.3x", 0.3},
		{"webhook signature check, 1 KiB body, vs workos-go webhooks.ValidatePayload", "BenchmarkVerifyWebhookSignature", "BenchmarkValidatePayloadWorkOS", "≤ 0.5x", 0.5},
		{"one SET NX PX round trip, one caller, vs go-redis v9", "BenchmarkRedisSetNX", "BenchmarkRedisSetNXGoRedis", "≤ 1.0x", 1.0},
		{"SET NX PX from 64 goroutines, vs go-redis's default pool", "BenchmarkRedisSetNXParallel", "BenchmarkRedisSetNXParallelGoRedis", "≤ 0.8x", 0.8},
	} {
		r := row{what: m.what, unit: "ns/op", goal: m.goal, lowerBetter: true, limit: m.limit}
		for i := range *rounds {
			log.Printf("%s: round %d", m.ours, i+1)
			// Alternate which side goes first, so neither always meets a warmer machine.
			p, o := 0.0, 0.0
			if i%2 == 0 {
				p, o = benchNs(peers, m.peer), benchNs(ours, m.ours)
			} else {
				o, p = benchNs(ours, m.ours), benchNs(peers, m.peer)
			}
			r.add(o, p)
		}
		rows = append(rows, r)
	}

	log.Print("HTTP rows")
	memRow := row{what: "authenticated GET /v2/user/me/, req/s, 64 keep-alive connections, vs a bare net/http handler", unit: "req/s", goal: "≥ 0.8x", limit: 0.8}
	redisRow := row{what: "the same with REDIS_URL (one Redis round trip per request)", unit: "req/s", goal: "≥ 0.5x", limit: 0.5}
	for i := range *rounds {
		log.Printf("HTTP round %d", i+1)
		bare := startBare(tmp)
		b := wrk(bare.url+"/", "")
		bare.stop()
		mem := startDashauth(bin, "")
		m := wrk(mem.url+"/v2/user/me/", mem.cookie)
		mem.stop()
		rd := startDashauth(bin, "redis://"+redisAddr)
		rr := wrk(rd.url+"/v2/user/me/", rd.cookie)
		rd.stop()
		memRow.add(m, b)
		redisRow.add(rr, b)
	}
	rows = append(rows, memRow, redisRow)

	log.Print("idle connections")
	rss := row{what: "resident memory holding 1,000 idle keep-alive connections after one me each, vs the bare handler", unit: "MiB", goal: "≤ 1.2x", lowerBetter: true, limit: 1.2}
	for i := range max(3, *rounds/2) {
		log.Printf("idle connections round %d", i+1)
		bare := startBare(tmp)
		b := holdConnections(bare, "/", "")
		bare.stop()
		d := startDashauth(bin, "")
		o := holdConnections(d, "/v2/user/me/", d.cookie)
		d.stop()
		rss.add(o, b)
	}
	rows = append(rows, rss)

	log.Print("binary and start")
	fi, err := os.Stat(bin)
	check(err)
	startRow := row{what: "start to first /healthz 200", unit: "ms", goal: "≤ 20 ms", lowerBetter: true}
	idleRow := row{what: "idle RSS after start", unit: "MiB", goal: "≤ 10 MiB", lowerBetter: true}
	for range *rounds {
		t0 := time.Now()
		d := startDashauth(bin, "")
		startRow.add(float64(d.ready.Sub(t0).Microseconds())/1000, 0)
		time.Sleep(time.Second)
		idleRow.add(vmRSS(d.cmd.Process.Pid), 0)
		d.stop()
	}

	stealEnd := steal()
	writeResults(rows, startRow, idleRow, float64(fi.Size())/(1<<20), stealStart, stealEnd, time.Since(started))
	log.Printf("wrote %s", *out)
}

// row is one line of the table: dashauth's numbers and its peer's, one pair per round.
type row struct {
	what, unit, goal  string
	lowerBetter       bool
	limit             float64 // the goal as a ratio, 0 when the goal is absolute
	ours, peer, ratio []float64
}

func (r *row) add(ours, peer float64) {
	r.ours, r.peer = append(r.ours, ours), append(r.peer, peer)
	if peer > 0 {
		r.ratio = append(r.ratio, ours/peer)
	}
}

func stats(v []float64) (lo, med, hi float64) {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0, 0, 0
	}
	med = s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[0], med, s[len(s)-1]
}

func (r row) met() string {
	_, m, _ := stats(r.ratio)
	switch {
	case r.limit == 0:
		return ""
	case r.lowerBetter && m <= r.limit, !r.lowerBetter && m >= r.limit:
		return "met"
	}
	return "**not met**"
}

func num(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func triple(v []float64) string {
	lo, m, hi := stats(v)
	return fmt.Sprintf("%s (%s–%s)", num(m), num(lo), num(hi))
}

func writeResults(rows []row, startRow, idleRow row, binMiB float64, s0, s1 [2]uint64, took time.Duration) {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Benchmark results\n\nWritten by `bench/run` on %s in %s. Machine: %s, %d CPUs (%s), %s, %s; Redis %s on loopback.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), took.Round(time.Second), cpuModel(), runtime.NumCPU(), host,
		kernel(), runtime.Version(), redisVersion())
	stealPct := 0.0
	if s1[1] > s0[1] {
		stealPct = 100 * float64(s1[0]-s0[0]) / float64(s1[1]-s0[1])
	}
	fmt.Fprintf(&b, "CPU steal during the run: %.1f%% of CPU time. Each row is %d rounds (the idle-connection row %d), dashauth and its peer interleaved; numbers are median (min–max), the ratio is the median of the per-round ratios dashauth/peer.\n\n",
		stealPct, *rounds, max(3, *rounds/2))
	b.WriteString("| what | unit | dashauth | peer | ratio | goal | |\n| --- | --- | ---: | ---: | ---: | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.what, r.unit, triple(r.ours), triple(r.peer), triple(r.ratio)+"x", r.goal, r.met())
	}
	_, start, _ := stats(startRow.ours)
	_, idle, _ := stats(idleRow.ours)
	verdict := "met"
	if binMiB > 7.5 || start > 20 || idle > 10 {
		verdict = "**not met**"
	}
	fmt.Fprintf(&b, "| stripped static binary / start to first `/healthz` 200 / idle RSS | MiB / ms / MiB | %.1f / %s / %s | | | ≤ 7.5 MiB / 20 ms / 10 MiB | %s |\n",
		binMiB, triple(startRow.ours), triple(idleRow.ours), verdict)
	check(os.WriteFile(*out, []byte(b.String()), 0o644))
	fmt.Print(b.String())
}

var nsPerOp = regexp.MustCompile(`\s([0-9.]+) ns/op`)

// benchNs runs one benchmark once in its test binary and returns its ns/op.
func benchNs(testBin, name string) float64 {
	cmd := exec.Command(testBin, "-test.run", "^$", "-test.bench", "^"+name+"$", "-test.benchtime", *benchDur, "-test.count", "1")
	cmd.Env = os.Environ()
	b, err := cmd.CombinedOutput()
	m := nsPerOp.FindSubmatch(b)
	if err != nil || m == nil {
		log.Fatalf("%s %s: %v\n%s", testBin, name, err, b)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

type server struct {
	url, cookie string
	cmd         *exec.Cmd
	ready       time.Time
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer ln.Close()
	return ln.Addr().String()
}

func startBare(tmp string) *server {
	addr := freeAddr()
	cmd := exec.Command(os.Args[0], "bare", addr)
	check(cmd.Start())
	s := &server{url: "http://" + addr, cmd: cmd}
	s.waitHealthy("/")
	return s
}

// startDashauth runs the real binary in development mode (no configuration but its port, a fixed key, and
// REDIS_URL when given) and signs in once by email+code, the code read from its log.
func startDashauth(bin, redisURL string) *server {
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin)
	cmd.Env = []string{"LISTEN_ADDR=" + addr, "DASHBOARD_URL=http://localhost:" + port, "API_URL=http://localhost:" + port,
		"JWT_SECRET=" + secret, "ACCESS_TOKEN_TTL=1h", "REDIS_URL=" + redisURL,
		// A prefix of its own, so that a process started on the shared Redis within a minute of the last one is not
		// refused its code by the per-address limit.
		"REDIS_KEY_PREFIX=bench:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"}
	stderr, err := cmd.StderrPipe()
	check(err)
	check(cmd.Start())
	s := &server{url: "http://" + addr, cmd: cmd}
	codes := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "login code for ") {
				codes <- line.Msg[strings.LastIndex(line.Msg, " ")+1:]
			}
		}
	}()
	s.waitHealthy("/healthz")
	post := func(path, body string) *http.Response {
		res, err := http.Post(s.url+path, "application/json", strings.NewReader(body))
		check(err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	post("/v2/user/login_code/", `{"email":"bench@example.com"}`)
	var code string
	select {
	case code = <-codes:
	case <-time.After(10 * time.Second):
		log.Fatal("dashauth logged no code")
	}
	res := post("/v2/user/login_code/verify/", `{"email":"bench@example.com","code":"`+code+`"}`)
	for _, c := range res.Cookies() {
		if c.Name == "access_token" {
			s.cookie = c.Name + "=" + c.Value
		}
	}
	if s.cookie == "" {
		log.Fatalf("sign-in failed: %s", res.Status)
	}
	return s
}

func (s *server) waitHealthy(path string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(s.url + path); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				s.ready = time.Now()
				return
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	log.Fatalf("%s did not answer %s", s.url, path)
}

var wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrk drives url with 64 keep-alive connections on 2 threads and returns requests per second; any non-2xx answer
// is an error.
func wrk(url, cookie string) float64 {
	args := []string{"-t2", "-c64", "-d" + httpDur.String(), "--latency"}
	if cookie != "" {
		args = append(args, "-H", "Cookie: "+cookie)
	}
	b, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	m := wrkRate.FindSubmatch(b)
	if err != nil || m == nil || strings.Contains(string(b), "Non-2xx") {
		log.Fatalf("wrk %s: %v\n%s", url, err, b)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// holdConnections opens 1,000 keep-alive connections, makes one request on each, keeps them open and idle, and
// returns the server's resident memory in MiB.
func holdConnections(s *server, path, cookie string) float64 {
	host := strings.TrimPrefix(s.url, "http://")
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n"
	if cookie != "" {
		req += "Cookie: " + cookie + "\r\n"
	}
	req += "\r\n"
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 1000 {
		c, err := net.Dial("tcp", host)
		check(err)
		conns = append(conns, c)
		_, err = io.WriteString(c, req)
		check(err)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		check(err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			log.Fatalf("%s%s: %s", s.url, path, res.Status)
		}
	}
	time.Sleep(2 * time.Second)
	return vmRSS(s.cmd.Process.Pid)
}

func vmRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	log.Fatal("no VmRSS")
	return 0
}

// steal returns the CPU's steal and total jiffies from /proc/stat.
func steal() [2]uint64 {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	var total, st uint64
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseUint(f, 10, 64)
		total += n
		if i == 7 {
			st = n
		}
	}
	return [2]uint64{st, total}
}

func startRedis(tmp string) (string, func()) {
	addr := freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp)
	check(cmd.Start())
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		} else if i == 200 {
			log.Fatalf("redis-server did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, func() { cmd.Process.Kill(); cmd.Wait() }
}

func redisVersion() string {
	b, _ := exec.Command("redis-server", "--version").Output()
	if f := strings.Fields(string(b)); len(f) > 2 {
		return strings.TrimPrefix(f[2], "v=")
	}
	return "?"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
}

func run(dir string, name string, args ...string) { runEnv(dir, nil, name, args...) }

func runEnv(dir string, env []string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
}

func check(err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}
