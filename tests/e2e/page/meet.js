// ProLiteMeet e2e test client: a small mesh-WebRTC client that speaks the signaling protocol
// (/work/shared/PROTOCOL.md) in either dialect, chosen by the URL:
//
//   /?room=ROOM&name=NAME&dialect=original|frontend[&transports=websocket]
//     [&ice=loopback|relay[&iceSource=joined-room|api]][&reconnect=1]
//
//   original  — the original backend's frontend: targetId/senderId, toggle-audio {isAudioMuted},
//               start-/stop-screen-share, leave-room {roomId}, reads userName/isAudioMuted.
//   frontend  — the public React frontends: targetSocketId/senderSocketId,
//               toggle-media {type, enabled}, toggle-screen-share, leave-room without payload,
//               reads name/isAudioEnabled.
//
// Signaling scheme (one standard scheme, no glare): the NEWCOMER calls. On `joined-room` the
// page creates one RTCPeerConnection per participant already in the room and sends each an
// offer; participants already in the room never offer, they answer the offers they receive.
// ICE is trickled both ways with `webrtc-ice-candidate` (`candidate: null` at the end);
// candidates that arrive before the remote description are buffered.
//
// ICE servers: by default none (host candidates only; the test runs on loopback). With
// `ice=relay` the page uses the server's ICE servers with `iceTransportPolicy: 'relay'`, as a
// frontend behind a hostile NAT would have to: the `iceServers` of `joined-room`
// (`iceSource=joined-room`, the default), or `GET /api/ice-servers?participantId=<socket id>`
// fetched before joining (`iceSource=api`). Then every candidate is a TURN relay candidate,
// and media can only flow through the TURN server.
//
// With `reconnect=1` the socket reconnects by itself after a network blip, as the frontends'
// socket.io-client does, and recovers its session (connection state recovery): same socket
// id, still in the room, peers untouched. The page records each connect (`connects`: id,
// `recovered`) and the others' `participant-reconnecting` / `-reconnected`
// (`connectionEvents`), and shows a reconnecting participant as such.
//
// Host moderation: the list shows who may use the microphone (`hasMicPermission`); on
// `permission-changed` for its microphone the page turns its own audio track off (or lets the
// user turn it on again); `meet.moderate(event, payload)` sends a host event and returns its ack.
//
// The test drives the page through `window.meet` (join, sendChat, setAudio, leave, state, …).
// Remote videos are <video class="remote" data-participant-id="SOCKET_ID">.

(() => {
  'use strict';

  const params = new URLSearchParams(location.search);
  const dialect = params.get('dialect') === 'frontend' ? 'frontend' : 'original';
  const userName = params.get('name') || 'Anonymous';
  const transports = params.get('transports') ? params.get('transports').split(',') : undefined;
  const RECONNECT = params.get('reconnect') === '1';
  const ORIGINAL = dialect === 'original';
  const TARGET = ORIGINAL ? 'targetId' : 'targetSocketId';
  const SENDER = ORIGINAL ? 'senderId' : 'senderSocketId';
  // ?ice=loopback: signal only 127.0.0.1 candidates, so the call runs over loopback even on a
  // machine that has other interfaces too (as a loopback-only CI sandbox would force it).
  const ICE_LOOPBACK_ONLY = params.get('ice') === 'loopback';
  // ?ice=relay: the server's ICE servers, relay candidates only (see the top of this file).
  const ICE_RELAY = params.get('ice') === 'relay';
  const ICE_SOURCE = params.get('iceSource') === 'api' ? 'api' : 'joined-room';
  // No STUN/TURN unless ?ice=relay: host candidates only. Set before the first peer exists.
  let rtcConfig = ICE_RELAY ? null : { iceServers: [] };

  const $ = (id) => document.getElementById(id);

  // Everything the test may want to look at. Plain data only (it is JSON-cloned by `state()`).
  const st = {
    dialect,
    userName,
    roomId: params.get('room') || null,
    selfId: null,
    socketConnected: false,
    transport: null,
    joined: false,
    left: false,
    localMedia: false,
    audioEnabled: true,
    // [{id, name, audioMuted, videoOff, screenSharing, isAdmin, micAllowed}] in join order.
    participants: [],
    // [{id, senderId, userName, message, timestamp}]
    messages: [],
    // Dialect-specific media events received: [{participantId, kind, muted}]
    mediaEvents: [],
    // [{participantId, userName}]
    leftEvents: [],
    // Every connect of the socket: [{id, recovered}] (more than one only with ?reconnect=1).
    connects: [],
    // [{participantId, event: 'reconnecting' | 'reconnected'}]
    connectionEvents: [],
    errors: [],
    // permission-changed events received: [{kind, allowed, byName}]
    permissionEvents: [],
    // id -> {initiator, connectionState, iceConnectionState, signalingState, tracks, stats}
    peers: {},
    // ?ice=relay: {source, policy, iceServers, api: {status, cacheControl, ttl} | null,
    // joinedRoomIceServers}; otherwise null.
    ice: null,
    log: [],
  };

  const peers = new Map(); // id -> {pc, initiator, queue, pendingCandidates, stream}
  let socket = null;
  let localStream = null;
  const waiters = []; // {event, resolve, reject, timer}
  const earlyCandidates = new Map(); // id -> candidates received before that peer existed

  function log(...args) {
    const line = `${new Date().toISOString().slice(11, 23)} ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`;
    st.log.push(line);
    if (st.log.length > 300) st.log.shift();
    console.log(`[meet ${userName}] ${line}`);
  }

  // ---- participants ---------------------------------------------------------------------

  // Read a participant object the way this dialect's frontend does.
  function normalize(p) {
    return ORIGINAL
      ? { id: p.id, name: p.userName, audioMuted: p.isAudioMuted === true, videoOff: p.isVideoOff === true,
          screenSharing: p.isScreenSharing === true, isAdmin: p.isAdmin === true, micAllowed: p.hasMicPermission !== false,
          connection: p.connection ?? null }
      : { id: p.id, name: p.name, audioMuted: p.isAudioEnabled === false, videoOff: p.isVideoEnabled === false,
          screenSharing: p.isScreenSharing === true, isAdmin: p.isAdmin === true, micAllowed: p.hasMicPermission !== false,
          connection: p.connection ?? null };
  }

  function setParticipants(list) {
    st.participants = list.map(normalize);
    render();
  }

  function render() {
    $('count').textContent = String(st.participants.length);
    const ul = $('participants');
    ul.replaceChildren(...st.participants.map((p) => {
      const li = document.createElement('li');
      li.dataset.participantId = p.id;
      li.dataset.audioMuted = String(p.audioMuted);
      li.dataset.micAllowed = String(p.micAllowed);
      li.dataset.connection = p.connection ?? '';
      li.textContent = `${p.name}${p.id === st.selfId ? ' (you)' : ''}${p.isAdmin ? ' [host]' : ''}${p.micAllowed ? '' : ' [mic disabled by host]'}${p.connection === 'reconnecting' ? ' (reconnecting…)' : ''}`;
      li.classList.toggle('muted', p.audioMuted);
      return li;
    }));
    for (const cap of document.querySelectorAll('figure.tile figcaption')) {
      const id = cap.parentElement.dataset.participantId;
      const p = st.participants.find((q) => q.id === id);
      cap.textContent = `${p ? p.name : '?'}${p && p.audioMuted ? ' (muted)' : ''} · ${id}`;
    }
    $('status').textContent = st.left ? 'left' : st.joined ? 'in call' : st.socketConnected ? 'connected' : 'connecting';
    $('mute').textContent = st.audioEnabled ? 'Mute' : 'Unmute';
  }

  // ---- media ----------------------------------------------------------------------------

  async function ensureLocalMedia() {
    if (localStream) return localStream;
    localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    st.localMedia = true;
    const v = $('local');
    v.srcObject = localStream;
    v.play().catch(() => {});
    log('local media', localStream.getTracks().map((t) => t.kind));
    return localStream;
  }

  function videoFor(id) {
    let v = document.querySelector(`video.remote[data-participant-id="${CSS.escape(id)}"]`);
    if (!v) {
      const tile = document.createElement('figure');
      tile.className = 'tile';
      tile.dataset.participantId = id;
      v = document.createElement('video');
      v.className = 'remote';
      v.dataset.participantId = id;
      v.autoplay = true;
      v.playsInline = true;
      tile.append(v, document.createElement('figcaption'));
      $('videos').append(tile);
      render();
    }
    return v;
  }

  // ---- peer connections -----------------------------------------------------------------

  function peerFor(id, initiator) {
    let peer = peers.get(id);
    if (peer) return peer;
    if (!rtcConfig) throw new Error(`no ICE servers yet for ${id} (ice=relay)`);
    const pc = new RTCPeerConnection(rtcConfig);
    peer = { pc, initiator, queue: Promise.resolve(), pendingCandidates: earlyCandidates.get(id) || [] };
    earlyCandidates.delete(id);
    peers.set(id, peer);
    st.peers[id] = { initiator, connectionState: pc.connectionState, iceConnectionState: pc.iceConnectionState,
      signalingState: pc.signalingState, tracks: [], localCandidates: [], candidateErrors: [], stats: null };
    for (const track of localStream.getTracks()) pc.addTrack(track, localStream);

    pc.onicecandidate = ({ candidate }) => {
      if (candidate) {
        const loopback = candidate.address === '127.0.0.1';
        st.peers[id].localCandidates.push(`${candidate.type} ${candidate.protocol} ${candidate.address}:${candidate.port}${ICE_LOOPBACK_ONLY && !loopback ? ' (withheld)' : ''}`);
        if (ICE_LOOPBACK_ONLY && !loopback) return;
      }
      emit('webrtc-ice-candidate', { [TARGET]: id, candidate: candidate ? candidate.toJSON() : null });
    };
    // E.g. a TURN server refusing the credentials (401) or unreachable (701).
    pc.onicecandidateerror = (e) => {
      st.peers[id]?.candidateErrors.push(`${e.url} ${e.errorCode} ${e.errorText}`);
      log('ICE candidate error', id, e.url, e.errorCode, e.errorText);
    };
    pc.ontrack = (ev) => {
      st.peers[id].tracks.push(ev.track.kind);
      const v = videoFor(id);
      const stream = ev.streams[0] || (v.srcObject instanceof MediaStream ? v.srcObject : new MediaStream());
      if (!ev.streams[0]) stream.addTrack(ev.track);
      if (v.srcObject !== stream) v.srcObject = stream;
      v.play().catch((e) => {
        // Autoplay with sound refused: play muted rather than not at all.
        log('play() refused, retrying muted', String(e));
        v.muted = true;
        v.play().catch((e2) => log('muted play() failed', String(e2)));
      });
      log('track from', id, ev.track.kind);
    };
    const update = () => {
      if (!st.peers[id]) return;
      Object.assign(st.peers[id], { connectionState: pc.connectionState, iceConnectionState: pc.iceConnectionState,
        signalingState: pc.signalingState });
    };
    pc.onconnectionstatechange = () => { update(); log('peer', id, 'connection', pc.connectionState); };
    pc.oniceconnectionstatechange = update;
    pc.onsignalingstatechange = update;
    log('peer created', id, initiator ? '(offering)' : '(answering)');
    return peer;
  }

  // Runs signaling steps of one peer strictly in order (offer/answer/candidates arrive as
  // separate events; their handlers are async).
  function enqueue(peer, what, fn) {
    peer.queue = peer.queue.then(fn).catch((e) => {
      log('signaling step failed:', what, String(e));
      st.errors.push({ local: true, what, message: String(e) });
    });
    return peer.queue;
  }

  async function flushCandidates(peer) {
    const pending = peer.pendingCandidates.splice(0);
    for (const c of pending) await addCandidate(peer, c);
  }

  async function addCandidate(peer, candidate) {
    if (candidate) await peer.pc.addIceCandidate(candidate);
    else await peer.pc.addIceCandidate().catch(() => {}); // end of candidates
  }

  function closePeer(id) {
    const peer = peers.get(id);
    if (peer) {
      peer.pc.close();
      peers.delete(id);
    }
    delete st.peers[id];
    earlyCandidates.delete(id);
    const v = document.querySelector(`video.remote[data-participant-id="${CSS.escape(id)}"]`);
    if (v) {
      v.srcObject = null;
      v.closest('figure').remove();
    }
  }

  function callPeer(id) {
    const peer = peerFor(id, true);
    enqueue(peer, `offer to ${id}`, async () => {
      await peer.pc.setLocalDescription(await peer.pc.createOffer());
      emit('webrtc-offer', { [TARGET]: id, offer: peer.pc.localDescription.toJSON() });
    });
  }

  // Periodic inbound statistics (audio packets, decoded video frames, the selected pair).
  async function collectStats() {
    for (const [id, peer] of peers) {
      try {
        const report = await peer.pc.getStats();
        const s = { audioPacketsReceived: 0, audioBytesReceived: 0, videoFramesDecoded: 0, videoBytesReceived: 0, pair: null, selected: null };
        let pairId = null;
        const byId = new Map();
        report.forEach((r) => {
          byId.set(r.id, r);
          if (r.type === 'inbound-rtp' && r.kind === 'audio') {
            s.audioPacketsReceived += r.packetsReceived || 0;
            s.audioBytesReceived += r.bytesReceived || 0;
          }
          if (r.type === 'inbound-rtp' && r.kind === 'video') {
            s.videoFramesDecoded += r.framesDecoded || 0;
            s.videoBytesReceived += r.bytesReceived || 0;
          }
          if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
        });
        const pair = pairId && byId.get(pairId);
        if (pair) {
          const l = byId.get(pair.localCandidateId);
          const r = byId.get(pair.remoteCandidateId);
          s.pair = `${l ? `${l.address}:${l.port}` : '?'} <-> ${r ? `${r.address}:${r.port}` : '?'} (${pair.state})`;
          // The selected pair in detail: its state and both candidates' types (`relay` when
          // the media goes through a TURN server), and the TURN server a relay candidate is on.
          const cand = (c) => c && { candidateType: c.candidateType, address: c.address, port: c.port,
            protocol: c.protocol, relayProtocol: c.relayProtocol ?? null, url: c.url ?? null };
          s.selected = { state: pair.state, nominated: pair.nominated === true, bytesSent: pair.bytesSent || 0,
            bytesReceived: pair.bytesReceived || 0, local: cand(l), remote: cand(r) };
        }
        if (st.peers[id]) st.peers[id].stats = s;
      } catch (e) {
        // The peer may have been closed meanwhile.
      }
    }
  }
  setInterval(collectStats, 500);

  // ---- socket ---------------------------------------------------------------------------

  function emit(event, payload) {
    // The original client named the room in every event; the frontends often did not.
    // Both are valid (roomId is optional once joined), and this exercises both.
    if (payload && ORIGINAL && st.roomId && !('roomId' in payload)) payload = { roomId: st.roomId, ...payload };
    if (payload === undefined) socket.emit(event);
    else socket.emit(event, payload);
  }

  function waitFor(event, ms) {
    return new Promise((resolve, reject) => {
      const w = { event, resolve, reject };
      w.timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`no ${event} within ${ms} ms`));
      }, ms);
      waiters.push(w);
    });
  }

  function settle(event, value, isError) {
    for (const w of [...waiters]) {
      if (w.event !== event) continue;
      waiters.splice(waiters.indexOf(w), 1);
      clearTimeout(w.timer);
      if (isError) w.reject(value);
      else w.resolve(value);
    }
  }

  function connect() {
    socket = RECONNECT
      ? io({ transports, reconnection: true, reconnectionDelay: 250, reconnectionDelayMax: 1000 })
      : io({ transports, reconnection: false });
    socket.on('connect', () => {
      st.socketConnected = true;
      st.selfId = st.selfId || socket.id;
      st.connects.push({ id: socket.id, recovered: socket.recovered === true });
      if (st.connects.length > 1) log('socket reconnected', socket.id, socket.recovered ? '(session recovered)' : '(new session)');
      st.transport = socket.io.engine.transport.name;
      socket.io.engine.on('upgrade', (t) => { st.transport = t.name; });
      log('socket connected', socket.id, st.transport);
      render();
    });
    socket.on('connect_error', (e) => {
      st.errors.push({ local: true, what: 'connect_error', message: String(e && e.message) });
      log('connect_error', String(e && e.message));
    });
    socket.on('disconnect', (reason) => {
      st.socketConnected = false;
      log('socket disconnected', reason);
      render();
    });

    socket.on('error', (err) => {
      st.errors.push(err);
      log('server error', err);
      if (err && err.event === 'join-room') settle('joined-room', new Error(`join-room failed: ${err.code}: ${err.message}`), true);
      if (err && err.event === 'leave-room') settle('left-room', new Error(`leave-room failed: ${err.code}: ${err.message}`), true);
    });

    socket.on('joined-room', (data) => {
      st.joined = true;
      st.left = false;
      st.roomId = data.roomId;
      st.selfId = data.participantId;
      setParticipants(data.participants);
      st.messages = (data.messages || []).map(chatEntry);
      renderChat();
      log('joined', data.roomId, 'as', data.participantId, 'with', data.participants.length, 'participants');
      if (ICE_RELAY) {
        st.ice.joinedRoomIceServers = data.iceServers ?? null;
        if (ICE_SOURCE === 'joined-room') {
          try {
            useIceServers(data.iceServers, 'joined-room');
          } catch (e) {
            st.errors.push({ local: true, what: 'iceServers', message: String(e) });
            settle('joined-room', e, true);
            return;
          }
        }
      }
      // The newcomer calls everyone already in the room.
      for (const p of data.participants) if (p.id !== st.selfId) callPeer(p.id);
      settle('joined-room', data);
    });

    socket.on('user-joined', (data) => {
      const p = normalize(data.participant || data);
      log('user-joined', p.id, p.name);
      if (!st.participants.some((q) => q.id === p.id)) st.participants.push(p);
      render();
    });

    socket.on('participants-updated', (list) => setParticipants(list));

    // Connection state recovery: someone's network dropped, or came back.
    for (const event of ['reconnecting', 'reconnected']) {
      socket.on(`participant-${event}`, (data) => {
        log(`participant-${event}`, data);
        st.connectionEvents.push({ participantId: data.participantId, event });
        const p = st.participants.find((q) => q.id === data.participantId);
        if (p) p.connection = event === 'reconnecting' ? 'reconnecting' : 'connected';
        render();
      });
    }

    socket.on('permission-changed', (d) => {
      log('permission-changed', d);
      st.permissionEvents.push({ kind: d.kind, allowed: d.allowed, byName: d.byName });
      // The server already shows this participant muted; the page stops sending sound too.
      if (d.kind === 'mic' && !d.allowed) {
        st.audioEnabled = false;
        if (localStream) for (const t of localStream.getAudioTracks()) t.enabled = false;
        render();
      }
    });

    socket.on('user-left', (data) => {
      log('user-left', data);
      st.leftEvents.push({ participantId: data.participantId, userName: data.userName });
      closePeer(data.participantId);
      st.participants = st.participants.filter((p) => p.id !== data.participantId);
      render();
    });

    socket.on('left-room', (data) => {
      log('left-room', data);
      st.joined = false;
      st.left = true;
      for (const id of [...peers.keys()]) closePeer(id);
      st.participants = [];
      render();
      settle('left-room', data);
    });

    socket.on('webrtc-offer', (data) => {
      const from = data[SENDER];
      const peer = peerFor(from, false);
      enqueue(peer, `answer to ${from}`, async () => {
        await peer.pc.setRemoteDescription(data.offer);
        await flushCandidates(peer);
        await peer.pc.setLocalDescription(await peer.pc.createAnswer());
        emit('webrtc-answer', { [TARGET]: from, answer: peer.pc.localDescription.toJSON() });
      });
    });

    socket.on('webrtc-answer', (data) => {
      const from = data[SENDER];
      const peer = peers.get(from);
      if (!peer) return log('answer from unknown peer', from);
      enqueue(peer, `answer from ${from}`, async () => {
        await peer.pc.setRemoteDescription(data.answer);
        await flushCandidates(peer);
      });
    });

    socket.on('webrtc-ice-candidate', (data) => {
      const from = data[SENDER];
      const peer = peers.get(from);
      if (!peer) {
        // Only possible if a candidate overtook its offer: keep it for when the offer comes.
        log('candidate before offer from', from);
        (earlyCandidates.get(from) || earlyCandidates.set(from, []).get(from)).push(data.candidate);
        return;
      }
      enqueue(peer, `candidate from ${from}`, async () => {
        if (!peer.pc.remoteDescription) peer.pendingCandidates.push(data.candidate);
        else await addCandidate(peer, data.candidate);
      });
    });

    socket.on('new-message', (m) => {
      st.messages.push(chatEntry(m));
      renderChat();
    });

    if (ORIGINAL) {
      socket.on('participant-audio-toggled', (d) => mediaEvent(d.participantId, 'audio', d.isAudioMuted === true));
      socket.on('participant-video-toggled', (d) => mediaEvent(d.participantId, 'video', d.isVideoOff === true));
    } else {
      socket.on('media-toggled', (d) => mediaEvent(d.participantId, d.type, d.enabled === false));
    }
    socket.on('user-started-screen-share', (d) => log('screen share started by', d.participantId));
    socket.on('user-stopped-screen-share', (d) => log('screen share stopped by', d.participantId));
  }

  function mediaEvent(participantId, kind, muted) {
    st.mediaEvents.push({ participantId, kind, muted });
    const p = st.participants.find((q) => q.id === participantId);
    if (p && kind === 'audio') p.audioMuted = muted;
    if (p && kind === 'video') p.videoOff = muted;
    render();
  }

  function chatEntry(m) {
    return { id: m.id, senderId: m.senderId, userName: m.userName, message: m.message, timestamp: m.timestamp };
  }

  function renderChat() {
    $('chat').replaceChildren(...st.messages.map((m) => {
      const li = document.createElement('li');
      li.dataset.senderId = m.senderId;
      li.textContent = `${m.userName}: ${m.message}`;
      return li;
    }));
  }

  // ---- ICE servers from the server (?ice=relay) -----------------------------------------

  // Takes the server's ICE servers as a frontend would: new RTCPeerConnection({iceServers}),
  // here with iceTransportPolicy 'relay' so that only TURN relay candidates are used.
  function useIceServers(iceServers, source) {
    const turn = Array.isArray(iceServers) && iceServers.some((s) => s && s.username && s.credential
      && [].concat(s.urls).some((u) => /^turns?:/.test(u)));
    if (!turn) throw new Error(`ice=relay: no TURN server with credentials in the server's iceServers (${source}): ${JSON.stringify(iceServers)}`);
    rtcConfig = { iceServers, iceTransportPolicy: 'relay' };
    Object.assign(st.ice, { source, policy: 'relay', iceServers });
    log('ICE servers from', source, iceServers.map((s) => [].concat(s.urls).join(' ')));
  }

  function connected(ms) {
    if (socket.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket not connected within ${ms} ms`)), ms);
      socket.once('connect', () => { clearTimeout(timer); resolve(); });
    });
  }

  // GET /api/ice-servers?participantId=<socket id>: the credentials are issued for this socket.
  async function iceServersFromApi(timeoutMs) {
    await connected(timeoutMs);
    const res = await fetch(`/api/ice-servers?participantId=${encodeURIComponent(socket.id)}`);
    const body = await res.json().catch(() => null);
    st.ice.api = { status: res.status, cacheControl: res.headers.get('cache-control'), ttl: body && body.ttl };
    if (!res.ok || !body) throw new Error(`GET /api/ice-servers: ${res.status} ${JSON.stringify(body)}`);
    useIceServers(body.iceServers, 'api');
  }

  // ---- the API the test drives ----------------------------------------------------------

  async function createRoom() {
    const res = await fetch('/api/create-room', { method: 'POST' });
    const body = await res.json().catch(() => null);
    if (!res.ok || !body || !body.roomId) throw new Error(`POST /api/create-room: ${res.status} ${JSON.stringify(body)}`);
    return body.roomId;
  }

  async function join(roomId = st.roomId, { timeoutMs = 15000 } = {}) {
    if (!roomId) throw new Error('join: no room id (use ?room=… or pass one)');
    st.roomId = roomId;
    $('room').textContent = roomId;
    await ensureLocalMedia();
    if (ICE_RELAY && ICE_SOURCE === 'api' && !rtcConfig) await iceServersFromApi(timeoutMs);
    const joined = waitFor('joined-room', timeoutMs);
    socket.emit('join-room', { roomId, userName });
    const data = await joined;
    return { roomId: data.roomId, participantId: data.participantId, participants: st.participants };
  }

  function sendChat(message) {
    emit('send-message', ORIGINAL ? { message, userName } : { message });
  }

  function setAudio(enabled) {
    st.audioEnabled = !!enabled;
    if (localStream) for (const t of localStream.getAudioTracks()) t.enabled = st.audioEnabled;
    if (ORIGINAL) emit('toggle-audio', { isAudioMuted: !st.audioEnabled });
    else emit('toggle-media', { type: 'audio', enabled: st.audioEnabled });
    render();
  }

  function setScreenShare(on) {
    if (ORIGINAL) emit(on ? 'start-screen-share' : 'stop-screen-share', {});
    else emit('toggle-screen-share', { isScreenSharing: !!on });
  }

  /** A host moderation event (e.g. admin-toggle-mic-permission); resolves with its ack. */
  function moderate(event, payload, { timeoutMs = 10000 } = {}) {
    log('moderate', event, payload);
    return socket.timeout(timeoutMs).emitWithAck(event, payload);
  }

  async function leave({ timeoutMs = 10000 } = {}) {
    const left = waitFor('left-room', timeoutMs);
    // The original frontend sent {roomId}; the public frontends send no payload at all.
    if (ORIGINAL) socket.emit('leave-room', { roomId: st.roomId });
    else socket.emit('leave-room');
    return left;
  }

  if (ICE_RELAY) st.ice = { source: null, policy: null, iceServers: null, api: null, joinedRoomIceServers: null };
  $('dialect').textContent = dialect;
  $('me').textContent = userName;
  $('room').textContent = st.roomId || '?';
  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('chat-input').value.trim();
    if (text) sendChat(text);
    $('chat-input').value = '';
  });
  $('mute').addEventListener('click', () => setAudio(!st.audioEnabled));
  $('leave').addEventListener('click', () => leave().catch((e) => log(String(e))));

  connect();
  render();

  window.meet = {
    dialect,
    createRoom,
    join,
    sendChat,
    setAudio,
    setScreenShare,
    moderate,
    leave,
    state: () => JSON.parse(JSON.stringify(st)),
    // For waitForFunction predicates: the live object (read-only by convention).
    get live() { return st; },
  };

  // For people (the tests call meet.join themselves): `?room=ID&join` joins on load.
  if (params.has('join') && st.roomId) join().catch((e) => log(String(e)));
})();
