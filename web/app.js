// dashauth's sign-in page: email+code or WorkOS AuthKit, against the API on this origin with its HttpOnly cookies.
// The HTML already shows the flow's first step (body data-view); this script takes over once the page is parsed.
"use strict";

const $ = (id) => document.getElementById(id);
const maxTries = 5; // the server's tries per code; it does not say how many are left, so the page counts its own
let flow = "";
let address = "";
let triesLeft = maxTries;
let lastTried = "";
let countdown = null;

// show switches the card to a view; a view reached by an action takes the focus, so a screen reader follows.
function show(view, focus) {
  const section = $("v-" + view);
  document.body.dataset.view = view;
  document.title = section.querySelector("h1").textContent + " · dashauth";
  if (focus) (focus === true ? section.querySelector("h1") : focus).focus();
}

function notice(text) {
  $("notice").textContent = text || "";
}

// fail puts a message at a field (or a button's view) and marks the field invalid.
function fail(errorEl, text, field) {
  errorEl.textContent = text || "";
  if (field) field.setAttribute("aria-invalid", text ? "true" : "false");
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { status: 0, data: { error: "network" }, wait: 0 };
  }
  const data = await res.json().catch(() => ({}));
  return { status: res.status, data, wait: parseInt(res.headers.get("Retry-After"), 10) || 0 };
}

// busy runs one request for a button at a time: the button is disabled and says what is happening until it ends.
// A second click, a double click or Enter pressed twice finds it disabled and sends nothing.
async function busy(button, label, fn) {
  if (button.disabled) return;
  const text = button.textContent;
  const focused = document.activeElement === button;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = label;
  try {
    await fn();
  } finally {
    button.textContent = text;
    button.removeAttribute("aria-busy");
    button.disabled = countdown !== null && countdown.button === button;
    // A disabled button loses the focus; where the view stayed, give it back (or to the field while it waits).
    if (focused && !document.activeElement?.closest(".view")) {
      (button.disabled ? button.closest(".view").querySelector("input") || button : button).focus();
    }
  }
}

// wait tells how long the server asked to wait (Retry-After), counting down, with the button off until then.
function wait(button, errorEl, seconds, prefix) {
  stopWait();
  const c = { button, errorEl, end: Date.now() + seconds * 1000 };
  const tick = () => {
    const left = Math.ceil((c.end - Date.now()) / 1000);
    if (left <= 0) return stopWait();
    const unit = left >= 120 ? Math.ceil(left / 60) + " minutes" : left === 1 ? "1 second" : left + " seconds";
    errorEl.textContent = prefix + " Try again in " + unit + ".";
  };
  countdown = c;
  if (button) button.disabled = true;
  tick();
  c.timer = setInterval(tick, 1000);
}

function stopWait() {
  if (!countdown) return;
  clearInterval(countdown.timer);
  countdown.errorEl.textContent = "";
  if (countdown.button) countdown.button.disabled = false;
  countdown = null;
}

// explain turns an answer into words; rate limits are told by wait, with their countdown.
const messages = {
  invalid_email: "Enter an email address like name@example.com.",
  network: "Can’t reach the server. Check your connection and try again.",
  workos_unavailable: "The sign-in service isn’t answering. Try again in a moment.",
  state_unavailable: "The service is busy. Try again in a moment.",
  invalid_redirect_url: "This address is not an allowed sign-in callback (see ALLOWED_REDIRECT_URLS).",
};
const problems = {
  MEMBERSHIP_DEACTIVATED: ["Your access is paused", "Your membership in this organization is deactivated. Ask an administrator of your organization to reactivate it."],
  MEMBERSHIP_NOT_FOUND: ["No access yet", "You signed in, but you are not a member of any organization here. Ask an administrator to invite you."],
  LINK_EXPIRED: ["This sign-in link has expired", "It was already used, or it is more than 10 minutes old. Start again to get a new one.", "Start again"],
  LINK_INVALID: ["This sign-in didn’t finish", "It wasn’t started in this browser, or it still needs a step (such as two-factor or single sign-on). Start again from the sign-in page.", "Start again"],
};

function explain(r) {
  const key = r.data.response_type || r.data.error || r.status;
  return messages[key] || "Something went wrong (" + key + "). Try again.";
}

// problem is a dead end with a way back.
function problem(title, text, back) {
  $("problem-title").textContent = title;
  $("problem-text").textContent = text;
  $("problem-back").textContent = back || "Back to sign in";
  show("problem", true);
}

// signedIn says who and where, once.
function signedIn(me) {
  const u = me.user || {};
  const name = [u.first_name, u.last_name].filter(Boolean).join(" ");
  $("me-name").textContent = name || u.email || "";
  $("me-email").textContent = name ? u.email : "";
  $("me-initials").textContent = (name ? name.split(/\s+/).slice(0, 2).map((w) => w[0]).join("") : (u.email || "?")[0]).toUpperCase();
  $("me-org").textContent = me.organization_id || "none";
  $("me-method").textContent = me.login_method === "workos" ? "WorkOS" : "Email code";
  notice("");
  history.replaceState(null, "", "/");
  show("me", true);
}

// whoami asks who is signed in: one request for a visitor without a session cookie; a refresh only when the
// server says the cookie it got has run out.
async function whoami() {
  let r = await api("GET", "/v2/user/me/");
  if (r.status === 401 && r.data.error === "session_expired" && (await api("POST", "/v2/user/token_refresh/")).status === 200) {
    r = await api("GET", "/v2/user/me/");
  }
  return r.status === 200 ? r.data : null;
}

// finish handles the answer of a sign-in step.
function finish(r, errorEl) {
  const type = r.data.response_type;
  if (type === "LOGIN_SUCCESSFUL") return signedIn({ ...r.data, login_method: flow });
  if (type === "ORGANIZATION_SELECTION_REQUIRED") return chooseOrganization(r.data.organizations || []);
  if (problems[type]) return problem(...problems[type]);
  if (r.data.error === "rate_limited") return problem("Too many attempts", "Too many sign-in attempts from this device. Start again in a little while.");
  if (errorEl) return fail(errorEl, explain(r));
  problem("Sign-in did not finish", explain(r));
}

function startCodeStep(addr) {
  address = addr;
  triesLeft = maxTries;
  lastTried = "";
  $("code-email").textContent = addr;
  $("code").value = "";
  fail($("code-error"), "", $("code"));
  fail($("resend-error"), "");
  show("code", $("code"));
}

async function sendCode(e) {
  e.preventDefault();
  const input = $("email");
  const addr = input.value.trim();
  stopWait();
  notice("");
  if (!/^[^\s@]+@[^\s@]+$/.test(addr)) return fail($("email-error"), messages.invalid_email, input);
  const button = $("email-form").querySelector("button");
  await busy(button, "Sending…", async () => {
    const r = await api("POST", "/v2/user/login_code/", { email: addr });
    if (r.status === 200) return startCodeStep(addr);
    if (r.data.error === "rate_limited") return wait(button, $("email-error"), r.wait || 60, "Too many requests for a code.");
    fail($("email-error"), explain(r), input);
  });
}

async function resend() {
  const button = $("resend");
  await busy(button, "Sending…", async () => {
    const r = await api("POST", "/v2/user/login_code/", { email: address });
    if (r.status === 200) {
      startCodeStep(address);
      return notice("We sent a new code to " + address + ".");
    }
    if (r.data.error === "rate_limited") return wait(button, $("resend-error"), r.wait || 60, "A new code can be sent once a minute.");
    fail($("resend-error"), explain(r));
  });
}

async function verify(e) {
  e.preventDefault();
  const input = $("code");
  const code = input.value;
  const button = $("code-form").querySelector("button");
  if (!/^\d{6}$/.test(code)) return fail($("code-error"), "Enter the 6 digits from the email.", input);
  if (button.disabled) return;
  notice("");
  lastTried = code;
  await busy(button, "Verifying…", async () => {
    const r = await api("POST", "/v2/user/login_code/verify/", { email: address, code });
    const type = r.data.response_type;
    if (type === "LINK_INVALID") {
      triesLeft = Math.max(0, triesLeft - 1);
      fail($("code-error"), triesLeft === 0 ? "That code isn’t right, and that was the last try. Send a new code."
        : "That code isn’t right. " + triesLeft + (triesLeft === 1 ? " try" : " tries") + " left.", input);
    } else if (type === "LINK_EXPIRED") {
      fail($("code-error"), "This code has expired or was used up. Send a new code.", input);
    } else if (r.data.error === "rate_limited") {
      return wait(button, $("code-error"), r.wait || 60, "Too many tries from this device.");
    } else {
      return finish(r, $("code-error"));
    }
    input.select(); // keep what was typed, ready to be typed over
  });
}

// onCodeInput keeps digits only, so a pasted "123 456" or "Code: 123-456" works, and sends a complete new code.
function onCodeInput() {
  const input = $("code");
  const digits = input.value.replace(/\D/g, "").slice(0, 6);
  if (digits !== input.value) input.value = digits;
  fail($("code-error"), "", input);
  if (digits.length === 6 && digits !== lastTried) $("code-form").requestSubmit();
}

function chooseOrganization(orgs) {
  const list = $("org-list");
  list.replaceChildren();
  orgs.forEach((org, i) => {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "organization";
    radio.value = org.id;
    radio.required = true;
    label.className = "choice";
    label.append(radio, org.name || org.id);
    list.append(label);
    if (i === 0) radio.checked = orgs.length === 1;
  });
  fail($("orgs-error"), "");
  show("orgs", true);
}

async function selectOrganization(e) {
  e.preventDefault();
  const chosen = $("orgs-form").querySelector("input:checked");
  if (!chosen) return fail($("orgs-error"), "Choose an organization.");
  await busy($("orgs-form").querySelector("button"), "Signing in…", async () => {
    finish(await api("POST", "/v2/user/workos_select_organization/", { organization_id: chosen.value }), $("orgs-error"));
  });
}

// startWorkOS goes to AuthKit; the button stays off while the browser leaves.
async function startWorkOS(button, hint) {
  await busy(button, "Redirecting…", async () => {
    const r = await api("POST", "/v2/user/workos_login_url/", { redirect_url: location.origin + "/en/callback", screen_hint: hint });
    if (r.status === 200 && r.data.url) {
      location.assign(r.data.url);
      return new Promise(() => {});
    }
    if (r.data.error === "rate_limited") return wait(null, $("workos-error"), r.wait || 60, "Too many attempts.");
    fail($("workos-error"), explain(r));
  });
}

// callback finishes a WorkOS sign-in that AuthKit sent back here. The code in the address is spent either way, so
// it leaves the address bar and the history at once.
async function callback() {
  const q = new URLSearchParams(location.search);
  history.replaceState(null, "", "/en/callback");
  if (flow !== "workos") {
    return problem("Nothing to finish here", "This page finishes a sign-in through WorkOS, but this service signs people in with a code sent by email.", "Go to sign in");
  }
  if (q.get("error")) {
    // error_description is not shown: anyone can write it into a link.
    const cancelled = q.get("error") === "access_denied";
    return problem(cancelled ? "Sign-in cancelled" : "Sign-in did not finish",
      cancelled ? "You left the sign-in page before it finished." : "WorkOS could not finish the sign-in (" + q.get("error") + ").", "Start again");
  }
  if (!q.get("code") || !q.get("state")) {
    return problem("Nothing to finish here", "This page finishes a sign-in, but it was opened without one. Start from the sign-in page.", "Go to sign in");
  }
  show("busy");
  finish(await api("POST", "/v2/user/workos_signin_callback/", { code: q.get("code"), state: q.get("state") }));
}

async function logout() {
  const button = $("logout");
  await busy(button, "Signing out…", async () => {
    const r = await api("POST", "/v2/user/logout/");
    if (r.status !== 200) return fail($("me-error"), explain(r));
    if (r.data.logout_url) { // end the WorkOS session too; it comes back to its own page
      location.assign(r.data.logout_url);
      return new Promise(() => {});
    }
    fail($("me-error"), "");
    $("email").value = "";
    show(flow, flow === "workos" ? true : $("email"));
    notice("You’ve signed out.");
  });
}

function start() {
  flow = document.body.dataset.flow;
  $("email-form").addEventListener("submit", sendCode);
  $("email").addEventListener("input", () => { stopWait(); fail($("email-error"), "", $("email")); });
  $("code-form").addEventListener("submit", verify);
  $("code").addEventListener("input", onCodeInput);
  $("change").addEventListener("click", () => { stopWait(); notice(""); show("email_code", $("email")); });
  $("resend").addEventListener("click", resend);
  $("orgs-form").addEventListener("submit", selectOrganization);
  $("orgs-form").addEventListener("change", () => fail($("orgs-error"), ""));
  $("workos-signin").addEventListener("click", (e) => startWorkOS(e.currentTarget, "sign-in"));
  $("workos-signup").addEventListener("click", (e) => startWorkOS(e.currentTarget, "sign-up"));
  $("logout").addEventListener("click", logout);
  // Back from AuthKit out of the browser's page cache: start fresh rather than with buttons still off.
  addEventListener("pageshow", (e) => e.persisted && location.reload());
  if (location.pathname === "/en/callback") return callback();
  whoami().then((me) => {
    document.body.dataset.session = me ? "signed-in" : "signed-out"; // for the browser tests: the page has decided
    if (me) signedIn(me);
  });
}

document.addEventListener("DOMContentLoaded", start);
