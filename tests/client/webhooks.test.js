// Signed webhooks (WEBHOOK_URLS), judged by the Standard Webhooks reference library: every
// event type with its body shape, one webhook-id per event kept on its retries, a failing then
// recovering receiver still gets every event in each room's order, a hanging receiver never
// delays a join, no chat text / SDP / ICE candidate in any body, each event delivered once
// (with TEST_CLUSTER_REDIS the same tests run on two instances), the metrics, and a bad
// WEBHOOK_SECRET stopping start-up with exit code 2.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { SERVER_BIN, connect, emitAck, expectEvent, ISO, join, roomId, startServer } from './helpers.js';
import { newSecret, startReceiver } from './webhook-receiver.js';

const TYPES = ['room.started', 'participant.joined', 'participant.left', 'room.finished'];

/** Every accepted event once: no webhook-id twice, no event (type, room, who) twice. */
function assertOnce(receiver) {
  const ids = receiver.accepted.map((e) => e.webhookId);
  assert.equal(new Set(ids).size, ids.length, 'a webhook-id accepted twice');
  const keys = receiver.accepted.map((e) =>
    JSON.stringify([e.type, e.data.roomId, e.data.participant?.id ?? e.data.participantId ?? null]),
  );
  assert.equal(new Set(keys).size, keys.length, `an event delivered twice: ${keys.join('\n')}`);
}

/** The accepted events of `room` as `[type, who, reason]`. */
const story = (receiver, room) =>
  receiver.ofRoom(room).map((e) => [e.type, e.data.participant?.userName ?? e.data.participantId ?? null, e.data.reason ?? null]);

describe('webhooks: every event type, signed, with its body', () => {
  const secret = newSecret();
  let receiver;
  let server;
  before(async () => {
    receiver = await startReceiver(secret);
    server = await startServer({
      WEBHOOK_URLS: receiver.url,
      WEBHOOK_SECRET: secret,
      EMPTY_ROOM_TTL_SECS: '0',
      UNUSED_ROOM_TTL_SECS: '1',
      ADMIN_TOKEN: 'admin-test-token',
    });
  });
  after(async () => {
    await server?.stop();
    await receiver?.stop();
  });

  it('a room\'s life: started, joined, left (left, kicked, disconnected), finished; never chat, SDP or ICE', async () => {
    const room = roomId('hooks');
    const ann = await server.connect({ name: 'ann' });
    const bob = await server.connect({ name: 'bob' });
    const cat = await server.connect({ name: 'cat' });
    await join(ann, room, 'Ann');
    await join(bob, room, 'Bob', { others: [ann] });
    await join(cat, room, 'Cat', { others: [ann, bob] });
    const [annId, bobId, catId] = [ann.id, bob.id, cat.id]; // a closed socket forgets its id

    const secrets = ['CHAT-TEXT-never-in-a-webhook', 'SDP-never-in-a-webhook', 'ICE-never-in-a-webhook'];
    const said = expectEvent(bob, 'new-message');
    ann.emit('send-message', { message: secrets[0] });
    await said;
    const offered = expectEvent(bob, 'webrtc-offer');
    ann.emit('webrtc-offer', { targetId: bob.id, offer: { type: 'offer', sdp: `v=0\r\n${secrets[1]}\r\n` } });
    await offered;
    const candidate = expectEvent(bob, 'webrtc-ice-candidate');
    ann.emit('webrtc-ice-candidate', { targetId: bob.id, candidate: { candidate: secrets[2], sdpMid: '0' } });
    await candidate;

    assert.equal((await emitAck(bob, 'leave-room', {})).ok, true);
    const kicked = await server.http('DELETE', `/api/admin/participants/${cat.id}`, {
      headers: { authorization: 'Bearer admin-test-token' },
    });
    assert.ok(kicked.status < 300, `kick answered ${kicked.status}`);
    ann.close();

    await receiver.until((acc) => acc.some((e) => e.type === 'room.finished' && e.data.roomId === room), {
      what: `room.finished of ${room}`,
    });
    assert.deepEqual(story(receiver, room), [
      ['room.started', null, null],
      ['participant.joined', 'Ann', null],
      ['participant.joined', 'Bob', null],
      ['participant.joined', 'Cat', null],
      ['participant.left', bobId, 'left'],
      ['participant.left', catId, 'kicked'],
      ['participant.left', annId, 'disconnected'],
      ['room.finished', null, null],
    ]);

    const events = receiver.ofRoom(room);
    for (const e of events) {
      assert.deepEqual(Object.keys(e).sort(), ['data', 'timestamp', 'type', 'webhookId']);
      assert.ok(TYPES.includes(e.type));
      assert.match(e.timestamp, ISO);
    }
    assert.deepEqual(events[0].data, { roomId: room, createdAt: events[0].data.createdAt });
    assert.match(events[0].data.createdAt, ISO);
    assert.deepEqual(events[1].data, { roomId: room, participant: { id: annId, userName: 'Ann', isAdmin: true } });
    assert.deepEqual(events[2].data, { roomId: room, participant: { id: bobId, userName: 'Bob', isAdmin: false } });
    assert.deepEqual(events[4].data, { roomId: room, participantId: bobId, reason: 'left' });
    assert.deepEqual(Object.keys(events[7].data).sort(), ['duration_s', 'roomId']);
    assert.ok(Number.isInteger(events[7].data.duration_s) && events[7].data.duration_s >= 0);

    for (const attempt of receiver.attempts) {
      assert.ok(attempt.verified, `signature refused by standardwebhooks: ${JSON.stringify(attempt.event)}`);
      assert.equal(attempt.method, 'POST');
      assert.equal(attempt.contentType, 'application/json');
      assert.match(attempt.id, /^msg_[0-9a-f]+$/);
      for (const s of secrets) assert.ok(!attempt.raw.includes(s), `a webhook carried "${s}": ${attempt.raw}`);
    }
    assertOnce(receiver);
  });

  it('host moderation: an admitted waiter joins, a kick is "kicked", end-room finishes the room (its host "left")', async () => {
    const room = roomId('hooks-mod');
    const ann = await server.connect({ name: 'ann' });
    const bob = await server.connect({ name: 'bob' });
    const cat = await server.connect({ name: 'cat' });
    await join(ann, room, 'Ann');
    await join(bob, room, 'Bob', { others: [ann] });
    const [annId, bobId, catId] = [ann.id, bob.id, cat.id]; // a kicked socket forgets its id
    assert.equal((await emitAck(ann, 'set-lobby', { enabled: true })).ok, true);
    const asked = expectEvent(ann, 'admission-requested');
    assert.equal((await emitAck(cat, 'join-room', { roomId: room, userName: 'Cat' })).waiting, true);
    await asked;
    const admitted = expectEvent(cat, 'joined-room');
    assert.equal((await emitAck(ann, 'admit-participant', { participantId: catId })).ok, true);
    await admitted;
    assert.equal((await emitAck(ann, 'kick-participant', { participantId: bobId })).ok, true);
    assert.equal((await emitAck(ann, 'end-room')).ok, true);
    await receiver.until((acc) => acc.some((e) => e.type === 'room.finished' && e.data.roomId === room), {
      what: `room.finished of ${room}`,
    });
    assert.deepEqual(story(receiver, room), [
      ['room.started', null, null],
      ['participant.joined', 'Ann', null],
      ['participant.joined', 'Bob', null],
      ['participant.joined', 'Cat', null],
      ['participant.left', bobId, 'kicked'],
      ['participant.left', annId, 'left'],
      ['participant.left', catId, 'kicked'],
      ['room.finished', null, null],
    ]);
    assertOnce(receiver);
  });

  it('a switch to another room leaves the first one with reason "left"', async () => {
    const [first, second] = [roomId('switch-a'), roomId('switch-b')];
    const s = await server.connect();
    await join(s, first, 'Ann');
    const id = s.id;
    await join(s, second, 'Ann');
    await receiver.until((acc) => acc.some((e) => e.type === 'room.finished' && e.data.roomId === first));
    assert.deepEqual(story(receiver, first), [
      ['room.started', null, null],
      ['participant.joined', 'Ann', null],
      ['participant.left', id, 'left'],
      ['room.finished', null, null],
    ]);
    await receiver.until((acc) => acc.some((e) => e.type === 'participant.joined' && e.data.roomId === second));
    assert.deepEqual(story(receiver, second), [
      ['room.started', null, null],
      ['participant.joined', 'Ann', null],
    ]);
    s.close();
  });

  it('a created room nobody joined: started, then finished after UNUSED_ROOM_TTL_SECS', async () => {
    const created = await server.http('POST', '/api/create-room');
    assert.equal(created.status, 200);
    const room = created.body.roomId;
    await receiver.until((acc) => acc.some((e) => e.type === 'room.finished' && e.data.roomId === room), {
      what: `room.finished of the unused ${room}`,
    });
    assert.deepEqual(story(receiver, room), [
      ['room.started', null, null],
      ['room.finished', null, null],
    ]);
    assert.ok(receiver.ofRoom(room)[1].data.duration_s >= 1);
    assertOnce(receiver);
  });

  it('counts deliveries in /metrics', async () => {
    await receiver.until((acc) => acc.length > 0);
    const metrics = await Promise.all(server.urls.map((u) => fetch(`${u}/metrics`).then((r) => r.text())));
    const all = metrics.join('\n');
    assert.match(all, /webhook_deliveries_total\{outcome="delivered"\} [1-9]/);
    assert.match(all, /webhook_queue_depth \d+/);
  });
});

describe('webhooks: a receiver failing (500, timeouts) then recovering', () => {
  const secret = newSecret();
  let receiver;
  let server;
  before(async () => {
    // Each event's first attempt hangs past WEBHOOK_TIMEOUT_MS, its second gets a 500, its
    // third a 200: every event is retried twice (backoff 1 s, then 2 s).
    const tries = new Map();
    receiver = await startReceiver(secret, {
      answer: ({ id }) => {
        const n = (tries.get(id) ?? 0) + 1;
        tries.set(id, n);
        return n === 1 ? 'hang' : n === 2 ? 500 : 200;
      },
    });
    server = await startServer({
      WEBHOOK_URLS: receiver.url,
      WEBHOOK_SECRET: secret,
      WEBHOOK_TIMEOUT_MS: '300',
      EMPTY_ROOM_TTL_SECS: '0',
    });
  });
  after(async () => {
    await server?.stop();
    await receiver?.stop();
  });

  it('every event arrives, each room in order, under one webhook-id per event', async () => {
    const rooms = [roomId('retry-a'), roomId('retry-b')];
    for (const room of rooms) {
      const x = await server.connect();
      const y = await server.connect();
      await join(x, room, 'X');
      await join(y, room, 'Y', { others: [x] });
      const left = expectEvent(x, 'user-left');
      y.close();
      await left;
      x.close();
    }
    for (const room of rooms) {
      await receiver.until((acc) => acc.some((e) => e.type === 'room.finished' && e.data.roomId === room), {
        timeout: 30_000,
        what: `room.finished of ${room}`,
      });
      assert.deepEqual(
        story(receiver, room).map(([type, who, reason]) => [type, type === 'participant.left' ? reason : who]),
        [
          ['room.started', null],
          ['participant.joined', 'X'],
          ['participant.joined', 'Y'],
          ['participant.left', 'disconnected'],
          ['participant.left', 'disconnected'],
          ['room.finished', null],
        ],
      );
    }
    // Every event took three attempts under the same id, with the same body.
    for (const event of rooms.flatMap((r) => receiver.ofRoom(r))) {
      const tries = receiver.attempts.filter((a) => a.id === event.webhookId);
      assert.equal(tries.length, 3, `${event.type}: ${tries.length} attempts`);
      assert.ok(tries.every((t) => t.verified && t.raw === tries[0].raw));
      assert.ok(Number(tries[2].timestamp) >= Number(tries[0].timestamp), 'webhook-timestamp is each attempt\'s');
    }
    assertOnce(receiver);
  });
});

describe('webhooks: a receiver that never answers', () => {
  const secret = newSecret();
  let receiver;
  let server;
  before(async () => {
    receiver = await startReceiver(secret, { answer: () => 'hang' });
    server = await startServer({
      WEBHOOK_URLS: receiver.url,
      WEBHOOK_SECRET: secret,
      WEBHOOK_TIMEOUT_MS: '30000',
    });
  });
  after(async () => {
    await server?.stop();
    await receiver?.stop();
  });

  it('never delays a join: join acks come back while every delivery hangs', async () => {
    const latencies = [];
    for (let i = 0; i < 20; i++) {
      const s = await server.connect();
      const started = performance.now();
      const ack = await emitAck(s, 'join-room', { roomId: roomId('hang'), userName: `P${i}` });
      latencies.push(performance.now() - started);
      assert.equal(ack.ok, true, JSON.stringify(ack));
    }
    assert.ok(receiver.hanging > 0, 'deliveries are stuck in the receiver meanwhile');
    const worst = Math.max(...latencies);
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(`join-ack latency with deliveries hanging: median ${sorted[10].toFixed(1)} ms, worst ${worst.toFixed(1)} ms`);
    // A join that waited for its webhook would take WEBHOOK_TIMEOUT_MS (30 s).
    assert.ok(worst < 5_000, `a join took ${worst} ms`);
  });
});

/** Every instance's /metrics, together. */
const metricsOf = async (server) =>
  (await Promise.all(server.urls.map((u) => fetch(`${u}/metrics`).then((r) => r.text())))).join('\n');

/** The sum of `series` (a metric with its labels) over every instance. */
const sumOf = (text, series) =>
  text
    .split('\n')
    .filter((line) => line.startsWith(`${series} `))
    .reduce((sum, line) => sum + Number(line.split(' ')[1]), 0);

describe('webhooks: bounded (WEBHOOK_QUEUE_MAX=3, the receiver hangs)', () => {
  const secret = newSecret();
  let receiver;
  let server;
  before(async () => {
    receiver = await startReceiver(secret, { answer: () => 'hang' });
    server = await startServer({ WEBHOOK_URLS: receiver.url, WEBHOOK_SECRET: secret, WEBHOOK_QUEUE_MAX: '3' });
  });
  after(async () => {
    await server?.stop();
    await receiver?.stop();
  });

  it('drops the oldest events past the bound and counts them', async () => {
    for (let i = 0; i < 8; i++) {
      const s = await server.connect();
      assert.equal((await emitAck(s, 'join-room', { roomId: roomId('bounded'), userName: `P${i}` })).ok, true);
    }
    // 8 rooms made 16 events; at most 3 wait per instance.
    const text = await metricsOf(server);
    const dropped = sumOf(text, 'webhook_dropped_total{reason="queue_full"}');
    assert.ok(dropped >= 16 - 3 * server.urls.length, `dropped ${dropped}:\n${text}`);
    for (const depth of text.split('\n').filter((l) => l.startsWith('webhook_queue_depth '))) {
      assert.ok(Number(depth.split(' ')[1]) <= 3, depth);
    }
  });
});

describe('webhooks: an event refused WEBHOOK_MAX_ATTEMPTS times is given up', () => {
  const secret = newSecret();
  let receiver;
  let server;
  before(async () => {
    // room.started is refused for good; everything after it is accepted.
    receiver = await startReceiver(secret, { answer: ({ event }) => (event.type === 'room.started' ? 500 : 200) });
    server = await startServer({ WEBHOOK_URLS: receiver.url, WEBHOOK_SECRET: secret, WEBHOOK_MAX_ATTEMPTS: '2' });
  });
  after(async () => {
    await server?.stop();
    await receiver?.stop();
  });

  it('after two attempts the room\'s next event goes, and the drop is counted', async () => {
    const room = roomId('give-up');
    const s = await server.connect();
    await join(s, room, 'Ann');
    await receiver.until((acc) => acc.some((e) => e.type === 'participant.joined' && e.data.roomId === room));
    const started = receiver.attempts.filter((a) => a.event.type === 'room.started' && a.event.data.roomId === room);
    assert.equal(started.length, 2, 'room.started tried WEBHOOK_MAX_ATTEMPTS times');
    assert.equal(new Set(started.map((a) => a.id)).size, 1);
    const text = await metricsOf(server);
    assert.equal(sumOf(text, 'webhook_dropped_total{reason="max_attempts"}'), 1, text);
    assert.ok(sumOf(text, 'webhook_deliveries_total{outcome="rejected"}') >= 2, text);
  });
});

describe('webhooks in a cluster: the instance that made a room stops', { skip: !process.env.TEST_CLUSTER_REDIS && 'needs TEST_CLUSTER_REDIS (tests/cluster-suite.sh)' }, () => {
  const secret = newSecret();
  let receiver;
  let server;
  before(async () => {
    receiver = await startReceiver(secret);
    server = await startServer({ WEBHOOK_URLS: receiver.url, WEBHOOK_SECRET: secret, EMPTY_ROOM_TTL_SECS: '0' });
  });
  after(async () => {
    await server?.stop();
    await receiver?.stop();
  });

  it('its participants leave with reason "timeout", and the room\'s webhooks go on from the other instance, once and in order', async () => {
    assert.equal(server.urls.length, 2);
    const room = roomId('heir');
    const owner = await connect(server.urls[0]);
    await join(owner, room, 'Ann');
    const ownerId = owner.id;
    const other = await connect(server.urls[1]);
    await join(other, room, 'Bob', { others: [owner] });
    const otherId = other.id;
    const gone = expectEvent(other, 'user-left', { timeout: 10_000 });
    await server.stopInstance(0);
    await gone;
    other.close();
    await receiver.until((acc) => acc.some((e) => e.type === 'room.finished' && e.data.roomId === room), {
      timeout: 15_000,
      what: `room.finished of ${room}`,
    });
    assert.deepEqual(story(receiver, room), [
      ['room.started', null, null],
      ['participant.joined', 'Ann', null],
      ['participant.joined', 'Bob', null],
      ['participant.left', ownerId, 'timeout'],
      ['participant.left', otherId, 'disconnected'],
      ['room.finished', null, null],
    ]);
    assertOnce(receiver);
  });
});

describe('webhooks: start-up configuration', () => {
  for (const [what, env] of [
    ['no WEBHOOK_SECRET', {}],
    ['a short WEBHOOK_SECRET', { WEBHOOK_SECRET: `whsec_${Buffer.alloc(16).toString('base64')}` }],
    ['a malformed WEBHOOK_SECRET', { WEBHOOK_SECRET: 'not-a-secret' }],
  ]) {
    it(`WEBHOOK_URLS with ${what}: exit code 2, naming WEBHOOK_SECRET`, async () => {
      const child = spawn(SERVER_BIN, [], {
        env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', WEBHOOK_URLS: 'http://127.0.0.1:9/hooks', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      const code = await new Promise((resolve) => child.once('exit', resolve));
      assert.equal(code, 2, stderr);
      assert.match(stderr, /WEBHOOK_SECRET/);
    });
  }
});
