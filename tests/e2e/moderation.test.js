// Host moderation in real browsers: the host's page disables a participant's microphone
// (admin-toggle-mic-permission, as the public frontend's Admin Panel sends it); the
// participant's own page then shows itself muted in its participant list, with its
// microphone marked disabled by the host, and its attempt to unmute is refused (forbidden)
// and changes nothing on either page; once the host allows it again, the participant can
// unmute and the host's page shows it. Once on one server, and (with redis-server) once
// with the host's page on one cluster instance and the participant's on the other.
//
// The pages are tests/e2e/page (index.html + meet.js): the host in the original dialect,
// the participant in the public frontend's (toggle-media, reads hasMicPermission).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { ARTIFACTS, Steps, launchBrowser, openParticipant, startRedis, startServer, waitOn } from './harness.js';

let browser;
let server;
let redis;
const instances = [];

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  server = await startServer({ name: 'server' });
  redis = await startRedis();
  if (redis) {
    for (const name of ['instance A', 'instance B']) {
      instances.push(await startServer({ redis, prefix: 'e2e-moderation', name }));
    }
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
  await Promise.all(instances.map((i) => i.stop()));
  await redis?.stop();
});

/** The participant `id` as page `p` shows it in its list (`null` if absent). */
function shownOn(p, id) {
  return p.page.evaluate((pid) => {
    const li = document.querySelector(`#participants li[data-participant-id="${pid}"]`);
    return li && {
      audioMuted: li.dataset.audioMuted === 'true',
      micAllowed: li.dataset.micAllowed === 'true',
      mutedClass: li.classList.contains('muted'),
      text: li.textContent,
    };
  }, id);
}

async function disableMic(t, label, hostServer, guestServer) {
  const pages = [];
  const steps = new Steps(label, pages, [hostServer, guestServer], (m) => t.diagnostic(m));
  const url = (srv, name, dialect) => `${srv.origin}/?${new URLSearchParams({ name, dialect, ice: 'loopback' })}`;
  let host;
  let guest;

  await steps.run('1. host and participant join', 30000, async ({ remaining }) => {
    host = await openParticipant(browser, { url: url(hostServer, 'Hana', 'original'), name: 'Hana (host)' });
    pages.push(host);
    const roomId = await host.page.evaluate(() => window.meet.createRoom());
    host.id = (await host.page.evaluate((r) => window.meet.join(r), roomId)).participantId;
    guest = await openParticipant(browser, { url: url(guestServer, 'Gus', 'frontend'), name: 'Gus' });
    pages.push(guest);
    guest.id = (await guest.page.evaluate((r) => window.meet.join(r), roomId)).participantId;
    for (const p of pages) {
      await waitOn(p, 'sees both participants', () => window.meet.live.participants.length === 2, null, remaining());
    }
    const self = await shownOn(guest, guest.id);
    assert.equal(self.audioMuted, false, `the participant starts unmuted: ${JSON.stringify(self)}`);
    assert.equal(self.micAllowed, true);
  });

  await steps.run('2. the host disables the participant\'s microphone', 20000, async ({ remaining }) => {
    const ack = await host.page.evaluate((id) => window.meet.moderate('admin-toggle-mic-permission',
      { participantId: id, canUseMic: false }), guest.id);
    assert.equal(ack.ok, true, `host's ack: ${JSON.stringify(ack)}`);
    await waitOn(guest, 'shows itself muted, its microphone disabled by the host', (id) => {
      const li = document.querySelector(`#participants li[data-participant-id="${id}"]`);
      return li && li.dataset.audioMuted === 'true' && li.dataset.micAllowed === 'false'
        && li.classList.contains('muted') && li.textContent.includes('(you)');
    }, guest.id, remaining());
    const state = await guest.page.evaluate(() => window.meet.state());
    assert.deepEqual(state.permissionEvents, [{ kind: 'mic', allowed: false, byName: 'Hana' }]);
    assert.equal(state.audioEnabled, false, 'the page turned its own microphone off');
    await waitOn(host, 'shows the participant muted', (id) => {
      const li = document.querySelector(`#participants li[data-participant-id="${id}"]`);
      return li && li.dataset.audioMuted === 'true' && li.dataset.micAllowed === 'false';
    }, guest.id, remaining());
  });

  await steps.run('3. the participant cannot unmute itself', 20000, async ({ remaining }) => {
    await guest.page.evaluate(() => window.meet.setAudio(true));
    await waitOn(guest, 'is refused (forbidden)', () => window.meet.live.errors.some(
      (e) => e.code === 'forbidden' && e.event === 'toggle-media'), null, remaining());
    // Its own (optimistic) unmute was refused: the server's list still shows it muted.
    assert.equal((await shownOn(host, guest.id)).audioMuted, true);
    const hostState = await host.page.evaluate(() => window.meet.state());
    assert.ok(!hostState.mediaEvents.some((e) => e.participantId === guest.id && !e.muted),
      `the host never heard of an unmute: ${JSON.stringify(hostState.mediaEvents)}`);
    assert.equal((await shownOn(guest, guest.id)).audioMuted, true);
  });

  await steps.run('4. allowed again, the participant unmutes', 20000, async ({ remaining }) => {
    const ack = await host.page.evaluate((id) => window.meet.moderate('admin-toggle-mic-permission',
      { participantId: id, canUseMic: true }), guest.id);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    await waitOn(guest, 'shows its microphone allowed (still muted)', (id) => {
      const li = document.querySelector(`#participants li[data-participant-id="${id}"]`);
      return li && li.dataset.micAllowed === 'true' && li.dataset.audioMuted === 'true';
    }, guest.id, remaining());
    await guest.page.evaluate(() => window.meet.setAudio(true));
    await waitOn(host, 'shows the participant unmuted', (id) => {
      const li = document.querySelector(`#participants li[data-participant-id="${id}"]`);
      return li && li.dataset.audioMuted === 'false';
    }, guest.id, remaining());
  });

  for (const p of pages) await p.context.close().catch(() => {});
}

describe('host moderation in the browser', () => {
  test('one server: the host disables a participant\'s microphone', (t) => disableMic(t, 'moderation', server, server));

  test('cluster: host on one instance, participant on the other', (t) => {
    if (!redis) {
      t.skip('redis-server is not installed');
      return undefined;
    }
    return disableMic(t, 'moderation cluster', instances[0], instances[1]);
  });
});
