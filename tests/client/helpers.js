// Shared test helpers: spawn the built server on an ephemeral port, make HTTP calls, connect
// socket.io clients over either transport, and await (or prove the absence of) events.
// Run: `cargo build` at the repo root, then `npm test` here. SERVER_BIN (absolute, or relative
// to this folder) overrides the default ../../target/debug/prolitemeet-server.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { io } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SERVER_BIN = path.resolve(
  here,
  process.env.SERVER_BIN ?? '../../target/debug/prolitemeet-server',
);

/** Every config variable, pinned, so neither the caller's env nor a `.env` file changes them. */
const DEFAULT_ENV = {
  HOST: '127.0.0.1',
  PORT: '0',
  LOG_FORMAT: 'json',
  RUST_LOG: 'info',
  FRONTEND_URL: 'http://localhost:5173',
  EMPTY_ROOM_TTL_SECS: '300',
  UNUSED_ROOM_TTL_SECS: '600',
  MAX_PARTICIPANTS: '50',
  CHAT_HISTORY_LIMIT: '200',
  // These tests send far faster than people do, and PROTOCOL.md sets no rates: the server's
  // own rate limits are off here (0 = no limit; older builds ignore these variables).
  CHAT_RATE_PER_SEC: '0',
  SIGNAL_RATE_PER_SEC: '0',
  JOIN_RATE_PER_SEC: '0',
  ROOM_CREATE_RATE_PER_SEC: '0',
  MAX_ROOMS_PER_ADDRESS: '0',
  RATE_LIMIT_DISCONNECT_AFTER: '0',
};

/** The two ways a frontend connects: WebSocket only, and the default polling-then-upgrade. */
export const TRANSPORTS = [
  { name: 'websocket', transports: ['websocket'] },
  { name: 'polling+upgrade', transports: undefined },
];

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let roomCounter = 0;
/** A fresh valid room id, unique within this process. */
export function roomId(prefix = 'room') {
  roomCounter += 1;
  return `${prefix}-${process.pid}-${roomCounter}`;
}

/** Servers still running; killed if the test process exits without stopping them. */
const children = new Set();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Starts the server with `env` on top of the defaults; resolves once it logged its address.
 * The returned handle makes HTTP calls, connects clients, and `stop()`s everything.
 * With TEST_CLUSTER_REDIS set (a redis:// URL), it starts two instances of a cluster on that
 * Redis instead (a key prefix of their own): clients and HTTP calls alternate between them,
 * so every test also checks that events cross instances exactly as on one.
 */
export async function startServer(env = {}) {
  const redis = process.env.TEST_CLUSTER_REDIS;
  const instances = [];
  try {
    if (redis) {
      const prefix = `js-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
      for (let i = 0; i < 2; i++) instances.push(await spawnInstance({ ...env, REDIS_URL: redis, REDIS_PREFIX: prefix }));
    } else {
      instances.push(await spawnInstance(env));
    }
  } catch (e) {
    await Promise.all(instances.map((i) => i.stop()));
    throw e;
  }
  let turn = 0;
  const next = () => instances[turn++ % instances.length].url;
  const sockets = new Set();
  return {
    /** The first instance. */
    url: instances[0].url,
    /** Every instance (one unless TEST_CLUSTER_REDIS is set). */
    urls: instances.map((i) => i.url),
    /** The server's last log lines, for failure messages. */
    logs: () => instances.map((i) => i.logs()).join('\n---\n'),
    /** `fetch` against the server; resolves `{status, headers, body}` (body parsed if JSON). */
    async http(method, pathname, { headers = {}, body } = {}) {
      const res = await fetch(next() + pathname, {
        method,
        headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed = text;
      if ((res.headers.get('content-type') ?? '').includes('application/json')) parsed = JSON.parse(text);
      return { status: res.status, headers: res.headers, body: parsed };
    },
    async health() {
      const res = await this.http('GET', '/health');
      assert.equal(res.status, 200);
      return res.body;
    },
    /** Connects a client (see `connect`) that `stop()` will close if the test did not. */
    async connect(opts = {}) {
      const socket = await connect(next(), opts);
      sockets.add(socket);
      return socket;
    },
    /** Closes every client this handle connected. */
    closeClients() {
      for (const socket of sockets) socket.close();
      sockets.clear();
    },
    /** Stops instance `index` alone (SIGTERM), as a cluster loses one member. */
    async stopInstance(index) {
      await instances[index].stop();
    },
    async stop() {
      this.closeClients();
      await Promise.all(instances.map((i) => i.stop()));
    },
  };
}

/** One server process with `env` on top of the defaults, once it logged its address. */
async function spawnInstance(env) {
  const cwd = mkdtempSync(path.join(tmpdir(), 'plm-client-')); // no `.env` to pick up
  const childEnv = { ...process.env, ...DEFAULT_ENV, ...env };
  delete childEnv.NODE_ENV;
  const child = spawn(SERVER_BIN, [], { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const lines = [];
  const keep = (line) => {
    lines.push(line);
    if (lines.length > 200) lines.shift();
  };
  createInterface({ input: child.stderr }).on('line', keep);
  const stdout = createInterface({ input: child.stdout });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

  const address = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not log its address within 10 s:\n${lines.join('\n')}`)),
      10_000,
    );
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${SERVER_BIN} (run \`cargo build\` first?): ${e.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${lines.join('\n')}`));
    });
    // Keep reading stdout for the server's whole life, so its pipe never fills up.
    stdout.on('line', (line) => {
      keep(line);
      try {
        const entry = JSON.parse(line);
        if (entry.address && /listening/i.test(entry.message ?? '')) {
          clearTimeout(timer);
          resolve(entry.address);
        }
      } catch {
        // not JSON: keep it for the failure message only
      }
    });
  });

  return {
    url: `http://${address}`,
    logs: () => lines.join('\n'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(cwd, { recursive: true, force: true });
    },
  };
}

const eventLogs = new WeakMap();
const labels = new WeakMap();

/** Every event `socket` received so far, in arrival order: `[{name, data}]`. */
export function eventLog(socket) {
  return eventLogs.get(socket);
}

function label(socket) {
  return labels.get(socket) ?? socket.id ?? '(socket)';
}

/**
 * Opens a socket.io client on `url` and resolves once connected. `transports` as socket.io-client
 * takes it (undefined = the default polling-then-upgrade). Reconnection is off unless asked for
 * (then it retries every 100-200 ms): a test must see a refused or dropped connection, not a
 * retry. `auth`: the handshake's auth object (the CONNECT payload). The event log keeps every argument of each event too
 * (`args`: with connection state recovery, the last one is the offset).
 */
export function connect(url, { transports, extraHeaders, name, timeout = 5_000, reconnection = false, auth } = {}) {
  const socket = io(url, {
    transports,
    extraHeaders,
    forceNew: true,
    reconnection,
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
    randomizationFactor: 0,
    timeout,
    auth,
  });
  const log = [];
  eventLogs.set(socket, log);
  if (name) labels.set(socket, name);
  socket.onAny((event, ...args) => log.push({ name: event, data: args[0], args }));
  return new Promise((resolve, reject) => {
    // Only the first connection's failure ends the socket: a reconnecting one (after a blip)
    // keeps retrying, as the frontends' sockets do.
    const failed = (err) => {
      socket.close();
      reject(err);
    };
    socket.once('connect', () => {
      socket.off('connect_error', failed);
      resolve(socket);
    });
    socket.once('connect_error', failed);
  });
}

/**
 * Resolves with the payload of the next `name` event on `socket` (that passes `filter`, if given)
 * received from now on. Call it before doing what triggers the event.
 */
export function expectEvent(socket, name, { timeout = 3_000, filter } = {}) {
  const start = eventLog(socket)?.length ?? 0;
  const promise = new Promise((resolve, reject) => {
    const onEvent = (data) => {
      if (filter && !filter(data)) return;
      clearTimeout(timer);
      socket.off(name, onEvent);
      resolve(data);
    };
    const timer = setTimeout(() => {
      socket.off(name, onEvent);
      const seen = (eventLog(socket) ?? []).slice(start).map((e) => `${e.name} ${JSON.stringify(e.data)}`);
      reject(
        new Error(
          `${label(socket)}: no "${name}" event${filter ? ' matching the filter' : ''} within ${timeout} ms; ` +
            `received meanwhile: ${seen.length ? `\n  ${seen.join('\n  ')}` : 'nothing'}`,
        ),
      );
    }, timeout);
    socket.on(name, onEvent);
  });
  promise.catch(() => {}); // a failing test may never await it; the awaiting one still gets the error
  return promise;
}

/**
 * A round trip through `socket`'s own packet queue: the server answers a refused `leave-room`
 * (payload `0`, which changes nothing) with an ack, and that ack reaches the client after every
 * packet the server had already queued for this socket. Costs one `error` event on `socket`.
 */
export async function barrier(socket) {
  const answer = await socket.timeout(3_000).emitWithAck('leave-room', 0);
  assert.equal(answer.ok, false, 'barrier: leave-room with payload 0 must be refused');
}

/** A position in `socket`'s event log, for `expectNoEvent(..., { since })`. */
export function mark(socket) {
  return eventLog(socket).length;
}

/**
 * Proves `socket` does NOT get a `name` event: everything the server queued for it so far is
 * flushed by a `barrier`, then a short grace period follows, and the log is checked from `since`
 * (a `mark` taken before the action that must not reach `socket`; default: this call). Use only
 * where the contract says nothing is sent.
 */
export async function expectNoEvent(socket, name, { since = mark(socket), within = 100 } = {}) {
  await barrier(socket);
  await new Promise((r) => setTimeout(r, within));
  const seen = eventLog(socket).slice(since).filter((e) => e.name === name).map((e) => e.data);
  assert.deepEqual(seen, [], `${label(socket)} must not receive "${name}", got ${JSON.stringify(seen)}`);
}

/** Emits with an ack callback and resolves with the ack's arguments (fails after `timeout`). */
export function emitAck(socket, event, ...args) {
  return socket.timeout(3_000).emitWithAck(event, ...args);
}

/**
 * `socket` joins `room` as `userName`; resolves `joined-room` once the joiner and every client in
 * `others` (already in the room) also got this join's `participants-updated`.
 */
export async function join(socket, room, userName, { others = [], userAvatar } = {}) {
  const count = others.length + 1;
  const full = (list) => Array.isArray(list) && list.length === count && list.some((p) => p.id === socket.id);
  const joined = expectEvent(socket, 'joined-room', { filter: (d) => d?.roomId === room });
  const updates = [socket, ...others].map((s) => expectEvent(s, 'participants-updated', { filter: full }));
  const payload = { roomId: room, userName };
  if (userAvatar !== undefined) payload.userAvatar = userAvatar;
  socket.emit('join-room', payload);
  const [data] = await Promise.all([joined, ...updates]);
  return data;
}

/** Polls `check` (async, returns truthy when done) every 50 ms, failing after `timeout`. */
export async function eventually(check, { timeout = 3_000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`${what} not reached within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Checks that `p` is a participant object with every field of PROTOCOL.md, aliases agreeing. */
export function assertParticipant(p, expected = {}) {
  assert.equal(typeof p, 'object');
  assert.notEqual(p, null);
  const fields = ['id', 'userName', 'name', 'avatar', 'joinedAt', 'isAudioMuted', 'isAudioEnabled',
    'isVideoOff', 'isVideoEnabled', 'isScreenSharing', 'isAdmin'];
  for (const f of fields) assert.ok(f in p, `participant lacks "${f}": ${JSON.stringify(p)}`);
  assert.equal(typeof p.id, 'string');
  assert.equal(typeof p.userName, 'string');
  assert.equal(p.name, p.userName, 'name and userName agree');
  assert.ok(p.avatar === null || typeof p.avatar === 'string', 'avatar is a string or null');
  assert.match(p.joinedAt, ISO);
  for (const f of ['isAudioMuted', 'isAudioEnabled', 'isVideoOff', 'isVideoEnabled', 'isScreenSharing', 'isAdmin']) {
    assert.equal(typeof p[f], 'boolean', `${f} is a boolean`);
  }
  assert.equal(p.isAudioMuted, !p.isAudioEnabled, 'isAudioMuted == !isAudioEnabled');
  assert.equal(p.isVideoOff, !p.isVideoEnabled, 'isVideoOff == !isVideoEnabled');
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(p[k], v, `participant.${k}`);
}

/** Checks an `error` event payload. */
export function assertError(err, code, event) {
  assert.deepEqual(Object.keys(err).sort(), ['code', 'event', 'message'], JSON.stringify(err));
  assert.equal(err.code, code, JSON.stringify(err));
  assert.equal(err.event, event);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0, 'error message is a sentence');
}

/** Checks a failed acknowledgement. */
export function assertAckError(ack, code) {
  assert.equal(ack.ok, false, JSON.stringify(ack));
  assert.equal(ack.code, code, JSON.stringify(ack));
  assert.equal(typeof ack.error, 'string');
  assert.ok(ack.error.length > 0);
}

/** Resolves once `socket`'s Engine.IO connection runs over WebSocket (after the upgrade, if any). */
export function awaitWebSocket(socket, { timeout = 3_000 } = {}) {
  const engine = socket.io.engine;
  if (engine.transport.name === 'websocket') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no upgrade to websocket within ${timeout} ms`)), timeout);
    engine.once('upgrade', () => {
      clearTimeout(timer);
      resolve();
    });
    engine.once('upgradeError', (e) => {
      clearTimeout(timer);
      reject(new Error(`upgrade to websocket failed: ${e.message}`));
    });
  });
}
