// Chat and identity: history in joined-room `messages` (oldest first, capped by
// CHAT_HISTORY_LIMIT, kept while the room lives), trimming and length in Unicode characters,
// sender identity from the registry, and the avatar rules (unusable avatar → null, no error).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertParticipant, emitAck, eventLog, expectEvent, join, roomId, startServer } from './helpers.js';

/** `socket` says `message`; resolves the new-message it got back. */
async function say(socket, message, extra = {}) {
  const echo = expectEvent(socket, 'new-message');
  socket.emit('send-message', { message, ...extra });
  return echo;
}

describe('chat (CHAT_HISTORY_LIMIT=3)', () => {
  let server;
  before(async () => {
    server = await startServer({ CHAT_HISTORY_LIMIT: '3' });
  });
  after(() => server?.stop());

  it('joined-room carries the last 3 messages, oldest first, also after the room emptied', async () => {
    const room = roomId('history');
    const a = await server.connect();
    await join(a, room, 'Alice');
    const sent = [];
    for (const text of ['one', 'two', 'three', 'four', 'five']) sent.push(await say(a, text));

    const b = await server.connect();
    const joined = await join(b, room, 'Bob', { others: [a] });
    assert.deepEqual(joined.messages, sent.slice(2), 'three, four, five as they were broadcast');

    // Everyone leaves; with the default EMPTY_ROOM_TTL_SECS the room and its history stay.
    a.close();
    const left = expectEvent(b, 'left-room');
    b.emit('leave-room');
    await left;
    const c = await server.connect();
    const again = await join(c, room, 'Carol');
    assert.deepEqual(again.messages.map((m) => m.message), ['three', 'four', 'five']);
    c.close();
  });

  it('a fresh room has an empty history', async () => {
    const a = await server.connect();
    assert.deepEqual((await join(a, roomId('fresh'), 'Alice')).messages, []);
    a.close();
  });

  it('takes sender name and avatar from the registry, never from the payload', async () => {
    const room = roomId('identity');
    const a = await server.connect();
    const b = await server.connect();
    await join(a, room, 'Alice', { userAvatar: 'https://a.example/alice.png' });
    await join(b, room, 'Bob', { others: [a] });
    const atB = expectEvent(b, 'new-message');
    const m = await say(a, 'hi', { userName: 'Bob', userAvatar: 'https://evil.example/x.png', senderId: b.id });
    assert.deepEqual(await atB, m);
    assert.equal(m.senderId, a.id);
    assert.equal(m.userName, 'Alice');
    assert.equal(m.userAvatar, 'https://a.example/alice.png');

    const fromB = await say(b, 'yo', { userName: 'Alice' });
    assert.equal(fromB.userName, 'Bob');
    assert.equal(fromB.senderId, b.id);
    assert.equal(fromB.userAvatar, null);
    a.close();
    b.close();
  });

  it('trims Unicode white space and counts Unicode characters', async () => {
    const a = await server.connect();
    await join(a, roomId('unicode'), 'Alice');
    assert.equal((await say(a, '\u3000\u00a0 hi there \n\t\u2003')).message, 'hi there');
    const emoji = '😀'.repeat(2000); // 2000 characters, 4000 UTF-16 units
    assert.equal((await say(a, emoji)).message, emoji);
    const padded = ` ${'x'.repeat(2000)} `; // 2000 after trimming
    assert.equal((await say(a, padded)).message, 'x'.repeat(2000));
    const ack = await emitAck(a, 'send-message', { message: 'with ack' });
    assert.equal(ack.ok, true);
    a.close();
  });

  it('a user name is trimmed and may be 50 characters', async () => {
    const a = await server.connect();
    const name = '🦀'.repeat(50);
    const joined = await join(a, roomId('name'), `  ${name}\u3000`);
    assertParticipant(joined.participant, { userName: name, name });
    assert.equal((await say(a, 'x')).userName, name);
    a.close();
  });
});

describe('avatars', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.stop());

  const long = (n) => `https://a.example/${'a'.repeat(n - 'https://a.example/'.length)}`;
  const cases = [
    ['an https URL is kept', 'https://cdn.example.com/a.png', 'https://cdn.example.com/a.png'],
    ['an http URL is kept', 'http://cdn.example.com/a.png', 'http://cdn.example.com/a.png'],
    ['a 2048-character URL is kept', long(2048), long(2048)],
    ['a 2049-character URL becomes null', long(2049), null],
    ['a javascript: URL becomes null', 'javascript:alert(1)', null],
    ['a data: URL becomes null', 'data:image/png;base64,AAAA', null],
    ['a number becomes null', 42, null],
    ['an object becomes null', { url: 'https://a.example/a.png' }, null],
    ['null stays null', null, null],
    ['an absent avatar is null', undefined, null],
  ];
  for (const [title, userAvatar, expected] of cases) {
    it(`${title}, without an error`, async () => {
      const a = await server.connect();
      const b = await server.connect();
      const room = roomId('avatar');
      await join(b, room, 'Bob');
      const joinedEvent = expectEvent(b, 'user-joined');
      const joined = await join(a, room, 'Alice', { userAvatar, others: [b] });
      assertParticipant(joined.participant, { avatar: expected });
      assertParticipant(await joinedEvent, { avatar: expected });
      assert.equal((await say(a, 'hello')).userAvatar, expected);
      assert.ok(!eventLog(a).some((e) => e.name === 'error'), 'an unusable avatar is no error');
      a.close();
      b.close();
    });
  }
});
