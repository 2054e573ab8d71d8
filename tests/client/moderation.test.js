// Host moderation (issue 20) with the socket.io-client the frontends use: the permission
// events the public frontend's Admin Panel sends (admin-toggle-mic-permission {canUseMic}),
// enforcement on every media alias, mute-all, kick (told, then disconnected), transfer and
// succession, lock, lobby with admission, passwords, end-room; refusals answer the sender
// only and change nothing. With TEST_CLUSTER_REDIS the clients alternate between two
// instances, so the host and the others are on different servers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertAckError, assertError, emitAck, eventLog, eventually, expectEvent, expectNoEvent, join, mark, roomId,
  startServer,
} from './helpers.js';

/** The events no one may receive after a refused moderation event (the silence rule). */
const SILENT = ['permission-changed', 'participant-audio-toggled', 'participant-video-toggled',
  'media-toggled', 'user-started-screen-share', 'user-stopped-screen-share', 'kicked', 'user-left',
  'host-changed', 'room-lock-changed', 'lobby-changed', 'room-ended', 'participants-updated',
  'user-joined', 'admission-requested', 'admission-cancelled'];

/** The names of `socket`'s events since `since`, only those in `names`. */
function namesSince(socket, since, names) {
  return eventLog(socket).slice(since).map((e) => e.name).filter((n) => names.includes(n));
}

/** `socket` sends `event` and is refused `code`, in the ack and the `error` event. */
async function refused(socket, event, payload, code) {
  const error = expectEvent(socket, 'error', { filter: (e) => e?.event === event });
  assertAckError(await emitAck(socket, event, payload), code);
  assertError(await error, code, event);
}

/** Nobody among `sockets` got any of the silent events since their marks. */
async function assertSilent(sockets, marks) {
  for (const [i, s] of sockets.entries()) {
    for (const name of SILENT) await expectNoEvent(s, name, { since: marks[i], within: i === 0 ? 200 : 0 });
  }
}

describe('host moderation', () => {
  let server;
  before(async () => {
    server = await startServer({ EMPTY_ROOM_TTL_SECS: '300' });
  });
  after(() => server?.stop());

  /** A fresh room with `names.length` participants, the first the host. */
  async function room(...names) {
    const id = roomId('mod');
    const sockets = [];
    for (const name of names) {
      const s = await server.connect({ name });
      await join(s, id, name, { others: sockets });
      sockets.push(s);
    }
    return { id, sockets };
  }

  it('the admin panel\'s mic permission mutes the target, and no alias unmutes it', async () => {
    const { id, sockets: [host, bob, cat] } = await room('Host', 'Bob', 'Cat');
    const catEvents = mark(cat);
    const toggled = expectEvent(cat, 'participant-audio-toggled');
    const catList = expectEvent(cat, 'participants-updated');
    const changed = expectEvent(bob, 'permission-changed');
    const bobList = expectEvent(bob, 'participants-updated');
    const ack = await emitAck(host, 'admin-toggle-mic-permission', { roomId: id, participantId: bob.id, canUseMic: false });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    assert.deepEqual(await toggled, { participantId: bob.id, isAudioMuted: true, isAudioEnabled: false });
    const list = await catList;
    const shown = list.find((p) => p.id === bob.id);
    assert.equal(shown.hasMicPermission, false);
    assert.equal(shown.canUseMic, false);
    assert.equal(shown.isAudioMuted, true);
    assert.deepEqual(namesSince(cat, catEvents, ['participant-audio-toggled', 'media-toggled', 'participants-updated']),
      ['participant-audio-toggled', 'media-toggled', 'participants-updated']);
    assert.deepEqual(await changed,
      { participantId: bob.id, kind: 'mic', allowed: false, byId: host.id, byName: 'Host' });
    assert.equal((await bobList).find((p) => p.id === bob.id).isAudioEnabled, false);

    const marks = [mark(host), mark(bob), mark(cat)];
    await refused(bob, 'toggle-audio', { isAudioMuted: false }, 'forbidden');
    await refused(bob, 'toggle-audio', { isAudioEnabled: true }, 'forbidden');
    await refused(bob, 'toggle-media', { type: 'audio', enabled: true }, 'forbidden');
    // Muting stays allowed; the others hear it (in cluster mode, through the other instance).
    const heardOff = [host, cat].map((s) => expectEvent(s, 'participant-audio-toggled',
      { filter: (d) => d.participantId === bob.id }));
    const off = await emitAck(bob, 'toggle-audio', { isAudioMuted: true });
    assert.equal(off.ok, true);
    assert.equal(off.participant.isAudioMuted, true);
    await Promise.all(heardOff);
    // The refused unmutes reached nobody: the others only ever heard Bob muted.
    for (const [i, s] of [[0, host], [2, cat]]) {
      const heard = eventLog(s).slice(marks[i]).filter((e) => e.name === 'participant-audio-toggled');
      assert.ok(heard.length > 0 && heard.every((e) => e.data.isAudioMuted === true), JSON.stringify(heard));
    }

    const again = expectEvent(bob, 'permission-changed');
    assert.equal((await emitAck(host, 'admin-toggle-mic-permission', { participantId: bob.id, allowed: true })).ok, true);
    assert.equal((await again).allowed, true);
    const unmuted = expectEvent(cat, 'participant-audio-toggled');
    assert.equal((await emitAck(bob, 'toggle-audio', { isAudioEnabled: true })).ok, true);
    assert.equal((await unmuted).isAudioEnabled, true);
  });

  it('refusals answer the sender only and change nothing', async () => {
    const { id, sockets } = await room('Host', 'Bob');
    const [host, bob] = sockets;
    const marks = sockets.map(mark);
    await refused(bob, 'admin-toggle-camera-permission', { participantId: host.id, canUseCamera: false }, 'forbidden');
    await refused(bob, 'admin-toggle-mic-permission', { participantId: bob.id, canUseMic: true }, 'forbidden');
    await refused(bob, 'mute-all', undefined, 'forbidden');
    await refused(bob, 'end-room', null, 'forbidden');
    await refused(host, 'admin-toggle-mic-permission', { participantId: bob.id, canUseMic: 'false' }, 'invalid_payload');
    await refused(host, 'admin-toggle-mic-permission', { participantId: bob.id, canUseMic: true, allowed: false }, 'invalid_payload');
    await refused(host, 'admin-toggle-camera-permission', { participantId: 42, canUseCamera: false }, 'invalid_payload');
    await refused(host, 'lock-room', { locked: 1 }, 'invalid_payload');
    await refused(host, 'set-lobby', 'on', 'invalid_payload');
    await refused(host, 'kick-participant', { participantId: host.id }, 'invalid_payload');
    await refused(host, 'set-room-password', { password: 'abc' }, 'invalid_payload');
    await refused(host, 'kick-participant', { participantId: 'nobody-here' }, 'target_not_in_room');
    await refused(host, 'transfer-host', { participantId: 'nobody-here' }, 'target_not_in_room');
    await refused(host, 'admit-participant', { participantId: bob.id }, 'target_not_in_room');
    await assertSilent(sockets, marks);
    const late = await server.connect({ name: 'late' });
    const joined = await join(late, id, 'Late', { others: sockets });
    assert.deepEqual(joined.room, { hostId: host.id, locked: false, lobby: false, hasPassword: false });
    assert.ok(joined.participants.every((p) => p.canUseMic && p.canUseCamera && p.canShareScreen));
  });

  it('mute-all, then kick: told, disconnected, gone from the list', async () => {
    const { id, sockets: [host, bob, cat] } = await room('Host', 'Bob', 'Cat');
    const hostList = expectEvent(host, 'participants-updated');
    const muted = [];
    host.on('participant-audio-toggled', (d) => muted.push(d.participantId));
    assert.equal((await emitAck(host, 'mute-all')).ok, true);
    const list = await hostList;
    host.removeAllListeners('participant-audio-toggled');
    assert.deepEqual(muted.sort(), [bob.id, cat.id].sort());
    assert.deepEqual(list.map((p) => p.isAudioMuted), [false, true, true]);

    const bobId = bob.id; // socket.io-client forgets it on disconnect
    const kicked = expectEvent(bob, 'kicked');
    const error = expectEvent(bob, 'error');
    const disconnected = new Promise((resolve) => bob.once('disconnect', resolve));
    const left = expectEvent(cat, 'user-left');
    const catList = expectEvent(cat, 'participants-updated', { filter: (l) => l.length === 2 });
    assert.equal((await emitAck(host, 'kick-participant', { participantId: bobId, reason: null })).ok, true);
    assert.deepEqual(await kicked, { roomId: id, byId: host.id, byName: 'Host', reason: null });
    assertError(await error, 'kicked', null);
    assert.equal(await disconnected, 'io server disconnect');
    assert.deepEqual(await left, { participantId: bobId, userName: 'Bob' });
    assert.deepEqual((await catList).map((p) => p.id), [host.id, cat.id]);
  });

  it('transfer-host and succession move isAdmin without reordering', async () => {
    const { id, sockets: [host, bob, cat] } = await room('Host', 'Bob', 'Cat');
    const changes = [host, bob, cat].map((s) => expectEvent(s, 'host-changed'));
    const lists = [host, bob, cat].map((s) => expectEvent(s, 'participants-updated'));
    assert.equal((await emitAck(host, 'transfer-host', { participantId: cat.id })).ok, true);
    for (const c of await Promise.all(changes)) assert.deepEqual(c, { roomId: id, hostId: cat.id, previousHostId: host.id });
    for (const l of await Promise.all(lists)) {
      assert.deepEqual(l.map((p) => p.id), [host.id, bob.id, cat.id]);
      assert.deepEqual(l.map((p) => p.isAdmin), [false, false, true]);
    }
    await refused(host, 'mute-all', {}, 'forbidden');
    const heir = expectEvent(host, 'host-changed');
    const heirList = expectEvent(host, 'participants-updated');
    const marked = mark(host);
    const catId = cat.id;
    cat.close();
    assert.deepEqual(await heir, { roomId: id, hostId: host.id, previousHostId: catId });
    assert.deepEqual((await heirList).map((p) => p.isAdmin), [true, false]);
    assert.deepEqual(namesSince(host, marked, ['user-left', 'host-changed', 'participants-updated']),
      ['user-left', 'host-changed', 'participants-updated']);
    assert.equal((await emitAck(host, 'lock-room', { locked: true })).ok, true);
  });

  it('lock, lobby with admit and deny, as the contract orders them', async () => {
    const { id, sockets: [host, bob] } = await room('Host', 'Bob');
    const locked = expectEvent(bob, 'room-lock-changed');
    assert.equal((await emitAck(host, 'lock-room', { roomId: id, locked: true })).ok, true);
    assert.deepEqual(await locked, { roomId: id, locked: true, byId: host.id });
    const out = await server.connect({ name: 'out' });
    await refused(out, 'join-room', { roomId: id, userName: 'Out' }, 'room_locked');
    assert.equal((await emitAck(host, 'lock-room', { locked: false })).ok, true);

    const lobby = expectEvent(bob, 'lobby-changed');
    assert.equal((await emitAck(host, 'set-lobby', { enabled: true })).ok, true);
    assert.deepEqual(await lobby, { roomId: id, enabled: true, byId: host.id });
    const bobMark = mark(bob);
    const asked = expectEvent(host, 'admission-requested');
    const waiting = expectEvent(out, 'waiting-for-admission');
    const waitAck = await emitAck(out, 'join-room', { roomId: id, userName: 'Out' });
    assert.equal(waitAck.ok, true, JSON.stringify(waitAck));
    assert.equal(waitAck.waiting, true, JSON.stringify(waitAck));
    assert.deepEqual(await waiting, { roomId: id });
    assert.deepEqual(await asked, { participantId: out.id, userName: 'Out', userAvatar: null });
    for (const name of ['user-joined', 'participants-updated']) await expectNoEvent(bob, name, { since: bobMark });

    const joined = expectEvent(out, 'joined-room');
    const outList = expectEvent(out, 'participants-updated');
    const userJoined = expectEvent(bob, 'user-joined');
    const bobList = expectEvent(bob, 'participants-updated');
    assert.equal((await emitAck(host, 'admit-participant', { participantId: out.id })).ok, true);
    assert.equal((await joined).room.lobby, true);
    assert.equal((await outList).length, 3);
    assert.equal((await userJoined).participantId, out.id);
    assert.equal((await bobList).length, 3);

    const denied = await server.connect({ name: 'denied' });
    const asked2 = expectEvent(host, 'admission-requested');
    await emitAck(denied, 'join-room', { roomId: id, userName: 'Den' });
    await asked2;
    const error = expectEvent(denied, 'error');
    assert.equal((await emitAck(host, 'deny-participant', { participantId: denied.id, reason: 'full' })).ok, true);
    assertError(await error, 'admission_denied', 'join-room');
    await refused(host, 'deny-participant', { participantId: denied.id }, 'target_not_in_room');
  });

  it('password rooms: create-room body, wrong_password, set-room-password, hasPassword', async () => {
    assert.equal((await server.http('POST', '/api/create-room', { body: { password: 'abc' } })).status, 400);
    assert.equal((await server.http('POST', '/api/create-room', { body: { password: 12345 } })).status, 400);
    const created = await server.http('POST', '/api/create-room', { body: { password: 'open-sesame' } });
    assert.equal(created.status, 200);
    const id = created.body.roomId;
    const info = await server.http('GET', `/api/room/${id}`);
    assert.equal(info.body.hasPassword, true);
    assert.ok(!JSON.stringify(info.body).includes('open-sesame'));
    const host = await server.connect({ name: 'host' });
    await refused(host, 'join-room', { roomId: id, userName: 'Host', password: 'Open-Sesame' }, 'wrong_password');
    const joined = expectEvent(host, 'joined-room');
    host.emit('join-room', { roomId: id, userName: 'Host', password: 'open-sesame' });
    assert.equal((await joined).room.hasPassword, true);
    const ack = await emitAck(host, 'set-room-password', { password: null });
    assert.equal(ack.ok, true);
    assert.equal((await server.http('GET', `/api/room/${id}`)).body.hasPassword, false);
    const bob = await server.connect({ name: 'bob' });
    await join(bob, id, 'Bob', { others: [host] });
  });

  it('end-room: room-ended then room_closed, everyone stays connected, the room is gone', async () => {
    const { id, sockets: [host, bob] } = await room('Host', 'Bob');
    const ended = expectEvent(bob, 'room-ended');
    const error = expectEvent(bob, 'error');
    assert.equal((await emitAck(host, 'end-room', { roomId: id })).ok, true);
    assert.deepEqual(await ended, { roomId: id, byId: host.id });
    assertError(await error, 'room_closed', null);
    assert.equal(bob.connected, true);
    await eventually(async () => (await server.http('GET', `/api/room/${id}`)).status === 404,
      { timeout: 1_000, what: 'GET /api/room answering 404' });
    await refused(host, 'send-message', { message: 'hello?' }, 'not_in_room');
  });
});
