// End-to-end call continuity (connection state recovery, issue 18): two Chromium pages in a
// call; one page's signaling goes through a TCP proxy (tests/client/proxy.js), which cuts its
// network for 10 s (every connection closed on both sides, new ones refused) and then lets
// it back. The page's socket.io-client recovers its session (same socket id,
// `socket.recovered`), video keeps flowing both ways through and after the blip (media is
// peer to peer, signaling is what was cut), and neither page ever shows the other leaving:
// the other page sees the blipped participant `reconnecting`, then connected again.
//
// Steps: 1. join (the blipped page loads through the proxy, so page, REST and Socket.IO
// share its origin); 2. media plays both ways; 3. the cut: the other page sees
// `participant-reconnecting`, media keeps playing; 4. after 10 s the network is back: the
// session is recovered, the other page sees `participant-reconnected`; 5. media still plays
// both ways, nobody left, and chat works both ways.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { startProxy } from '../client/proxy.js';
import { ARTIFACTS, Steps, launchBrowser, openParticipant, startServer, waitOn } from './harness.js';

const BLIP_MS = 10_000;

let server;
let browser;
let proxy;

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  server = await startServer({ name: 'server' });
  proxy = await startProxy(server.origin);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await proxy?.close();
  await server?.stop();
});

/**
 * Resolves once every remote video of `p` (for `ids`) advanced 1 s with frames decoded, counted
 * from now, or from when the video first appears if it does not exist yet (right after joining)
 * or is replaced.
 */
async function mediaFlows(p, ids, what, timeout) {
  await p.page.evaluate(() => {
    window.__e2eFlow = {};
  });
  await waitOn(p, what, (ids) => ids.every((id) => {
    const v = document.querySelector(`video.remote[data-participant-id="${CSS.escape(id)}"]`);
    if (!v) return false;
    const now = { el: v, t: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames };
    if (window.__e2eFlow[id]?.el !== v) window.__e2eFlow[id] = now;
    const start = window.__e2eFlow[id];
    return v.videoWidth > 0 && !v.paused && now.t - start.t >= 1 && now.frames - start.frames >= 5;
  }), ids, timeout);
}

test('a 10 s network blip of one page: the call goes on, nobody leaves', async (t) => {
  const pages = [];
  const steps = new Steps('continuity', pages, [server], (m) => t.diagnostic(m));
  const page = (origin, name, extra = {}) => {
    const q = new URLSearchParams({ name, dialect: 'frontend', ice: 'loopback', reconnect: '1', ...extra });
    return `${origin}/?${q}`;
  };
  let blipped;
  let steady;
  try {
    await steps.run('1. join, one page through the proxy', 40000, async ({ remaining }) => {
      blipped = await openParticipant(browser, { url: page(proxy.url, 'Alice'), name: 'Alice (blipped)' });
      pages.push(blipped);
      const roomId = await blipped.page.evaluate(() => window.meet.createRoom());
      steady = await openParticipant(browser, { url: page(server.origin, 'Bob', { room: roomId }), name: 'Bob' });
      pages.push(steady);
      for (const p of pages) {
        const joined = await p.page.evaluate(([room, ms]) => window.meet.join(room, { timeoutMs: ms }), [roomId, Math.min(15000, remaining())]);
        p.id = joined.participantId;
      }
      await Promise.all(pages.map((p) => waitOn(p, 'sees both participants, connected', () => {
        const s = window.meet.live;
        return s.participants.length === 2 && s.participants.every((q) => q.connection === 'connected');
      }, undefined, remaining())));
      // Cut a WebSocket (after the upgrade): its loss is noticed at once.
      await waitOn(blipped, 'runs over WebSocket', () => window.meet.live.transport === 'websocket', undefined, remaining());
    });

    await steps.run('2. media plays both ways', 60000, async ({ remaining }) => {
      await Promise.all([
        mediaFlows(blipped, [steady.id], 'video from Bob plays', remaining()),
        mediaFlows(steady, [blipped.id], 'video from Alice plays', remaining()),
      ]);
    });

    const cutAt = Date.now();
    await steps.run('3. the blip: Bob sees Alice reconnecting, media keeps playing', BLIP_MS, async ({ remaining }) => {
      proxy.cut();
      await waitOn(blipped, 'its socket is disconnected', () => !window.meet.live.socketConnected, undefined, remaining());
      await waitOn(steady, 'sees Alice reconnecting', (id) => {
        const s = window.meet.live;
        return s.connectionEvents.some((e) => e.participantId === id && e.event === 'reconnecting')
          && s.participants.find((q) => q.id === id)?.connection === 'reconnecting';
      }, blipped.id, remaining());
      await Promise.all([
        mediaFlows(blipped, [steady.id], 'video from Bob plays during the blip', remaining()),
        mediaFlows(steady, [blipped.id], 'video from Alice plays during the blip', remaining()),
      ]);
      const still = await blipped.page.evaluate(() => window.meet.state());
      assert.equal(still.socketConnected, false, 'the network is still cut');
    });
    // The blip lasts 10 s, whatever the steps above took.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, BLIP_MS - (Date.now() - cutAt))));

    await steps.run('4. the network is back: the session is recovered', 20000, async ({ remaining }) => {
      proxy.restore();
      await waitOn(blipped, 'reconnects and recovers its session', () => window.meet.live.connects.length === 2, undefined, remaining());
      const { connects } = await blipped.page.evaluate(() => window.meet.state());
      assert.deepEqual(connects[1], { id: blipped.id, recovered: true }, JSON.stringify(connects));
      await waitOn(steady, 'sees Alice back', (id) => {
        const s = window.meet.live;
        return s.connectionEvents.some((e) => e.participantId === id && e.event === 'reconnected')
          && s.participants.find((q) => q.id === id)?.connection === 'connected';
      }, blipped.id, remaining());
    });

    await steps.run('5. media still plays both ways, nobody left, chat works', 30000, async ({ remaining }) => {
      await Promise.all([
        mediaFlows(blipped, [steady.id], 'video from Bob plays after the blip', remaining()),
        mediaFlows(steady, [blipped.id], 'video from Alice plays after the blip', remaining()),
      ]);
      for (const [p, other] of [[blipped, steady], [steady, blipped]]) {
        const s = await p.page.evaluate(() => window.meet.state());
        assert.deepEqual(s.leftEvents, [], `${p.name} saw no one leave`);
        assert.deepEqual(s.participants.map((q) => q.id).sort(), [blipped.id, steady.id].sort(), `${p.name}: both still listed`);
        assert.equal(s.peers[other.id]?.connectionState, 'connected', `${p.name}: the peer connection stayed up`);
        assert.equal(Object.keys(s.peers).length, 1, `${p.name}: still one peer connection`);
      }
      const { connectionEvents } = await blipped.page.evaluate(() => window.meet.state());
      assert.deepEqual(connectionEvents, [], 'Alice heard nothing of her own blip');
      for (const [from, text] of [[blipped, 'back again'], [steady, 'welcome back']]) {
        await from.page.evaluate((m) => window.meet.sendChat(m), text);
        await Promise.all(pages.map((p) => waitOn(p, `shows "${text}"`, (m) => window.meet.live.messages.some((x) => x.message === m), text, remaining())));
      }
    });
    t.diagnostic(`continuity: ${steps.timings.join(', ')}`);
  } finally {
    for (const p of pages) await p.context.close().catch(() => {});
  }
});
