module dashauth

go 1.26

require github.com/workos/workos-go/v4 v4.46.1

require github.com/google/go-querystring v1.0.0 // indirect
