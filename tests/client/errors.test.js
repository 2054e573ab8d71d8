// Refused events: every reachable error code (invalid_payload, not_in_room, target_not_in_room;
// room_full is in rooms.test.js), each as the `error` event {message, code, event} and, with an
// ack callback, as {ok:false, error, code} too (callback called once), with nothing relayed and
// no state changed.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  TRANSPORTS, assertAckError, assertError, barrier, eventLog, expectEvent, join, roomId, startServer,
} from './helpers.js';

const EVENTS = ['join-room', 'leave-room', 'send-message', 'webrtc-offer', 'webrtc-answer',
  'webrtc-ice-candidate', 'request-connection', 'toggle-audio', 'toggle-video', 'toggle-media',
  'start-screen-share', 'stop-screen-share', 'toggle-screen-share'];
/** Events whose payload may be null or absent. */
const OPTIONAL_PAYLOAD = new Set(['leave-room', 'start-screen-share', 'stop-screen-share']);

/** Events `socket` got since log index `from`, minus the `error`s of its own barriers. */
const newEvents = (socket, from) => eventLog(socket).slice(from)
  .filter((e) => !(e.name === 'error' && e.data?.event === 'leave-room' && e.data?.code === 'invalid_payload'));

/**
 * Sends `event` with `args` twice, without then with an ack callback; each time the sender gets
 * the `error` event with `code`, and the ack `{ok:false, error, code}` exactly once.
 * `check()` then proves the state unchanged; `watchers` must have received nothing at all.
 */
async function expectRefused(sender, event, args, code, { watchers = [], check } = {}) {
  const marks = watchers.map((w) => eventLog(w).length);
  const start = eventLog(sender).length;

  const error = expectEvent(sender, 'error');
  sender.emit(event, ...args);
  assertError(await error, code, event);

  const errorAgain = expectEvent(sender, 'error');
  const calls = [];
  const acked = new Promise((resolve) => {
    sender.emit(event, ...args, (...answer) => {
      calls.push(answer);
      resolve(answer[0]);
    });
  });
  assertAckError(await acked, code);
  assertError(await errorAgain, code, event);

  if (check) await check(); // a later event of the sender's: the refused ones are fully handled
  await barrier(sender);
  assert.equal(calls.length, 1, 'the ack callback is called once');
  const errors = eventLog(sender).slice(start).filter((e) => e.name === 'error');
  assert.equal(errors.length, 3, `one error event per refused emit, and the barrier's: ${JSON.stringify(errors)}`);
  for (const [i, w] of watchers.entries()) {
    await barrier(w);
    assert.deepEqual(newEvents(w, marks[i]), [], 'nothing reached the others');
  }
}

describe('refused events', () => {
  let server;
  let a; let b; let c; let loner;
  let room; let other;
  let baseline;

  /** a joins its room again: the answer must show the room exactly as it was. */
  const unchanged = async () => {
    const again = expectEvent(a, 'joined-room');
    a.emit('join-room', { roomId: room, userName: 'A' });
    const now = await again;
    assert.deepEqual(now.participants, baseline.participants, 'participants unchanged');
    assert.deepEqual(now.messages, baseline.messages, 'chat history unchanged');
  };
  const healthUnchanged = async () => {
    const h = await server.health();
    assert.deepEqual([h.activeRooms, h.totalParticipants], [2, 3]);
  };

  before(async () => {
    server = await startServer();
    room = roomId('err');
    other = roomId('elsewhere');
    [a, b, c, loner] = await Promise.all(['a', 'b', 'c', 'loner'].map((name) => server.connect({ name })));
    await join(a, room, 'A');
    await join(b, room, 'B', { others: [a] });
    await join(c, other, 'C');
    const said = expectEvent(a, 'new-message');
    a.emit('send-message', { message: 'history' });
    await said;
    const again = expectEvent(a, 'joined-room');
    a.emit('join-room', { roomId: room, userName: 'A' });
    baseline = await again;
  });
  after(() => server?.stop());

  describe('invalid_payload: a payload of the wrong shape', () => {
    for (const event of EVENTS) {
      const shapes = [['a string', ['text']], ['a number', [42]], ['a boolean', [true]], ['an array', [[{ roomId: 'x' }]]]];
      if (!OPTIONAL_PAYLOAD.has(event)) shapes.push(['null', [null]], ['no payload', []]);
      for (const [what, args] of shapes) {
        it(`${event} with ${what}`, () =>
          expectRefused(a, event, args, 'invalid_payload', { watchers: [b, c], check: unchanged }));
      }
    }
  });

  describe('invalid_payload: missing, mistyped or out-of-range fields', () => {
    const target = () => ({ targetId: b.id });
    const cases = [
      ['join-room', 'no roomId', () => ({ userName: 'A' })],
      ['join-room', 'a numeric roomId', () => ({ roomId: 5, userName: 'A' })],
      ['join-room', 'an empty roomId', () => ({ roomId: '', userName: 'A' })],
      ['join-room', 'a roomId with a space', () => ({ roomId: 'a b', userName: 'A' })],
      ['join-room', 'a roomId with a slash', () => ({ roomId: 'a/b', userName: 'A' })],
      ['join-room', 'a roomId with a non-ASCII letter', () => ({ roomId: 'caf\u00e9', userName: 'A' })],
      ['join-room', 'a 65-character roomId', () => ({ roomId: 'r'.repeat(65), userName: 'A' })],
      ['join-room', 'no userName', () => ({ roomId: other })],
      ['join-room', 'a numeric userName', () => ({ roomId: other, userName: 7 })],
      ['join-room', 'an empty userName', () => ({ roomId: other, userName: '' })],
      ['join-room', 'a blank userName', () => ({ roomId: other, userName: ' \t\u3000 ' })],
      ['join-room', 'a 51-character userName', () => ({ roomId: other, userName: 'n'.repeat(51) })],
      ['join-room', 'a 51-emoji userName', () => ({ roomId: other, userName: '🦀'.repeat(51) })],
      ['leave-room', 'a numeric roomId', () => ({ roomId: 5 })],
      ['send-message', 'no message', () => ({ roomId: room })],
      ['send-message', 'an empty message', () => ({ message: '' })],
      ['send-message', 'a blank message', () => ({ message: ' \n\t\u00a0 ' })],
      ['send-message', 'a 2001-character message', () => ({ message: 'm'.repeat(2001) })],
      ['send-message', 'a 2001-emoji message', () => ({ message: '😀'.repeat(2001) })],
      ['send-message', 'a numeric message', () => ({ message: 42 })],
      ['send-message', 'a numeric roomId', () => ({ message: 'hi', roomId: 1 })],
      ['webrtc-offer', 'no target', () => ({ offer: { type: 'offer', sdp: 'x' } })],
      ['webrtc-offer', 'a numeric targetId', () => ({ targetId: 5, offer: { type: 'offer', sdp: 'x' } })],
      ['webrtc-offer', 'no offer', () => target()],
      ['webrtc-offer', 'an offer that is a string', () => ({ ...target(), offer: 'v=0' })],
      ['webrtc-offer', 'a null offer', () => ({ ...target(), offer: null })],
      ['webrtc-answer', 'no answer', () => ({ targetSocketId: b.id })],
      ['webrtc-answer', 'an answer that is a string', () => ({ targetSocketId: b.id, answer: 'v=0' })],
      ['webrtc-ice-candidate', 'no candidate', () => target()],
      ['webrtc-ice-candidate', 'a candidate that is a string', () => ({ ...target(), candidate: 'candidate:1 1 udp' })],
      ['webrtc-ice-candidate', 'a numeric candidate', () => ({ ...target(), candidate: 1 })],
      ['webrtc-ice-candidate', 'an array candidate', () => ({ ...target(), candidate: [] })],
      ['request-connection', 'no target', () => ({ roomId: room })],
      ['toggle-audio', 'no flag', () => ({ roomId: room })],
      ['toggle-audio', 'a string isAudioMuted', () => ({ isAudioMuted: 'true' })],
      ['toggle-audio', 'a numeric isAudioEnabled', () => ({ isAudioEnabled: 1 })],
      ['toggle-video', 'no flag', () => ({})],
      ['toggle-video', 'a string isVideoOff', () => ({ isVideoOff: 'yes' })],
      ['toggle-video', 'a numeric isVideoEnabled', () => ({ isVideoEnabled: 0 })],
      ['toggle-media', 'an unknown type', () => ({ type: 'screen', enabled: true })],
      ['toggle-media', 'no type', () => ({ enabled: true })],
      ['toggle-media', 'no enabled', () => ({ type: 'audio' })],
      ['toggle-media', 'a string enabled', () => ({ type: 'video', enabled: 'false' })],
      ['start-screen-share', 'a numeric roomId', () => ({ roomId: 3 })],
      ['toggle-screen-share', 'no isScreenSharing', () => ({})],
      ['toggle-screen-share', 'a string isScreenSharing', () => ({ isScreenSharing: 'true' })],
    ];
    for (const [event, what, payload] of cases) {
      it(`${event} with ${what}`, () =>
        expectRefused(a, event, [payload()], 'invalid_payload', { watchers: [b, c], check: unchanged }));
    }
  });

  describe('not_in_room', () => {
    const offer = { type: 'offer', sdp: 'x' };
    const beforeJoining = [
      ['leave-room', () => []],
      ['leave-room', () => [{ roomId: room }]],
      ['send-message', () => [{ message: 'hi' }]],
      ['webrtc-offer', () => [{ targetId: b.id, offer }]],
      ['webrtc-answer', () => [{ targetSocketId: b.id, answer: { type: 'answer', sdp: 'x' } }]],
      ['webrtc-ice-candidate', () => [{ targetId: b.id, candidate: null }]],
      ['request-connection', () => [{ targetSocketId: b.id }]],
      ['toggle-audio', () => [{ isAudioMuted: true }]],
      ['toggle-video', () => [{ isVideoEnabled: false }]],
      ['toggle-media', () => [{ type: 'audio', enabled: false }]],
      ['start-screen-share', () => []],
      ['stop-screen-share', () => [null]],
      ['toggle-screen-share', () => [{ isScreenSharing: true }]],
    ];
    for (const [event, args] of beforeJoining) {
      it(`before joining: ${event} ${args.toString().replace(/^\(\) => /, '')}`, () =>
        expectRefused(loner, event, args(), 'not_in_room', { watchers: [a, b, c], check: healthUnchanged }));
    }

    const wrongRoom = [
      ['leave-room', () => [{ roomId: other }]],
      ['send-message', () => [{ roomId: other, message: 'hi' }]],
      ['webrtc-offer', () => [{ roomId: other, targetId: b.id, offer }]],
      ['webrtc-ice-candidate', () => [{ roomId: other, targetId: b.id, candidate: null }]],
      ['request-connection', () => [{ roomId: other, targetId: b.id }]],
      ['toggle-audio', () => [{ roomId: other, isAudioEnabled: false }]],
      ['toggle-media', () => [{ roomId: other, type: 'video', enabled: false }]],
      ['start-screen-share', () => [{ roomId: other }]],
      ['toggle-screen-share', () => [{ roomId: 'NoSuchRoom', isScreenSharing: true }]],
    ];
    for (const [event, args] of wrongRoom) {
      it(`with a roomId other than the current room: ${event}`, () =>
        expectRefused(a, event, args(), 'not_in_room', { watchers: [b, c], check: unchanged }));
    }

    it('after leaving', async () => {
      const d = await server.connect({ name: 'd' });
      const r = roomId('left');
      await join(d, r, 'D');
      const left = expectEvent(d, 'left-room');
      d.emit('leave-room');
      await left;
      await expectRefused(d, 'send-message', [{ message: 'hi' }], 'not_in_room');
      await expectRefused(d, 'leave-room', [], 'not_in_room');
      await expectRefused(d, 'toggle-media', [{ type: 'audio', enabled: true }], 'not_in_room');
      d.close();
    });
  });

  describe('target_not_in_room: nothing is relayed', () => {
    const bodies = {
      'webrtc-offer': { offer: { type: 'offer', sdp: 'x' } },
      'webrtc-answer': { answer: { type: 'answer', sdp: 'x' } },
      'webrtc-ice-candidate': { candidate: { candidate: 'candidate:1', sdpMid: '0' } },
      'request-connection': {},
    };
    for (const [event, body] of Object.entries(bodies)) {
      it(`${event} to a participant of another room (targetId)`, () =>
        expectRefused(a, event, [{ targetId: c.id, ...body }], 'target_not_in_room', { watchers: [b, c], check: unchanged }));
      it(`${event} to a participant of another room (targetSocketId)`, () =>
        expectRefused(a, event, [{ targetSocketId: c.id, ...body }], 'target_not_in_room', { watchers: [b, c], check: unchanged }));
      it(`${event} to a connected socket in no room`, () =>
        expectRefused(a, event, [{ targetId: loner.id, ...body }], 'target_not_in_room', { watchers: [b, c, loner], check: unchanged }));
      it(`${event} to an unknown socket id`, () =>
        expectRefused(a, event, [{ targetId: 'no-such-socket', ...body }], 'target_not_in_room', { watchers: [b, c], check: unchanged }));
    }
  });
});

for (const { name, transports } of TRANSPORTS) {
  describe(`refusals over ${name}`, () => {
    let server;
    before(async () => {
      server = await startServer();
    });
    after(() => server?.stop());

    it('answers each refused event with the error event and the failed ack', async () => {
      const a = await server.connect({ transports });
      const b = await server.connect({ transports });
      const c = await server.connect({ transports });
      await expectRefused(a, 'send-message', [{ message: 'hi' }], 'not_in_room', { watchers: [b] });
      const room = roomId('t');
      await join(a, room, 'A');
      await join(b, room, 'B', { others: [a] });
      await join(c, roomId('u'), 'C');
      await expectRefused(a, 'send-message', [{ message: '' }], 'invalid_payload', { watchers: [b] });
      await expectRefused(a, 'webrtc-offer', [{ targetId: c.id, offer: {} }], 'target_not_in_room', { watchers: [b, c] });
      await expectRefused(a, 'leave-room', ['x'], 'invalid_payload', { watchers: [b] });
    });
  });
}
