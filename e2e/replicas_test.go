package e2e

// Issue 9's second proof, "the real thing": three real dashauth processes on one redis-server, a test SMTP server
// that can hold and drop, a stand-in WorkOS API, and WorkOS's retries played by the test. Each scenario stops a
// delivery at one precise point (a replica killed before SMTP, during DATA, after the 250; a caller that hangs up; a
// SIGTERM; Redis gone) and checks the promise: never lose a mail; never send two, except when the process dies
// between SMTP's 250 and the done mark, and then exactly one extra with the same Message-ID.
//
// Every point is reached by waiting for an event, never by sleeping: the stand-ins hold the exchange and say when
// they hold it, the test acts, then lets go. "The lease ran out" is played by shortening the claim's TTL in Redis,
// which is all that 60 seconds passing would do. Names here start with replica, apart from the other e2e files.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
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

const (
	replicaKeyPrefix     = "dashauth:" // REDIS_KEY_PREFIX's default
	replicaAPIKey        = "sk_test_replicas_api_key"
	replicaWebhookSecret = "whsec_replicas_webhook_secret"
	replicaClientID      = "client_01HREPL1CAS0000000000000"
	replicaFrom          = "codes@dashauth.test"
	replicaJWTSecret     = "replicas-e2e-jwt-secret-0123456789abcdef"
	replicaLease         = 60 * time.Second     // webhook.go's webhookLease
	replicaDoneTTL       = 259200 * time.Second // the contract: done event ids are kept 3 days
	replicaWait          = 15 * time.Second     // the bound of every wait for something that must happen
)

// TestReplicas runs the scenarios in order on one cluster: each uses its own event and recipient, restarts the
// replicas the previous one killed, and the one that kills Redis comes last. A failing scenario prints its timeline
// (the test's notes, the stand-ins' and every replica's log lines, in order); REPLICAS_TIMELINE=1 prints it always.
func TestReplicas(t *testing.T) {
	c := newReplicaCluster(t)
	for _, sc := range []struct {
		name string
		run  func(t *testing.T, c *replicaCluster)
	}{
		{"plain_three_copies", replicaPlain},
		{"kill9_before_smtp", replicaKillBeforeSMTP},
		{"kill9_during_data", replicaKillDuringData},
		{"kill9_after_250", replicaKillAfter250},
		{"frozen_past_lease", replicaFrozenPastLease},
		{"smtp_drops_after_data", replicaSMTPDrops},
		{"caller_hangs_up", replicaCallerHangsUp},
		{"sigterm_during_delivery", replicaSIGTERM},
		{"sigterm_after_hang_up", replicaSIGTERMAfterHangUp},
		{"redis_killed", replicaRedisKilled},
	} {
		t.Run(sc.name, func(t *testing.T) {
			mark := c.mark()
			t.Cleanup(func() {
				if t.Failed() || os.Getenv("REPLICAS_TIMELINE") == "1" {
					t.Logf("timeline (test notes and replica logs):\n%s", c.since(mark))
				}
				if t.Failed() { // the next scenario starts from fresh replicas, not from this one's wreck
					c.stop()
				}
			})
			c.ensureUp(t)
			sc.run(t, c)
		})
	}
}

// 1. One event, three concurrent copies, one to each replica. SMTP holds the first claimant's mail in DATA until the
// other two have answered 409 (so the overlap is certain, not a matter of timing); then the mail is accepted, the
// winner answers 200, and the others' retries 200 duplicate.
func replicaPlain(t *testing.T, c *replicaCluster) {
	ev := c.newEvent(t, "plain")
	plan := c.smtp.plan(ev.email, &replicaMailPlan{hold: true})
	answers := make(chan replicaAnswer, len(c.procs))
	for _, p := range c.procs {
		go func() { answers <- c.post(context.Background(), p, ev) }()
	}
	replicaAwait(t, plan.held, "a replica to reach DATA")
	var losers []string
	for range 2 {
		a := replicaReceive(t, answers)
		c.wantAnswer(t, a, http.StatusConflict, "delivery_in_progress")
		losers = append(losers, a.from)
	}
	plan.release()
	winner := replicaReceive(t, answers)
	c.wantAnswer(t, winner, http.StatusOK, "delivered")
	for _, name := range losers {
		c.wantAnswer(t, c.send(t, c.proc(name), ev), http.StatusOK, "duplicate")
	}
	c.wantMails(t, ev, 1) // and no 2xx came before the mail was accepted
	c.wantDone(t, ev)
}

// 2. A dies while it waits for WorkOS's magic auth: its claim stays until the lease runs out (a retry meanwhile
// answers 409), then the retry to B delivers.
func replicaKillBeforeSMTP(t *testing.T, c *replicaCluster) {
	ev := c.newEvent(t, "before-smtp")
	fetching := c.workos.stall(ev.magicAuthID)
	a, b := c.procs[0], c.procs[1]
	first := c.postAsync(a, ev)
	replicaAwait(t, fetching.arrived, "A to fetch the magic auth")
	c.wantClaimed(t, ev)
	a.kill9(t)
	c.wantNoAnswer(t, replicaReceive(t, first))
	c.wantAnswer(t, c.send(t, b, ev), http.StatusConflict, "delivery_in_progress")
	c.expireLease(t, ev)
	c.wantAnswer(t, c.send(t, b, ev), http.StatusOK, "delivered")
	c.wantMails(t, ev, 1)
	c.wantDone(t, ev)
	if n := c.workos.fetches(ev.magicAuthID); n != 2 {
		t.Errorf("WorkOS served the magic auth %d times, want 2 (A's, then B's)", n)
	}
}

// 3. A dies while SMTP holds the answer to its final ".": the mail was never acknowledged, so the server drops it
// (as a real one does when the client goes away); after the lease, B delivers the one mail.
func replicaKillDuringData(t *testing.T, c *replicaCluster) {
	ev := c.newEvent(t, "during-data")
	plan := c.smtp.plan(ev.email, &replicaMailPlan{hold: true})
	a, b := c.procs[0], c.procs[1]
	first := c.postAsync(a, ev)
	replicaAwait(t, plan.held, "A to send the mail's final dot")
	a.kill9(t)
	replicaAwait(t, plan.discarded, "the SMTP server to drop A's unacknowledged mail")
	c.wantNoAnswer(t, replicaReceive(t, first))
	c.wantAnswer(t, c.send(t, b, ev), http.StatusConflict, "delivery_in_progress")
	c.expireLease(t, ev)
	c.wantAnswer(t, c.send(t, b, ev), http.StatusOK, "delivered")
	c.wantMails(t, ev, 1)
	c.wantDone(t, ev)
}

// 4. The named window: A dies after SMTP's 250, before its done mark lands. Redis writes are paused just before the
// 250 is sent, so A's done mark waits inside Redis, where the test sees it blocked (CLIENT LIST); A is killed there, the
// paused command dies with its connection, and B's retry after the lease mails again: exactly two mails, with one
// Message-ID, which lets mail systems drop the second.
func replicaKillAfter250(t *testing.T, c *replicaCluster) {
	ev := c.newEvent(t, "after-250")
	pause := func() { // on the SMTP server's goroutine, where t.Fatal may not be called
		if _, err := c.redis.do("CLIENT", "PAUSE", strconv.Itoa(int(replicaWait/time.Millisecond)), "WRITE"); err != nil {
			t.Errorf("CLIENT PAUSE: %v", err)
		}
	}
	c.smtp.plan(ev.email, &replicaMailPlan{beforeAccept: pause})
	t.Cleanup(func() { c.redis.do("CLIENT", "UNPAUSE") })
	a, b := c.procs[0], c.procs[1]
	first := c.postAsync(a, ev)
	c.redis.waitBlockedWrite(t) // A is the only client at work: its done mark
	c.note("test: A's done mark is blocked in Redis")
	if n := len(c.smtp.mailsTo(ev.email)); n != 1 {
		t.Fatalf("%d mails accepted when A reached its done mark, want 1", n)
	}
	a.kill9(t)
	c.wantNoAnswer(t, replicaReceive(t, first))
	c.redis.must(t, "CLIENT", "UNPAUSE")
	c.wantClaimed(t, ev) // the done mark never landed: A died inside the window
	c.wantAnswer(t, c.send(t, b, ev), http.StatusConflict, "delivery_in_progress")
	c.expireLease(t, ev)
	c.wantAnswer(t, c.send(t, b, ev), http.StatusOK, "delivered")
	mails := c.wantMails(t, ev, 2)
	if mails[0].messageID != mails[1].messageID {
		t.Errorf("the two mails carry Message-IDs %q and %q, want one", mails[0].messageID, mails[1].messageID)
	}
	c.wantDone(t, ev)
}

// 5. A freezes (SIGSTOP) while it waits for WorkOS, for longer than its lease: B delivers meanwhile. When A wakes
// with the magic auth, its renewal just before the mail finds the claim no longer its own: it mails nothing, answers
// 409, and leaves B's done mark alone; WorkOS's next retry answers 200 duplicate.
func replicaFrozenPastLease(t *testing.T, c *replicaCluster) {
	ev := c.newEvent(t, "frozen")
	fetching := c.workos.stall(ev.magicAuthID)
	a, b := c.procs[0], c.procs[1]
	first := c.postAsync(a, ev)
	replicaAwait(t, fetching.arrived, "A to fetch the magic auth")
	c.note("test: kill -STOP %s", a.name)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.cmd.Process.Signal(syscall.SIGCONT) })
	c.expireLease(t, ev)
	c.wantAnswer(t, c.send(t, b, ev), http.StatusOK, "delivered")
	fetching.release() // the answer waits in A's socket
	mark := c.note("test: kill -CONT %s", a.name)
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c.wantAnswer(t, replicaReceive(t, first), http.StatusConflict, "delivery_in_progress")
	a.waitLog(t, "A to say its lease ran out", mark, func(l replicaLogLine) bool {
		msg, _ := l.fields["msg"].(string)
		return strings.Contains(msg, "lease ran out") && l.fields["event"] == ev.id
	})
	c.wantMails(t, ev, 1)
	c.wantDone(t, ev)
	c.wantAnswer(t, c.send(t, a, ev), http.StatusOK, "duplicate")
}

// 6. SMTP drops the connection after DATA, without a verdict: A answers 503 and releases its claim at once, so
// WorkOS's next retry (here to B) delivers without waiting for the lease.
func replicaSMTPDrops(t *testing.T, c *replicaCluster) {
	ev := c.newEvent(t, "smtp-drop")
	plan := c.smtp.plan(ev.email, &replicaMailPlan{drop: true})
	a, b := c.procs[0], c.procs[1]
	c.wantAnswer(t, c.send(t, a, ev), http.StatusServiceUnavailable, "delivery_failed")
	replicaAwait(t, plan.discarded, "the SMTP server to drop the connection")
	if v, ok := c.keyValue(t, ev); ok {
		t.Fatalf("after a failed delivery the claim holds %q, want it released", v)
	}
	c.wantAnswer(t, c.send(t, b, ev), http.StatusOK, "delivered")
	c.wantMails(t, ev, 1)
	c.wantDone(t, ev)
}

// 7. WorkOS stops waiting while SMTP holds the mail: A notices the hang-up (its handler returns), a retry to B
// overlapping it answers 409, the delivery runs to its end, and the next retry answers 200 duplicate.
func replicaCallerHangsUp(t *testing.T, c *replicaCluster) {
	ev := c.newEvent(t, "hang-up")
	plan := c.smtp.plan(ev.email, &replicaMailPlan{hold: true})
	a, b := c.procs[0], c.procs[1]
	mark := c.hangUpWhileHeld(t, a, ev, plan)
	c.wantAnswer(t, c.send(t, b, ev), http.StatusConflict, "delivery_in_progress")
	plan.release()
	a.waitLog(t, "A's delivery to end", mark, func(l replicaLogLine) bool {
		return l.fields["msg"] == "webhook" && l.fields["event"] == ev.id && l.fields["outcome"] == "delivered"
	})
	c.wantDone(t, ev)
	c.wantAnswer(t, c.send(t, b, ev), http.StatusOK, "duplicate")
	c.wantMails(t, ev, 1)
}

// 8. SIGTERM while SMTP holds the mail: A drains, finishes the delivery, answers its caller 200, logs "stopped" and
// exits 0; a retry to B answers 200 duplicate.
func replicaSIGTERM(t *testing.T, c *replicaCluster) {
	ev := c.newEvent(t, "sigterm")
	plan := c.smtp.plan(ev.email, &replicaMailPlan{hold: true})
	a, b := c.procs[0], c.procs[1]
	first := c.postAsync(a, ev)
	replicaAwait(t, plan.held, "A to send the mail's final dot")
	a.terminate(t)
	c.wantAnswer(t, c.send(t, b, ev), http.StatusConflict, "delivery_in_progress")
	plan.release()
	c.wantAnswer(t, replicaReceive(t, first), http.StatusOK, "delivered")
	a.wantCleanExit(t)
	c.wantMails(t, ev, 1)
	c.wantDone(t, ev)
	c.wantAnswer(t, c.send(t, b, ev), http.StatusOK, "duplicate")
	c.wantMails(t, ev, 1)
}

// 9. SIGTERM after the caller hung up: no request is in flight any more, only the delivery, which the drain waits
// for all the same: one mail, key done, exit 0.
func replicaSIGTERMAfterHangUp(t *testing.T, c *replicaCluster) {
	ev := c.newEvent(t, "sigterm-hang-up")
	plan := c.smtp.plan(ev.email, &replicaMailPlan{hold: true})
	a, b := c.procs[0], c.procs[1]
	c.hangUpWhileHeld(t, a, ev, plan)
	a.terminate(t)
	plan.release()
	a.wantCleanExit(t)
	c.wantMails(t, ev, 1)
	c.wantDone(t, ev)
	c.wantAnswer(t, c.send(t, b, ev), http.StatusOK, "duplicate")
}

// 10. Redis is gone: the event is still mailed, once, with 200, and counted as undeduplicated. Redis comes back
// empty, and de-duplication works again on the replicas' new connections.
func replicaRedisKilled(t *testing.T, c *replicaCluster) {
	a, b := c.procs[0], c.procs[1]
	c.redis.kill()
	c.note("test: redis-server killed")
	ev := c.newEvent(t, "no-redis")
	c.wantAnswer(t, c.send(t, a, ev), http.StatusOK, "delivered")
	c.wantMails(t, ev, 1)
	if n := a.metric(t, "dashauth_webhook_undeduped_total"); n != 1 {
		t.Errorf("dashauth_webhook_undeduped_total on A = %d, want 1", n)
	}
	c.redis.restart(t)
	c.note("test: redis-server restarted")
	again := c.newEvent(t, "redis-back")
	c.wantAnswer(t, c.send(t, a, again), http.StatusOK, "delivered")
	c.wantAnswer(t, c.send(t, b, again), http.StatusOK, "duplicate")
	c.wantMails(t, again, 1)
	c.wantDone(t, again)
}

// replicaCluster is the stage: Redis, the stand-ins, the replicas A, B and C, and a timeline of what happened.
type replicaCluster struct {
	bin    string
	redis  *replicaRedis
	workos *replicaWorkOS
	smtp   *replicaSMTP
	client *http.Client
	procs  []*replicaProc // A, B, C; a dead one is replaced by ensureUp
	start0 time.Time

	mu       sync.Mutex // guards the fields below
	timeline []string
	answers  map[string][]replicaAnswer // by event id
	all      []*replicaProc             // every process started, for the cleanup
	starts   map[string]int
}

func newReplicaCluster(t *testing.T) *replicaCluster {
	c := &replicaCluster{bin: buildDashauth(t), start0: time.Now(), starts: map[string]int{}, answers: map[string][]replicaAnswer{},
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	c.redis = startReplicaRedis(t)
	c.workos = startReplicaWorkOS(t, c.note)
	c.smtp = startReplicaSMTP(t, c.note)
	t.Cleanup(c.stop) // runs before the stand-ins and Redis stop
	c.procs = make([]*replicaProc, 3)
	c.ensureUp(t)
	return c
}

// note adds a line to the timeline and returns its place: a smaller place happened first.
func (c *replicaCluster) note(format string, args ...any) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timeline = append(c.timeline, fmt.Sprintf("%6dms %s", time.Since(c.start0).Milliseconds(), fmt.Sprintf(format, args...)))
	return len(c.timeline) - 1
}

func (c *replicaCluster) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timeline)
}

func (c *replicaCluster) since(mark int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.timeline[mark:], "\n")
}

// ensureUp starts a replica in the place of each one that is not running, on a new port.
func (c *replicaCluster) ensureUp(t *testing.T) {
	t.Helper()
	for i, p := range c.procs {
		if p == nil || p.dead() {
			c.procs[i] = c.startProc(t, string(rune('A'+i)))
		}
	}
}

// proc returns the running replica called name (as "A2").
func (c *replicaCluster) proc(name string) *replicaProc {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	panic("no replica " + name)
}

func (c *replicaCluster) startProc(t *testing.T, letter string) *replicaProc {
	t.Helper()
	c.mu.Lock()
	c.starts[letter]++
	name := letter + strconv.Itoa(c.starts[letter])
	c.mu.Unlock()
	port := freeLocalPort(t)
	origin := fmt.Sprintf("http://localhost:%d", port)
	p := &replicaProc{name: name, url: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{}), c: c}
	p.cmd = exec.Command(c.bin)
	p.cmd.Env = []string{
		fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", port),
		"DASHBOARD_URL=" + origin,
		"API_URL=" + origin,
		"LOG_LEVEL=debug",
		"JWT_SECRET=" + replicaJWTSecret,
		"REDIS_URL=redis://" + c.redis.addr(),
		"IS_WORKOS_INTEGRATED=true",
		"WORKOS_CLIENT_ID=" + replicaClientID,
		"WORKOS_API_KEY=" + replicaAPIKey,
		"WORKOS_WEBHOOK_SECRET=" + replicaWebhookSecret,
		"WORKOS_SIGNIN_BASE_URL=https://replicas.authkit.app",
		"WORKOS_API_BASE_URL=" + c.workos.srv.URL,
		"SMTP_HOST=127.0.0.1",
		"SMTP_PORT=" + c.smtp.port(),
		"SMTP_TLS=none",
		"SMTP_FROM=" + replicaFrom,
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.all = append(c.all, p)
	c.mu.Unlock()
	c.note("test: started %s (pid %d) on %s", name, p.cmd.Process.Pid, p.url)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.record(sc.Text())
		}
		io.Copy(io.Discard, stderr)
		p.exitErr = p.cmd.Wait() // read only after exited is closed
		c.note("%s exited: %v", name, cmp.Or[error](p.exitErr, errors.New("status 0")))
		close(p.exited)
	}()
	p.waitLog(t, name+" to listen", -1, func(l replicaLogLine) bool { return l.fields["msg"] == "listening" })
	return p
}

// stop kills every replica still running: a test that failed may have left one holding a delivery, which a SIGTERM
// would wait for.
func (c *replicaCluster) stop() {
	c.mu.Lock()
	all := c.all
	c.mu.Unlock()
	for _, p := range all {
		if !p.dead() {
			p.cmd.Process.Kill()
		}
		<-p.exited
	}
}

// replicaProc is one dashauth process and its log.
type replicaProc struct {
	name, url string
	cmd       *exec.Cmd
	c         *replicaCluster
	exited    chan struct{} // closed once the process exited and its log was read to the end
	exitErr   error

	mu   sync.Mutex
	logs []replicaLogLine
}

type replicaLogLine struct {
	seq    int // place in the cluster's timeline
	fields map[string]any
}

func (p *replicaProc) record(line string) {
	seq := p.c.note("%s | %s", p.name, line)
	var fields map[string]any
	if json.Unmarshal([]byte(line), &fields) != nil {
		return
	}
	p.mu.Lock()
	p.logs = append(p.logs, replicaLogLine{seq, fields})
	p.mu.Unlock()
}

func (p *replicaProc) dead() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// waitLog waits for a log line logged after the timeline's place after that match accepts; the process exiting first
// fails the test.
func (p *replicaProc) waitLog(t *testing.T, what string, after int, match func(replicaLogLine) bool) replicaLogLine {
	t.Helper()
	var found replicaLogLine
	replicaEventually(t, what, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.logs {
			if l.seq > after && match(l) {
				found = l
				return true
			}
		}
		if p.dead() {
			t.Fatalf("waiting for %s: %s exited (%v)", what, p.name, p.exitErr)
		}
		return false
	})
	return found
}

func (p *replicaProc) lastLog() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.logs) == 0 {
		return nil
	}
	return p.logs[len(p.logs)-1].fields
}

// kill9 crashes the process (SIGKILL) and waits until it is gone.
func (p *replicaProc) kill9(t *testing.T) {
	t.Helper()
	p.c.note("test: kill -9 %s", p.name)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	replicaAwait(t, p.exited, p.name+" to die")
}

// terminate sends SIGTERM, as an orchestrator stops a pod, and waits until the process says it is draining.
func (p *replicaProc) terminate(t *testing.T) {
	t.Helper()
	mark := p.c.note("test: kill -TERM %s", p.name)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, p.name+" to start draining", mark, func(l replicaLogLine) bool {
		msg, _ := l.fields["msg"].(string)
		return strings.HasPrefix(msg, "shutting down")
	})
}

// wantCleanExit waits for the process to exit and checks it stopped as the contract says: status 0, "stopped" last.
func (p *replicaProc) wantCleanExit(t *testing.T) {
	t.Helper()
	replicaAwait(t, p.exited, p.name+" to exit")
	if p.exitErr != nil {
		t.Errorf("%s exited with %v after SIGTERM, want status 0", p.name, p.exitErr)
	}
	if last := p.lastLog(); last["msg"] != "stopped" {
		t.Errorf("%s's last log line is %v, want msg \"stopped\"", p.name, last)
	}
}

// metric reads an unlabelled counter from /metrics.
func (p *replicaProc) metric(t *testing.T, series string) int {
	t.Helper()
	res, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric %s: %q", series, line)
			}
			return n
		}
	}
	t.Fatalf("no %s in %s's /metrics", series, p.name)
	return 0
}

// replicaEvent is a magic_auth.created event and the magic auth the stand-in WorkOS holds for it.
type replicaEvent struct {
	id, magicAuthID, email, code string
	body                         []byte
}

// newEvent makes an event whose mail goes to <name>@example.com, and registers its magic auth with the stand-in.
func (c *replicaCluster) newEvent(t *testing.T, name string) replicaEvent {
	t.Helper()
	now := time.Now().UTC()
	ev := replicaEvent{id: "event_" + replicaULID(), magicAuthID: "magic_auth_" + replicaULID(),
		email: name + "@example.com", code: fmt.Sprintf("%06d", mathrand.IntN(1_000_000))}
	ma := map[string]string{"object": "magic_auth", "id": ev.magicAuthID, "user_id": "user_" + replicaULID(),
		"email": ev.email, "code": ev.code, "expires_at": replicaTime(now.Add(10 * time.Minute)),
		"created_at": replicaTime(now), "updated_at": replicaTime(now)}
	c.workos.add(ma)
	data := map[string]string{} // the event carries the magic auth without its code, as WorkOS's does
	for k, v := range ma {
		if k != "code" {
			data[k] = v
		}
	}
	body, err := json.Marshal(map[string]any{"id": ev.id, "event": "magic_auth.created", "data": data,
		"created_at": replicaTime(now)})
	if err != nil {
		t.Fatal(err)
	}
	ev.body = body
	c.note("test: event %s (magic auth %s) for %s", ev.id, ev.magicAuthID, ev.email)
	return ev
}

func replicaTime(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z07:00") }

// replicaULID returns 26 Crockford base32 characters, as WorkOS's ids end.
func replicaULID() string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	b := make([]byte, 26)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	b[0] = alphabet[b[0]&7] // a ULID's first character is at most 7
	return string(b)
}

// replicaAnswer is what one delivery attempt got: a status and the body's status or error, or a transport error.
type replicaAnswer struct {
	from    string
	status  int
	outcome string
	err     error
	seq     int // when it arrived, in the timeline
}

// post delivers the event to p once, as WorkOS does: signed with the time of sending.
func (c *replicaCluster) post(ctx context.Context, p *replicaProc, ev replicaEvent) replicaAnswer {
	ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
	mac := hmac.New(sha256.New, []byte(replicaWebhookSecret))
	mac.Write([]byte(ts + "."))
	mac.Write(ev.body)
	a := replicaAnswer{from: p.name}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/v1/workos_webhook/", bytes.NewReader(ev.body))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("WorkOS-Signature", "t="+ts+", v1="+hex.EncodeToString(mac.Sum(nil)))
	c.note("workos: POST %s to %s", ev.id, p.name)
	res, err := c.client.Do(req)
	if err != nil {
		a.err = err
		a.seq = c.note("workos: %s gave no answer: %v", p.name, err)
		return a
	}
	defer res.Body.Close()
	var body map[string]string
	json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&body)
	a.status, a.outcome = res.StatusCode, cmp.Or(body["status"], body["error"])
	a.seq = c.note("workos: %s answered %d %s", p.name, a.status, a.outcome)
	c.mu.Lock()
	c.answers[ev.id] = append(c.answers[ev.id], a)
	c.mu.Unlock()
	return a
}

// send posts and waits for the answer, within replicaWait.
func (c *replicaCluster) send(t *testing.T, p *replicaProc, ev replicaEvent) replicaAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), replicaWait)
	defer cancel()
	return c.post(ctx, p, ev)
}

// postAsync posts in the background; the answer arrives on the channel.
func (c *replicaCluster) postAsync(p *replicaProc, ev replicaEvent) <-chan replicaAnswer {
	ch := make(chan replicaAnswer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*replicaWait)
		defer cancel()
		ch <- c.post(ctx, p, ev)
	}()
	return ch
}

// hangUpWhileHeld plays WorkOS's HTTP client giving up: it posts the event to p, waits until SMTP holds its mail,
// hangs up, and waits until p's handler has returned (its request log line), so that the rest of the delivery runs
// with nobody waiting for it. It returns the timeline's place of the hang-up.
func (c *replicaCluster) hangUpWhileHeld(t *testing.T, p *replicaProc, ev replicaEvent, plan *replicaMailPlan) int {
	t.Helper()
	ctx, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	first := make(chan replicaAnswer, 1)
	go func() { first <- c.post(ctx, p, ev) }()
	replicaAwait(t, plan.held, p.name+" to send the mail's final dot")
	mark := c.note("test: the caller hangs up")
	hangUp()
	if got := replicaReceive(t, first); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("the caller that hung up got %+v, want its own cancellation", got)
	}
	p.waitLog(t, p.name+"'s handler to return after the hang-up", mark, func(l replicaLogLine) bool {
		return l.fields["msg"] == "request" && l.fields["path"] == "/v1/workos_webhook/"
	})
	return mark
}

func (c *replicaCluster) wantAnswer(t *testing.T, a replicaAnswer, status int, outcome string) {
	t.Helper()
	if a.err != nil || a.status != status || a.outcome != outcome {
		t.Fatalf("%s answered %d %q (err %v), want %d %q", a.from, a.status, a.outcome, a.err, status, outcome)
	}
}

// wantNoAnswer checks that a caller of a killed replica got no status at all: for WorkOS, a failure to retry.
func (c *replicaCluster) wantNoAnswer(t *testing.T, a replicaAnswer) {
	t.Helper()
	if a.err == nil {
		t.Fatalf("%s, killed, still answered %d %q", a.from, a.status, a.outcome)
	}
}

// wantMails checks that exactly n mails to the event's address were accepted, each carrying its code on a line of
// its own and the Message-ID <event id@SMTP_FROM's domain>, and that no replica answered the event 2xx before SMTP
// accepted the first (so a failing attempt can never make WorkOS stop retrying); it returns the mails.
func (c *replicaCluster) wantMails(t *testing.T, ev replicaEvent, n int) []replicaMail {
	t.Helper()
	mails := c.smtp.mailsTo(ev.email)
	if len(mails) != n {
		t.Fatalf("%d mails to %s accepted, want %d", len(mails), ev.email, n)
	}
	c.mu.Lock()
	answers := c.answers[ev.id]
	c.mu.Unlock()
	for _, a := range answers {
		if a.err == nil && a.status/100 == 2 && a.seq < mails[0].seq {
			t.Errorf("%s answered %d %s before SMTP accepted the mail", a.from, a.status, a.outcome)
		}
	}
	wantID := "<" + ev.id + "@dashauth.test>"
	for _, m := range mails {
		if m.messageID != wantID {
			t.Errorf("Message-ID %q, want %q", m.messageID, wantID)
		}
		if !strings.Contains(m.data, "\r\n"+ev.code+"\r\n") {
			t.Errorf("the mail does not carry the code %s on a line of its own:\n%s", ev.code, m.data)
		}
	}
	return mails
}

func (c *replicaCluster) key(ev replicaEvent) string { return replicaKeyPrefix + "webhook:" + ev.id }

// keyValue reads the event's dedup record.
func (c *replicaCluster) keyValue(t *testing.T, ev replicaEvent) (string, bool) {
	t.Helper()
	v := c.redis.must(t, "GET", c.key(ev))
	s, ok := v.(string)
	return s, ok
}

func (c *replicaCluster) pttl(t *testing.T, ev replicaEvent) time.Duration {
	t.Helper()
	ms, _ := c.redis.must(t, "PTTL", c.key(ev)).(int64)
	return time.Duration(ms) * time.Millisecond
}

// wantClaimed checks that a delivery holds the event: "claimed <token>" with at most the lease left.
func (c *replicaCluster) wantClaimed(t *testing.T, ev replicaEvent) {
	t.Helper()
	v, ok := c.keyValue(t, ev)
	if ttl := c.pttl(t, ev); !ok || !strings.HasPrefix(v, "claimed ") || ttl <= 0 || ttl > replicaLease {
		t.Fatalf("the event's record is %q (present %v) with %v left, want a claim of at most %v", v, ok, ttl, replicaLease)
	}
}

// expireLease plays the lease running out on a dead replica's claim: what 60 s would do, at once.
func (c *replicaCluster) expireLease(t *testing.T, ev replicaEvent) {
	t.Helper()
	c.wantClaimed(t, ev)
	if n := c.redis.must(t, "PEXPIRE", c.key(ev), "1"); n != int64(1) {
		t.Fatalf("PEXPIRE answered %v", n)
	}
	replicaEventually(t, "the claim to expire", func() bool { _, ok := c.keyValue(t, ev); return !ok })
	c.note("test: the lease on %s ran out", ev.id)
}

// wantDone checks that the event is marked done for the contract's 3 days.
func (c *replicaCluster) wantDone(t *testing.T, ev replicaEvent) {
	t.Helper()
	v, ok := c.keyValue(t, ev)
	if ttl := c.pttl(t, ev); v != "done" || ttl > replicaDoneTTL || ttl < replicaDoneTTL-time.Minute {
		t.Fatalf("the event's record is %q (present %v) with %v left, want \"done\" for %v", v, ok, ttl, replicaDoneTTL)
	}
}

// replicaAwait waits for ch to close or deliver.
func replicaAwait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(replicaWait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func replicaReceive(t *testing.T, ch <-chan replicaAnswer) replicaAnswer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(2 * replicaWait):
		t.Fatal("timed out waiting for a webhook answer")
		return replicaAnswer{}
	}
}

// replicaEventually polls cond until it holds, within replicaWait.
func replicaEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(replicaWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// replicaWorkOS is the stand-in WorkOS API: GET /user_management/magic_auth/{id} with the API key, nothing else.
type replicaWorkOS struct {
	srv  *httptest.Server
	note func(string, ...any) int

	mu     sync.Mutex
	auths  map[string]map[string]string
	stalls map[string]*replicaStall
	served map[string]int
}

// replicaStall holds one fetch of a magic auth: arrived closes when it comes; release lets it be answered.
type replicaStall struct {
	arrived, released chan struct{}
	once              sync.Once
}

func (s *replicaStall) release() { s.once.Do(func() { close(s.released) }) }

func startReplicaWorkOS(t *testing.T, note func(string, ...any) int) *replicaWorkOS {
	f := &replicaWorkOS{note: note, auths: map[string]map[string]string{}, stalls: map[string]*replicaStall{},
		served: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user_management/magic_auth/{id}", f.magicAuth)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		note("workos: 404 for %s %s", r.Method, r.URL.Path)
		replicaJSON(w, http.StatusNotFound, map[string]string{"code": "not_found"})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *replicaWorkOS) add(ma map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auths[ma["id"]] = ma
}

// stall makes the next fetch of the magic auth wait until it is released (then it is answered) or its caller goes
// away.
func (f *replicaWorkOS) stall(id string) *replicaStall {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &replicaStall{arrived: make(chan struct{}), released: make(chan struct{})}
	f.stalls[id] = st
	return st
}

// fetches counts the answers given for the magic auth.
func (f *replicaWorkOS) fetches(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.served[id]
}

func (f *replicaWorkOS) magicAuth(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+replicaAPIKey {
		f.note("workos: 401 for a fetch without the API key")
		replicaJSON(w, http.StatusUnauthorized, map[string]string{"code": "unauthorized"})
		return
	}
	id := r.PathValue("id")
	f.mu.Lock()
	ma, ok := f.auths[id]
	stall := f.stalls[id]
	delete(f.stalls, id)
	f.served[id]++
	f.mu.Unlock()
	switch {
	case !ok:
		replicaJSON(w, http.StatusNotFound, map[string]string{"code": "entity_not_found"})
	case stall != nil:
		f.note("workos: holding the fetch of %s", id)
		close(stall.arrived)
		select {
		case <-stall.released:
			f.note("workos: served %s after holding it", id)
			replicaJSON(w, http.StatusOK, ma)
		case <-r.Context().Done():
			f.note("workos: the caller fetching %s went away", id)
		case <-time.After(replicaWait):
			replicaJSON(w, http.StatusServiceUnavailable, map[string]string{"code": "stalled"})
		}
	default:
		f.note("workos: served %s", id)
		replicaJSON(w, http.StatusOK, ma)
	}
}

func replicaJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// replicaSMTP is a plain SMTP server on 127.0.0.1 that records the mails it acknowledged with 250, and answers a
// mail's final "." as the plan for its first recipient says, once.
type replicaSMTP struct {
	ln   net.Listener
	note func(string, ...any) int
	wg   sync.WaitGroup

	mu    sync.Mutex
	plans map[string]*replicaMailPlan
	mails []replicaMail
}

// replicaMailPlan is how the server treats the next mail to one address. The zero plan answers 250 at once.
type replicaMailPlan struct {
	hold         bool   // hold the reply to the final "." until release; a client that goes away meanwhile loses the mail
	drop         bool   // close the connection instead of replying to the final "."
	beforeAccept func() // runs just before the 250 is written

	held      chan struct{} // closed when a held mail's final "." arrived
	discarded chan struct{} // closed when the mail was dropped unacknowledged
	released  chan struct{}
	once      sync.Once
}

func (p *replicaMailPlan) release() { p.once.Do(func() { close(p.released) }) }

type replicaMail struct {
	to, messageID, data string
	seq                 int // when the 250 went out, in the timeline
}

func startReplicaSMTP(t *testing.T, note func(string, ...any) int) *replicaSMTP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &replicaSMTP{ln: ln, note: note, plans: map[string]*replicaMailPlan{}}
	t.Cleanup(func() { ln.Close(); s.wg.Wait() }) // after the replicas are gone, so no session is held
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(conn) })
		}
	})
	return s
}

func (s *replicaSMTP) port() string { return strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port) }

// plan sets how the next mail to the address is answered, and returns plan, ready to wait on.
func (s *replicaSMTP) plan(to string, plan *replicaMailPlan) *replicaMailPlan {
	plan.held, plan.discarded, plan.released = make(chan struct{}), make(chan struct{}), make(chan struct{})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans[to] = plan
	return plan
}

func (s *replicaSMTP) mailsTo(to string) []replicaMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []replicaMail
	for _, m := range s.mails {
		if m.to == to {
			out = append(out, m)
		}
	}
	return out
}

func (s *replicaSMTP) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(conn)
	reply := func(line string) { io.WriteString(conn, line+"\r\n") }
	reply("220 replicas ESMTP")
	var to []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			reply("250 replicas")
		case "MAIL":
			to = nil
			reply("250 ok")
		case "RCPT":
			_, path, _ := strings.Cut(arg, ":") // TO:<address>
			to = append(to, strings.Trim(path, "<> "))
			reply("250 ok")
		case "DATA":
			if len(to) == 0 {
				reply("503 no recipient")
				continue
			}
			reply("354 end with a dot")
			data, err := replicaReadData(br)
			if err != nil || !s.finish(conn, br, to[0], data) {
				return
			}
			to = nil
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

// finish answers a mail's final "."; false means the connection is done with.
func (s *replicaSMTP) finish(conn net.Conn, br *bufio.Reader, to, data string) bool {
	s.mu.Lock()
	p := s.plans[to]
	delete(s.plans, to)
	s.mu.Unlock()
	var peer chan error
	switch {
	case p == nil:
	case p.drop:
		s.note("smtp: dropping the connection after the DATA of a mail to %s", to)
		close(p.discarded)
		return false
	case p.hold:
		s.note("smtp: holding the reply to a mail to %s", to)
		close(p.held)
		// The client says nothing until it has the reply, so a read that returns means it went away. The reader is
		// used again only after this goroutine is done.
		peer = make(chan error, 1)
		go func() { _, err := br.Peek(1); peer <- err }()
		select {
		case <-p.released:
		case err := <-peer:
			s.note("smtp: the client went away while its mail to %s was held (%v): dropped, never acknowledged", to, err)
			close(p.discarded)
			return false
		}
	}
	if p != nil && p.beforeAccept != nil {
		p.beforeAccept()
	}
	s.mu.Lock()
	s.mails = append(s.mails, replicaMail{to: to, messageID: replicaMessageID(data), data: data,
		seq: s.note("smtp: 250 for a mail to %s, Message-ID %s", to, replicaMessageID(data))})
	s.mu.Unlock()
	io.WriteString(conn, "250 queued\r\n")
	if peer != nil {
		<-peer
	}
	return true
}

// replicaReadData reads a mail up to its final "." line, undoing dot-stuffing.
func replicaReadData(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if line == ".\r\n" {
			return b.String(), nil
		}
		b.WriteString(strings.TrimPrefix(line, "."))
	}
}

// replicaMessageID returns the mail's Message-ID header value.
func replicaMessageID(data string) string {
	head, _, _ := strings.Cut(data, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Message-ID") {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// replicaRedis is a private redis-server on a free loopback port, without persistence.
type replicaRedis struct {
	bin, dir string
	port     int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func startReplicaRedis(t *testing.T) *replicaRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const msg = "redis-server not found; install it: apt-get install -y redis-server"
		if os.Getenv("DASHAUTH_REQUIRE_REDIS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	r := &replicaRedis{bin: bin, dir: t.TempDir()}
	t.Cleanup(r.kill)
	for attempt := 0; ; attempt++ { // the free port may be taken before redis-server binds it
		r.port = freeLocalPort(t)
		err := r.start()
		if err == nil {
			return r
		}
		if attempt == 4 {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			t.Fatalf("redis-server did not start: %v\n%s", err, log)
		}
	}
}

func (r *replicaRedis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

func (r *replicaRedis) start() error {
	logfile, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logfile.Close() // the child has its own copy
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", r.dir, "--daemonize", "no")
	cmd.Stdout, cmd.Stderr = logfile, logfile
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, err := r.do("PING"); err == nil && v == "PONG" {
			return nil
		}
		select {
		case <-exited:
			return errors.New("redis-server exited")
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.kill()
			return errors.New("redis-server did not answer PING within 10 s")
		}
	}
}

// kill stops redis-server at once, as a crash does.
func (r *replicaRedis) kill() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		<-exited
	}
}

// restart starts redis-server again on the same port, empty.
func (r *replicaRedis) restart(t *testing.T) {
	t.Helper()
	if err := r.start(); err != nil {
		t.Fatalf("redis-server did not restart: %v", err)
	}
}

// waitBlockedWrite waits until a client's command is held by CLIENT PAUSE … WRITE: flags=b in CLIENT LIST.
func (r *replicaRedis) waitBlockedWrite(t *testing.T) {
	t.Helper()
	replicaEventually(t, "a write blocked in Redis", func() bool {
		list, _ := r.must(t, "CLIENT", "LIST").(string)
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " flags=b ") {
				return true
			}
		}
		return false
	})
}

func (r *replicaRedis) must(t *testing.T, args ...string) any {
	t.Helper()
	v, err := r.do(args...)
	if err != nil {
		t.Fatalf("redis %s: %v", strings.Join(args, " "), err)
	}
	return v
}

// do sends one command on a connection of its own and returns the reply: a string (status or bulk), an int64, nil
// or a []any.
func (r *replicaRedis) do(args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", r.addr(), 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return nil, err
	}
	return replicaReadReply(bufio.NewReader(conn))
}

func replicaReadReply(br *bufio.Reader) (any, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	n, _ := strconv.Atoi(line[1:])
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return int64(n), nil
	case '$':
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		var out []any
		for range max(n, 0) {
			v, err := replicaReadReply(br)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}
