/**
 * EduHub Alerts client: one small, framework-free ES module used as it is by
 * Classic UI (no build step) and by the Volto add-on.
 *
 *   import { AlertsClient } from "@eduhub/alerts-client";
 *   const client = new AlertsClient({ tokenUrl: "/Plone/@alerts-token", topics: ["workflow.*"] });
 *   client.addEventListener("alert", (event) => show(event.detail.alert));
 *   client.addEventListener("status", (event) => indicator(event.detail.status));
 *   client.start();
 *   // later: client.close();
 *
 * What it does for you: fetches a token from Plone's @alerts-token, connects
 * to the sidecar's WebSocket (the token travels as a `bearer.<token>`
 * subprotocol, never in a URL), subscribes, sends a fresh token before the
 * old one expires, reconnects with exponential back-off and full jitter, and
 * resumes with `since` so that nothing sent while it was away is missed (and
 * nothing is shown twice).
 *
 * Events (an EventTarget):
 * - "alert":  detail {id, alert} — id is the stream position, alert the v1 alert.
 * - "status": detail {status, ...} — status is one of "connecting", "open",
 *   "reconnecting", "closed", "muted" (the user switched live alerts off in
 *   their preferences), "unauthorized" (no token: the user is logged
 *   out or may not receive alerts) or "forbidden" (this page's origin is not
 *   allowed by the sidecar). "open" carries `recovered: false` when alerts
 *   missed while away were no longer all in the history.
 */

const PROTOCOL = "eduhub-alerts.v1";
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN_ORIGIN = 4403;
const CLOSE_TOO_MANY = 4429;
const REMEMBERED_IDS = 1000;
const DEFAULT_TOPICS = ["*", "*.*", "*.*.*"];

export class TokenError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Fetch `{token, websocket_url, expires}` from Plone with the page's session. */
export function fetchTokenFrom(tokenUrl, { headers = {}, fetch: doFetch = globalThis.fetch } = {}) {
  return async () => {
    const response = await doFetch(tokenUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json", ...headers },
    });
    if (!response.ok) {
      throw new TokenError(response.status, `@alerts-token answered ${response.status}`);
    }
    return response.json();
  };
}

/** Exponential back-off with full jitter: a random delay in [0, min(max, base * 2^attempt)]. */
export function backoffDelay(attempt, { base = 1000, max = 30000, random = Math.random } = {}) {
  return Math.floor(random() * Math.min(max, base * 2 ** attempt));
}

/** Stream ids ("<ms>-<seq>") in order. */
export function compareStreamIds(a, b) {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am - bm || as - bs;
}

export class AlertsClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} [options.tokenUrl] Plone's @alerts-token URL (or give fetchToken).
   * @param {() => Promise<{token, websocket_url, expires}>} [options.fetchToken]
   * @param {string[]} [options.topics] topic patterns, `*` for one segment (default: the
   *   `topics` of the @alerts-token answer, i.e. the site's control panel, else every topic
   *   of one to three segments).
   * @param {Function} [options.WebSocket] a WebSocket implementation (default: the browser's).
   * @param {number} [options.refreshMargin] ms before expiry to refresh the token (default 60 s).
   * @param {{base: number, max: number}} [options.backoff] reconnect back-off in ms.
   * @param {string} [options.since] stream id to resume from (e.g. kept in sessionStorage).
   */
  constructor({
    tokenUrl,
    fetchToken,
    topics = null,
    WebSocket: WebSocketImpl = globalThis.WebSocket,
    refreshMargin = 60000,
    backoff = { base: 1000, max: 30000 },
    since = null,
    random = Math.random,
  } = {}) {
    super();
    if (!fetchToken && !tokenUrl) throw new TypeError("AlertsClient needs tokenUrl or fetchToken");
    this.fetchToken = fetchToken || fetchTokenFrom(tokenUrl);
    this._topicsFromServer = topics === null;
    this.topics = topics === null ? [...DEFAULT_TOPICS] : [...topics];
    this.WebSocket = WebSocketImpl;
    this.refreshMargin = refreshMargin;
    this.backoff = backoff;
    this.random = random;
    this.lastId = since;
    this._lastIdGuessed = false;
    this.status = "closed";
    this._seen = new Set();
    this._attempt = 0;
    this._socket = null;
    this._timers = new Set();
    this._stopped = true;
  }

  /** Connect (again). Safe to call when already started. */
  start() {
    if (!this._stopped) return;
    this._stopped = false;
    this._connect();
  }

  /** Disconnect for good and cancel every timer. */
  close() {
    this._stopped = true;
    this._clearTimers();
    const socket = this._socket;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      if (socket.readyState === 0) {
        // Closing a socket still connecting aborts it (1006 on the server):
        // let the handshake finish, then say goodbye properly.
        socket.onopen = () => socket.close(1000, "client closed");
      } else {
        socket.close(1000, "client closed");
      }
      this._socket = null;
    }
    this._setStatus("closed");
  }

  /** Add topic patterns to this and every later connection. */
  subscribe(topics) {
    const added = topics.filter((topic) => !this.topics.includes(topic));
    this.topics.push(...added);
    if (added.length) this._send({ type: "subscribe", topics: added });
  }

  unsubscribe(topics) {
    this.topics = this.topics.filter((topic) => !topics.includes(topic));
    this._send({ type: "unsubscribe", topics });
  }

  // --- connection -----------------------------------------------------------

  async _connect() {
    this._setStatus(this._attempt ? "reconnecting" : "connecting");
    let info;
    try {
      info = await this.fetchToken();
    } catch (error) {
      if (this._stopped) return;
      if (error instanceof TokenError && (error.status === 401 || error.status === 403)) {
        this._stopped = true;
        this._setStatus("unauthorized", { reason: error.message });
        return;
      }
      this._retry();
      return;
    }
    if (this._stopped) return;
    if (info.muted) {
      // The user switched live alerts off (@alerts-preferences); start()
      // again once they switch them back on.
      this._stopped = true;
      this._setStatus("muted");
      return;
    }
    if (this._topicsFromServer && Array.isArray(info.topics)) {
      this.topics = [...info.topics];
      this._topicsFromServer = false; // later changes by subscribe() are the page's
    }
    const socket = new this.WebSocket(info.websocket_url, [PROTOCOL, `bearer.${info.token}`]);
    this._socket = socket;
    socket.onmessage = (event) => this._onMessage(socket, event.data);
    socket.onclose = (event) => this._onClose(socket, event.code, event.reason);
    socket.onerror = () => {}; // onclose follows with the code
    this._scheduleRefresh(info.expires);
  }

  _onMessage(socket, data) {
    if (socket !== this._socket) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case "welcome":
        this._send(this._subscribeFrame());
        break;
      case "subscribed":
        if (this.status !== "open") {
          this._attempt = 0;
          if (this.lastId === null) {
            // Nothing received yet: resume from about now (with a margin for
            // clock skew) should this connection drop before the first alert.
            this.lastId = `${Date.now() - 30000}`;
            this._lastIdGuessed = true;
          }
          // A guessed position may lie before a young stream's first entry:
          // "not recovered" then says nothing about alerts this page missed.
          const lost = frame.recovered === false && !this._resumedFromGuess;
          this._setStatus("open", lost ? { recovered: false } : {});
        }
        break;
      case "alert":
        this._onAlert(frame);
        break;
      case "refreshed":
        this._scheduleRefresh(frame.expires);
        break;
      case "error":
        if (frame.code === "unauthorized") this._reconnectNow();
        break;
      default:
        break;
    }
  }

  _onAlert(frame) {
    if (this._seen.has(frame.id)) return; // replay and live overlap after a reconnect
    this._seen.add(frame.id);
    if (this._seen.size > REMEMBERED_IDS) {
      this._seen.delete(this._seen.values().next().value);
    }
    if (this.lastId === null || this._lastIdGuessed || compareStreamIds(frame.id, this.lastId) > 0) {
      this.lastId = frame.id;
      this._lastIdGuessed = false;
    }
    this.dispatchEvent(new CustomEvent("alert", { detail: { id: frame.id, alert: frame.alert } }));
  }

  _onClose(socket, code, reason) {
    if (socket !== this._socket) return;
    this._socket = null;
    this._clearTimers();
    if (this._stopped) return;
    if (code === CLOSE_FORBIDDEN_ORIGIN) {
      this._stopped = true;
      this._setStatus("forbidden", { code, reason });
      return;
    }
    // 4401: the token expired or was refused: a new one comes with the retry.
    // 4429: too many connections or messages: the back-off slows us down.
    this._retry(code === CLOSE_TOO_MANY ? 2 : 0);
  }

  _retry(extraAttempts = 0) {
    const delay = backoffDelay(this._attempt + extraAttempts, { ...this.backoff, random: this.random });
    this._attempt += 1;
    this._setStatus("reconnecting", { delay });
    this._later(delay, () => this._connect());
  }

  _reconnectNow() {
    if (this._socket) this._socket.close(1000, "reconnecting with a new token");
  }

  // --- token refresh ----------------------------------------------------------

  _scheduleRefresh(expires) {
    const expiresAt = Date.parse(expires);
    if (Number.isNaN(expiresAt)) return;
    const delay = Math.max(0, expiresAt - Date.now() - this.refreshMargin);
    this._later(delay, async () => {
      try {
        const info = await this.fetchToken();
        this._send({ type: "refresh", token: info.token });
      } catch {
        // The server closes with 4401 at expiry; the reconnect fetches again.
      }
    });
  }

  // --- helpers ---------------------------------------------------------------

  _subscribeFrame() {
    this._resumedFromGuess = this._lastIdGuessed;
    const frame = { type: "subscribe", topics: this.topics };
    if (this.lastId !== null) frame.since = this.lastId;
    return frame;
  }

  _send(frame) {
    const socket = this._socket;
    if (socket && socket.readyState === 1) socket.send(JSON.stringify(frame));
  }

  _later(delay, callback) {
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      callback();
    }, delay);
    this._timers.add(timer);
  }

  _clearTimers() {
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.clear();
  }

  _setStatus(status, extra = {}) {
    this.status = status;
    this.dispatchEvent(new CustomEvent("status", { detail: { status, ...extra } }));
  }
}
