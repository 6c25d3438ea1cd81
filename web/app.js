// The sign-in page: talks to the API on this origin with its cookies.
"use strict";

const $ = (id) => document.getElementById(id);

function show(id) {
  for (const s of ["email-form", "code-form", "workos", "orgs", "me"]) $(s).hidden = s !== id;
  const title = id === "me" ? "Signed in" : id === "orgs" ? "Choose an organization" : "Sign in";
  document.title = title;
  document.querySelector("h1").textContent = title;
}

function say(text, ok) {
  $("status").textContent = text || "";
  $("status").className = ok ? "ok" : "";
}

async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = {};
  try { data = await res.json(); } catch (e) { /* empty body */ }
  return { status: res.status, data };
}

const messages = {
  MEMBERSHIP_DEACTIVATED: "Your membership is deactivated. Ask an administrator to reactivate it.",
  MEMBERSHIP_NOT_FOUND: "You are not a member of any organization here.",
  LINK_INVALID: "That code or link is not valid. Try again.",
  LINK_EXPIRED: "That code or link has expired or was used. Start again.",
  rate_limited: "Too many attempts. Wait a little and try again.",
  invalid_email: "That is not an email address.",
  workos_unavailable: "The sign-in service is unavailable. Try again shortly.",
  invalid_redirect_url: "This page's address is not an allowed sign-in callback (ALLOWED_REDIRECT_URLS).",
  email_verification_required: "Verify your email address first, then sign in again.",
  mfa_enrollment_required: "Your organization requires multi-factor authentication. Set it up when signing in, then try again.",
  mfa_challenge_required: "Finish the multi-factor check when signing in, then try again.",
  sso_required: "Your organization requires its own single sign-on. Start again and choose it.",
  organization_authentication_methods_required: "Your organization requires another way of signing in. Start again and choose it.",
  state_unavailable: "The service is unavailable. Try again shortly.",
};

function explain(r) {
  const key = r.data.response_type || r.data.error;
  return messages[key] || "Something went wrong (" + (key || r.status) + ").";
}

async function showMe() {
  let r = await api("GET", "/v2/user/me/");
  if (r.status === 401) {
    const refreshed = await api("POST", "/v2/user/token_refresh/");
    if (refreshed.status === 200) r = await api("GET", "/v2/user/me/");
  }
  if (r.status !== 200) return false;
  $("me-email").textContent = r.data.user.email;
  $("me-org").textContent = r.data.organization_id;
  $("me-method").textContent = r.data.login_method === "workos" ? "WorkOS" : "email code";
  show("me");
  return true;
}

function chooseOrganization(orgs) {
  const list = $("org-list");
  list.replaceChildren();
  for (const org of orgs) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = org.name || org.id;
    b.addEventListener("click", async () => {
      const r = await api("POST", "/v2/user/workos_select_organization/", { organization_id: org.id });
      finish(r);
    });
    li.append(b);
    list.append(li);
  }
  show("orgs");
}

async function finish(r) {
  if (r.data.response_type === "LOGIN_SUCCESSFUL") {
    history.replaceState(null, "", "/");
    say("Signed in.", true);
    await showMe();
  } else if (r.data.response_type === "ORGANIZATION_SELECTION_REQUIRED") {
    say("");
    chooseOrganization(r.data.organizations || []);
  } else {
    say(explain(r));
  }
}

async function startWorkOS(hint) {
  const redirect = location.origin + "/en/callback";
  const r = await api("POST", "/v2/user/workos_login_url/", { redirect_url: redirect, screen_hint: hint });
  if (r.status === 200 && r.data.url) {
    location.assign(r.data.url);
  } else {
    say(explain(r));
  }
}

async function callback() {
  document.title = "Signing in…";
  document.querySelector("h1").textContent = "Signing in…";
  const q = new URLSearchParams(location.search);
  if (q.get("error")) {
    say("Sign-in was not completed: " + q.get("error"));
    return;
  }
  const r = await api("POST", "/v2/user/workos_signin_callback/", { code: q.get("code") || "", state: q.get("state") || "" });
  history.replaceState(null, "", "/en/callback"); // the code is spent; keep it out of history
  await finish(r);
}

async function main() {
  $("email-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const email = $("email").value.trim();
    const r = await api("POST", "/v2/user/login_code/", { email });
    if (r.status === 200) {
      $("code-email").textContent = email;
      say("");
      show("code-form");
      $("code").focus();
    } else {
      say(explain(r));
    }
  });
  $("code-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await api("POST", "/v2/user/login_code/verify/", { email: $("email").value.trim(), code: $("code").value.trim() });
    $("code").value = "";
    await finish(r);
  });
  $("restart").addEventListener("click", () => { say(""); show("email-form"); });
  $("workos-signin").addEventListener("click", () => startWorkOS("sign-in"));
  $("workos-signup").addEventListener("click", () => startWorkOS("sign-up"));
  $("logout").addEventListener("click", async () => {
    const r = await api("POST", "/v2/user/logout/");
    if (r.data.logout_url) {
      location.assign(r.data.logout_url);
      return;
    }
    say("Signed out.", true);
    await main2();
  });

  if (location.pathname === "/en/callback") {
    await callback();
    return;
  }
  await main2();
}

async function main2() {
  if (await showMe()) return;
  const cfg = await api("GET", "/v1/auth_config/");
  show(cfg.data.login_flow === "workos" ? "workos" : "email-form");
}

main().catch((e) => say("Something went wrong: " + e.message));
