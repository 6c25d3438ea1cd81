# A static binary on scratch: nothing in the image but dashauth and the CA
# certificates it needs to reach WorkOS, SMTP and Redis over TLS.
#
#   docker build -t dashauth .
#
# Without a registry (golang:… cannot be pulled), build the binary on the host
# and hand it in as the "build" stage; the final stage is the same:
#
#   ctx=$(mktemp -d) && mkdir -p "$ctx/etc/ssl/certs"
#   CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/dashauth" .
#   cp /etc/ssl/certs/ca-certificates.crt "$ctx/etc/ssl/certs/"
#   buildah bud --pull=never --target final --build-context build="$ctx" -t dashauth .
#
# e2e/image_test.go does exactly that, then runs and signs in to the image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY *.go ./
COPY web ./web
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /dashauth .

FROM scratch AS final
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /dashauth /dashauth
# Any non-root user: the service needs no privileges and writes no files, so
# it also runs with a read-only root filesystem (the Helm chart sets one).
USER 65532:65532
# Production needs DASHBOARD_URL, API_URL, JWT_SECRET, SMTP_* and MEMBERS_FILE
# (or the WorkOS values); started with none of them, the service refuses to
# listen on 0.0.0.0 and says what to set.
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/dashauth"]
