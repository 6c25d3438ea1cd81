// Package bench measures dashauth's hand-written pieces against the
// libraries they replace, on the same inputs. dashauth's own numbers come
// from the main module (BenchmarkVerifyToken, BenchmarkRedisSetNX); this
// module holds the peers, so their dependencies never enter the main go.mod.
// See README.md for how to run both and compare.
package bench

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The token, key, issuer and clock of BenchmarkVerifyToken in the main
// module: the valid access token of the shared JWT vectors.
const (
	benchToken  = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbSIsImF1ZCI6ImRhc2hib2FyZCIsInN1YiI6InVzZXJfMSIsImVtYWlsIjoiYWRhQGV4YW1wbGUuY29tIiwib3JnIjoib3JnX2FjbWUiLCJzaWQiOiJzZXNzXzEiLCJ0eXAiOiJhY2Nlc3MiLCJqdGkiOiJqdGlfMSIsImlhdCI6MTY5OTk5OTk0MCwiZXhwIjoxNzAwMDAwODQwfQ.RmxMbphzNShULxKQmKtBsRae9gMv2l16xjetVnfuKmk"
	benchSecret = "jwt-vectors-secret-0123456789abcdef0123456789"
	benchIssuer = "https://api.example.com"
	benchNow    = 1700000000
)

type benchClaims struct {
	jwt.RegisteredClaims
	Email string `json:"email"`
	Org   string `json:"org"`
	Sid   string `json:"sid"`
	Typ   string `json:"typ"`
}

// BenchmarkVerifyTokenGolangJWT verifies with golang-jwt v5 set up as
// strictly as it allows: HS256 only, issuer, audience, exp required, 60 s
// leeway. (It still reads alg from the header and accepts extra claims.)
func BenchmarkVerifyTokenGolangJWT(b *testing.B) {
	key := []byte(benchSecret)
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithIssuer(benchIssuer),
		jwt.WithAudience("dashboard"),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(60*time.Second),
		jwt.WithTimeFunc(func() time.Time { return time.Unix(benchNow, 0) }),
	)
	keyFunc := func(*jwt.Token) (any, error) { return key, nil }
	b.ReportAllocs()
	for b.Loop() {
		var c benchClaims
		tok, err := parser.ParseWithClaims(benchToken, &c, keyFunc)
		if err != nil || !tok.Valid || c.Typ != "access" {
			b.Fatalf("golang-jwt refused the token: %v", err)
		}
	}
}
