package main

// loadConfig: development mode, every refusal with one line naming its variable, canonical origins, and the rule
// that development mode never listens on the network by accident.

import (
	"slices"
	"strings"
	"testing"
)

// Secrets of the configuration fixtures: no error, warning or output may ever hold one.
const (
	cfgJWTSecret      = "prod-jwt-secret-0123456789abcdef-0123456789"
	cfgJWTPrevious    = "prev-jwt-secret-0123456789abcdef-0123456789"
	cfgSMTPPassword   = "smtp-pass-s3cret-0001"
	cfgRedisPassword  = "redis-pass-s3cret-0002"
	cfgWorkOSAPIKey   = "sk_live_s3cret_0003"
	cfgWebhookSecret  = "whsec_s3cret_0004"
	cfgShortJWTSecret = "short-s3cret-0005"
)

var cfgSecrets = []string{cfgJWTSecret, cfgJWTPrevious, cfgSMTPPassword, cfgRedisPassword, cfgWorkOSAPIKey,
	cfgWebhookSecret, cfgShortJWTSecret}

// prodEnv is a complete production environment, with name, value overrides ("" unsets a variable). MEMBERS_FILE
// names a file that need not exist: loadConfig does not read it.
func prodEnv(overrides ...string) map[string]string {
	env := map[string]string{
		"DASHBOARD_URL": "https://app.example.com",
		"API_URL":       "https://api.example.com",
		"JWT_SECRET":    cfgJWTSecret,
		"SMTP_HOST":     "smtp.example.com",
		"SMTP_FROM":     "login@example.com",
		"SMTP_USERNAME": "login",
		"SMTP_PASSWORD": cfgSMTPPassword,
		"MEMBERS_FILE":  "/etc/dashauth/members.json",
	}
	for i := 0; i+1 < len(overrides); i += 2 {
		if overrides[i+1] == "" {
			delete(env, overrides[i])
		} else {
			env[overrides[i]] = overrides[i+1]
		}
	}
	return env
}

func getenvFrom(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func loadEnv(env map[string]string) (config, []string, error) { return loadConfig(getenvFrom(env)) }

// problemLines splits loadConfig's error into its lines.
func problemLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// wantNoSecret fails when text holds one of the fixtures' secrets.
func wantNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range cfgSecrets {
		if strings.Contains(text, s) {
			t.Errorf("%s holds the secret %q:\n%s", what, s, text)
		}
	}
}

func TestLoadConfigProductionFixture(t *testing.T) {
	t.Parallel()
	cfg, warnings, err := loadEnv(prodEnv())
	if err != nil || len(warnings) != 0 || cfg.Dev {
		t.Fatalf("the production fixture: err %v, warnings %q, dev %v", err, warnings, cfg.Dev)
	}
	if cfg.ListenAddr != "127.0.0.1:8080" || cfg.KeyPrefix != "dashauth:" || cfg.SMTP.Port != "587" || cfg.SMTP.TLS != "starttls" {
		t.Errorf("defaults: listen %q, prefix %q, smtp port %q, tls %q", cfg.ListenAddr, cfg.KeyPrefix, cfg.SMTP.Port, cfg.SMTP.TLS)
	}
	if !slices.Equal(cfg.RedirectURLs, []string{"https://app.example.com/en/callback"}) {
		t.Errorf("default redirect URLs %q", cfg.RedirectURLs)
	}
	if string(cfg.JWTSecret) != cfgJWTSecret || cfg.APIURL != "https://api.example.com" || cfg.LogRequests {
		t.Errorf("JWT secret, API_URL %q or LogRequests %v not taken", cfg.APIURL, cfg.LogRequests)
	}
	if cfg.sameOrigin("https://app.example.com", "https://api.example.com") {
		t.Error("two production origins compare equal")
	}
	// Implicit TLS defaults to 465 (RFC 8314); an explicit port wins.
	if cfg, _, _ := loadEnv(prodEnv("SMTP_TLS", "tls")); cfg.SMTP.Port != "465" {
		t.Errorf("SMTP_TLS=tls port %q, want 465", cfg.SMTP.Port)
	}
	if cfg, _, _ := loadEnv(prodEnv("SMTP_TLS", "tls", "SMTP_PORT", "2465")); cfg.SMTP.Port != "2465" {
		t.Errorf("SMTP_PORT not taken: %q", cfg.SMTP.Port)
	}
}

// TestLoadConfigRefusals: each case makes one change to the production fixture and must be refused with exactly one
// line, which names the variable, and never quotes a secret.
func TestLoadConfigRefusals(t *testing.T) {
	t.Parallel()
	workos := []string{"IS_WORKOS_INTEGRATED", "true", "WORKOS_CLIENT_ID", "client_01", "WORKOS_API_KEY", cfgWorkOSAPIKey,
		"WORKOS_WEBHOOK_SECRET", cfgWebhookSecret, "WORKOS_SIGNIN_BASE_URL", "https://x.authkit.app", "MEMBERS_FILE", ""}
	without := func(name string) []string { return append(slices.Clone(workos), name, "") }
	for _, tc := range []struct {
		name     string
		override []string
		names    string // the variable the line must name
	}{
		{"JWT_SECRET missing", []string{"JWT_SECRET", ""}, "JWT_SECRET"},
		{"JWT_SECRET short", []string{"JWT_SECRET", cfgShortJWTSecret}, "JWT_SECRET"},
		{"JWT_SECRET 31 bytes", []string{"JWT_SECRET", strings.Repeat("k", 31)}, "JWT_SECRET"},
		{"JWT_SECRET_PREVIOUS short", []string{"JWT_SECRET_PREVIOUS", cfgShortJWTSecret}, "JWT_SECRET_PREVIOUS"},
		{"API_URL unset", []string{"API_URL", ""}, "API_URL"},
		{"API_URL blank", []string{"API_URL", "  "}, "API_URL"},
		{"API_URL not a URL", []string{"API_URL", "api.example.com"}, "API_URL"},
		{"API_URL with a path", []string{"API_URL", "https://api.example.com/v2"}, "API_URL"},
		{"SMTP_HOST missing", []string{"SMTP_HOST", ""}, "SMTP_HOST"},
		{"SMTP_FROM missing", []string{"SMTP_FROM", ""}, "SMTP_FROM"},
		{"SMTP_FROM with a display name", []string{"SMTP_FROM", "Login <login@example.com>"}, "SMTP_FROM"},
		{"SMTP_HOST with a slash", []string{"SMTP_HOST", "smtp.example.com/x"}, "SMTP_HOST"},
		{"SMTP_PORT not a number", []string{"SMTP_PORT", "submission"}, "SMTP_PORT"},
		{"SMTP_PORT 0", []string{"SMTP_PORT", "0"}, "SMTP_PORT"},
		{"SMTP_TLS unknown", []string{"SMTP_TLS", "ssl"}, "SMTP_TLS"},
		{"SMTP_TLS none off loopback", []string{"SMTP_TLS", "none"}, "SMTP_TLS"},
		{"SMTP_TLS none to a private address", []string{"SMTP_TLS", "none", "SMTP_HOST", "10.0.0.25"}, "SMTP_TLS"},
		{"IS_WORKOS_INTEGRATED not a boolean", []string{"IS_WORKOS_INTEGRATED", "yes"}, "IS_WORKOS_INTEGRATED"},
		{"WORKOS_CLIENT_ID missing", without("WORKOS_CLIENT_ID"), "WORKOS_CLIENT_ID"},
		{"WORKOS_API_KEY missing", without("WORKOS_API_KEY"), "WORKOS_API_KEY"},
		{"WORKOS_WEBHOOK_SECRET missing", without("WORKOS_WEBHOOK_SECRET"), "WORKOS_WEBHOOK_SECRET"},
		{"WORKOS_SIGNIN_BASE_URL missing", without("WORKOS_SIGNIN_BASE_URL"), "WORKOS_SIGNIN_BASE_URL"},
		{"WORKOS_SIGNIN_BASE_URL malformed", append(slices.Clone(workos), "WORKOS_SIGNIN_BASE_URL", "x.authkit.app"), "WORKOS_SIGNIN_BASE_URL"},
		{"WORKOS_API_BASE_URL malformed", []string{"WORKOS_API_BASE_URL", "ftp://api.workos.com"}, "WORKOS_API_BASE_URL"},
		{"LISTEN_ADDR without a host", []string{"LISTEN_ADDR", "8080"}, "LISTEN_ADDR"},
		{"LISTEN_ADDR without a port", []string{"LISTEN_ADDR", "localhost"}, "LISTEN_ADDR"},
		{"LISTEN_ADDR port out of range", []string{"LISTEN_ADDR", "127.0.0.1:65536"}, "LISTEN_ADDR"},
		{"LISTEN_ADDR named port", []string{"LISTEN_ADDR", "127.0.0.1:http"}, "LISTEN_ADDR"},
		{"DASHBOARD_URL without a scheme", []string{"DASHBOARD_URL", "app.example.com"}, "DASHBOARD_URL"},
		{"DASHBOARD_URL with a path", []string{"DASHBOARD_URL", "https://app.example.com/dash"}, "DASHBOARD_URL"},
		{"DASHBOARD_URL with user info", []string{"DASHBOARD_URL", "https://user@app.example.com"}, "DASHBOARD_URL"},
		{"DASHBOARD_URL with a query", []string{"DASHBOARD_URL", "https://app.example.com?x=1"}, "DASHBOARD_URL"},
		{"DASHBOARD_URL not http", []string{"DASHBOARD_URL", "ftp://app.example.com"}, "DASHBOARD_URL"},
		{"redirect URL with a query", []string{"ALLOWED_REDIRECT_URLS", "https://app.example.com/cb?x=1"}, "ALLOWED_REDIRECT_URLS"},
		{"redirect URL javascript:", []string{"ALLOWED_REDIRECT_URLS", "javascript:alert(1)"}, "ALLOWED_REDIRECT_URLS"},
		{"redirect URL without a path", []string{"ALLOWED_REDIRECT_URLS", "https://app.example.com"}, "ALLOWED_REDIRECT_URLS"},
		{"redirect URL with a fragment", []string{"ALLOWED_REDIRECT_URLS", "https://app.example.com/cb#x"}, "ALLOWED_REDIRECT_URLS"},
		{"redirect URL scheme-relative", []string{"ALLOWED_REDIRECT_URLS", "https://app.example.com/cb,//evil.example/cb"}, "ALLOWED_REDIRECT_URLS"},
		{"MEMBERS_FILE missing without WorkOS", []string{"MEMBERS_FILE", ""}, "MEMBERS_FILE"},
		{"ACCESS_TOKEN_TTL without a unit", []string{"ACCESS_TOKEN_TTL", "15"}, "ACCESS_TOKEN_TTL"},
		{"REFRESH_TOKEN_TTL negative", []string{"REFRESH_TOKEN_TTL", "-1h"}, "REFRESH_TOKEN_TTL"},
		{"REFRESH_REUSE_INTERVAL under a second", []string{"REFRESH_REUSE_INTERVAL", "500ms"}, "REFRESH_REUSE_INTERVAL"},
		{"SESSION_MAX_AGE not a duration", []string{"SESSION_MAX_AGE", "30 days"}, "SESSION_MAX_AGE"},
		{"ACCESS_TOKEN_TTL over REFRESH_TOKEN_TTL", []string{"ACCESS_TOKEN_TTL", "200h"}, "ACCESS_TOKEN_TTL"},
		{"TRUSTED_PROXIES a bare address", []string{"TRUSTED_PROXIES", "10.0.0.1"}, "TRUSTED_PROXIES"},
		{"TRUSTED_PROXIES one bad of two", []string{"TRUSTED_PROXIES", "10.0.0.0/8, garbage"}, "TRUSTED_PROXIES"},
		{"TRUSTED_PROXIES prefix too long", []string{"TRUSTED_PROXIES", "10.0.0.0/33"}, "TRUSTED_PROXIES"},
		{"REDIS_URL not redis", []string{"REDIS_URL", "http://:" + cfgRedisPassword + "@redis.internal:6379"}, "REDIS_URL"},
		{"REDIS_URL port 0", []string{"REDIS_URL", "redis://:" + cfgRedisPassword + "@redis.internal:0"}, "REDIS_URL"},
		{"REDIS_URL bad port", []string{"REDIS_URL", "redis://:" + cfgRedisPassword + "@redis.internal:x"}, "REDIS_URL"},
		{"REDIS_URL bad database", []string{"REDIS_URL", "redis://:" + cfgRedisPassword + "@redis.internal/db1"}, "REDIS_URL"},
		{"REDIS_URL with a query", []string{"REDIS_URL", "redis://u:" + cfgRedisPassword + "@redis.internal?tls=1"}, "REDIS_URL"},
		{"REDIS_URL without a host", []string{"REDIS_URL", "redis://u:" + cfgRedisPassword + "@:6379"}, "REDIS_URL"},
		{"REDIS_URL password where the host goes", []string{"REDIS_URL", "redis://" + cfgRedisPassword + " @redis.internal"}, "REDIS_URL"},
		{"REDIS_URL user without a password", []string{"REDIS_URL", "redis://app@redis.internal"}, "REDIS_URL"},
		{"LOG_LEVEL unknown", []string{"LOG_LEVEL", "warn"}, "LOG_LEVEL"},
		{"LOG_LEVEL upper case", []string{"LOG_LEVEL", "DEBUG"}, "LOG_LEVEL"},
		{"COOKIE_DOMAIN with a semicolon", []string{"COOKIE_DOMAIN", "example.com; Path=/x"}, "COOKIE_DOMAIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, warnings, err := loadEnv(prodEnv(tc.override...))
			lines := problemLines(err)
			if len(lines) != 1 || !strings.Contains(lines[0], tc.names) {
				t.Fatalf("want one line naming %s, got %d: %q", tc.names, len(lines), lines)
			}
			wantNoSecret(t, "the error", err.Error())
			wantNoSecret(t, "the warnings", strings.Join(warnings, "\n"))
		})
	}
}

// TestLoadConfigAccepts: changes to the production fixture that are fine.
func TestLoadConfigAccepts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		override []string
	}{
		{"SMTP_TLS none to 127.0.0.1", []string{"SMTP_TLS", "none", "SMTP_HOST", "127.0.0.1"}},
		{"SMTP_TLS none to localhost", []string{"SMTP_TLS", "none", "SMTP_HOST", "localhost"}},
		{"SMTP_TLS none to ::1", []string{"SMTP_TLS", "none", "SMTP_HOST", "::1"}},
		{"SMTP_TLS tls", []string{"SMTP_TLS", "tls"}},
		{"SMTP without AUTH", []string{"SMTP_USERNAME", "", "SMTP_PASSWORD", ""}},
		{"WorkOS without a members file", []string{"IS_WORKOS_INTEGRATED", "true", "WORKOS_CLIENT_ID", "client_01",
			"WORKOS_API_KEY", cfgWorkOSAPIKey, "WORKOS_WEBHOOK_SECRET", cfgWebhookSecret,
			"WORKOS_SIGNIN_BASE_URL", "https://x.authkit.app", "MEMBERS_FILE", ""}},
		{"LISTEN_ADDR on every interface", []string{"LISTEN_ADDR", "0.0.0.0:8080"}},
		{"LISTEN_ADDR without a host", []string{"LISTEN_ADDR", ":8080"}},
		{"LISTEN_ADDR IPv6", []string{"LISTEN_ADDR", "[::]:8080"}},
		{"JWT_SECRET_PREVIOUS", []string{"JWT_SECRET_PREVIOUS", cfgJWTPrevious}},
		{"redis with user, password and database", []string{"REDIS_URL", "redis://app:" + cfgRedisPassword + "@redis.internal:6380/2"}},
		{"rediss", []string{"REDIS_URL", "rediss://:" + cfgRedisPassword + "@redis.internal"}},
		{"two trusted proxies", []string{"TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8"}},
		{"LOG_LEVEL debug", []string{"LOG_LEVEL", "debug"}},
		{"durations", []string{"ACCESS_TOKEN_TTL", "5m", "REFRESH_TOKEN_TTL", "24h", "REFRESH_REUSE_INTERVAL", "1s", "SESSION_MAX_AGE", "48h"}},
		{"two redirect URLs", []string{"ALLOWED_REDIRECT_URLS", "https://app.example.com/en/callback, https://app.example.com/de/callback"}},
		{"COOKIE_DOMAIN", []string{"COOKIE_DOMAIN", "example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, warnings, err := loadEnv(prodEnv(tc.override...)); err != nil || len(warnings) != 0 {
				t.Fatalf("err %v, warnings %q", err, warnings)
			}
		})
	}
	cfg, _, _ := loadEnv(prodEnv("TRUSTED_PROXIES", "10.1.2.3/8", "LOG_LEVEL", "debug",
		"ALLOWED_REDIRECT_URLS", "https://app.example.com/en/callback, ,https://app.example.com/de/callback"))
	if len(cfg.TrustedProxies) != 1 || cfg.TrustedProxies[0].String() != "10.0.0.0/8" || !cfg.LogRequests {
		t.Errorf("trusted proxies %v (want masked 10.0.0.0/8), LogRequests %v", cfg.TrustedProxies, cfg.LogRequests)
	}
	if !slices.Equal(cfg.RedirectURLs, []string{"https://app.example.com/en/callback", "https://app.example.com/de/callback"}) {
		t.Errorf("redirect URLs %q", cfg.RedirectURLs)
	}
}

// TestLoadConfigReportsEveryProblem: an operator fixes everything in one go.
func TestLoadConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DASHBOARD_URL": "https://app.example.com", "LOG_LEVEL": "loud",
		"TRUSTED_PROXIES": "everyone", "ACCESS_TOKEN_TTL": "soon", "JWT_SECRET": cfgShortJWTSecret}
	_, _, err := loadEnv(env)
	lines := problemLines(err)
	names := []string{"API_URL", "JWT_SECRET", "SMTP_HOST", "MEMBERS_FILE", "LOG_LEVEL", "TRUSTED_PROXIES", "ACCESS_TOKEN_TTL"}
	if len(lines) != len(names) {
		t.Errorf("%d lines, want %d (one per problem):\n%s", len(lines), len(names), err)
	}
	for _, name := range names {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, name) }) {
			t.Errorf("no line names %s:\n%s", name, err)
		}
	}
	if err != nil {
		wantNoSecret(t, "the error", err.Error())
	}
}

func TestDevelopmentModeDetection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dashboard string
		dev       bool
	}{
		{"", true}, // the default, http://localhost:8080
		{"http://localhost:8080", true},
		{"http://localhost", true},
		{"http://127.0.0.1:3000", true},
		{"http://LocalHost:8080/", true},
		{"https://localhost:8080", false},
		{"http://[::1]:8080", false},
		{"http://localhost.example.com:8080", false},
		{"http://127.0.0.2:8080", false},
		{"http://0.0.0.0:8080", false},
		{"http://app.example.com", false},
		{"https://app.example.com", false},
	} {
		t.Run(tc.dashboard, func(t *testing.T) {
			t.Parallel()
			cfg, _, err := loadEnv(prodEnv("DASHBOARD_URL", tc.dashboard))
			if err != nil || cfg.Dev != tc.dev {
				t.Fatalf("dev %v, want %v (err %v)", cfg.Dev, tc.dev, err)
			}
		})
	}
}

// TestDevelopmentModeFollowsListenPort: in development mode DASHBOARD_URL and API_URL default to localhost on
// LISTEN_ADDR's port, so the page on that port is an allowed origin; a LISTEN_ADDR without a usable port is one
// problem, naming LISTEN_ADDR, and blames nothing that was never set.
func TestDevelopmentModeFollowsListenPort(t *testing.T) {
	t.Parallel()
	cfg, _, err := loadEnv(map[string]string{"LISTEN_ADDR": "127.0.0.1:9001"})
	if err != nil || !cfg.Dev || cfg.DashboardURL != "http://localhost:9001" || cfg.APIURL != "http://localhost:9001" ||
		!slices.Contains(cfg.RedirectURLs, "http://localhost:9001/en/callback") {
		t.Fatalf("LISTEN_ADDR 127.0.0.1:9001: dev %v, %q, %q, %q, %v", cfg.Dev, cfg.DashboardURL, cfg.APIURL, cfg.RedirectURLs, err)
	}
	for _, addr := range []string{"127.0.0.1:99999", "127.0.0.1:08080", "localhost:http", "127.0.0.1:"} {
		_, _, err := loadEnv(map[string]string{"LISTEN_ADDR": addr})
		if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), "LISTEN_ADDR") {
			t.Errorf("LISTEN_ADDR %q: %v; want one problem, naming LISTEN_ADDR", addr, err)
		}
	}
}

func TestDevelopmentModeDefaults(t *testing.T) {
	t.Parallel()
	cfg, warnings, err := loadEnv(nil)
	if err != nil || !cfg.Dev {
		t.Fatalf("an empty environment is development mode: dev %v, %v", cfg.Dev, err)
	}
	if cfg.ListenAddr != "127.0.0.1:8080" || cfg.DashboardURL != "http://localhost:8080" || cfg.APIURL != "http://localhost:8080" ||
		len(cfg.JWTSecret) != 64 || cfg.SMTP.Host != "" || cfg.MembersFile != "" || cfg.WorkOS {
		t.Errorf("development defaults %+v", cfg)
	}
	for _, want := range []string{"JWT_SECRET", "SMTP_HOST"} {
		if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, want) }) {
			t.Errorf("no warning names %s: %q", want, warnings)
		}
	}
	// A person may open either name of the loopback address.
	if !slices.Contains(cfg.RedirectURLs, "http://localhost:8080/en/callback") || !slices.Contains(cfg.RedirectURLs, "http://127.0.0.1:8080/en/callback") {
		t.Errorf("development redirect URLs %q", cfg.RedirectURLs)
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"http://127.0.0.1:8080", "http://localhost:8080", true},
		{"http://localhost:8080", "http://localhost:8080", true},
		{"http://127.0.0.1:8081", "http://localhost:8080", false},
		{"https://127.0.0.1:8080", "http://localhost:8080", false},
		{"http://localhost:8080.evil.example", "http://localhost:8080", false},
		{"http://127.0.0.1:8080.evil.example", "http://localhost:8080", false},
		{"null", "http://localhost:8080", false},
	} {
		if got := cfg.sameOrigin(tc.a, tc.b); got != tc.same {
			t.Errorf("development sameOrigin(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.same)
		}
	}
	// Outside development mode the two names are two origins.
	prod, _, _ := loadEnv(prodEnv("DASHBOARD_URL", "https://localhost:8443"))
	if prod.sameOrigin("https://127.0.0.1:8443", "https://localhost:8443") {
		t.Error("production treats 127.0.0.1 as localhost")
	}
	// SMTP half configured is refused even in development mode: it would silently log codes meant to be mailed.
	if _, _, err := loadEnv(map[string]string{"SMTP_FROM": "login@example.com"}); err == nil || !strings.Contains(err.Error(), "SMTP_HOST") {
		t.Errorf("SMTP_FROM without SMTP_HOST in development mode: %v", err)
	}
}

// TestDevelopmentModeStaysOnLoopback is issue 9, finding 6: with DASHBOARD_URL unset, development mode (anyone signs
// in, codes in the log) refuses a LISTEN_ADDR off loopback, naming LISTEN_ADDR; set explicitly, it warns.
func TestDevelopmentModeStaysOnLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dashboard, listen string
		refused, warned   bool
	}{
		{"", "0.0.0.0:8080", true, false},
		{"", ":8080", true, false},
		{"", "[::]:8080", true, false},
		{"", "192.0.2.10:8080", true, false},
		{"", "example.com:8080", true, false},
		{"", "127.0.0.1:8080", false, false},
		{"", "127.0.0.2:9000", false, false},
		{"", "[::1]:8080", false, false},
		{"", "localhost:8080", false, false},
		{"  ", "0.0.0.0:8080", true, false}, // blank is unset
		{"http://localhost:8080", "0.0.0.0:8080", false, true},
		{"http://localhost:8080", ":8080", false, true},
		{"http://127.0.0.1:8080", "192.0.2.10:8080", false, true},
		{"http://localhost:8080", "127.0.0.1:8080", false, false},
	} {
		t.Run(tc.dashboard+" "+tc.listen, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"LISTEN_ADDR": tc.listen}
			if tc.dashboard != "" {
				env["DASHBOARD_URL"] = tc.dashboard
			}
			cfg, warnings, err := loadEnv(env)
			lines := problemLines(err)
			switch {
			case tc.refused && (len(lines) != 1 || !strings.Contains(lines[0], "LISTEN_ADDR")):
				t.Fatalf("want one line naming LISTEN_ADDR, got %q", lines)
			case !tc.refused && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.refused && !cfg.Dev:
				t.Fatal("not development mode")
			}
			warned := slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, "LISTEN_ADDR") })
			if !tc.refused && warned != tc.warned {
				t.Errorf("warned about LISTEN_ADDR %v, want %v: %q", warned, tc.warned, warnings)
			}
		})
	}
}

func TestOriginsAreCanonical(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://App.Example.com:443/": "https://app.example.com",
		"https://app.example.com/":     "https://app.example.com",
		"https://app.example.com:8443": "https://app.example.com:8443",
		"https://app.example.com:80":   "https://app.example.com:80",
		"http://app.example.com:443":   "http://app.example.com:443",
		"HTTP://LOCALHOST:80":          "http://localhost",
		"http://[::1]:80":              "http://[::1]",
		"http://LocalHost:8080":        "http://localhost:8080",
	} {
		if got, err := parseOrigin(in); err != nil || got != want {
			t.Errorf("parseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "app.example.com", "https://", "https://app.example.com/x", "https://app.example.com//",
		"https://u:p@app.example.com", "https://app.example.com?", "https://app.example.com:0443",
		"https://app.example.com:99999", "wss://app.example.com", "https://app.example.com\\@evil.example", "https://app example.com"} {
		if got, err := parseOrigin(bad); err == nil {
			t.Errorf("parseOrigin(%q) = %q, want an error", bad, got)
		}
	}
	cfg, _, err := loadEnv(prodEnv("DASHBOARD_URL", "https://App.Example.com:443/", "API_URL", "HTTPS://API.example.com:443"))
	if err != nil || cfg.DashboardURL != "https://app.example.com" || cfg.APIURL != "https://api.example.com" {
		t.Fatalf("DASHBOARD_URL %q, API_URL %q, %v", cfg.DashboardURL, cfg.APIURL, err)
	}
	if !slices.Equal(cfg.RedirectURLs, []string{"https://app.example.com/en/callback"}) {
		t.Errorf("the default redirect URL is not built on the canonical origin: %q", cfg.RedirectURLs)
	}
}
