package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// authKit plays WorkOS for the browser test: its authorize page signs the
// person in at once and redirects back with a code, and its API answers the
// code exchange and the membership look-up as WorkOS does.
type authKit struct {
	*httptest.Server
	mu         sync.Mutex
	challenges map[string]string // code → PKCE challenge
	loggedOut  string            // session_id the logout page was opened with
}

const (
	kitClientID = "client_e2e"
	kitAPIKey   = "sk_test_e2e"
	kitUserID   = "user_01E2E000000000000000000000"
	kitOrgID    = "org_01E2E000000000000000000000"
	kitSession  = "session_01E2E00000000000000000000"
)

func newAuthKit(t *testing.T) *authKit {
	k := &authKit{challenges: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user_management/authorize", k.authorize)
	mux.HandleFunc("POST /user_management/authenticate", k.authenticate)
	mux.HandleFunc("GET /user_management/organization_memberships", k.memberships)
	mux.HandleFunc("GET /user_management/sessions/logout", func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.loggedOut = r.URL.Query().Get("session_id")
		k.mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>Signed out</title><p id="bye">Signed out of WorkOS</p>`))
	})
	k.Server = httptest.NewServer(mux)
	t.Cleanup(k.Close)
	return k
}

func (k *authKit) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != kitClientID || q.Get("provider") != "authkit" || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	code := "code_" + q.Get("state")[:8]
	k.mu.Lock()
	k.challenges[code] = q.Get("code_challenge")
	k.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	back.RawQuery = url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (k *authKit) authenticate(w http.ResponseWriter, r *http.Request) {
	var req map[string]string
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256([]byte(req["code_verifier"]))
	k.mu.Lock()
	challenge, ok := k.challenges[req["code"]]
	delete(k.challenges, req["code"])
	k.mu.Unlock()
	if req["client_id"] != kitClientID || req["client_secret"] != kitAPIKey || !ok ||
		base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_grant","error_description":"The code is invalid."}`))
		return
	}
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(map[string]any{"sub": kitUserID, "sid": kitSession, "org_id": kitOrgID, "iat": 1, "exp": 2})
	token := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString([]byte("sig"))
	writeJSON(w, map[string]any{
		"user": map[string]any{"object": "user", "id": kitUserID, "email": "grace@example.com",
			"first_name": "Grace", "last_name": "Hopper", "email_verified": true},
		"organization_id": kitOrgID, "access_token": token, "refresh_token": "refresh_e2e",
		"authentication_method": "SSO",
	})
}

func (k *authKit) memberships(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+kitAPIKey {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	writeJSON(w, map[string]any{
		"data": []map[string]any{{"object": "organization_membership", "id": "om_01E2E",
			"user_id": kitUserID, "organization_id": kitOrgID, "status": "active",
			"role": map[string]string{"slug": "admin"}}},
		"list_metadata": map[string]any{"before": nil, "after": nil},
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func TestWorkOSSignInInBrowser(t *testing.T) {
	kit := newAuthKit(t)
	svc := startService(t,
		"IS_WORKOS_INTEGRATED=true",
		"WORKOS_CLIENT_ID="+kitClientID,
		"WORKOS_API_KEY="+kitAPIKey,
		"WORKOS_WEBHOOK_SECRET=whsec_e2e",
		"WORKOS_SIGNIN_BASE_URL="+kit.URL,
		"WORKOS_API_BASE_URL="+kit.URL,
	)
	ctx := browser(t)

	var who, org, method, path string
	run(t, ctx, "sign in through AuthKit",
		chromedp.Navigate(svc.url+"/"),
		chromedp.WaitVisible("#workos"),
		chromedp.Click("#workos-signin"),
		// AuthKit redirects back to /en/callback, which finishes the sign-in.
		chromedp.WaitVisible("#me"),
		chromedp.Text("#me-email", &who),
		chromedp.Text("#me-org", &org),
		chromedp.Text("#me-method", &method),
		chromedp.Evaluate(`location.pathname + location.search`, &path),
	)
	if who != "grace@example.com" || org != kitOrgID || method != "WorkOS" {
		t.Fatalf("signed in as %q in %q by %q", who, org, method)
	}
	if strings.Contains(path, "code=") {
		t.Errorf("the spent code stays in the address bar: %s", path)
	}

	run(t, ctx, "sign out, of WorkOS too",
		chromedp.Click("#logout"),
		chromedp.WaitVisible("#bye"),
	)
	kit.mu.Lock()
	loggedOut := kit.loggedOut
	kit.mu.Unlock()
	if loggedOut != kitSession {
		t.Fatalf("WorkOS logout for session %q, want %q", loggedOut, kitSession)
	}
	run(t, ctx, "signed out of dashauth",
		chromedp.Navigate(svc.url+"/"),
		chromedp.WaitVisible("#workos"),
	)
}
