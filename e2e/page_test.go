package e2e

// The sign-in page as a person meets it, in both sign-in flows, at a desktop and a phone size. Every state is
// pictured (see screensDir) and checked: what it says, where the focus is, which API requests it made, and an audit of
// labels, live regions and contrast.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

type pageSize struct {
	name          string
	width, height int64
	mobile        bool
}

var pageSizes = []pageSize{{"desktop", 1280, 800, false}, {"mobile", 375, 740, true}}

// forEachPageSize runs f once per size, as subtests.
func forEachPageSize(t *testing.T, f func(t *testing.T, size pageSize)) {
	for _, size := range pageSizes {
		t.Run(size.name, func(t *testing.T) { f(t, size) })
	}
}

// signinPage is one browser tab on a service's page, at one size, recording the API requests the page makes.
type signinPage struct {
	t    *testing.T
	ctx  context.Context
	svc  *service
	size pageSize
	mu   sync.Mutex
	api  []string // "GET /v2/user/me/", in the order sent
}

func openSigninPage(t *testing.T, svc *service, size pageSize) *signinPage {
	t.Helper()
	p := &signinPage{t: t, ctx: browser(t), svc: svc, size: size}
	opts := []chromedp.EmulateViewportOption{chromedp.EmulatePortrait}
	if size.mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	p.do("set the viewport", chromedp.EmulateViewport(size.width, size.height, opts...))
	host := strings.TrimPrefix(svc.url, "http://")
	chromedp.ListenTarget(p.ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			if u, err := url.Parse(e.Request.URL); err == nil && u.Host == host && strings.HasPrefix(u.Path, "/v") {
				p.mu.Lock()
				p.api = append(p.api, e.Request.Method+" "+u.Path)
				p.mu.Unlock()
			}
		}
	})
	return p
}

func (p *signinPage) do(step string, actions ...chromedp.Action) {
	p.t.Helper()
	run(p.t, p.ctx, step, actions...)
}

// calls returns the API requests made since the last call, and forgets them. A script round trip first lets the
// browser report every request the page made before it.
func (p *signinPage) calls() []string {
	p.t.Helper()
	p.do("settle", chromedp.Evaluate(`0`, nil))
	p.mu.Lock()
	defer p.mu.Unlock()
	calls := p.api
	p.api = nil
	return calls
}

func (p *signinPage) wantCalls(step string, want ...string) {
	p.t.Helper()
	if got := p.calls(); strings.Join(got, ", ") != strings.Join(want, ", ") {
		p.t.Errorf("%s: API requests %q, want %q", step, got, want)
	}
}

// open loads a page of the service and waits until its script has decided who is signed in.
func (p *signinPage) open(path string) {
	p.t.Helper()
	p.do("open "+path, chromedp.Navigate(p.svc.url+path), chromedp.Poll(`document.body.dataset.session`, nil))
}

// shot saves a picture of the page as <size>-<name>.png.
func (p *signinPage) shot(name string) {
	p.t.Helper()
	var png []byte
	p.do("screenshot "+name, chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(screensDir(p.t), p.size.name+"-"+name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *signinPage) text(sel string) string {
	p.t.Helper()
	var s string
	p.do("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return strings.TrimSpace(s)
}

func (p *signinPage) eval(step, js string, res any) {
	p.t.Helper()
	p.do(step, chromedp.Evaluate(js, res))
}

// view is the view the card shows.
func (p *signinPage) view() string {
	var v string
	p.eval("read the view", `document.body.dataset.view`, &v)
	return v
}

func (p *signinPage) wantView(want string) {
	p.t.Helper()
	p.do("wait for the "+want+" view", chromedp.WaitVisible("#v-"+want, chromedp.ByQuery))
	if v := p.view(); v != want {
		p.t.Fatalf("view %q, want %q", v, want)
	}
}

// wantFocus checks which element has the focus (by id; "h1" for the view's heading).
func (p *signinPage) wantFocus(want string) {
	p.t.Helper()
	var got string
	p.eval("read the focus", `document.activeElement.id || document.activeElement.tagName.toLowerCase()`, &got)
	if got != want {
		p.t.Errorf("focus on %q, want %q", got, want)
	}
}

// typeCode puts text into the code field as a paste or autofill would, replacing what is there.
func (p *signinPage) typeCode(text string) {
	p.t.Helper()
	p.eval("type "+text, fmt.Sprintf(`(() => { const c = document.getElementById("code"); c.focus(); c.select();
		return document.execCommand("insertText", false, %q); })()`, text), nil)
}

// doubleClick presses the mouse twice on sel as a person does: two clicks, the second one a double click.
func (p *signinPage) doubleClick(sel string) {
	p.t.Helper()
	var box []float64
	p.eval("find "+sel, fmt.Sprintf(`(() => { const r = document.querySelector(%q).getBoundingClientRect();
		return [r.x + r.width / 2, r.y + r.height / 2]; })()`, sel), &box)
	p.do("double click "+sel, chromedp.ActionFunc(func(ctx context.Context) error {
		for _, n := range []int64{1, 2} {
			for _, typ := range []input.MouseType{input.MousePressed, input.MouseReleased} {
				if err := input.DispatchMouseEvent(typ, box[0], box[1]).WithButton(input.Left).WithClickCount(n).Do(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}

// audit checks what a person with a screen reader or weaker eyes relies on in the current state: one visible
// heading, a name for every visible control, live regions for messages, described fields, and text contrast (WCAG
// 2.2 §1.4.3: 4.5:1, 3:1 for large text; disabled controls are exempt).
const pageAuditJS = `(() => {
  const problems = [];
  const seen = (el) => el.checkVisibility();
  const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c.length === 3 || c[3] === 1) return c; }
    return [255, 255, 255];
  };
  const headings = [...document.querySelectorAll("h1")].filter(seen);
  if (headings.length !== 1) problems.push(headings.length + " visible headings");
  for (const el of document.querySelectorAll("input, button, a[href]")) {
    if (!seen(el)) continue;
    const name = (el.labels && el.labels.length ? el.labels[0].textContent : el.getAttribute("aria-label") || el.textContent).trim();
    if (!name) problems.push("no accessible name: " + el.outerHTML.slice(0, 60));
    for (const id of (el.getAttribute("aria-describedby") || "").split(" ").filter(Boolean)) {
      if (!document.getElementById(id)) problems.push(el.id + " described by missing " + id);
    }
  }
  for (const el of document.querySelectorAll(".error, .notice")) {
    if (!el.getAttribute("aria-live") && el.getAttribute("role") !== "status") problems.push(el.id + " is not a live region");
  }
  for (const el of document.querySelectorAll("body *")) {
    if (!seen(el) || el.closest(":disabled") || ![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const st = getComputedStyle(el), fg = rgb(st.color), bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x), ratio = (a + 0.05) / (b + 0.05);
    const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && parseInt(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) problems.push("contrast " + ratio.toFixed(2) + ": " + el.textContent.trim().slice(0, 40));
  }
  return problems;
})()`

func (p *signinPage) audit(state string) {
	p.t.Helper()
	var problems []string
	p.eval("audit "+state, pageAuditJS, &problems)
	for _, problem := range problems {
		p.t.Errorf("%s: %s", state, problem)
	}
}

// withoutScript loads path with scripting off: what shows before the script runs (or when it never does).
func (p *signinPage) withoutScript(path, wantVisible, shot string) {
	p.t.Helper()
	p.do("open "+path+" without script", emulation.SetScriptExecutionDisabled(true),
		chromedp.Navigate(p.svc.url+path), chromedp.WaitVisible(wantVisible, chromedp.ByQuery))
	p.shot(shot)
	p.do("script on again", emulation.SetScriptExecutionDisabled(false))
}

// visibleText is what the card says.
func (p *signinPage) visibleText() string {
	var s string
	p.eval("read the card", `document.querySelector("main").innerText`, &s)
	return s
}

var secondsLeft = regexp.MustCompile(`Try again in (\d+) seconds?\.`)

// countdown reads the wait an error message tells and waits until it has counted down by a second.
func (p *signinPage) countdown(sel string) string {
	p.t.Helper()
	msg := p.text(sel)
	m := secondsLeft.FindStringSubmatch(msg)
	if m == nil {
		p.t.Fatalf("%s says %q, want a wait in seconds", sel, msg)
	}
	n, _ := strconv.Atoi(m[1])
	if n < 30 || n > 60 {
		p.t.Errorf("%s: wait of %d s; the server asked for up to 60", sel, n)
	}
	p.do("count down", chromedp.Poll(fmt.Sprintf(`(() => { const m = document.querySelector(%q).textContent.match(/in (\d+) second/);
		return m && Number(m[1]) < %d; })()`, sel, n), nil))
	return msg
}

func (p *signinPage) wantDisabled(sel string, want bool) {
	p.t.Helper()
	var got bool
	p.eval("read "+sel+" disabled", fmt.Sprintf(`document.querySelector(%q).disabled`, sel), &got)
	if got != want {
		p.t.Errorf("%s disabled = %v, want %v", sel, got, want)
	}
}

func (p *signinPage) askForCode(addr string) {
	p.t.Helper()
	p.do("ask for a code",
		chromedp.Evaluate(`document.getElementById("email").value = ""`, nil),
		chromedp.SendKeys("#email", addr, chromedp.ByQuery),
		chromedp.Click(`#email-form button`, chromedp.ByQuery))
	p.wantView("code")
}

func otherCode(code string, n int) string {
	v, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (v+n)%1000000)
}

// TestPageEmailCode walks the email+code sign-in: the form (also before any script), a wrong address, the code
// step, wrong codes with the tries left, a pasted code, signed in, a reload, a refresh of an expired access token,
// sign out.
func TestPageEmailCode(t *testing.T) {
	t.Parallel()
	forEachPageSize(t, func(t *testing.T, size pageSize) {
		svc := startService(t)
		p := openSigninPage(t, svc, size)
		const addr = "ada@example.com"

		p.withoutScript("/", "#email-form", "email-form-before-script")
		p.calls()
		p.open("/")
		p.wantView("email_code")
		p.wantCalls("a signed-out load", "GET /v2/user/me/")
		if text := p.visibleText(); !strings.Contains(text, "dashauth") || !strings.Contains(text, "6-digit code") {
			t.Errorf("the email step does not name the product or say a code will be mailed: %q", text)
		}
		p.audit("email form")
		p.shot("01-email-form")

		p.do("a wrong address", chromedp.SendKeys("#email", "ada", chromedp.ByQuery), chromedp.Click("#email-form button", chromedp.ByQuery))
		if msg := p.text("#email-error"); msg != "Enter an email address like name@example.com." {
			t.Errorf("wrong address: %q", msg)
		}
		p.wantCalls("a wrong address")
		p.audit("wrong address")
		p.shot("02-invalid-email")

		p.askForCode(addr)
		p.wantFocus("code")
		if got := p.text("#code-email"); got != addr {
			t.Errorf("the code step names %q, want %q", got, addr)
		}
		var autocomplete string
		p.eval("autofill", `document.getElementById("code").autocomplete`, &autocomplete)
		if autocomplete != "one-time-code" {
			t.Errorf("code field autocomplete %q", autocomplete)
		}
		p.audit("code form")
		p.shot("03-code-form")
		code := svc.code(t, addr)

		for i, left := range []string{"4 tries left", "3 tries left"} {
			wrong := otherCode(code, i+1)
			p.typeCode(wrong) // six digits send themselves
			p.do("wait for the answer", chromedp.Poll(`document.getElementById("code-error").textContent !== ""`, nil))
			if msg := p.text("#code-error"); msg != "That code isn’t right. "+left+"." {
				t.Errorf("wrong code %d: %q", i+1, msg)
			}
			var value, invalid string
			p.eval("read the field", `document.getElementById("code").value`, &value)
			p.eval("read the field", `document.getElementById("code").getAttribute("aria-invalid")`, &invalid)
			if value != wrong || invalid != "true" {
				t.Errorf("after a wrong code the field holds %q (aria-invalid %q), want %q kept and marked", value, invalid, wrong)
			}
		}
		p.audit("wrong code")
		p.shot("04-wrong-code")
		p.wantCalls("two wrong codes", "POST /v2/user/login_code/", "POST /v2/user/login_code/verify/", "POST /v2/user/login_code/verify/")

		p.typeCode("Code: " + code[:3] + " " + code[3:]) // as pasted from the mail
		p.wantView("me")
		p.wantCalls("a pasted code", "POST /v2/user/login_code/verify/")
		p.wantFocus("h1")
		if name, org, method := p.text("#me-name"), p.text("#me-org"), p.text("#me-method"); name != addr || org != "org_dev" || method != "Email code" {
			t.Errorf("signed in as %q in %q by %q", name, org, method)
		}
		text := p.visibleText()
		if n := strings.Count(strings.ToLower(text), "signed in"); n != 1 {
			t.Errorf("the signed-in card says \"signed in\" %d times: %q", n, text)
		}
		if n := strings.Count(text, addr); n != 1 {
			t.Errorf("the signed-in card names the address %d times: %q", n, text)
		}
		p.audit("signed in")
		p.shot("05-signed-in")

		var cookies string
		p.open("/")
		p.wantView("me")
		p.wantCalls("a signed-in load", "GET /v2/user/me/")
		p.eval("read cookies", `document.cookie`, &cookies)
		if cookies != "" {
			t.Errorf("session cookies readable from script: %q", cookies)
		}
		p.shot("06-after-reload")

		// An access token that has run out (here: gone) is refreshed with the refresh token, once.
		p.do("drop the access token", network.DeleteCookies("access_token").WithURL(svc.url+"/"))
		p.open("/")
		p.wantView("me")
		p.wantCalls("a load with an expired access token", "GET /v2/user/me/", "POST /v2/user/token_refresh/", "GET /v2/user/me/")

		p.do("sign out", chromedp.Click("#logout", chromedp.ByQuery))
		p.wantView("email_code")
		p.wantFocus("email")
		if msg := p.text("#notice"); msg != "You’ve signed out." {
			t.Errorf("after sign-out the page says %q", msg)
		}
		p.audit("signed out")
		p.shot("07-signed-out")
		p.calls()
		p.open("/")
		p.wantView("email_code")
		p.wantCalls("a load after sign-out", "GET /v2/user/me/")
	})
}

// TestPageRateLimited: a second code within the minute is refused with Retry-After; the page says the wait, counts
// it down, and keeps its button off until then or until the address changes.
func TestPageRateLimited(t *testing.T) {
	t.Parallel()
	forEachPageSize(t, func(t *testing.T, size pageSize) {
		svc := startService(t)
		p := openSigninPage(t, svc, size)
		const addr = "bob@example.com"
		p.open("/")
		p.askForCode(addr)

		p.do("ask for a new code at once", chromedp.Click("#resend", chromedp.ByQuery),
			chromedp.Poll(`/Try again/.test(document.getElementById("resend-error").textContent)`, nil))
		msg := p.countdown("#resend-error")
		if !strings.HasPrefix(msg, "A new code can be sent once a minute.") {
			t.Errorf("resend too soon: %q", msg)
		}
		p.wantDisabled("#resend", true)
		p.audit("resend rate limited")
		p.shot("08-resend-rate-limited")

		p.do("back to the address", chromedp.Click("#change", chromedp.ByQuery))
		p.wantView("email_code")
		p.wantFocus("email")
		p.do("ask again", chromedp.Click("#email-form button", chromedp.ByQuery),
			chromedp.Poll(`/Try again/.test(document.getElementById("email-error").textContent)`, nil))
		msg = p.countdown("#email-error")
		if !strings.HasPrefix(msg, "Too many requests for a code.") {
			t.Errorf("code asked again too soon: %q", msg)
		}
		p.wantDisabled("#email-form button", true)
		p.wantFocus("email") // the button went off under the focus; the field has it
		p.audit("rate limited")
		p.shot("09-rate-limited")

		p.do("another address", chromedp.SendKeys("#email", "x", chromedp.ByQuery))
		p.wantDisabled("#email-form button", false)
		if msg := p.text("#email-error"); msg != "" {
			t.Errorf("the wait stays after the address changed: %q", msg)
		}
		p.wantCalls("rate limited", "GET /v2/user/me/", "POST /v2/user/login_code/", "POST /v2/user/login_code/", "POST /v2/user/login_code/")
	})
}

// TestPageDoubleClick: a double click on "Send me a code" sends one request, and the button is off meanwhile.
func TestPageDoubleClick(t *testing.T) {
	t.Parallel()
	forEachPageSize(t, func(t *testing.T, size pageSize) {
		svc := startService(t)
		p := openSigninPage(t, svc, size)
		const addr = "cy@example.com"
		p.open("/")
		p.calls()
		p.do("type the address", chromedp.SendKeys("#email", addr, chromedp.ByQuery))
		p.doubleClick("#email-form button")
		p.wantView("code")
		p.wantCalls("a double click", "POST /v2/user/login_code/")
		svc.code(t, addr)
		if n := len(svc.codes(addr)); n != 1 {
			t.Errorf("%d codes mailed", n)
		}
		p.shot("10-double-click")
	})
}

// TestPageCallbackInEmailCodeMode: the WorkOS callback page, opened in email+code mode, says so at once, asks the
// API nothing, and leads back.
func TestPageCallbackInEmailCodeMode(t *testing.T) {
	t.Parallel()
	forEachPageSize(t, func(t *testing.T, size pageSize) {
		svc := startService(t)
		p := openSigninPage(t, svc, size)
		p.do("open the callback", chromedp.Navigate(svc.url+"/en/callback?code=01ABC&state=xyz"))
		p.wantView("problem")
		p.wantCalls("the callback in email+code mode")
		if title := p.text("#problem-title"); title != "Nothing to finish here" {
			t.Errorf("callback title %q", title)
		}
		var path string
		p.eval("read the address", `location.pathname + location.search`, &path)
		if path != "/en/callback" {
			t.Errorf("the address bar keeps %q", path)
		}
		p.audit("callback in email+code mode")
		p.shot("11-callback-email-code")
		p.do("go back", chromedp.Click("#problem-back", chromedp.ByQuery))
		p.wantView("email_code")
	})
}
