package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// config is the whole environment, parsed and checked once at start.
type config struct {
	ListenAddr   string
	DashboardURL string // an origin: scheme://host[:port], no path
	APIURL       string // an origin; the JWT issuer
	RedirectURLs []string

	WorkOS              bool
	WorkOSClientID      string
	WorkOSAPIKey        string
	WorkOSWebhookSecret string
	WorkOSSigninBaseURL string
	WorkOSAPIBaseURL    string

	JWTSecret         []byte
	JWTSecretPrevious []byte
	AccessTTL         time.Duration
	RefreshTTL        time.Duration
	RefreshReuse      time.Duration

	RedisURL  string
	KeyPrefix string

	SMTP        smtpConfig
	SMTPEnabled bool // false only in development mode: mail goes to the log

	MembersFile    string
	CookieDomain   string
	TrustedProxies []netip.Prefix

	// Dev is development mode: DASHBOARD_URL is an http://localhost or
	// http://127.0.0.1 origin. It allows a random JWT key, mail to the log and
	// anyone to sign in, and it drops the Secure cookie attributes that plain
	// http would refuse.
	Dev bool
}

// smtpTimeout bounds one whole SMTP exchange: enough for a slow relay, and
// short enough that a webhook answer reaches WorkOS before it gives up.
const smtpTimeout = 15 * time.Second

// loadConfig reads the environment. It returns every problem it finds, one
// per line, so an operator can fix them all in one go; warnings are things
// development mode allowed that production would refuse.
func loadConfig(getenv func(string) string) (cfg config, warnings []string, err error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}

	cfg.ListenAddr = env("LISTEN_ADDR", "127.0.0.1:8080")
	if _, port, err := net.SplitHostPort(cfg.ListenAddr); err != nil || !validPort(port) {
		bad("LISTEN_ADDR %q is not host:port", cfg.ListenAddr)
	}

	var dashErr, apiErr error
	cfg.DashboardURL, dashErr = parseOrigin(env("DASHBOARD_URL", "http://localhost:8080"))
	if dashErr != nil {
		bad("DASHBOARD_URL: %v", dashErr)
	}
	cfg.APIURL, apiErr = parseOrigin(env("API_URL", "http://localhost:8080"))
	if apiErr != nil {
		bad("API_URL: %v", apiErr)
	}
	cfg.Dev = dashErr == nil && isDevOrigin(cfg.DashboardURL)

	for _, raw := range strings.Split(env("ALLOWED_REDIRECT_URLS", cfg.DashboardURL+"/en/callback"), ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if err := checkRedirectURL(raw); err != nil {
			bad("ALLOWED_REDIRECT_URLS: %v", err)
			continue
		}
		cfg.RedirectURLs = append(cfg.RedirectURLs, raw)
	}

	switch v := env("IS_WORKOS_INTEGRATED", "false"); v {
	case "true":
		cfg.WorkOS = true
	case "false":
	default:
		bad("IS_WORKOS_INTEGRATED %q must be \"true\" or \"false\"", v)
	}
	cfg.WorkOSClientID = env("WORKOS_CLIENT_ID", "")
	cfg.WorkOSAPIKey = env("WORKOS_API_KEY", "")
	cfg.WorkOSWebhookSecret = env("WORKOS_WEBHOOK_SECRET", "")
	cfg.WorkOSSigninBaseURL = env("WORKOS_SIGNIN_BASE_URL", "")
	cfg.WorkOSAPIBaseURL = strings.TrimSuffix(env("WORKOS_API_BASE_URL", "https://api.workos.com"), "/")
	if _, err := parseBaseURL(cfg.WorkOSAPIBaseURL); err != nil {
		bad("WORKOS_API_BASE_URL: %v", err)
	}
	if cfg.WorkOS {
		for _, v := range []struct{ name, value string }{
			{"WORKOS_CLIENT_ID", cfg.WorkOSClientID},
			{"WORKOS_API_KEY", cfg.WorkOSAPIKey},
			{"WORKOS_WEBHOOK_SECRET", cfg.WorkOSWebhookSecret},
			{"WORKOS_SIGNIN_BASE_URL", cfg.WorkOSSigninBaseURL},
		} {
			if v.value == "" {
				bad("%s is required when IS_WORKOS_INTEGRATED is \"true\"", v.name)
			}
		}
		if cfg.WorkOSSigninBaseURL != "" {
			if _, err := parseBaseURL(cfg.WorkOSSigninBaseURL); err != nil {
				bad("WORKOS_SIGNIN_BASE_URL: %v", err)
			}
		}
	}

	switch secret := getenv("JWT_SECRET"); {
	case secret == "" && cfg.Dev:
		warnings = append(warnings, "JWT_SECRET is not set: using a random key, so sessions end when the process does")
	case secret == "":
		bad("JWT_SECRET is required (at least %d bytes)", minKeyBytes)
	case len(secret) < minKeyBytes:
		bad("JWT_SECRET is %d bytes; it must be at least %d", len(secret), minKeyBytes)
	default:
		cfg.JWTSecret = []byte(secret)
	}
	if prev := getenv("JWT_SECRET_PREVIOUS"); prev != "" {
		if len(prev) < minKeyBytes {
			bad("JWT_SECRET_PREVIOUS is %d bytes; it must be at least %d", len(prev), minKeyBytes)
		}
		cfg.JWTSecretPrevious = []byte(prev)
	}

	duration := func(name, def string) time.Duration {
		d, err := time.ParseDuration(env(name, def))
		if err != nil || d <= 0 {
			bad("%s %q is not a positive Go duration such as %q", name, env(name, def), def)
		}
		return d
	}
	cfg.AccessTTL = duration("ACCESS_TOKEN_TTL", "15m")
	cfg.RefreshTTL = duration("REFRESH_TOKEN_TTL", "168h")
	cfg.RefreshReuse = duration("REFRESH_REUSE_INTERVAL", "10s")
	if cfg.AccessTTL > 0 && cfg.RefreshTTL > 0 && cfg.AccessTTL > cfg.RefreshTTL {
		bad("ACCESS_TOKEN_TTL %v is longer than REFRESH_TOKEN_TTL %v", cfg.AccessTTL, cfg.RefreshTTL)
	}

	cfg.RedisURL = env("REDIS_URL", "")
	cfg.KeyPrefix = env("REDIS_KEY_PREFIX", "dashauth:")

	cfg.SMTP = smtpConfig{
		Host:     env("SMTP_HOST", ""),
		Username: env("SMTP_USERNAME", ""),
		Password: getenv("SMTP_PASSWORD"),
		From:     env("SMTP_FROM", ""),
		TLS:      env("SMTP_TLS", "starttls"),
		Timeout:  smtpTimeout,
	}
	switch {
	case cfg.SMTP.Host == "" && cfg.SMTP.From == "" && cfg.Dev:
		warnings = append(warnings, "SMTP_HOST is not set: mails are written to the log")
	case cfg.SMTP.Host == "" || cfg.SMTP.From == "":
		bad("SMTP_HOST and SMTP_FROM are required to send login codes")
	default:
		cfg.SMTPEnabled = true
		defPort := "587" // submission with STARTTLS, RFC 6409
		if cfg.SMTP.TLS == "tls" {
			defPort = "465" // implicit TLS, RFC 8314
		}
		port := env("SMTP_PORT", defPort)
		if !validPort(port) {
			bad("SMTP_PORT %q is not a port number", port)
		}
		cfg.SMTP.Port, _ = strconv.Atoi(port)
		if _, err := newSMTPMailer(cfg.SMTP); err != nil {
			bad("SMTP: %v", err)
		}
	}

	cfg.MembersFile = env("MEMBERS_FILE", "")
	if cfg.MembersFile == "" && !cfg.Dev && !cfg.WorkOS {
		bad("MEMBERS_FILE is required: without it nobody may sign in with email+code")
	}
	cfg.CookieDomain = env("COOKIE_DOMAIN", "")
	if strings.ContainsAny(cfg.CookieDomain, " ;,\"") {
		bad("COOKIE_DOMAIN %q is not a domain", cfg.CookieDomain)
	}
	for _, raw := range strings.Split(env("TRUSTED_PROXIES", ""), ",") {
		if raw = strings.TrimSpace(raw); raw == "" {
			continue
		}
		p, err := netip.ParsePrefix(raw)
		if err != nil {
			bad("TRUSTED_PROXIES %q is not a CIDR such as 10.0.0.0/8", raw)
			continue
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, p.Masked())
	}

	if len(problems) > 0 {
		return cfg, warnings, errors.New(strings.Join(problems, "\n"))
	}
	return cfg, warnings, nil
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535 && strconv.Itoa(n) == s
}

// parseOrigin accepts scheme://host[:port] with an optional trailing slash
// and returns it without the slash, the form browsers send in Origin.
func parseOrigin(raw string) (string, error) {
	u, err := parseBaseURL(strings.TrimSuffix(raw, "/"))
	if err != nil {
		return "", err
	}
	if u.Path != "" {
		return "", fmt.Errorf("%q must be an origin (scheme://host[:port]) without a path", raw)
	}
	// Write it as a browser writes Origin (RFC 6454 section 6.1): lower-case
	// host, no default port. Otherwise https://App.example.com:443 would
	// never equal the Origin header and every POST would be refused.
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.ToLower(u.Hostname())
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return u.Scheme + "://" + host, nil
}

// parseBaseURL accepts an absolute http(s) URL without user info, query or fragment.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" ||
		strings.ContainsAny(raw, "\\ \t\r\n") {
		return nil, fmt.Errorf("%q is not an absolute http or https URL", raw)
	}
	if port := u.Port(); port != "" && !validPort(port) {
		return nil, fmt.Errorf("%q has a bad port", raw)
	}
	return u, nil
}

func checkRedirectURL(raw string) error {
	u, err := parseBaseURL(raw)
	if err != nil {
		return err
	}
	if u.Path == "" || u.String() != raw {
		return fmt.Errorf("%q must be a full URL with a path, written in canonical form", raw)
	}
	return nil
}

// isDevOrigin reports whether origin is plain http on this machine.
func isDevOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme != "http" {
		return false
	}
	return u.Hostname() == "localhost" || u.Hostname() == "127.0.0.1"
}

// sameOrigin compares two origins. In development mode localhost and
// 127.0.0.1 on the same port are one origin, so a person may open either.
func (c *config) sameOrigin(a, b string) bool {
	if a == b {
		return true
	}
	if !c.Dev {
		return false
	}
	swap := func(s string) string {
		if strings.HasPrefix(s, "http://127.0.0.1:") || s == "http://127.0.0.1" {
			return "http://localhost" + strings.TrimPrefix(s, "http://127.0.0.1")
		}
		return s
	}
	return swap(a) == swap(b)
}
