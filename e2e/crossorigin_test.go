package e2e

// A dashboard on another origin (here: another port) calls the API from the browser with its cookies: allowed for
// DASHBOARD_URL, blocked by the browser's CORS checks (and refused by the API) for any other origin.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// startDashboardOrigin serves a blank dashboard page and returns its origin, on localhost like the API's, so the two
// are one site but two origins.
func startDashboardOrigin(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(`<!doctype html><title>Dashboard</title><h1>Dashboard</h1>`))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return "http://localhost:" + u.Port()
}

// apiAnswer is what a fetch from the dashboard page got: status 0 when the browser blocked it (a TypeError) or hid
// it (an opaque no-cors answer).
type apiAnswer struct {
	Status     int    `json:"status"`
	Body       string `json:"body"`
	RetryAfter string `json:"retryAfter"` // what the page's script can read of the header
}

// fetchFromPage runs fetch(api+path) with credentials: 'include' in the page the browser shows.
func fetchFromPage(t *testing.T, ctx context.Context, api, method, path, body, mode string) apiAnswer {
	t.Helper()
	js := fmt.Sprintf(`fetch(%q, {method: %q, mode: %q, credentials: "include",
		headers: %q ? {"Content-Type": "application/json"} : {}, body: %q || undefined})
		.then(async (r) => ({status: r.status, body: await r.text(), retryAfter: r.headers.get("Retry-After") || ""}),
		      (e) => ({status: 0, body: String(e)}))`,
		api+path, method, mode, body, body)
	var a apiAnswer
	run(t, ctx, method+" "+path+" from the page", chromedp.Evaluate(js, &a, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	return a
}

func TestCrossOriginDashboard(t *testing.T) {
	t.Parallel()
	dashboard := startDashboardOrigin(t)

	t.Run("DASHBOARD_URL may call with credentials", func(t *testing.T) {
		svc := startService(t, "DASHBOARD_URL="+dashboard)
		ctx := browser(t)
		const addr = "dee@example.com"
		run(t, ctx, "open the dashboard", chromedp.Navigate(dashboard+"/"))

		if a := fetchFromPage(t, ctx, svc.url, "POST", "/v2/user/login_code/", `{"email":"`+addr+`"}`, "cors"); a.Status != 200 || !strings.Contains(a.Body, "CODE_SENT") {
			t.Fatalf("login_code from the dashboard: %+v", a)
		}
		body := fmt.Sprintf(`{"email":%q,"code":%q}`, addr, svc.code(t, addr))
		if a := fetchFromPage(t, ctx, svc.url, "POST", "/v2/user/login_code/verify/", body, "cors"); a.Status != 200 || !strings.Contains(a.Body, "LOGIN_SUCCESSFUL") {
			t.Fatalf("verify from the dashboard: %+v", a)
		}
		// The answer's cookies were stored for the API, and the next call sends them.
		var cookies []*network.Cookie
		run(t, ctx, "read the API's cookies", chromedp.ActionFunc(func(ctx context.Context) (err error) {
			cookies, err = network.GetCookies().WithURLs([]string{svc.url + "/"}).Do(ctx)
			return err
		}))
		names := map[string]bool{}
		for _, c := range cookies {
			names[c.Name] = c.HTTPOnly
		}
		if !names["access_token"] || !names["refresh_token"] {
			t.Fatalf("the browser holds for the API %v, want HttpOnly access_token and refresh_token", names)
		}
		if a := fetchFromPage(t, ctx, svc.url, "GET", "/v2/user/me/", "", "cors"); a.Status != 200 || !strings.Contains(a.Body, addr) {
			t.Fatalf("me from the dashboard: %+v", a)
		}
		var script string
		run(t, ctx, "read the dashboard's cookies", chromedp.Evaluate(`document.cookie`, &script))
		if script != "" {
			t.Errorf("the dashboard's script reads cookies: %q", script)
		}
		if a := fetchFromPage(t, ctx, svc.url, "POST", "/v2/user/logout/", "", "cors"); a.Status != 200 {
			t.Fatalf("logout from the dashboard: %+v", a)
		}
		if a := fetchFromPage(t, ctx, svc.url, "GET", "/v2/user/me/", "", "cors"); a.Status != 401 {
			t.Fatalf("me after logout: %+v", a)
		}
	})

	t.Run("another origin may not", func(t *testing.T) {
		svc := startService(t, fmt.Sprintf("DASHBOARD_URL=http://localhost:%d", freeLocalPort(t)))
		const addr = "eve@example.com"
		// A person signs in on the API's own page, so the browser holds a session the other origin could abuse.
		p := openSigninPage(t, svc, pageSizes[0])
		p.open("/")
		p.askForCode(addr)
		p.typeCode(svc.code(t, addr))
		p.wantView("me")

		run(t, p.ctx, "open the other origin", chromedp.Navigate(dashboard+"/"))
		if a := fetchFromPage(t, p.ctx, svc.url, "GET", "/v2/user/me/", "", "cors"); a.Status != 0 || strings.Contains(a.Body, addr) {
			t.Errorf("me from another origin was readable: %+v", a)
		}
		if a := fetchFromPage(t, p.ctx, svc.url, "POST", "/v2/user/login_code/", `{"email":"`+addr+`"}`, "cors"); a.Status != 0 {
			t.Errorf("login_code from another origin: %+v", a)
		}
		// A request the browser sends without asking (no-cors, like a form post) is refused by the API itself.
		if a := fetchFromPage(t, p.ctx, svc.url, "POST", "/v2/user/logout/", "", "no-cors"); a.Status != 0 {
			t.Errorf("no-cors logout: %+v", a)
		}
		if n := len(svc.codes(addr)); n != 1 {
			t.Errorf("%d codes mailed; the other origin's request must not send one", n)
		}
		p.open("/")
		p.wantView("me") // still signed in: the cross-site logout did nothing
	})
}

// TestCrossOriginDashboardReadsRetryAfter: a dashboard on DASHBOARD_URL that is told 429 can read how long to wait.
// Retry-After is not a CORS-safelisted response header, so the API must expose it (Access-Control-Expose-Headers);
// without that the dashboard's script sees none and cannot count down as this service's own page does.
func TestCrossOriginDashboardReadsRetryAfter(t *testing.T) {
	t.Parallel()
	dashboard := startDashboardOrigin(t)
	svc := startService(t, "DASHBOARD_URL="+dashboard)
	ctx := browser(t)
	run(t, ctx, "open the dashboard", chromedp.Navigate(dashboard+"/"))
	body := `{"email":"fay@example.com"}`
	if a := fetchFromPage(t, ctx, svc.url, "POST", "/v2/user/login_code/", body, "cors"); a.Status != 200 {
		t.Fatalf("first code: %+v", a)
	}
	a := fetchFromPage(t, ctx, svc.url, "POST", "/v2/user/login_code/", body, "cors")
	if a.Status != 429 {
		t.Fatalf("second code within the minute: %+v", a)
	}
	if a.RetryAfter == "" {
		t.Errorf("the dashboard cannot read Retry-After of a 429 (Access-Control-Expose-Headers: Retry-After is missing)")
	}
}
