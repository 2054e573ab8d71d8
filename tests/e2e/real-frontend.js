#!/usr/bin/env node
// Manual judge (not part of CI): drives a BUILT copy of the public ProLiteMeet React frontend
// (github.com/Himanshu-86/EventHub, commit c6b8ff3, folder project/video/video/project),
// unchanged, against this server, the way people use it: each person opens the home page in
// their own Chromium window (fake camera), the first creates a meeting, the others type its
// id, every one enters a name and joins. Then it measures, on every page, whether the remote
// <video> of every other person shows LIVE video: frames decoded by that element
// (getVideoPlaybackQuality().totalVideoFrames) keep increasing with videoWidth > 0, not
// merely a track being present. This repository holds none of the frontend's code (it has no
// licence): build it yourself and pass the folder (see README.md, "The real frontend").
//
//   node tests/e2e/real-frontend.js <dist folder or checkout with dist/> [options]
//
//   --runs N                 calls to make (default 10)
//   --people N               people per call, 2 to 4 (default 2)
//   --camera-delay-ms MS     the newcomers' camera takes this long (getUserMedia is delayed;
//                            the frontend is untouched); default 0 (fake camera, ~instant)
//   --assist auto|on|off     NEGOTIATION_ASSIST for the server (default: unset)
//   --port P                 port of the server: the frontend calls the backend URL it was
//                            built with (VITE_BACKEND_URL, default http://localhost:3001),
//                            so serve it there (default 3001)
//   --timeout-ms MS          how long a call may take to show live video everywhere (20000)
//
// SERVER_BIN (default target/release/prolitemeet-server) and CHROMIUM_PATH as in the e2e test.
// Prints one line per call and a summary; failed calls leave the pages' console logs and the
// server log in tests/e2e/artifacts/real-frontend/.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ARTIFACTS, launchBrowser, spawnServer } from './harness.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const NAMES = ['Alice', 'Bob', 'Carol', 'Dave'];

function parseArgs(argv) {
  const opts = { runs: 10, people: 2, cameraDelayMs: 0, assist: null, port: 3001, timeoutMs: 20000, target: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--runs') opts.runs = Number(value());
    else if (a === '--people') opts.people = Number(value());
    else if (a === '--camera-delay-ms') opts.cameraDelayMs = Number(value());
    else if (a === '--assist') opts.assist = value();
    else if (a === '--port') opts.port = Number(value());
    else if (a === '--timeout-ms') opts.timeoutMs = Number(value());
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else opts.target = a;
  }
  if (!opts.target) throw new Error('usage: node tests/e2e/real-frontend.js <built frontend folder> [--runs N] [--people N] ...');
  if (!(opts.people >= 2 && opts.people <= NAMES.length)) throw new Error(`--people must be 2 to ${NAMES.length}`);
  return opts;
}

/** The folder to serve: the given one's dist/ if it has one, else the folder itself. */
function distOf(target) {
  // A checkout has an index.html of its own (the unbuilt one): its dist/ comes first.
  for (const dir of [path.join(target, 'dist'), target]) {
    if (fs.existsSync(path.join(dir, 'index.html'))) return path.resolve(dir);
  }
  throw new Error(`${target}: no index.html (nor dist/index.html): build the frontend first (npm ci && npx vite build)`);
}

// Runs in every page before the frontend's own scripts. It only observes (and, for a slow
// camera, delays getUserMedia): the frontend's code is untouched.
function observer({ cameraDelayMs }) {
  if (cameraDelayMs > 0 && navigator.mediaDevices) {
    const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = (constraints) =>
      new Promise((resolve) => setTimeout(resolve, cameraDelayMs)).then(() => original(constraints));
  }
  // Remote tiles are the <video> elements outside the "(You)" corner; the tile's label names
  // the person. The frontend re-creates its video elements on many renders, so frames are
  // accumulated per person across elements: only frames an element decoded while we watched.
  const live = {};
  const seen = new WeakMap();
  window.__liveVideo = live;
  setInterval(() => {
    for (const v of document.querySelectorAll('video')) {
      const tile = v.parentElement;
      if (!tile || tile.textContent.includes('(You)')) continue;
      const label = tile.querySelector('.bottom-3 span');
      const name = label ? label.textContent.trim() : '?';
      const frames = v.getVideoPlaybackQuality().totalVideoFrames;
      const before = seen.has(v) ? seen.get(v) : 0;
      seen.set(v, frames);
      if (frames > before && v.videoWidth > 0) {
        const e = live[name] || (live[name] = { frames: 0, first: Date.now(), last: 0, width: 0 });
        e.frames += frames - before;
        e.last = Date.now();
        e.width = v.videoWidth;
      }
    }
  }, 100);
}

async function openPerson(browser, origin, name, cameraDelayMs) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  await context.addInitScript(observer, { cameraDelayMs });
  const page = await context.newPage();
  const consoleLines = [];
  const t0 = Date.now();
  page.on('console', (m) => consoleLines.push(`${Date.now() - t0} [${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`${Date.now() - t0} [pageerror] ${e.stack || e}`));
  page.on('dialog', (d) => {
    consoleLines.push(`${Date.now() - t0} [dialog] ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  await page.goto(`${origin}/`, { waitUntil: 'load', timeout: 15000 });
  return { name, context, page, consoleLines };
}

/** Home page → "Create New Meeting" → join page; returns the room id. */
async function createMeeting(p) {
  await p.page.getByRole('button', { name: 'Create New Meeting' }).click({ timeout: 15000 });
  await p.page.waitForURL(/\/join\/[A-Za-z0-9_-]+$/, { timeout: 15000 });
  return p.page.url().split('/join/')[1];
}

/** Home page → type the room id → "Join" → join page. */
async function goToMeeting(p, roomId) {
  await p.page.getByPlaceholder('Enter Room ID').fill(roomId, { timeout: 15000 });
  await p.page.getByRole('button', { name: 'Join', exact: true }).click({ timeout: 15000 });
  await p.page.waitForURL(new RegExp(`/join/${roomId}$`), { timeout: 15000 });
}

/** Join page: wait for "Room Found", enter the name, "Join Meeting", land in the meeting. */
async function enterMeeting(p, roomId) {
  await p.page.getByText('Room Found').waitFor({ timeout: 15000 });
  await p.page.locator('#userName').fill(p.name);
  await p.page.getByRole('button', { name: 'Join Meeting' }).click({ timeout: 15000 });
  await p.page.waitForURL(new RegExp(`/room/${roomId}$`), { timeout: 15000 });
}

const liveOf = (p) => p.page.evaluate(() => JSON.parse(JSON.stringify(window.__liveVideo || {})));

/**
 * One call: every page must decode ≥ 30 frames of every other person, and those frames must
 * keep coming (≥ 10 more within 1.5 s). Returns which directions are live and when each
 * started (ms after the last person clicked "Join Meeting").
 */
async function oneCall(browser, origin, opts, runIndex) {
  const people = [];
  try {
    const first = await openPerson(browser, origin, NAMES[0], 0);
    people.push(first);
    const roomId = await createMeeting(first);
    await enterMeeting(first, roomId);
    let joinedAt = Date.now();
    for (let i = 1; i < opts.people; i++) {
      const p = await openPerson(browser, origin, NAMES[i], opts.cameraDelayMs);
      people.push(p);
      await goToMeeting(p, roomId);
      joinedAt = Date.now();
      await enterMeeting(p, roomId);
    }
    const directions = [];
    for (const p of people) for (const q of people) if (p !== q) directions.push([p, q]);
    const deadline = Date.now() + opts.timeoutMs;
    let seen = {};
    for (;;) {
      seen = Object.fromEntries(await Promise.all(people.map(async (p) => [p.name, await liveOf(p)])));
      if (directions.every(([p, q]) => (seen[p.name][q.name]?.frames || 0) >= 30)) break;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    // Still flowing?
    await new Promise((r) => setTimeout(r, 1500));
    const later = Object.fromEntries(await Promise.all(people.map(async (p) => [p.name, await liveOf(p)])));
    const result = directions.map(([p, q]) => {
      const before = seen[p.name][q.name]?.frames || 0;
      const after = later[p.name][q.name];
      const ok = before >= 30 && after && after.frames - before >= 10;
      return { at: p.name, from: q.name, live: ok, firstMs: after ? after.first - joinedAt : null, frames: after?.frames || 0 };
    });
    return { roomId, result, people };
  } catch (e) {
    return { error: e, result: [], people };
  }
}

function consoleSummary(lines) {
  const count = (re) => lines.filter((l) => re.test(l)).length;
  return `offers in ${count(/Received WebRTC offer/)}, answers out ${count(/Sending WebRTC answer/)}, ` +
    `offers out ${count(/Sending WebRTC offer/)}, answers in ${count(/Received WebRTC answer/)}, ` +
    `errors ${count(/\[error\]/)}`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dist = distOf(opts.target);
  const bin = process.env.SERVER_BIN || path.resolve(here, '../../target/release/prolitemeet-server');
  if (!fs.existsSync(bin)) throw new Error(`server binary ${bin} not found: cargo build --release, or set SERVER_BIN`);
  const origin = `http://localhost:${opts.port}`;
  const env = { ...process.env, HOST: '127.0.0.1', PORT: String(opts.port), LOG_FORMAT: 'json', STATIC_DIR: dist, FRONTEND_URL: origin };
  for (const v of ['REDIS_URL', 'TURN_URLS', 'TURN_SECRET', 'STUN_URLS', 'NEGOTIATION_ASSIST']) delete env[v];
  if (opts.assist) env.NEGOTIATION_ASSIST = opts.assist;
  if (!env.RUST_LOG) env.RUST_LOG = 'info,prolitemeet_server::signaling=debug';
  const server = await spawnServer(bin, env, fs.mkdtempSync(path.join(os.tmpdir(), 'real-frontend-')), 'server');
  const browser = await launchBrowser();
  const out = path.join(ARTIFACTS, 'real-frontend');
  fs.rmSync(out, { recursive: true, force: true });
  console.log(`real frontend ${dist} on ${origin}, server ${bin}, NEGOTIATION_ASSIST=${opts.assist ?? '(unset)'}, ` +
    `${opts.people} people, newcomers' camera delay ${opts.cameraDelayMs} ms, ${opts.runs} calls`);
  let full = 0;
  const tally = [];
  try {
    for (let run = 1; run <= opts.runs; run++) {
      const { roomId, result, people, error } = await oneCall(browser, origin, opts, run);
      const liveCount = result.filter((r) => r.live).length;
      const total = opts.people * (opts.people - 1);
      const allLive = !error && liveCount === total;
      if (allLive) full++;
      tally.push(liveCount);
      const detail = result.map((r) => `${r.from}→${r.at} ${r.live ? `live (${r.firstMs} ms)` : `NO (${r.frames} frames)`}`).join(', ');
      console.log(`call ${run}: ${error ? `ERROR ${error.message.split('\n')[0]}` : `${liveCount}/${total} directions live`} room ${roomId ?? '?'}: ${detail}`);
      if (!allLive) {
        fs.mkdirSync(out, { recursive: true });
        for (const p of people) {
          fs.writeFileSync(path.join(out, `call-${run}-${p.name}.console.log`), p.consoleLines.join('\n'));
          console.log(`    ${p.name}: ${consoleSummary(p.consoleLines)}`);
        }
        fs.writeFileSync(path.join(out, `call-${run}-server.log`), server.log());
      }
      await Promise.all(people.map((p) => p.context.close().catch(() => {})));
    }
  } finally {
    await browser.close().catch(() => {});
    await server.stop();
  }
  console.log(`SUMMARY: ${full}/${opts.runs} calls with live video in every direction ` +
    `(live directions per call: ${tally.join(' ')})`);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
