// Media state, every spelling of both dialects: toggle-audio {isAudioMuted | isAudioEnabled},
// toggle-video {isVideoOff | isVideoEnabled}, toggle-media {type, enabled}, with or without
// roomId; start/stop-screen-share with no payload, null, {} or {roomId}; toggle-screen-share.
// Each change reaches the others, never the sender, and updates the list for all.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertParticipant, eventLog, expectEvent, join, roomId, startServer } from './helpers.js';

const room = roomId('media');

/** [event, payload(room), kind, enabled]: in an order that flips the state each time. */
const TOGGLES = [
  ['toggle-audio', () => ({ isAudioMuted: true }), 'audio', false],
  ['toggle-audio', () => ({ isAudioMuted: false }), 'audio', true],
  ['toggle-audio', () => ({ isAudioEnabled: false }), 'audio', false],
  ['toggle-audio', (r) => ({ roomId: r, isAudioEnabled: true }), 'audio', true],
  ['toggle-audio', () => ({ isAudioMuted: true, isAudioEnabled: false }), 'audio', false],
  ['toggle-media', () => ({ type: 'audio', enabled: true }), 'audio', true],
  ['toggle-media', (r) => ({ roomId: r, type: 'audio', enabled: false }), 'audio', false],
  ['toggle-video', () => ({ isVideoOff: true }), 'video', false],
  ['toggle-video', () => ({ isVideoOff: false }), 'video', true],
  ['toggle-video', () => ({ isVideoEnabled: false }), 'video', false],
  ['toggle-video', (r) => ({ roomId: r, isVideoEnabled: true }), 'video', true],
  ['toggle-media', () => ({ type: 'video', enabled: false }), 'video', false],
  ['toggle-media', () => ({ type: 'video', enabled: true }), 'video', true],
];

/** [event, args(room), sharing after it]. */
const SHARES = [
  ['start-screen-share', () => [], true],
  ['stop-screen-share', () => [], false],
  ['start-screen-share', () => [null], true],
  ['stop-screen-share', () => [null], false],
  ['start-screen-share', () => [{}], true],
  ['stop-screen-share', () => [{}], false],
  ['start-screen-share', (r) => [{ roomId: r }], true],
  ['stop-screen-share', (r) => [{ roomId: r }], false],
  ['toggle-screen-share', () => [{ isScreenSharing: true }], true],
  ['toggle-screen-share', (r) => [{ roomId: r, isScreenSharing: false }], false],
];

describe('media state', () => {
  let server; let a; let b;
  const flags = { isAudioMuted: false, isVideoOff: false, isScreenSharing: false };

  before(async () => {
    server = await startServer();
    a = await server.connect({ name: 'a' });
    b = await server.connect({ name: 'b' });
    await join(a, room, 'Alice');
    await join(b, room, 'Bob', { others: [a] });
  });
  after(() => server?.stop());

  /** a sends the event; checks both lists and that a got none of the "to the others" events. */
  async function change(event, args, othersEvents) {
    const mark = eventLog(a).length;
    const atB = othersEvents.map((name) => expectEvent(b, name));
    const listA = expectEvent(a, 'participants-updated');
    const listB = expectEvent(b, 'participants-updated');
    a.emit(event, ...args);
    const got = await Promise.all(atB);
    const [la, lb] = await Promise.all([listA, listB]);
    assert.deepEqual(la, lb);
    assert.deepEqual(la.map((p) => p.id), [a.id, b.id]);
    assertParticipant(la[0], flags);
    assertParticipant(la[1], { isAudioMuted: false, isVideoOff: false, isScreenSharing: false });
    const names = eventLog(b).map((e) => e.name);
    for (const name of othersEvents) assert.ok(names.lastIndexOf(name) < names.lastIndexOf('participants-updated'));
    const own = eventLog(a).slice(mark).map((e) => e.name);
    assert.deepEqual(own, ['participants-updated'], 'the sender gets only the list');
    return got;
  }

  for (const [event, payload, kind, enabled] of TOGGLES) {
    it(`${event} ${JSON.stringify(payload('ROOM'))} → ${kind} ${enabled ? 'on' : 'off'}`, async () => {
      if (kind === 'audio') flags.isAudioMuted = !enabled;
      else flags.isVideoOff = !enabled;
      const specific = kind === 'audio' ? 'participant-audio-toggled' : 'participant-video-toggled';
      const [toggled, media] = await change(event, [payload(room)], [specific, 'media-toggled']);
      assert.deepEqual(toggled, kind === 'audio'
        ? { participantId: a.id, isAudioMuted: !enabled, isAudioEnabled: enabled }
        : { participantId: a.id, isVideoOff: !enabled, isVideoEnabled: enabled });
      assert.deepEqual(media, { participantId: a.id, participantName: 'Alice', type: kind, enabled });
    });
  }

  for (const [event, args, sharing] of SHARES) {
    it(`${event} ${JSON.stringify(args('ROOM'))} → sharing ${sharing}`, async () => {
      flags.isScreenSharing = sharing;
      const name = sharing ? 'user-started-screen-share' : 'user-stopped-screen-share';
      const [announced] = await change(event, args(room), [name]);
      assert.deepEqual(announced, { participantId: a.id });
    });
  }

  it('a newcomer sees the current flags in joined-room and user-joined', async () => {
    const muted = expectEvent(a, 'participants-updated');
    a.emit('toggle-media', { type: 'audio', enabled: false });
    await muted;
    const c = await server.connect();
    const joined = await join(c, room, 'Carol', { others: [a, b] });
    assertParticipant(joined.participants[0], { id: a.id, isAudioMuted: true, isAudioEnabled: false });
    assertParticipant(joined.participant, { isAudioMuted: false, isVideoOff: false, isScreenSharing: false, isAdmin: false });
    c.close();
  });
});
