// A full two-client call, for each transport and each frontend dialect: create-room → join →
// offer → answer → ICE (object and null) → request-connection → media toggles → screen share →
// chat → leave, with every payload field and the ordering rules of PROTOCOL.md, ending with
// /health back at 0 (EMPTY_ROOM_TTL_SECS=0).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ISO, TRANSPORTS, UUID_V4, assertParticipant, awaitWebSocket, eventLog, expectEvent, startServer,
} from './helpers.js';

const AVATAR = 'https://cdn.example.com/bob.png';

/** How each dialect spells the same requests. `room` is the roomId the client passes, if any. */
const DIALECTS = [
  {
    name: 'original (targetId, toggle-audio/video, start/stop-screen-share, leave-room {roomId})',
    target: (id, room) => ({ targetId: id, roomId: room }),
    audio: (room, enabled) => ['toggle-audio', { roomId: room, isAudioMuted: !enabled }],
    video: (room, enabled) => ['toggle-video', { roomId: room, isVideoOff: !enabled }],
    share: (room, on) => [on ? 'start-screen-share' : 'stop-screen-share', { roomId: room }],
    leave: (room) => ['leave-room', { roomId: room }],
  },
  {
    name: 'frontends (targetSocketId, toggle-media, toggle-screen-share, bare leave-room)',
    target: (id) => ({ targetSocketId: id }),
    audio: (_room, enabled) => ['toggle-media', { type: 'audio', enabled }],
    video: (_room, enabled) => ['toggle-media', { type: 'video', enabled }],
    share: (_room, on) => ['toggle-screen-share', { isScreenSharing: on }],
    leave: () => ['leave-room'],
  },
];

/** Index of the last `name` event in `socket`'s log (-1 if none). */
const lastIndex = (socket, name) => eventLog(socket).findLastIndex((e) => e.name === name);
const names = (socket) => eventLog(socket).map((e) => e.name);

for (const transport of TRANSPORTS) {
  for (const dialect of DIALECTS) {
    describe(`call over ${transport.name}, ${dialect.name}`, () => {
      let server;
      before(async () => {
        server = await startServer({ EMPTY_ROOM_TTL_SECS: '0' });
      });
      after(() => server?.stop());

      it('runs the whole call', async () => {
        const created = await server.http('POST', '/api/create-room');
        const room = created.body.roomId;
        assert.deepEqual(await server.health().then((h) => [h.activeRooms, h.totalParticipants]), [1, 0]);

        const alice = await server.connect({ transports: transport.transports, name: 'alice' });
        const bob = await server.connect({ transports: transport.transports, name: 'bob' });

        // --- Alice joins: she is alone and host.
        let joinedP = expectEvent(alice, 'joined-room');
        let updatedA = expectEvent(alice, 'participants-updated');
        alice.emit('join-room', { roomId: room, userName: '  Alice  ' });
        const aliceJoined = await joinedP;
        assert.deepEqual(Object.keys(aliceJoined).sort(),
          ['iceServers', 'messages', 'participant', 'participantId', 'participants', 'room', 'roomId']);
        assert.equal(aliceJoined.roomId, room);
        assert.equal(aliceJoined.participantId, alice.id);
        assertParticipant(aliceJoined.participant, {
          id: alice.id, userName: 'Alice', avatar: null, isAdmin: true, isAudioMuted: false,
          isVideoOff: false, isScreenSharing: false,
        });
        assert.deepEqual(aliceJoined.participants, [aliceJoined.participant]);
        assert.deepEqual(aliceJoined.messages, []);
        assert.deepEqual(await updatedA, [aliceJoined.participant]);
        assert.ok(names(alice).indexOf('joined-room') < names(alice).indexOf('participants-updated'));
        assert.equal((await server.http('GET', `/api/room/${room}`)).body.participantCount, 1);

        // --- Bob joins with an avatar: Alice hears user-joined, then participants-updated.
        joinedP = expectEvent(bob, 'joined-room');
        const updatedB = expectEvent(bob, 'participants-updated');
        const userJoined = expectEvent(alice, 'user-joined');
        updatedA = expectEvent(alice, 'participants-updated');
        bob.emit('join-room', { roomId: room, userName: 'Bob', userAvatar: AVATAR });
        const bobJoined = await joinedP;
        assert.equal(bobJoined.roomId, room);
        assert.equal(bobJoined.participantId, bob.id);
        assertParticipant(bobJoined.participant, { id: bob.id, userName: 'Bob', avatar: AVATAR, isAdmin: false });
        assert.equal(bobJoined.participants.length, 2);
        bobJoined.participants.forEach((p) => assertParticipant(p));
        assert.deepEqual(bobJoined.participants.map((p) => [p.id, p.isAdmin]), [[alice.id, true], [bob.id, false]]);
        assert.deepEqual(bobJoined.participants[1], bobJoined.participant);
        const joinedEvent = await userJoined;
        assertParticipant(joinedEvent, { id: bob.id, userName: 'Bob', avatar: AVATAR, isAdmin: false });
        assert.equal(joinedEvent.participantId, bob.id);
        assert.deepEqual(joinedEvent.participant, bobJoined.participant);
        const listA = await updatedA;
        assert.deepEqual(listA, bobJoined.participants);
        assert.deepEqual(await updatedB, bobJoined.participants);
        assert.ok(lastIndex(alice, 'user-joined') < lastIndex(alice, 'participants-updated'),
          `Alice: user-joined before participants-updated: ${names(alice)}`);
        assert.ok(names(bob).indexOf('joined-room') < names(bob).indexOf('participants-updated'),
          `Bob: joined-room before participants-updated: ${names(bob)}`);
        assert.deepEqual(await server.health().then((h) => [h.activeRooms, h.totalParticipants]), [1, 2]);

        // --- Offer, answer, ICE candidates (object, then null), connection request.
        const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n', extra: { nested: [1, 'two'] } };
        let got = expectEvent(bob, 'webrtc-offer');
        alice.emit('webrtc-offer', { ...dialect.target(bob.id, room), offer });
        assert.deepEqual(await got, { senderId: alice.id, senderSocketId: alice.id, offer });

        const answer = { type: 'answer', sdp: 'v=0\r\nanswer\r\n' };
        got = expectEvent(alice, 'webrtc-answer');
        bob.emit('webrtc-answer', { ...dialect.target(alice.id, room), answer });
        assert.deepEqual(await got, { senderId: bob.id, senderSocketId: bob.id, answer });

        const candidate = { candidate: 'candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
        got = expectEvent(bob, 'webrtc-ice-candidate');
        alice.emit('webrtc-ice-candidate', { ...dialect.target(bob.id, room), candidate });
        assert.deepEqual(await got, { senderId: alice.id, senderSocketId: alice.id, candidate });
        got = expectEvent(alice, 'webrtc-ice-candidate');
        bob.emit('webrtc-ice-candidate', { ...dialect.target(alice.id, room), candidate: null });
        assert.deepEqual(await got, { senderId: bob.id, senderSocketId: bob.id, candidate: null });

        got = expectEvent(bob, 'connection-request');
        alice.emit('request-connection', dialect.target(bob.id, room));
        assert.deepEqual(await got, { senderId: alice.id, senderSocketId: alice.id, roomId: room });

        // --- Media toggles: the others get the specific event and media-toggled; all get the list.
        const toggle = async (kind, enabled) => {
          const [event, payload] = kind === 'audio' ? dialect.audio(room, enabled) : dialect.video(room, enabled);
          const specific = kind === 'audio' ? 'participant-audio-toggled' : 'participant-video-toggled';
          const specificP = expectEvent(bob, specific);
          const mediaP = expectEvent(bob, 'media-toggled');
          const listB = expectEvent(bob, 'participants-updated');
          const listAP = expectEvent(alice, 'participants-updated');
          alice.emit(event, payload);
          const expected = kind === 'audio'
            ? { participantId: alice.id, isAudioMuted: !enabled, isAudioEnabled: enabled }
            : { participantId: alice.id, isVideoOff: !enabled, isVideoEnabled: enabled };
          assert.deepEqual(await specificP, expected);
          assert.deepEqual(await mediaP, { participantId: alice.id, participantName: 'Alice', type: kind, enabled });
          const [list, own] = await Promise.all([listB, listAP]);
          assert.deepEqual(list, own);
          list.forEach((p) => assertParticipant(p));
          const me = list.find((p) => p.id === alice.id);
          if (kind === 'audio') assert.equal(me.isAudioEnabled, enabled);
          else assert.equal(me.isVideoEnabled, enabled);
          assert.ok(lastIndex(bob, specific) < lastIndex(bob, 'participants-updated'));
          return list;
        };
        await toggle('audio', false);
        let list = await toggle('video', false);
        assertParticipant(list[0], { isAudioMuted: true, isVideoOff: true });
        assertParticipant(list[1], { isAudioMuted: false, isVideoOff: false });
        list = await toggle('audio', true);
        assertParticipant(list[0], { isAudioMuted: false, isVideoOff: true });
        await toggle('video', true);

        // --- Screen share on, then off.
        for (const on of [true, false]) {
          const [event, payload] = dialect.share(room, on);
          const announced = expectEvent(bob, on ? 'user-started-screen-share' : 'user-stopped-screen-share');
          const listBP = expectEvent(bob, 'participants-updated');
          const listAP = expectEvent(alice, 'participants-updated');
          alice.emit(event, payload);
          assert.deepEqual(await announced, { participantId: alice.id });
          const [lb, la] = await Promise.all([listBP, listAP]);
          assert.deepEqual(lb, la);
          assert.equal(lb.find((p) => p.id === alice.id).isScreenSharing, on);
          assert.equal(lb.find((p) => p.id === bob.id).isScreenSharing, false);
        }

        // --- Chat: to everyone incl. the sender, trimmed, identity from the registry.
        let mA = expectEvent(alice, 'new-message');
        let mB = expectEvent(bob, 'new-message');
        bob.emit('send-message', { roomId: room, message: '  hello Alice \n', userName: 'Mallory', userAvatar: 'https://evil.example/x.png' });
        const bobMessage = await mB;
        assert.deepEqual(await mA, bobMessage);
        assert.deepEqual(Object.keys(bobMessage).sort(), ['id', 'message', 'senderId', 'timestamp', 'userAvatar', 'userName']);
        assert.match(bobMessage.id, UUID_V4);
        assert.match(bobMessage.timestamp, ISO);
        assert.equal(bobMessage.senderId, bob.id);
        assert.equal(bobMessage.userName, 'Bob');
        assert.equal(bobMessage.message, 'hello Alice');
        assert.equal(bobMessage.userAvatar, AVATAR);

        mA = expectEvent(alice, 'new-message');
        mB = expectEvent(bob, 'new-message');
        alice.emit('send-message', { message: 'hi Bob' });
        const aliceMessage = await mA;
        assert.deepEqual(await mB, aliceMessage);
        assert.equal(aliceMessage.senderId, alice.id);
        assert.equal(aliceMessage.userName, 'Alice');
        assert.equal(aliceMessage.userAvatar, null, 'userAvatar is null, not absent');
        assert.notEqual(aliceMessage.id, bobMessage.id);

        // --- Alice leaves: left-room to her; user-left then participants-updated to Bob, who is host now.
        const leftRoom = expectEvent(alice, 'left-room');
        const userLeft = expectEvent(bob, 'user-left');
        const hostChanged = expectEvent(bob, 'host-changed');
        const afterLeave = expectEvent(bob, 'participants-updated');
        alice.emit(...dialect.leave(room));
        assert.deepEqual(await leftRoom, { roomId: room });
        assert.deepEqual(await userLeft, { participantId: alice.id, userName: 'Alice' });
        const remaining = await afterLeave;
        assert.equal(remaining.length, 1);
        assertParticipant(remaining[0], { id: bob.id, isAdmin: true });
        assert.ok(lastIndex(bob, 'user-left') < lastIndex(bob, 'participants-updated'));
        assert.deepEqual(await hostChanged, { roomId: room, hostId: bob.id, previousHostId: alice.id });
        assert.ok(lastIndex(bob, 'host-changed') < lastIndex(bob, 'participants-updated'));
        assert.deepEqual(await server.health().then((h) => [h.activeRooms, h.totalParticipants]), [1, 1]);

        // --- Bob leaves: the room is removed at once (EMPTY_ROOM_TTL_SECS=0).
        const bobLeft = expectEvent(bob, 'left-room');
        bob.emit(...dialect.leave(room));
        assert.deepEqual(await bobLeft, { roomId: room });
        assert.deepEqual(await server.health().then((h) => [h.activeRooms, h.totalParticipants]), [0, 0]);
        assert.equal((await server.http('GET', `/api/room/${room}`)).status, 404);

        // Without acks, nothing but the events above reached either client (and host-changed:
        // Bob became host when Alice left).
        const allowed = new Set(['joined-room', 'participants-updated', 'user-joined', 'user-left', 'left-room',
          'host-changed',
          'webrtc-offer', 'webrtc-answer', 'webrtc-ice-candidate', 'connection-request', 'new-message',
          'participant-audio-toggled', 'participant-video-toggled', 'media-toggled',
          'user-started-screen-share', 'user-stopped-screen-share']);
        for (const s of [alice, bob]) {
          const unexpected = names(s).filter((n) => !allowed.has(n));
          assert.deepEqual(unexpected, [], `${s === alice ? 'Alice' : 'Bob'} got unexpected events`);
        }
        // Toggles and screen share go to the others only: Alice never heard her own.
        for (const n of ['participant-audio-toggled', 'participant-video-toggled', 'media-toggled',
          'user-started-screen-share', 'user-stopped-screen-share']) {
          assert.ok(!names(alice).includes(n), `Alice must not get her own ${n}`);
        }
        assert.ok(!names(bob).includes('user-joined'), 'Bob must not get his own user-joined');

        if (!transport.transports) await awaitWebSocket(alice); // polling really upgraded
        alice.close();
        bob.close();
      });
    });
  }
}
