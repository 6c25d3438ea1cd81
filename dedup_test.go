package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testStoreContract checks the store interface on s, apart from expiry over time (the clock
// of a real Redis cannot be moved). Keys are made unique per call with prefix.
func testStoreContract(t *testing.T, s store, prefix string) {
	ctx := context.Background()
	key := func(name string) string { return prefix + name }

	t.Run("get missing", func(t *testing.T) {
		if v, ok, err := s.Get(ctx, key("missing")); err != nil || ok || v != "" {
			t.Fatalf("Get = %q, %v, %v; want \"\", false, nil", v, ok, err)
		}
	})
	t.Run("set then get, set overwrites", func(t *testing.T) {
		for _, v := range []string{"one", "", "two\r\n$3\r\nnot a command\x00\xff"} {
			if err := s.Set(ctx, key("set"), v, time.Minute); err != nil {
				t.Fatalf("Set: %v", err)
			}
			if got, ok, err := s.Get(ctx, key("set")); err != nil || !ok || got != v {
				t.Fatalf("Get = %q, %v, %v; want %q, true, nil", got, ok, err, v)
			}
		}
	})
	t.Run("setnx", func(t *testing.T) {
		if set, err := s.SetNX(ctx, key("nx"), "first", time.Minute); err != nil || !set {
			t.Fatalf("first SetNX = %v, %v; want true", set, err)
		}
		if set, err := s.SetNX(ctx, key("nx"), "second", time.Minute); err != nil || set {
			t.Fatalf("second SetNX = %v, %v; want false", set, err)
		}
		if v, _, err := s.Get(ctx, key("nx")); err != nil || v != "first" {
			t.Fatalf("Get after SetNX = %q, %v; want the first value", v, err)
		}
	})
	t.Run("incr", func(t *testing.T) {
		for want := int64(1); want <= 3; want++ {
			n, left, err := s.Incr(ctx, key("incr"), time.Minute)
			if err != nil || n != want || left <= 0 || left > time.Minute {
				t.Fatalf("Incr = %d, %v, %v; want %d, (0, 1m]", n, left, err, want)
			}
		}
		if v, _, err := s.Get(ctx, key("incr")); err != nil || v != "3" {
			t.Fatalf("Get counter = %q, %v; want \"3\"", v, err)
		}
	})
	t.Run("incr on a non-counter", func(t *testing.T) {
		if err := s.Set(ctx, key("notint"), "abc", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Incr(ctx, key("notint"), time.Minute); err == nil {
			t.Fatal("Incr on \"abc\" succeeded")
		}
	})
	t.Run("del", func(t *testing.T) {
		if err := s.Set(ctx, key("del"), "v", time.Minute); err != nil {
			t.Fatal(err)
		}
		if existed, err := s.Del(ctx, key("del")); err != nil || !existed {
			t.Fatalf("first Del = %v, %v; want true", existed, err)
		}
		if existed, err := s.Del(ctx, key("del")); err != nil || existed {
			t.Fatalf("second Del = %v, %v; want false", existed, err)
		}
		if _, ok, err := s.Get(ctx, key("del")); err != nil || ok {
			t.Fatalf("Get after Del = %v, %v; want missing", ok, err)
		}
	})
	t.Run("non-positive ttl", func(t *testing.T) {
		for _, ttl := range []time.Duration{0, -time.Second} {
			if err := s.Set(ctx, key("ttl"), "v", ttl); !errors.Is(err, errBadTTL) {
				t.Errorf("Set ttl %v: %v; want errBadTTL", ttl, err)
			}
			if _, err := s.SetNX(ctx, key("ttl"), "v", ttl); !errors.Is(err, errBadTTL) {
				t.Errorf("SetNX ttl %v: %v; want errBadTTL", ttl, err)
			}
			if _, _, err := s.Incr(ctx, key("ttl"), ttl); !errors.Is(err, errBadTTL) {
				t.Errorf("Incr ttl %v: %v; want errBadTTL", ttl, err)
			}
		}
		if _, ok, _ := s.Get(ctx, key("ttl")); ok {
			t.Error("a refused write stored the key")
		}
	})
	t.Run("ping", func(t *testing.T) {
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("concurrent incr counts every call", func(t *testing.T) {
		const workers, each = 16, 50
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				for range each {
					if _, _, err := s.Incr(ctx, key("race"), time.Minute); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if v, _, err := s.Get(ctx, key("race")); err != nil || v != strconv.Itoa(workers*each) {
			t.Fatalf("counter = %q, %v; want %d", v, err, workers*each)
		}
	})
	t.Run("concurrent take: one winner", func(t *testing.T) {
		for round := range 20 {
			k := key("take" + strconv.Itoa(round))
			if err := s.Set(ctx, k, "code", time.Minute); err != nil {
				t.Fatal(err)
			}
			var winners atomic.Int32
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					existed, err := s.Del(ctx, k)
					if err != nil {
						t.Error(err)
					}
					if existed {
						winners.Add(1)
					}
				})
			}
			wg.Wait()
			if w := winners.Load(); w != 1 {
				t.Fatalf("round %d: %d callers took the key; want exactly 1", round, w)
			}
		}
	})
	t.Run("admit up to max, then refuse", func(t *testing.T) {
		const window = time.Hour
		for i := range 3 {
			ok, retry, err := s.Admit(ctx, key("admit"), 3, window)
			if err != nil || !ok || retry != 0 {
				t.Fatalf("event %d: Admit = %v, %v, %v; want true, 0, nil", i+1, ok, retry, err)
			}
		}
		for range 2 { // a refusal records nothing, so the answer stays the same
			ok, retry, err := s.Admit(ctx, key("admit"), 3, window)
			// The oldest event is at most moments old (Redis's clock is real time).
			if err != nil || ok || retry <= window/2 || retry > window {
				t.Fatalf("fourth Admit = %v, %v, %v; want false, (%v, %v], nil", ok, retry, err, window/2, window)
			}
		}
		// Another key, and a higher max on the same key, are separate verdicts.
		if ok, _, err := s.Admit(ctx, key("admit other"), 1, window); err != nil || !ok {
			t.Fatalf("other key: Admit = %v, %v", ok, err)
		}
		if ok, _, err := s.Admit(ctx, key("admit"), 4, window); err != nil || !ok {
			t.Fatalf("max 4 after 3 events: Admit = %v, %v", ok, err)
		}
	})
	t.Run("admit concurrently", func(t *testing.T) {
		var admitted atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				ok, _, err := s.Admit(ctx, key("admit race"), 5, time.Hour)
				if err != nil {
					t.Error(err)
				}
				if ok {
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		if n := admitted.Load(); n != 5 {
			t.Fatalf("%d of 16 concurrent events admitted; want exactly 5", n)
		}
	})
	t.Run("admit refuses bad arguments and plain values", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			max    int64
			window time.Duration
			want   error
		}{
			{"zero window", 1, 0, errBadTTL},
			{"negative window", 1, -time.Second, errBadTTL},
			{"zero max", 0, time.Minute, errBadMax},
			{"negative max", -1, time.Minute, errBadMax},
		} {
			if ok, _, err := s.Admit(ctx, key("admit bad"), tc.max, tc.window); !errors.Is(err, tc.want) || ok {
				t.Errorf("%s: Admit = %v, %v; want false, %v", tc.name, ok, err, tc.want)
			}
		}
		if err := s.Set(ctx, key("admit plain"), "v", time.Minute); err != nil {
			t.Fatal(err)
		}
		if ok, _, err := s.Admit(ctx, key("admit plain"), 1, time.Minute); err == nil || ok {
			t.Errorf("Admit on a plain value = %v, %v; want an error", ok, err)
		}
		if v, ok, err := s.Get(ctx, key("admit plain")); err != nil || !ok || v != "v" {
			t.Errorf("plain value changed by a refused Admit: %q, %v, %v", v, ok, err)
		}
	})
}

func TestMemoryStoreContract(t *testing.T) {
	t.Parallel()
	testStoreContract(t, newMemoryStore(newTestClock().Now, 0), "k:")
}

func TestMemoryStoreExpiryBoundary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	s := newMemoryStore(clock.Now, 10)
	if err := s.Set(ctx, "k", "v", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10*time.Second - time.Nanosecond)
	if _, ok, _ := s.Get(ctx, "k"); !ok {
		t.Fatal("key gone 1ns before its ttl")
	}
	clock.Advance(time.Nanosecond)
	if _, ok, _ := s.Get(ctx, "k"); ok {
		t.Fatal("key still there at exactly its ttl")
	}
	if n := s.size(); n != 0 {
		t.Fatalf("expired entry still held: size %d", n)
	}
}

func TestMemoryStoreSetRenewsTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	s := newMemoryStore(clock.Now, 10)
	s.Set(ctx, "k", "old", time.Second)
	clock.Advance(500 * time.Millisecond)
	s.Set(ctx, "k", "new", time.Second)
	clock.Advance(999 * time.Millisecond)
	if v, ok, _ := s.Get(ctx, "k"); !ok || v != "new" {
		t.Fatalf("Get = %q, %v; want the new value, its ttl renewed by Set", v, ok)
	}
	clock.Advance(time.Millisecond)
	if _, ok, _ := s.Get(ctx, "k"); ok {
		t.Fatal("key outlived the ttl of the second Set")
	}
}

func TestMemoryStoreSetNXAfterExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	s := newMemoryStore(clock.Now, 10)
	if set, _ := s.SetNX(ctx, "k", "a", time.Minute); !set {
		t.Fatal("first SetNX refused")
	}
	clock.Advance(time.Minute - time.Nanosecond)
	if set, _ := s.SetNX(ctx, "k", "b", time.Minute); set {
		t.Fatal("SetNX on a live key succeeded")
	}
	clock.Advance(time.Nanosecond)
	if set, _ := s.SetNX(ctx, "k", "c", time.Minute); !set {
		t.Fatal("SetNX on an expired key refused")
	}
	if v, _, _ := s.Get(ctx, "k"); v != "c" {
		t.Fatalf("Get = %q; want c", v)
	}
}

func TestMemoryStoreIncrTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	s := newMemoryStore(clock.Now, 10)
	const window = 15 * time.Minute
	steps := []struct {
		advance  time.Duration
		wantN    int64
		wantLeft time.Duration
	}{
		{0, 1, window},                                      // created with the ttl
		{time.Minute, 2, window - time.Minute},              // ttl not renewed by counting
		{13 * time.Minute, 3, time.Minute},                  // still the first window
		{time.Minute - time.Nanosecond, 4, time.Nanosecond}, // its last nanosecond
		{time.Nanosecond, 1, window},                        // expired: a new window
		{window - time.Nanosecond, 2, time.Nanosecond},      // and it ends in turn
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		n, left, err := s.Incr(ctx, "c", window)
		if err != nil || n != st.wantN || left != st.wantLeft {
			t.Fatalf("step %d: Incr = %d, %v, %v; want %d, %v", i, n, left, err, st.wantN, st.wantLeft)
		}
	}
}

func TestMemoryStoreIncrOverflow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newMemoryStore(newTestClock().Now, 10)
	s.Set(ctx, "c", strconv.FormatInt(1<<63-2, 10), time.Minute)
	if n, _, err := s.Incr(ctx, "c", time.Minute); err != nil || n != 1<<63-1 {
		t.Fatalf("Incr to max = %d, %v", n, err)
	}
	if _, _, err := s.Incr(ctx, "c", time.Minute); !errors.Is(err, errNotInteger) {
		t.Fatalf("Incr past max: %v; want errNotInteger", err)
	}
	s.Set(ctx, "s", "12abc", time.Minute)
	if _, _, err := s.Incr(ctx, "s", time.Minute); !errors.Is(err, errNotInteger) {
		t.Fatalf("Incr on \"12abc\": %v; want errNotInteger", err)
	}
}

func TestMemoryStoreDelExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	s := newMemoryStore(clock.Now, 10)
	s.Set(ctx, "k", "v", time.Second)
	clock.Advance(time.Second)
	if existed, err := s.Del(ctx, "k"); err != nil || existed {
		t.Fatalf("Del of an expired key = %v, %v; want false", existed, err)
	}
}

func TestMemoryStoreSweepsExpiredOnInsert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	s := newMemoryStore(clock.Now, 1000)
	for i := range 100 {
		s.Set(ctx, fmt.Sprint("short", i), "v", time.Second)
	}
	s.Set(ctx, "long", "v", time.Hour)
	clock.Advance(time.Second)
	s.Set(ctx, "new", "v", time.Hour)
	if n := s.size(); n != 2 {
		t.Fatalf("size %d after the short entries expired; want 2 (never read, but dropped)", n)
	}
}

func TestMemoryStoreBoundUnderFlood(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	const maxKeys = 1000
	s := newMemoryStore(clock.Now, maxKeys)
	// A long-lived entry, like a revoked session, set before the flood.
	if err := s.Set(ctx, "revoked", "1", 168*time.Hour); err != nil {
		t.Fatal(err)
	}
	for i := range 100_000 {
		if _, err := s.SetNX(ctx, "flood:"+strconv.Itoa(i), "x", 15*time.Minute); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			clock.Advance(time.Millisecond) // later keys expire later
		}
		if n := s.size(); n > maxKeys {
			t.Fatalf("after %d inserts the store holds %d entries; bound %d", i+1, n, maxKeys)
		}
	}
	if _, ok, _ := s.Get(ctx, "revoked"); !ok {
		t.Fatal("the entry furthest from expiry was evicted")
	}
	// The newest flood key expires last, so it is still there; the oldest went first.
	if _, ok, _ := s.Get(ctx, "flood:99999"); !ok {
		t.Fatal("the newest key was evicted")
	}
	if _, ok, _ := s.Get(ctx, "flood:0"); ok {
		t.Fatal("the key closest to expiry survived")
	}
}

func TestMemoryStoreEvictsExpiredBeforeLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	s := newMemoryStore(clock.Now, 3)
	s.Set(ctx, "a", "v", time.Minute)
	s.Set(ctx, "b", "v", time.Second)
	s.Set(ctx, "c", "v", time.Hour)
	clock.Advance(time.Second) // b expires
	s.Set(ctx, "d", "v", time.Hour)
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, ok, _ := s.Get(ctx, k); ok != want {
			t.Errorf("%s present = %v; want %v", k, ok, want)
		}
	}
}

func TestMemoryStoreClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newMemoryStore(newTestClock().Now, 10)
	s.Set(ctx, "k", "v", time.Minute)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, s, errStoreClosed)
}

func TestMemoryStoreCanceledContext(t *testing.T) {
	t.Parallel()
	checkAll(t, newMemoryStore(newTestClock().Now, 10), context.Canceled)
}

// checkAll calls every method of s and wants each to fail with want.
func checkAll(t *testing.T, s store, want error) {
	t.Helper()
	ctx := context.Background()
	if errors.Is(want, context.Canceled) {
		c, cancel := context.WithCancel(ctx)
		cancel()
		ctx = c
	}
	_, _, err1 := s.Get(ctx, "k")
	err2 := s.Set(ctx, "k", "v", time.Minute)
	_, err3 := s.SetNX(ctx, "k", "v", time.Minute)
	_, _, err4 := s.Incr(ctx, "k", time.Minute)
	_, err5 := s.Del(ctx, "k")
	err6 := s.Ping(ctx)
	for i, err := range []error{err1, err2, err3, err4, err5, err6} {
		if !errors.Is(err, want) {
			t.Errorf("call %d: %v; want %v", i+1, err, want)
		}
	}
}

// TestMemoryStoreAdmitSlidingWindow steps the injected clock through one key's events, max 3
// in 10 minutes. An event at t counts up to t+10m, exclusive.
func TestMemoryStoreAdmitSlidingWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newTestClock()
	start := clock.Now()
	s := newMemoryStore(clock.Now, 10)
	const max, window = 3, 10 * time.Minute
	for _, st := range []struct {
		at    time.Duration // since start
		ok    bool
		retry time.Duration
	}{
		{0, true, 0},
		{4 * time.Minute, true, 0},
		{9 * time.Minute, true, 0},
		{9 * time.Minute, false, time.Minute},                      // three in the window: the first leaves at 10m
		{10*time.Minute - time.Nanosecond, false, time.Nanosecond}, // refusals record nothing
		{10 * time.Minute, true, 0},                                // exactly when the first leaves
		{10 * time.Minute, false, 4 * time.Minute},                 // now 4m, 9m, 10m: the 4m one leaves at 14m
		// A fixed 10-minute window would have started afresh at 10m and admitted 11m and
		// 13m as well: with 4m and 9m, five events within ten minutes.
		{11 * time.Minute, false, 3 * time.Minute},
		{13 * time.Minute, false, time.Minute},
		{14 * time.Minute, true, 0},
		{19 * time.Minute, true, 0},
		{20*time.Minute - time.Nanosecond, false, time.Nanosecond},
		{20 * time.Minute, true, 0}, // 14m, 19m, 20m
	} {
		clock.Advance(start.Add(st.at).Sub(clock.Now()))
		ok, retry, err := s.Admit(ctx, "rl", max, window)
		if err != nil || ok != st.ok || retry != st.retry {
			t.Fatalf("at %v: Admit = %v, %v, %v; want %v, %v, nil", st.at, ok, retry, err, st.ok, st.retry)
		}
	}
	if e := s.entries["rl"]; len(e.events) != max {
		t.Fatalf("%d events held; want %d (older ones dropped)", len(e.events), max)
	}
	// The key expires window after its newest event (20m), and not before.
	if e := s.entries["rl"]; !e.expires.Equal(start.Add(20*time.Minute + window)) {
		t.Fatalf("expires %v after start; want %v", e.expires.Sub(start), 20*time.Minute+window)
	}
	clock.Advance(window)
	if err := s.Set(ctx, "other", "v", time.Minute); err != nil { // an insert sweeps expired entries
		t.Fatal(err)
	}
	if _, held := s.entries["rl"]; held || s.size() != 1 {
		t.Fatalf("expired window still held (size %d)", s.size())
	}
}
