// The example single-page app: three lists from protected routes, a login dialog with the Turnstile
// widget, and token expiry left entirely to the client's 401 interceptor (see README "Browser apps").
import { createGatewayClient, LoginError } from "/.gateway/client.js";

const $ = (id) => document.getElementById(id);
const SECTIONS = [
  ["items", "/api/items"],
  ["profile", "/api/profile"],
  ["settings", "/api/settings"],
];

let settings = null;
let turnstile = null;
let widgetId = null;
let captchaToken = null;
let prompts = 0;

const client = createGatewayClient({
  // The token lives in memory: a reload asks for a new login (see the README for sessionStorage).
  storage: "memory",
  onLoginRequired: askForLogin,
});

function setStatus(text) {
  $("status").textContent = text;
}

async function loadSettings() {
  const res = await fetch("/.gateway/config.json");
  if (!res.ok) throw new Error(`/.gateway/config.json answered ${res.status}`);
  return res.json();
}

function loadTurnstile(scriptUrl) {
  return new Promise((resolve, reject) => {
    const url = new URL(scriptUrl);
    url.searchParams.set("render", "explicit");
    const script = document.createElement("script");
    script.src = url.toString();
    script.async = true;
    script.onload = () => (window.turnstile ? resolve(window.turnstile) : reject(new Error("no turnstile")));
    script.onerror = () => reject(new Error(`could not load the Turnstile script from ${url.origin}`));
    document.head.appendChild(script);
  });
}

// A fresh widget for every dialog: a Turnstile token is good for one login only.
function renderWidget() {
  captchaToken = null;
  $("login-submit").disabled = true;
  if (!turnstile || !settings?.turnstile?.siteKey) {
    $("login-error").textContent = "No Turnstile site key is configured (login.turnstile.site_key).";
    return;
  }
  if (widgetId !== null) turnstile.remove(widgetId);
  widgetId = turnstile.render($("captcha"), {
    sitekey: settings.turnstile.siteKey,
    action: "login",
    callback: (token) => {
      captchaToken = token;
      $("login-submit").disabled = false;
    },
    "expired-callback": () => {
      captchaToken = null;
      $("login-submit").disabled = true;
    },
    "error-callback": () => {
      $("login-error").textContent = "The captcha could not be solved; try again.";
    },
  });
}

// The client calls this once however many requests are waiting; they retry when it resolves and all
// fail when it rejects.
function askForLogin() {
  prompts += 1;
  document.body.dataset.loginPrompts = String(prompts);
  setStatus("Sign-in needed");
  return new Promise((resolve, reject) => {
    const dialog = $("login-dialog");
    const form = $("login-form");
    $("login-error").textContent = "";
    $("password").value = "";
    const finish = () => {
      form.removeEventListener("submit", onSubmit);
      $("login-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (widgetId !== null && turnstile) {
        turnstile.remove(widgetId);
        widgetId = null;
      }
      dialog.close();
    };
    const onSubmit = async (event) => {
      event.preventDefault();
      if (!captchaToken) return;
      $("login-submit").disabled = true;
      try {
        await client.login({ userName: $("user").value, password: $("password").value, captchaToken });
        finish();
        setStatus(`Signed in as ${$("user").value}`);
        resolve();
      } catch (e) {
        $("login-error").textContent =
          e instanceof LoginError && e.status === 401
            ? "Sign-in failed: check the user name and password."
            : e instanceof LoginError && e.retryAfter !== null
              ? `The gateway is busy; try again in ${e.retryAfter} s.`
              : `Sign-in failed: ${e.message}`;
        $("password").value = "";
        if (turnstile && widgetId !== null) {
          captchaToken = null;
          turnstile.reset(widgetId);
        }
      }
    };
    const onCancel = (event) => {
      event.preventDefault();
      finish();
      setStatus("Sign-in cancelled");
      reject(new Error("sign-in cancelled"));
    };
    form.addEventListener("submit", onSubmit);
    $("login-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    renderWidget();
    $("user").focus();
  });
}

function show(section, state, lines) {
  const el = $(section);
  el.dataset.state = state;
  const list = el.querySelector(".result");
  list.replaceChildren(
    ...lines.map((line) => {
      const li = document.createElement("li");
      li.textContent = line; // never innerHTML: the data comes from the network
      return li;
    }),
  );
}

async function load(section, path) {
  show(section, "loading", ["…"]);
  try {
    const res = await client.authFetch(path, { headers: { Accept: "application/json" } });
    if (!res.ok) {
      show(section, "error", [`HTTP ${res.status}`]);
      return;
    }
    const data = await res.json();
    const lines = [`${data.method ?? "GET"} ${data.path ?? path}`];
    for (const [name, values] of Object.entries(data.identity ?? {})) {
      lines.push(`${name}: ${[].concat(values).join(", ")}`);
    }
    show(section, "ok", lines);
  } catch (e) {
    show(section, "error", [`Error: ${e.message}`]);
  }
}

async function refreshAll() {
  // Three requests at once: after an expiry they share one sign-in.
  await Promise.all(SECTIONS.map(([section, path]) => load(section, path)));
  document.body.dataset.loads = String(Number(document.body.dataset.loads ?? 0) + 1);
}

async function start() {
  $("refresh").addEventListener("click", refreshAll);
  $("logout").addEventListener("click", async () => {
    await client.logout();
    SECTIONS.forEach(([section]) => show(section, "idle", []));
    setStatus("Signed out");
  });
  try {
    settings = await loadSettings();
    turnstile = await loadTurnstile(settings.turnstile.scriptUrl);
  } catch (e) {
    setStatus(`Cannot start: ${e.message}`);
  }
  document.body.dataset.ready = "true";
  setStatus("Loading…");
  await refreshAll();
}

start();
