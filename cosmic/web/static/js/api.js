// REST: accounts and tokens (docs/api.rst), leaderboards, the rules table.

const API = "/api/v1";
// sessionStorage, not localStorage: each tab rotates its own refresh token,
// so two tabs never present the same one (a reused refresh token revokes
// the whole family, signing both out).
const STORE = window.sessionStorage;
const KEY = "cosmic.session";
const EARLY = 30; // seconds before expiry an access token is refreshed

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

async function call(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "NETWORK", `cannot reach the server (${err.message})`);
  }
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // A proxy's HTML error page: reported by status below.
  }
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    const { code, message, ...details } = error;
    throw new ApiError(response.status, code || `HTTP_${response.status}`, message || response.statusText, details);
  }
  return payload;
}

/** Who is logged in, and a valid access token on demand. */
export class Session {
  constructor() {
    this.access = null;
    this.accessExpiry = 0; // local clock, seconds
    this.refreshing = null;
    const saved = JSON.parse(STORE.getItem(KEY) || "null");
    this.refreshToken = saved ? saved.refresh_token : null;
    this.account = saved ? saved.account : null;
  }

  get loggedIn() {
    return Boolean(this.refreshToken);
  }

  take(answer) {
    // Expiry from expires_in on our own clock: immune to clock skew.
    this.access = answer.access_token;
    this.accessExpiry = Date.now() / 1000 + answer.expires_in;
    this.refreshToken = answer.refresh_token;
    this.account = answer.account;
    STORE.setItem(KEY, JSON.stringify({ refresh_token: this.refreshToken, account: this.account }));
    return answer;
  }

  async register(username, password) {
    await call("POST", "/auth/register", { username, password });
    return this.login(username, password);
  }

  async login(username, password) {
    return this.take(await call("POST", "/auth/login", { username, password }));
  }

  /** A fresh session from the refresh token (one request at a time). */
  refresh() {
    if (!this.refreshing) {
      const token = this.refreshToken;
      this.refreshing = call("POST", "/auth/refresh", { refresh_token: token })
        .then((answer) => this.take(answer))
        .catch((err) => {
          if (err.status === 401 || err.status === 422) this.forget();
          throw err;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  /** An access token good for at least EARLY seconds. */
  async token() {
    if (!this.refreshToken) throw new ApiError(401, "AUTH_LOGGED_OUT", "log in first");
    if (!this.access || this.accessExpiry - Date.now() / 1000 < EARLY) await this.refresh();
    return this.access;
  }

  expire() {
    this.access = null;
  }

  async logout() {
    const token = this.refreshToken;
    this.forget();
    if (token) await call("POST", "/auth/logout", { refresh_token: token }).catch(() => {});
  }

  forget() {
    this.access = null;
    this.refreshToken = null;
    this.account = null;
    STORE.removeItem(KEY);
  }
}

export function leaderboard(kind, limit = 10) {
  return call("GET", `/leaderboards/${encodeURIComponent(kind)}?limit=${limit}`);
}

/** The rules table served beside the assets (costs, caps, research, upgrades). */
export async function fetchRules() {
  const response = await fetch(new URL("../rules.json", import.meta.url));
  if (!response.ok) throw new Error(`rules.json: HTTP ${response.status}`);
  return response.json();
}
