package main

import (
	"context"
	"net/http"
	"time"

	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

// workosTimeout bounds every call to the WorkOS API, so a slow WorkOS
// answers 503 instead of holding the request.
const workosTimeout = 10 * time.Second

// workosClient is the WorkOS SDK's user-management client, pointed at
// WORKOS_API_BASE_URL with a bounded http.Client.
type workosClient struct {
	um       *usermanagement.Client
	clientID string
}

func newWorkOSClient(cfg config) *workosClient {
	um := usermanagement.NewClient(cfg.WorkOSAPIKey)
	um.Endpoint = cfg.WorkOSAPIBaseURL
	um.HTTPClient = &http.Client{Timeout: workosTimeout}
	return &workosClient{um: um, clientID: cfg.WorkOSClientID}
}

// logoutURL is the SDK's GetLogoutURL for a WorkOS session id.
func (c *workosClient) logoutURL(workosSessionID string) (string, error) {
	u, err := c.um.GetLogoutURL(usermanagement.GetLogoutURLOpts{SessionID: workosSessionID})
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func (s *server) handleWorkOSLoginURL(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusServiceUnavailable, "workos_unavailable")
}

func (s *server) handleWorkOSCallback(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusServiceUnavailable, "workos_unavailable")
}

func (s *server) handleWorkOSSelectOrganization(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusServiceUnavailable, "workos_unavailable")
}

// magicAuth fetches a magic auth (its code and email) under workosTimeout.
// id must already have passed validMagicAuthID: the SDK puts it into the
// URL path unescaped.
func (c *workosClient) magicAuth(ctx context.Context, id string) (usermanagement.MagicAuth, error) {
	ctx, cancel := context.WithTimeout(ctx, workosTimeout)
	defer cancel()
	return c.um.GetMagicAuth(ctx, usermanagement.GetMagicAuthOpts{MagicAuth: id})
}
