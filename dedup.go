package main

// dedup.go holds the state shared across replicas: done webhook events, login codes, rate
// limit counters and revoked sessions. store is the small interface the rest of the service
// uses; memoryStore keeps it in the process (one replica only).

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
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
	// errNotInteger: Incr on a value that is not a counter, or a counter at its maximum.
	errNotInteger = errors.New("value is not an integer or out of range")
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
	expires time.Time // gone from this instant on
	index   int       // position in byExpiry
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
		e.value = value
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
	// Like Redis, a counter is a decimal string, so Get reads it and Set may write it.
	n, err := strconv.ParseInt(e.value, 10, 64)
	if err != nil || n == 1<<63-1 {
		return 0, 0, fmt.Errorf("memory INCR %q: %w", key, errNotInteger)
	}
	n++
	e.value = strconv.FormatInt(n, 10)
	return n, e.expires.Sub(now), nil
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
func (s *memoryStore) insert(key, value string, now time.Time, ttl time.Duration) {
	for len(s.byExpiry) > 0 && !now.Before(s.byExpiry[0].expires) {
		s.remove(s.byExpiry[0])
	}
	for len(s.entries) >= s.maxKeys {
		s.remove(s.byExpiry[0])
	}
	e := &memEntry{key: key, value: value, expires: now.Add(ttl)}
	s.entries[key] = e
	heap.Push(&s.byExpiry, e)
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
