package main

// Tests of dedup.go that need no server: the store contract (run here on the memory store, and on a real Redis in
// redis_test.go), admit, the memory store's bound, the RESP reader and REDIS_URL.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// storeUnderTest is a store and what the contract needs to see inside it.
type storeUnderTest struct {
	st    store
	clock *testClock // admit's now; the memory store's own clock too
	// left reports how long key has to live, as the store keeps it (false: no such key).
	left func(t *testing.T, key string) (time.Duration, bool)
	// elapse moves the store's time on; nil for Redis, whose clock is real time.
	elapse func(d time.Duration)
}

// wantLeft checks that key expires in ttl: exactly on an injected clock, else within (ttl/2, ttl], since Redis counts
// down from when it ran the command; half the ttl leaves ample room for a slow machine.
func (su storeUnderTest) wantLeft(t *testing.T, key string, ttl time.Duration) {
	t.Helper()
	left, ok := su.left(t, key)
	switch {
	case !ok:
		t.Errorf("%s: no ttl (no key); want %v", key, ttl)
	case su.elapse != nil && left != ttl:
		t.Errorf("%s: %v left; want exactly %v", key, left, ttl)
	case left <= ttl/2 || left > ttl:
		t.Errorf("%s: %v left; want (%v, %v]", key, left, ttl/2, ttl)
	}
}

func wantStoreGet(t *testing.T, st store, key, want string, wantOK bool) {
	t.Helper()
	v, ok, err := st.Get(context.Background(), key)
	if err != nil || ok != wantOK || v != want {
		t.Fatalf("Get %q = %q, %v, %v; want %q, %v, nil", key, v, ok, err, want, wantOK)
	}
}

// wantPut checks Put's answer; old is shown as "any" for anyValue.
func wantStorePut(t *testing.T, st store, key, old, value string, ttl time.Duration, want bool) {
	t.Helper()
	ok, err := st.Put(context.Background(), key, old, value, ttl)
	if err != nil || ok != want {
		t.Fatalf("Put %q old %q value %q = %v, %v; want %v, nil", key, strings.ReplaceAll(old, anyValue, "any"), value, ok, err, want)
	}
}

// testStoreContract checks what the rest of dashauth relies on, the same on every store. Keys are unique per call
// with prefix; the subtests share the store and the clock, so they run in turn.
func testStoreContract(t *testing.T, su storeUnderTest, prefix string) {
	st := su.st
	key := func(name string) string { return prefix + name }
	const ttl = time.Hour

	t.Run("get absent", func(t *testing.T) {
		wantStoreGet(t, st, key("absent"), "", false)
	})
	t.Run("put if absent", func(t *testing.T) {
		k := key("nx")
		wantStorePut(t, st, k, "", "first", ttl, true)
		wantStorePut(t, st, k, "", "second", 2*ttl, false)
		wantStoreGet(t, st, k, "first", true)
		su.wantLeft(t, k, ttl) // the refused Put renewed nothing either
	})
	t.Run("put any value: set, overwrite, renew", func(t *testing.T) {
		k := key("any")
		wantStorePut(t, st, k, anyValue, "one", ttl, true)
		wantStoreGet(t, st, k, "one", true)
		su.wantLeft(t, k, ttl)
		// A value that would end a RESP line or start a command stays one value.
		odd := "two\r\n*1\r\n$8\r\nFLUSHALL\r\n\x00\xff é"
		wantStorePut(t, st, k, anyValue, odd, 2*ttl, true)
		wantStoreGet(t, st, k, odd, true)
		su.wantLeft(t, k, 2*ttl)
	})
	t.Run("delete whatever is there", func(t *testing.T) {
		k := key("del")
		wantStorePut(t, st, k, anyValue, "v", ttl, true)
		wantStorePut(t, st, k, anyValue, "", 0, true)
		wantStoreGet(t, st, k, "", false)
		wantStorePut(t, st, k, anyValue, "", 0, true) // nothing to delete: done all the same
		wantStoreGet(t, st, k, "", false)
	})
	t.Run("compare and set", func(t *testing.T) {
		k := key("cas")
		wantStorePut(t, st, k, "", "v1", ttl, true)
		wantStorePut(t, st, k, "v1", "v2", 2*ttl, true)
		wantStoreGet(t, st, k, "v2", true)
		su.wantLeft(t, k, 2*ttl)
		// A stale old changes nothing: neither value nor ttl.
		wantStorePut(t, st, k, "v1", "v3", 3*ttl, false)
		wantStorePut(t, st, k, "", "v3", 3*ttl, false)
		wantStorePut(t, st, k, "v", "v3", 3*ttl, false) // a prefix is not the value
		wantStoreGet(t, st, k, "v2", true)
		su.wantLeft(t, k, 2*ttl)
		// An absent key holds nothing to compare with.
		wantStorePut(t, st, key("cas absent"), "v1", "v2", ttl, false)
		wantStoreGet(t, st, key("cas absent"), "", false)
	})
	t.Run("compare and delete", func(t *testing.T) {
		k := key("cad")
		wantStorePut(t, st, k, "", "token", ttl, true)
		wantStorePut(t, st, k, "other", "", 0, false)
		wantStoreGet(t, st, k, "token", true)
		wantStorePut(t, st, k, "token", "", 0, true)
		wantStoreGet(t, st, k, "", false)
		wantStorePut(t, st, k, "token", "", 0, false) // taken once only
	})
	t.Run("delete if absent creates nothing", func(t *testing.T) {
		// Put(key, "", "") asks: delete key if it holds nothing. Done, and the key stays absent.
		k := key("delete if absent")
		wantStorePut(t, st, k, "", "", ttl, true)
		wantStoreGet(t, st, k, "", false)
		wantStorePut(t, st, k, "", "later", ttl, true) // still absent, so set-if-absent works
		// Present: it holds something, not nothing, so nothing happens.
		wantStorePut(t, st, k, "", "", ttl, false)
		wantStoreGet(t, st, k, "later", true)
	})
	t.Run("expiry", func(t *testing.T) {
		k := key("expiry")
		if su.elapse == nil {
			// Redis's clock is real time: a short ttl, then the key is gone however late we look. Only the
			// bound is timed, and it fails a key that never expires.
			wantStorePut(t, st, k, "", "v", 20*time.Millisecond, true)
			pollFor(t, "a key with a 20 ms ttl gone", func() bool { return gone(st, k) })
			wantStorePut(t, st, k, "", "again", ttl, true) // absent again: set-if-absent works
			return
		}
		wantStorePut(t, st, k, "", "v", 10*time.Second, true)
		su.elapse(10*time.Second - time.Nanosecond)
		wantStoreGet(t, st, k, "v", true)
		su.elapse(time.Nanosecond)
		wantStoreGet(t, st, k, "", false)
		wantStorePut(t, st, k, "v", "w", ttl, false) // an expired value is no value
		wantStorePut(t, st, k, "", "again", ttl, true)
		wantStoreGet(t, st, k, "again", true)
	})
	t.Run("ping", func(t *testing.T) {
		if err := st.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("admit: sliding window", func(t *testing.T) {
		testAdmitWindow(t, su, key("rl:window"))
	})
	t.Run("admit: after the key expired", func(t *testing.T) {
		testAdmitAfterExpiry(t, su, key("rl:expired"))
	})
	t.Run("admit: concurrent", func(t *testing.T) {
		testAdmitConcurrent(t, su, key("rl:race"))
	})
}

// testAdmitWindow steps time through one key's events, max 3 in 10 minutes: an event at t counts until t+10m,
// exclusive.
func testAdmitWindow(t *testing.T, su storeUnderTest, k string) {
	const max, window = 3, 10 * time.Minute
	ctx := context.Background()
	start := su.clock.Now()
	ms := func(at time.Duration) string { return strconv.FormatInt(start.Add(at).UnixMilli(), 10) }
	for _, step := range []struct {
		at    time.Duration // since start
		ok    bool
		retry time.Duration
	}{
		{0, true, 0},
		{time.Minute, true, 0},
		{9 * time.Minute, true, 0},
		{9 * time.Minute, false, time.Minute}, // three in the window: the first leaves at 10m
		{10*time.Minute - time.Millisecond, false, time.Millisecond}, // refusals record nothing
		{10 * time.Minute, true, 0},                                  // exactly when the first leaves
		{10 * time.Minute, false, time.Minute},                       // now 1m, 9m, 10m: 1m leaves at 11m
		{11 * time.Minute, true, 0},                                  // 9m, 10m, 11m
		// A fixed window that started afresh at 10m would admit 12m as well: four events within three minutes.
		{12 * time.Minute, false, 7 * time.Minute},
		{18*time.Minute + 30*time.Second, false, 30 * time.Second},
		{19 * time.Minute, true, 0}, // 10m, 11m, 19m
		{20*time.Minute - time.Millisecond, false, time.Millisecond},
		{20 * time.Minute, true, 0}, // 11m, 19m, 20m
		{21 * time.Minute, true, 0}, // 19m, 20m, 21m
		{21 * time.Minute, false, 8 * time.Minute},
	} {
		if d := start.Add(step.at).Sub(su.clock.Now()); d > 0 {
			su.clock.Advance(d)
		}
		before, _, _ := su.st.Get(ctx, k)
		ok, retry, err := admit(ctx, su.st, su.clock.Now(), k, max, window)
		if err != nil || ok != step.ok || retry != step.retry {
			t.Fatalf("at %v: admit = %v, %v, %v; want %v, %v, nil", step.at, ok, retry, err, step.ok, step.retry)
		}
		if after, _, _ := su.st.Get(ctx, k); !ok && after != before {
			t.Fatalf("at %v: a refusal changed the value from %q to %q", step.at, before, after)
		}
	}
	// Unix milliseconds, oldest first; those out of the window were dropped when the last event was written.
	wantStoreGet(t, su.st, k, ms(19*time.Minute)+" "+ms(20*time.Minute)+" "+ms(21*time.Minute), true)
	su.wantLeft(t, k, window) // the key lives a window after its newest event
}

// testAdmitAfterExpiry: once a quiet window has passed and the key is gone, the next event is admitted like the first.
func testAdmitAfterExpiry(t *testing.T, su storeUnderTest, k string) {
	ctx := context.Background()
	window, now := time.Minute, su.clock.Now
	if su.elapse == nil { // Redis expires the key in real time
		window, now = 20*time.Millisecond, time.Now
	}
	for round := range 3 {
		if ok, retry, err := admit(ctx, su.st, now(), k, 1, window); err != nil || !ok || retry != 0 {
			t.Fatalf("round %d: admit = %v, %v, %v; want true, 0, nil", round, ok, retry, err)
		}
		if ok, _, err := admit(ctx, su.st, now(), k, 1, window); err != nil || ok {
			t.Fatalf("round %d: second admit = %v, %v; want refused", round, ok, err)
		}
		if su.elapse != nil {
			su.elapse(window)
		}
		pollFor(t, "the key gone a window after its event", func() bool { return gone(su.st, k) })
	}
}

// gone reports whether st holds no key k (or cannot tell).
func gone(st store, k string) bool {
	_, ok, err := st.Get(context.Background(), k)
	return err != nil || !ok
}

// pollFor waits until cond holds, failing the test after 10 s: a bound on a wait for something that happens however
// late we look (an expiry, a close), not a timing assertion.
func pollFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
	}
}

// testAdmitConcurrent: 50 callers at once, max 5. Put's compare-and-set lets none slip past the count. Exactly 5 are
// admitted: a caller loses a round only to a write that admitted someone, so none gives up after its 8 tries.
func testAdmitConcurrent(t *testing.T, su storeUnderTest, k string) {
	const callers, max, window = 50, 5, time.Hour
	now := su.clock.Now()
	var admitted, refused atomic.Int32
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			ok, retry, err := admit(context.Background(), su.st, now, k, max, window)
			switch {
			case err != nil:
				t.Error(err)
			case ok:
				admitted.Add(1)
			case retry != window:
				t.Errorf("refused with retry %v; want %v (all events are now)", retry, window)
			default:
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if a, r := admitted.Load(), refused.Load(); a != max || r != callers-max {
		t.Fatalf("%d admitted, %d refused of %d concurrent calls; want %d admitted", a, r, callers, max)
	}
	v, _, _ := su.st.Get(context.Background(), k)
	if n := len(strings.Fields(v)); n != max {
		t.Fatalf("%d events stored (%q); want %d", n, v, max)
	}
}

// newMemoryUnderTest returns a memory store of up to maxKeys on its own clock, with a view into it.
func newMemoryUnderTest(maxKeys int) (storeUnderTest, *memoryStore) {
	clock := newTestClock()
	m := newMemoryStore(clock.Now, maxKeys)
	return storeUnderTest{
		st:    m,
		clock: clock,
		left: func(t *testing.T, key string) (time.Duration, bool) {
			m.mu.Lock()
			e, ok := m.m[key]
			m.mu.Unlock()
			if left := e.expires.Sub(clock.Now()); ok && left > 0 {
				return left, true
			}
			return 0, false
		},
		elapse: clock.Advance,
	}, m
}

func TestMemoryStoreContract(t *testing.T) {
	t.Parallel()
	su, _ := newMemoryUnderTest(memoryMaxKeys)
	testStoreContract(t, su, "contract:")
}

// memoryKeys counts the entries s holds, expired or not.
func memoryKeys(s *memoryStore) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// TestMemoryStoreFull: a full store refuses new keys with an error and changes nothing, and keeps serving the keys
// it holds: every key protects someone, so none is evicted.
func TestMemoryStoreFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	su, m := newMemoryUnderTest(3)
	for _, k := range []string{"a", "b", "c"} {
		wantStorePut(t, m, k, "", k, time.Hour, true)
	}
	for _, old := range []string{"", anyValue} {
		ok, err := m.Put(ctx, "d", old, "v", time.Hour)
		if ok || err == nil || !strings.Contains(err.Error(), "full") {
			t.Fatalf("Put of a new key into a full store = %v, %v; want false and a 'full' error", ok, err)
		}
	}
	wantStoreGet(t, m, "d", "", false)
	if n := memoryKeys(m); n != 3 {
		t.Fatalf("%d keys after refusals; want 3", n)
	}
	// A Put that would not write anyway is a plain "no", not an error.
	wantStorePut(t, m, "d", "stale", "v", time.Hour, false)
	// Keys held still change, and go.
	wantStorePut(t, m, "a", anyValue, "a2", 2*time.Hour, true)
	wantStoreGet(t, m, "a", "a2", true)
	su.wantLeft(t, "a", 2*time.Hour)
	wantStorePut(t, m, "b", "b", "b2", time.Hour, true)
	wantStorePut(t, m, "c", "c", "", 0, true)
	wantStoreGet(t, m, "c", "", false)
	// That freed a place.
	wantStorePut(t, m, "d", "", "v", time.Hour, true)
	for k, want := range map[string]string{"a": "a2", "b": "b2", "d": "v"} {
		wantStoreGet(t, m, k, want, true)
	}
}

// TestMemoryStoreSweep: when full, a new key makes the store drop what expired, at most once a second, so keys that
// expired make room again without a sweep on every write of a flood.
func TestMemoryStoreSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	su, m := newMemoryUnderTest(3)
	wantStorePut(t, m, "short", "", "v", 500*time.Millisecond, true)
	wantStorePut(t, m, "b", "", "v", time.Hour, true)
	wantStorePut(t, m, "c", "", "v", time.Hour, true)
	full := func(when string) {
		t.Helper()
		if ok, err := m.Put(ctx, "new", "", "v", time.Hour); ok || err == nil {
			t.Fatalf("%s: Put = %v, %v; want refused, the store full", when, ok, err)
		}
	}
	full("nothing expired") // swept now: nothing to drop
	su.elapse(500 * time.Millisecond)
	full("expired, but swept half a second ago")
	if n := memoryKeys(m); n != 3 {
		t.Fatalf("%d keys held; want 3 (the expired one not yet dropped)", n)
	}
	su.elapse(500 * time.Millisecond)
	wantStorePut(t, m, "new", "", "v", time.Hour, true) // a second later: swept, and it fits
	if n := memoryKeys(m); n != 3 {
		t.Fatalf("%d keys held; want 3", n)
	}
	for _, k := range []string{"b", "c", "new"} {
		wantStoreGet(t, m, k, "v", true)
	}
	m.mu.Lock()
	_, held := m.m["short"]
	m.mu.Unlock()
	if held {
		t.Fatal("the expired key is still held after the sweep")
	}
}

// casLosingStore is a store on which every compare-and-set loses to another writer.
type casLosingStore struct {
	store
	gets, puts atomic.Int32
}

func (s *casLosingStore) Get(ctx context.Context, key string) (string, bool, error) {
	s.gets.Add(1)
	return s.store.Get(ctx, key)
}

func (s *casLosingStore) Put(context.Context, string, string, string, time.Duration) (bool, error) {
	s.puts.Add(1)
	return false, nil
}

func TestAdmitGivesUpAfterEightLostRaces(t *testing.T) {
	t.Parallel()
	su, _ := newMemoryUnderTest(10)
	s := &casLosingStore{store: su.st}
	ok, retry, err := admit(context.Background(), s, su.clock.Now(), "rl", 5, time.Minute)
	if ok || retry != time.Second || err != nil {
		t.Fatalf("admit = %v, %v, %v; want false, 1s, nil", ok, retry, err)
	}
	if g, p := s.gets.Load(), s.puts.Load(); g != 8 || p != 8 {
		t.Fatalf("%d reads and %d writes; want 8 of each", g, p)
	}
}

// alwaysFailingStore fails every call.
type alwaysFailingStore struct{ err error }

func (s alwaysFailingStore) Get(context.Context, string) (string, bool, error) {
	return "", false, s.err
}
func (s alwaysFailingStore) Put(context.Context, string, string, string, time.Duration) (bool, error) {
	return false, s.err
}
func (s alwaysFailingStore) Ping(context.Context) error { return s.err }

func TestAdmitStoreError(t *testing.T) {
	t.Parallel()
	down := errors.New("store down")
	if ok, _, err := admit(context.Background(), alwaysFailingStore{down}, time.Now(), "rl", 5, time.Minute); ok || !errors.Is(err, down) {
		t.Fatalf("admit = %v, %v; want false and the store's error", ok, err)
	}
}

// pipeReader feeds raw to its reader chunk bytes per Read, through net.Pipe as a connection would, then closes.
func respPipe(raw string, chunk int) net.Conn {
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		for p := []byte(raw); len(p) > 0; p = p[min(chunk, len(p)):] {
			if _, err := server.Write(p[:min(chunk, len(p))]); err != nil {
				return
			}
		}
	}()
	return client
}

// readRepliesFrom reads n replies from raw with redisConn.readReply: all bytes at once when chunk is 0, else chunk
// bytes per Read through a pipe.
func readRepliesFrom(raw string, n, chunk int) []any {
	var r io.Reader = strings.NewReader(raw)
	if chunk > 0 {
		pc := respPipe(raw, chunk)
		defer pc.Close()
		r = pc
	}
	c := &redisConn{br: bufio.NewReaderSize(r, maxLineLen)}
	out := make([]any, n)
	for i := range out {
		out[i] = c.readReply()
	}
	return out
}

// replyFeeds are the ways the RESP tests feed a reply: at once, and one byte per Read (larger chunks for a large
// reply, which would take long a byte at a time).
func replyFeeds(raw string) []int {
	if len(raw) > 10_000 {
		return []int{0, 1000}
	}
	return []int{0, 1}
}

func TestReadReply(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", maxBulkLen)
	long := strings.Repeat("s", maxLineLen-3) // with its type byte and CRLF, the longest line that fits
	for _, tc := range []struct {
		name, raw string
		want      any
	}{
		{"status", "+OK\r\n", "OK"},
		{"empty status", "+\r\n", ""},
		{"status with spaces", "+a b\tc\r\n", "a b\tc"},
		{"longest line", "+" + long + "\r\n", long},
		{"error", "-ERR unknown command 'X'\r\n", redisError("ERR unknown command 'X'")},
		{"empty error", "-\r\n", redisError("")},
		{"zero", ":0\r\n", int64(0)},
		{"integer", ":1\r\n", int64(1)},
		{"max int64", ":9223372036854775807\r\n", int64(9223372036854775807)},
		{"null bulk", "$-1\r\n", nil},
		{"empty bulk", "$0\r\n\r\n", []byte{}},
		{"bulk", "$5\r\nhello\r\n", []byte("hello")},
		{"binary bulk with CRLF inside", "$9\r\na\r\nb\x00\xff\r\n\r\r\n", []byte("a\r\nb\x00\xff\r\n\r")},
		{"bulk longer than a line", "$5000\r\n" + strings.Repeat("y", 5000) + "\r\n", []byte(strings.Repeat("y", 5000))},
		{"largest bulk", "$" + strconv.Itoa(maxBulkLen) + "\r\n" + big + "\r\n", []byte(big)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, chunk := range replyFeeds(tc.raw) {
				// The reply, and not a byte more: the next one reads whole.
				got := readRepliesFrom(tc.raw+"+NEXT\r\n", 2, chunk)
				if !reflect.DeepEqual(got[0], tc.want) {
					t.Fatalf("chunk %d: %#v; want %#v", chunk, shortReply(got[0]), shortReply(tc.want))
				}
				if got[1] != "NEXT" {
					t.Fatalf("chunk %d: next reply %#v; want the status NEXT", chunk, shortReply(got[1]))
				}
			}
		})
	}
}

// shorten keeps failure messages readable when a value is a megabyte.
func shortReply(v any) any {
	if b, ok := v.([]byte); ok && len(b) > 64 {
		return fmt.Sprintf("%q… (%d bytes)", b[:64], len(b))
	}
	return v
}

// malformedReplies are replies out of protocol, or of a kind this client never asks for.
func malformedReplies() []struct{ name, raw string } {
	return []struct{ name, raw string }{
		{"LF without CR", "+OK\n"},
		{"LF inside a status", "+O\nK\r\n"},
		{"CR inside a status", "+O\rK\r\n"},
		{"CR inside an error", "-ERR\r \r\n"},
		{"CR CR LF", "+OK\r\r\n"},
		{"empty line", "\r\n"},
		{"bare LF", "\n"},
		{"type byte alone", "+\n"},
		{"unknown type byte", "?1\r\n"},
		{"space for a type", " OK\r\n"},
		{"NUL for a type", "\x00\r\n"},
		{"RESP3 null", "_\r\n"},
		{"RESP3 boolean", "#t\r\n"},
		{"RESP3 double", ",1.5\r\n"},
		{"RESP3 big number", "(3492890328409238509324850943850943825024385\r\n"},
		{"RESP3 blob error", "!3\r\nerr\r\n"},
		{"RESP3 verbatim", "=7\r\ntxt:abc\r\n"},
		{"RESP3 map", "%1\r\n+a\r\n+b\r\n"},
		{"RESP3 set", "~1\r\n+a\r\n"},
		{"RESP3 push", ">2\r\n+message\r\n+x\r\n"},
		{"RESP3 attribute", "|1\r\n+a\r\n+b\r\n"},
		{"array", "*1\r\n:1\r\n"},
		{"empty array", "*0\r\n"},
		{"null array", "*-1\r\n"},
		{"line one over the cap", "+" + strings.Repeat("a", maxLineLen-2) + "\r\n"},
		{"line far over the cap", "-" + strings.Repeat("a", 64<<10) + "\r\n"},
		{"line without an end", "+" + strings.Repeat("a", 64<<10)},
		{"truncated line", "+OK"},
		{"truncated at CR", "+OK\r"},
		// No command sent here answers with a negative integer (DEL counts, EVAL says 0 or 1).
		{"negative integer", ":-42\r\n"},
		{"minus one", ":-1\r\n"},
		{"minus zero", ":-0\r\n"},
		{"-max int64", ":-9223372036854775807\r\n"},
		{"integer empty", ":\r\n"},
		{"integer minus only", ":-\r\n"},
		{"integer plus sign", ":+1\r\n"},
		{"integer double minus", ":--1\r\n"},
		{"integer leading zero", ":01\r\n"},
		{"integer negative leading zero", ":-01\r\n"},
		{"integer space before", ": 1\r\n"},
		{"integer space after", ":1 \r\n"},
		{"integer letters", ":12a\r\n"},
		{"integer hex", ":0x10\r\n"},
		{"integer overflow", ":9223372036854775808\r\n"},
		{"integer negative overflow", ":-9223372036854775809\r\n"},
		{"integer 20 digits", ":12345678901234567890\r\n"},
		{"integer 400 digits", ":" + strings.Repeat("9", 400) + "\r\n"},
		{"bulk without a length", "$\r\n"},
		{"bulk length -2", "$-2\r\n"},
		{"bulk length -10", "$-10\r\n"},
		{"bulk length -0", "$-0\r\n"},
		{"bulk length -01", "$-01\r\n"},
		{"bulk length plus", "$+3\r\nabc\r\n"},
		{"bulk length leading zero", "$03\r\nabc\r\n"},
		{"bulk length 00", "$00\r\n\r\n"},
		{"bulk length space", "$3 \r\nabc\r\n"},
		{"bulk length letters", "$abc\r\n"},
		{"bulk length hex", "$0x3\r\nabc\r\n"},
		{"bulk one over the cap", "$" + strconv.Itoa(maxBulkLen+1) + "\r\n"},
		{"bulk length 8 digits", "$10000000\r\n"},
		{"bulk length huge", "$999999999999\r\n"},
		{"bulk length max int64", "$9223372036854775807\r\n"},
		{"bulk length overflow", "$99999999999999999999\r\n"},
		{"bulk too long for its length", "$3\r\nabcde\r\n"},
		{"bulk too short for its length", "$5\r\nabc\r\n"},
		{"bulk ending in LF only", "$3\r\nabc\n"},
		{"bulk ending in CR only", "$3\r\nabc\r"},
		{"bulk ending in LF CR", "$3\r\nabc\n\r"},
		{"bulk without its CRLF", "$3\r\nabc"},
		{"bulk truncated", "$10\r\nabc"},
		{"bulk with nothing after the length", "$3\r\n"},
		{"largest bulk truncated", "$" + strconv.Itoa(maxBulkLen) + "\r\nabc"},
	}
}

// TestReadReplyMalformed: every reply out of protocol is an errProtocol error, never a panic, never mistaken for a
// server's error reply.
func TestReadReplyMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range malformedReplies() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, chunk := range replyFeeds(tc.raw) {
				v := readRepliesFrom(tc.raw, 1, chunk)[0]
				err, _ := v.(error)
				var re redisError
				if !errors.Is(err, errProtocol) || errors.As(err, &re) {
					t.Fatalf("chunk %d: %#v; want an errProtocol error", chunk, shortReply(v))
				}
			}
		})
	}
}

func TestReadReplyCleanEOF(t *testing.T) {
	t.Parallel()
	// A server that hangs up between replies ends the connection with io.EOF, not with a value.
	for _, chunk := range []int{0, 1} {
		if v := readRepliesFrom("", 1, chunk)[0]; !errors.Is(replyError(v), io.EOF) {
			t.Fatalf("chunk %d: %#v; want io.EOF", chunk, v)
		}
	}
}

// TestReadReplyRefusesBeforeAllocating: a length over the cap is refused from its line, before anything of that
// size is allocated or waited for. Not parallel: it counts the process's allocations.
func TestReadReplyRefusesBeforeAllocating(t *testing.T) {
	for _, raw := range []string{
		"$" + strconv.Itoa(maxBulkLen+1) + "\r\n",
		"$999999999999\r\n",
		"$9223372036854775807\r\n",
		"$-2147483648\r\n",
		":" + strings.Repeat("9", 64<<10) + "\r\n",
	} {
		const reads = 20
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range reads {
			c := &redisConn{br: bufio.NewReaderSize(strings.NewReader(raw), maxLineLen)}
			if v := c.readReply(); !errors.Is(replyError(v), errProtocol) {
				t.Fatalf("%.20q: %#v; want errProtocol", raw, v)
			}
		}
		runtime.ReadMemStats(&after)
		// Each read allocates its 4 KiB buffer and an error; the announced lengths are 1 MiB and more.
		if per := (after.TotalAlloc - before.TotalAlloc) / reads; per > 64<<10 {
			t.Errorf("%.20q: %d bytes allocated per read; want the reply refused before allocating it", raw, per)
		}
	}
	// And nothing more is waited for: the peer sends the length and then nothing, without hanging up.
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go server.Write([]byte("$999999999999\r\n"))
	done := make(chan any, 1)
	go func() { done <- (&redisConn{br: bufio.NewReaderSize(client, maxLineLen)}).readReply() }()
	select {
	case v := <-done:
		if !errors.Is(replyError(v), errProtocol) {
			t.Fatalf("%#v; want errProtocol", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("readReply waits for the bytes of a length it should refuse")
	}
}

// encodeRESP writes v, as readReply returns it, back in RESP2: the one canonical encoding.
func encodeRESP(v any) string {
	switch v := v.(type) {
	case nil:
		return "$-1\r\n"
	case string:
		return "+" + v + "\r\n"
	case redisError:
		return "-" + string(v) + "\r\n"
	case int64:
		return ":" + strconv.FormatInt(v, 10) + "\r\n"
	case []byte:
		return "$" + strconv.Itoa(len(v)) + "\r\n" + string(v) + "\r\n"
	}
	panic(fmt.Sprintf("readReply returned a %T", v))
}

// FuzzReadReply: whatever the bytes, readReply returns one of its documented values or an errProtocol error (io.EOF
// for no bytes at all), never panics, and a value it returns is exactly the bytes it consumed, within the caps.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", ":-42\r\n", ":-0\r\n", "$5\r\nhello\r\n", "$0\r\n\r\n", "$-1\r\n",
		"+OK\n", "\r\n", "$999999999999\r\n", "$-2\r\n", "$3\r\nab", "?\r\n", "*1\r\n:1\r\n", "%1\r\n+a\r\n+b\r\n",
		":9223372036854775808\r\n", "$03\r\nabc\r\n", "$3\r\nabcde\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd := bytes.NewReader(data)
		c := &redisConn{br: bufio.NewReaderSize(rd, maxLineLen)}
		v := c.readReply()
		if err, ok := v.(error); ok {
			if _, isReply := err.(redisError); !isReply {
				if !errors.Is(err, errProtocol) && !(errors.Is(err, io.EOF) && len(data) == 0) {
					t.Fatalf("error %v: neither errProtocol nor io.EOF for no bytes", err)
				}
				return
			}
		}
		consumed := string(data[:len(data)-rd.Len()-c.br.Buffered()])
		if b, ok := v.([]byte); ok && len(b) > maxBulkLen {
			t.Fatalf("a bulk string of %d bytes, over the cap", len(b))
		}
		if len(consumed) > maxLineLen && !strings.HasPrefix(consumed, "$") {
			t.Fatalf("a line of %d bytes accepted", len(consumed))
		}
		if want := encodeRESP(v); consumed != want {
			t.Fatalf("read %q as %#v, whose encoding is %q", consumed, v, want)
		}
	})
}

// TestRedisURL: the forms newRedisStore accepts, and what it makes of them.
func TestRedisURL(t *testing.T) {
	t.Parallel()
	auth := func(args ...string) [][]string { return [][]string{append([]string{"AUTH"}, args...)} }
	for _, tc := range []struct {
		url, addr, host string
		tls             bool
		setup           [][]string
	}{
		{"redis://localhost", "localhost:6379", "localhost", false, nil},
		{"redis://localhost:6379", "localhost:6379", "localhost", false, nil},
		{"redis://localhost:6380/", "localhost:6380", "localhost", false, nil},
		{"redis://localhost/0", "localhost:6379", "localhost", false, nil},
		{"redis://localhost:1/15", "localhost:1", "localhost", false, [][]string{{"SELECT", "15"}}},
		{"redis://localhost:65535/9999", "localhost:65535", "localhost", false, [][]string{{"SELECT", "9999"}}},
		{"REDIS://localhost", "localhost:6379", "localhost", false, nil},
		{"rediss://cache.example.com:6380", "cache.example.com:6380", "cache.example.com", true, nil},
		{"rediss://cache.example.com", "cache.example.com:6379", "cache.example.com", true, nil},
		{"redis://10.0.0.7:6379", "10.0.0.7:6379", "10.0.0.7", false, nil},
		{"redis://[::1]:6379", "[::1]:6379", "::1", false, nil},
		{"redis://[::1]", "[::1]:6379", "::1", false, nil},
		{"redis://:pw@localhost", "localhost:6379", "localhost", false, auth("pw")},
		{"redis://user:pw@localhost/2", "localhost:6379", "localhost", false, append(auth("user", "pw"), []string{"SELECT", "2"})},
		{"redis://user:p%40ss%2F%3Aw%20rd@localhost", "localhost:6379", "localhost", false, auth("user", "p@ss/:w rd")},
		{"rediss://default:pw@[::1]:7000/1", "[::1]:7000", "::1", true, append(auth("default", "pw"), []string{"SELECT", "1"})},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			s, err := newRedisStore(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if s.addr != tc.addr || s.host != tc.host || s.useTLS != tc.tls || !reflect.DeepEqual(s.setup, tc.setup) {
				t.Fatalf("= addr %q host %q tls %v setup %q; want %q %q %v %q", s.addr, s.host, s.useTLS, s.setup,
					tc.addr, tc.host, tc.tls, tc.setup)
			}
			if s.roots != nil || s.conn != nil {
				t.Fatal("a new store has roots or a connection")
			}
		})
	}
}

// TestRedisURLRefused: each case is one change to redis://user:Pa55w0rd-xyz@localhost:6379/2 (or the password
// itself), and none is quoted back: a typo can put the password where a host or database was expected.
func TestRedisURLRefused(t *testing.T) {
	t.Parallel()
	const password = "Pa55w0rd-xyz"
	for _, raw := range []string{
		"",
		"localhost:6379",
		"user:Pa55w0rd-xyz@localhost:6379/2",
		"http://user:Pa55w0rd-xyz@localhost:6379/2",
		"https://user:Pa55w0rd-xyz@localhost:6379/2",
		"unix://user:Pa55w0rd-xyz@localhost:6379/2",
		"redis+sentinel://user:Pa55w0rd-xyz@localhost:6379/2",
		"redis:user:Pa55w0rd-xyz@localhost:6379/2",
		"redis:/user:Pa55w0rd-xyz@localhost:6379/2",
		"redis:///2",
		"redis://user:Pa55w0rd-xyz@:6379/2",
		"redis://user:Pa55w0rd-xyz@localhost:/2",
		"redis://user:Pa55w0rd-xyz@[::1]:/2",
		"redis://user:Pa55w0rd-xyz@localhost:0/2",
		"redis://user:Pa55w0rd-xyz@localhost:00/2",
		"redis://user:Pa55w0rd-xyz@localhost:06379/2",
		"redis://user:Pa55w0rd-xyz@localhost:65536/2",
		"redis://user:Pa55w0rd-xyz@localhost:99999/2",
		"redis://user:Pa55w0rd-xyz@localhost:63x9/2",
		"redis://user:Pa55w0rd-xyz@localhost:-6379/2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/-1",
		"redis://user:Pa55w0rd-xyz@localhost:6379/02",
		"redis://user:Pa55w0rd-xyz@localhost:6379/00",
		"redis://user:Pa55w0rd-xyz@localhost:6379/+2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/10000",
		"redis://user:Pa55w0rd-xyz@localhost:6379/99999999999999999999",
		"redis://user:Pa55w0rd-xyz@localhost:6379/two",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2/",
		"redis://user:Pa55w0rd-xyz@localhost:6379//2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/ 2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2?db=3",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2?",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2?protocol=3",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2#frag",
		"redis://user:Pa55w0rd-xyz@localhost:6379/Pa55w0rd-xyz",
		"redis://localhost:Pa55w0rd-xyz",
		"redis://Pa55w0rd-xyz@localhost:6379/2",
		"redis://user@localhost:6379/2",
		"redis://user:@localhost:6379/2",
		"redis://:@localhost:6379/2",
		"redis://user:Pa55w0rd-xyz%zz@localhost:6379/2",
		"redis://user:Pa55w0rd-xyz@local host:6379/2",
		"redis://user:Pa55w0rd-xyz@local]host:6379/2",
		"redis://user:Pa55w0rd-xyz@]:6379/2",
		"redis://user:Pa55w0rd-xyz@localhost:6379/2\n",
		" redis://user:Pa55w0rd-xyz@localhost:6379/2",
	} {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			s, err := newRedisStore(raw)
			if err == nil {
				t.Fatalf("accepted as addr %q host %q setup %q", s.addr, s.host, s.setup)
			}
			if !strings.HasPrefix(err.Error(), "REDIS_URL: ") {
				t.Errorf("error %q does not name REDIS_URL", err)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "localhost") {
				t.Errorf("error %q quotes the URL", err)
			}
		})
	}
}

// passwordsIn returns what raw holds as a password, however it splits: as url.Parse reads it, and as text between
// "scheme://[user]:" and the last "@".
func urlPasswords(raw string) []string {
	var out []string
	if u, err := url.Parse(raw); err == nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p, url.PathEscape(p))
		}
	}
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		if userinfo, _, ok := cutLastSep(rest, "@"); ok {
			if _, p, ok := strings.Cut(userinfo, ":"); ok {
				out = append(out, p)
			}
		}
	}
	return out
}

func cutLastSep(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// FuzzParseRedisURL: newRedisStore never panics, an error never quotes the password (a password that happens to be
// a word of the fixed messages aside), and what it accepts is what the URL says.
func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{
		"redis://localhost:6379", "rediss://user:pw@cache:6380/3", "redis://:pw@[::1]:6379/0",
		"redis://host:6379/2?x=1", "redis://u@h", "redis:h:1", "redis://h:99999", "redis://:secret@h:0",
		"redis://u:secret@h/01", "redis://u:secret@h#x",
	} {
		f.Add(s)
	}
	var fixed strings.Builder // the text of every message, whatever the input
	for _, bad := range []string{"http://h", "redis://h:0", "redis://u@h", "redis://h/x"} {
		_, err := newRedisStore(bad)
		fixed.WriteString(err.Error() + "\n")
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := newRedisStore(raw)
		if err != nil {
			for _, p := range urlPasswords(raw) {
				if len(p) >= 3 && strings.Contains(err.Error(), p) && !strings.Contains(fixed.String(), p) {
					t.Fatalf("error %q quotes the password %q", err, p)
				}
			}
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted a URL that does not parse: %v", err)
		}
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || s.host == "" || s.host != u.Hostname() ||
			s.useTLS != (u.Scheme == "rediss") {
			t.Fatalf("accepted %q as addr %q host %q tls %v", raw, s.addr, s.host, s.useTLS)
		}
		host, port, err := net.SplitHostPort(s.addr)
		if n, _ := strconv.Atoi(port); err != nil || host != s.host || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			t.Fatalf("accepted %q with addr %q", raw, s.addr)
		}
		pass, hasPass := u.User.Password()
		for i, cmd := range s.setup {
			switch {
			case cmd[0] == "AUTH" && i == 0 && hasPass && pass != "" && cmd[len(cmd)-1] == pass &&
				(len(cmd) == 2 && u.User.Username() == "" || len(cmd) == 3 && cmd[1] == u.User.Username()):
			case cmd[0] == "SELECT" && len(cmd) == 2 && i == len(s.setup)-1 && "/"+cmd[1] == u.Path:
				if n, err := strconv.Atoi(cmd[1]); err != nil || n < 1 || n > 9999 || strconv.Itoa(n) != cmd[1] {
					t.Fatalf("accepted %q with SELECT %q", raw, cmd[1])
				}
			default:
				t.Fatalf("accepted %q with setup %q", raw, s.setup)
			}
		}
		if u.User != nil && (len(s.setup) == 0 || s.setup[0][0] != "AUTH") {
			t.Fatalf("accepted %q, credentials and all, without AUTH", raw)
		}
	})
}
