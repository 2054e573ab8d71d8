// Call continuity: connection state recovery with the real socket.io-client (4.8), through a
// TCP proxy that gives one client a real network blip (tests/client/proxy.js: every
// connection cut on both sides, new ones refused until it ends). Over both transports, and
// (with TEST_CLUSTER_REDIS, tests/cluster-suite.sh) on two instances, the blipped client
// always on the same one (sticky sessions), the others wherever startServer puts them.
//
// - a blip shorter than RECOVERY_WINDOW_S: `socket.recovered`, the same id, what was sent to
//   it meanwhile (chat, offers, answers, candidates, a newcomer, a toggle) once and in order;
//   the others (a newcomer during the blip too) see participant-reconnecting, then
//   participant-reconnected, never user-left; host role and media flags survive;
// - a blip longer than the window: one user-left when it ends, the host role passes on, the
//   client starts afresh;
// - leave-room, disconnect(): immediate departures;
// - a forged pid, and the pid of an ended session: a fresh session with nothing of the old;
// - RECOVERY_WINDOW_S=0: no pid, no offsets, no `connection` field, a blip is a departure;
// - cluster only: a client sent to another instance after the blip starts afresh there, and
//   its old participant leaves when the window ends.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  TRANSPORTS,
  assertError,
  awaitWebSocket,
  barrier,
  connect,
  eventLog,
  expectEvent,
  expectNoEvent,
  join,
  mark,
  roomId,
  startServer,
} from './helpers.js';
import { startProxy } from './proxy.js';

/** A short window, for the tests that outlast it. */
const SHORT_WINDOW_S = 2;

/** `/health` of one instance (startServer's `http` takes turns over the instances). */
async function healthOf(url) {
  const res = await fetch(`${url}/health`);
  assert.equal(res.status, 200);
  return res.json();
}

/** Resolves `{id, recovered}` at `socket`'s next connect (its reconnection after a blip). */
function nextConnect(socket, { timeout = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('connect', onConnect);
      reject(new Error(`no reconnection within ${timeout} ms`));
    }, timeout);
    const onConnect = () => {
      clearTimeout(timer);
      resolve({ id: socket.id, recovered: socket.recovered });
    };
    socket.once('connect', onConnect);
  });
}

/** The events of `socket` since `since`, leaving out `participants-updated`. */
function eventsSince(socket, since) {
  return eventLog(socket).slice(since).filter((e) => e.name !== 'participants-updated');
}

/** `socket` connected through the proxy, reconnecting as the frontends do. */
async function blippable(proxy, transports, name) {
  const socket = await connect(proxy.url, { transports, name, reconnection: true });
  // Cut a WebSocket (after the upgrade, if any): its loss is noticed at once. A cut polling
  // session would be noticed only at its heartbeat timeout (up to 45 s).
  await awaitWebSocket(socket);
  return socket;
}

/** `socket` joins `room` where `members` already are: resolves once all saw the full list. */
async function joinAmong(socket, room, userName, members, size) {
  const full = (list) => Array.isArray(list) && list.length === size && list.some((p) => p.id === socket.id);
  const joined = expectEvent(socket, 'joined-room', { filter: (d) => d?.roomId === room });
  const lists = members.map((m) => expectEvent(m, 'participants-updated', { filter: full }));
  socket.emit('join-room', { roomId: room, userName });
  const [data] = await Promise.all([joined, ...lists]);
  return data;
}

for (const { name: transport, transports } of TRANSPORTS) {
  describe(`connection state recovery over ${transport}`, () => {
    let server;
    let short;
    before(async () => {
      server = await startServer();
      short = await startServer({ RECOVERY_WINDOW_S: String(SHORT_WINDOW_S) });
    });
    after(async () => {
      await server?.stop();
      await short?.stop();
    });

    it('a blip shorter than the window: recovered, same id, missed events once and in order, nobody leaves', async () => {
      const proxy = await startProxy(server.urls[0]);
      try {
        const room = roomId('blip');
        const b = await blippable(proxy, transports, 'Bob (blipped)');
        const c = await server.connect({ name: 'Cat' });
        const bJoined = await join(b, room, 'Bob');
        assert.equal(bJoined.participant.connection, 'connected');
        assert.equal(bJoined.participant.isAdmin, true);
        await join(c, room, 'Cat', { others: [b] });
        const muted = expectEvent(c, 'participant-audio-toggled');
        const bMuted = expectEvent(b, 'participants-updated', { filter: (list) => list[0]?.isAudioMuted === true });
        b.emit('toggle-audio', { isAudioMuted: true });
        await Promise.all([muted, bMuted]);
        const bId = b.id;
        const cMark = mark(c);

        // The blip: Bob's network is gone.
        const reconnecting = expectEvent(c, 'participant-reconnecting');
        const listed = expectEvent(c, 'participants-updated', {
          filter: (list) => list.find((p) => p.id === bId)?.connection === 'reconnecting',
        });
        const since = mark(b);
        proxy.cut();
        assert.deepEqual(await reconnecting, { participantId: bId, roomId: room });
        const away = await listed;
        assert.deepEqual(away.map((p) => [p.id, p.isAdmin, p.connection]), [[bId, true, 'reconnecting'], [c.id, false, 'connected']]);
        assert.equal(away[0].isAudioMuted, true, 'his media state stays');
        assert.equal((await healthOf(server.urls[0])).reconnecting, 1);

        // Meanwhile: chat, an offer, two candidates, a newcomer, an answer, a toggle.
        const said = expectEvent(c, 'new-message');
        c.emit('send-message', { message: 'while you were away' });
        const message = await said;
        c.emit('webrtc-offer', { targetId: bId, offer: { type: 'offer', sdp: 'v=0 from Cat' } });
        c.emit('webrtc-ice-candidate', { targetId: bId, candidate: { candidate: 'c1' } });
        c.emit('webrtc-ice-candidate', { targetId: bId, candidate: { candidate: 'c2' } });
        await barrier(c);
        const d = await server.connect({ name: 'Dan' });
        const dMark = mark(d);
        const dJoined = await joinAmong(d, room, 'Dan', [c], 3);
        assert.deepEqual(
          dJoined.participants.map((p) => [p.id, p.isAdmin, p.connection]),
          [[bId, true, 'reconnecting'], [c.id, false, 'connected'], [d.id, false, 'connected']],
          'a newcomer sees him, reconnecting, still host',
        );
        d.emit('webrtc-answer', { targetSocketId: bId, answer: { type: 'answer', sdp: 'v=0 from Dan' } });
        await barrier(d);
        const toggled = expectEvent(d, 'participant-video-toggled');
        c.emit('toggle-video', { isVideoOff: true });
        await toggled;

        // Back: the same socket, and everyone in the room at this moment hears of it.
        const back = nextConnect(b);
        const reconnected = [c, d].map((s) => expectEvent(s, 'participant-reconnected', { timeout: 10_000 }));
        const bBack = expectEvent(b, 'participants-updated', {
          timeout: 10_000,
          filter: (list) => list.length === 3 && list[0].id === bId && list[0].connection === 'connected',
        });
        proxy.restore();
        assert.deepEqual(await back, { id: bId, recovered: true });
        for (const r of reconnected) assert.deepEqual(await r, { participantId: bId, roomId: room });
        const backList = await bBack;
        assert.deepEqual(backList.map((p) => p.id), [bId, c.id, d.id]);
        assert.equal(backList[0].isAdmin, true, 'still host');
        assert.equal(backList[0].isAudioMuted, true, 'still muted');
        assert.equal(backList[1].isVideoOff, true);

        // What Bob missed, each once, in order.
        const missed = eventsSince(b, since);
        assert.deepEqual(
          missed.map((e) => e.name),
          ['new-message', 'webrtc-offer', 'webrtc-ice-candidate', 'webrtc-ice-candidate', 'user-joined',
            'webrtc-answer', 'participant-video-toggled', 'media-toggled'],
          JSON.stringify(missed.map((e) => [e.name, e.data])),
        );
        assert.equal(missed[0].data.id, message.id);
        assert.deepEqual([missed[1].data.senderId, missed[1].data.offer.sdp], [c.id, 'v=0 from Cat']);
        assert.deepEqual([missed[2].data.candidate, missed[3].data.candidate], [{ candidate: 'c1' }, { candidate: 'c2' }]);
        assert.equal(missed[4].data.participantId, d.id);
        assert.deepEqual([missed[5].data.senderSocketId, missed[5].data.answer.sdp], [d.id, 'v=0 from Dan']);
        assert.equal(missed[6].data.participantId, c.id);
        // Four lists: his absence, Dan's arrival, Cat's camera, his return.
        const lists = eventLog(b).slice(since).filter((e) => e.name === 'participants-updated');
        assert.deepEqual(lists.map((e) => e.data.length), [2, 3, 3, 3]);
        // Every event carried an offset as its last argument (socket.io-client keeps it).
        for (const e of eventLog(b)) {
          assert.equal(e.args.length, 2, `${e.name}: data and offset`);
          assert.equal(typeof e.args[1], 'string');
        }

        // Nobody saw him leave; the room still counts him; he goes on.
        await expectNoEvent(c, 'user-left', { since: cMark });
        await expectNoEvent(d, 'user-left', { since: dMark });
        const info = await server.http('GET', `/api/room/${room}`);
        assert.equal(info.body.participantCount, 3);
        assert.equal((await healthOf(server.urls[0])).reconnecting, 0);
        const heard = expectEvent(c, 'new-message', { filter: (m) => m.message === 'back' });
        b.emit('send-message', { message: 'back' });
        assert.equal((await heard).senderId, bId);
        for (const s of [b, c, d]) s.close();
      } finally {
        await proxy.close();
      }
    });

    it('a blip longer than the window: one user-left at its end, the host passes on, the client starts afresh', async () => {
      const proxy = await startProxy(short.urls[0]);
      try {
        const room = roomId('long-blip');
        const b = await blippable(proxy, transports, 'Bob (blipped)');
        const c = await short.connect({ name: 'Cat' });
        await join(b, room, 'Bob');
        await join(c, room, 'Cat', { others: [b] });
        const bId = b.id;
        const cMark = mark(c);
        const reconnecting = expectEvent(c, 'participant-reconnecting');
        const timeout = (SHORT_WINDOW_S + 5) * 1000;
        const left = expectEvent(c, 'user-left', { timeout });
        const host = expectEvent(c, 'participants-updated', {
          timeout,
          filter: (list) => list.length === 1 && list[0].id === c.id,
        });
        proxy.cut();
        await reconnecting;
        const lostAt = Date.now();
        assert.deepEqual(await left, { participantId: bId, userName: 'Bob' });
        const waited = Date.now() - lostAt;
        assert.ok(waited >= SHORT_WINDOW_S * 500, `user-left came after the window, not at once (${waited} ms)`);
        const [me] = await host;
        assert.equal(me.isAdmin, true, 'the host role passed on');

        const back = nextConnect(b);
        proxy.restore();
        const fresh = await back;
        assert.equal(fresh.recovered, false);
        assert.notEqual(fresh.id, bId);
        const since = mark(b);
        const refused = expectEvent(b, 'error');
        b.emit('send-message', { message: 'am I still in?' });
        assertError(await refused, 'not_in_room', 'send-message');
        assert.deepEqual(eventsSince(b, since).map((e) => e.name), ['error'], 'nothing of the old session');
        await barrier(c);
        const leaves = eventLog(c).slice(cMark).filter((e) => e.name === 'user-left');
        assert.equal(leaves.length, 1, 'one user-left');
        b.close();
        c.close();
      } finally {
        await proxy.close();
      }
    });

    it('leave-room and disconnect() are departures at once, not blips', async () => {
      const proxy = await startProxy(server.urls[0]);
      try {
        const room = roomId('explicit');
        const b = await blippable(proxy, transports, 'Bob');
        const c = await server.connect({ name: 'Cat' });
        await join(b, room, 'Bob');
        await join(c, room, 'Cat', { others: [b] });
        const cMark = mark(c);
        let left = expectEvent(c, 'user-left');
        b.emit('leave-room');
        assert.equal((await left).participantId, b.id);
        await join(b, room, 'Bob', { others: [c] });
        left = expectEvent(c, 'user-left');
        const bId = b.id;
        b.disconnect();
        assert.equal((await left).participantId, bId, 'within 3 s: the window (120 s) does not apply');
        await expectNoEvent(c, 'participant-reconnecting', { since: cMark });
        const list = (await server.http('GET', `/api/room/${room}`)).body;
        assert.equal(list.participantCount, 1);
        c.close();
      } finally {
        await proxy.close();
      }
    });

    it('a forged pid, or the pid of an ended session, gets a fresh session with nothing of the old one', async () => {
      const proxy = await startProxy(short.urls[0]);
      try {
        const forged = await connect(short.urls[0], {
          transports,
          name: 'forger',
          auth: { pid: 'A'.repeat(32), offset: 'zzzz' },
        });
        assert.equal(forged.recovered, false);
        let refused = expectEvent(forged, 'error');
        forged.emit('send-message', { message: 'hello?' });
        assertError(await refused, 'not_in_room', 'send-message');

        // A real pid, once its session ended (the window passed).
        const room = roomId('stale');
        const b = await blippable(proxy, transports, 'Bob');
        const c = await short.connect({ name: 'Cat' });
        await join(b, room, 'Bob');
        await join(c, room, 'Cat', { others: [b] });
        const said = expectEvent(b, 'new-message');
        c.emit('send-message', { message: 'for Bob only' });
        await said;
        const bId = b.id;
        const { _pid: pid, _lastOffset: offset } = b;
        assert.match(pid, /^[\w-]{32}$/, 'the CONNECT answer carried a pid');
        assert.equal(typeof offset, 'string');
        const left = expectEvent(c, 'user-left', { timeout: (SHORT_WINDOW_S + 5) * 1000 });
        b.io.reconnection(false);
        proxy.cut();
        await left;
        const cMark = mark(c);
        const stale = await connect(short.urls[0], { transports, name: 'stale', auth: { pid, offset } });
        assert.equal(stale.recovered, false);
        assert.notEqual(stale.id, bId);
        assert.notEqual(stale._pid, pid, 'a new pid');
        refused = expectEvent(stale, 'error');
        stale.emit('send-message', { message: 'me again' });
        assertError(await refused, 'not_in_room', 'send-message');
        await barrier(stale);
        assert.deepEqual(eventLog(stale).map((e) => e.name), ['error', 'error'], 'nothing replayed');
        await expectNoEvent(c, 'user-joined', { since: cMark });
        await expectNoEvent(c, 'participant-reconnected', { since: cMark });
        for (const s of [forged, stale, b, c]) s.close();
      } finally {
        await proxy.close();
      }
    });

    it('a client sent to another instance after a blip starts afresh there; its old participant leaves at the end of the window', async (t) => {
      if (short.urls.length < 2) return t.skip('one instance (cluster mode only)');
      const proxy = await startProxy(short.urls[0]);
      try {
        const room = roomId('moved');
        const b = await blippable(proxy, transports, 'Bob');
        const c = await short.connect({ name: 'Cat' });
        await join(b, room, 'Bob');
        await join(c, room, 'Cat', { others: [b] });
        const bId = b.id;
        const timeout = (SHORT_WINDOW_S + 5) * 1000;
        const left = expectEvent(c, 'user-left', { timeout, filter: (d) => d.participantId === bId });
        proxy.cut();
        proxy.retarget(short.urls[1]);
        const back = nextConnect(b);
        proxy.restore();
        const fresh = await back;
        assert.equal(fresh.recovered, false);
        assert.notEqual(fresh.id, bId);
        await left;
        const info = (await short.http('GET', `/api/room/${room}`)).body;
        assert.equal(info.participantCount, 1, 'no ghost');
        b.close();
        c.close();
      } finally {
        await proxy.close();
      }
    });
  });
}

describe('RECOVERY_WINDOW_S=0: exactly as before recovery existed', () => {
  let server;
  before(async () => {
    server = await startServer({ RECOVERY_WINDOW_S: '0' });
  });
  after(() => server?.stop());

  for (const { name: transport, transports } of TRANSPORTS) {
    it(`no pid, no offsets, no connection field, and a blip is a departure (${transport})`, async () => {
      const proxy = await startProxy(server.urls[0]);
      try {
        const room = roomId('off');
        const b = await blippable(proxy, transports, 'Bob');
        const c = await server.connect({ name: 'Cat' });
        const joined = await join(b, room, 'Bob');
        assert.equal(b._pid, undefined, 'no pid in the CONNECT answer');
        assert.equal('connection' in joined.participant, false);
        await join(c, room, 'Cat', { others: [b] });
        for (const e of [...eventLog(b), ...eventLog(c)]) {
          assert.equal(e.args.length, 1, `${e.name} carries no offset`);
          const people = e.name === 'participants-updated' ? e.data : e.data?.participants ?? [];
          for (const p of people) assert.equal('connection' in p, false, JSON.stringify(p));
        }
        assert.equal('reconnecting' in (await healthOf(server.urls[0])), false);
        const cMark = mark(c);
        const bId = b.id;
        const left = expectEvent(c, 'user-left');
        const back = nextConnect(b);
        proxy.cut();
        assert.equal((await left).participantId, bId);
        proxy.restore();
        const fresh = await back;
        assert.equal(fresh.recovered, undefined, 'socket.io-client sets it only from a pid');
        assert.notEqual(fresh.id, bId);
        await expectNoEvent(c, 'participant-reconnecting', { since: cMark });
        b.close();
        c.close();
      } finally {
        await proxy.close();
      }
    });
  }
});
