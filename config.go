package main

// The environment (contract, "Configuration"), parsed and checked once at start.

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

type config struct {
	ListenAddr   string
	DashboardURL string   // an origin, written as browsers write Origin
	APIURL       string   // an origin; the JWT issuer
	RedirectURLs []string // exactly the URLs redirect_url may be

	WorkOS                                            bool
	WorkOSClientID, WorkOSAPIKey, WorkOSWebhookSecret string
	WorkOSSigninBaseURL, WorkOSAPIBaseURL             string

	JWTSecret, JWTSecretPrevious                       []byte
	AccessTTL, RefreshTTL, RefreshReuse, SessionMaxAge time.Duration

	RedisURL, KeyPrefix       string
	SMTP                      smtpConfig // no Host: mail goes to the log
	MembersFile, CookieDomain string
	TrustedProxies            []netip.Prefix
	LogRequests               bool // LOG_LEVEL=debug: a line for every request

	// Dev is development mode: DASHBOARD_URL is an http://localhost or http://127.0.0.1 origin. It allows a random
	// JWT key, mail to the log and anyone to sign in, and drops the Secure cookie attributes plain http cannot carry.
	Dev bool
}

// loadConfig reads the environment and returns every problem at once, one per line, so an operator fixes them in one
// go. Warnings name what development mode let through.
func loadConfig(getenv func(string) string) (cfg config, warnings []string, err error) {
	var problems []string
	need := func(ok bool, format string, args ...any) bool {
		if !ok {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
		return ok
	}
	env := func(name, def string) string { return cmp.Or(strings.TrimSpace(getenv(name)), def) }

	cfg.ListenAddr = env("LISTEN_ADDR", "127.0.0.1:8080")
	listenHost, port, err := net.SplitHostPort(cfg.ListenAddr)
	need(err == nil && validPort(port), "LISTEN_ADDR %q is not host:port", cfg.ListenAddr)
	cfg.DashboardURL, err = parseOrigin(env("DASHBOARD_URL", "http://localhost:8080"))
	need(err == nil, "DASHBOARD_URL: %v", err)
	u, _ := url.Parse(cfg.DashboardURL)
	cfg.Dev = err == nil && u.Scheme == "http" && (u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1")
	cfg.APIURL, err = parseOrigin(env("API_URL", "http://localhost:8080"))
	need(err == nil, "API_URL: %v", err)
	need(cfg.Dev || env("API_URL", "") != "", "API_URL is required outside development mode: it is this service's public origin and the JWT issuer")
	if cfg.Dev && !isLoopback(listenHost) && need(env("DASHBOARD_URL", "") != "", "LISTEN_ADDR %q is not a loopback address, "+
		"and development mode (DASHBOARD_URL unset) never listens on the network: set DASHBOARD_URL (e.g. "+
		"http://localhost:8080) to do so on purpose, or configure production", cfg.ListenAddr) {
		warnings = append(warnings, "development mode on a non-loopback LISTEN_ADDR: anyone who reaches it can sign in")
	}

	defaultRedirect := ""
	if cfg.DashboardURL != "" {
		defaultRedirect = cfg.DashboardURL + "/en/callback"
	}
	for _, raw := range strings.Split(env("ALLOWED_REDIRECT_URLS", defaultRedirect), ",") {
		raw = strings.TrimSpace(raw)
		u, err := parseBaseURL(raw)
		if raw == "" || !need(err == nil && u.Path != "" && u.String() == raw,
			"ALLOWED_REDIRECT_URLS: %q is not a full http(s) URL with a path, in canonical form", raw) {
			continue
		}
		cfg.RedirectURLs = append(cfg.RedirectURLs, raw)
		// In development mode localhost and 127.0.0.1 on one port are one origin.
		if swapped, ok := swapLoopback(raw); ok && cfg.Dev {
			cfg.RedirectURLs = append(cfg.RedirectURLs, swapped)
		}
	}

	integrated := env("IS_WORKOS_INTEGRATED", "false")
	cfg.WorkOS = need(integrated == "true" || integrated == "false", "IS_WORKOS_INTEGRATED %q must be \"true\" or \"false\"", integrated) &&
		integrated == "true"
	cfg.WorkOSClientID, cfg.WorkOSAPIKey = env("WORKOS_CLIENT_ID", ""), env("WORKOS_API_KEY", "")
	cfg.WorkOSWebhookSecret, cfg.WorkOSSigninBaseURL = env("WORKOS_WEBHOOK_SECRET", ""), env("WORKOS_SIGNIN_BASE_URL", "")
	cfg.WorkOSAPIBaseURL = strings.TrimSuffix(env("WORKOS_API_BASE_URL", "https://api.workos.com"), "/")
	_, err = parseBaseURL(cfg.WorkOSAPIBaseURL)
	need(err == nil, "WORKOS_API_BASE_URL: %v", err)
	for _, v := range [][2]string{{"WORKOS_CLIENT_ID", cfg.WorkOSClientID}, {"WORKOS_API_KEY", cfg.WorkOSAPIKey},
		{"WORKOS_WEBHOOK_SECRET", cfg.WorkOSWebhookSecret}, {"WORKOS_SIGNIN_BASE_URL", cfg.WorkOSSigninBaseURL}} {
		need(v[1] != "" || !cfg.WorkOS, "%s is required when IS_WORKOS_INTEGRATED is \"true\"", v[0])
	}
	_, err = parseBaseURL(cfg.WorkOSSigninBaseURL)
	need(err == nil || cfg.WorkOSSigninBaseURL == "", "WORKOS_SIGNIN_BASE_URL: %v", err)

	secret, prev := getenv("JWT_SECRET"), getenv("JWT_SECRET_PREVIOUS")
	if secret == "" && cfg.Dev {
		warnings = append(warnings, "JWT_SECRET is not set: a random key, so sessions end with the process")
	} else if need(len(secret) >= minKeyBytes, "JWT_SECRET must be at least %d bytes (it is %d)", minKeyBytes, len(secret)) {
		cfg.JWTSecret = []byte(secret)
	}
	if prev != "" && need(len(prev) >= minKeyBytes, "JWT_SECRET_PREVIOUS must be at least %d bytes (it is %d)", minKeyBytes, len(prev)) {
		cfg.JWTSecretPrevious = []byte(prev)
	}
	duration := func(name, def string) time.Duration {
		d, err := time.ParseDuration(env(name, def))
		need(err == nil && d >= time.Second, "%s %q is not a Go duration of at least 1s, such as %q", name, env(name, def), def)
		return d
	}
	cfg.AccessTTL, cfg.RefreshTTL = duration("ACCESS_TOKEN_TTL", "15m"), duration("REFRESH_TOKEN_TTL", "168h")
	cfg.RefreshReuse, cfg.SessionMaxAge = duration("REFRESH_REUSE_INTERVAL", "10s"), duration("SESSION_MAX_AGE", "720h")
	need(cfg.AccessTTL <= cfg.RefreshTTL || cfg.RefreshTTL < time.Second,
		"ACCESS_TOKEN_TTL %v is longer than REFRESH_TOKEN_TTL %v", cfg.AccessTTL, cfg.RefreshTTL)

	cfg.RedisURL, cfg.KeyPrefix = env("REDIS_URL", ""), env("REDIS_KEY_PREFIX", "dashauth:")
	if cfg.RedisURL != "" {
		_, err = newRedisStore(cfg.RedisURL)
		need(err == nil, "%v", err)
	}

	cfg.SMTP = smtpConfig{Host: env("SMTP_HOST", ""), Username: env("SMTP_USERNAME", ""),
		Password: getenv("SMTP_PASSWORD"), From: env("SMTP_FROM", ""), TLS: env("SMTP_TLS", "starttls")}
	// Submission with STARTTLS is port 587 (RFC 6409), implicit TLS 465 (RFC 8314).
	cfg.SMTP.Port = env("SMTP_PORT", map[bool]string{true: "465", false: "587"}[cfg.SMTP.TLS == "tls"])
	_, fromOK := parseEmail(cfg.SMTP.From)
	if cfg.SMTP.Host == "" && cfg.SMTP.From == "" && cfg.Dev {
		warnings = append(warnings, "SMTP_HOST is not set: login codes are written to the log")
	} else if need(cfg.SMTP.Host != "" && !strings.ContainsAny(cfg.SMTP.Host, " \t\r\n/[]@") && fromOK,
		"SMTP_HOST and SMTP_FROM (one bare address) are required to send login codes") {
		need(validPort(cfg.SMTP.Port) && cfg.SMTP.Port != "0", "SMTP_PORT %q is not a port number", cfg.SMTP.Port)
		need(slices.Contains([]string{"starttls", "tls", "none"}, cfg.SMTP.TLS), "SMTP_TLS %q must be starttls, tls or none", cfg.SMTP.TLS)
		// In clear text the password and every code cross the network: only a relay on this machine may be spoken
		// to that way.
		need(cfg.SMTP.TLS != "none" || isLoopback(cfg.SMTP.Host), "SMTP_TLS none is allowed only for a loopback SMTP_HOST, not %q", cfg.SMTP.Host)
	}

	cfg.MembersFile, cfg.CookieDomain = env("MEMBERS_FILE", ""), env("COOKIE_DOMAIN", "")
	need(cfg.MembersFile != "" || cfg.Dev || cfg.WorkOS, "MEMBERS_FILE is required: without it nobody may sign in with email+code")
	need(!strings.ContainsAny(cfg.CookieDomain, " ;,\"\t\r\n"), "COOKIE_DOMAIN %q is not a domain", cfg.CookieDomain)
	for _, raw := range strings.Split(env("TRUSTED_PROXIES", ""), ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(raw))
		if need(err == nil || strings.TrimSpace(raw) == "", "TRUSTED_PROXIES %q is not a CIDR such as 10.0.0.0/8", raw) && err == nil {
			cfg.TrustedProxies = append(cfg.TrustedProxies, p.Masked())
		}
	}
	level := env("LOG_LEVEL", "info")
	cfg.LogRequests = need(level == "info" || level == "debug", "LOG_LEVEL %q must be info or debug", level) && level == "debug"
	if len(problems) > 0 {
		return cfg, warnings, errors.New(strings.Join(problems, "\n"))
	}
	return cfg, warnings, nil
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535 && strconv.Itoa(n) == s
}

func isLoopback(host string) bool {
	a, err := netip.ParseAddr(host)
	return host == "localhost" || err == nil && a.IsLoopback()
}

// parseOrigin accepts scheme://host[:port] with an optional trailing slash and writes it as a browser writes Origin
// (RFC 6454 §6.1): lower-case host, no default port. Otherwise https://App.example.com:443 would never equal an Origin
// header.
func parseOrigin(raw string) (string, error) {
	u, err := parseBaseURL(strings.TrimSuffix(raw, "/"))
	if err == nil && u.Path != "" {
		err = fmt.Errorf("%q must be an origin (scheme://host[:port]) without a path", raw)
	}
	if err != nil {
		return "", err
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.ToLower(strings.TrimSuffix(u.Host, ":"+p))
	}
	return u.Scheme + "://" + host, nil
}

// parseBaseURL accepts an absolute http(s) URL without user info, query or fragment.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(raw, "\\ \t\r\n") ||
		(u.Port() != "" && !validPort(u.Port())) {
		return nil, fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	return u, nil
}

// swapLoopback turns http://localhost:port/… into http://127.0.0.1:port/… and back.
func swapLoopback(raw string) (string, bool) {
	for _, p := range [][2]string{{"http://localhost", "http://127.0.0.1"}, {"http://127.0.0.1", "http://localhost"}} {
		if rest, ok := strings.CutPrefix(raw, p[0]); ok && (rest == "" || rest[0] == ':' || rest[0] == '/') {
			return p[1] + rest, true
		}
	}
	return "", false
}

// sameOrigin compares origins; in development mode localhost and 127.0.0.1 are one.
func (c *config) sameOrigin(a, b string) bool {
	swapped, _ := swapLoopback(a)
	return a == b || c.Dev && swapped == b
}
