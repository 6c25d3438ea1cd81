// Command dashauth signs people in to a self-hosted dashboard: email+code
// sign-in or WorkOS AuthKit, JWT cookie sessions, and the WorkOS webhook
// that mails magic-auth codes exactly once. See README.md.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run starts the service and serves until ctx is done, then drains
// in-flight requests and background mail and returns nil.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg, warnings, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("dashauth: configuration is not usable:\n%w", err)
	}
	if cfg.Dev {
		log.Warn("development mode: DASHBOARD_URL is a localhost http origin; production checks are relaxed", "dashboard_url", cfg.DashboardURL)
	}
	for _, w := range warnings {
		log.Warn(w)
	}

	s, err := newServer(cfg, log, time.Now)
	if err != nil {
		return err
	}
	defer s.close()

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "login_flow", s.loginFlow())
	return s.serve(ctx, ln)
}

// Limits of the HTTP server. Without them a client that opens a connection
// and sends nothing holds a goroutine forever (see tailscale's cmd/derper).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	// writeTimeout covers the slowest handler: the webhook's WorkOS call
	// (workosTimeout) plus an SMTP delivery (smtpTimeout).
	writeTimeout   = workosTimeout + smtpTimeout + 5*time.Second
	idleTimeout    = 60 * time.Second
	maxHeaderBytes = 32 << 10 // two 4 KiB session cookies with room to spare
	shutdownGrace  = 25 * time.Second
)

// serve answers on ln until ctx is done, then shuts down gracefully:
// in-flight requests finish, and so do mails sent after their response.
func (s *server) serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still running after the grace are cut; that is the
		// end of a drain, not a failure to exit.
		s.log.Warn("shutdown grace over: closing the remaining connections", "err", err)
		srv.Close()
	}
	// Mail sent after its response finishes too, within the same grace.
	drained := make(chan struct{})
	go func() { s.background.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-sctx.Done():
		s.log.Warn("shutdown grace over: mail still in flight is abandoned")
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// server holds every dependency; handlers are its methods.
type server struct {
	cfg     config
	log     *slog.Logger
	store   store
	mail    mailer
	members *memberList
	workos  *workosClient // nil unless IS_WORKOS_INTEGRATED
	metrics *metrics
	keys    [][]byte // JWT keys: current first, then the previous one
	codeKey []byte   // HMAC key for login codes and address hashes
	now     func() time.Time

	// background tracks work that outlives its request (mail sent after the
	// response), so shutdown can wait for it.
	background sync.WaitGroup
}

// newServer builds the server from a checked config.
func newServer(cfg config, log *slog.Logger, now func() time.Time) (*server, error) {
	s := &server{cfg: cfg, log: log, metrics: newMetrics(), now: now}

	key := cfg.JWTSecret
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	s.keys = [][]byte{key}
	if cfg.JWTSecretPrevious != nil {
		s.keys = append(s.keys, cfg.JWTSecretPrevious)
	}
	s.codeKey = deriveKey(key, "dashauth login codes v1")

	if cfg.RedisURL != "" {
		rs, err := newRedisStore(cfg.RedisURL, redisOptions{})
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		s.store = rs
		log.Info("state store: redis", "url", redactedURL(cfg.RedisURL))
	} else {
		s.store = newMemoryStore(now, defaultMemoryMaxKeys)
		log.Info("state store: in-process memory (one replica only)")
	}

	if cfg.SMTPEnabled {
		m, err := newSMTPMailer(cfg.SMTP)
		if err != nil {
			return nil, fmt.Errorf("SMTP: %w", err)
		}
		s.mail = m
	} else {
		s.mail = &logMailer{log: log}
	}

	members, err := loadMembers(cfg.MembersFile, log)
	if err != nil {
		return nil, err
	}
	s.members = members

	if cfg.WorkOS {
		s.workos = newWorkOSClient(cfg)
	}
	return s, nil
}

func (s *server) close() { s.store.Close() }

func (s *server) loginFlow() string {
	if s.cfg.WorkOS {
		return "workos"
	}
	return "email_code"
}

// key builds a store key under REDIS_KEY_PREFIX.
func (s *server) key(parts ...string) string {
	k := s.cfg.KeyPrefix
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}

// go runs f after the response, tracked so shutdown waits for it.
func (s *server) goBackground(f func()) {
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		f()
	}()
}
