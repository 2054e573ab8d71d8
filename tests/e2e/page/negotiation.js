// ProLiteMeet e2e test client for WebRTC negotiation patterns (our own code): one page is one
// participant of a mesh call, negotiating in the way the URL asks, so the test can check that
// every pattern gets live video through the server (with its negotiation assist on or off).
//
//   /negotiation.html?name=NAME&pattern=PATTERN[&dialect=original|frontend][&cameraDelayMs=MS]
//                    [&polite=newcomer|member][&endOfCandidates=0][&roomIdInRelays=1][&ice=loopback]
//
// pattern=naive — behaves as the public ProLiteMeet React frontend (EventHub, commit c6b8ff3)
//   does, as observed from its behaviour (none of its code is here):
//   - its signaling listeners exist only once the meeting view is mounted, after
//     `joined-room`; events that come earlier are lost (as socket.io-client drops events that
//     have no listener);
//   - the camera is asked for when the meeting view mounts; it is ready `cameraDelayMs` later
//     (default 0: the fake camera's own start-up time);
//   - on `user-joined`, it creates a connection to the newcomer at once (adding its camera
//     tracks if it has them, plus receive-only audio/video) and sends an offer; one second
//     later it sends `request-connection` to the newcomer;
//   - on `connection-request`, it creates a connection (and offer) to the sender unless it
//     already has one;
//   - whenever its participant list or its set of received streams changes while its camera
//     is ready, it creates a connection (and offer) to every participant it has no stream
//     from and no connection to, and sends `request-connection` to each of them 0.5 s later;
//   - an incoming offer goes into the existing connection to the sender (or a new one, with
//     the camera tracks if it has them) and is answered at once; no glare handling (an offer
//     arriving while its own is pending is applied as is, i.e. rolled back implicitly);
//   - when its camera becomes ready it adds the tracks to every existing connection and never
//     renegotiates, so those tracks are never sent;
//   - ICE candidates are sent as gathered (never the end-of-candidates `null`) and added on
//     arrival (a failure is only logged); payloads carry `targetId` and `roomId`; it reads
//     `senderSocketId` (and `senderId` in `connection-request`).
// pattern=perfect — the W3C/MDN "perfect negotiation" pattern: both ends of every pair create
//   the connection as soon as they know of each other (the newcomer on `joined-room`, members
//   on `user-joined`), add their tracks, offer on `negotiationneeded`, and resolve glare with
//   a polite and an impolite peer (`polite=newcomer` (default) or `polite=member`).
// pattern=members-offer — members offer to the newcomer on `user-joined`; the newcomer only
//   answers.
// pattern=newcomer-offers — the newcomer offers to every member on `joined-room`; members
//   only answer.
// Well-behaved patterns (all but naive) get their camera before joining (a preview), send
// end-of-candidates (`null`) unless `endOfCandidates=0`, and use `dialect`'s field names
// (`original`: targetId/senderId, `frontend`: targetSocketId/senderSocketId), with `roomId`
// in relays only if `roomIdInRelays=1` (the naive frontend's dialect exactly).
//
// Remote videos are <video class="remote" data-participant-id=ID>. `window.neg.state()` has,
// per remote participant, the frames its <video> decoded and when the first one came.

(() => {
  'use strict';

  const params = new URLSearchParams(location.search);
  const userName = params.get('name') || 'Anonymous';
  const pattern = params.get('pattern') || 'naive';
  const NAIVE = pattern === 'naive';
  const dialect = params.get('dialect') === 'frontend' ? 'frontend' : 'original';
  const TARGET = NAIVE || dialect === 'original' ? 'targetId' : 'targetSocketId';
  const SENDER = NAIVE ? 'senderSocketId' : dialect === 'original' ? 'senderId' : 'senderSocketId';
  const cameraDelayMs = Number(params.get('cameraDelayMs') || 0);
  const politeNewcomer = params.get('polite') !== 'member';
  const sendEndOfCandidates = params.get('endOfCandidates') !== '0';
  const ICE_LOOPBACK_ONLY = params.get('ice') === 'loopback';
  // The naive frontend's own configuration, bar its public STUN servers (the test runs on
  // loopback).
  const rtcConfig = NAIVE
    ? { iceServers: [], iceCandidatePoolSize: 10, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' }
    : { iceServers: [] };

  const st = {
    pattern, dialect, userName, cameraDelayMs,
    roomId: null, selfId: null, joined: false, joinedAt: null, cameraAt: null,
    participants: [],
    // id -> {frames, width, firstFrameAt, connectionState, signalingState}
    remotes: {},
    sent: {}, received: {},
    errors: [],
    log: [],
  };
  const $ = (id) => document.getElementById(id);
  let socket = null;
  let localStream = null;
  const peers = new Map(); // id -> {pc, polite, makingOffer, ignoreOffer}
  const remoteStreams = new Map(); // id -> MediaStream

  function log(...args) {
    const line = `${new Date().toISOString().slice(11, 23)} ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`;
    st.log.push(line);
    if (st.log.length > 400) st.log.shift();
    console.log(`[${pattern} ${userName}] ${line}`);
  }

  function count(map, event) {
    map[event] = (map[event] || 0) + 1;
  }

  const short = (id) => (id ? String(id).slice(0, 6) : id);

  function emit(event, payload) {
    count(st.sent, event);
    if (event !== 'join-room') log('→', event, short(payload[TARGET]));
    socket.emit(event, payload);
  }

  function on(event, handler) {
    socket.on(event, (data) => {
      count(st.received, event);
      log('←', event, short(data[SENDER] || data.senderId || data.participantId));
      handler(data);
    });
  }

  // The naive frontend names the room in every relay; well-behaved pages do not, unless
  // `roomIdInRelays=1` (then they use the naive frontend's very dialect: targetId + roomId).
  const ROOM_IN_RELAYS = NAIVE || params.get('roomIdInRelays') === '1';
  const target = (id) => (ROOM_IN_RELAYS ? { [TARGET]: id, roomId: st.roomId } : { [TARGET]: id });

  // ---- media ----------------------------------------------------------------------------

  async function getCamera() {
    if (cameraDelayMs > 0) await new Promise((r) => setTimeout(r, cameraDelayMs));
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    st.cameraAt = Date.now();
    $('local').srcObject = stream;
    log('camera ready', stream.getTracks().map((t) => t.kind));
    return stream;
  }

  function showRemote(id, stream) {
    let v = document.querySelector(`video.remote[data-participant-id="${CSS.escape(id)}"]`);
    if (!v) {
      v = document.createElement('video');
      v.className = 'remote';
      v.dataset.participantId = id;
      v.autoplay = true;
      v.playsInline = true;
      v.muted = true;
      $('videos').append(v);
    }
    if (v.srcObject !== stream) v.srcObject = stream;
    v.play().catch(() => {});
  }

  function dropRemote(id) {
    remoteStreams.delete(id);
    delete st.remotes[id];
    document.querySelector(`video.remote[data-participant-id="${CSS.escape(id)}"]`)?.remove();
  }

  // Live frames per remote <video>: what the test checks.
  setInterval(() => {
    for (const v of document.querySelectorAll('video.remote')) {
      const id = v.dataset.participantId;
      const r = st.remotes[id] || (st.remotes[id] = { frames: 0, width: 0, firstFrameAt: null });
      r.frames = v.getVideoPlaybackQuality().totalVideoFrames;
      r.width = v.videoWidth;
      if (r.frames > 0 && r.width > 0 && !r.firstFrameAt) r.firstFrameAt = Date.now();
    }
    for (const [id, p] of peers) {
      const r = st.remotes[id] || (st.remotes[id] = { frames: 0, width: 0, firstFrameAt: null });
      r.connectionState = p.pc.connectionState;
      r.signalingState = p.pc.signalingState;
    }
  }, 100);

  function onIceCandidate(id) {
    return ({ candidate }) => {
      if (candidate && ICE_LOOPBACK_ONLY && candidate.address && candidate.address !== '127.0.0.1') return;
      if (!candidate && (NAIVE || !sendEndOfCandidates)) return;
      emit('webrtc-ice-candidate', { ...target(id), candidate: candidate ? candidate.toJSON() : null });
    };
  }

  // ---- naive: the public frontend's behaviour ---------------------------------------------

  let effectQueued = false;
  // Re-run of the meeting view's "connect to everyone I have no stream from" effect, on the
  // next task after a change of participants, streams or camera (as a React effect would).
  function naiveChanged() {
    if (effectQueued) return;
    effectQueued = true;
    setTimeout(() => {
      effectQueued = false;
      if (!localStream || st.participants.length === 0 || !st.selfId) return;
      for (const p of st.participants) {
        if (p.id && p.id !== st.selfId && !remoteStreams.has(p.id)) {
          naiveConnect(p.id);
          setTimeout(() => emit('request-connection', target(p.id)), 500);
        }
      }
    }, 0);
  }

  function naiveStream(id, stream) {
    if (stream.getTracks().length === 0) return;
    remoteStreams.set(id, stream);
    showRemote(id, stream);
    naiveChanged();
    setTimeout(naiveChanged, 50);
  }

  function naivePeer(id) {
    const pc = new RTCPeerConnection(rtcConfig);
    peers.set(id, { pc });
    if (localStream) for (const t of localStream.getTracks()) pc.addTrack(t, localStream);
    pc.ontrack = (ev) => {
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      naiveStream(id, stream);
      setTimeout(() => naiveStream(id, stream), 100);
    };
    pc.onicecandidate = onIceCandidate(id);
    pc.onconnectionstatechange = () => log('connection', short(id), pc.connectionState);
    return pc;
  }

  async function naiveConnect(id) {
    if (!id || peers.has(id)) return;
    const pc = naivePeer(id);
    try {
      const offer = await pc.createOffer({ offerToReceiveAudio: true, offerToReceiveVideo: true });
      await pc.setLocalDescription(offer);
      emit('webrtc-offer', { offer, ...target(id) });
    } catch (e) {
      log('error creating offer', String(e));
    }
  }

  function naiveMount() {
    on('webrtc-offer', async ({ offer, senderSocketId: from }) => {
      const pc = peers.get(from)?.pc || naivePeer(from);
      try {
        await pc.setRemoteDescription(offer);
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        emit('webrtc-answer', { answer, ...target(from) });
      } catch (e) {
        log('error handling offer', String(e));
        st.errors.push(`offer from ${from}: ${e}`);
      }
    });
    on('webrtc-answer', async ({ answer, senderSocketId: from }) => {
      const pc = peers.get(from)?.pc;
      if (!pc) return log('no connection for answer from', from);
      try {
        await pc.setRemoteDescription(answer);
      } catch (e) {
        log('error handling answer', String(e));
        st.errors.push(`answer from ${from}: ${e}`);
      }
    });
    on('webrtc-ice-candidate', async ({ candidate, senderSocketId: from }) => {
      const pc = peers.get(from)?.pc;
      if (!pc) return log('no connection for candidate from', from);
      try {
        await pc.addIceCandidate(candidate);
      } catch (e) {
        log('error adding candidate', String(e));
      }
    });
    on('user-joined', (data) => {
      if (!data.participantId) return;
      naiveConnect(data.participantId);
      setTimeout(() => emit('request-connection', target(data.participantId)), 1000);
    });
    on('connection-request', (data) => {
      if (data.senderId && !peers.has(data.senderId)) naiveConnect(data.senderId);
    });
    getCamera().then((stream) => {
      // Tracks go into existing connections without renegotiation: never sent.
      for (const { pc } of peers.values()) {
        for (const t of stream.getTracks()) {
          try { pc.addTrack(t, stream); } catch (e) { log('addTrack', String(e)); }
        }
      }
      localStream = stream;
      naiveChanged();
    }).catch((e) => st.errors.push(`camera: ${e}`));
  }

  // ---- well-behaved patterns -------------------------------------------------------------

  // Sends a local description in the event its type names (webrtc-offer or webrtc-answer).
  function sendDescription(id, description) {
    const d = description.toJSON();
    emit(d.type === 'offer' ? 'webrtc-offer' : 'webrtc-answer', { ...target(id), [d.type]: d });
  }

  function wellPeer(id, { polite }) {
    let peer = peers.get(id);
    if (peer) return peer;
    const pc = new RTCPeerConnection(rtcConfig);
    peer = { pc, polite, makingOffer: false, ignoreOffer: false, inbox: Promise.resolve() };
    peers.set(id, peer);
    pc.ontrack = (ev) => {
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      remoteStreams.set(id, stream);
      showRemote(id, stream);
    };
    pc.onicecandidate = onIceCandidate(id);
    pc.onconnectionstatechange = () => log('connection', short(id), pc.connectionState);
    if (pattern === 'perfect') {
      // Offers go through the peer's inbox too, so an offer being made and an incoming one
      // never interleave (see onDescription); one that finds the connection busy is left
      // for the next negotiationneeded, which the browser fires once it is stable again.
      pc.onnegotiationneeded = () => inbox(peer, async () => {
        if (pc.signalingState !== 'stable') return;
        try {
          peer.makingOffer = true;
          await pc.setLocalDescription();
          sendDescription(id, pc.localDescription);
        } catch (e) {
          log('negotiationneeded', String(e));
        } finally {
          peer.makingOffer = false;
        }
      });
    }
    for (const t of localStream.getTracks()) pc.addTrack(t, localStream);
    return peer;
  }

  async function wellOffer(id, peer) {
    await peer.pc.setLocalDescription(await peer.pc.createOffer());
    sendDescription(id, peer.pc.localDescription);
  }

  // A description from `from` (offer or answer), as the perfect negotiation pattern handles
  // it; the fixed patterns never collide, so the same code serves them.
  async function onDescription(from, description) {
    const peer = wellPeer(from, { polite: !politeNewcomer });
    const pc = peer.pc;
    try {
      const collision = description.type === 'offer' && (peer.makingOffer || pc.signalingState !== 'stable');
      peer.ignoreOffer = !peer.polite && collision;
      if (peer.ignoreOffer) return log('ignoring colliding offer from', short(from));
      // The polite peer lets its own offer finish gathering (at most 0.5 s) before rolling it
      // back: on a loopback-only host Chromium sometimes gathers no candidate at all for an
      // answer whose rollback came while its own offer was still being set or gathered
      // (~15% of tight glares in a loopback-only network namespace).
      if (collision) await gathered(pc, 500);
      await pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        await pc.setLocalDescription();
        sendDescription(from, pc.localDescription);
      }
    } catch (e) {
      st.errors.push(`${description.type} from ${from}: ${e}`);
    }
  }

  // Resolves once `pc` has gathered all its candidates (or after `ms`).
  function gathered(pc, ms) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      pc.addEventListener('icegatheringstatechange', () => {
        if (pc.iceGatheringState === 'complete') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  // What a peer sends is handled in arrival order (a candidate never overtakes the offer
  // it belongs to while that offer waits).
  function inbox(peer, fn) {
    peer.inbox = peer.inbox.then(fn, fn);
  }

  function wellMount() {
    on('webrtc-offer', (data) => {
      const from = data[SENDER];
      inbox(wellPeer(from, { polite: !politeNewcomer }), () => onDescription(from, data.offer));
    });
    on('webrtc-answer', (data) => {
      const peer = peers.get(data[SENDER]);
      if (peer) inbox(peer, () => onDescription(data[SENDER], data.answer));
    });
    on('webrtc-ice-candidate', (data) => {
      const peer = peers.get(data[SENDER]);
      if (!peer) return;
      inbox(peer, async () => {
        try {
          await peer.pc.addIceCandidate(data.candidate ?? undefined);
        } catch (e) {
          if (!peer.ignoreOffer) log('error adding candidate', String(e));
        }
      });
    });
    on('user-joined', (data) => {
      const id = data.participantId;
      if (!id || id === st.selfId) return;
      // A member meets a newcomer: the newcomer is polite when politeNewcomer.
      if (pattern === 'perfect') wellPeer(id, { polite: !politeNewcomer });
      if (pattern === 'members-offer') wellOffer(id, wellPeer(id, { polite: false })).catch((e) => st.errors.push(String(e)));
    });
  }

  function wellJoined(data) {
    for (const p of data.participants) {
      if (p.id === st.selfId) continue;
      if (pattern === 'perfect') wellPeer(p.id, { polite: politeNewcomer });
      if (pattern === 'newcomer-offers') wellOffer(p.id, wellPeer(p.id, { polite: false })).catch((e) => st.errors.push(String(e)));
    }
  }

  // ---- socket ---------------------------------------------------------------------------

  function connect() {
    socket = io(NAIVE ? { transports: ['websocket', 'polling'], reconnection: false } : { reconnection: false });
    socket.on('connect', () => log('connected', socket.id));
    socket.on('error', (e) => { st.errors.push(`server: ${JSON.stringify(e)}`); log('server error', e); });
    socket.on('participants-updated', (list) => {
      st.participants = list.map((p) => ({ id: p.id, name: p.userName || p.name }));
      if (NAIVE) naiveChanged();
    });
    socket.on('user-joined', (data) => {
      if (!st.participants.some((p) => p.id === data.participantId)) {
        st.participants = [...st.participants, { id: data.participantId, name: data.userName }];
      }
      if (NAIVE) naiveChanged();
    });
    socket.on('user-left', ({ participantId }) => {
      peers.get(participantId)?.pc.close();
      peers.delete(participantId);
      dropRemote(participantId);
      st.participants = st.participants.filter((p) => p.id !== participantId);
      if (NAIVE) naiveChanged();
    });
  }

  async function createRoom() {
    const res = await fetch('/api/create-room', { method: 'POST' });
    const body = await res.json();
    return body.roomId;
  }

  async function join(roomId, { timeoutMs = 15000 } = {}) {
    if (!NAIVE) localStream = await getCamera();
    const joined = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no joined-room within ${timeoutMs} ms`)), timeoutMs);
      socket.once('joined-room', (data) => { clearTimeout(timer); resolve(data); });
    });
    st.joinedAt = Date.now();
    emit('join-room', { roomId, userName, userAvatar: null });
    const data = await joined;
    st.joined = true;
    st.roomId = data.roomId;
    st.selfId = data.participantId;
    st.participants = data.participants.map((p) => ({ id: p.id, name: p.userName || p.name }));
    $('me').textContent = `${userName} (${pattern}) ${st.selfId}`;
    log('joined', data.roomId, 'with', data.participants.length);
    if (NAIVE) {
      // The meeting view mounts on the next task: listeners, then the camera request.
      setTimeout(naiveMount, 0);
    } else {
      wellMount();
      wellJoined(data);
    }
    return { roomId: data.roomId, participantId: data.participantId };
  }

  connect();
  window.neg = {
    createRoom,
    join,
    state: () => JSON.parse(JSON.stringify(st)),
    get live() { return st; },
  };
})();
