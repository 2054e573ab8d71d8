// End-to-end: headless Chromium pages hold real WebRTC calls whose signaling goes through
// ProLiteMeet Server, in both client dialects, and as a mesh of three.
//
// Each call runs the same five steps, each with its own time budget:
//   1. join      — one page creates the room (POST /api/create-room, from the browser), then
//                  every page joins it; everyone sees everyone;
//   2. media     — every page's remote <video> for every other participant plays real frames
//                  (videoWidth > 0, currentTime advancing 2 s, frames decoded, audio packets);
//   3. chat      — a message from one page reaches all pages with the sender's name;
//   4. mute      — muting (then unmuting) audio on one page shows in the others' state;
//   5. leave     — one page leaves; the others drop its video and their participant count.
// On failure the error names the call and the step, and tests/e2e/artifacts/ gets a
// screenshot, the state and the console of every page, and the server log.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';

import { ARTIFACTS, Steps, getJson, launchBrowser, openParticipant, startServer, waitOn } from './harness.js';

const NAMES = ['Alice', 'Bob', 'Zoë'];
// `loopback` (default): pages signal only their 127.0.0.1 candidates and the test checks the
// call runs over 127.0.0.1, as in a loopback-only CI sandbox, whatever other interfaces this
// machine has. `all`: pages signal every candidate Chromium gathers.
const ICE = process.env.E2E_ICE || 'loopback';
const LOOPBACK_ONLY_HOST = Object.values(os.networkInterfaces()).flat().every((a) => a.internal);

let server;
let browser;

before(async () => {
  fs.rmSync(ARTIFACTS, { recursive: true, force: true });
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

/**
 * One call. `pages` lists each participant's dialect (and transports); `chatter`, `muter`
 * and `leaver` are indexes into it.
 */
async function call(t, { label, pages: specs, chatter, muter, leaver }) {
  const n = specs.length;
  const pages = [];
  const steps = new Steps(label, pages, server, (m) => t.diagnostic(m));
  const started = Date.now();
  try {
    let roomId;

    await steps.run('1. join the room', 40000, async ({ remaining }) => {
      const url = (i, room) => {
        const q = new URLSearchParams({ name: NAMES[i], dialect: specs[i].dialect });
        if (specs[i].transports) q.set('transports', specs[i].transports);
        if (ICE === 'loopback') q.set('ice', 'loopback');
        if (!room) return `${server.origin}/?${q}`;
        q.set('room', room);
        // A deep link: the server answers it with index.html (single-page-app fallback).
        return `${server.origin}/room/${room}?${q}`;
      };
      pages.push(await openParticipant(browser, { url: url(0), name: NAMES[0] }));
      roomId = await pages[0].page.evaluate(() => window.meet.createRoom());
      const created = await getJson(`${server.origin}/api/room/${roomId}`);
      assert.equal(created.status, 200, `GET /api/room/${roomId} after create-room: ${JSON.stringify(created)}`);
      assert.equal(created.body.participantCount, 0);

      for (let i = 0; i < n; i++) {
        if (i > 0) pages.push(await openParticipant(browser, { url: url(i, roomId), name: NAMES[i] }));
        const joined = await pages[i].page.evaluate(
          ([room, ms]) => window.meet.join(room, { timeoutMs: ms }), [roomId, Math.min(15000, remaining())]);
        assert.equal(joined.roomId, roomId);
        pages[i].id = joined.participantId;
      }
      const ids = pages.map((p) => p.id);
      await Promise.all(pages.map((p) => waitOn(p, `sees all ${n} participants ${JSON.stringify(ids)}`, (expected) => {
        const s = window.meet.live;
        return s.participants.length === expected.length
          && expected.every((id) => s.participants.some((q) => q.id === id))
          && document.getElementById('count').textContent === String(expected.length);
      }, ids, remaining())));
      for (const p of pages) {
        const s = await p.page.evaluate(() => window.meet.state());
        assert.deepEqual(s.participants.map((q) => q.name), NAMES.slice(0, n), `${p.name}: participant names in join order`);
      }
      const room = await getJson(`${server.origin}/api/room/${roomId}`);
      assert.equal(room.body?.participantCount, n, `GET /api/room/${roomId}: ${JSON.stringify(room)}`);
    });

    await steps.run('2. media plays peer to peer', 60000, async ({ remaining }) => {
      const othersOf = (p) => pages.filter((q) => q !== p).map((q) => q.id);
      // Frames arrive on every remote video of every page…
      await Promise.all(pages.map((p) => waitOn(p, `remote videos ${JSON.stringify(othersOf(p))} show frames`, (ids) => ids.every((id) => {
        const v = document.querySelector(`video.remote[data-participant-id="${CSS.escape(id)}"]`);
        return v && v.videoWidth > 0 && v.readyState >= 2;
      }), othersOf(p), remaining())));
      // …and keep coming: currentTime advances 2 s, frames are decoded, audio packets arrive.
      await Promise.all(pages.map(async (p) => {
        await p.page.evaluate((ids) => {
          window.__e2eMedia = Object.fromEntries(ids.map((id) => {
            const v = document.querySelector(`video.remote[data-participant-id="${CSS.escape(id)}"]`);
            const stats = window.meet.live.peers[id]?.stats;
            return [id, { t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames, audio: stats ? stats.audioPacketsReceived : 0 }];
          }));
        }, othersOf(p));
        await waitOn(p, 'remote media keeps playing (currentTime +2 s, frames, audio packets)', (ids) => ids.every((id) => {
          const v = document.querySelector(`video.remote[data-participant-id="${CSS.escape(id)}"]`);
          const start = window.__e2eMedia[id];
          const stats = window.meet.live.peers[id]?.stats;
          return v && v.videoWidth > 0 && !v.paused
            && v.currentTime - start.t >= 2
            && v.getVideoPlaybackQuality().totalVideoFrames - start.frames >= 10
            && stats && stats.audioPacketsReceived - start.audio >= 20;
        }), othersOf(p), remaining());
      }));
      const pairs = [];
      for (const p of pages) {
        const s = await p.page.evaluate(() => window.meet.state());
        for (const [id, peer] of Object.entries(s.peers)) {
          assert.equal(peer.connectionState, 'connected', `${p.name} -> ${id}`);
          if (ICE === 'loopback') {
            // Only 127.0.0.1 candidates were signalled, so one end of the pair is 127.0.0.1;
            // where loopback is the only network (CI sandbox, run.sh's network namespace),
            // both are.
            assert.match(String(peer.stats?.pair), LOOPBACK_ONLY_HOST ? /^127\.0\.0\.1:\d+ <-> 127\.0\.0\.1:\d+ / : /127\.0\.0\.1:\d+/,
              `${p.name} -> ${id}: selected ICE pair; local candidates ${JSON.stringify(peer.localCandidates)}`);
          }
          pairs.push(`${p.name}->${pages.find((q) => q.id === id).name}: ${peer.stats?.pair}`);
        }
      }
      t.diagnostic(`${label}: ICE pairs ${pairs.join('; ')}`);
    });

    await steps.run('3. chat reaches everyone', 15000, async ({ remaining }) => {
      const from = pages[chatter];
      const text = `hello from ${from.name} ${Math.random().toString(36).slice(2, 8)}`;
      await from.page.evaluate((m) => window.meet.sendChat(m), text);
      await Promise.all(pages.map((p) => waitOn(p, `shows "${text}" from ${from.name} (${from.id})`, ([m, name, id]) => {
        const shown = [...document.querySelectorAll('#chat li')].some((li) => li.textContent === `${name}: ${m}` && li.dataset.senderId === id);
        return shown && window.meet.live.messages.some((x) => x.message === m && x.userName === name && x.senderId === id);
      }, [text, from.name, from.id], remaining())));
    });

    await steps.run('4. mute shows in the others\' state', 15000, async ({ remaining }) => {
      const who = pages[muter];
      for (const muted of [true, false]) {
        await who.page.evaluate((on) => window.meet.setAudio(on), !muted);
        await Promise.all(pages.map((p) => waitOn(p, `shows ${who.name} (${who.id}) ${muted ? 'muted' : 'unmuted'}`, ([id, m, self]) => {
          const s = window.meet.live;
          const entry = s.participants.find((q) => q.id === id);
          const li = document.querySelector(`#participants li[data-participant-id="${CSS.escape(id)}"]`);
          // The dialect's own event (participant-audio-toggled or media-toggled) must have
          // come too; the muter itself only gets participants-updated.
          const event = self || s.mediaEvents.some((e) => e.participantId === id && e.kind === 'audio' && e.muted === m);
          return entry && entry.audioMuted === m && li && li.dataset.audioMuted === String(m) && event;
        }, [who.id, muted, p === who], remaining())));
      }
    });

    await steps.run('5. leave', 20000, async ({ remaining }) => {
      const gone = pages[leaver];
      const rest = pages.filter((p) => p !== gone);
      const left = await gone.page.evaluate((ms) => window.meet.leave({ timeoutMs: ms }), Math.min(10000, remaining()));
      assert.equal(left?.roomId, roomId, `left-room payload: ${JSON.stringify(left)}`);
      await waitOn(gone, 'dropped every remote video after left-room', () =>
        window.meet.live.left && document.querySelectorAll('video.remote').length === 0, null, remaining());
      await Promise.all(rest.map((p) => waitOn(p, `dropped ${gone.name} (${gone.id}): video, participant, count ${n - 1}`, ([id, name, count]) => {
        const s = window.meet.live;
        return !document.querySelector(`video.remote[data-participant-id="${CSS.escape(id)}"]`)
          && !s.participants.some((q) => q.id === id)
          && s.participants.length === count
          && document.getElementById('count').textContent === String(count)
          && !(id in s.peers)
          && s.leftEvents.some((e) => e.participantId === id && e.userName === name);
      }, [gone.id, gone.name, n - 1], remaining())));
      if (leaver === 0) {
        // The host left: the next earliest participant is host now, on every page.
        const next = rest[0];
        await Promise.all(rest.map((p) => waitOn(p, `shows ${next.name} as host`, (id) =>
          window.meet.live.participants.some((q) => q.id === id && q.isAdmin), next.id, remaining())));
      }
      // The others' calls go on.
      for (const p of rest) {
        const s = await p.page.evaluate(() => window.meet.state());
        for (const q of rest.filter((x) => x !== p)) {
          assert.equal(s.peers[q.id]?.connectionState, 'connected', `${p.name} -> ${q.name} after ${gone.name} left`);
        }
      }
      const room = await getJson(`${server.origin}/api/room/${roomId}`);
      assert.equal(room.body?.participantCount, n - 1, `GET /api/room/${roomId}: ${JSON.stringify(room)}`);
    });

    t.diagnostic(`${label}: passed in ${Date.now() - started} ms (${steps.timings.join(', ')})`);
  } finally {
    await Promise.all(pages.map((p) => p.context.close().catch(() => {})));
  }
}

describe('real browser calls through the server', () => {
  test('server hosts the page and the browser bundle (STATIC_DIR)', async (t) => {
    t.diagnostic(`server ${server.origin}, FRONTEND_URL=${server.frontendUrl}, ` +
      `E2E_ICE=${ICE}, ${LOOPBACK_ONLY_HOST ? 'loopback-only network' : 'network has non-loopback interfaces too'}`);
    const res = await fetch(`${server.origin}/`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /ProLiteMeet e2e test client/);
    const bundle = await fetch(`${server.origin}/vendor/socket.io.min.js`);
    assert.equal(bundle.status, 200);
  });

  test('original dialect: two pages', (t) => call(t, {
    label: 'original 2 pages',
    pages: [{ dialect: 'original' }, { dialect: 'original' }],
    chatter: 0, muter: 1, leaver: 1,
  }));

  test('frontend dialect: two pages', (t) => call(t, {
    label: 'frontend 2 pages',
    pages: [{ dialect: 'frontend' }, { dialect: 'frontend' }],
    chatter: 0, muter: 1, leaver: 1,
  }));

  // Both dialects in one room (the server emits every alias, so they interoperate), the
  // third page on WebSocket only; the host leaves.
  test('mesh of three (original, frontend, original over WebSocket only)', (t) => call(t, {
    label: 'mesh of 3',
    pages: [{ dialect: 'original' }, { dialect: 'frontend' }, { dialect: 'original', transports: 'websocket' }],
    chatter: 1, muter: 2, leaver: 0,
  }));
});
