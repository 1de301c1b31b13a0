// The client against a scripted sidecar: a real WebSocket server (ws) on a
// free port, speaking the sidecar's protocol, so that subprotocols, close
// codes and reconnects are real. The sidecar itself and Plone are exercised
// from a browser in the end-to-end browser tests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { WebSocket, WebSocketServer } from "ws";

import { AlertsClient, TokenError, backoffDelay, compareStreamIds } from "../src/index.js";

const FAST = { base: 5, max: 20 };

/** A scripted sidecar: records what clients send, lets tests push frames. */
async function startSidecar() {
  const server = new WebSocketServer({
    port: 0,
    handleProtocols: (protocols) => [...protocols].find((p) => !p.startsWith("bearer.")) ?? false,
  });
  await once(server, "listening");
  const sidecar = {
    url: `ws://127.0.0.1:${server.address().port}/ws`,
    connections: [],
    received: [],
    waiters: [],
    close: () => new Promise((resolve) => {
      for (const c of server.clients) c.terminate();
      server.close(resolve);
    }),
    /** Resolve with the first message (from any connection) that matches. */
    next(predicate) {
      const found = sidecar.received.find(predicate);
      if (found) {
        sidecar.received.splice(sidecar.received.indexOf(found), 1);
        return Promise.resolve(found);
      }
      return new Promise((resolve) => sidecar.waiters.push({ predicate, resolve }));
    },
    connected(count) {
      return new Promise((resolve) => {
        const check = () => (sidecar.connections.length >= count ? resolve(sidecar.connections[count - 1]) : setTimeout(check, 2));
        check();
      });
    },
  };
  server.on("connection", (socket, request) => {
    const token = request.headers["sec-websocket-protocol"]
      .split(",").map((p) => p.trim()).find((p) => p.startsWith("bearer."));
    const connection = { socket, token: token?.slice("bearer.".length), protocol: socket.protocol };
    sidecar.connections.push(connection);
    socket.on("message", (data) => {
      const message = { connection, frame: JSON.parse(data.toString()) };
      const waiter = sidecar.waiters.find((w) => w.predicate(message));
      if (waiter) {
        sidecar.waiters.splice(sidecar.waiters.indexOf(waiter), 1);
        waiter.resolve(message);
      } else {
        sidecar.received.push(message);
      }
    });
    socket.send(JSON.stringify({ type: "welcome", connection_id: "c1", user: "jane", heartbeat: 25 }));
  });
  return sidecar;
}

function tokens(sidecar, { expiresIn = 600000, failWith = null } = {}) {
  let issued = 0;
  const fetchToken = async () => {
    if (failWith) throw new TokenError(failWith, `@alerts-token answered ${failWith}`);
    issued += 1;
    return {
      token: `token-${issued}`,
      websocket_url: sidecar.url,
      expires: new Date(Date.now() + expiresIn).toISOString(),
    };
  };
  fetchToken.count = () => issued;
  return fetchToken;
}

function events(client, type) {
  const seen = [];
  client.addEventListener(type, (event) => seen.push(event.detail));
  return seen;
}

function nextEvent(client, type, predicate = () => true) {
  return new Promise((resolve) => {
    const listener = (event) => {
      if (predicate(event.detail)) {
        client.removeEventListener(type, listener);
        resolve(event.detail);
      }
    };
    client.addEventListener(type, listener);
  });
}

const subscribeFrom = (connection) => (m) => m.connection === connection && m.frame.type === "subscribe";
const alertFrame = (id, title) => JSON.stringify({ type: "alert", id, alert: { id: `a${id}`, title } });

test("connects with the token as a subprotocol, subscribes, and emits alerts", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({ fetchToken: tokens(sidecar), topics: ["workflow.*"], WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  const statuses = events(client, "status");
  client.start();

  const connection = await sidecar.connected(1);
  assert.equal(connection.token, "token-1");
  assert.equal(connection.protocol, "eduhub-alerts.v1");
  const { frame } = await sidecar.next(subscribeFrom(connection));
  assert.deepEqual(frame, { type: "subscribe", topics: ["workflow.*"] });

  const opened = nextEvent(client, "status", (d) => d.status === "open");
  connection.socket.send(JSON.stringify({ type: "subscribed", topics: ["workflow.*"] }));
  await opened;
  const received = nextEvent(client, "alert");
  connection.socket.send(alertFrame("1700000000000-0", "Published: timetable"));
  const { id, alert } = await received;
  assert.equal(id, "1700000000000-0");
  assert.equal(alert.title, "Published: timetable");
  assert.deepEqual(statuses.map((s) => s.status), ["connecting", "open"]);
});

test("reconnects after the server goes away and resumes after the last alert, without repeats", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({ fetchToken: tokens(sidecar), topics: ["*.*"], WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  const alerts = events(client, "alert");
  client.start();

  const first = await sidecar.connected(1);
  await sidecar.next(subscribeFrom(first));
  first.socket.send(JSON.stringify({ type: "subscribed", topics: ["*.*"] }));
  const gotOne = nextEvent(client, "alert");
  first.socket.send(alertFrame("1700000000000-0", "one"));
  await gotOne;
  first.socket.close(1012, "service restart");

  const second = await sidecar.connected(2);
  const { frame } = await sidecar.next(subscribeFrom(second));
  assert.equal(frame.since, "1700000000000-0");
  // The replay overlaps what the client saw: it shows each alert once.
  const gotTwo = nextEvent(client, "alert", (d) => d.id === "1700000000001-0");
  second.socket.send(alertFrame("1700000000000-0", "one"));
  second.socket.send(alertFrame("1700000000001-0", "two"));
  second.socket.send(JSON.stringify({ type: "subscribed", topics: ["*.*"], recovered: true }));
  await gotTwo;
  assert.deepEqual(alerts.map((a) => a.alert.title), ["one", "two"]);
});

test("resumes from the connection time when no alert came before a disconnect", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({ fetchToken: tokens(sidecar), WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  client.start();
  const first = await sidecar.connected(1);
  await sidecar.next(subscribeFrom(first));
  const before = Date.now();
  first.socket.send(JSON.stringify({ type: "subscribed", topics: [] }));
  await nextEvent(client, "status", (d) => d.status === "open");
  first.socket.terminate();
  const second = await sidecar.connected(2);
  const { frame } = await sidecar.next(subscribeFrom(second));
  const sinceMs = Number(frame.since);
  assert.ok(sinceMs <= before && sinceMs > before - 60000, `since ${frame.since}`);
});

test("reports that missed alerts could not all be recovered", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({ fetchToken: tokens(sidecar), WebSocket, backoff: FAST, since: "1-0" });
  t.after(() => { client.close(); return sidecar.close(); });
  client.start();
  const connection = await sidecar.connected(1);
  const { frame } = await sidecar.next(subscribeFrom(connection));
  assert.equal(frame.since, "1-0");
  const opened = nextEvent(client, "status", (d) => d.status === "open");
  connection.socket.send(JSON.stringify({ type: "subscribed", topics: [], recovered: false }));
  assert.equal((await opened).recovered, false);
});

test("a refused or expired token (4401) is replaced on reconnect", async (t) => {
  const sidecar = await startSidecar();
  const fetchToken = tokens(sidecar);
  const client = new AlertsClient({ fetchToken, WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  client.start();
  const first = await sidecar.connected(1);
  first.socket.close(4401, "unauthorized: expired");
  const second = await sidecar.connected(2);
  assert.equal(second.token, "token-2");
});

test("sends a fresh token before the current one expires", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({
    fetchToken: tokens(sidecar, { expiresIn: 61000 }), refreshMargin: 60950, WebSocket, backoff: FAST,
  });
  t.after(() => { client.close(); return sidecar.close(); });
  client.start();
  const connection = await sidecar.connected(1);
  const { frame } = await sidecar.next((m) => m.frame.type === "refresh");
  assert.equal(frame.token, "token-2");
  assert.equal(sidecar.connections.length, 1); // refreshed in place, not reconnected
  assert.equal(connection.socket.readyState, WebSocket.OPEN);
});

test("a logged-out user gets status unauthorized and no connection", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({ fetchToken: tokens(sidecar, { failWith: 401 }), WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  const status = nextEvent(client, "status", (d) => d.status === "unauthorized");
  client.start();
  await status;
  assert.equal(sidecar.connections.length, 0);
});

test("a page whose origin the sidecar refuses (4403) stops trying", async (t) => {
  const sidecar = await startSidecar();
  const fetchToken = tokens(sidecar);
  const client = new AlertsClient({ fetchToken, WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  const forbidden = nextEvent(client, "status", (d) => d.status === "forbidden");
  client.start();
  const connection = await sidecar.connected(1);
  connection.socket.close(4403, "origin not allowed");
  await forbidden;
  assert.equal(fetchToken.count(), 1);
});

test("close() stops for good", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({ fetchToken: tokens(sidecar), WebSocket, backoff: FAST });
  t.after(() => sidecar.close());
  client.start();
  const connection = await sidecar.connected(1);
  const closed = once(connection.socket, "close");
  client.close();
  const [code] = await closed;
  assert.equal(code, 1000);
  assert.equal(client.status, "closed");
});

test("subscribe and unsubscribe reach an open connection", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({ fetchToken: tokens(sidecar), topics: ["manual"], WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  client.start();
  const connection = await sidecar.connected(1);
  await sidecar.next(subscribeFrom(connection));
  client.subscribe(["workflow.*", "manual"]);
  const { frame } = await sidecar.next(subscribeFrom(connection));
  assert.deepEqual(frame.topics, ["workflow.*"]);
  client.unsubscribe(["manual"]);
  const { frame: off } = await sidecar.next((m) => m.frame.type === "unsubscribe");
  assert.deepEqual(off.topics, ["manual"]);
  assert.deepEqual(client.topics, ["workflow.*"]);
});

test("back-off grows exponentially with full jitter, capped", () => {
  assert.equal(backoffDelay(0, { base: 1000, max: 30000, random: () => 0.999 }), 999);
  assert.equal(backoffDelay(3, { base: 1000, max: 30000, random: () => 0.5 }), 4000);
  assert.equal(backoffDelay(10, { base: 1000, max: 30000, random: () => 0.5 }), 15000);
  assert.equal(backoffDelay(4, { base: 1000, max: 30000, random: () => 0 }), 0);
});

test("stream ids compare by time, then sequence", () => {
  assert.ok(compareStreamIds("1700000000001-0", "1700000000000-9") > 0);
  assert.ok(compareStreamIds("1700000000000-2", "1700000000000-10") < 0);
  assert.equal(compareStreamIds("5-1", "5-1"), 0);
});

test("needs a token source", () => {
  assert.throws(() => new AlertsClient({}), /tokenUrl or fetchToken/);
});

test("fetchTokenFrom asks Plone with the page's session and reports refusals", async (t) => {
  const { createServer } = await import("node:http");
  const { fetchTokenFrom } = await import("../src/index.js");
  const seen = [];
  const server = createServer((request, response) => {
    seen.push(request.headers);
    if (request.url === "/Plone/@alerts-token") {
      response.writeHead(200, { "Content-Type": "application/json" });
      response.end(JSON.stringify({ token: "t", websocket_url: "ws://x/ws", expires: "2026-12-03T10:00:00Z" }));
    } else {
      response.writeHead(401).end();
    }
  });
  server.listen(0);
  await once(server, "listening");
  t.after(() => server.close());
  const base = `http://127.0.0.1:${server.address().port}`;
  const info = await fetchTokenFrom(`${base}/Plone/@alerts-token`, { headers: { Authorization: "Bearer volto" } })();
  assert.equal(info.token, "t");
  assert.equal(seen[0].accept, "application/json");
  assert.equal(seen[0].authorization, "Bearer volto");
  await assert.rejects(fetchTokenFrom(`${base}/Other/@alerts-token`)(), (error) => error.status === 401);
});

test("keeps retrying while Plone cannot hand out a token, then connects", async (t) => {
  const sidecar = await startSidecar();
  const working = tokens(sidecar);
  let failures = 2;
  const fetchToken = async () => {
    if (failures-- > 0) throw new TokenError(503, "@alerts-token answered 503");
    return working();
  };
  const client = new AlertsClient({ fetchToken, WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  const statuses = events(client, "status");
  client.start();
  await sidecar.connected(1);
  assert.deepEqual(statuses.map((s) => s.status).slice(0, 3), ["connecting", "reconnecting", "reconnecting"]);
});

test("an unauthorized refresh makes the client reconnect with a new token", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({ fetchToken: tokens(sidecar), WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  client.start();
  const first = await sidecar.connected(1);
  first.socket.send(JSON.stringify({ type: "error", code: "unauthorized", message: "token: expired" }));
  const second = await sidecar.connected(2);
  assert.equal(second.token, "token-2");
});

test("subscribes to the site's topics from the token answer unless told otherwise", async (t) => {
  const sidecar = await startSidecar();
  const base = tokens(sidecar);
  const fetchToken = async () => ({ ...(await base()), topics: ["workflow.*", "manual"] });
  const client = new AlertsClient({ fetchToken, WebSocket, backoff: FAST });
  const explicit = new AlertsClient({ fetchToken, topics: ["app.*"], WebSocket, backoff: FAST });
  t.after(() => { client.close(); explicit.close(); return sidecar.close(); });
  client.start();
  const first = await sidecar.connected(1);
  assert.deepEqual((await sidecar.next(subscribeFrom(first))).frame.topics, ["workflow.*", "manual"]);
  explicit.start();
  const second = await sidecar.connected(2);
  assert.deepEqual((await sidecar.next(subscribeFrom(second))).frame.topics, ["app.*"]);
});

test("a resume from a guessed position does not report lost alerts", async (t) => {
  const sidecar = await startSidecar();
  const client = new AlertsClient({ fetchToken: tokens(sidecar), WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  client.start();
  const first = await sidecar.connected(1);
  await sidecar.next(subscribeFrom(first));
  first.socket.send(JSON.stringify({ type: "subscribed", topics: [] }));
  await nextEvent(client, "status", (d) => d.status === "open");
  first.socket.terminate();
  const second = await sidecar.connected(2);
  await sidecar.next(subscribeFrom(second));
  const reopened = nextEvent(client, "status", (d) => d.status === "open");
  second.socket.send(JSON.stringify({ type: "subscribed", topics: [], recovered: false }));
  assert.equal((await reopened).recovered, undefined);
});

test("a user who muted live alerts is not connected until started again", async (t) => {
  const sidecar = await startSidecar();
  const base = tokens(sidecar);
  let muted = true;
  const fetchToken = async () => ({ ...(await base()), muted });
  const client = new AlertsClient({ fetchToken, WebSocket, backoff: FAST });
  t.after(() => { client.close(); return sidecar.close(); });
  const mutedStatus = nextEvent(client, "status", (d) => d.status === "muted");
  client.start();
  await mutedStatus;
  assert.equal(sidecar.connections.length, 0);
  muted = false;
  client.start();
  await sidecar.connected(1);
});
