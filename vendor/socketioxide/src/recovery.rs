//! Connection state recovery (Socket.IO protocol v5, as socket.io ≥ 4.6 does it), opt-in with
//! [`SocketIoBuilder::connection_state_recovery`](crate::SocketIoBuilder::connection_state_recovery).
//!
//! # Wire
//! * The CONNECT answer carries a private session id beside the socket id:
//!   `{"sid":"…","pid":"…"}`. The pid is 192 random bits; it is never logged and goes to no one
//!   but its client.
//! * Every EVENT (and BINARY_EVENT) the server sends a socket without asking for an
//!   acknowledgement carries, as its last argument, an offset string, increasing for each
//!   socket. socket.io-client keeps the last one it saw. Acknowledgements, events that ask for
//!   one and volatile events carry none.
//! * A client that lost its connection sends `{"pid":"…","offset":"…"}` (merged with its auth)
//!   in its next CONNECT. If the session is still kept, the answer has the same sid and pid
//!   (socket.io-client sets `socket.recovered`), followed by every packet sent to that socket
//!   after the offset, in order, before anything new. Otherwise the client gets a fresh socket,
//!   as without recovery. The `pid` and `offset` fields are taken out of the auth payload that
//!   the middlewares and handlers see.
//!
//! # Sessions
//! A socket whose connection ends for another reason than an explicit disconnect (the client's
//! `socket.disconnect()`, [`Socket::disconnect`], a namespace deletion, the server closing, a
//! protocol violation) keeps its session for the window: it stays in the namespace and in its
//! rooms, keeps its id, extensions and handlers, and the packets addressed to it are kept.
//! A recovery hands the same [`Socket`] a new connection: the namespace's middlewares and
//! connect handler do not run again (socket.io's `skipMiddlewares`), the socket goes on.
//!
//! The packets of a socket are kept until the client provably received them: when it answers
//! a ping sent after them (see [`EngineIoHandler::on_pong`]). A packet kept asks its
//! connection for a ping within [`PROOF_QUICK`] after a quiet second, [`PROOF_WITHIN`] on a
//! busy socket (an early ping if the heartbeat's is not due by then), so a connected socket
//! keeps at most about a second of its packets, and an idle one nothing. At most `max_buffered_packets` are kept per socket: past that, a disconnected
//! session ends at once, and a connected one forgets its oldest packet (its session can then
//! only be recovered by a client that received it).
//!
//! One expiry queue per namespace, served by one task while it is not empty, ends the sessions
//! whose window passed.
//!
//! [`EngineIoHandler::on_pong`]: engineioxide::handler::EngineIoHandler::on_pong
//! [`Socket`]: crate::socket::Socket
//! [`Socket::disconnect`]: crate::socket::Socket::disconnect

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::{
        Arc, Mutex, OnceLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use engineioxide::{Str, socket::DisconnectReason as EIoDisconnectReason};
use serde::Serialize;
use socketioxide_core::{Sid, Value, packet::Packet, parser::Parse};
use tokio::{sync::mpsc::error::TrySendError, time::Instant};

use crate::{
    SocketError,
    adapter::Adapter,
    client::SocketData,
    handler::disconnect::ErasedDisconnectHandler,
    ns::Namespace,
    parser::Parser,
    socket::{DisconnectReason, Socket},
};

type EIoSocket<A> = engineioxide::Socket<SocketData<A>>;
type LifecycleHandler<A> = Arc<dyn ErasedDisconnectHandler<A>>;

/// How soon after a packet is kept a ping goes to its client, whose pong proves the packet
/// received (engineioxide's `Socket::ping_within`), when the socket kept nothing else in the
/// [`PROOF_WITHIN`] before: what a burst (a join's announcements) leaves is let go in tens of
/// milliseconds, before the packets of other sockets are allocated around it. Kept for a
/// second, the join packets of 5,000 idle clients left their memory too fragmented to give
/// back: 11.8 KB of RSS per client, against 8.6 KB with this.
pub(crate) const PROOF_QUICK: Duration = Duration::from_millis(50);

/// How soon after a packet is kept a ping goes to its client otherwise: a busy socket gets
/// one extra ping a second at most, and keeps a second of its packets rather than one to two
/// heartbeat intervals.
pub(crate) const PROOF_WITHIN: Duration = Duration::from_secs(1);

/// The configuration of connection state recovery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecoveryConfig {
    /// How long a disconnected session is kept.
    pub window: Duration,
    /// The most packets kept for one socket.
    pub max_buffered_packets: usize,
    /// The most bytes kept for one socket: the smaller of the builder's
    /// `connection_state_recovery_max_bytes` and the engine's `max_buffer_bytes`, the bound of
    /// what a socket's outgoing buffer holds (no limit unless one is set).
    pub max_buffered_bytes: usize,
}

/// A private session id: 192 random bits, as 32 url-safe base64 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Pid([u8; 32]);

impl Pid {
    /// Two session ids are 2 × 96 bits from the same CSPRNG (`rand`'s thread rng).
    fn new() -> Self {
        let mut pid = [0u8; 32];
        pid[..16].copy_from_slice(Sid::new().as_str().as_bytes());
        pid[16..].copy_from_slice(Sid::new().as_str().as_bytes());
        Pid(pid)
    }

    fn parse(s: &str) -> Option<Self> {
        let is_b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
        let bytes: [u8; 32] = s.as_bytes().try_into().ok()?;
        bytes.iter().all(is_b64).then_some(Pid(bytes))
    }

    fn as_str(&self) -> &str {
        // Only url-safe base64 characters are ever stored (see `new` and `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The pid is a secret: it must not end up in logs through a `Debug` print.
impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pid(<redacted>)")
    }
}

/// Offsets are unique and increasing in this process. They start from the clock (in µs), so
/// that an offset a client kept from before a restart is older than any session after it.
fn next_offset() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(1);
    let start = *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default()
    });
    start + COUNT.fetch_add(1, Ordering::Relaxed)
}

const OFFSET_DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// An offset in base 36: 10 characters for now.
fn format_offset(mut offset: u64) -> String {
    let mut digits = Vec::with_capacity(13);
    loop {
        digits.push(OFFSET_DIGITS[(offset % 36) as usize]);
        offset /= 36;
        if offset == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

fn parse_offset(s: &str) -> Option<u64> {
    let valid = !s.is_empty() && s.len() <= 13 && s.bytes().all(|c| OFFSET_DIGITS.contains(&c));
    valid.then(|| u64::from_str_radix(s, 36).ok()).flatten()
}

/// Appends `"offset"` as the last argument of an encoded EVENT or BINARY_EVENT packet that
/// asks for no acknowledgement. `None` for any other packet (and for the msgpack parser,
/// whose packets are not text).
fn with_offset(packet: &Value, offset: u64) -> Option<Value> {
    let Value::Str(encoded, bins) = packet else {
        return None;
    };
    let text = encoded.as_str();
    // `2[/ns,][ack id][…]` or `5<attachments>-[/ns,][ack id][…]`: the data must come right
    // after the namespace, with no ack id.
    let bytes = text.as_bytes();
    let mut i = match bytes.first()? {
        b'2' => 1,
        b'5' => 1 + bytes[1..].iter().take_while(|c| c.is_ascii_digit()).count(),
        _ => return None,
    };
    if bytes[0] == b'5' {
        (bytes.get(i)? == &b'-').then_some(())?;
        i += 1;
    }
    if bytes.get(i)? == &b'/' {
        i += bytes[i..].iter().position(|c| *c == b',')? + 1;
    }
    if bytes.get(i)? != &b'[' || !text.ends_with(']') {
        return None;
    }
    let offset = format_offset(offset);
    let mut out = String::with_capacity(text.len() + offset.len() + 3);
    out.push_str(&text[..text.len() - 1]);
    if !text[i..].starts_with("[]") {
        out.push(',');
    }
    out.push('"');
    out.push_str(&offset);
    out.push_str("\"]");
    Some(Value::Str(Str::from(out), bins.clone()))
}

/// An event packet stamped once for every socket it is broadcast to.
pub(crate) struct Stamped {
    offset: u64,
    value: Value,
}

impl Stamped {
    /// `None` if the packet is not an event that can carry an offset.
    pub fn new(packet: &Value) -> Option<Self> {
        let offset = next_offset();
        with_offset(packet, offset).map(|value| Stamped { offset, value })
    }
}

/// The offset a client sent with its pid.
enum ClientOffset {
    /// It received no event carrying an offset yet.
    Missing,
    Invalid,
    At(u64),
}

/// What a CONNECT packet asks for, taken out of its auth payload.
pub(crate) struct RecoveryRequest {
    pid: Option<Pid>,
    offset: ClientOffset,
}

impl RecoveryRequest {
    /// Takes `pid` and `offset` out of the auth payload, so that middlewares and handlers do
    /// not see them (a payload left with nothing else becomes no payload, as it was before
    /// the client first connected). `None` if the payload has no pid.
    pub fn take(parser: Parser, auth: &mut Option<Value>) -> Option<Self> {
        type Object = serde_json::Map<String, serde_json::Value>;
        let mut object: Object = parser.decode_default(auth.as_ref()).ok()?;
        let pid = object.remove("pid")?;
        let offset = match object.remove("offset") {
            None | Some(serde_json::Value::Null) => ClientOffset::Missing,
            Some(serde_json::Value::String(s)) => {
                parse_offset(&s).map_or(ClientOffset::Invalid, ClientOffset::At)
            }
            Some(_) => ClientOffset::Invalid,
        };
        *auth = match object.is_empty() {
            true => None,
            false => parser.encode_default(&object).ok(),
        };
        let pid = pid.as_str().and_then(Pid::parse);
        Some(RecoveryRequest { pid, offset })
    }
}

/// The CONNECT answer of a socket with a session.
#[derive(Serialize)]
struct ConnectAnswer<'a> {
    sid: Sid,
    pid: &'a str,
}

/// The events that the application hears of, in order, for one socket.
enum Lifecycle {
    TransportLost(DisconnectReason),
    Recovered(DisconnectReason),
    Disconnected(DisconnectReason),
}

enum Link {
    /// Sending through its connection (once connected: see [`Socket::connected`]).
    Attached,
    /// Its connection ended; the session waits for its client until `since` + the window.
    Detached {
        since: Instant,
        reason: DisconnectReason,
    },
    /// For good.
    Ended,
}

struct SessionState<A: Adapter> {
    link: Link,
    /// The connection of the latest recovery; `None` while it is the socket's first one.
    transport: Option<Arc<EIoSocket<A>>>,
    /// The packets sent to the socket that its client is not known to have received, by
    /// offset, in order.
    retained: VecDeque<(u64, Value)>,
    /// The bytes of `retained` (a broadcast's text counts for each socket that keeps it).
    retained_bytes: usize,
    /// Offsets below it were given before the session began.
    first_offset: u64,
    /// The latest offset sent to this socket.
    last_offset: u64,
    /// Taken when a ping is queued: the packets up to it are received once it is answered.
    proven_at_next_pong: u64,
    /// When the latest packet was kept while connected (how soon to ask for a ping).
    last_kept: Option<Instant>,
    /// Packets up to this offset were forgotten before their client was known to have them.
    forgotten_upto: u64,
    /// Counts detachments and recoveries, so that a stale expiry is recognised.
    generation: u64,
    lifecycle_running: bool,
    lifecycle: VecDeque<Lifecycle>,
}

/// The session of a socket, when recovery is on (see the [module doc](self)).
pub(crate) struct Session<A: Adapter> {
    pid: Pid,
    config: RecoveryConfig,
    state: Mutex<SessionState<A>>,
    recovered: AtomicBool,
    on_transport_lost: Mutex<Option<LifecycleHandler<A>>>,
    on_recovered: Mutex<Option<LifecycleHandler<A>>>,
}

impl<A: Adapter> Session<A> {
    pub fn new(config: RecoveryConfig) -> Box<Self> {
        let first_offset = next_offset();
        Box::new(Session {
            pid: Pid::new(),
            config,
            state: Mutex::new(SessionState {
                link: Link::Attached,
                transport: None,
                retained: VecDeque::new(),
                retained_bytes: 0,
                first_offset,
                last_offset: first_offset,
                proven_at_next_pong: 0,
                last_kept: None,
                forgotten_upto: 0,
                generation: 0,
                lifecycle_running: false,
                lifecycle: VecDeque::new(),
            }),
            recovered: AtomicBool::new(false),
            on_transport_lost: Mutex::new(None),
            on_recovered: Mutex::new(None),
        })
    }

    pub fn recovered(&self) -> bool {
        self.recovered.load(Ordering::Acquire)
    }

    pub fn set_on_transport_lost(&self, handler: LifecycleHandler<A>) {
        self.on_transport_lost.lock().unwrap().replace(handler);
    }

    pub fn set_on_recovered(&self, handler: LifecycleHandler<A>) {
        self.on_recovered.lock().unwrap().replace(handler);
    }

    /// The connection of the latest recovery, if any.
    pub fn transport(&self) -> Option<Arc<EIoSocket<A>>> {
        self.state.lock().unwrap().transport.clone()
    }

    pub fn is_detached(&self) -> bool {
        matches!(self.state.lock().unwrap().link, Link::Detached { .. })
    }

    /// The CONNECT answer's payload.
    pub fn connect_payload(&self, parser: Parser, sid: Sid) -> Value {
        let answer = ConnectAnswer {
            sid,
            pid: self.pid.as_str(),
        };
        // A struct of two strings always serializes.
        parser
            .encode_default(&answer)
            .unwrap_or(Value::Str("{}".into(), None))
    }

    /// Drops the packets the client is now known to have received (see `on_pong`).
    fn forget_received(state: &mut SessionState<A>, upto: u64) {
        while state.retained.front().is_some_and(|(o, _)| *o <= upto) {
            state.forget_oldest();
        }
        if state.retained.is_empty() {
            state.retained = VecDeque::new();
        } else if state.retained.capacity() > 4 * state.retained.len() + 16 {
            state.retained.shrink_to(2 * state.retained.len());
        }
    }
}

impl<A: Adapter> SessionState<A> {
    /// Drops the oldest kept packet; its offset.
    fn forget_oldest(&mut self) -> Option<u64> {
        let (offset, value) = self.retained.pop_front()?;
        self.retained_bytes -= value_len(&value);
        Some(offset)
    }

    /// Drops every kept packet (the session ended).
    fn forget_all(&mut self) {
        self.retained = VecDeque::new();
        self.retained_bytes = 0;
    }
}

/// The bytes a packet takes, attachments included.
fn value_len(value: &Value) -> usize {
    match value {
        Value::Str(text, bins) => {
            text.len() + bins.iter().flatten().map(|b| b.len()).sum::<usize>()
        }
        Value::Bytes(bytes) => bytes.len(),
    }
}

/// Whether a transport that ended for this reason keeps its session.
fn is_recoverable(reason: DisconnectReason) -> bool {
    use DisconnectReason::*;
    matches!(reason, TransportClose | TransportError | HeartbeatTimeout)
}

/// What the sending of a tracked packet found.
enum Sent {
    Done,
    Refused(SocketError),
    /// The session overflowed while disconnected: it ended.
    Overflowed(DisconnectReason),
}

impl<A: Adapter> Socket<A> {
    /// Sends an event packet that asks for no acknowledgement, through the session: it gets an
    /// offset (the broadcast's `stamped` one if it is newer than the socket's latest, otherwise
    /// a fresh one, so that a socket's offsets increase in the order its packets are sent),
    /// and is kept until its client received it. While the socket is disconnected it is only
    /// kept. `allow_pending`: whether a socket still connecting takes it (broadcasts do, as
    /// without recovery; direct emits get [`SocketError::Closed`]).
    pub(crate) fn send_tracked(
        &self,
        session: &Session<A>,
        packet: &Value,
        stamped: Option<&Stamped>,
        allow_pending: bool,
    ) -> Result<(), SocketError> {
        let sent = {
            let mut state = session.state.lock().unwrap();
            self.send_tracked_locked(session, &mut state, packet, stamped, allow_pending)
        };
        match sent {
            Sent::Done => Ok(()),
            Sent::Refused(err) => Err(err),
            Sent::Overflowed(reason) => {
                // Not from here: a broadcast may hold the namespace's socket map.
                if let Ok(socket) = self.ns.get_socket(self.id) {
                    tokio::spawn(async move { socket.finish(reason) });
                }
                Err(SocketError::Closed)
            }
        }
    }

    fn send_tracked_locked(
        &self,
        session: &Session<A>,
        state: &mut SessionState<A>,
        packet: &Value,
        stamped: Option<&Stamped>,
        allow_pending: bool,
    ) -> Sent {
        let attached = match state.link {
            Link::Ended => return Sent::Refused(SocketError::Closed),
            Link::Attached if !allow_pending && !self.connected() => {
                return Sent::Refused(SocketError::Closed);
            }
            Link::Attached => true,
            Link::Detached { .. } => false,
        };
        let tracked = match stamped {
            Some(stamped) if stamped.offset > state.last_offset => {
                Some((stamped.offset, stamped.value.clone()))
            }
            _ => {
                let offset = next_offset();
                with_offset(packet, offset).map(|value| (offset, value))
            }
        };

        if attached {
            let transport = state.transport.as_ref().unwrap_or(&self.esocket);
            let value = match &tracked {
                Some((_, value)) => value.clone(),
                None => packet.clone(),
            };
            match transport.reserve() {
                Ok(permit) => crate::socket::PermitExt::send_raw(permit, value),
                Err(TrySendError::Full(())) => {
                    return Sent::Refused(SocketError::InternalChannelFull);
                }
                // Its connection just ended: kept below for its client to recover it.
                Err(TrySendError::Closed(())) if tracked.is_some() => {}
                Err(TrySendError::Closed(())) => return Sent::Refused(SocketError::Closed),
            }
        }
        // Not an event: sent as it is, untracked.
        let Some((offset, value)) = tracked else {
            return match attached {
                true => Sent::Done,
                false => Sent::Refused(SocketError::Closed),
            };
        };
        // One packet larger than the byte bound is still kept when nothing else is (as an
        // empty outgoing buffer takes it).
        let bytes = value_len(&value);
        let config = &session.config;
        let full = |state: &SessionState<A>| {
            state.retained.len() >= config.max_buffered_packets
                || (!state.retained.is_empty()
                    && state.retained_bytes.saturating_add(bytes) > config.max_buffered_bytes)
        };
        if full(state) {
            if let Link::Detached { reason, .. } = state.link {
                state.link = Link::Ended;
                state.forget_all();
                return Sent::Overflowed(reason);
            }
            state.forgotten_upto = offset;
            while full(state) {
                match state.forget_oldest() {
                    Some(forgotten) => state.forgotten_upto = forgotten,
                    None => break,
                }
            }
        }
        if config.max_buffered_packets > 0 {
            state.retained.push_back((offset, value));
            state.retained_bytes += bytes;
            if attached {
                // Its client's pong to a ping after it lets it go: soon, not a heartbeat
                // interval (25 s) or two later.
                let now = Instant::now();
                let within = match state.last_kept {
                    Some(at) if now.duration_since(at) < PROOF_WITHIN => PROOF_WITHIN,
                    _ => PROOF_QUICK,
                };
                state.last_kept = Some(now);
                state
                    .transport
                    .as_ref()
                    .unwrap_or(&self.esocket)
                    .ping_within(within);
            }
        }
        state.last_offset = offset;
        Sent::Done
    }

    /// Called just before a ping is queued on the connection the socket sends through: its
    /// pong will prove everything sent so far.
    pub(crate) fn on_ping(&self, session: &Session<A>) {
        let mut state = session.state.lock().unwrap();
        if matches!(state.link, Link::Attached) {
            state.proven_at_next_pong = state.last_offset;
        }
    }

    /// Called for every pong of the connection the socket sends through.
    pub(crate) fn on_pong(&self, session: &Session<A>) {
        let mut state = session.state.lock().unwrap();
        if !matches!(state.link, Link::Attached) {
            return;
        }
        let upto = state.proven_at_next_pong;
        Session::forget_received(&mut state, upto);
    }

    /// Whether `esocket` is the connection this socket sends through and hears from.
    pub(crate) fn is_transport(&self, esocket: &Arc<EIoSocket<A>>) -> bool {
        match self.session.as_ref().and_then(|s| s.transport()) {
            Some(current) => Arc::ptr_eq(&current, esocket),
            None => Arc::ptr_eq(&self.esocket, esocket),
        }
    }

    /// Called when the connection of a socket with a session ended (or it was disconnected
    /// explicitly): keeps the session if `reason` allows it, otherwise ends it.
    pub(crate) fn close_session(self: Arc<Self>, reason: DisconnectReason) {
        let Some(session) = self.session.as_deref() else {
            return;
        };
        let detached_generation = {
            let mut state = session.state.lock().unwrap();
            match state.link {
                Link::Ended => return,
                Link::Detached { .. } if is_recoverable(reason) => return,
                Link::Attached if is_recoverable(reason) && self.connected() => {
                    state.generation += 1;
                    state.link = Link::Detached {
                        since: Instant::now(),
                        reason,
                    };
                    Some(state.generation)
                }
                _ => {
                    state.link = Link::Ended;
                    state.forget_all();
                    None
                }
            }
        };
        match detached_generation {
            Some(generation) => {
                self.set_connected(false);
                self.ns.schedule_expiry(self.id, generation);
                self.push_lifecycle(Lifecycle::TransportLost(reason));
            }
            None => self.finish(reason),
        }
    }

    /// Ends the session of a socket that stayed disconnected for the whole window.
    fn expire(self: Arc<Self>, generation: u64) {
        let Some(session) = self.session.as_deref() else {
            return;
        };
        let reason = {
            let mut state = session.state.lock().unwrap();
            match state.link {
                Link::Detached { reason, .. } if state.generation == generation => {
                    state.link = Link::Ended;
                    state.forget_all();
                    reason
                }
                _ => return,
            }
        };
        self.finish(reason);
    }

    /// The end of a socket with a session, once its state is `Ended` (this runs once).
    fn finish(self: Arc<Self>, reason: DisconnectReason) {
        let Some(session) = self.session.as_deref() else {
            return;
        };
        self.set_connected(false);
        self.ns.forget_session(&session.pid);
        self.push_lifecycle(Lifecycle::Disconnected(reason));
    }

    /// Runs the application's handler for `event` once those of the events before it are
    /// done, so that it hears of them in order.
    fn push_lifecycle(self: &Arc<Self>, event: Lifecycle) {
        let Some(session) = self.session.as_deref() else {
            return;
        };
        {
            let mut state = session.state.lock().unwrap();
            if state.lifecycle_running {
                state.lifecycle.push_back(event);
                return;
            }
            state.lifecycle_running = true;
        }
        self.clone().run_lifecycle(event);
    }

    fn run_lifecycle(self: Arc<Self>, event: Lifecycle) {
        let Some(session) = self.session.as_deref() else {
            return;
        };
        let (handler, reason) = match event {
            Lifecycle::TransportLost(reason) => {
                (session.on_transport_lost.lock().unwrap().clone(), reason)
            }
            Lifecycle::Recovered(reason) => (session.on_recovered.lock().unwrap().clone(), reason),
            Lifecycle::Disconnected(reason) => {
                let handler = self.disconnect_handler.lock().unwrap().take();
                match handler {
                    Some(handler) => {
                        handler.call_with_defer(self, reason, |s| s.ns.remove_socket(s.id));
                    }
                    None => self.ns.remove_socket(self.id),
                }
                return;
            }
        };
        match handler {
            Some(handler) => handler.call_with_defer(self, reason, Self::next_lifecycle),
            None => self.next_lifecycle(),
        }
    }

    fn next_lifecycle(self: Arc<Self>) {
        let Some(session) = self.session.as_deref() else {
            return;
        };
        let next = {
            let mut state = session.state.lock().unwrap();
            match state.lifecycle.pop_front() {
                Some(next) => next,
                None => {
                    state.lifecycle_running = false;
                    return;
                }
            }
        };
        self.run_lifecycle(next);
    }

    /// Hands the session to `transport`, whose client sent `offset`: answers its CONNECT and
    /// replays what it missed in one go, before anything else can be sent to it. Returns the
    /// reason the previous connection ended, or `None` if the session cannot be recovered.
    fn recover(
        self: &Arc<Self>,
        session: &Session<A>,
        transport: &Arc<EIoSocket<A>>,
        offset: ClientOffset,
    ) -> Option<(DisconnectReason, Arc<EIoSocket<A>>)> {
        let mut state = session.state.lock().unwrap();
        let previous_reason = match state.link {
            Link::Ended => return None,
            Link::Detached { since, reason } => {
                if since.elapsed() >= session.config.window {
                    return None;
                }
                reason
            }
            // Its connection is still open, but its client is back on another one: it died
            // silently.
            Link::Attached if self.connected() => DisconnectReason::TransportError,
            Link::Attached => return None,
        };
        let received = match offset {
            ClientOffset::Invalid => return None,
            ClientOffset::At(offset) if offset > state.last_offset => return None,
            ClientOffset::At(offset) if offset >= state.first_offset => offset,
            ClientOffset::At(_) | ClientOffset::Missing => 0,
        };
        if state.forgotten_upto > received {
            return None;
        }

        let connect = Packet::connect(
            self.ns.path.clone(),
            Some(session.connect_payload(self.parser, self.id)),
        );
        let connect = self.parser.encode(connect);
        let replay = state
            .retained
            .iter()
            .filter(|(o, _)| *o > received)
            .map(|(_, value)| value);
        let messages: Vec<_> = std::iter::once(&connect)
            .chain(replay)
            .filter_map(|value| match value {
                Value::Str(text, bins) => Some((text.clone(), bins.clone().unwrap_or_default())),
                // The parsers that encode to binary have no recovery (see `Parser`).
                Value::Bytes(_) => None,
            })
            .collect();
        let permit = transport.reserve().ok()?;
        transport.data.route(self.ns.path.clone(), self.id);
        permit.emit_many_messages(messages);

        Session::forget_received(&mut state, received);
        state.proven_at_next_pong = 0;
        let previous = state
            .transport
            .replace(transport.clone())
            .unwrap_or_else(|| self.esocket.clone());
        state.link = Link::Attached;
        state.generation += 1;
        drop(state);

        self.set_connected(true);
        session.recovered.store(true, Ordering::Release);
        Some((previous_reason, previous))
    }
}

/// The sessions of a namespace, when recovery is on.
pub(crate) struct NsRecovery {
    pub config: RecoveryConfig,
    sessions: Mutex<HashMap<Pid, Sid>>,
    expiries: Mutex<Expiries>,
}

#[derive(Default)]
struct Expiries {
    /// Deadlines come in order: the window is the same for all.
    queue: VecDeque<(Instant, Sid, u64)>,
    sweeping: bool,
}

impl NsRecovery {
    pub fn new(config: RecoveryConfig) -> Self {
        NsRecovery {
            config,
            sessions: Mutex::new(HashMap::new()),
            expiries: Mutex::new(Expiries::default()),
        }
    }
}

impl<A: Adapter> Namespace<A> {
    /// Registers the pid of a socket that just connected.
    pub(crate) fn remember_session(&self, session: &Session<A>, sid: Sid) {
        if let Some(recovery) = &self.recovery {
            recovery.sessions.lock().unwrap().insert(session.pid, sid);
        }
    }

    fn forget_session(&self, pid: &Pid) {
        if let Some(recovery) = &self.recovery {
            let mut sessions = recovery.sessions.lock().unwrap();
            sessions.remove(pid);
            // After a wave of sessions, the map gives its room back.
            if sessions.capacity() > 64 && sessions.len() < sessions.capacity() / 4 {
                let len = sessions.len();
                sessions.shrink_to(len * 2);
            }
        }
    }

    /// Tries to recover the session `request` names for the connection `esocket`.
    /// Returns whether it did.
    pub(crate) fn try_recover(
        &self,
        request: RecoveryRequest,
        esocket: &Arc<EIoSocket<A>>,
    ) -> bool {
        let Some(recovery) = &self.recovery else {
            return false;
        };
        let Some(pid) = request.pid else {
            return false;
        };
        let Some(sid) = recovery.sessions.lock().unwrap().get(&pid).copied() else {
            return false;
        };
        let Ok(socket) = self.get_socket(sid) else {
            return false;
        };
        let Some(session) = socket.session.as_deref().filter(|s| s.pid == pid) else {
            return false;
        };
        let Some((reason, previous)) = socket.recover(session, esocket, request.offset) else {
            return false;
        };
        #[cfg(feature = "tracing")]
        tracing::debug!(%sid, ns = ?self.path, "session recovered");
        if !Arc::ptr_eq(&previous, esocket) && !previous.is_closed() {
            previous.close(EIoDisconnectReason::TransportError);
        }
        socket.push_lifecycle(Lifecycle::Recovered(reason));
        true
    }

    /// Ends the session of socket `sid` when the window passed, unless it was recovered
    /// (or detached again: `generation` tells).
    fn schedule_expiry(self: &Arc<Self>, sid: Sid, generation: u64) {
        let Some(recovery) = &self.recovery else {
            return;
        };
        let mut expiries = recovery.expiries.lock().unwrap();
        expiries
            .queue
            .push_back((Instant::now() + recovery.config.window, sid, generation));
        if !expiries.sweeping {
            expiries.sweeping = true;
            tokio::spawn(Self::sweep(Arc::downgrade(self)));
        }
    }

    /// Ends the sessions whose window passed, while there are sessions waiting.
    async fn sweep(ns: Weak<Self>) {
        loop {
            let Some(this) = ns.upgrade() else { return };
            let Some(recovery) = &this.recovery else {
                return;
            };
            let now = Instant::now();
            let (due, next) = {
                let mut expiries = recovery.expiries.lock().unwrap();
                let mut due = Vec::new();
                while let Some(&(deadline, sid, generation)) = expiries.queue.front() {
                    if deadline > now {
                        break;
                    }
                    expiries.queue.pop_front();
                    due.push((sid, generation));
                }
                let next = expiries.queue.front().map(|(deadline, ..)| *deadline);
                if next.is_none() {
                    expiries.sweeping = false;
                    expiries.queue = VecDeque::new();
                }
                (due, next)
            };
            for (sid, generation) in due {
                if let Ok(socket) = this.get_socket(sid) {
                    socket.expire(generation);
                }
            }
            let Some(next) = next else { return };
            drop(this);
            tokio::time::sleep_until(next).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &'static str) -> Value {
        Value::Str(text.into(), None)
    }

    fn text(value: Option<Value>) -> Option<String> {
        match value {
            Some(Value::Str(s, _)) => Some(s.to_string()),
            _ => None,
        }
    }

    #[test]
    fn offsets_round_trip_and_increase() {
        let (a, b) = (next_offset(), next_offset());
        assert!(b > a);
        assert_eq!(parse_offset(&format_offset(a)), Some(a));
        assert_eq!(parse_offset("not an offset!"), None);
        assert_eq!(parse_offset(""), None);
        assert_eq!(parse_offset("zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn offset_goes_last_in_events_only() {
        let o = format_offset(42);
        assert_eq!(
            text(with_offset(&event(r#"2["a",1]"#), 42)),
            Some(format!(r#"2["a",1,"{o}"]"#))
        );
        assert_eq!(
            text(with_offset(&event(r#"2/chat,["a"]"#), 42)),
            Some(format!(r#"2/chat,["a","{o}"]"#))
        );
        assert_eq!(
            text(with_offset(
                &event(r#"51-/chat,["a",{"_placeholder":true,"num":0}]"#),
                42
            )),
            Some(format!(
                r#"51-/chat,["a",{{"_placeholder":true,"num":0}},"{o}"]"#
            ))
        );
        // Events asking for an ack, acks, and other packets carry none.
        assert_eq!(text(with_offset(&event(r#"212["a"]"#), 42)), None);
        assert_eq!(text(with_offset(&event(r#"2/chat,12["a"]"#), 42)), None);
        assert_eq!(text(with_offset(&event(r#"51-3["a"]"#), 42)), None);
        assert_eq!(text(with_offset(&event(r#"31["a"]"#), 42)), None);
        assert_eq!(text(with_offset(&event(r#"0{"sid":"x"}"#), 42)), None);
    }

    #[test]
    fn pids_are_long_random_and_parse_back() {
        let (a, b) = (Pid::new(), Pid::new());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(Pid::parse(a.as_str()), Some(a));
        assert_eq!(Pid::parse("short"), None);
        assert_eq!(format!("{a:?}"), "Pid(<redacted>)");
    }
}
