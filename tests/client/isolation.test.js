// Room isolation: room broadcasts reach the room's participants only, and relays reach their
// target only — also when a room id happens to equal a socket id (socket ids are valid room ids:
// 16 characters of [A-Za-z0-9_-]), and after a socket was in a room named after itself.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expectEvent, expectNoEvent, join, mark, roomId, startServer } from './helpers.js';

const OFFER = { type: 'offer', sdp: 'v=0' };

describe('room isolation', () => {
  let server;
  before(async () => {
    server = await startServer({ EMPTY_ROOM_TTL_SECS: '0' });
  });
  after(() => server?.stop());

  it('socket ids are valid room ids (the premise of the tests below)', async () => {
    const a = await server.connect();
    assert.match(a.id, /^[A-Za-z0-9_-]{1,64}$/);
    a.close();
  });

  it('a room named after a socket id does not reach that socket', async () => {
    const victim = await server.connect({ name: 'victim' });
    const mallory = await server.connect({ name: 'mallory' });
    const room = roomId('iso');
    await join(victim, room, 'Victim');

    // Mallory makes and joins the room whose id is the victim's socket id.
    let since = mark(victim);
    const joined = await join(mallory, victim.id, 'Mallory');
    assert.deepEqual(joined.participants.map((p) => p.id), [mallory.id], 'the victim is no participant there');
    await expectNoEvent(victim, 'user-joined', { since });
    await expectNoEvent(victim, 'participants-updated', { since });

    since = mark(victim);
    const echo = expectEvent(mallory, 'new-message');
    mallory.emit('send-message', { message: 'can you hear me?' });
    await echo;
    await expectNoEvent(victim, 'new-message', { since });

    since = mark(victim);
    const shared = expectEvent(mallory, 'participants-updated');
    mallory.emit('start-screen-share');
    await shared;
    await expectNoEvent(victim, 'participants-updated', { since });
    victim.close();
    mallory.close();
  });

  it('a relay reaches its target only, not the members of a room named after the target', async () => {
    const alice = await server.connect({ name: 'alice' });
    const bob = await server.connect({ name: 'bob' });
    const mallory = await server.connect({ name: 'mallory' });
    const room = roomId('iso');
    await join(alice, room, 'Alice');
    await join(bob, room, 'Bob', { others: [alice] });
    await join(mallory, bob.id, 'Mallory');

    const since = mark(mallory);
    const atBob = expectEvent(bob, 'webrtc-offer');
    alice.emit('webrtc-offer', { targetId: bob.id, offer: OFFER });
    assert.deepEqual(await atBob, { senderId: alice.id, senderSocketId: alice.id, offer: OFFER });
    await expectNoEvent(mallory, 'webrtc-offer', { since });
    [alice, bob, mallory].forEach((s) => s.close());
  });

  it('a socket that left a room named after itself still gets relays', async () => {
    const alice = await server.connect({ name: 'alice' });
    const bob = await server.connect({ name: 'bob' });
    await join(bob, bob.id, 'Bob');
    const left = expectEvent(bob, 'left-room');
    bob.emit('leave-room');
    assert.deepEqual(await left, { roomId: bob.id });

    const room = roomId('iso');
    await join(alice, room, 'Alice');
    await join(bob, room, 'Bob', { others: [alice] });
    const atBob = expectEvent(bob, 'webrtc-offer');
    alice.emit('webrtc-offer', { targetSocketId: bob.id, offer: OFFER });
    assert.deepEqual(await atBob, { senderId: alice.id, senderSocketId: alice.id, offer: OFFER });
    alice.close();
    bob.close();
  });
});
