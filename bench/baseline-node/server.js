// The original ProLiteMeet Node.js backend (Express + Socket.IO 4), reconstructed from
// shared/PROTOCOL.md's non-(fix) behaviour, as the baseline of the benchmarks in bench/.
// Same events and field names as the original, with its behaviour kept on purpose:
//   - chat is kept, and every message is stored forever in its room (no history limit), with
//     the sender's name taken from the payload;
//   - webrtc-offer/answer/ice-candidate and request-connection are relayed to ANY socket id
//     on the server (no same-room check);
//   - leave-room does not remove the participant from the room (only disconnect does), and a
//     join-room for another room leaves a ghost behind in the old one;
//   - a room is deleted the moment its last participant disconnects; rooms made by
//     POST /api/create-room live until someone joins and leaves them;
//   - CORS applies to REST and to Socket.IO polling only.
// Differences, both for benchmarking: the original logged every event with console.log (off
// here), and a handler given no payload threw inside Socket.IO (here it is caught and the event
// ignored, so a stray client cannot stop a benchmark).
//
//   PORT=3002 node server.js        (HOST, FRONTEND_URL also read)

'use strict';

const express = require('express');
const http = require('http');
const cors = require('cors');
const { Server } = require('socket.io');
const { v4: uuidv4 } = require('uuid');

const PORT = Number(process.env.PORT || 3001);
const HOST = process.env.HOST || '0.0.0.0';
const FRONTEND_URL = process.env.FRONTEND_URL || 'http://localhost:5173';

const app = express();
app.use(cors({ origin: FRONTEND_URL, credentials: true }));
app.use(express.json());

const server = http.createServer(app);
const io = new Server(server, {
  cors: { origin: FRONTEND_URL, methods: ['GET', 'POST'], credentials: true },
});

// roomId -> { id, participants: Map<socketId, participant>, messages: [], createdAt }
const rooms = new Map();

function getOrCreateRoom(roomId) {
  let room = rooms.get(roomId);
  if (!room) {
    room = { id: roomId, participants: new Map(), messages: [], createdAt: new Date() };
    rooms.set(roomId, room);
  }
  return room;
}

function participantList(room) {
  return Array.from(room.participants.values());
}

app.get('/health', (req, res) => {
  let totalParticipants = 0;
  for (const room of rooms.values()) totalParticipants += room.participants.size;
  res.json({
    status: 'OK',
    timestamp: new Date().toISOString(),
    activeRooms: rooms.size,
    totalParticipants,
  });
});

app.get('/api/room/:roomId', (req, res) => {
  const room = rooms.get(req.params.roomId);
  if (!room) return res.status(404).json({ error: 'Room not found' });
  res.json({
    roomId: room.id,
    participantCount: room.participants.size,
    createdAt: room.createdAt.toISOString(),
  });
});

app.post('/api/create-room', (req, res) => {
  const roomId = uuidv4().substring(0, 8).toUpperCase();
  getOrCreateRoom(roomId);
  res.json({ roomId, message: 'Room created successfully' });
});

app.use((req, res) => res.status(404).json({ error: 'Not found' }));

// A handler that throws (a missing payload, as the original did) is ignored.
function guarded(handler) {
  return (...args) => {
    try {
      handler(...args);
    } catch (_) {
      // the original's handler crashed here
    }
  };
}

io.on('connection', (socket) => {
  socket.on('join-room', guarded(({ roomId, userName, userAvatar }) => {
    const room = getOrCreateRoom(roomId);
    socket.join(roomId);
    socket.data.roomId = roomId;
    socket.data.userName = userName;
    const participant = {
      id: socket.id,
      userName,
      name: userName,
      avatar: userAvatar || null,
      joinedAt: new Date().toISOString(),
      isAudioMuted: false,
      isAudioEnabled: true,
      isVideoOff: false,
      isVideoEnabled: true,
      isScreenSharing: false,
      isAdmin: room.participants.size === 0,
    };
    room.participants.set(socket.id, participant);
    const participants = participantList(room);
    socket.emit('joined-room', {
      roomId,
      participantId: socket.id,
      participant,
      participants,
      messages: room.messages,
    });
    socket.to(roomId).emit('user-joined', { ...participant, participantId: socket.id, participant });
    io.to(roomId).emit('participants-updated', participants);
  }));

  socket.on('leave-room', guarded(({ roomId }) => {
    socket.leave(roomId);
    socket.to(roomId).emit('user-left', { participantId: socket.id, userName: socket.data.userName });
  }));

  socket.on('send-message', guarded(({ roomId, message, userName, userAvatar }) => {
    const room = rooms.get(roomId);
    if (!room) return;
    const chatMessage = {
      id: uuidv4(),
      senderId: socket.id,
      userName,
      message,
      timestamp: new Date().toISOString(),
      userAvatar: userAvatar || null,
    };
    room.messages.push(chatMessage);
    io.to(roomId).emit('new-message', chatMessage);
  }));

  socket.on('webrtc-offer', guarded(({ targetId, offer }) => {
    socket.to(targetId).emit('webrtc-offer', { senderId: socket.id, senderSocketId: socket.id, offer });
  }));

  socket.on('webrtc-answer', guarded(({ targetId, answer }) => {
    socket.to(targetId).emit('webrtc-answer', { senderId: socket.id, senderSocketId: socket.id, answer });
  }));

  socket.on('webrtc-ice-candidate', guarded(({ targetId, candidate }) => {
    socket.to(targetId).emit('webrtc-ice-candidate', { senderId: socket.id, senderSocketId: socket.id, candidate });
  }));

  socket.on('request-connection', guarded(({ targetId, roomId }) => {
    socket.to(targetId).emit('connection-request', { senderId: socket.id, senderSocketId: socket.id, roomId });
  }));

  function setMedia(roomId, change) {
    const room = rooms.get(roomId);
    const participant = room && room.participants.get(socket.id);
    if (!participant) return null;
    Object.assign(participant, change);
    return { room, participant };
  }

  socket.on('toggle-audio', guarded(({ roomId, isAudioMuted }) => {
    const found = setMedia(roomId, { isAudioMuted, isAudioEnabled: !isAudioMuted });
    if (!found) return;
    socket.to(roomId).emit('participant-audio-toggled', {
      participantId: socket.id, isAudioMuted, isAudioEnabled: !isAudioMuted,
    });
    socket.to(roomId).emit('media-toggled', {
      participantId: socket.id, participantName: found.participant.userName, type: 'audio', enabled: !isAudioMuted,
    });
    io.to(roomId).emit('participants-updated', participantList(found.room));
  }));

  socket.on('toggle-video', guarded(({ roomId, isVideoOff }) => {
    const found = setMedia(roomId, { isVideoOff, isVideoEnabled: !isVideoOff });
    if (!found) return;
    socket.to(roomId).emit('participant-video-toggled', {
      participantId: socket.id, isVideoOff, isVideoEnabled: !isVideoOff,
    });
    socket.to(roomId).emit('media-toggled', {
      participantId: socket.id, participantName: found.participant.userName, type: 'video', enabled: !isVideoOff,
    });
    io.to(roomId).emit('participants-updated', participantList(found.room));
  }));

  socket.on('start-screen-share', guarded(({ roomId }) => {
    const found = setMedia(roomId, { isScreenSharing: true });
    if (!found) return;
    socket.to(roomId).emit('user-started-screen-share', { participantId: socket.id });
    io.to(roomId).emit('participants-updated', participantList(found.room));
  }));

  socket.on('stop-screen-share', guarded(({ roomId }) => {
    const found = setMedia(roomId, { isScreenSharing: false });
    if (!found) return;
    socket.to(roomId).emit('user-stopped-screen-share', { participantId: socket.id });
    io.to(roomId).emit('participants-updated', participantList(found.room));
  }));

  socket.on('disconnect', () => {
    for (const [roomId, room] of rooms) {
      const participant = room.participants.get(socket.id);
      if (!participant) continue;
      room.participants.delete(socket.id);
      socket.to(roomId).emit('user-left', { participantId: socket.id, userName: participant.userName });
      if (room.participants.size === 0) {
        rooms.delete(roomId);
      } else {
        io.to(roomId).emit('participants-updated', participantList(room));
      }
    }
  });
});

server.listen(PORT, HOST, () => {
  console.log(`ProLiteMeet baseline (Node ${process.version}) listening on ${HOST}:${PORT}`);
});

function shutdown() {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
