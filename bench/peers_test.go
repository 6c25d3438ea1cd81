package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	goredis "github.com/redis/go-redis/v9"
	"github.com/workos/workos-go/v4/pkg/webhooks"
)

// BenchmarkSignTokenGolangJWT signs the claims of dashauth's BenchmarkSignToken with golang-jwt v5.
func BenchmarkSignTokenGolangJWT(b *testing.B) {
	key := []byte(benchSecret)
	c := benchClaims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: benchIssuer, Audience: jwt.ClaimStrings{"dashboard"},
			Subject: "user_1", ID: "jti_1", IssuedAt: jwt.NewNumericDate(time.Unix(benchNow-60, 0)),
			ExpiresAt: jwt.NewNumericDate(time.Unix(benchNow+840, 0))},
		Email: "ada@example.com", Org: "org_acme", Sid: "sess_1", Typ: "access",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key); err != nil {
			b.Fatal(err)
		}
	}
}

// webhookBody is a 1 KiB event body, as dashauth's BenchmarkVerifyWebhookSignature uses.
var webhookBody = `{"id":"event_01JCDE3FGHJKMNPQRSTVWXYZ01","event":"magic_auth.created","data":{"id":"magic_auth_01JCDE3FGHJKMNPQRSTVWXYZ02","pad":"` +
	strings.Repeat("x", 1024-170) + `"}}`

// BenchmarkValidatePayloadWorkOS checks a WorkOS-Signature with workos-go's webhooks.ValidatePayload.
func BenchmarkValidatePayloadWorkOS(b *testing.B) {
	const secret = "whsec_bench_0123456789abcdef"
	now := time.Unix(benchNow, 0)
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + webhookBody))
	header := "t=" + ts + ", v1=" + hex.EncodeToString(m.Sum(nil))
	c := webhooks.NewClient(secret)
	c.SetNow(func() time.Time { return now })
	b.SetBytes(int64(len(webhookBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ValidatePayload(header, webhookBody); err != nil {
			b.Fatal(err)
		}
	}
}

// redisAddr is the Redis the run shares with dashauth's benchmarks (DASHAUTH_BENCH_REDIS), or a private one.
func redisAddr(b *testing.B) string {
	if addr := os.Getenv("DASHAUTH_BENCH_REDIS"); addr != "" {
		return addr
	}
	return startRedis(b)
}

// BenchmarkRedisSetNXParallelGoRedis is BenchmarkRedisSetNXGoRedis from 64 goroutines on go-redis's default pool.
func BenchmarkRedisSetNXParallelGoRedis(b *testing.B) {
	c := goredis.NewClient(&goredis.Options{Addr: redisAddr(b)})
	defer c.Close()
	var n atomic.Int64
	prefix := "bench:par:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	b.SetParallelism(64 / max(1, testingProcs()))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			ok, err := c.SetNX(ctx, prefix+strconv.FormatInt(n.Add(1), 10), "1", time.Minute).Result()
			if err != nil || !ok {
				b.Errorf("SETNX: %v %v", ok, err)
				return
			}
		}
	})
}
