// A scripted Plone + sidecar for the tests, on one free port:
// - GET /++api++/@alerts-token answers {token, websocket_url, expires} for a
//   Bearer JWT it knows, 401 otherwise (Plone's @alerts-token);
// - /ws is a real WebSocket server (ws) speaking the sidecar's protocol: it
//   picks the eduhub-alerts.v1 subprotocol, sends `welcome`, answers
//   `subscribe` with `subscribed`, and lets the test push `alert` frames.
import http from 'node:http';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';

export async function startSidecar({ users = { 'jwt-jane': 'jane', 'jwt-jane-2': 'jane' } } = {}) {
  const server = http.createServer();
  const wss = new WebSocketServer({
    server,
    path: '/ws',
    handleProtocols: (protocols) =>
      [...protocols].find((p) => p === 'eduhub-alerts.v1') ?? false,
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${server.address().port}`;
  const sidecar = {
    origin,
    tokenRequests: [],
    connections: [],
    close: () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
    /** Push an alert frame to every open connection. */
    broadcast(id, alert) {
      for (const c of sidecar.connections) {
        if (c.closed === null) c.socket.send(JSON.stringify({ type: 'alert', id, alert }));
      }
    },
    open: () => sidecar.connections.filter((c) => c.closed === null),
  };

  server.on('request', (request, response) => {
    const authorization = request.headers.authorization || null;
    sidecar.tokenRequests.push({ method: request.method, url: request.url, authorization });
    if (request.url !== '/++api++/@alerts-token' || request.method !== 'GET') {
      response.writeHead(404).end();
      return;
    }
    const jwt = authorization?.startsWith('Bearer ') ? authorization.slice(7) : null;
    if (!users[jwt]) {
      response.writeHead(401, { 'Content-Type': 'application/json' });
      response.end(JSON.stringify({ type: 'Unauthorized' }));
      return;
    }
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.end(
      JSON.stringify({
        token: `sidecar-token-for-${jwt}`,
        websocket_url: `ws://127.0.0.1:${server.address().port}/ws`,
        expires: new Date(Date.now() + 600000).toISOString(),
      }),
    );
  });

  wss.on('connection', (socket, request) => {
    const protocols = request.headers['sec-websocket-protocol'].split(',').map((p) => p.trim());
    const bearer = protocols.find((p) => p.startsWith('bearer.'));
    const connection = {
      socket,
      origin: request.headers.origin,
      protocol: socket.protocol,
      token: bearer?.slice('bearer.'.length),
      frames: [],
      closed: null,
    };
    sidecar.connections.push(connection);
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      connection.frames.push(frame);
      if (frame.type === 'subscribe') {
        socket.send(JSON.stringify({ type: 'subscribed', topics: [] }));
      }
    });
    socket.on('close', (code) => {
      connection.closed = code;
    });
    socket.send(JSON.stringify({ type: 'welcome', connection_id: `c${sidecar.connections.length}`, user: 'jane', heartbeat: 25 }));
  });
  return sidecar;
}
