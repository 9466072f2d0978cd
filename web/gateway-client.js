// gateway-client.js: the browser client of the authentication gateway. One dependency-free ES module,
// served by the gateway at /.gateway/client.js and usable from a bundler (types: gateway-client.d.ts).
//
// It logs in (POST /api/Auth), keeps the token in memory (or sessionStorage, never localStorage), adds it
// to requests, and is the "401 interceptor" the API asks clients to build: when the *gateway* answers
// 401 (it marks its own 401s with `Gateway-Auth: required`; an upstream's 401 never carries it), the app's
// onLoginRequired() hook runs once for all requests waiting on it, and each request is retried once.

/** The header the gateway puts on its own 401s, and its value. */
export const MARKER_HEADER = "Gateway-Auth";
const MARKER_VALUE = "required";
const DEFAULT_STORAGE_KEY = "gateway.token";

/** The login endpoint refused (status 401: wrong credentials or captcha; 429/503: try again later). */
export class LoginError extends Error {
  constructor(status, retryAfter) {
    super(
      status === 401
        ? "login refused (user name, password or captcha)"
        : `login failed with HTTP ${status}`,
    );
    this.name = "LoginError";
    this.status = status;
    /** Seconds to wait before trying again (429 and 503), or null. */
    this.retryAfter = retryAfter;
  }
}

/** The gateway wants a new login and it did not happen (the hook failed, was cancelled or is missing). */
export class LoginRequiredError extends Error {
  constructor(message, cause) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "LoginRequiredError";
  }
}

/** A request the gateway refused for want of a login, whose body (a stream) cannot be sent again. */
export class ReplayError extends Error {
  constructor() {
    super(
      "the gateway asked for a new login, and this request's body is a stream that cannot be sent again: " +
        "log in and repeat the request (or send a string, Blob, FormData or ArrayBuffer body)",
    );
    this.name = "ReplayError";
  }
}

/** True for a 401 the gateway itself answered (as opposed to an upstream's own 401). */
export function isGatewayLoginRequired(response) {
  if (response.status !== 401) return false;
  const v = response.headers.get(MARKER_HEADER);
  return v !== null && v.trim().toLowerCase() === MARKER_VALUE;
}

function isStream(body) {
  return typeof ReadableStream !== "undefined" && body instanceof ReadableStream;
}

function tokenStore(kind, key) {
  if (kind === "memory") {
    let value = null;
    return { get: () => value, set: (v) => { value = v; } };
  }
  if (kind === "session") {
    const s = globalThis.sessionStorage;
    if (!s) throw new Error("storage 'session' needs sessionStorage, which this environment lacks");
    return {
      get: () => s.getItem(key),
      set: (v) => (v === null ? s.removeItem(key) : s.setItem(key, v)),
    };
  }
  // localStorage is deliberately not offered: it outlives the tab and is readable by any script on the origin.
  throw new Error(`storage must be 'memory' or 'session', not ${JSON.stringify(kind)}`);
}

/**
 * Makes a client. Options: baseUrl (the gateway's origin, default: this page's), loginPath ("/api/Auth"),
 * logoutPath ("/api/Auth/logout"), storage ("memory" | "session"), onLoginRequired (async hook: show the
 * login form, call client.login(), resolve when logged in; reject or resolve false to give up), fetch.
 */
export function createGatewayClient(options = {}) {
  const baseUrl = (options.baseUrl ?? "").replace(/\/+$/, "");
  const loginPath = options.loginPath ?? "/api/Auth";
  const logoutPath = options.logoutPath ?? "/api/Auth/logout";
  const onLoginRequired = options.onLoginRequired;
  const fetchImpl = options.fetch ?? ((...args) => globalThis.fetch(...args));
  const store = tokenStore(options.storage ?? "memory", options.storageKey ?? DEFAULT_STORAGE_KEY);
  // The one re-login in progress, shared by every request that needs it (single flight).
  let relogin = null;

  const resolve = (input) =>
    typeof input === "string" && input.startsWith("/") && !input.startsWith("//") ? baseUrl + input : input;

  async function login({ userName, password, captchaToken }) {
    const res = await fetchImpl(resolve(loginPath), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ UserName: userName, Password: password, CaptchaToken: captchaToken }),
    });
    if (res.status !== 200) {
      const wait = Number.parseInt(res.headers.get("Retry-After") ?? "", 10);
      throw new LoginError(res.status, Number.isFinite(wait) ? wait : null);
    }
    const body = await res.json();
    if (typeof body?.token !== "string" || body.token === "") {
      throw new LoginError(res.status, null);
    }
    store.set(body.token);
  }

  /** Forgets the token here first, then asks the gateway to revoke it; resolves true if it confirmed. */
  async function logout() {
    const token = store.get();
    store.set(null);
    if (!token) return false;
    try {
      // A gateway without the endpoint answers 404: the token is still gone from this page.
      const res = await fetchImpl(resolve(logoutPath), {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
      });
      return res.ok;
    } catch {
      return false;
    }
  }

  // Waits for a token newer than the one a refused request carried, starting the re-login if none is
  // running. Rejects every waiter when the hook fails or gives up.
  function newTokenAfter(refused) {
    const current = store.get();
    if (current !== null && current !== refused) return Promise.resolve();
    if (relogin === null) {
      if (current === refused) store.set(null);
      relogin = (async () => {
        try {
          if (typeof onLoginRequired !== "function") {
            throw new LoginRequiredError("the gateway asked for a login and no onLoginRequired hook is set");
          }
          let outcome;
          try {
            outcome = await onLoginRequired();
          } catch (e) {
            throw new LoginRequiredError("the re-login failed or was cancelled", e);
          }
          if (outcome === false) throw new LoginRequiredError("the re-login was cancelled");
          if (store.get() === null) throw new LoginRequiredError("the re-login ended without a token");
        } finally {
          relogin = null;
        }
      })();
    }
    return relogin;
  }

  /** fetch() with the token; on the gateway's 401, one shared re-login and one retry. */
  async function authFetch(input, init = {}) {
    const isRequest = typeof Request !== "undefined" && input instanceof Request;
    const target = resolve(input);
    const replayable = !isStream(init.body);
    // A Request's own body is read by the first send; a clone made now keeps a copy for the retry.
    const spare = isRequest && replayable ? input.clone() : null;
    const headersWith = (token) => {
      const h = new Headers(isRequest ? input.headers : undefined);
      new Headers(init.headers ?? undefined).forEach((v, k) => h.set(k, v));
      if (token) h.set("Authorization", `Bearer ${token}`);
      else h.delete("Authorization");
      return h;
    };
    const sent = store.get();
    const first = await fetchImpl(target, { ...init, headers: headersWith(sent) });
    if (!isGatewayLoginRequired(first)) return first;
    if (!replayable) throw new ReplayError();
    await newTokenAfter(sent);
    return fetchImpl(spare ?? target, { ...init, headers: headersWith(store.get()) });
  }

  return {
    login,
    logout,
    authFetch,
    /** The current token, or null (for a WebSocket URL or a header the app sets itself). */
    getToken: () => store.get(),
    /** True while a token is held (it may have expired; the next authFetch finds out). */
    isLoggedIn: () => store.get() !== null,
  };
}
