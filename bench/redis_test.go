package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
)

// startRedis runs a private redis-server on a free port for one benchmark,
// configured like the main module's tests (no persistence, loopback only).
func startRedis(b *testing.B) string {
	b.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("DASHAUTH_REQUIRE_REDIS") == "1" {
			b.Fatal("redis-server not found; install it: apt-get install -y redis-server")
		}
		b.Skip("redis-server not found; install it: apt-get install -y redis-server")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", b.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		b.Fatal("redis-server did not start")
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// BenchmarkRedisSetNXGoRedis is one SET key value PX 60000 NX round trip,
// a fresh key each time, as dashauth's BenchmarkRedisSetNX does.
func BenchmarkRedisSetNXGoRedis(b *testing.B) {
	c := goredis.NewClient(&goredis.Options{Addr: redisAddr(b)})
	defer c.Close()
	ctx := context.Background()
	prefix := "bench:one:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ok, err := c.SetNX(ctx, prefix+strconv.Itoa(i), "1", time.Minute).Result()
		if err != nil || !ok {
			b.Fatalf("SETNX: %v %v", ok, err)
		}
	}
}

// BenchmarkRedisSetNXRedigo is the same round trip with redigo's pool.
func BenchmarkRedisSetNXRedigo(b *testing.B) {
	addr := redisAddr(b)
	pool := &redis.Pool{MaxIdle: 8, Dial: func() (redis.Conn, error) {
		return redis.Dial("tcp", addr, redis.DialConnectTimeout(2*time.Second),
			redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second))
	}}
	defer pool.Close()
	prefix := "bench:redigo:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		conn := pool.Get()
		reply, err := redis.String(conn.Do("SET", prefix+strconv.Itoa(i), "1", "PX", 60000, "NX"))
		conn.Close()
		if err != nil || reply != "OK" {
			b.Fatalf("SETNX: %q %v", reply, err)
		}
	}
}
