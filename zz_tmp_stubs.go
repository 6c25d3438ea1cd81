package main

import "errors"

// redisStore arrives with the RESP client; until then REDIS_URL is refused.
type redisStore struct{ store }
type redisOptions struct{}

func newRedisStore(rawURL string, opts redisOptions) (*redisStore, error) {
	return nil, errors.New("REDIS_URL is not supported yet")
}
