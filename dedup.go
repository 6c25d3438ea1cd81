package main

// dedup.go holds the state shared across replicas: done webhook events, login codes, rate
// limit counters and revoked sessions. store is the small interface the rest of the service
// uses; memoryStore keeps it in the process (one replica only), redisStore in Redis.

import (
	"container/heap"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// store is state shared across replicas.
type store interface {
	// Get returns the value at key; ok is false when the key does not exist.
	Get(ctx context.Context, key string) (value string, ok bool, err error)
	// Set stores value at key for ttl (ttl > 0 required).
	Set(ctx context.Context, key, value string, ttl time.Duration) error
	// SetNX stores value at key for ttl only if key does not exist, and reports whether it did.
	SetNX(ctx context.Context, key, value string, ttl time.Duration) (set bool, err error)
	// Incr adds one to the counter at key, creating it with ttl when absent (and giving it ttl
	// if it somehow has none), and returns the new count and the time left before it expires.
	Incr(ctx context.Context, key string, ttl time.Duration) (n int64, left time.Duration, err error)
	// Admit records one event at key if fewer than max events happened in the last window, and reports whether it did; when it did not, retryAfter is how long until the oldest counted event leaves the window.
	//
	// The window slides: an event at t counts until t+window (exclusive), so at no instant
	// do more than max events lie within any span of window. A refused call records nothing.
	// The key expires window after its newest event.
	Admit(ctx context.Context, key string, max int64, window time.Duration) (admitted bool, retryAfter time.Duration, err error)
	// Del removes key and reports whether it existed (so "take" is atomic: only one caller
	// sees existed == true).
	Del(ctx context.Context, key string) (existed bool, err error)
	// Ping reports whether the store answers (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

var (
	errStoreClosed = errors.New("store closed")
	// errBadTTL: every key expires, so a ttl of zero or less is a bug in the caller.
	errBadTTL = errors.New("ttl must be positive")
	// errBadMax: Admit with max below 1 would refuse everything, a bug in the caller.
	errBadMax = errors.New("max must be at least 1")
	// errWrongKind: Admit on a key that holds a plain value, or Get or Incr on a key that
	// Admit keeps (Redis answers WRONGTYPE for the same mix; Set replaces either kind).
	errWrongKind = errors.New("key holds another kind of value")
	// errNotInteger: Incr on a value that is not a counter, or a counter at its maximum.
	errNotInteger = errors.New("value is not an integer or out of range")
	// errBadRedisURL: REDIS_URL is not a URL this client accepts.
	errBadRedisURL = errors.New("bad redis URL")
)

// defaultMemoryMaxKeys bounds the memory store when the caller gives no bound. An entry is a
// few hundred bytes at most, so this is tens of megabytes in the worst case.
const defaultMemoryMaxKeys = 100_000

// memoryStore keeps state in the process. Expired entries are really removed: on access, and
// from the front of the expiry heap whenever something is inserted.
type memoryStore struct {
	now     func() time.Time
	maxKeys int

	mu       sync.Mutex
	entries  map[string]*memEntry
	byExpiry expiryHeap // the same entries, soonest expiry first
	closed   bool
}

type memEntry struct {
	key     string
	value   string
	events  []time.Time // Admit's events in the window, in the order admitted; nil for plain values
	expires time.Time   // gone from this instant on
	index   int         // position in byExpiry
}

// newMemoryStore returns an empty store that holds at most maxKeys entries
// (defaultMemoryMaxKeys when maxKeys <= 0).
func newMemoryStore(now func() time.Time, maxKeys int) *memoryStore {
	if maxKeys <= 0 {
		maxKeys = defaultMemoryMaxKeys
	}
	return &memoryStore{now: now, maxKeys: maxKeys, entries: make(map[string]*memEntry)}
}

func (s *memoryStore) Get(ctx context.Context, key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return "", false, fmt.Errorf("memory GET %q: %w", key, err)
	}
	e := s.lookup(key, s.now())
	if e == nil {
		return "", false, nil
	}
	if e.events != nil {
		return "", false, fmt.Errorf("memory GET %q: %w", key, errWrongKind)
	}
	return e.value, true, nil
}

func (s *memoryStore) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableTTL(ctx, ttl); err != nil {
		return fmt.Errorf("memory SET %q: %w", key, err)
	}
	now := s.now()
	if e := s.lookup(key, now); e != nil {
		e.value, e.events = value, nil
		e.expires = now.Add(ttl)
		heap.Fix(&s.byExpiry, e.index)
		return nil
	}
	s.insert(key, value, now, ttl)
	return nil
}

func (s *memoryStore) SetNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableTTL(ctx, ttl); err != nil {
		return false, fmt.Errorf("memory SET NX %q: %w", key, err)
	}
	now := s.now()
	if s.lookup(key, now) != nil {
		return false, nil
	}
	s.insert(key, value, now, ttl)
	return true, nil
}

func (s *memoryStore) Incr(ctx context.Context, key string, ttl time.Duration) (int64, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableTTL(ctx, ttl); err != nil {
		return 0, 0, fmt.Errorf("memory INCR %q: %w", key, err)
	}
	now := s.now()
	e := s.lookup(key, now)
	if e == nil {
		s.insert(key, "1", now, ttl)
		return 1, ttl, nil
	}
	if e.events != nil {
		return 0, 0, fmt.Errorf("memory INCR %q: %w", key, errWrongKind)
	}
	// Like Redis, a counter is a decimal string, so Get reads it and Set may write it.
	n, err := strconv.ParseInt(e.value, 10, 64)
	if err != nil || n == 1<<63-1 {
		return 0, 0, fmt.Errorf("memory INCR %q: %w", key, errNotInteger)
	}
	n++
	e.value = strconv.FormatInt(n, 10)
	return n, e.expires.Sub(now), nil
}

func (s *memoryStore) Admit(ctx context.Context, key string, max int64, window time.Duration) (bool, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableTTL(ctx, window); err != nil {
		return false, 0, fmt.Errorf("memory ADMIT %q: %w", key, err)
	}
	if max < 1 {
		return false, 0, fmt.Errorf("memory ADMIT %q: %w", key, errBadMax)
	}
	now := s.now()
	e := s.lookup(key, now)
	if e == nil {
		e = s.insert(key, "", now, window)
	} else if e.events == nil {
		return false, 0, fmt.Errorf("memory ADMIT %q: %w", key, errWrongKind)
	}
	// Drop the events that left the window: one at t counts while t > now-window. Every
	// event is checked, not only a prefix, so an injected clock that steps back cannot keep
	// a stale event counted.
	cut := now.Add(-window)
	kept := e.events[:0]
	for _, t := range e.events {
		if t.After(cut) {
			kept = append(kept, t)
		}
	}
	e.events = kept
	if int64(len(e.events)) >= max {
		oldest := e.events[0]
		for _, t := range e.events[1:] {
			if t.Before(oldest) {
				oldest = t
			}
		}
		return false, oldest.Sub(cut), nil
	}
	// At most max events are held: len < max here, and one is added.
	e.events = append(e.events, now)
	e.expires = now.Add(window)
	heap.Fix(&s.byExpiry, e.index)
	return true, 0, nil
}

func (s *memoryStore) Del(ctx context.Context, key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return false, fmt.Errorf("memory DEL %q: %w", key, err)
	}
	e := s.lookup(key, s.now())
	if e == nil {
		return false, nil
	}
	s.remove(e)
	return true, nil
}

func (s *memoryStore) Ping(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("memory PING: %w", err)
	}
	return nil
}

// Close drops every entry; later calls fail with errStoreClosed.
func (s *memoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.entries = nil
	s.byExpiry = nil
	return nil
}

func (s *memoryStore) usable(ctx context.Context) error {
	if s.closed {
		return errStoreClosed
	}
	return ctx.Err()
}

func (s *memoryStore) usableTTL(ctx context.Context, ttl time.Duration) error {
	if ttl <= 0 {
		return errBadTTL
	}
	return s.usable(ctx)
}

// size reports the number of entries held, expired or not.
func (s *memoryStore) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// lookup returns the live entry at key, removing it if it has expired.
func (s *memoryStore) lookup(key string, now time.Time) *memEntry {
	e := s.entries[key]
	if e == nil {
		return nil
	}
	if !now.Before(e.expires) {
		s.remove(e)
		return nil
	}
	return e
}

// insert adds a new key. s.mu is held and key is absent.
//
// At the bound it first drops expired entries, then evicts the entries closest to expiry.
// Those are the entries that would have vanished soonest anyway, and the heap already orders
// by expiry, so the choice costs nothing extra. It also protects the long-lived entries:
// revoked sessions and done webhook events outlive rate-limit counters and codes. What it
// means: a flood of distinct keys (one login attempt per made-up address) pushes out
// short-lived entries, so an attacker can reset rate-limit counters and void pending codes.
// Memory stays bounded, which matters more for one process, and that is why a deployment
// that faces the internet, or runs more than one replica, sets REDIS_URL.
func (s *memoryStore) insert(key, value string, now time.Time, ttl time.Duration) *memEntry {
	for len(s.byExpiry) > 0 && !now.Before(s.byExpiry[0].expires) {
		s.remove(s.byExpiry[0])
	}
	for len(s.entries) >= s.maxKeys {
		s.remove(s.byExpiry[0])
	}
	e := &memEntry{key: key, value: value, expires: now.Add(ttl)}
	s.entries[key] = e
	heap.Push(&s.byExpiry, e)
	return e
}

func (s *memoryStore) remove(e *memEntry) {
	heap.Remove(&s.byExpiry, e.index)
	delete(s.entries, e.key)
}

// expiryHeap is a container/heap of entries ordered by expiry.
type expiryHeap []*memEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*memEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil // let the entry be collected
	*h = old[:len(old)-1]
	return e
}

// redisOptions tune newRedisStore. Zero values take the defaults.
type redisOptions struct {
	// TLSConfig is the base configuration for rediss:// URLs, for example with RootCAs. It is
	// cloned; ServerName defaults to the URL's host and MinVersion is at least TLS 1.2.
	// redis:// URLs ignore it.
	TLSConfig *tls.Config
	// DialTimeout bounds connecting, TLS handshake included (default 2 s).
	DialTimeout time.Duration
	// CommandTimeout bounds each command from sending to the whole reply, and the wait for a
	// free connection (default 2 s). A shorter context deadline wins.
	CommandTimeout time.Duration
	// PoolSize bounds the connections open at once (default 8).
	PoolSize int
}

const (
	defaultRedisDialTimeout    = 2 * time.Second
	defaultRedisCommandTimeout = 2 * time.Second
	defaultRedisPoolSize       = 8
)

// maxRedisDB bounds the database number. Redis ships with 16 (redis.conf "databases 16");
// more needs a reconfigured server, and a number in the thousands is a typo.
const maxRedisDB = 9999

// redisConfig is what a Redis URL says.
type redisConfig struct {
	addr     string // host:port
	host     string // for TLS ServerName
	useTLS   bool
	username string // empty: AUTH with the password alone (the default user)
	password string // empty: no AUTH
	db       int
}

// parseRedisURL parses redis://[user:pass@]host[:port][/db] and rediss://... (TLS). The port
// defaults to 6379. It rejects anything it would not honour: other schemes, query options,
// fragments, a path other than a database number, a user without a password.
//
// Its errors never quote the input, not even in part: the URL carries a password, and a
// mistyped URL can put the password where a host or path is expected.
func parseRedisURL(raw string) (redisConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole input, so only its kind is kept.
		return redisConfig{}, fmt.Errorf("%w: does not parse as a URL", errBadRedisURL)
	}
	var cfg redisConfig
	switch u.Scheme {
	case "redis":
	case "rediss":
		cfg.useTLS = true
	default:
		return redisConfig{}, fmt.Errorf("%w: scheme must be redis or rediss", errBadRedisURL)
	}
	switch {
	case u.Opaque != "":
		return redisConfig{}, fmt.Errorf("%w: want redis://host:port", errBadRedisURL)
	case u.RawQuery != "" || u.ForceQuery:
		return redisConfig{}, fmt.Errorf("%w: query options are not supported", errBadRedisURL)
	case u.Fragment != "" || u.RawFragment != "":
		return redisConfig{}, fmt.Errorf("%w: fragments are not supported", errBadRedisURL)
	case u.Hostname() == "":
		return redisConfig{}, fmt.Errorf("%w: host is required", errBadRedisURL)
	}
	cfg.host = u.Hostname()
	port := u.Port()
	if port == "" {
		if len(u.Host) > 0 && u.Host[len(u.Host)-1] == ':' {
			return redisConfig{}, fmt.Errorf("%w: empty port", errBadRedisURL)
		}
		port = "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || !allDigits([]byte(port)) || n < 1 || n > 65535 {
		return redisConfig{}, fmt.Errorf("%w: port must be a number from 1 to 65535", errBadRedisURL)
	}
	cfg.addr = net.JoinHostPort(cfg.host, port)
	if u.User != nil {
		cfg.username = u.User.Username()
		pass, ok := u.User.Password()
		if !ok || pass == "" {
			return redisConfig{}, fmt.Errorf("%w: a user needs a password (redis://user:pass@host or redis://:pass@host)", errBadRedisURL)
		}
		cfg.password = pass
	}
	switch db := u.Path; {
	case db == "" || db == "/":
	case db[0] != '/' || !allDigits([]byte(db[1:])) || (db[1] == '0' && len(db) > 2) || len(db) > 5:
		return redisConfig{}, fmt.Errorf("%w: path must be a database number from 0 to %d", errBadRedisURL, maxRedisDB)
	default:
		cfg.db, _ = strconv.Atoi(db[1:]) // all digits, at most 4 of them
	}
	return cfg, nil
}

// redactedURL returns rawURL fit for a log line: the password replaced, or a fixed text when
// the URL is not one parseRedisURL accepts (it might hold the password anywhere).
func redactedURL(rawURL string) string {
	if _, err := parseRedisURL(rawURL); err != nil {
		return "(invalid redis URL)"
	}
	u, _ := url.Parse(rawURL) // parsed above
	return u.Redacted()
}

// redisStore is a store in Redis, through a small pool of RESP2 connections (resp.go).
type redisStore struct {
	pool *redisPool
}

// newRedisStore checks rawURL and opts and returns a store. It does not connect: every
// command takes an idle connection or dials a new one, so a Redis that is down at start or
// restarts later is reached as soon as it answers. Call Ping to check it answers now.
func newRedisStore(rawURL string, opts redisOptions) (*redisStore, error) {
	cfg, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.DialTimeout < 0 || opts.CommandTimeout < 0 || opts.PoolSize < 0 {
		return nil, errors.New("redis options: timeouts and pool size must not be negative")
	}
	return &redisStore{pool: newRedisPool(cfg, opts)}, nil
}

func (s *redisStore) Get(ctx context.Context, key string) (value string, ok bool, err error) {
	err = s.pool.exec(ctx, func(reply any) error {
		switch r := reply.(type) {
		case nil:
			return nil
		case []byte:
			value, ok = string(r), true
			return nil
		}
		return unexpectedReply(reply)
	}, "GET", key)
	if err != nil {
		return "", false, fmt.Errorf("redis GET %q: %w", key, err)
	}
	return value, ok, nil
}

func (s *redisStore) Set(ctx context.Context, key, value string, ttl time.Duration) error {
	ms, err := ttlMillis(ttl)
	if err == nil {
		err = s.pool.exec(ctx, expectOK, "SET", key, value, "PX", ms)
	}
	if err != nil {
		return fmt.Errorf("redis SET %q: %w", key, err)
	}
	return nil
}

func (s *redisStore) SetNX(ctx context.Context, key, value string, ttl time.Duration) (set bool, err error) {
	ms, err := ttlMillis(ttl)
	if err == nil {
		err = s.pool.exec(ctx, func(reply any) error {
			if reply == nil {
				return nil // NX and the key exists
			}
			set = true
			return expectOK(reply)
		}, "SET", key, value, "PX", ms, "NX")
	}
	if err != nil {
		return false, fmt.Errorf("redis SET NX %q: %w", key, err)
	}
	return set, nil
}

// incrScript is Incr in one step. Two commands, INCR then PEXPIRE, would leave a counter
// without expiry, counting forever, if the client died or the connection broke between them;
// a script runs atomically. It also repairs a counter that somehow has no expiry (PTTL -1).
// It returns {count, milliseconds left}.
const incrScript = `local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if n == 1 or left == -1 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
	left = tonumber(ARGV[1])
end
return {n, left}`

func (s *redisStore) Incr(ctx context.Context, key string, ttl time.Duration) (n int64, left time.Duration, err error) {
	ms, err := ttlMillis(ttl)
	if err == nil {
		err = s.pool.exec(ctx, func(reply any) error {
			a, ok := reply.([]any)
			if !ok || len(a) != 2 {
				return unexpectedReply(reply)
			}
			count, ok1 := a[0].(int64)
			pttl, ok2 := a[1].(int64)
			// PTTL rounds down, so 0 is a counter in its last millisecond.
			if !ok1 || !ok2 || count < 1 || pttl < 0 {
				return protocolErrorf("INCR script returned a count below 1 or a negative time left")
			}
			n, left = count, time.Duration(pttl)*time.Millisecond
			return nil
		}, "EVAL", incrScript, "1", key, ms)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("redis INCR %q: %w", key, err)
	}
	return n, left, nil
}

// admitScript is Admit in one step: reading the count and adding an event must be atomic, or
// two replicas could both see max-1 events and both admit. The key is a sorted set of event
// members scored by their time in milliseconds. Line by line:
//
//  1. TIME is Redis's clock, not the caller's: replicas with skewed clocks still agree on
//     which events are in the window. (Redis 5 and later replicate a script's effects, so a
//     script may read TIME and then write.)
//  2. now in milliseconds: seconds*1000 plus the microseconds cut to milliseconds.
//  3. ZREMRANGEBYSCORE drops the events that left the window: scores up to now-window,
//     inclusive, so an event at t counts until t+window exclusive, like memoryStore.
//  4. Fewer than max events left: admit.
//  5. ZADD records this event. The member is now plus the caller's random suffix (ARGV[3]),
//     so two events in the same millisecond are two members and both count.
//  6. PEXPIRE: the set goes window after its newest event, when every event has left.
//  7. {1, 0}: admitted.
//  8. Otherwise the oldest event (lowest score) says when a place frees up:
//  9. {0, oldest+window-now}: refused, and the milliseconds until the oldest leaves. It is
//     positive: line 3 removed every event with oldest+window <= now.
const admitScript = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
	redis.call('ZADD', KEYS[1], now, t[1] .. '.' .. t[2] .. ':' .. ARGV[3])
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + tonumber(ARGV[2]) - now}`

func (s *redisStore) Admit(ctx context.Context, key string, max int64, window time.Duration) (admitted bool, retryAfter time.Duration, err error) {
	ms, err := ttlMillis(window)
	if err == nil && max < 1 {
		err = errBadMax
	}
	if err == nil {
		err = s.pool.exec(ctx, func(reply any) error {
			a, ok := reply.([]any)
			if !ok || len(a) != 2 {
				return unexpectedReply(reply)
			}
			flag, ok1 := a[0].(int64)
			left, ok2 := a[1].(int64)
			switch {
			case !ok1 || !ok2:
				return protocolErrorf("ADMIT script returned an array of the wrong types")
			case flag == 1 && left == 0:
				admitted = true
				return nil
			case flag == 0 && left > 0:
				retryAfter = time.Duration(left) * time.Millisecond
				return nil
			}
			return protocolErrorf("ADMIT script returned an impossible verdict")
		}, "EVAL", admitScript, "1", key, strconv.FormatInt(max, 10), ms, randomID(8))
	}
	if err != nil {
		return false, 0, fmt.Errorf("redis ADMIT %q: %w", key, err)
	}
	return admitted, retryAfter, nil
}

func (s *redisStore) Del(ctx context.Context, key string) (existed bool, err error) {
	err = s.pool.exec(ctx, func(reply any) error {
		switch reply {
		case int64(0):
			return nil
		case int64(1):
			existed = true
			return nil
		}
		return unexpectedReply(reply)
	}, "DEL", key)
	if err != nil {
		return false, fmt.Errorf("redis DEL %q: %w", key, err)
	}
	return existed, nil
}

func (s *redisStore) Ping(ctx context.Context) error {
	err := s.pool.exec(ctx, func(reply any) error {
		if reply != "PONG" {
			return unexpectedReply(reply)
		}
		return nil
	}, "PING")
	if err != nil {
		return fmt.Errorf("redis PING: %w", err)
	}
	return nil
}

// Close closes the idle connections, and the busy ones as they come back. Later calls fail
// with errStoreClosed.
func (s *redisStore) Close() error {
	s.pool.close()
	return nil
}

// ttlMillis turns ttl into the milliseconds argument of PX, rounding up so that a ttl under a
// millisecond still expires rather than being refused by Redis.
func ttlMillis(ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", errBadTTL
	}
	return strconv.FormatInt(int64((ttl+time.Millisecond-1)/time.Millisecond), 10), nil
}

func expectOK(reply any) error {
	if reply != "OK" {
		return unexpectedReply(reply)
	}
	return nil
}

// unexpectedReply describes a reply of the wrong kind by its type and size only: its content
// may be a stored secret.
func unexpectedReply(reply any) error {
	switch r := reply.(type) {
	case nil:
		return protocolErrorf("unexpected null reply")
	case string:
		return protocolErrorf("unexpected status reply of %d bytes", len(r))
	case int64:
		return protocolErrorf("unexpected integer reply")
	case []byte:
		return protocolErrorf("unexpected bulk string reply of %d bytes", len(r))
	case []any:
		return protocolErrorf("unexpected array reply of %d elements", len(r))
	}
	return protocolErrorf("unexpected reply of type %T", reply) // unreachable: readValue makes no other types
}
