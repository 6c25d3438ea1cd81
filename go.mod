module dashauth

go 1.26

// The WorkOS SDK is the one dependency; go-querystring is its own,
// listed because Go records the whole module graph here.
require (
	github.com/workos/workos-go/v4 v4.46.1
	github.com/google/go-querystring v1.0.0 // indirect
)
