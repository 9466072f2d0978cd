// Unit tests of gateway-client.js with node's built-in runner: `node --test web/gateway-client.test.mjs`
// (run by `cargo test --test web_client`). A scripted fetch stands in for the gateway.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createGatewayClient,
  isGatewayLoginRequired,
  LoginError,
  LoginRequiredError,
  ReplayError,
} from "./gateway-client.js";

const BASE = "http://gw.test";
const gatewayNo = () => new Response(null, { status: 401, headers: { "Gateway-Auth": "required" } });
const upstreamNo = () =>
  new Response("nope", { status: 401, headers: { "WWW-Authenticate": 'Bearer realm="app"' } });
const ok = (body) => new Response(JSON.stringify(body), { status: 200 });

// A fake gateway: tokens in `valid` pass; POST /api/Auth issues "t1", "t2", ...
function fakeGateway({ valid = new Set(), loginStatus = 200 } = {}) {
  const calls = [];
  let issued = 0;
  const fetch = async (input, init = {}) => {
    const req = new Request(input, init);
    const body = req.body ? await req.text() : null;
    const auth = req.headers.get("authorization");
    calls.push({ method: req.method, url: req.url, auth, body });
    const path = new URL(req.url).pathname;
    if (path === "/api/Auth" && req.method === "POST") {
      if (loginStatus !== 200) return new Response(null, { status: loginStatus, headers: { "Retry-After": "3" } });
      const token = `t${++issued}`;
      valid.add(token);
      return ok({ token });
    }
    if (path === "/api/Auth/logout") return new Response(null, { status: 404 });
    if (path === "/upstream-401") return upstreamNo();
    if (!auth || !valid.has(auth.replace(/^Bearer /, ""))) return gatewayNo();
    return ok({ path, body });
  };
  return { fetch, calls, valid };
}

const creds = { userName: "demo", password: "pw", captchaToken: "XXXX.DUMMY.TOKEN.XXXX" };

test("login posts the API's field names and authFetch sends the token", async () => {
  const gw = fakeGateway();
  const client = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch });
  await client.login(creds);
  assert.deepEqual(JSON.parse(gw.calls[0].body), {
    UserName: "demo",
    Password: "pw",
    CaptchaToken: "XXXX.DUMMY.TOKEN.XXXX",
  });
  const res = await client.authFetch("/api/items");
  assert.equal(res.status, 200);
  assert.equal(gw.calls[1].url, `${BASE}/api/items`);
  assert.equal(gw.calls[1].auth, "Bearer t1");
});

test("a refused login rejects with its status and Retry-After", async () => {
  const gw = fakeGateway({ loginStatus: 429 });
  const client = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch });
  await assert.rejects(client.login(creds), (e) => e instanceof LoginError && e.status === 429 && e.retryAfter === 3);
  assert.equal(client.isLoggedIn(), false);
});

test("concurrent gateway 401s share one re-login, then each request is retried once", async () => {
  const gw = fakeGateway();
  let hooks = 0;
  let release;
  const gate = new Promise((r) => (release = r));
  const client = createGatewayClient({
    baseUrl: BASE,
    fetch: gw.fetch,
    onLoginRequired: async () => {
      hooks++;
      await gate; // the user is still typing
      await client.login(creds);
    },
  });
  await client.login(creds);
  gw.valid.clear(); // t1 expires
  const pending = ["/a", "/b", "/c"].map((p) => client.authFetch(p));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(hooks, 1);
  release();
  const results = await Promise.all(pending);
  assert.deepEqual(results.map((r) => r.status), [200, 200, 200]);
  assert.equal(hooks, 1);
  const retried = gw.calls.filter((c) => c.auth === "Bearer t2").map((c) => new URL(c.url).pathname);
  assert.deepEqual(retried.sort(), ["/a", "/b", "/c"]);
  assert.equal(gw.calls.filter((c) => c.url.endsWith("/api/Auth")).length, 2);
});

test("a failed re-login rejects every waiting request, and the next 401 tries again", async () => {
  const gw = fakeGateway();
  let hooks = 0;
  const client = createGatewayClient({
    baseUrl: BASE,
    fetch: gw.fetch,
    onLoginRequired: async () => {
      hooks++;
      if (hooks === 1) throw new Error("user closed the dialog");
      await client.login(creds);
    },
  });
  const results = await Promise.allSettled(["/a", "/b", "/c"].map((p) => client.authFetch(p)));
  assert.equal(hooks, 1);
  for (const r of results) {
    assert.equal(r.status, "rejected");
    assert.ok(r.reason instanceof LoginRequiredError);
    assert.equal(r.reason.cause.message, "user closed the dialog");
  }
  const again = await client.authFetch("/a");
  assert.equal(again.status, 200);
  assert.equal(hooks, 2);
});

test("a hook resolving false is a cancel; a hook that logs nobody in is a failure", async () => {
  const gw = fakeGateway();
  const cancelled = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch, onLoginRequired: () => false });
  await assert.rejects(cancelled.authFetch("/a"), /cancelled/);
  const idle = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch, onLoginRequired: () => undefined });
  await assert.rejects(idle.authFetch("/a"), /without a token/);
  const none = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch });
  await assert.rejects(none.authFetch("/a"), LoginRequiredError);
});

test("an upstream's own 401 is returned as it is, without a re-login", async () => {
  const gw = fakeGateway();
  let hooks = 0;
  const client = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch, onLoginRequired: () => hooks++ });
  await client.login(creds);
  const res = await client.authFetch("/upstream-401");
  assert.equal(res.status, 401);
  assert.equal(await res.text(), "nope");
  assert.equal(hooks, 0);
  assert.equal(isGatewayLoginRequired(res), false);
  assert.equal(client.getToken(), "t1");
});

test("the retry happens once: a second gateway 401 is returned to the caller", async () => {
  const calls = [];
  const fetch = async (input, init) => {
    calls.push(new Request(input, init).headers.get("authorization"));
    return gatewayNo();
  };
  let token = 0;
  const client = createGatewayClient({
    baseUrl: BASE,
    fetch: async (input, init) => {
      if (String(input).endsWith("/api/Auth")) return ok({ token: `t${++token}` });
      return fetch(input, init);
    },
    onLoginRequired: () => client.login(creds),
  });
  const res = await client.authFetch("/a");
  assert.equal(res.status, 401);
  assert.deepEqual(calls, [null, "Bearer t1"]);
});

test("a stream body is not replayed: the request rejects with a ReplayError and no re-login starts", async () => {
  const gw = fakeGateway();
  let hooks = 0;
  const client = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch, onLoginRequired: () => hooks++ });
  const body = new ReadableStream({
    start(c) {
      c.enqueue(new TextEncoder().encode("streamed"));
      c.close();
    },
  });
  await assert.rejects(client.authFetch("/upload", { method: "POST", body, duplex: "half" }), ReplayError);
  assert.equal(hooks, 0);
  assert.equal(gw.calls.length, 1);
});

test("string and Request bodies are replayed on the retry", async () => {
  const gw = fakeGateway();
  const client = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch, onLoginRequired: () => client.login(creds) });
  const a = await client.authFetch("/a", { method: "POST", body: "payload-a", headers: { "X-Kept": "1" } });
  assert.equal((await a.json()).body, "payload-a");
  gw.valid.clear();
  const req = new Request(`${BASE}/b`, { method: "PUT", body: "payload-b" });
  const b = await client.authFetch(req);
  assert.equal((await b.json()).body, "payload-b");
  const sent = gw.calls.filter((c) => c.url.endsWith("/b"));
  assert.deepEqual(sent.map((c) => c.body), ["payload-b", "payload-b"]);
});

test("a request that started before a finished re-login retries with the new token at once", async () => {
  const gw = fakeGateway();
  let hooks = 0;
  const client = createGatewayClient({
    baseUrl: BASE,
    fetch: gw.fetch,
    onLoginRequired: async () => {
      hooks++;
      await client.login(creds);
    },
  });
  await client.authFetch("/first"); // logs in as t1 through the hook
  gw.valid.delete("t1");
  // Both carry t1; the first to see the 401 logs in, the other finds t2 already there.
  const [x, y] = await Promise.all([client.authFetch("/x"), client.authFetch("/y")]);
  assert.deepEqual([x.status, y.status], [200, 200]);
  assert.equal(hooks, 2);
});

test("logout forgets the token even when the gateway has no logout endpoint (404)", async () => {
  const gw = fakeGateway();
  const client = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch });
  await client.login(creds);
  assert.equal(await client.logout(), false);
  assert.equal(client.getToken(), null);
  const last = gw.calls.at(-1);
  assert.equal(last.method, "POST");
  assert.equal(new URL(last.url).pathname, "/api/Auth/logout");
  assert.equal(last.auth, "Bearer t1");
  const offline = createGatewayClient({
    baseUrl: BASE,
    fetch: async (input, init) => {
      if (String(input).endsWith("/logout")) throw new TypeError("network down");
      return gw.fetch(input, init);
    },
  });
  await offline.login(creds);
  assert.equal(await offline.logout(), false);
  assert.equal(offline.isLoggedIn(), false);
});

test("session storage keeps the token in sessionStorage and never touches localStorage", async () => {
  const items = new Map();
  globalThis.sessionStorage = {
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k),
  };
  Object.defineProperty(globalThis, "localStorage", {
    configurable: true,
    get() {
      throw new Error("localStorage must never be used");
    },
  });
  try {
    const gw = fakeGateway();
    const client = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch, storage: "session" });
    await client.login(creds);
    assert.equal(items.get("gateway.token"), "t1");
    // A second client (the tab after a reload) finds it.
    const reloaded = createGatewayClient({ baseUrl: BASE, fetch: gw.fetch, storage: "session" });
    assert.equal(reloaded.getToken(), "t1");
    await reloaded.logout();
    assert.equal(items.has("gateway.token"), false);
    assert.throws(() => createGatewayClient({ storage: "local" }), /memory' or 'session/);
  } finally {
    delete globalThis.sessionStorage;
    delete globalThis.localStorage;
  }
});
