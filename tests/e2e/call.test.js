// End-to-end: headless Chromium pages hold real WebRTC calls whose signaling goes through
// ProLiteMeet Server, in both client dialects, as a mesh of three, and once with media
// forced through a real TURN server (coturn) using the TURN credentials the server issues.
//
// Each call runs the same five steps, each with its own time budget:
//   1. join      — one page creates the room (POST /api/create-room, from the browser), then
//                  every page joins it; everyone sees everyone;
//   2. media     — every page's remote <video> for every other participant plays real frames
//                  (videoWidth > 0, currentTime advancing 2 s, frames decoded, audio packets);
//   3. chat      — a message from one page reaches all pages with the sender's name;
//   4. mute      — muting (then unmuting) audio on one page shows in the others' state;
//   5. leave     — one page leaves; the others drop its video and their participant count.
// The TURN call's pages use the server's iceServers with iceTransportPolicy 'relay'; its
// step 2 also checks that the selected ICE pair is relay <-> relay on every page, and a last
// step that coturn's log shows each participant's allocation and the media bytes it relayed.
// On failure the error names the call and the step, and tests/e2e/artifacts/ gets a
// screenshot, the state and the console of every page, the server log and coturn's log.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';

import {
  ARTIFACTS, Steps, getJson, launchBrowser, openParticipant, startRedis, startServer, startTurn, waitOn,
} from './harness.js';

const NAMES = ['Alice', 'Bob', 'Zoë'];
// `loopback` (default): pages signal only their 127.0.0.1 candidates and the test checks the
// call runs over 127.0.0.1, as in a loopback-only CI sandbox, whatever other interfaces this
// machine has. `all`: pages signal every candidate Chromium gathers.
const ICE = process.env.E2E_ICE || 'loopback';
const LOOPBACK_ONLY_HOST = Object.values(os.networkInterfaces()).flat().every((a) => a.internal);

let turn;
let server;
let browser;
// Cluster mode: a private Redis and two instances of the server sharing it.
let redis;
let instances = [];

before(async () => {
  fs.rmSync(ARTIFACTS, { recursive: true, force: true });
  // One coturn and one server for every call: the server hands out that TURN server only
  // (STUN_URLS=none); pages without ?ice=relay ignore the iceServers of joined-room.
  turn = await startTurn();
  server = await startServer({ turn });
  redis = await startRedis();
  if (redis) {
    for (const name of ['instance A', 'instance B']) {
      instances.push(await startServer({ redis, prefix: 'e2e', name }));
    }
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
  await Promise.all(instances.map((i) => i.stop()));
  await redis?.stop();
  await turn?.stop();
});

/** Lines of coturn's log for `username` (sessions are logged with `username=<…>` or `user <…>`). */
function coturnLines(username) {
  return turn.log().split('\n').filter((l) => l.includes(`<${username}>`));
}

/**
 * One call. `pages` lists each participant's dialect (and transports, and with `relay` where
 * the page takes the server's iceServers from: `joined-room` or `api`); `chatter`, `muter`
 * and `leaver` are indexes into it. `relay`: every page uses the server's iceServers with
 * iceTransportPolicy 'relay', so media can only flow through coturn.
 */
async function call(t, { label, pages: specs, chatter, muter, leaver, relay = false, servers = [server] }) {
  const n = specs.length;
  const pages = [];
  const steps = new Steps(label, pages, [...servers, turn, ...(servers === instances ? [redis] : [])], (m) => t.diagnostic(m));
  // Each page is served by, and signals through, its own instance (`instance` in its spec).
  const originOf = (i) => servers[specs[i].instance || 0].origin;
  const started = Date.now();
  try {
    let roomId;

    await steps.run('1. join the room', 40000, async ({ remaining }) => {
      const url = (i, room) => {
        const q = new URLSearchParams({ name: NAMES[i], dialect: specs[i].dialect });
        if (specs[i].transports) q.set('transports', specs[i].transports);
        if (relay) {
          q.set('ice', 'relay');
          q.set('iceSource', specs[i].iceSource || 'joined-room');
        } else if (ICE === 'loopback') q.set('ice', 'loopback');
        if (!room) return `${originOf(i)}/?${q}`;
        q.set('room', room);
        // A deep link: the server answers it with index.html (single-page-app fallback).
        return `${originOf(i)}/room/${room}?${q}`;
      };
      pages.push(await openParticipant(browser, { url: url(0), name: NAMES[0] }));
      roomId = await pages[0].page.evaluate(() => window.meet.createRoom());
      const created = await getJson(`${originOf(n - 1)}/api/room/${roomId}`);
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
      for (const origin of new Set(specs.map((_, i) => originOf(i)))) {
        const room = await getJson(`${origin}/api/room/${roomId}`);
        assert.equal(room.body?.participantCount, n, `GET ${origin}/api/room/${roomId}: ${JSON.stringify(room)}`);
      }
      if (relay) {
        // Every page got TURN credentials issued for its own socket id, from the source it
        // was told to use; joined-room carries them either way.
        const now = Math.floor(Date.now() / 1000);
        for (const [i, p] of pages.entries()) {
          const { ice } = await p.page.evaluate(() => window.meet.state());
          const source = specs[i].iceSource || 'joined-room';
          assert.equal(ice?.source, source, `${p.name}: ICE servers source: ${JSON.stringify(ice)}`);
          assert.equal(ice.policy, 'relay');
          for (const list of [ice.iceServers, ice.joinedRoomIceServers]) {
            assert.equal(list?.length, 1, `${p.name}: STUN_URLS=none, so the TURN server only: ${JSON.stringify(list)}`);
            assert.deepEqual(list[0].urls, [turn.url], `${p.name}: TURN URLs`);
            const [expiry, id] = list[0].username.split(':');
            assert.equal(id, p.id, `${p.name}: TURN username ${list[0].username} names the participant`);
            assert.ok(Math.abs(Number(expiry) - (now + 600)) <= 30, `${p.name}: TURN username ${list[0].username} expires in TURN_TTL_SECS=600`);
            assert.match(list[0].credential, /^[A-Za-z0-9+/]{27}=$/, `${p.name}: base64 HMAC-SHA1 credential`);
          }
          if (source === 'api') {
            assert.deepEqual({ status: ice.api?.status, cacheControl: ice.api?.cacheControl, ttl: ice.api?.ttl },
              { status: 200, cacheControl: 'no-store', ttl: 600 }, `${p.name}: GET /api/ice-servers`);
          }
          p.turnUsername = ice.iceServers[0].username;
        }
      }
    });

    // (30 s with relay: a refused TURN credential should not hold the whole run for a minute.)
    await steps.run(relay ? '2. media plays through the TURN relay' : '2. media plays peer to peer', relay ? 30000 : 60000, async ({ remaining }) => {
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
          if (relay) {
            // Relay on both ends: this page sends from its TURN allocation on coturn, to the
            // other page's TURN allocation. Only relay candidates were gathered at all.
            const sel = peer.stats?.selected;
            const seen = `${p.name} -> ${id}: selected pair ${JSON.stringify(sel)}; local candidates ${JSON.stringify(peer.localCandidates)}`;
            assert.equal(sel?.state, 'succeeded', seen);
            assert.equal(sel.local?.candidateType, 'relay', seen);
            assert.equal(sel.remote?.candidateType, 'relay', seen);
            assert.equal(sel.local.relayProtocol, 'udp', seen);
            assert.equal(sel.local.url, turn.url, seen);
            assert.ok(sel.bytesReceived > 50000 && sel.bytesSent > 50000, seen);
            assert.ok(peer.localCandidates.length > 0 && peer.localCandidates.every((c) => c.startsWith('relay ')), seen);
          } else if (ICE === 'loopback') {
            // Only 127.0.0.1 candidates were signalled, so one end of the pair is 127.0.0.1;
            // where loopback is the only network (CI sandbox, run.sh's network namespace),
            // both are.
            assert.match(String(peer.stats?.pair), LOOPBACK_ONLY_HOST ? /^127\.0\.0\.1:\d+ <-> 127\.0\.0\.1:\d+ / : /127\.0\.0\.1:\d+/,
              `${p.name} -> ${id}: selected ICE pair; local candidates ${JSON.stringify(peer.localCandidates)}`);
          }
          const sel = peer.stats?.selected;
          const types = sel ? ` ${sel.local?.candidateType}/${sel.remote?.candidateType}${sel.local?.url ? ` via ${sel.local.url}` : ''}` : '';
          pairs.push(`${p.name}->${pages.find((q) => q.id === id).name}: ${peer.stats?.pair}${types}`);
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
      const room = await getJson(`${originOf(0)}/api/room/${roomId}`);
      assert.equal(room.body?.participantCount, n - 1, `GET /api/room/${roomId}: ${JSON.stringify(room)}`);
    });

    if (relay) {
      await steps.run('6. coturn relayed the media', 10000, async ({ remaining }) => {
        // coturn accepted each page's credentials (its ALLOCATE succeeded under the username
        // the server issued), and once the pages closed their connections (leave) it logged
        // what each allocation relayed to and from its peer ("peer usage", bytes).
        const deadline = Date.now() + remaining();
        // Bytes relayed between the allocation's relay address and its peer (the other
        // page's relay address), both ways, over all of the username's sessions.
        const relayed = (username) => coturnLines(username)
          .map((l) => /peer usage: .*rb=(\d+), sp=\d+, sb=(\d+)/.exec(l))
          .filter(Boolean)
          .reduce((sum, m) => ({ received: sum.received + Number(m[1]), sent: sum.sent + Number(m[2]) }), { received: 0, sent: 0 });
        for (;;) {
          const status = pages.map((p) => ({
            name: p.name,
            username: p.turnUsername,
            allocated: coturnLines(p.turnUsername).some((l) => l.includes('ALLOCATE processed, success')),
            ...relayed(p.turnUsername),
          }));
          if (status.every((s) => s.allocated && s.received > 50000 && s.sent > 50000)) {
            t.diagnostic(`${label}: coturn relayed ${status.map((s) => `${s.name} (${s.username}) sent ${s.sent} B, received ${s.received} B`).join('; ')}`);
            break;
          }
          if (Date.now() > deadline) {
            throw new Error(`coturn's log does not show, for every page, an allocation and > 50 kB relayed each way: ${JSON.stringify(status)}`);
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      });
    }

    t.diagnostic(`${label}: passed in ${Date.now() - started} ms (${steps.timings.join(', ')})`);
  } finally {
    await Promise.all(pages.map((p) => p.context.close().catch(() => {})));
  }
}

describe('real browser calls through the server', () => {
  test('server hosts the page and the browser bundle (STATIC_DIR)', async (t) => {
    t.diagnostic(`server ${server.origin}, FRONTEND_URL=${server.frontendUrl}, TURN ${turn.url}, ` +
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

  // The server's iceServers (TURN credentials for coturn) with iceTransportPolicy 'relay':
  // the call only works if the credentials are good and the media goes through coturn. One
  // page takes them from joined-room, the other from GET /api/ice-servers.
  test('TURN relay: two pages, media only through coturn', (t) => call(t, {
    label: 'turn relay 2 pages',
    pages: [{ dialect: 'frontend', iceSource: 'joined-room' }, { dialect: 'original', iceSource: 'api' }],
    chatter: 0, muter: 1, leaver: 1, relay: true,
  }));

  // Two instances sharing rooms through Redis: one tab on each (as behind a load balancer).
  // Signaling, chat and media state cross instances through Redis; the media flows peer to
  // peer as always.
  test('cluster: two instances over Redis, one page on each', (t) => {
    if (!redis) return t.skip('redis-server is not installed');
    return call(t, {
      label: 'cluster 2 instances',
      pages: [{ dialect: 'original', instance: 0 }, { dialect: 'frontend', instance: 1 }],
      chatter: 1, muter: 0, leaver: 0, servers: instances,
    });
  });
});
