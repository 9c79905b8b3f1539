// One WebSocket to /ws (cosmic.json.v1) that authenticates, resumes its
// session after a drop and reconnects by itself (docs/protocol.rst).

const SUBPROTOCOL = "cosmic.json.v1";
const HEARTBEAT_MS = 5000;
// The server broadcasts ~10 times a second: this long without a byte means
// the connection is dead even if the socket has not noticed yet.
const STALL_MS = 15000;
const REQUEST_MS = 15000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
// Closes after which reconnecting cannot help (another tab took the session
// over; the account is gone; too many failed authentications).
const FINAL = new Set(["WS_CONN_003", "WS_AUTH_006", "WS_AUTH_010"]);
const TOKEN_ERRORS = new Set(["WS_AUTH_001", "WS_AUTH_002", "WS_AUTH_003", "WS_AUTH_004", "WS_AUTH_005"]);

export class RequestError extends Error {
  constructor(data) {
    super(data.message || data.code);
    this.code = data.code;
    this.data = data;
  }
}

export class Connection {
  /**
   * session: api.Session (tokens); resumeSequence(): the last sequence applied
   * for the player's own garden; handlers: onMessage(type, data, id),
   * onState(state, detail), onAuthenticated(hello).
   */
  constructor(session, resumeSequence, handlers) {
    this.session = session;
    this.resumeSequence = resumeSequence;
    this.handlers = handlers;
    this.state = "offline";
    this.ws = null;
    this.resumeToken = null;
    this.pending = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.stopped = true;
    this.timers = { retry: null, heartbeat: null, stall: null };
    this.lastReason = null;
    this.latency = null;
    this.authTries = 0;
  }

  setState(state, detail = "") {
    this.state = state;
    this.handlers.onState(state, detail);
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timers.retry);
    this.resumeToken = null;
    if (this.ws) this.ws.close(1000, "bye");
    this.setState("offline");
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  open() {
    clearTimeout(this.timers.retry);
    this.setState(this.attempt === 0 && !this.resumeToken ? "connecting" : "reconnecting", this.lastReason || "");
    let ws;
    try {
      ws = new WebSocket(this.url(), [SUBPROTOCOL]);
    } catch (err) {
      this.lastReason = err.message;
      this.retry();
      return;
    }
    this.ws = ws;
    this.authTries = 0;
    ws.onopen = () => this.authenticate();
    ws.onmessage = (event) => this.received(event.data);
    ws.onclose = (event) => this.closed(ws, event);
    ws.onerror = () => {}; // onclose follows with the code
  }

  async authenticate() {
    const ws = this.ws;
    let token;
    try {
      token = await this.session.token();
    } catch (err) {
      if (err.status === 401 || err.status === 422) {
        // No usable refresh token: the player must log in again.
        this.stopped = true;
        ws.close(1000, "logged out");
        this.handlers.onLoggedOut(err);
      } else {
        this.lastReason = err.message; // the server is down or busy: try later
        ws.close(1000, "no token");
      }
      return;
    }
    if (ws !== this.ws || ws.readyState !== WebSocket.OPEN) return;
    const data = { token };
    const sequence = this.resumeSequence();
    if (this.resumeToken) {
      data.resume_token = this.resumeToken;
      if (sequence > 0) data.last_sequence = sequence;
    }
    this.authTries += 1;
    this.request("Authenticate", data).then(
      (hello) => this.authenticated(hello),
      (err) => this.authFailed(err),
    );
  }

  authenticated(hello) {
    this.resumeToken = hello.resume_token;
    this.attempt = 0;
    this.lastReason = null;
    this.setState("connected", hello.resumed ? "resumed" : "");
    this.handlers.onAuthenticated(hello);
    this.heartbeat();
  }

  authFailed(err) {
    if (!(err instanceof RequestError)) return; // the connection dropped: onclose retries
    if (TOKEN_ERRORS.has(err.code) && this.authTries < 2) {
      // Expired or refused access token: refresh over REST, then try again.
      this.session.expire();
      this.authenticate();
      return;
    }
    this.lastReason = err.message;
    if (this.ws) this.ws.close(1000, "authentication failed");
  }

  heartbeat() {
    clearTimeout(this.timers.heartbeat);
    if (this.state !== "connected") return;
    const sent = performance.now();
    this.request("Heartbeat", { client_time: Date.now() }).then(
      () => {
        this.latency = Math.round(performance.now() - sent);
        this.handlers.onState(this.state, `${this.latency} ms`);
      },
      () => {},
    );
    this.timers.heartbeat = setTimeout(() => this.heartbeat(), HEARTBEAT_MS);
  }

  watchdog() {
    clearTimeout(this.timers.stall);
    this.timers.stall = setTimeout(() => {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.lastReason = "no data from the server";
        this.ws.close(4000, "stalled");
      }
    }, STALL_MS);
  }

  received(text) {
    this.watchdog();
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    const { type, data, id } = message;
    if (type === "Error" && data && FINAL.has(data.code)) this.finalCode = data.code;
    if (type === "Error" && data && !data.recoverable) this.lastReason = data.message;
    this.handlers.onMessage(type, data || {}, id);
    if (id !== undefined && this.pending.has(id)) {
      const { resolve, reject, timer } = this.pending.get(id);
      this.pending.delete(id);
      clearTimeout(timer);
      if (type === "Error") reject(new RequestError(data));
      else resolve(type === "CommandResult" ? data.result : data, type);
    }
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearTimeout(this.timers.heartbeat);
    clearTimeout(this.timers.stall);
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new Error("connection lost"));
    }
    this.pending.clear();
    if (this.stopped) return;
    const final = this.finalCode;
    this.finalCode = null;
    if (final) {
      this.stopped = true;
      this.resumeToken = null;
      this.setState("closed", this.lastReason || event.reason || final);
      return;
    }
    if (!this.lastReason) this.lastReason = event.reason || `closed (${event.code})`;
    this.retry();
  }

  retry() {
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.setState("reconnecting", this.lastReason || "");
    // Jitter spreads a crowd of clients dropped at once (a restart).
    this.timers.retry = setTimeout(() => this.open(), delay * (0.75 + Math.random() / 2));
  }

  send(type, data) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ type, data }));
    return true;
  }

  /** Send with an id; resolves with the answer (a CommandResult's result). */
  request(type, data = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error("not connected"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${type}: no answer`));
      }, REQUEST_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ type, data, id }));
    });
  }
}
