// REST API: /health fields, POST /api/create-room, GET /api/room/:roomId (200 and 404),
// JSON 404 for unknown paths, and a room outliving its last participant (EMPTY_ROOM_TTL_SECS=300).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ISO, eventually, join, roomId, startServer } from './helpers.js';

describe('REST API', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.stop());

  it('GET /health answers status, timestamp and counts', async () => {
    const res = await server.http('GET', '/health');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /application\/json/);
    assert.equal(res.body.status, 'OK');
    assert.match(res.body.timestamp, ISO);
    assert.ok(!Number.isNaN(Date.parse(res.body.timestamp)));
    assert.equal(res.body.activeRooms, 0);
    assert.equal(res.body.totalParticipants, 0);
  });

  it('POST /api/create-room makes an empty room that GET /api/room/:id finds', async () => {
    const before = await server.health();
    const res = await server.http('POST', '/api/create-room');
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ['message', 'roomId']);
    assert.equal(res.body.message, 'Room created successfully');
    assert.match(res.body.roomId, /^[0-9A-F]{8}$/, '8 upper-case characters of a v4 UUID');

    const room = await server.http('GET', `/api/room/${res.body.roomId}`);
    assert.equal(room.status, 200);
    assert.equal(room.body.roomId, res.body.roomId);
    assert.equal(room.body.participantCount, 0);
    assert.match(room.body.createdAt, ISO);
    assert.equal((await server.health()).activeRooms, before.activeRooms + 1);

    const again = await server.http('POST', '/api/create-room', { body: {} });
    assert.equal(again.status, 200);
    assert.notEqual(again.body.roomId, res.body.roomId, 'each call makes a new room');
  });

  it('GET /api/room/:id counts participants of a room made by join-room', async () => {
    const room = roomId('rest');
    const a = await server.connect({ transports: ['websocket'] });
    await join(a, room, 'Alice');
    const res = await server.http('GET', `/api/room/${room}`);
    assert.equal(res.status, 200);
    assert.equal(res.body.roomId, room);
    assert.equal(res.body.participantCount, 1);
    assert.match(res.body.createdAt, ISO);

    // Room ids are case-sensitive.
    const other = await server.http('GET', `/api/room/${room.toUpperCase()}`);
    assert.equal(other.status, 404);

    // With the default EMPTY_ROOM_TTL_SECS the room outlives its last participant.
    a.close();
    const empty = await eventually(async () => {
      const r = await server.http('GET', `/api/room/${room}`);
      return r.status !== 200 || r.body.participantCount === 0 ? r : null;
    }, { what: 'the disconnect to be processed' });
    assert.equal(empty.status, 200, 'the empty room is kept for EMPTY_ROOM_TTL_SECS');
    assert.equal(empty.body.participantCount, 0);
  });

  it('GET /api/room/:id of an unknown room is 404 {"error":"Room not found"}', async () => {
    for (const id of ['NOPE1234', 'r'.repeat(65), 'a%20b', '%F0%9F%A6%80']) {
      const res = await server.http('GET', `/api/room/${id}`);
      assert.equal(res.status, 404, id);
      assert.deepEqual(res.body, { error: 'Room not found' }, id);
    }
  });

  it('a known path with the wrong method answers a JSON {"error"} body', async () => {
    for (const [method, pathname] of [['GET', '/api/create-room'], ['POST', '/health']]) {
      const res = await server.http(method, pathname);
      assert.ok(res.status >= 400 && res.status < 500, `${method} ${pathname}: ${res.status}`);
      assert.deepEqual(Object.keys(res.body), ['error'], `${method} ${pathname}`);
    }
  });

  it('unknown paths are 404 with a JSON {"error"} body', async () => {
    for (const [method, pathname] of [['GET', '/nope'], ['GET', '/api/rooms'], ['POST', '/api/nope']]) {
      const res = await server.http(method, pathname);
      assert.equal(res.status, 404, `${method} ${pathname}`);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      assert.equal(typeof res.body.error, 'string');
      assert.deepEqual(Object.keys(res.body), ['error']);
    }
  });
});
