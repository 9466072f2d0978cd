// Types of gateway-client.js (served at /.gateway/client.d.ts).

/** The header the gateway puts on its own 401s (`Gateway-Auth: required`). */
export declare const MARKER_HEADER: "Gateway-Auth";

/** The login endpoint refused: 401 (user name, password or captcha), 429 or 503 (try again later). */
export declare class LoginError extends Error {
  readonly name: "LoginError";
  readonly status: number;
  /** Seconds to wait before trying again (429 and 503), or null. */
  readonly retryAfter: number | null;
}

/** The gateway wants a new login and it did not happen (the hook failed, was cancelled or is missing). */
export declare class LoginRequiredError extends Error {
  readonly name: "LoginRequiredError";
}

/** The gateway asked for a new login and the request's body was a stream, which cannot be sent again. */
export declare class ReplayError extends Error {
  readonly name: "ReplayError";
}

export interface Credentials {
  userName: string;
  password: string;
  /** The token the Turnstile widget produced; every login needs a fresh one. */
  captchaToken: string;
}

export interface GatewayClientOptions {
  /** The gateway's origin, e.g. "https://auth.example.com"; default: the page's own origin. */
  baseUrl?: string;
  /** Default "/api/Auth". */
  loginPath?: string;
  /** Default "/api/Auth/logout". */
  logoutPath?: string;
  /**
   * Where the token lives: "memory" (default; gone on reload, unreachable for other tabs) or "session"
   * (sessionStorage: survives a reload of this tab, readable by any script on the origin). Never localStorage.
   */
  storage?: "memory" | "session";
  /** sessionStorage key, default "gateway.token". */
  storageKey?: string;
  /**
   * Called once when the gateway asks for a (new) login, however many requests are waiting: show the login
   * form with a fresh Turnstile widget, call `client.login()`, and resolve once it succeeded. Reject, or
   * resolve `false`, to give up: every waiting request then rejects with a LoginRequiredError.
   */
  onLoginRequired?: () => Promise<unknown> | unknown;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

export interface GatewayClient {
  /** Logs in; rejects with a LoginError when refused. */
  login(credentials: Credentials): Promise<void>;
  /** Forgets the token, then asks the gateway to revoke it; resolves true if the gateway confirmed. */
  logout(): Promise<boolean>;
  /**
   * fetch() with `Authorization: Bearer <token>`. On the gateway's own 401 (with `Gateway-Auth`), waits for
   * the one shared re-login and retries once; an upstream's 401 is returned as it is.
   */
  authFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** The current token, or null. */
  getToken(): string | null;
  /** True while a token is held (it may have expired; the next authFetch finds out). */
  isLoggedIn(): boolean;
}

/** True for a 401 the gateway itself answered (as opposed to an upstream's own 401). */
export declare function isGatewayLoginRequired(response: Response): boolean;

export declare function createGatewayClient(options?: GatewayClientOptions): GatewayClient;
