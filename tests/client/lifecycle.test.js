// Room lifecycle: room id shapes (1 to 64 of [A-Za-z0-9_-], case-sensitive), an empty room kept
// (with its history) for EMPTY_ROOM_TTL_SECS then removed, a never-joined create-room room removed
// after UNUSED_ROOM_TTL_SECS (both within 5 s after the TTL), and at once with EMPTY_ROOM_TTL_SECS=0.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, expectEvent, join, roomId, startServer } from './helpers.js';

/** GET /api/room/:id status. */
const roomStatus = async (server, id) => (await server.http('GET', `/api/room/${id}`)).status;

describe('room ids', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.stop());

  it('accepts 1 to 64 characters of [A-Za-z0-9_-], case-sensitive', async () => {
    const suffix = roomId('').replace(/[^A-Za-z0-9]/g, '');
    const ids = ['x', `Az09_-${'y'.repeat(58)}`, `case${suffix}`, `CASE${suffix}`];
    assert.equal(ids[1].length, 64);
    const sockets = [];
    for (const id of ids) {
      const s = await server.connect();
      sockets.push(s);
      const joined = await join(s, id, 'Solo');
      assert.equal(joined.roomId, id);
      assert.equal(joined.participants.length, 1, `${id} is a room of its own`);
    }
    for (const id of ids) assert.equal(await roomStatus(server, id), 200);
    sockets.forEach((s) => s.close());
  });
});

describe('room removal (EMPTY_ROOM_TTL_SECS=1, UNUSED_ROOM_TTL_SECS=1)', () => {
  let server;
  before(async () => {
    server = await startServer({ EMPTY_ROOM_TTL_SECS: '1', UNUSED_ROOM_TTL_SECS: '1' });
  });
  after(() => server?.stop());

  it('removes an emptied room after its TTL and a never-joined created room after its own', async () => {
    const created = (await server.http('POST', '/api/create-room')).body.roomId;
    const room = roomId('ttl');
    const a = await server.connect();
    await join(a, room, 'Alice');
    const said = expectEvent(a, 'new-message');
    a.emit('send-message', { message: 'remember me' });
    await said;
    const left = expectEvent(a, 'left-room');
    a.emit('leave-room');
    await left;

    // Right after the leave the room is still there, empty, with its history.
    const info = await server.http('GET', `/api/room/${room}`);
    assert.equal(info.status, 200);
    assert.equal(info.body.participantCount, 0);
    assert.equal(await roomStatus(server, created), 200);
    const b = await server.connect();
    const back = await join(b, room, 'Bob');
    assert.deepEqual(back.messages.map((m) => m.message), ['remember me']);
    const bLeft = expectEvent(b, 'left-room');
    b.emit('leave-room');
    await bLeft;

    const gone = async (id) => (await roomStatus(server, id)) === 404;
    await Promise.all([
      eventually(() => gone(room), { timeout: 7_000, what: `emptied room ${room} removed` }),
      eventually(() => gone(created), { timeout: 7_000, what: `unused room ${created} removed` }),
    ]);
    const h = await server.health();
    assert.deepEqual([h.activeRooms, h.totalParticipants], [0, 0]);

    // A new join of a removed room starts it afresh, without the old history.
    const fresh = await join(b, room, 'Bob');
    assert.deepEqual(fresh.messages, []);
    a.close();
    b.close();
  });
});

describe('room removal (EMPTY_ROOM_TTL_SECS=0)', () => {
  let server;
  before(async () => {
    server = await startServer({ EMPTY_ROOM_TTL_SECS: '0' });
  });
  after(() => server?.stop());

  it('removes the room, history included, when its last participant leaves, but keeps unused created rooms', async () => {
    const created = (await server.http('POST', '/api/create-room')).body.roomId;
    const room = roomId('zero');
    const a = await server.connect();
    await join(a, room, 'Alice');
    const said = expectEvent(a, 'new-message');
    a.emit('send-message', { message: 'forget me' });
    await said;
    const left = expectEvent(a, 'left-room');
    a.emit('leave-room');
    await left;
    assert.equal(await roomStatus(server, room), 404);
    assert.equal(await roomStatus(server, created), 200, 'a never-joined room waits for UNUSED_ROOM_TTL_SECS');
    assert.deepEqual((await join(a, room, 'Alice')).messages, []);
    a.close();
  });
});
