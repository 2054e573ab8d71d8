//! The heartbeats of every session of an engine, driven by one timer task instead of a task
//! (and a channel) per session.
//!
//! A spawned heartbeat task per session cost ~1.3 KB (its future) plus ~0.8 KB (a tokio
//! `mpsc` channel for the pongs) for every idle session. Here a session's heartbeat is a few
//! fields of its [`Socket`](crate::Socket) ([`Beat`]) and at most two entries in the engine's
//! [`Scheduler`] heap; one task sleeps until the earliest entry is due, and exits when the
//! heap is empty.
//!
//! The schedule is the one the per-session task had:
//! * v4: a ping when the session starts (unless upgrading), then the client has `ping_timeout`
//!   to answer with a pong; the next ping goes at `start + k * ping_interval` once the pong
//!   came (at once if that time has passed, like a bursting [`tokio::time::Interval`]). A
//!   ping that finds the session upgrading is skipped until the next tick. One pong received
//!   while no ping waits for it is kept and answers the next ping at once (the former
//!   one-slot channel); more are dropped.
//! * v3: the client pings; each ping is answered with a pong, and a session that sends no
//!   ping for `ping_interval + ping_timeout` is closed.
//!
//! Closing for a missed pong (or a full buffer when sending the ping) is
//! [`DisconnectReason::HeartbeatTimeout`](crate::DisconnectReason::HeartbeatTimeout).

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    pin::pin,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use engineioxide_core::{Packet, ProtocolVersion, Sid};
use smallvec::smallvec;
use tokio::{sync::Notify, time::Instant};

use crate::{DisconnectReason, engine::EngineIo, handler::EngineIoHandler, socket::Socket};

/// A session's heartbeat state (in its socket).
#[derive(Debug)]
pub(crate) struct Beat {
    state: Mutex<BeatState>,
}

#[derive(Debug)]
struct BeatState {
    /// When the heartbeat started: ticks are `started + k * ping_interval`.
    started: Instant,
    /// The tick of the latest ping (v4), or the count of pings received (v3).
    tick: u32,
    /// A ping was sent and its pong has not come yet (v4).
    waiting: bool,
    /// A pong came while no ping waited for it (v4).
    buffered: bool,
    /// An early ping asked for with [`Socket::ping_within`] (v4).
    probe: Probe,
}

/// An early ping's progress: asked for (due in the heap), then sent and not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Idle,
    Scheduled,
    Sent,
}

impl Beat {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(BeatState {
                started: Instant::now(),
                tick: 0,
                waiting: false,
                buffered: false,
                probe: Probe::Idle,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BeatState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Time for ping number `tick` (v4).
    Ping,
    /// The pong of ping `tick` (v4), or the ping following ping count `tick` (v3), is due.
    Deadline,
    /// An early ping asked for with [`Socket::ping_within`] is due (v4).
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Instant,
    sid: Sid,
    kind: Kind,
    tick: u32,
}

/// The engine's heartbeat timer: a heap of what is due when, and whether its task runs.
#[derive(Debug)]
pub(crate) struct Scheduler {
    interval: Duration,
    timeout: Duration,
    timers: Mutex<Timers>,
    /// Wakes the task when an entry is due before the one it sleeps for.
    wake: Notify,
}

#[derive(Debug, Default)]
struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    running: bool,
    /// When the task will wake up by itself (`None`: it is not sleeping on a deadline).
    sleeping_until: Option<Instant>,
}

impl Scheduler {
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            timers: Mutex::new(Timers::default()),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Timers> {
        self.timers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the heartbeat of a new session.
    pub(crate) fn start<H: EngineIoHandler>(engine: &Arc<EngineIo<H>>, socket: &Socket<H::Data>) {
        let scheduler = &engine.heartbeats;
        let now = Instant::now();
        {
            let mut beat = socket.beat.lock();
            beat.started = now;
            beat.tick = 0;
            beat.waiting = false;
            beat.buffered = false;
            beat.probe = Probe::Idle;
        }
        if client_pings(socket) {
            scheduler.push(
                engine,
                Entry {
                    at: now + scheduler.interval + scheduler.timeout,
                    sid: socket.id,
                    kind: Kind::Deadline,
                    tick: 0,
                },
            );
        } else {
            // The first ping goes from the timer task, right away (as the first tick of the
            // former per-session task did), not from inside the handshake.
            scheduler.push(engine, scheduler.ping_entry(socket.id, now, 0));
        }
    }

    /// A pong (v4) or a ping (v3) came from the client.
    pub(crate) fn on_client_beat<H: EngineIoHandler>(
        engine: &Arc<EngineIo<H>>,
        socket: &Socket<H::Data>,
    ) {
        let scheduler = &engine.heartbeats;
        if client_pings(socket) {
            #[cfg(feature = "tracing")]
            tracing::trace!(sid = ?socket.id, "ping received, sending pong");
            if socket
                .internal_tx
                .try_send(smallvec![Packet::Pong])
                .is_err()
            {
                socket.close(DisconnectReason::HeartbeatTimeout);
                return;
            }
            let tick = {
                let mut beat = socket.beat.lock();
                beat.tick = beat.tick.wrapping_add(1);
                beat.tick
            };
            scheduler.push(
                engine,
                Entry {
                    at: Instant::now() + scheduler.interval + scheduler.timeout,
                    sid: socket.id,
                    kind: Kind::Deadline,
                    tick,
                },
            );
            return;
        }
        let next = {
            let mut beat = socket.beat.lock();
            if beat.probe == Probe::Sent && !beat.waiting {
                // The answer to an early ping: the regular schedule is untouched.
                beat.probe = Probe::Idle;
                None
            } else if beat.waiting {
                beat.waiting = false;
                Some((beat.started, beat.tick + 1))
            } else {
                // Kept for the next ping; a second one while one is kept is dropped.
                beat.buffered = true;
                None
            }
        };
        if let Some((started, tick)) = next {
            #[cfg(feature = "tracing")]
            tracing::trace!(sid = ?socket.id, "pong received");
            scheduler.push(engine, scheduler.ping_entry(socket.id, started, tick));
        }
    }

    fn ping_entry(&self, sid: Sid, started: Instant, tick: u32) -> Entry {
        Entry {
            at: started + self.interval * tick,
            sid,
            kind: Kind::Ping,
            tick,
        }
    }

    /// Ping number `tick` of a v4 session.
    fn ping<H: EngineIoHandler>(
        &self,
        engine: &Arc<EngineIo<H>>,
        socket: &Arc<Socket<H::Data>>,
        tick: u32,
    ) {
        if socket.is_upgrading() {
            let started = socket.beat.lock().started;
            self.push(engine, self.ping_entry(socket.id, started, tick + 1));
            return;
        }
        {
            let mut beat = socket.beat.lock();
            match beat.probe {
                // An early ping is out: it is this tick's ping, its pong due from now.
                Probe::Sent => {
                    beat.probe = Probe::Idle;
                    beat.tick = tick;
                    beat.waiting = true;
                    drop(beat);
                    self.push(
                        engine,
                        Entry {
                            at: Instant::now() + self.timeout,
                            sid: socket.id,
                            kind: Kind::Deadline,
                            tick,
                        },
                    );
                    return;
                }
                // This ping does what the early one was asked for.
                Probe::Scheduled => beat.probe = Probe::Idle,
                Probe::Idle => {}
            }
        }
        #[cfg(feature = "tracing")]
        tracing::trace!(sid = ?socket.id, "emitting ping");
        // Before the ping is queued: what was queued before this call is before the ping.
        engine.handler.on_ping(socket);
        if socket
            .internal_tx
            .try_send(smallvec![Packet::Ping])
            .is_err()
        {
            socket.close(DisconnectReason::HeartbeatTimeout);
            return;
        }
        let entry = {
            let mut beat = socket.beat.lock();
            beat.tick = tick;
            if tick == 0 {
                // Some clients send the pong first: it does not count.
                beat.buffered = false;
            }
            if beat.buffered {
                beat.buffered = false;
                self.ping_entry(socket.id, beat.started, tick + 1)
            } else {
                beat.waiting = true;
                Entry {
                    at: Instant::now() + self.timeout,
                    sid: socket.id,
                    kind: Kind::Deadline,
                    tick,
                }
            }
        };
        self.push(engine, entry);
    }

    fn due<H: EngineIoHandler>(&self, engine: &Arc<EngineIo<H>>, entry: Entry) {
        let Some(socket) = engine.get_socket(entry.sid) else {
            return; // closed meanwhile
        };
        match entry.kind {
            Kind::Ping => self.ping(engine, &socket, entry.tick),
            Kind::Probe => self.probe(engine, &socket),
            Kind::Deadline => {
                let missed = {
                    let beat = socket.beat.lock();
                    beat.tick == entry.tick && (beat.waiting || client_pings(&socket))
                };
                if missed {
                    #[cfg(feature = "tracing")]
                    tracing::debug!(sid = ?socket.id, "heartbeat timeout");
                    socket.close(DisconnectReason::HeartbeatTimeout);
                }
            }
        }
    }

    /// An early ping, asked for with [`Socket::ping_within`]: sent unless a ping is out
    /// (then tried again a little later: its pong would not prove what came after it).
    fn probe<H: EngineIoHandler>(&self, engine: &Arc<EngineIo<H>>, socket: &Arc<Socket<H::Data>>) {
        {
            let mut beat = socket.beat.lock();
            if beat.probe != Probe::Scheduled {
                return; // a regular ping went meanwhile
            }
            if beat.waiting || socket.is_upgrading() {
                drop(beat);
                self.push(
                    engine,
                    Entry {
                        at: Instant::now() + PROBE_RETRY,
                        sid: socket.id,
                        kind: Kind::Probe,
                        tick: 0,
                    },
                );
                return;
            }
            beat.probe = Probe::Sent;
        }
        #[cfg(feature = "tracing")]
        tracing::trace!(sid = ?socket.id, "emitting early ping");
        engine.handler.on_ping(socket);
        if socket
            .internal_tx
            .try_send(smallvec![Packet::Ping])
            .is_err()
        {
            // A full buffer: the regular ping will find it so too.
            socket.beat.lock().probe = Probe::Idle;
        }
    }

    /// Adds an entry for a session whose heartbeat runs (so the timer task does too); false
    /// if the task is not running (the session's heartbeat has not started or has ended).
    fn request(&self, entry: Entry) -> bool {
        let wake = {
            let mut timers = self.lock();
            if !timers.running {
                return false;
            }
            timers.heap.push(Reverse(entry));
            timers.sleeping_until.is_none_or(|at| entry.at < at)
        };
        if wake {
            self.wake.notify_one();
        }
        true
    }

    fn push<H: EngineIoHandler>(&self, engine: &Arc<EngineIo<H>>, entry: Entry) {
        let (spawn, wake) = {
            let mut timers = self.lock();
            timers.heap.push(Reverse(entry));
            let spawn = !timers.running;
            timers.running = true;
            let wake = timers.sleeping_until.is_none_or(|at| entry.at < at);
            (spawn, wake && !spawn)
        };
        if spawn {
            tokio::spawn(run(Arc::downgrade(engine)));
        } else if wake {
            self.wake.notify_one();
        }
    }
}

/// How long an early ping waits while a regular one is out, before it is tried again.
const PROBE_RETRY: Duration = Duration::from_millis(250);

/// See [`Socket::ping_within`].
pub(crate) fn ping_within<D: Default + Send + Sync + 'static>(
    socket: &Socket<D>,
    scheduler: &Scheduler,
    within: Duration,
) {
    if client_pings(socket) {
        return;
    }
    {
        let mut beat = socket.beat.lock();
        if beat.probe != Probe::Idle {
            return;
        }
        beat.probe = Probe::Scheduled;
    }
    let entry = Entry {
        at: Instant::now() + within,
        sid: socket.id,
        kind: Kind::Probe,
        tick: 0,
    };
    if !scheduler.request(entry) {
        socket.beat.lock().probe = Probe::Idle;
    }
}

/// Whether the client sends the pings (Engine.IO v3, with the `v3` feature) rather than the
/// server (v4).
fn client_pings<D: Default + Send + Sync + 'static>(socket: &Socket<D>) -> bool {
    cfg!(feature = "v3") && socket.protocol == ProtocolVersion::V3
}

/// The timer task: handles what is due, sleeps until the next entry, and exits once there
/// is none (the next [`Scheduler::push`] starts it again). It keeps the engine alive only
/// while entries are pending.
async fn run<H: EngineIoHandler>(engine: Weak<EngineIo<H>>) {
    loop {
        let Some(strong) = engine.upgrade() else {
            return;
        };
        let scheduler = &strong.heartbeats;
        let mut woken = pin!(scheduler.wake.notified());
        woken.as_mut().enable();
        let now = Instant::now();
        let mut due = Vec::new();
        let next = {
            let mut timers = scheduler.lock();
            while let Some(Reverse(entry)) = timers.heap.peek() {
                if entry.at > now {
                    break;
                }
                due.push(*entry);
                timers.heap.pop();
            }
            let next = timers.heap.peek().map(|Reverse(e)| e.at);
            if next.is_none() && due.is_empty() {
                timers.running = false;
                timers.sleeping_until = None;
                return;
            }
            timers.sleeping_until = if due.is_empty() { next } else { None };
            next
        };
        if !due.is_empty() {
            for entry in due {
                scheduler.due(&strong, entry);
            }
            continue;
        }
        let Some(next) = next else { continue };
        tokio::select! {
            () = tokio::time::sleep_until(next) => {},
            () = &mut woken => {},
        }
    }
}
