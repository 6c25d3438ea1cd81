package main

// dashauth check: the configuration as a start loads it, then Redis, SMTP and WorkOS reached without a trace a user
// would see, one "ok"/"fail" line each, no secret printed, success only when every line is ok.

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// runCheck runs "dashauth check" through run, with env; check writes nothing to stderr.
func runCheck(t *testing.T, env map[string]string) ([]string, error) {
	t.Helper()
	stdout, stderr, err := runToEnd(t, []string{"check"}, env)
	if stderr != "" {
		t.Errorf("check wrote to stderr: %q", stderr)
	}
	return checkOutputLines(t, stdout), err
}

// checkWith runs check on the configuration env loads, changed by adjust: a test CA is what no variable sets.
func checkWith(t *testing.T, env map[string]string, adjust func(*config)) ([]string, error) {
	t.Helper()
	cfg, _, err := loadEnv(env)
	if adjust != nil {
		adjust(&cfg)
	}
	var out strings.Builder
	checkErr := check(context.Background(), cfg, err, &out)
	return checkOutputLines(t, out.String()), checkErr
}

// checkOutputLines splits check's output; every line must be "ok <name>: …" or "fail <name>: …".
func checkOutputLines(t *testing.T, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range lines {
		verdict, rest, _ := strings.Cut(l, " ")
		name, _, ok := strings.Cut(rest, ": ")
		if verdict != "ok" && verdict != "fail" || !ok || name == "" || strings.Contains(name, " ") {
			t.Errorf("check line %q is not \"ok|fail <name>: …\"", l)
		}
	}
	wantNoSecret(t, "check's output", out)
	return lines
}

// verdicts maps each check's name to "ok" or "fail".
func verdicts(lines []string) map[string]string {
	out := map[string]string{}
	for _, l := range lines {
		verdict, rest, _ := strings.Cut(l, " ")
		name, _, _ := strings.Cut(rest, ":")
		out[name] = verdict
	}
	return out
}

// wantVerdicts checks the lines' verdicts, and that check succeeds exactly when all are ok.
func wantVerdicts(t *testing.T, lines []string, err error, want map[string]string) {
	t.Helper()
	if got := verdicts(lines); !maps.Equal(got, want) {
		t.Errorf("verdicts %v, want %v; lines:\n%s", got, want, strings.Join(lines, "\n"))
	}
	allOK := !slices.Contains(slices.Collect(maps.Values(want)), "fail")
	if (err == nil) != allOK {
		t.Errorf("check returned %v with verdicts %v", err, want)
	}
}

// redisCommand sends one command to the Redis at url.
func redisCommand(t *testing.T, url string, args ...string) any {
	t.Helper()
	rs, err := newRedisStore(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	v, err := rs.do(context.Background(), args...)
	if err != nil {
		t.Fatalf("redis %s: %v", args[0], err)
	}
	return v
}

func TestCheckRefusesABadConfiguration(t *testing.T) {
	t.Parallel()
	smtp := newTestSMTPServer(t, testSMTPOptions{})
	env := map[string]string{"DASHBOARD_URL": "https://app.example.com", "LOG_LEVEL": "loud", "JWT_SECRET": cfgShortJWTSecret,
		"SMTP_HOST": "127.0.0.1", "SMTP_PORT": strconv.Itoa(smtp.Port), "SMTP_TLS": "none", "SMTP_FROM": "login@example.com",
		"SMTP_PASSWORD": cfgSMTPPassword}
	lines, err := runCheck(t, env)
	if err == nil {
		t.Fatal("check passed a configuration with problems")
	}
	for _, name := range []string{"API_URL", "JWT_SECRET", "MEMBERS_FILE", "LOG_LEVEL"} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "fail config: ") && strings.Contains(l, name) }) {
			t.Errorf("no fail config line names %s:\n%s", name, strings.Join(lines, "\n"))
		}
	}
	if got := verdicts(lines); !maps.Equal(got, map[string]string{"config": "fail"}) {
		t.Errorf("check went on past the configuration: %q", lines)
	}
	if n := smtp.Connections(); n != 0 {
		t.Errorf("check reached SMTP %d times with an unusable configuration", n)
	}

	// A configuration that loads but does not start (its members file is missing) fails as config too.
	lines, err = runCheck(t, map[string]string{"MEMBERS_FILE": "/nonexistent/members.json"})
	if err == nil || len(lines) != 1 || !strings.HasPrefix(lines[0], "fail config: MEMBERS_FILE") {
		t.Errorf("a missing members file: %v, %q", err, lines)
	}
}

func TestCheckDevelopmentDefaults(t *testing.T) {
	t.Parallel()
	lines, err := runCheck(t, map[string]string{"JWT_SECRET": cfgJWTSecret})
	if err != nil || len(lines) != 1 || !strings.HasPrefix(lines[0], "ok config: ") || !strings.Contains(lines[0], "email_code") {
		t.Errorf("check with nothing to reach: %v, %q", err, lines)
	}
}

func TestCheckRedis(t *testing.T) {
	t.Parallel()
	rs := startRedis(t, "--requirepass", cfgRedisPassword)
	good := "redis://:" + cfgRedisPassword + "@" + rs.Addr() + "/3"

	lines, err := runCheck(t, map[string]string{"REDIS_URL": good, "REDIS_KEY_PREFIX": "team-a:", "JWT_SECRET": cfgJWTSecret})
	wantVerdicts(t, lines, err, map[string]string{"config": "ok", "redis": "ok"})
	if len(lines) != 2 || !strings.Contains(lines[1], "team-a:") {
		t.Errorf("the redis line does not name the prefix it wrote under: %q", lines)
	}
	// It wrote a key and removed it: the database is empty again.
	stats, _ := redisCommand(t, good, "INFO", "commandstats").([]byte)
	if !strings.Contains(string(stats), "cmdstat_set:calls=1,") || !strings.Contains(string(stats), "cmdstat_del:calls=1,") {
		t.Errorf("check did not write and remove one key:\n%s", stats)
	}
	if n := redisCommand(t, good, "DBSIZE"); n != int64(0) {
		t.Errorf("check left %v keys behind", n)
	}

	for name, url := range map[string]string{
		"wrong password": "redis://:not-" + cfgRedisPassword + "@" + rs.Addr(),
		"no password":    rs.URL(),
		"closed port":    "redis://:" + cfgRedisPassword + "@127.0.0.1:" + strconv.Itoa(freePort(t)),
	} {
		lines, err := runCheck(t, map[string]string{"REDIS_URL": url, "JWT_SECRET": cfgJWTSecret})
		wantVerdicts(t, lines, err, map[string]string{"config": "ok", "redis": "fail"})
		if out := strings.Join(lines, "\n"); strings.Contains(out, "not-"+cfgRedisPassword) {
			t.Errorf("%s: the password was printed:\n%s", name, out)
		}
	}
}

func TestCheckSMTP(t *testing.T) {
	t.Parallel()
	const user, password = "mailer", cfgSMTPPassword
	for _, tc := range []struct {
		name     string
		opts     testSMTPOptions
		tls      string
		password string // what dashauth is configured with
		trustCA  bool
		ok       bool
		closed   bool // nothing listens on the port
	}{
		{"STARTTLS and AUTH", testSMTPOptions{STARTTLS: true, Username: user, Password: password}, "starttls", password, true, true, false},
		{"implicit TLS and AUTH", testSMTPOptions{ImplicitTLS: true, Username: user, Password: password}, "tls", password, true, true, false},
		{"loopback relay in clear, no AUTH", testSMTPOptions{}, "none", "", false, true, false},
		{"loopback relay in clear, AUTH", testSMTPOptions{Username: user, Password: password}, "none", password, false, true, false},
		{"AUTH refused", testSMTPOptions{STARTTLS: true, Username: user, Password: password}, "starttls", "wrong-" + password, true, false, false},
		{"STARTTLS required, not offered", testSMTPOptions{Username: user, Password: password}, "starttls", password, true, false, false},
		{"certificate not trusted", testSMTPOptions{STARTTLS: true, Username: user, Password: password}, "starttls", password, false, false, false},
		{"greeting refused", testSMTPOptions{Fail: testSMTPFailure{Stage: stageGreeting, Code: 554}}, "none", "", false, false, false},
		{"EHLO refused", testSMTPOptions{Fail: testSMTPFailure{Stage: stageHello, Code: 550}}, "none", "", false, false, false},
		{"closed port", testSMTPOptions{}, "none", "", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestSMTPServer(t, tc.opts)
			port := srv.Port
			if tc.closed {
				port = freePort(t)
			}
			env := map[string]string{"JWT_SECRET": cfgJWTSecret, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": strconv.Itoa(port),
				"SMTP_FROM": "login@example.com", "SMTP_TLS": tc.tls}
			if tc.password != "" {
				env["SMTP_USERNAME"], env["SMTP_PASSWORD"] = user, tc.password
			}
			lines, err := checkWith(t, env, func(c *config) {
				if tc.trustCA {
					c.SMTP.RootCAs = srv.CertPool()
				}
			})
			wantVerdicts(t, lines, err, map[string]string{"config": "ok", "smtp": map[bool]string{true: "ok", false: "fail"}[tc.ok]})
			if out := strings.Join(lines, "\n"); strings.Contains(out, password) {
				t.Errorf("a password was printed:\n%s", out)
			}
			verbs := srv.Verbs()
			if srv.Count() != 0 || slices.Contains(verbs, "MAIL") || slices.Contains(verbs, "RCPT") || slices.Contains(verbs, "DATA") {
				t.Errorf("check began a mail: %q", srv.Commands())
			}
			if tc.ok && (verbs[len(verbs)-1] != "QUIT" || tc.password != "" && !slices.Contains(verbs, "AUTH")) {
				t.Errorf("commands %q, want EHLO, TLS as configured, AUTH, QUIT", verbs)
			}
			if tc.tls == "starttls" && !tc.trustCA || tc.name == "STARTTLS required, not offered" {
				if slices.Contains(verbs, "AUTH") {
					t.Errorf("the password was sent without verified TLS: %q", verbs)
				}
			}
		})
	}
}

func TestCheckWorkOS(t *testing.T) {
	t.Parallel()
	fake := newFakeWorkOS(t)
	front := newWorkOSFront(t, fake)
	for _, tc := range []struct {
		name, key, base string
		ok              bool
	}{
		{"key accepted", testWorkOSAPIKey, front.URL, true},
		{"key refused", "sk_test_revoked_0123456789", front.URL, false},
		{"unreachable", testWorkOSAPIKey, "http://127.0.0.1:" + strconv.Itoa(freePort(t)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := workosEnv(tc.base)
			env["WORKOS_API_KEY"], env["JWT_SECRET"] = tc.key, cfgJWTSecret
			lines, err := runCheck(t, env)
			wantVerdicts(t, lines, err, map[string]string{"config": "ok", "workos": map[bool]string{true: "ok", false: "fail"}[tc.ok]})
			if !strings.Contains(lines[0], "workos sign-in") {
				t.Errorf("the config line does not name the flow: %q", lines[0])
			}
			out := strings.Join(lines, "\n")
			for _, secret := range []string{tc.key, testWorkOSWebhookSecret} {
				if strings.Contains(out, secret) {
					t.Errorf("a secret was printed:\n%s", out)
				}
			}
		})
	}
}

// TestCheckEverything: every dependency at once; one failing makes the whole check fail and the others still run.
func TestCheckEverything(t *testing.T) {
	t.Parallel()
	rs := startRedis(t, "--requirepass", cfgRedisPassword)
	smtp := newTestSMTPServer(t, testSMTPOptions{Username: "mailer", Password: cfgSMTPPassword})
	front := newWorkOSFront(t, newFakeWorkOS(t))
	env := workosEnv(front.URL)
	maps.Copy(env, map[string]string{"JWT_SECRET": cfgJWTSecret, "REDIS_URL": "redis://:" + cfgRedisPassword + "@" + rs.Addr(),
		"SMTP_HOST": "127.0.0.1", "SMTP_PORT": strconv.Itoa(smtp.Port), "SMTP_TLS": "none", "SMTP_FROM": "login@example.com",
		"SMTP_USERNAME": "mailer", "SMTP_PASSWORD": cfgSMTPPassword})
	lines, err := runCheck(t, env)
	wantVerdicts(t, lines, err, map[string]string{"config": "ok", "redis": "ok", "smtp": "ok", "workos": "ok"})

	env["SMTP_PASSWORD"] = "wrong-" + cfgSMTPPassword
	lines, err = runCheck(t, env)
	wantVerdicts(t, lines, err, map[string]string{"config": "ok", "redis": "ok", "smtp": "fail", "workos": "ok"})
	for _, secret := range []string{cfgRedisPassword, testWorkOSAPIKey, testWorkOSWebhookSecret, "wrong-" + cfgSMTPPassword} {
		if out := strings.Join(lines, "\n"); strings.Contains(out, secret) {
			t.Errorf("a secret was printed:\n%s", out)
		}
	}
	if smtp.Count() != 0 {
		t.Errorf("check mailed %d messages", smtp.Count())
	}
}
