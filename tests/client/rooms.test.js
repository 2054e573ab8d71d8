// Room membership: host (isAdmin) hand-over, re-join as a new last participant, joining the same
// room again, switching rooms, leave-room payload variants, room_full keeping the socket where it
// was, and disconnect acting as leave (both transports), seen in /health.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  TRANSPORTS, assertAckError, assertError, assertParticipant, emitAck, eventLog, eventually,
  expectEvent, expectNoEvent, join, mark, roomId, startServer,
} from './helpers.js';

const ids = (list) => list.map((p) => p.id);
const admins = (list) => list.filter((p) => p.isAdmin).map((p) => p.id);

/** `leaver` sends leave-room `args`; resolves the list the `stayers` got after user-left. */
async function leaveAndObserve(leaver, stayers, args, room) {
  const leftRoom = expectEvent(leaver, 'left-room');
  const userLeft = stayers.map((s) => expectEvent(s, 'user-left'));
  const lists = stayers.map((s) => expectEvent(s, 'participants-updated', { filter: (l) => !ids(l).includes(leaver.id) }));
  leaver.emit('leave-room', ...args);
  assert.deepEqual(await leftRoom, { roomId: room });
  for (const u of await Promise.all(userLeft)) assert.equal(u.participantId, leaver.id);
  const got = await Promise.all(lists);
  for (const s of stayers) {
    const names = eventLog(s).map((e) => e.name);
    assert.ok(names.lastIndexOf('user-left') < names.lastIndexOf('participants-updated'), `order: ${names}`);
  }
  got.forEach((l) => assert.deepEqual(l, got[0]));
  return got[0];
}

describe('rooms (EMPTY_ROOM_TTL_SECS=0)', () => {
  let server;
  before(async () => {
    server = await startServer({ EMPTY_ROOM_TTL_SECS: '0' });
  });
  after(() => server?.stop());
  // Each test closes its clients; wait until the server has processed it, so counts start at 0.
  afterEach(async () => {
    server.closeClients();
    await eventually(async () => {
      const h = await server.health();
      return h.activeRooms === 0 && h.totalParticipants === 0;
    }, { what: 'an empty server after the test' });
  });

  it('hands the host role on, and a re-joiner is last and not host', async () => {
    const room = roomId('host');
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((name) => server.connect({ name })));
    await join(a, room, 'A');
    await join(b, room, 'B', { others: [a] });
    const joinedC = await join(c, room, 'C', { others: [a, b] });
    assert.deepEqual(ids(joinedC.participants), [a.id, b.id, c.id]);
    assert.deepEqual(admins(joinedC.participants), [a.id]);

    let list = await leaveAndObserve(a, [b, c], [null], room); // leave-room with null
    assert.deepEqual(ids(list), [b.id, c.id]);
    assert.deepEqual(admins(list), [b.id]);

    const rejoined = await join(a, room, 'A', { others: [b, c] });
    assert.deepEqual(ids(rejoined.participants), [b.id, c.id, a.id]);
    assertParticipant(rejoined.participant, { id: a.id, isAdmin: false });

    list = await leaveAndObserve(b, [c, a], [], room); // leave-room with no payload
    assert.deepEqual(ids(list), [c.id, a.id]);
    assert.deepEqual(admins(list), [c.id]);
    list = await leaveAndObserve(c, [a], [{}], room); // leave-room with {}
    assert.deepEqual(admins(list), [a.id]);
    await leaveAndObserve(a, [], [{ roomId: room }], room);
    assert.equal((await server.http('GET', `/api/room/${room}`)).status, 404);
    [a, b, c].forEach((s) => s.close());
  });

  it('joining the room one is in again answers joined-room to the joiner only, changing nothing', async () => {
    const room = roomId('again');
    const a = await server.connect({ name: 'a' });
    const b = await server.connect({ name: 'b' });
    const first = await join(a, room, 'Alice', { userAvatar: 'https://a.example/a.png' });
    await join(b, room, 'Bob', { others: [a] });

    const [sinceA, sinceB] = [mark(a), mark(b)];
    const again = expectEvent(a, 'joined-room');
    a.emit('join-room', { roomId: room, userName: 'Someone Else', userAvatar: 'https://x.example/x.png' });
    const answer = await again;
    assert.equal(answer.roomId, room);
    assert.equal(answer.participantId, a.id);
    assert.deepEqual(answer.participant, first.participant, 'name and avatar unchanged');
    assert.deepEqual(ids(answer.participants), [a.id, b.id]);
    await expectNoEvent(b, 'user-joined', { since: sinceB });
    await expectNoEvent(b, 'participants-updated', { since: sinceB });
    await expectNoEvent(a, 'participants-updated', { since: sinceA });

    const ack = await emitAck(a, 'join-room', { roomId: room, userName: 'Alice' });
    assert.equal(ack.ok, true);
    assert.equal((await server.http('GET', `/api/room/${room}`)).body.participantCount, 2);
    a.close();
    b.close();
  });

  it('switching rooms leaves the old room first', async () => {
    const r1 = roomId('old');
    const r2 = roomId('new');
    const a = await server.connect({ name: 'a' });
    const b = await server.connect({ name: 'b' });
    const c = await server.connect({ name: 'c' });
    await join(a, r1, 'A');
    await join(b, r1, 'B', { others: [a] });
    await join(c, r2, 'C');

    const leftRoom = expectEvent(a, 'left-room');
    const joined = expectEvent(a, 'joined-room');
    const userLeft = expectEvent(b, 'user-left');
    const oldList = expectEvent(b, 'participants-updated');
    const userJoined = expectEvent(c, 'user-joined');
    const newList = expectEvent(c, 'participants-updated');
    a.emit('join-room', { roomId: r2, userName: 'A' });
    assert.deepEqual(await leftRoom, { roomId: r1 });
    const j = await joined;
    assert.equal(j.roomId, r2);
    assert.deepEqual(ids(j.participants), [c.id, a.id]);
    assert.deepEqual(admins(j.participants), [c.id]);
    const aNames = eventLog(a).map((e) => e.name);
    assert.ok(aNames.lastIndexOf('left-room') < aNames.lastIndexOf('joined-room'), `order: ${aNames}`);
    assert.deepEqual(await userLeft, { participantId: a.id, userName: 'A' });
    const old = await oldList;
    assert.deepEqual(ids(old), [b.id]);
    assert.deepEqual(admins(old), [b.id]);
    assert.equal((await userJoined).id, a.id);
    assert.deepEqual(ids(await newList), [c.id, a.id]);

    assert.deepEqual(await server.health().then((h) => [h.activeRooms, h.totalParticipants]), [2, 3],
      'no ghost participant left behind');
    assert.equal((await server.http('GET', `/api/room/${r1}`)).body.participantCount, 1);
    assert.equal((await server.http('GET', `/api/room/${r2}`)).body.participantCount, 2);

    // Chat in the old room no longer reaches the switcher.
    const since = mark(a);
    const inOld = expectEvent(b, 'new-message');
    b.emit('send-message', { message: 'still here?' });
    await inOld;
    await expectNoEvent(a, 'new-message', { since });
    [a, b, c].forEach((s) => s.close());
  });

  for (const { name, transports } of TRANSPORTS) {
    it(`a disconnect over ${name} is a leave without left-room`, async () => {
      const room = roomId('gone');
      const a = await server.connect({ transports, name: 'a' });
      const b = await server.connect({ transports, name: 'b' });
      const c = await server.connect({ transports, name: 'c' });
      await join(a, room, 'A');
      await join(b, room, 'B', { others: [a] });
      await join(c, room, 'C', { others: [a, b] });
      assert.deepEqual(await server.health().then((h) => [h.activeRooms, h.totalParticipants]), [1, 3]);

      const aId = a.id;
      const userLeft = [b, c].map((s) => expectEvent(s, 'user-left'));
      const lists = [b, c].map((s) => expectEvent(s, 'participants-updated'));
      a.close(); // the host goes away
      for (const u of await Promise.all(userLeft)) assert.deepEqual(u, { participantId: aId, userName: 'A' });
      const [lb, lc] = await Promise.all(lists);
      assert.deepEqual(lb, lc);
      assert.deepEqual(ids(lb), [b.id, c.id]);
      assert.deepEqual(admins(lb), [b.id]);
      for (const s of [b, c]) {
        const names = eventLog(s).map((e) => e.name);
        assert.ok(names.lastIndexOf('user-left') < names.lastIndexOf('participants-updated'), `order: ${names}`);
        assert.ok(!names.includes('left-room'));
      }
      assert.deepEqual(await server.health().then((h) => [h.activeRooms, h.totalParticipants]), [1, 2]);

      b.close();
      c.close();
      await eventually(async () => {
        const h = await server.health();
        return h.totalParticipants === 0 && h.activeRooms === 0;
      }, { what: 'participants and room gone from /health' });
    });
  }
});

describe('room_full (MAX_PARTICIPANTS=2)', () => {
  let server;
  before(async () => {
    server = await startServer({ MAX_PARTICIPANTS: '2' });
  });
  after(() => server?.stop());

  it('refuses a third participant, who stays in the room it was in', async () => {
    const full = roomId('full');
    const home = roomId('home');
    const a = await server.connect({ name: 'a' });
    const b = await server.connect({ name: 'b' });
    const c = await server.connect({ name: 'c' });
    await join(a, full, 'A');
    await join(b, full, 'B', { others: [a] });
    await join(c, home, 'C');
    const [sinceA, sinceB] = [mark(a), mark(b)];

    const error = expectEvent(c, 'error');
    c.emit('join-room', { roomId: full, userName: 'C' });
    assertError(await error, 'room_full', 'join-room');

    const errorAgain = expectEvent(c, 'error');
    assertAckError(await emitAck(c, 'join-room', { roomId: full, userName: 'C' }), 'room_full');
    assertError(await errorAgain, 'room_full', 'join-room');

    await expectNoEvent(a, 'user-joined', { since: sinceA });
    await expectNoEvent(b, 'participants-updated', { since: sinceB });
    assert.ok(!eventLog(c).some((e) => e.name === 'left-room' || e.name === 'joined-room' && e.data.roomId === full));
    assert.equal((await server.http('GET', `/api/room/${full}`)).body.participantCount, 2);
    assert.equal((await server.http('GET', `/api/room/${home}`)).body.participantCount, 1);

    // Still in its old room: it can chat there.
    const said = expectEvent(c, 'new-message');
    c.emit('send-message', { roomId: home, message: 'still home' });
    assert.equal((await said).message, 'still home');
    [a, b, c].forEach((s) => s.close());
  });
});
