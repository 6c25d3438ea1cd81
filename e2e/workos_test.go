package e2e

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// authKit plays WorkOS for the browser tests: its authorize page signs the person in at once and redirects back with
// a code, and its API answers the code exchange, an organization selection and the membership look-up as WorkOS does.
type authKit struct {
	*httptest.Server
	mode         authKitMode
	release      func() // lets held code exchanges go on
	mu           sync.Mutex
	challenges   map[string]string // code → PKCE challenge
	pending      map[string]bool   // pending authentication tokens of organization selections
	loggedOut    string            // session_id the logout page was opened with
	lastCallback string            // where authorize last sent the browser back to
}

// authKitMode is how the stand-in answers, fixed before it serves.
type authKitMode struct {
	membership string            // the membership status it reports: "active" unless set
	orgs       map[string]string // when set, id → name: a code exchange asks to choose one of these
	hold       bool              // code exchanges wait for release: the page's "Signing you in" state
}

const (
	kitClientID = "client_e2e"
	kitAPIKey   = "sk_test_e2e"
	kitUserID   = "user_01E2E000000000000000000000"
	kitOrgID    = "org_01E2E000000000000000000000"
	kitSession  = "session_01E2E00000000000000000000"
	kitSelectGT = "urn:workos:oauth:grant-type:organization-selection"
)

func newAuthKit(t *testing.T, mode authKitMode) *authKit {
	held := make(chan struct{})
	k := &authKit{mode: mode, challenges: map[string]string{}, pending: map[string]bool{}}
	k.release = sync.OnceFunc(func() { close(held) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /user_management/authorize", k.authorize)
	mux.HandleFunc("POST /user_management/authenticate", func(w http.ResponseWriter, r *http.Request) {
		if k.mode.hold {
			select {
			case <-held:
			case <-r.Context().Done():
				return
			}
		}
		k.authenticate(w, r)
	})
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
	t.Cleanup(k.release) // runs first: a held exchange must end for Close to return
	return k
}

func (k *authKit) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != kitClientID || q.Get("provider") != "authkit" || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	code := "code_" + q.Get("state")[:8]
	back, _ := url.Parse(q.Get("redirect_uri"))
	back.RawQuery = url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
	k.mu.Lock()
	k.challenges[code] = q.Get("code_challenge")
	k.lastCallback = back.String()
	k.mu.Unlock()
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
	pending := k.pending[req["pending_authentication_token"]]
	delete(k.pending, req["pending_authentication_token"])
	k.mu.Unlock()
	switch {
	case req["client_id"] != kitClientID || req["client_secret"] != kitAPIKey:
		kitError(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
	case req["grant_type"] == kitSelectGT && pending && k.mode.orgs[req["organization_id"]] != "":
		k.signedIn(w, req["organization_id"])
	case req["grant_type"] == kitSelectGT || !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge:
		kitError(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "The code is invalid."})
	case k.mode.orgs != nil:
		token := "pat_" + req["code"]
		k.mu.Lock()
		k.pending[token] = true
		k.mu.Unlock()
		var orgs []map[string]string
		for id, name := range k.mode.orgs {
			orgs = append(orgs, map[string]string{"id": id, "name": name})
		}
		slices.SortFunc(orgs, func(a, b map[string]string) int { return strings.Compare(a["name"], b["name"]) })
		kitError(w, http.StatusForbidden, map[string]any{"code": "organization_selection_required",
			"message": "The user must choose an organization.", "pending_authentication_token": token,
			"organizations": orgs, "user": kitUser()})
	default:
		k.signedIn(w, kitOrgID)
	}
}

func kitUser() map[string]any {
	return map[string]any{"object": "user", "id": kitUserID, "email": "grace@example.com",
		"first_name": "Grace", "last_name": "Hopper", "email_verified": true}
}

func kitError(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func (k *authKit) signedIn(w http.ResponseWriter, org string) {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(map[string]any{"sub": kitUserID, "sid": kitSession, "org_id": org, "iat": 1, "exp": 2})
	token := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString([]byte("sig"))
	writeJSON(w, map[string]any{"user": kitUser(), "organization_id": org, "access_token": token,
		"refresh_token": "refresh_e2e", "authentication_method": "SSO"})
}

func (k *authKit) memberships(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+kitAPIKey {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	org := cmp.Or(r.URL.Query().Get("organization_id"), kitOrgID)
	writeJSON(w, map[string]any{
		"data": []map[string]any{{"object": "organization_membership", "id": "om_01E2E",
			"user_id": kitUserID, "organization_id": org, "status": cmp.Or(k.mode.membership, "active"),
			"role": map[string]string{"slug": "admin"}}},
		"list_metadata": map[string]any{"before": nil, "after": nil},
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// startWorkOSService runs dashauth in WorkOS mode against the stand-in.
func startWorkOSService(t *testing.T, kit *authKit) *service {
	return startService(t,
		"IS_WORKOS_INTEGRATED=true",
		"WORKOS_CLIENT_ID="+kitClientID,
		"WORKOS_API_KEY="+kitAPIKey,
		"WORKOS_WEBHOOK_SECRET=whsec_e2e",
		"WORKOS_SIGNIN_BASE_URL="+kit.URL,
		"WORKOS_API_BASE_URL="+kit.URL,
	)
}

// TestPageWorkOS walks a WorkOS sign-in: the start (also before any script), the callback page while the code is
// exchanged, signed in, sign out of WorkOS too, and the spent link opened again.
func TestPageWorkOS(t *testing.T) {
	t.Parallel()
	forEachPageSize(t, func(t *testing.T, size pageSize) {
		kit := newAuthKit(t, authKitMode{hold: true})
		svc := startWorkOSService(t, kit)
		p := openSigninPage(t, svc, size)

		p.withoutScript("/", "#workos-signin", "workos-form-before-script")
		p.calls()
		p.open("/")
		p.wantView("workos")
		p.wantCalls("a signed-out load", "GET /v2/user/me/")
		p.audit("WorkOS sign-in")
		p.shot("12-workos-form")

		p.do("sign in through AuthKit", chromedp.Click("#workos-signin", chromedp.ByQuery))
		p.wantView("busy") // AuthKit sent the browser back to /en/callback; the exchange is held
		p.audit("WorkOS callback")
		p.shot("13-workos-callback")
		kit.release()
		p.wantView("me")
		p.wantCalls("a WorkOS sign-in", "POST /v2/user/workos_login_url/", "POST /v2/user/workos_signin_callback/")
		if name, email, org, method := p.text("#me-name"), p.text("#me-email"), p.text("#me-org"), p.text("#me-method"); name != "Grace Hopper" ||
			email != "grace@example.com" || org != kitOrgID || method != "WorkOS" {
			t.Errorf("signed in as %q <%s> in %q by %q", name, email, org, method)
		}
		var path string
		p.eval("read the address", `location.pathname + location.search`, &path)
		if path != "/" {
			t.Errorf("after sign-in the address bar shows %s", path)
		}
		p.audit("WorkOS signed in")
		p.shot("14-workos-signed-in")

		p.do("sign out, of WorkOS too", chromedp.Click("#logout", chromedp.ByQuery), chromedp.WaitVisible("#bye", chromedp.ByQuery))
		kit.mu.Lock()
		loggedOut, spent := kit.loggedOut, kit.lastCallback
		kit.mu.Unlock()
		if loggedOut != kitSession {
			t.Errorf("WorkOS logout for session %q, want %q", loggedOut, kitSession)
		}

		p.do("open the spent link again", chromedp.Navigate(spent))
		p.wantView("problem")
		if title := p.text("#problem-title"); title != "This sign-in link has expired" {
			t.Errorf("a spent link: %q", title)
		}
		p.audit("expired link")
		p.shot("15-workos-expired-link")
		p.do("start again", chromedp.Click("#problem-back", chromedp.ByQuery))
		p.wantView("workos")
	})
}

// TestPageWorkOSDeactivated: a deactivated membership, or a sign-in left at AuthKit, is a dead end that says why
// and leads back.
func TestPageWorkOSDeactivated(t *testing.T) {
	t.Parallel()
	forEachPageSize(t, func(t *testing.T, size pageSize) {
		svc := startWorkOSService(t, newAuthKit(t, authKitMode{membership: "inactive"}))
		p := openSigninPage(t, svc, size)
		p.open("/")
		p.do("sign in through AuthKit", chromedp.Click("#workos-signin", chromedp.ByQuery))
		p.wantView("problem")
		p.wantFocus("problem-title")
		if title, text := p.text("#problem-title"), p.text("#problem-text"); title != "Your access is paused" || !strings.Contains(text, "deactivated") {
			t.Errorf("MEMBERSHIP_DEACTIVATED: %q, %q", title, text)
		}
		p.audit("deactivated")
		p.shot("16-workos-deactivated")
		p.do("back", chromedp.Click("#problem-back", chromedp.ByQuery))
		p.wantView("workos")

		// Sent back by AuthKit without a code: the person left its page. Nothing to ask the API.
		p.calls()
		p.do("come back cancelled", chromedp.Navigate(svc.url+"/en/callback?error=access_denied&error_description=Call+0800+now"))
		p.wantView("problem")
		p.wantCalls("a cancelled sign-in")
		if title, text := p.text("#problem-title"), p.text("#problem-text"); title != "Sign-in cancelled" || strings.Contains(text, "0800") {
			t.Errorf("cancelled: %q, %q (error_description must not be shown)", title, text)
		}
		p.shot("16b-workos-cancelled")
	})
}

// TestPageWorkOSOrganizations: a person in several organizations chooses one in a form, then is signed in to it.
func TestPageWorkOSOrganizations(t *testing.T) {
	t.Parallel()
	forEachPageSize(t, func(t *testing.T, size pageSize) {
		orgs := map[string]string{"org_01E2EACME00000000000000000": "Acme Corporation", "org_01E2EGLOBEX000000000000000": "Globex"}
		svc := startWorkOSService(t, newAuthKit(t, authKitMode{orgs: orgs}))
		p := openSigninPage(t, svc, size)
		p.open("/")
		p.do("sign in through AuthKit", chromedp.Click("#workos-signin", chromedp.ByQuery))
		p.wantView("orgs")
		p.wantFocus("h1")
		var names []string
		p.eval("read the choices", `[...document.querySelectorAll("#org-list label")].map((l) => l.textContent)`, &names)
		if strings.Join(names, ",") != "Acme Corporation,Globex" {
			t.Errorf("organizations offered: %q", names)
		}
		p.audit("organization selection")
		p.shot("17-workos-orgs")
		p.calls()

		p.do("continue without a choice", chromedp.Click("#orgs-form button", chromedp.ByQuery))
		if msg := p.text("#orgs-error"); msg != "Choose an organization." {
			t.Errorf("no choice: %q", msg)
		}
		p.wantCalls("no choice")
		p.do("choose Globex", chromedp.Click(`#org-list label:nth-child(2)`, chromedp.ByQuery))
		if msg := p.text("#orgs-error"); msg != "" {
			t.Errorf("the error stays after a choice: %q", msg)
		}
		p.audit("organization chosen")
		p.shot("18-workos-orgs-chosen")

		p.do("continue", chromedp.Click("#orgs-form button", chromedp.ByQuery))
		p.wantView("me")
		p.wantCalls("an organization chosen", "POST /v2/user/workos_select_organization/")
		if org := p.text("#me-org"); org != "org_01E2EGLOBEX000000000000000" {
			t.Errorf("signed in to %q", org)
		}
		p.shot("19-workos-org-signed-in")
	})
}
