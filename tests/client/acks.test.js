// Acknowledgements on success: with an ack callback, every client event's callback is called
// exactly once with {ok:true, ...}, and the usual events are still sent; over both transports.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TRANSPORTS, barrier, eventLog, expectEvent, join, roomId, startServer } from './helpers.js';

/** Emits with a callback; resolves the first answer, and the list of every answer so far. */
function emitCounting(socket, event, ...args) {
  const calls = [];
  const first = new Promise((resolve) => {
    socket.emit(event, ...args, (...answer) => {
      calls.push(answer);
      resolve(answer[0]);
    });
  });
  return { first, calls };
}

for (const { name, transports } of TRANSPORTS) {
  describe(`success acks over ${name}`, () => {
    let server;
    before(async () => {
      server = await startServer();
    });
    after(() => server?.stop());

    it('every event acks {ok:true} once and still sends its events', async () => {
      const room = roomId('ack');
      const a = await server.connect({ transports, name: 'a' });
      const b = await server.connect({ transports, name: 'b' });
      await join(b, room, 'B');
      const all = [];
      /** `a` sends the event with a callback; `expected` is the event `a` or `b` must also get. */
      const step = async (event, args, [who, expected]) => {
        const seen = expectEvent(who === 'a' ? a : b, expected);
        const sent = emitCounting(a, event, ...args);
        all.push([event, sent.calls]);
        const answer = await sent.first;
        assert.equal(typeof answer, 'object', `${event} ack: ${JSON.stringify(answer)}`);
        assert.equal(answer.ok, true, `${event} ack: ${JSON.stringify(answer)}`);
        await seen;
        return answer;
      };
      const target = { targetSocketId: b.id };
      await step('join-room', [{ roomId: room, userName: 'A' }], ['a', 'joined-room']);
      await step('join-room', [{ roomId: room, userName: 'A' }], ['a', 'joined-room']); // already in
      await step('send-message', [{ message: 'hi' }], ['b', 'new-message']);
      await step('webrtc-offer', [{ ...target, offer: { type: 'offer', sdp: 'x' } }], ['b', 'webrtc-offer']);
      await step('webrtc-answer', [{ targetId: b.id, answer: { type: 'answer', sdp: 'y' } }], ['b', 'webrtc-answer']);
      await step('webrtc-ice-candidate', [{ ...target, candidate: { candidate: 'c' } }], ['b', 'webrtc-ice-candidate']);
      await step('webrtc-ice-candidate', [{ ...target, candidate: null }], ['b', 'webrtc-ice-candidate']);
      await step('request-connection', [target], ['b', 'connection-request']);
      await step('toggle-audio', [{ isAudioMuted: true }], ['b', 'participant-audio-toggled']);
      await step('toggle-video', [{ isVideoEnabled: false }], ['b', 'participant-video-toggled']);
      await step('toggle-media', [{ type: 'audio', enabled: true }], ['b', 'media-toggled']);
      await step('start-screen-share', [], ['b', 'user-started-screen-share']);
      await step('stop-screen-share', [null], ['b', 'user-stopped-screen-share']);
      await step('toggle-screen-share', [{ isScreenSharing: true }], ['b', 'user-started-screen-share']);
      await step('leave-room', [], ['a', 'left-room']);

      await barrier(a); // every earlier event of a's has been answered
      for (const [event, calls] of all) assert.equal(calls.length, 1, `${event}: ack called once`);
      const errors = eventLog(a).filter((e) => e.name === 'error' && e.data.code !== 'invalid_payload');
      assert.deepEqual(errors, [], 'no error event on success (the barrier\'s invalid_payload aside)');
      a.close();
      b.close();
    });
  });
}
