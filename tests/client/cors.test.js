// CORS and the origin allow-list (FRONTEND_URL): refused origins get 403 {"error":"Origin not
// allowed"} on REST, preflights and every Socket.IO transport; allowed origins get CORS headers;
// requests without Origin pass; FRONTEND_URL=* echoes the caller's origin.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { TRANSPORTS, awaitWebSocket, connect, startServer } from './helpers.js';

const ALLOWED = 'http://allowed.test';
const SECOND = 'https://second.test:8443';
const EVIL = 'http://evil.test';
const HANDSHAKE = '/socket.io/?EIO=4&transport=polling';

/**
 * A raw WebSocket upgrade request on `pathname`; resolves `{status, body}` of a refusal, or
 * `{status: 101}` if the server upgraded.
 */
function upgrade(url, pathname, origin) {
  return new Promise((resolve, reject) => {
    const req = request(url + pathname, {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        ...(origin ? { Origin: origin } : {}),
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function assertRefused(res, what) {
  assert.equal(res.status, 403, what);
  assert.deepEqual(res.body, { error: 'Origin not allowed' }, what);
  assert.equal(res.headers.get('access-control-allow-origin'), null, `${what}: no ACAO header`);
}

describe('CORS with FRONTEND_URL=http://allowed.test,https://second.test:8443', () => {
  let server;
  before(async () => {
    server = await startServer({ FRONTEND_URL: `${ALLOWED},${SECOND}` });
  });
  after(() => server?.stop());

  it('refuses a polling handshake from another origin with 403', async () => {
    assertRefused(await server.http('GET', HANDSHAKE, { headers: { Origin: EVIL } }), 'handshake');
  });

  it('refuses a later polling request from another origin', async () => {
    const open = await server.http('GET', HANDSHAKE);
    assert.equal(open.status, 200);
    const { sid } = JSON.parse(open.body.slice(1)); // Engine.IO "0{...}" open packet
    const poll = await server.http('GET', `${HANDSHAKE}&sid=${sid}`, { headers: { Origin: EVIL } });
    assertRefused(poll, 'later poll');
  });

  it('refuses a WebSocket handshake from another origin with 403', async () => {
    const res = await upgrade(server.url, '/socket.io/?EIO=4&transport=websocket', EVIL);
    assert.equal(res.status, 403);
    assert.deepEqual(JSON.parse(res.body), { error: 'Origin not allowed' });
    assert.equal((await upgrade(server.url, '/socket.io/?EIO=4&transport=websocket', ALLOWED)).status, 101);
    assert.equal((await upgrade(server.url, '/socket.io/?EIO=4&transport=websocket')).status, 101);
  });

  it('refuses the WebSocket upgrade of a polling session from another origin', async () => {
    const open = await server.http('GET', HANDSHAKE, { headers: { Origin: ALLOWED } });
    const { sid } = JSON.parse(open.body.slice(1));
    const res = await upgrade(server.url, `/socket.io/?EIO=4&transport=websocket&sid=${sid}`, EVIL);
    assert.equal(res.status, 403);
    assert.deepEqual(JSON.parse(res.body), { error: 'Origin not allowed' });
  });

  for (const { name, transports } of TRANSPORTS) {
    it(`socket.io-client over ${name} from another origin gets connect_error`, async () => {
      await assert.rejects(connect(server.url, { transports, extraHeaders: { Origin: EVIL } }));
    });

    it(`socket.io-client over ${name} from an allowed origin connects`, async () => {
      for (const origin of [ALLOWED, SECOND]) {
        const socket = await connect(server.url, { transports, extraHeaders: { Origin: origin } });
        assert.ok(socket.connected);
        await awaitWebSocket(socket); // the upgrade request carries the Origin too
        socket.close();
      }
    });
  }

  it('refuses REST calls and preflights from another origin', async () => {
    assertRefused(await server.http('GET', '/health', { headers: { Origin: EVIL } }), 'GET /health');
    assertRefused(await server.http('POST', '/api/create-room', { headers: { Origin: EVIL } }), 'POST');
    const preflight = await server.http('OPTIONS', '/api/create-room', {
      headers: { Origin: EVIL, 'Access-Control-Request-Method': 'POST' },
    });
    assertRefused(preflight, 'preflight');
  });

  it('gives an allowed origin Access-Control-Allow-Origin and -Credentials', async () => {
    for (const pathname of [HANDSHAKE, '/health']) {
      const res = await server.http('GET', pathname, { headers: { Origin: ALLOWED } });
      assert.equal(res.status, 200, pathname);
      assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED, pathname);
      assert.equal(res.headers.get('access-control-allow-credentials'), 'true', pathname);
    }
    const second = await server.http('POST', '/api/create-room', { headers: { Origin: SECOND } });
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('access-control-allow-origin'), SECOND);
  });

  it('answers a preflight from an allowed origin with methods and headers', async () => {
    const res = await server.http('OPTIONS', '/api/create-room', {
      headers: {
        Origin: ALLOWED,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'content-type,authorization',
      },
    });
    assert.ok(res.status === 200 || res.status === 204, `preflight status ${res.status}`);
    assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED);
    assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
    const headers = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/\s*,\s*/);
    assert.ok(headers.includes('content-type'), `allow-headers: ${headers}`);
    assert.ok(headers.includes('authorization'), `allow-headers: ${headers}`);
    const methods = (res.headers.get('access-control-allow-methods') ?? '').toUpperCase();
    assert.match(methods, /GET/);
    assert.match(methods, /POST/);
  });

  // PROTOCOL.md: "Every HTTP request whose Origin header is not on the list is refused", with no
  // exception for an Origin that matches the Host header (which a DNS-rebinding page also sends).
  it('refuses an Origin equal to the server\'s own address when it is not on the list', async () => {
    const own = server.url; // http://127.0.0.1:<port>, the Host header fetch sends
    assertRefused(await server.http('GET', HANDSHAKE, { headers: { Origin: own } }), 'handshake');
    assertRefused(await server.http('POST', '/api/create-room', { headers: { Origin: own } }), 'POST');
    assert.equal((await upgrade(server.url, '/socket.io/?EIO=4&transport=websocket', own)).status, 403);
  });

  it('allows requests without an Origin header', async () => {
    assert.equal((await server.http('GET', '/health')).status, 200);
    assert.equal((await server.http('GET', HANDSHAKE)).status, 200);
    for (const { transports } of TRANSPORTS) {
      const socket = await connect(server.url, { transports });
      socket.close();
    }
  });
});

describe('CORS with FRONTEND_URL=*', () => {
  let server;
  before(async () => {
    server = await startServer({ FRONTEND_URL: '*' });
  });
  after(() => server?.stop());

  it('echoes any caller origin, with credentials', async () => {
    for (const pathname of ['/health', HANDSHAKE]) {
      const res = await server.http('GET', pathname, { headers: { Origin: EVIL } });
      assert.equal(res.status, 200, pathname);
      assert.equal(res.headers.get('access-control-allow-origin'), EVIL, pathname);
      assert.equal(res.headers.get('access-control-allow-credentials'), 'true', pathname);
    }
  });

  for (const { name, transports } of TRANSPORTS) {
    it(`lets any origin connect over ${name}`, async () => {
      const socket = await connect(server.url, { transports, extraHeaders: { Origin: EVIL } });
      socket.close();
    });
  }
});
