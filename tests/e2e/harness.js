// Harness of the browser e2e test: a temporary STATIC_DIR with the test page, a coturn TURN
// server on a loopback port, the server started on both, Debian's Chromium through
// playwright-core, one browser context per participant, named steps with their own timeouts,
// and artifacts on failure.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = path.join(here, 'artifacts');

export const CHROMIUM_ARGS = [
  // Headless, quiet, nothing fetched from the network.
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // A fake camera (moving test pattern) and microphone (beeps), granted without a prompt.
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  // ICE over loopback: host candidates as plain IPs (not mDNS names), and loopback
  // candidates at all (without this a loopback-only machine never connects).
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
  // Remote <video> elements carry audio; let them autoplay without a user gesture.
  '--autoplay-policy=no-user-gesture-required',
];

// ---- server -----------------------------------------------------------------------------

/** Copies the test page and socket.io-client's browser bundle into a fresh folder. */
function assembleStaticDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prolitemeet-e2e-'));
  const site = path.join(dir, 'site');
  fs.mkdirSync(path.join(site, 'vendor'), { recursive: true });
  for (const f of fs.readdirSync(path.join(here, 'page'))) {
    fs.copyFileSync(path.join(here, 'page', f), path.join(site, f));
  }
  const bundle = path.join(here, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js');
  if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing: run \`npm ci\` in tests/e2e (or tests/e2e/run.sh)`);
  fs.copyFileSync(bundle, path.join(site, 'vendor', 'socket.io.min.js'));
  return { dir, site };
}

/**
 * Starts the server on an ephemeral port with STATIC_DIR = the test page: a same-origin
 * deployment, so FRONTEND_URL is left unset (the page's origin is not on the allow-list;
 * the server must accept requests from its own origin). E2E_FRONTEND_URL, if set, is passed
 * as FRONTEND_URL instead. `turn` (from startTurn) configures its ICE servers: that TURN
 * server only (TURN_URLS, TURN_SECRET), no STUN (STUN_URLS=none: nothing outside loopback).
 * `env`: more variables for the server (e.g. NEGOTIATION_ASSIST; unset otherwise).
 */
export async function startServer({ turn, redis, prefix, name = 'server', env: extra = {} } = {}) {
  const bin = process.env.SERVER_BIN || path.resolve(here, '../../target/debug/prolitemeet-server');
  if (!fs.existsSync(bin)) throw new Error(`server binary ${bin} not found: run \`cargo build\` (or tests/e2e/run.sh), or set SERVER_BIN`);
  const { dir, site } = assembleStaticDir();
  const env = { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_FORMAT: 'json', STATIC_DIR: site };
  // Every call makes a room from 127.0.0.1: the per-address room limits are not under test here.
  env.ROOM_CREATE_RATE_PER_SEC = '0';
  env.MAX_ROOMS_PER_ADDRESS = '0';
  delete env.FRONTEND_URL;
  for (const v of ['STUN_URLS', 'TURN_URLS', 'TURN_SECRET', 'TURN_TTL_SECS', 'ICE_RATE_PER_SEC', 'ICE_BURST']) delete env[v];
  if (turn) Object.assign(env, { STUN_URLS: 'none', TURN_URLS: turn.url, TURN_SECRET: turn.secret, TURN_TTL_SECS: '600' });
  if (process.env.E2E_FRONTEND_URL) env.FRONTEND_URL = process.env.E2E_FRONTEND_URL;
  delete env.REDIS_URL;
  delete env.REDIS_PREFIX;
  if (redis) Object.assign(env, { REDIS_URL: redis.url, REDIS_PREFIX: prefix || 'e2e' });
  delete env.NEGOTIATION_ASSIST;
  delete env.RECOVERY_WINDOW_S;
  delete env.RECOVERY_BUFFER_MAX;
  Object.assign(env, extra);
  try {
    return await spawnServer(bin, env, dir, name);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Spawns the server binary with `env`, its working directory `dir` (a temporary folder,
 * removed on stop), and resolves once its first JSON log line names the listening address.
 */
export async function spawnServer(bin, env, dir, name) {
  // cwd = the temporary folder, so a developer's .env in the repo is not read.
  const child = spawn(bin, [], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const keep = (stream, tag) => readline.createInterface({ input: stream }).on('line', (l) => {
    lines.push(tag ? `${tag} ${l}` : l);
    if (lines.length > 5000) lines.shift();
  });
  keep(child.stderr, '[stderr]');
  const out = readline.createInterface({ input: child.stdout });
  const address = await new Promise((resolve, reject) => {
    child.once('error', reject); // e.g. not executable
    const timer = setTimeout(() => reject(new Error(`server did not report its address within 15 s:\n${lines.join('\n')}`)), 15000);
    out.on('line', (l) => {
      lines.push(l);
      if (lines.length > 5000) lines.shift();
      try {
        const rec = JSON.parse(l);
        if (rec.address) {
          clearTimeout(timer);
          resolve(rec.address);
        }
      } catch {
        // not JSON: keep reading
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${lines.join('\n')}`));
    });
  }).catch((e) => {
    child.kill('SIGKILL');
    throw e;
  });
  const port = Number(address.split(':').pop());
  const origin = `http://127.0.0.1:${port}`;
  return {
    name,
    origin,
    frontendUrl: env.FRONTEND_URL ?? '(unset)',
    log: () => lines.join('\n'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await once(child, 'exit').catch(() => {});
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- Redis (cluster mode) ---------------------------------------------------------------

/**
 * A private redis-server on a free loopback port, no persistence, for a cluster of server
 * instances; `null` when redis-server is not installed (the cluster call is then skipped,
 * unless CI is set).
 */
export async function startRedis() {
  const probe = spawn('redis-server', ['--version'], { stdio: 'ignore' });
  const installed = await new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.once('exit', (code) => resolve(code === 0));
  });
  if (!installed) {
    if (process.env.CI) throw new Error('redis-server is not installed (apt-get install redis-server)');
    return null;
  }
  const port = await freeTurnPort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream }).on('line', (l) => lines.push(l));
  }
  const deadline = Date.now() + 10000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('error', () => resolve(false));
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (d) => { socket.destroy(); resolve(d.toString().startsWith('+PONG')); });
    });
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer PING within 10 s:\n${lines.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: 'redis',
    url: `redis://127.0.0.1:${port}`,
    log: () => lines.join('\n'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit').catch(() => {});
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- TURN server (coturn) ---------------------------------------------------------------

export const TURN_REALM = 'prolitemeet.test';

/** A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both). */
async function freeTurnPort() {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = dgram.createSocket('udp4');
    await new Promise((resolve, reject) => udp.once('error', reject).bind(0, '127.0.0.1', resolve));
    const { port } = udp.address();
    const tcp = net.createServer();
    const ok = await new Promise((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) await new Promise((resolve) => tcp.close(resolve));
    udp.close();
    if (ok) return port;
  }
  throw new Error('no port free for both UDP and TCP on 127.0.0.1');
}

/** One STUN Binding request to 127.0.0.1:port; resolves true on a Binding success response. */
function stunBinding(port, ms) {
  return new Promise((resolve) => {
    const sock = dgram.createSocket('udp4');
    const txid = crypto.randomBytes(12);
    const req = Buffer.alloc(20);
    req.writeUInt16BE(0x0001, 0); // Binding request, no attributes
    req.writeUInt32BE(0x2112a442, 4); // magic cookie
    txid.copy(req, 8);
    const done = (ok) => {
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    sock.on('error', () => done(false));
    sock.on('message', (m) => {
      if (m.length >= 20 && m.readUInt16BE(0) === 0x0101 && m.subarray(8, 20).equals(txid)) done(true);
    });
    sock.send(req, port, '127.0.0.1');
  });
}

/**
 * Starts coturn (`turnserver`, Debian package coturn) in the foreground on a free loopback
 * port, with TURN REST API credentials (`use-auth-secret` + a random `static-auth-secret`),
 * plain UDP/TCP only, relaying on 127.0.0.1 to loopback peers. Started by this process, so
 * inside run.sh's network namespace when there is one. Verbose log (`-v`): one line per
 * allocation, and each session's relayed bytes when it closes ("peer usage").
 * Resolves once it answers a STUN Binding request.
 */
export async function startTurn() {
  const secret = `e2e-${crypto.randomBytes(12).toString('hex')}`;
  const port = await freeTurnPort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prolitemeet-e2e-turn-'));
  const args = [
    '-n', // no configuration file: everything is on this command line
    '-v',
    '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`, `--realm=${TURN_REALM}`,
    '--no-tls', '--no-dtls', '--no-cli', '--allow-loopback-peers',
    '--log-file=stdout', '--simple-log',
    // Keep its pid file and (unused) user database out of /var.
    `--pidfile=${path.join(dir, 'turnserver.pid')}`, `--userdb=${path.join(dir, 'turndb')}`,
  ];
  const child = spawn('turnserver', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream }).on('line', (l) => {
      lines.push(l);
      if (lines.length > 20000) lines.shift();
    });
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await once(child, 'exit').catch(() => {});
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await new Promise((resolve, reject) => {
      child.once('error', (e) => reject(e.code === 'ENOENT'
        ? new Error('turnserver not found: apt-get install -y coturn (or tests/e2e/run.sh)') : e));
      child.once('exit', (code, signal) => reject(new Error(`turnserver exited (${code ?? signal}) before answering STUN:\n${lines.join('\n')}`)));
      const deadline = Date.now() + 10000;
      (async () => {
        while (Date.now() < deadline) {
          if (child.exitCode !== null || child.signalCode !== null) return;
          if (await stunBinding(port, 200)) return resolve();
        }
        reject(new Error(`turnserver did not answer STUN on 127.0.0.1:${port} within 10 s:\n${lines.join('\n')}`));
      })();
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    name: 'coturn',
    port,
    secret,
    realm: TURN_REALM,
    url: `turn:127.0.0.1:${port}?transport=udp`,
    log: () => lines.join('\n'),
    stop,
  };
}

// ---- browser ----------------------------------------------------------------------------

export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) throw new Error(`${executablePath} not found: apt-get install -y chromium (or tests/e2e/run.sh), or set CHROMIUM_PATH`);
  // playwright-core gives the browser a fresh, empty --user-data-dir of its own.
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 60000 });
}

/** One participant: its own browser context (own cookies, storage, media permissions). */
export async function openParticipant(browser, { url, name }) {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.stack || e}`));
  page.on('requestfailed', (r) => consoleLines.push(`[requestfailed] ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) consoleLines.push(`[http ${r.status()}] ${r.request().method()} ${r.url()}`);
  });
  const participant = { name, context, page, consoleLines, id: null };
  await page.goto(url, { waitUntil: 'load', timeout: 15000 });
  return participant;
}

// ---- steps ------------------------------------------------------------------------------

const slug = (s) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

/** What a page sees, for failure messages and artifacts. */
export async function diagnose(p) {
  try {
    return await p.page.evaluate(() => {
      // The negotiation pages (page/negotiation.js) keep a state of their own.
      if (window.neg) return { neg: window.neg.state() };
      const s = window.meet ? window.meet.state() : null;
      const videos = [...document.querySelectorAll('video.remote')].map((v) => ({
        id: v.dataset.participantId,
        videoWidth: v.videoWidth,
        readyState: v.readyState,
        paused: v.paused,
        currentTime: Number(v.currentTime.toFixed(2)),
        frames: v.getVideoPlaybackQuality().totalVideoFrames,
      }));
      return { state: s, videos, count: document.getElementById('count')?.textContent };
    });
  } catch (e) {
    return { unavailable: String(e) };
  }
}

function summary(d) {
  if (d.neg) {
    const s = d.neg;
    return [`self=${s.selfId} pattern=${s.pattern} camera=${s.cameraAt ? s.cameraAt - s.joinedAt : 'none'} ms after join`,
      `remotes=${JSON.stringify(s.remotes)}`, `sent=${JSON.stringify(s.sent)} received=${JSON.stringify(s.received)}`,
      `errors=${JSON.stringify(s.errors)}`, `log tail=${JSON.stringify(s.log.slice(-25))}`].join('\n      ');
  }
  if (!d.state) return JSON.stringify(d);
  const s = d.state;
  const peers = Object.entries(s.peers).map(([id, p]) => `${id}:${p.connectionState}/${p.iceConnectionState}/${p.signalingState}` +
    ` tracks=${p.tracks.join('+')} ${p.stats ? `audioPkts=${p.stats.audioPacketsReceived} frames=${p.stats.videoFramesDecoded} pair=${p.stats.pair}` : ''}` +
    `${p.stats?.selected ? ` types=${p.stats.selected.local?.candidateType}/${p.stats.selected.remote?.candidateType}` : ''}` +
    ` candidates=${p.localCandidates.length}${p.candidateErrors?.length ? ` candidateErrors=${JSON.stringify(p.candidateErrors)}` : ''}`);
  return [
    `self=${s.selfId} joined=${s.joined} left=${s.left} socket=${s.socketConnected}/${s.transport} count=${d.count}`,
    `participants=${JSON.stringify(s.participants.map((p) => `${p.name}#${p.id}${p.audioMuted ? ' muted' : ''}${p.isAdmin ? ' host' : ''}`))}`,
    `peers=${JSON.stringify(peers)}`,
    `videos=${JSON.stringify(d.videos)}`,
    `messages=${JSON.stringify(s.messages.map((m) => `${m.userName}: ${m.message}`))}`,
    `mediaEvents=${JSON.stringify(s.mediaEvents)} errors=${JSON.stringify(s.errors)}`,
    ...(s.ice ? [`ice=${JSON.stringify({ source: s.ice.source, policy: s.ice.policy, api: s.ice.api, urls: s.ice.iceServers?.map((x) => x.urls) })}`] : []),
    `log tail=${JSON.stringify(s.log.slice(-8))}`,
  ].join('\n      ');
}

/** `services`: the server, or a list of {name, log()} (server, coturn), whose logs are saved. */
export async function saveArtifacts(label, step, participants, services) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const base = `${slug(label)}--${slug(step)}`;
  for (const p of participants) {
    const prefix = path.join(ARTIFACTS, `${base}--${slug(p.name)}`);
    await p.page.screenshot({ path: `${prefix}.png`, fullPage: true, timeout: 10000 }).catch(() => {});
    const d = await diagnose(p);
    fs.writeFileSync(`${prefix}.state.json`, JSON.stringify(d, null, 2));
    fs.writeFileSync(`${prefix}.console.log`, p.consoleLines.join('\n'));
  }
  for (const s of [].concat(services || [])) fs.writeFileSync(path.join(ARTIFACTS, `${base}--${slug(s.name || 'server')}.log`), s.log());
  return ARTIFACTS;
}

/**
 * Runs named steps, each with its own time budget. A failing or late step throws an error
 * naming the call and the step, with what every page saw, after saving artifacts.
 */
export class Steps {
  constructor(label, participants, services, diagnostic = () => {}) {
    Object.assign(this, { label, participants, services, diagnostic, timings: [] });
  }

  async run(name, ms, fn) {
    const started = Date.now();
    // The step's waits share its budget (`remaining()`) and fail with their own message;
    // the timer is only a safety net for anything else that hangs.
    const ctx = { remaining: () => Math.max(100, ms - (Date.now() - started)) };
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms + 2000);
    });
    try {
      await Promise.race([fn(ctx), late]);
    } catch (e) {
      const seen = [];
      for (const p of this.participants) seen.push(`    ${p.name}: ${summary(await diagnose(p))}`);
      const dir = await saveArtifacts(this.label, name, this.participants, this.services);
      const err = new Error(`[${this.label}] step "${name}" failed: ${e.message}\n  what each page saw:\n${seen.join('\n')}\n  screenshots and logs: ${dir}`);
      err.cause = e;
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const took = Date.now() - started;
    this.timings.push(`${name} ${took} ms`);
    this.diagnostic(`${this.label}: step "${name}" passed in ${took} ms`);
  }
}

/** page.waitForFunction with a message saying what was awaited, on which page. */
export async function waitOn(p, what, predicate, arg, timeout) {
  try {
    await p.page.waitForFunction(predicate, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`${p.name}: ${what}: ${e.message.split('\n')[0]}`);
  }
}

export async function getJson(url) {
  const res = await fetch(url);
  return { status: res.status, body: await res.json().catch(() => null) };
}
