// JWT room access (JWT_SECRET), with tokens minted by an independent library (npm `jose`):
// valid tokens in the handshake's auth and in the join-room payload (the payload's judged when
// both are there), every kind of bad token refused as `unauthorized` with nothing joined and
// no webhook, the `name` and `host` claims honoured, POST /api/create-room behind a "*"
// token, and the `token` subcommand's output accepted by jose.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT, UnsecuredJWT, jwtVerify } from 'jose';
import {
  SERVER_BIN,
  assertAckError,
  assertError,
  emitAck,
  expectEvent,
  expectNoEvent,
  join,
  mark,
  roomId,
  startServer,
} from './helpers.js';
import { newSecret, startReceiver } from './webhook-receiver.js';

const SECRET = 'a shared secret of the application backend, 32+ bytes';
const key = new TextEncoder().encode(SECRET);
const now = () => Math.floor(Date.now() / 1000);

/** A token signed with `secret` (default: the server's), HS256, valid for an hour. */
async function token(claims, { secret = key, exp = now() + 3600 } = {}) {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt();
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(secret);
}

describe('JWT room access', () => {
  const hookSecret = newSecret();
  let receiver;
  let server;
  before(async () => {
    receiver = await startReceiver(hookSecret);
    server = await startServer({ JWT_SECRET: SECRET, WEBHOOK_URLS: receiver.url, WEBHOOK_SECRET: hookSecret });
  });
  after(async () => {
    await server?.stop();
    await receiver?.stop();
  });

  it('admits a token given in the handshake auth, and one given in the payload', async () => {
    const room = roomId('jwt');
    const a = await server.connect({ auth: { token: await token({ room }) } });
    const ack = await emitAck(a, 'join-room', { roomId: room, userName: 'Ann' });
    assert.equal(ack.ok, true, JSON.stringify(ack));
    const b = await server.connect();
    const joined = await emitAck(b, 'join-room', { roomId: room, userName: 'Bob', token: await token({ room: '*' }) });
    assert.equal(joined.ok, true, JSON.stringify(joined));
    assert.deepEqual(joined.participants.map((p) => p.userName), ['Ann', 'Bob']);
  });

  it('judges the payload\'s token when both carry one', async () => {
    const room = roomId('jwt-both');
    const good = await token({ room });
    const bad = await token({ room: 'elsewhere' });
    const a = await server.connect({ auth: { token: good } });
    assertAckError(await emitAck(a, 'join-room', { roomId: room, userName: 'Ann', token: bad }), 'unauthorized');
    const b = await server.connect({ auth: { token: bad } });
    assert.equal((await emitAck(b, 'join-room', { roomId: room, userName: 'Bob', token: good })).ok, true);
  });

  it('refuses missing, expired, premature, other-room, wrongly signed, unsigned and garbage tokens; nothing joins, no webhook', async () => {
    const room = roomId('jwt-refused');
    const member = await server.connect();
    const memberRoom = roomId('jwt-member');
    await emitAck(member, 'join-room', { roomId: memberRoom, userName: 'Member', token: await token({ room: memberRoom }) });
    const since = mark(member);
    const bad = {
      missing: undefined,
      expired: await token({ room }, { exp: now() - 120 }),
      'not yet valid': await new SignJWT({ room }).setProtectedHeader({ alg: 'HS256' }).setNotBefore(now() + 600).setExpirationTime(now() + 3600).sign(key),
      'other room': await token({ room: 'another-room' }),
      'wrong secret': await token({ room }, { secret: new TextEncoder().encode('not the server secret') }),
      'alg none': new UnsecuredJWT({ room, exp: now() + 3600 }).encode(),
      'without exp': await token({ room }, { exp: null }),
      garbage: 'garbage.garbage.garbage',
    };
    for (const [what, t] of Object.entries(bad)) {
      for (const where of ['payload', 'handshake']) {
        if (where === 'handshake' && t === undefined) continue;
        const s = await server.connect(where === 'handshake' ? { auth: { token: t } } : {});
        const payload = { roomId: room, userName: 'Eve' };
        if (where === 'payload' && t !== undefined) payload.token = t;
        const error = expectEvent(s, 'error');
        const ack = await emitAck(s, 'join-room', payload);
        assertAckError(ack, 'unauthorized');
        assertError(await error, 'unauthorized', 'join-room');
        assert.ok(s.connected, `${what} (${where}): the connection stays`);
        s.close();
      }
      // A bad token on a room that exists changes nothing in it either.
      const s = await server.connect({ auth: { token: t } });
      assertAckError(await emitAck(s, 'join-room', { roomId: memberRoom, userName: 'Eve', token: t }), 'unauthorized');
      s.close();
    }
    assert.equal((await server.http('GET', `/api/room/${room}`)).status, 404, 'the refused room was never made');
    await expectNoEvent(member, 'user-joined', { since });
    const room2 = roomId('jwt-after');
    const late = await server.connect();
    await emitAck(late, 'join-room', { roomId: room2, userName: 'Late', token: await token({ room: room2 }) });
    await receiver.until((acc) => acc.some((e) => e.type === 'participant.joined' && e.data.roomId === room2));
    assert.deepEqual(receiver.ofRoom(room), [], 'no webhook for a refused join');
    assert.ok(receiver.accepted.every((e) => e.data.participant?.userName !== 'Eve'));
  });

  it('the name claim is the display name everywhere; the payload\'s userName is ignored', async () => {
    const room = roomId('jwt-name');
    const a = await server.connect();
    await emitAck(a, 'join-room', { roomId: room, userName: 'Ann', token: await token({ room }) });
    const b = await server.connect();
    const seen = expectEvent(a, 'user-joined');
    const joined = await emitAck(b, 'join-room', { roomId: room, userName: 'Mallory', token: await token({ room, name: 'Dr. Bob' }) });
    assert.equal(joined.ok, true);
    assert.equal(joined.participants[1].userName, 'Dr. Bob');
    const announced = await seen;
    assert.equal(announced.userName ?? announced.participant?.userName, 'Dr. Bob', JSON.stringify(announced));
    assert.ok(!JSON.stringify(announced).includes('Mallory'));
    // Without a userName at all, the claim is enough.
    const c = await server.connect();
    const third = await emitAck(c, 'join-room', { roomId: room, token: await token({ room, name: 'Cat' }) });
    assert.equal(third.ok, true, JSON.stringify(third));
    const bobId = b.id;
    await receiver.until((acc) => acc.some((e) => e.data.participant?.id === bobId));
    assert.equal(receiver.accepted.find((e) => e.data.participant?.id === bobId).data.participant.userName, 'Dr. Bob');
  });

  it('the host claim makes the joiner host', async () => {
    const room = roomId('jwt-host');
    const a = await server.connect();
    const first = await emitAck(a, 'join-room', { roomId: room, userName: 'Ann', token: await token({ room }) });
    assert.equal(first.participants[0].isAdmin, true);
    const b = await server.connect();
    const updated = expectEvent(a, 'participants-updated', { filter: (list) => list.length === 2 });
    const joined = await emitAck(b, 'join-room', { roomId: room, userName: 'Host', token: await token({ room, host: true }) });
    assert.equal(joined.ok, true);
    const admins = (list) => list.filter((p) => p.isAdmin).map((p) => p.userName);
    assert.deepEqual(admins(joined.participants), ['Host']);
    assert.deepEqual(admins(await updated), ['Host']);
  });

  it('POST /api/create-room needs a Bearer token for room "*"', async () => {
    for (const headers of [{}, { authorization: `Bearer ${await token({ room: 'R1' })}` }, { authorization: 'Bearer garbage' }]) {
      const res = await server.http('POST', '/api/create-room', { headers });
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.equal(typeof res.body.error, 'string');
    }
    const ok = await server.http('POST', '/api/create-room', {
      headers: { authorization: `Bearer ${await token({ room: '*' })}` },
    });
    assert.equal(ok.status, 200);
    assert.match(ok.body.roomId, /^[0-9A-F]{8}$/);
  });
});

describe('JWT off (no JWT_SECRET): nothing changes', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(() => server?.stop());

  it('joins and create-room need no token; a token is ignored', async () => {
    const s = await server.connect();
    await join(s, roomId('open'), 'Ann');
    assert.equal((await server.http('POST', '/api/create-room')).status, 200);
  });
});

describe('the token subcommand', () => {
  /** Runs the binary with `args`; resolves `{code, stdout, stderr}`. */
  async function run(args, env, { dotenv } = {}) {
    const cwd = mkdtempSync(path.join(tmpdir(), 'plm-token-'));
    if (dotenv !== undefined) writeFileSync(path.join(cwd, '.env'), dotenv);
    try {
      const child = spawn(SERVER_BIN, args, { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => {
        stdout += d;
      });
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      const code = await new Promise((resolve) => child.once('exit', resolve));
      return { code, stdout, stderr };
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  }

  it('prints one line, a token jose accepts with the claims asked for, and starts no server', async () => {
    const before = now();
    const { code, stdout, stderr } = await run(['token', '--room', 'Board-7', '--name', 'Ann Lee', '--host', '--ttl', '600'], { JWT_SECRET: SECRET });
    assert.equal(code, 0, stderr);
    const lines = stdout.split('\n');
    assert.equal(lines.length, 2, `one line then the newline: ${JSON.stringify(stdout)}`);
    assert.equal(lines[1], '');
    const { payload, protectedHeader } = await jwtVerify(lines[0], key, { algorithms: ['HS256'] });
    assert.equal(protectedHeader.alg, 'HS256');
    assert.equal(payload.room, 'Board-7');
    assert.equal(payload.name, 'Ann Lee');
    assert.equal(payload.host, true);
    assert.ok(payload.iat >= before - 1 && payload.iat <= now() + 1);
    assert.equal(payload.exp - payload.iat, 600);

    const plain = await run(['token', '--room', '*'], { JWT_SECRET: SECRET });
    assert.equal(plain.code, 0);
    const claims = (await jwtVerify(plain.stdout.trim(), key)).payload;
    assert.equal(claims.room, '*');
    assert.equal(claims.exp - claims.iat, 3600, 'default ttl');
    assert.ok(!('name' in claims) && !('host' in claims));
  });

  it('reads JWT_SECRET from .env too', async () => {
    const { code, stdout, stderr } = await run(['token', '--room', 'R'], {}, { dotenv: `JWT_SECRET="${SECRET}"\n` });
    assert.equal(code, 0, stderr);
    assert.equal((await jwtVerify(stdout.trim(), key)).payload.room, 'R');
  });

  it('without JWT_SECRET: exit 2, nothing on stdout', async () => {
    const { code, stdout, stderr } = await run(['token', '--room', 'R'], {});
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.match(stderr, /JWT_SECRET/);
  });
});
