//! Negotiation assist: helps mesh clients that negotiate WebRTC naively get media both ways,
//! without slowing the ones that negotiate well. Pure logic (no sockets, no clock of its
//! own): given "this relay from A to B at time t" (or "N joined at t"), it says deliver, hold
//! or discard, what held events to release, and when to ask again. docs/NEGOTIATION.md
//! explains the why, with sequence diagrams.
//!
//! The naive pattern (the public ProLiteMeet frontend; relays `{targetId, roomId, …}`): on `user-joined`
//! every member already in the room creates a connection to the newcomer at once, with the
//! camera tracks it has at that moment, and offers; a second later it sends
//! `request-connection`. The newcomer offers to everyone only once its camera is ready. Nobody
//! renegotiates or resolves glare. So an offer (or `request-connection`) that reaches a peer
//! before its camera is ready makes it answer without media, for good; a connection created
//! before the camera never carries it; two crossing offers break the pair.
//!
//! For a member M and a newcomer N (joined after M):
//!
//! - **Forward hold.** M's offers and `request-connection`s to N, and what M sends N after
//!   them, are held (acknowledged, not yet delivered) while M may be naive and the pair is not
//!   negotiated. N's own offer to M goes through; when M **answers** it, M has rolled its own
//!   offer back: that offer is discarded (the only events the assist ever discards are such
//!   abandoned offers) and the answer is delivered, then the rest of what was held, in order.
//! - **Camera wait.** A naive member that itself joined moments ago and has not offered
//!   anyone yet (its camera is still starting) would connect to N without media: N's
//!   `user-joined` and N's relays to it are held until it offers someone (its camera is ready
//!   then, and it connects to everyone it knows, N included, from `participants-updated`).
//!
//! Held events are released, in order and in their sender's turn, as soon as waiting cannot
//! help: the member shows it is not naive (it signals end-of-candidates, which the naive
//! frontend never does, or sends no `request-connection` within [`CLASSIFY_WINDOW`] of N's
//! join), N shows it resolves glare itself (end-of-candidates), M does not answer N's offer
//! within [`ANSWER_GRACE`], M's camera is ready, or [`CAMERA_WAIT`] has passed.
//!
//! Who is assisted with `NEGOTIATION_ASSIST=auto`: a member known naive (it has sent
//! `request-connection`), or one not known yet while someone in the room is known naive or
//! when its relay uses the naive dialect (`targetId` and `roomId`, no `targetSocketId`) within
//! [`CLASSIFY_WINDOW`] of N's join (the naive frontend offers the moment it learns of N).
//! `on` assists everyone that way; `off` nobody.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::protocol::{RelayKind, RelayRequest};

/// After a newcomer joins, how long a member not yet known has to show it is naive by sending
/// `request-connection` (the naive frontend sends it ~0.5 s and 1 s after `user-joined`).
pub const CLASSIFY_WINDOW: Duration = Duration::from_millis(2000);
/// How long a naive member gets to answer the newcomer's offer before its own held offer is
/// released anyway (a naive client answers within milliseconds; one that does not is
/// ignoring the offer, as an impolite perfect-negotiation peer does, and needs its own).
pub const ANSWER_GRACE: Duration = Duration::from_millis(2000);
/// How long after joining a participant may take to get its camera and offer (a slow camera,
/// a permission prompt) before what is held for it is released anyway: late media one way
/// beats none.
pub const CAMERA_WAIT: Duration = Duration::from_secs(12);
/// Held events per pair, and their bytes, beyond which the pair is released (fail open).
pub const MAX_HELD: usize = 64;
pub const MAX_HELD_BYTES: usize = 256 * 1024;

/// `NEGOTIATION_ASSIST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Assist the participants whose behaviour shows they need it.
    #[default]
    Auto,
    /// Assist everyone as if naive.
    On,
    Off,
}

impl FromStr for Mode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            _ => Err(()),
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

/// How a relay addressed its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `targetId` and `roomId`, no `targetSocketId`: how the naive frontend addresses every
    /// relay.
    Naive,
    /// Anything else.
    Other,
}

impl Dialect {
    /// The dialect of a decoded relay.
    pub fn of(request: &RelayRequest) -> Self {
        if request.frontend_addressing {
            Self::Naive
        } else {
            Self::Other
        }
    }
}

/// One relay as the assist sees it.
#[derive(Debug, Clone, Copy)]
pub struct Relay<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub kind: RelayKind,
    pub dialect: Dialect,
    /// An ICE candidate `null`: the sender signals end-of-candidates.
    pub end_of_candidates: bool,
    /// An offer whose SDP a browser made (`v=0` first, a DTLS fingerprint in it): the
    /// evidence that its sender is a real WebRTC peer. Scripted clients (tests, bots) that never make one are never
    /// assisted under `auto`, so their relays are never held.
    pub browser_offer: bool,
}

/// What a held event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Relay(RelayKind),
    /// The newcomer's `user-joined`, withheld from a member whose camera is starting.
    UserJoined,
}

impl Event {
    /// The event its recipient gets.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relay(kind) => kind.server_event(),
            Self::UserJoined => "user-joined",
        }
    }
}

/// What the assist has learnt of a participant from what it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manner {
    Unknown,
    /// Sent `request-connection`: it negotiates the naive way.
    Naive,
    /// Did what the naive frontend never does: not assisted (unless `on`).
    Standard,
}

#[derive(Debug)]
struct Member {
    /// Join order within the room: who is the newcomer of a pair.
    seq: u64,
    joined_at: Instant,
    manner: Manner,
    /// Its offer to a newcomer is held on the strength of its dialect alone.
    suspect: bool,
    /// Someone was in the room when it joined (so it will offer once its camera is ready).
    had_company: bool,
    /// Has sent an offer: its camera is ready.
    offered: bool,
    /// Has sent an offer a browser made ([`Relay::browser_offer`]).
    browser: bool,
}

/// An event held for later delivery.
#[derive(Debug)]
pub struct Delivery<T> {
    pub to: String,
    pub event: Event,
    pub payload: T,
}

/// Held payloads know their size, for the per-pair cap.
pub trait Weighed {
    fn bytes(&self) -> usize;
}

impl Weighed for Box<serde_json::value::RawValue> {
    fn bytes(&self) -> usize {
        self.get().len()
    }
}

impl Weighed for String {
    fn bytes(&self) -> usize {
        self.len()
    }
}

/// What one participant holds for another: from a member to a newcomer (forward hold), or
/// from a newcomer to a member whose camera is starting (camera wait).
#[derive(Debug)]
struct Pair<T> {
    sender: String,
    recipient: String,
    held: VecDeque<Delivery<T>>,
    held_bytes: usize,
    /// Forward pairs: when the newcomer's own offer to the member went through.
    newcomer_offered_at: Option<Instant>,
    /// Negotiated (or released): nothing of this pair is held again.
    settled: bool,
}

impl<T> Pair<T> {
    fn new(sender: &str, recipient: &str) -> Self {
        Self {
            sender: sender.to_owned(),
            recipient: recipient.to_owned(),
            held: VecDeque::new(),
            held_bytes: 0,
            newcomer_offered_at: None,
            settled: false,
        }
    }
}

impl<T: Weighed> Pair<T> {
    /// Holds an event unless the pair is full; `false`: full, release it all instead.
    fn hold(&mut self, d: Delivery<T>) -> Result<(), Delivery<T>> {
        let bytes = d.payload.bytes();
        if self.held.len() >= MAX_HELD || self.held_bytes + bytes > MAX_HELD_BYTES {
            return Err(d);
        }
        self.held_bytes += bytes;
        self.held.push_back(d);
        Ok(())
    }

    /// Everything held, in order; the pair is settled.
    fn release(&mut self) -> impl Iterator<Item = Delivery<T>> + '_ {
        self.settled = true;
        self.held_bytes = 0;
        self.held.drain(..)
    }
}

/// Whether the relay being handled goes out now or waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Hold,
}

/// Ask again (with [`Assist::expire`]) for what `sender` holds at `at`, in `sender`'s turn,
/// so released events never overtake what it sends meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub sender: String,
    pub at: Instant,
}

/// What to do now: emit `before`, then the current relay if its fate is
/// [`Fate::Deliver`], then `after` (all from the current sender, in that order), and arm
/// the wakes.
#[derive(Debug)]
pub struct Step<T> {
    pub before: Vec<Delivery<T>>,
    pub current: Fate,
    pub after: Vec<Delivery<T>>,
    pub wakes: Vec<Wake>,
    /// Offers discarded because their sender answered the target's offer instead.
    pub superseded_offers: usize,
}

impl<T> Step<T> {
    fn deliver() -> Self {
        Self {
            before: Vec::new(),
            current: Fate::Deliver,
            after: Vec::new(),
            wakes: Vec::new(),
            superseded_offers: 0,
        }
    }
}

/// A join as the assist handles it: the members its `user-joined` is withheld from (for
/// now), and when to ask again.
#[derive(Debug, Default)]
pub struct JoinStep {
    pub withheld_from: Vec<String>,
    pub wakes: Vec<Wake>,
}

/// The assist of one room.
#[derive(Debug)]
pub struct RoomAssist<T> {
    members: HashMap<String, Member>,
    /// Keyed by the join sequence numbers of (sender, recipient).
    pairs: HashMap<(u64, u64), Pair<T>>,
    next_seq: u64,
}

impl<T> Default for RoomAssist<T> {
    fn default() -> Self {
        Self {
            members: HashMap::new(),
            pairs: HashMap::new(),
            next_seq: 0,
        }
    }
}

impl<T: Weighed> RoomAssist<T> {
    /// The key of the pair (`from`, `to`), if both are members.
    fn key(&self, from: &str, to: &str) -> Option<(u64, u64)> {
        Some((self.members.get(from)?.seq, self.members.get(to)?.seq))
    }

    fn pair(&self, from: &str, to: &str) -> Option<&Pair<T>> {
        self.pairs.get(&self.key(from, to)?)
    }

    /// The pair (`from`, `to`), made if new; `None` if either is not a member.
    fn pair_mut(&mut self, from: &str, to: &str) -> Option<&mut Pair<T>> {
        let k = self.key(from, to)?;
        Some(self.pairs.entry(k).or_insert_with(|| Pair::new(from, to)))
    }

    /// `who` joined at `now`; `announce` makes its `user-joined` payload for each member it
    /// is withheld from.
    pub fn joined(
        &mut self,
        mode: Mode,
        who: &str,
        now: Instant,
        mut announce: impl FnMut() -> T,
    ) -> JoinStep {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut step = JoinStep::default();
        let starting: Vec<(String, Instant)> = self
            .members
            .iter()
            .filter(|(_, m)| self.camera_starting(mode, m, now))
            .map(|(id, m)| (id.clone(), m.joined_at + CAMERA_WAIT))
            .collect();
        let had_company = !self.members.is_empty();
        self.members.insert(
            who.to_owned(),
            Member {
                seq,
                joined_at: now,
                manner: Manner::Unknown,
                suspect: false,
                had_company,
                offered: false,
                browser: false,
            },
        );
        for (member, at) in starting {
            let Some(pair) = self.pair_mut(who, &member) else {
                continue;
            };
            let held = pair.hold(Delivery {
                to: member.clone(),
                event: Event::UserJoined,
                payload: announce(),
            });
            if held.is_ok() {
                step.withheld_from.push(member);
                step.wakes.push(Wake {
                    sender: who.to_owned(),
                    at,
                });
            }
        }
        step
    }

    /// Forgets `who` and everything held from or for it; returns how many events were held.
    pub fn left(&mut self, who: &str) -> usize {
        let Some(gone) = self.members.remove(who).map(|m| m.seq) else {
            return 0;
        };
        let mut dropped = 0;
        self.pairs.retain(|&(a, n), pair| {
            let keep = a != gone && n != gone;
            if !keep {
                dropped += pair.held.len();
            }
            keep
        });
        dropped
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Someone here is known to negotiate naively (it sent `request-connection`): the
    /// participants of one room use one frontend, as a rule.
    fn known_naive_room(&self) -> bool {
        self.members.values().any(|m| m.manner == Manner::Naive)
    }

    /// `m`'s manner, an unknown one counting as naive in a room known to be naive.
    fn manner(&self, m: &Member) -> Manner {
        if m.manner == Manner::Unknown && self.known_naive_room() {
            Manner::Naive
        } else {
            m.manner
        }
    }

    /// A member that joined others moments ago, has not offered yet (its camera is still
    /// starting) and may be naive: known so, or not known in a room where someone is known or
    /// suspected (by its dialect) to be.
    fn camera_starting(&self, mode: Mode, m: &Member, now: Instant) -> bool {
        let naive = match mode {
            Mode::Off => return false,
            Mode::On => true,
            Mode::Auto => match self.manner(m) {
                Manner::Naive => true,
                Manner::Standard => false,
                Manner::Unknown => self
                    .members
                    .values()
                    .any(|o| o.manner == Manner::Unknown && o.suspect),
            },
        };
        naive && m.had_company && !m.offered && now < m.joined_at + CAMERA_WAIT
    }

    /// Handles one relay; `payload` makes the relay's payload if it is to be held.
    pub fn relay(
        &mut self,
        mode: Mode,
        r: Relay<'_>,
        now: Instant,
        payload: impl FnOnce() -> T,
    ) -> Step<T> {
        let (Some(from), Some(to)) = (self.members.get(r.from), self.members.get(r.to)) else {
            return Step::deliver();
        };
        let sender_is_member = from.seq < to.seq;
        let was_starting = self.camera_starting(mode, from, now);
        let mut step = Step::deliver();

        // What the sender's relay says about it.
        let before = from.manner;
        let browser = from.browser || r.browser_offer;
        let learnt = match (r.kind, before) {
            // Under `auto`, only a browser's: a script asking for a connection is not the
            // naive frontend.
            (RelayKind::ConnectionRequest, _) if browser || mode != Mode::Auto => Manner::Naive,
            (RelayKind::IceCandidate, Manner::Unknown) if r.end_of_candidates => Manner::Standard,
            _ => before,
        };
        if let Some(m) = self.members.get_mut(r.from) {
            m.manner = learnt;
            m.offered |= r.kind == RelayKind::Offer;
            m.browser = browser;
        }
        if learnt == Manner::Standard && before != Manner::Standard && mode == Mode::Auto {
            // Nothing it holds as a member needs holding any more; as a newcomer, it resolves
            // glare itself, so members' relays to it can go (in their own turns); and the room
            // may no longer count as naive, which ends camera waits.
            step.before = self.release_all_from(r.from, |forward| forward);
            step.wakes = self.wakes_for(r.from, now);
            step.wakes.extend(self.wakes_for_camera_waits(now));
        }
        if was_starting && r.kind == RelayKind::Offer {
            // Its camera is ready: what newcomers hold for it can go (in their turns).
            step.wakes.extend(self.wakes_for(r.from, now));
        }

        // What the sender holds for the target and is due goes first.
        self.expire_pair(mode, r.from, r.to, now, &mut step);

        if sender_is_member {
            self.member_relay(mode, r, now, payload, &mut step);
        } else {
            self.newcomer_relay(mode, r, now, payload, &mut step);
        }
        step
    }

    /// A relay from a member to a newcomer.
    fn member_relay(
        &mut self,
        mode: Mode,
        r: Relay<'_>,
        now: Instant,
        payload: impl FnOnce() -> T,
        step: &mut Step<T>,
    ) {
        let holding = self.pair(r.from, r.to).is_some_and(|p| !p.held.is_empty());
        if holding && r.kind == RelayKind::Answer {
            // The member answered the newcomer's offer: it rolled its own offer back.
            if let Some(pair) = self.pair_mut(r.from, r.to) {
                for d in pair.release() {
                    if d.event == Event::Relay(RelayKind::Offer) {
                        step.superseded_offers += 1;
                    } else {
                        step.after.push(d);
                    }
                }
            }
            return;
        }
        if r.kind == RelayKind::Answer {
            if let Some(pair) = self.pair_mut(r.from, r.to) {
                pair.settled = true;
            }
            return;
        }
        if !holding && !self.should_hold(mode, r, now) {
            return;
        }
        let first = !holding;
        self.hold_current(r, payload, step);
        if first && step.current == Fate::Hold {
            if mode == Mode::Auto
                && let Some(m) = self.members.get_mut(r.from)
                && m.manner == Manner::Unknown
            {
                m.suspect = true;
            }
            if let Some(at) = self.due(mode, r.from, r.to, now) {
                step.wakes.push(Wake {
                    sender: r.from.to_owned(),
                    at,
                });
            }
        }
    }

    /// A relay from a newcomer to a member: held while the member's camera is starting;
    /// otherwise delivered, its offer starting the member's grace to answer, its answer
    /// settling the pair.
    fn newcomer_relay(
        &mut self,
        mode: Mode,
        r: Relay<'_>,
        now: Instant,
        payload: impl FnOnce() -> T,
        step: &mut Step<T>,
    ) {
        let pair = self.pair(r.from, r.to);
        let waiting = pair.is_some_and(|p| !p.held.is_empty())
            || (!pair.is_some_and(|p| p.settled)
                && self
                    .members
                    .get(r.to)
                    .is_some_and(|m| self.camera_starting(mode, m, now)));
        if waiting {
            let first = pair.is_none_or(|p| p.held.is_empty());
            self.hold_current(r, payload, step);
            if first
                && step.current == Fate::Hold
                && let Some(at) = self.due(mode, r.from, r.to, now)
            {
                step.wakes.push(Wake {
                    sender: r.from.to_owned(),
                    at,
                });
            }
            return;
        }
        match r.kind {
            RelayKind::Offer => self.newcomer_offered(mode, r.to, r.from, now, step),
            RelayKind::Answer => {
                // Only possible once the member's offer went through: nothing is held.
                if let Some(pair) = self.pair_mut(r.to, r.from) {
                    pair.settled = true;
                }
            }
            _ => {}
        }
    }

    /// `newcomer`'s offer reached `member`: the member's grace to answer starts.
    fn newcomer_offered(
        &mut self,
        mode: Mode,
        member: &str,
        newcomer: &str,
        now: Instant,
        step: &mut Step<T>,
    ) {
        let Some(pair) = self.pair_mut(member, newcomer) else {
            return;
        };
        if pair.newcomer_offered_at.is_some() {
            // Its first offer started the grace (and armed the wake) already.
            return;
        }
        pair.newcomer_offered_at = Some(now);
        if !pair.held.is_empty()
            && let Some(at) = self.due(mode, member, newcomer, now)
        {
            step.wakes.push(Wake {
                sender: member.to_owned(),
                at,
            });
        }
    }

    /// Holds the current relay behind what the pair holds; a full pair is released instead.
    fn hold_current(&mut self, r: Relay<'_>, payload: impl FnOnce() -> T, step: &mut Step<T>) {
        let Some(pair) = self.pair_mut(r.from, r.to) else {
            return;
        };
        let d = Delivery {
            to: r.to.to_owned(),
            event: Event::Relay(r.kind),
            payload: payload(),
        };
        match pair.hold(d) {
            Ok(()) => step.current = Fate::Hold,
            Err(_) => step.before.extend(pair.release()),
        }
    }

    fn should_hold(&self, mode: Mode, r: Relay<'_>, now: Instant) -> bool {
        if !matches!(r.kind, RelayKind::Offer | RelayKind::ConnectionRequest) {
            return false;
        }
        let (Some(member), Some(newcomer)) = (self.members.get(r.from), self.members.get(r.to))
        else {
            return false;
        };
        if self.pair(r.from, r.to).is_some_and(|p| p.settled)
            || now >= newcomer.joined_at + CAMERA_WAIT
        {
            return false;
        }
        match mode {
            Mode::Off => false,
            Mode::On => true,
            Mode::Auto => {
                member.browser
                    && newcomer.manner != Manner::Standard
                    && match self.manner(member) {
                        Manner::Naive => true,
                        Manner::Standard => false,
                        Manner::Unknown => {
                            r.dialect == Dialect::Naive
                                && now < newcomer.joined_at + CLASSIFY_WINDOW
                        }
                    }
            }
        }
    }

    /// When what `from` holds for `to` must go at the latest.
    fn due(&self, mode: Mode, from: &str, to: &str, now: Instant) -> Option<Instant> {
        let f = self.members.get(from)?;
        let t = self.members.get(to)?;
        let pair = self.pairs.get(&(f.seq, t.seq))?;
        if f.seq > t.seq {
            // Camera wait: until the member's camera is ready.
            return Some(if self.camera_starting(mode, t, now) {
                t.joined_at + CAMERA_WAIT
            } else {
                now
            });
        }
        if mode == Mode::Auto {
            if t.manner == Manner::Standard || f.manner == Manner::Standard {
                return Some(now);
            }
            if self.manner(f) == Manner::Unknown {
                return Some(t.joined_at + CLASSIFY_WINDOW);
            }
        }
        let camera = t.joined_at + CAMERA_WAIT;
        Some(match pair.newcomer_offered_at {
            Some(offered) => camera.min(offered + ANSWER_GRACE),
            None => camera,
        })
    }

    /// Releases, in order, whatever `sender` holds whose time has come (in its turn).
    pub fn expire(&mut self, mode: Mode, sender: &str, now: Instant) -> Step<T> {
        let mut step = Step::deliver();
        let targets: Vec<String> = self
            .pairs
            .values()
            .filter(|p| p.sender == sender && !p.held.is_empty())
            .map(|p| p.recipient.clone())
            .collect();
        for target in targets {
            self.expire_pair(mode, sender, &target, now, &mut step);
        }
        if let Some(at) = self.next_due(mode, sender, now) {
            step.wakes.push(Wake {
                sender: sender.to_owned(),
                at,
            });
        }
        step
    }

    /// Releases what `sender` holds for `target` if it is due (into `step.before`).
    fn expire_pair(
        &mut self,
        mode: Mode,
        sender: &str,
        target: &str,
        now: Instant,
        step: &mut Step<T>,
    ) {
        if self.pair(sender, target).is_none_or(|p| p.held.is_empty()) {
            return;
        }
        if self
            .due(mode, sender, target, now)
            .is_none_or(|at| at > now)
        {
            return;
        }
        let (Some(s), Some(t)) = (self.members.get(sender), self.members.get(target)) else {
            return;
        };
        let forward = s.seq < t.seq;
        let lapsed = forward && mode == Mode::Auto && self.manner(s) == Manner::Unknown;
        let mut offered = false;
        if let Some(pair) = self.pair_mut(sender, target) {
            for d in pair.release() {
                offered |= d.event == Event::Relay(RelayKind::Offer);
                step.before.push(d);
            }
        }
        if !forward && offered {
            self.newcomer_offered(mode, target, sender, now, step);
        }
        if lapsed {
            // It offered on user-joined but never asked for a connection back: not the
            // naive frontend; what else it holds as a member goes now too, and the room may
            // no longer count as naive.
            if let Some(m) = self.members.get_mut(sender) {
                m.manner = Manner::Standard;
                m.suspect = false;
            }
            step.before
                .extend(self.release_all_from(sender, |forward| forward));
            step.wakes.extend(self.wakes_for_camera_waits(now));
        }
    }

    /// The earliest time something `sender` holds is due, if it holds anything.
    fn next_due(&self, mode: Mode, sender: &str, now: Instant) -> Option<Instant> {
        self.pairs
            .values()
            .filter(|p| p.sender == sender && !p.held.is_empty())
            .filter_map(|p| self.due(mode, &p.sender, &p.recipient, now))
            .min()
    }

    /// Everything `sender` holds in the pairs `which` selects (by whether they are forward),
    /// in order per recipient; those pairs are settled.
    fn release_all_from(&mut self, sender: &str, which: impl Fn(bool) -> bool) -> Vec<Delivery<T>> {
        let Some(seq) = self.members.get(sender).map(|m| m.seq) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (&(a, to), pair) in self.pairs.iter_mut() {
            if a == seq && !pair.held.is_empty() && which(a < to) {
                out.extend(pair.release());
            }
        }
        out
    }

    /// Wakes, now, for every newcomer holding events for a member whose camera was starting.
    fn wakes_for_camera_waits(&self, now: Instant) -> Vec<Wake> {
        self.pairs
            .iter()
            .filter(|&(&(a, to), p)| a > to && !p.held.is_empty())
            .map(|(_, p)| Wake {
                sender: p.sender.clone(),
                at: now,
            })
            .collect()
    }

    /// Wakes, now, for everyone holding events for `recipient`.
    fn wakes_for(&self, recipient: &str, now: Instant) -> Vec<Wake> {
        self.pairs
            .values()
            .filter(|p| p.recipient == recipient && !p.held.is_empty())
            .map(|p| Wake {
                sender: p.sender.clone(),
                at: now,
            })
            .collect()
    }
}

/// The assist of every room of this instance. Each call locks one room briefly (never across
/// an `.await`) and returns what to emit.
pub struct Assist<T = Box<serde_json::value::RawValue>> {
    mode: Mode,
    rooms: DashMap<String, RoomAssist<T>>,
}

impl<T: Weighed> Assist<T> {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            rooms: DashMap::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `who` joined `room`; see [`RoomAssist::joined`].
    pub fn joined(
        &self,
        room: &str,
        who: &str,
        now: Instant,
        announce: impl FnMut() -> T,
    ) -> JoinStep {
        if self.mode == Mode::Off {
            return JoinStep::default();
        }
        self.rooms
            .entry(room.to_owned())
            .or_default()
            .joined(self.mode, who, now, announce)
    }

    /// Forgets `who` in `room`; returns how many events held from or for it are dropped.
    pub fn left(&self, room: &str, who: &str) -> usize {
        let dropped = match self.rooms.get_mut(room) {
            Some(mut r) => r.left(who),
            None => return 0,
        };
        self.rooms.remove_if(room, |_, r| r.is_empty());
        dropped
    }

    pub fn relay(
        &self,
        room: &str,
        r: Relay<'_>,
        now: Instant,
        payload: impl FnOnce() -> T,
    ) -> Step<T> {
        if self.mode == Mode::Off {
            return Step::deliver();
        }
        match self.rooms.get_mut(room) {
            Some(mut assist) => assist.relay(self.mode, r, now, payload),
            None => Step::deliver(),
        }
    }

    pub fn expire(&self, room: &str, sender: &str, now: Instant) -> Step<T> {
        match self.rooms.get_mut(room) {
            Some(mut assist) => assist.expire(self.mode, sender, now),
            None => Step::deliver(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "alice";
    const N: &str = "newbie";
    const B: &str = "bob";

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn relay<'a>(from: &'a str, to: &'a str, kind: RelayKind) -> Relay<'a> {
        Relay {
            from,
            to,
            kind,
            dialect: Dialect::Naive,
            end_of_candidates: false,
            browser_offer: kind == RelayKind::Offer,
        }
    }

    struct Room {
        mode: Mode,
        assist: RoomAssist<String>,
        /// What each target received, in order: "<from>:<label>".
        received: HashMap<String, Vec<String>>,
        wakes: Vec<Wake>,
        superseded: usize,
        /// Members some user-joined was withheld from.
        withheld: Vec<String>,
    }

    impl Room {
        fn new(mode: Mode, t0: Instant, members: &[&str]) -> Self {
            let mut room = Self {
                mode,
                assist: RoomAssist::default(),
                received: HashMap::new(),
                wakes: Vec::new(),
                superseded: 0,
                withheld: Vec::new(),
            };
            for (i, m) in members.iter().enumerate() {
                room.join(m, ms(t0, i as u64 * 10));
            }
            room
        }

        /// `who` joins; its user-joined goes to every member it is not withheld from.
        fn join(&mut self, who: &str, now: Instant) {
            let others: Vec<String> = self.assist.members.keys().cloned().collect();
            let step = self
                .assist
                .joined(self.mode, who, now, || format!("user-joined {who}"));
            for m in others {
                if !step.withheld_from.contains(&m) {
                    self.received
                        .entry(m)
                        .or_default()
                        .push(format!("server:user-joined {who}"));
                }
            }
            self.withheld.extend(step.withheld_from);
            self.wakes.extend(step.wakes);
        }

        fn emit(&mut self, from: &str, d: Delivery<String>) {
            let line = match d.event {
                Event::UserJoined => format!("server:{}", d.payload),
                Event::Relay(_) => format!("{from}:{}", d.payload),
            };
            self.received.entry(d.to).or_default().push(line);
        }

        fn send(&mut self, r: Relay<'_>, label: &str, now: Instant) -> Fate {
            let label = label.to_owned();
            let step = self.assist.relay(self.mode, r, now, || label.clone());
            self.apply(r.from, step, Some((r.to, &label)))
        }

        fn send_kind(
            &mut self,
            from: &str,
            to: &str,
            kind: RelayKind,
            label: &str,
            now: Instant,
        ) -> Fate {
            self.send(relay(from, to, kind), label, now)
        }

        fn apply(&mut self, from: &str, step: Step<String>, current: Option<(&str, &str)>) -> Fate {
            for d in step.before {
                self.emit(from, d);
            }
            if let (Fate::Deliver, Some((to, label))) = (step.current, current) {
                self.received
                    .entry(to.to_owned())
                    .or_default()
                    .push(format!("{from}:{label}"));
            }
            for d in step.after {
                self.emit(from, d);
            }
            self.wakes.extend(step.wakes);
            self.superseded += step.superseded_offers;
            step.current
        }

        fn expire(&mut self, sender: &str, now: Instant) {
            let step = self.assist.expire(self.mode, sender, now);
            self.apply(sender, step, None);
        }

        /// The relays `who` received, in order.
        fn got(&self, who: &str) -> Vec<&str> {
            self.got_all(who)
                .into_iter()
                .filter(|l| !l.starts_with("server:"))
                .collect()
        }

        /// Everything `who` received (relays and user-joined), in order.
        fn got_all(&self, who: &str) -> Vec<&str> {
            self.received
                .get(who)
                .map(|v| v.iter().map(String::as_str).collect())
                .unwrap_or_default()
        }
    }

    /// The naive frontend with a slow camera: A's offer, candidates and request-connections
    /// wait for N's offer; A answers it; A's offer is discarded, the rest follows the answer.
    #[test]
    fn naive_pair_newcomer_offer_wins() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, N]);
        let joined = ms(t0, 10);
        use RelayKind::*;
        assert_eq!(
            room.send_kind(A, N, Offer, "offer", ms(joined, 5)),
            Fate::Hold
        );
        assert_eq!(room.wakes.last().unwrap().at, joined + CLASSIFY_WINDOW);
        assert_eq!(
            room.send_kind(A, N, IceCandidate, "ice1", ms(joined, 6)),
            Fate::Hold
        );
        assert_eq!(
            room.send_kind(A, N, ConnectionRequest, "rc1", ms(joined, 510)),
            Fate::Hold
        );
        // Known naive now: the classification deadline no longer releases anything.
        room.expire(A, joined + CLASSIFY_WINDOW);
        assert!(room.got(N).is_empty());
        assert_eq!(room.wakes.last().unwrap().at, joined + CAMERA_WAIT);
        // N's camera is ready at 2.5 s: its offer goes through at once.
        assert_eq!(
            room.send_kind(N, A, Offer, "offerN", ms(joined, 2500)),
            Fate::Deliver
        );
        assert_eq!(room.got(A), ["newbie:offerN"]);
        assert_eq!(
            room.wakes.last().unwrap().at,
            ms(joined, 2500) + ANSWER_GRACE
        );
        assert_eq!(
            room.send_kind(A, N, Answer, "answer", ms(joined, 2530)),
            Fate::Deliver
        );
        assert_eq!(room.got(N), ["alice:answer", "alice:ice1", "alice:rc1"]);
        assert_eq!(room.superseded, 1);
        // Settled: later relays pass, and nothing more is held.
        assert_eq!(
            room.send_kind(A, N, IceCandidate, "ice2", ms(joined, 2540)),
            Fate::Deliver
        );
        assert_eq!(
            room.send_kind(A, N, ConnectionRequest, "rc2", ms(joined, 3000)),
            Fate::Deliver
        );
        room.expire(A, joined + CAMERA_WAIT);
        assert_eq!(
            room.got(N),
            [
                "alice:answer",
                "alice:ice1",
                "alice:rc1",
                "alice:ice2",
                "alice:rc2"
            ]
        );
    }

    /// A member in the naive dialect that never sends request-connection (a fixed "members
    /// offer" client): its offer waits at most until CLASSIFY_WINDOW after N's join, then
    /// goes with its candidates in order; later pairs are not held at all.
    #[test]
    fn unknown_member_released_after_classify_window() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, N]);
        let joined = ms(t0, 10);
        use RelayKind::*;
        assert_eq!(
            room.send_kind(A, N, Offer, "offer", ms(joined, 5)),
            Fate::Hold
        );
        assert_eq!(
            room.send_kind(A, N, IceCandidate, "ice1", ms(joined, 6)),
            Fate::Hold
        );
        room.expire(A, ms(joined, 1000));
        assert!(room.got(N).is_empty(), "not due yet");
        room.expire(A, joined + CLASSIFY_WINDOW);
        assert_eq!(room.got(N), ["alice:offer", "alice:ice1"]);
        assert_eq!(
            room.send_kind(A, N, IceCandidate, "ice2", joined + CLASSIFY_WINDOW),
            Fate::Deliver
        );
        // A third participant joins: A is known not to be naive now.
        room.join(B, ms(t0, 5000));
        assert_eq!(
            room.send_kind(A, B, Offer, "offerB", ms(t0, 5005)),
            Fate::Deliver
        );
    }

    /// End-of-candidates (a null candidate) from the member: not the naive frontend; its held
    /// offer goes at once, before that candidate.
    #[test]
    fn end_of_candidates_releases_at_once() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, N]);
        use RelayKind::*;
        assert_eq!(room.send_kind(A, N, Offer, "offer", ms(t0, 20)), Fate::Hold);
        assert_eq!(
            room.send_kind(A, N, IceCandidate, "ice1", ms(t0, 21)),
            Fate::Hold
        );
        let end = Relay {
            end_of_candidates: true,
            ..relay(A, N, IceCandidate)
        };
        assert_eq!(room.send(end, "end", ms(t0, 40)), Fate::Deliver);
        assert_eq!(room.got(N), ["alice:offer", "alice:ice1", "alice:end"]);
    }

    /// The newcomer signals end-of-candidates: it resolves glare itself, so the member's held
    /// offer is released in the member's turn (a wake now).
    #[test]
    fn standard_newcomer_wakes_members() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, N]);
        use RelayKind::*;
        assert_eq!(room.send_kind(A, N, Offer, "offer", ms(t0, 20)), Fate::Hold);
        assert_eq!(
            room.send_kind(N, A, Offer, "offerN", ms(t0, 30)),
            Fate::Deliver
        );
        let end = Relay {
            end_of_candidates: true,
            ..relay(N, A, IceCandidate)
        };
        room.wakes.clear();
        assert_eq!(room.send(end, "endN", ms(t0, 50)), Fate::Deliver);
        assert_eq!(
            room.wakes,
            [Wake {
                sender: A.into(),
                at: ms(t0, 50)
            }]
        );
        room.expire(A, ms(t0, 50));
        assert_eq!(room.got(N), ["alice:offer"]);
    }

    /// An impolite perfect-negotiation member ignores the newcomer's offer: its own held offer
    /// is released ANSWER_GRACE later at the latest (earlier if it is not known naive).
    #[test]
    fn member_that_does_not_answer_gets_its_offer_through() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::On, t0, &[A, N]);
        use RelayKind::*;
        assert_eq!(room.send_kind(A, N, Offer, "offer", ms(t0, 20)), Fate::Hold);
        room.send_kind(N, A, Offer, "offerN", ms(t0, 300));
        room.expire(A, ms(t0, 300) + ANSWER_GRACE - Duration::from_millis(1));
        assert!(room.got(N).is_empty());
        room.expire(A, ms(t0, 300) + ANSWER_GRACE);
        assert_eq!(room.got(N), ["alice:offer"]);
    }

    /// A newcomer that never offers (no camera): after CAMERA_WAIT the naive member's offer
    /// goes, so the newcomer at least receives.
    #[test]
    fn newcomer_without_camera_gets_the_offer_after_camera_wait() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, N]);
        let joined = ms(t0, 10);
        use RelayKind::*;
        room.send_kind(A, N, Offer, "offer", ms(joined, 5));
        room.send_kind(A, N, ConnectionRequest, "rc", ms(joined, 500));
        room.expire(A, joined + CAMERA_WAIT - Duration::from_millis(1));
        assert!(room.got(N).is_empty());
        room.expire(A, joined + CAMERA_WAIT);
        assert_eq!(room.got(N), ["alice:offer", "alice:rc"]);
    }

    /// Fixed "newcomer offers" clients: nothing is ever held.
    #[test]
    fn newcomer_offers_pattern_is_untouched() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, N]);
        use RelayKind::*;
        assert_eq!(
            room.send_kind(N, A, Offer, "offerN", ms(t0, 100)),
            Fate::Deliver
        );
        assert_eq!(
            room.send_kind(A, N, Answer, "answer", ms(t0, 110)),
            Fate::Deliver
        );
        assert_eq!(
            room.send_kind(A, N, IceCandidate, "ice", ms(t0, 111)),
            Fate::Deliver
        );
        // A later renegotiation offer from the member is not held either: the pair settled.
        assert_eq!(
            room.send_kind(A, N, Offer, "re-offer", ms(t0, 500)),
            Fate::Deliver
        );
    }

    /// Another dialect (`targetSocketId`, or no `roomId`) is not assisted until it shows the
    /// naive pattern.
    #[test]
    fn other_dialect_unknown_member_is_not_held() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, N]);
        let offer = Relay {
            dialect: Dialect::Other,
            ..relay(A, N, RelayKind::Offer)
        };
        assert_eq!(room.send(offer, "offer", ms(t0, 20)), Fate::Deliver);
    }

    /// An unknown member's offer that comes long after the newcomer joined is not the
    /// offer-on-user-joined pattern: delivered.
    #[test]
    fn late_offer_from_unknown_member_is_not_held() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, N]);
        let late = ms(t0, 10) + CLASSIFY_WINDOW;
        assert_eq!(
            room.send_kind(A, N, RelayKind::Offer, "offer", late),
            Fate::Deliver
        );
    }

    #[test]
    fn off_holds_nothing() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Off, t0, &[A, N]);
        room.send_kind(A, N, RelayKind::ConnectionRequest, "rc0", ms(t0, 15));
        assert_eq!(
            room.send_kind(A, N, RelayKind::Offer, "offer", ms(t0, 20)),
            Fate::Deliver
        );
    }

    /// Three members: each member → newcomer pair is held and resolved on its own.
    #[test]
    fn mesh_pairs_are_independent() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, B, N]);
        use RelayKind::*;
        // A and B met earlier (B offered A once its camera was ready): both known naive.
        room.send_kind(B, A, Offer, "offerBA", ms(t0, 500));
        room.send_kind(A, B, Answer, "answerAB", ms(t0, 510));
        room.send_kind(A, B, ConnectionRequest, "rcAB", ms(t0, 600));
        room.send_kind(B, A, ConnectionRequest, "rcBA", ms(t0, 700));
        let joined = ms(t0, 20);
        assert_eq!(
            room.send_kind(A, N, Offer, "offerA", ms(joined, 5)),
            Fate::Hold
        );
        assert_eq!(
            room.send_kind(B, N, Offer, "offerB", ms(joined, 6)),
            Fate::Hold
        );
        room.send_kind(N, A, Offer, "offerNA", ms(joined, 2500));
        room.send_kind(A, N, Answer, "answerA", ms(joined, 2520));
        assert_eq!(room.got(N), ["alice:answerA"]);
        room.send_kind(N, B, Offer, "offerNB", ms(joined, 2501));
        room.send_kind(B, N, Answer, "answerB", ms(joined, 2540));
        assert_eq!(room.got(N), ["alice:answerA", "bob:answerB"]);
        assert_eq!(room.superseded, 2);
    }

    /// Whoever leaves takes what was held from or for it along.
    #[test]
    fn leaving_drops_held_relays() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::On, t0, &[A, N]);
        room.send_kind(A, N, RelayKind::Offer, "offer", ms(t0, 20));
        room.send_kind(A, N, RelayKind::IceCandidate, "ice", ms(t0, 21));
        assert_eq!(room.assist.left(N), 2);
        room.expire(A, ms(t0, 20) + CAMERA_WAIT);
        assert!(room.got(N).is_empty());
        assert!(!room.assist.is_empty());
        room.assist.left(A);
        assert!(room.assist.is_empty());
    }

    /// Past MAX_HELD, the pair is released in order rather than grow.
    #[test]
    fn too_much_held_fails_open() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::On, t0, &[A, N]);
        room.send_kind(A, N, RelayKind::Offer, "offer", ms(t0, 20));
        for i in 1..MAX_HELD {
            let f = room.send_kind(
                A,
                N,
                RelayKind::IceCandidate,
                &format!("ice{i}"),
                ms(t0, 21),
            );
            assert_eq!(f, Fate::Hold);
        }
        assert_eq!(
            room.send_kind(A, N, RelayKind::IceCandidate, "last", ms(t0, 22)),
            Fate::Deliver
        );
        let got = room.got(N);
        assert_eq!(got.len(), MAX_HELD + 1);
        assert_eq!(got[0], "alice:offer");
        assert_eq!(got[MAX_HELD], "alice:last");
    }

    /// Relays between sockets the assist does not know (another instance's) pass through.
    #[test]
    fn unknown_sockets_pass() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::On, t0, &[A]);
        assert_eq!(
            room.send_kind(A, "elsewhere", RelayKind::Offer, "offer", ms(t0, 5)),
            Fate::Deliver
        );
    }

    /// A naive member whose camera is still starting when a newcomer joins: the newcomer's
    /// user-joined and relays wait until the member offers someone (camera ready); then they
    /// arrive in order, and the pair negotiates as any other (the newcomer's offer wins).
    #[test]
    fn camera_wait_for_a_member_whose_camera_is_starting() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, B]);
        use RelayKind::*;
        // A offers B on user-joined and asks for a connection back: naive.
        assert_eq!(
            room.send_kind(A, B, Offer, "offerAB", ms(t0, 15)),
            Fate::Hold
        );
        room.send_kind(A, B, ConnectionRequest, "rcAB", ms(t0, 510));
        // N joins while B's camera is starting: B does not hear of it yet.
        room.join(N, ms(t0, 800));
        assert_eq!(room.withheld, [B.to_owned()]);
        assert_eq!(
            room.got_all(A),
            ["server:user-joined bob", "server:user-joined newbie"]
        );
        assert!(!room.got_all(B).iter().any(|l| l.contains("newbie")));
        assert_eq!(
            room.send_kind(N, B, Offer, "offerNB", ms(t0, 1200)),
            Fate::Hold
        );
        assert_eq!(
            room.send_kind(N, B, ConnectionRequest, "rcNB", ms(t0, 1700)),
            Fate::Hold
        );
        assert_eq!(
            room.send_kind(N, A, Offer, "offerNA", ms(t0, 1200)),
            Fate::Deliver
        );
        // B's camera is ready at 2.6 s: it offers A and N (it knows N from
        // participants-updated). Its offer to N is held (a naive room); N is woken.
        room.wakes.clear();
        assert_eq!(
            room.send_kind(B, A, Offer, "offerBA", ms(t0, 2600)),
            Fate::Deliver
        );
        assert!(room.wakes.contains(&Wake {
            sender: N.into(),
            at: ms(t0, 2600)
        }));
        assert_eq!(
            room.send_kind(B, N, Offer, "offerBN", ms(t0, 2601)),
            Fate::Hold
        );
        room.expire(N, ms(t0, 2602));
        let got_b: Vec<&str> = room
            .got_all(B)
            .into_iter()
            .filter(|l| l.contains("newbie"))
            .collect();
        assert_eq!(
            got_b,
            ["server:user-joined newbie", "newbie:offerNB", "newbie:rcNB"]
        );
        // B answers N's offer: its own offer to N is dropped.
        assert_eq!(
            room.send_kind(B, N, Answer, "answerBN", ms(t0, 2620)),
            Fate::Deliver
        );
        assert_eq!(room.got(N), ["bob:answerBN"]);
        assert_eq!(room.superseded, 1);
    }

    /// A member whose camera never comes: what was withheld from it goes at CAMERA_WAIT.
    #[test]
    fn camera_wait_ends_at_camera_wait() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, B]);
        room.send_kind(A, B, RelayKind::Offer, "offerAB", ms(t0, 500));
        room.send_kind(A, B, RelayKind::ConnectionRequest, "rcAB", ms(t0, 510));
        room.join(N, ms(t0, 800));
        assert_eq!(room.withheld, [B.to_owned()]);
        let b_joined = ms(t0, 10);
        assert!(room.wakes.contains(&Wake {
            sender: N.into(),
            at: b_joined + CAMERA_WAIT
        }));
        room.expire(N, b_joined + CAMERA_WAIT - Duration::from_millis(1));
        assert!(!room.got_all(B).iter().any(|l| l.contains("newbie")));
        room.expire(N, b_joined + CAMERA_WAIT);
        assert!(room.got_all(B).contains(&"server:user-joined newbie"));
    }

    /// No sign of naive negotiation in the room: nothing is withheld from anyone.
    #[test]
    fn no_camera_wait_in_a_room_without_naive_signs() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, B]);
        let other = Relay {
            dialect: Dialect::Other,
            ..relay(A, B, RelayKind::Offer)
        };
        assert_eq!(room.send(other, "offerAB", ms(t0, 15)), Fate::Deliver);
        room.join(N, ms(t0, 800));
        assert!(room.withheld.is_empty());
        assert_eq!(
            room.send_kind(N, B, RelayKind::Offer, "offerNB", ms(t0, 900)),
            Fate::Deliver
        );
    }

    /// A room that looked naive only because of a member's dialect stops being so when that
    /// member's classify window lapses: the camera waits end too (a wake for the newcomer).
    #[test]
    fn camera_wait_ends_when_the_room_is_not_naive_after_all() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, B]);
        assert_eq!(
            room.send_kind(A, B, RelayKind::Offer, "offerAB", ms(t0, 15)),
            Fate::Hold
        );
        room.join(N, ms(t0, 300));
        assert_eq!(room.withheld, [B.to_owned()]);
        room.wakes.clear();
        room.expire(A, ms(t0, 10) + CLASSIFY_WINDOW);
        assert_eq!(room.got(B), ["alice:offerAB"]);
        assert!(room.wakes.contains(&Wake {
            sender: N.into(),
            at: ms(t0, 10) + CLASSIFY_WINDOW
        }));
        room.expire(N, ms(t0, 10) + CLASSIFY_WINDOW);
        assert!(room.got_all(B).contains(&"server:user-joined newbie"));
    }

    #[test]
    fn dialect_of_a_relay() {
        let dialect = |payload: &str| {
            let raw = serde_json::value::RawValue::from_string(payload.to_owned()).unwrap();
            Dialect::of(&crate::protocol::decode_relay(RelayKind::Offer, &raw).unwrap())
        };
        assert_eq!(
            dialect(r#"{"targetId": "x", "roomId": "r", "offer": {}}"#),
            Dialect::Naive
        );
        assert_eq!(dialect(r#"{"targetId": "x", "offer": {}}"#), Dialect::Other);
        assert_eq!(
            dialect(r#"{"targetSocketId": "x", "roomId": "r", "offer": {}}"#),
            Dialect::Other
        );
        assert_eq!(
            dialect(r#"{"targetId": "x", "targetSocketId": "x", "roomId": "r", "offer": {}}"#),
            Dialect::Other
        );
        assert_eq!(
            dialect(r#"{"targetId": "x", "roomId": null, "offer": {}}"#),
            Dialect::Other
        );
    }

    /// A scripted client (its offers are no browser's SDP) in the frontend's dialect, with
    /// request-connection and all: nothing it sends or receives is held, and nobody misses a
    /// user-joined, under `auto`.
    #[test]
    fn scripted_clients_are_never_assisted() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::Auto, t0, &[A, N]);
        use RelayKind::*;
        let scripted = |from, to, kind| Relay {
            browser_offer: false,
            ..relay(from, to, kind)
        };
        assert_eq!(
            room.send(scripted(A, N, ConnectionRequest), "req", ms(t0, 15)),
            Fate::Deliver
        );
        assert_eq!(
            room.send(scripted(A, N, Offer), "offer", ms(t0, 20)),
            Fate::Deliver
        );
        assert_eq!(
            room.send(scripted(A, N, ConnectionRequest), "req2", ms(t0, 25)),
            Fate::Deliver
        );
        room.join(B, ms(t0, 30));
        assert!(room.withheld.is_empty());
        assert_eq!(
            room.send(scripted(A, B, Offer), "offerAB", ms(t0, 40)),
            Fate::Deliver
        );
        assert_eq!(
            room.send(scripted(B, N, IceCandidate), "iceBN", ms(t0, 45)),
            Fate::Deliver
        );
        assert!(room.wakes.is_empty());
        assert_eq!(
            room.got(N),
            ["alice:req", "alice:offer", "alice:req2", "bob:iceBN"]
        );
    }

    /// `on` assists scripted clients too: it is the operator's explicit choice.
    #[test]
    fn on_holds_even_scripted_offers() {
        let t0 = Instant::now();
        let mut room = Room::new(Mode::On, t0, &[A, N]);
        let scripted = Relay {
            browser_offer: false,
            ..relay(A, N, RelayKind::Offer)
        };
        assert_eq!(room.send(scripted, "offer", ms(t0, 20)), Fate::Hold);
    }

    #[test]
    fn mode_parses() {
        assert_eq!("AUTO".parse(), Ok(Mode::Auto));
        assert_eq!(" on ".parse(), Ok(Mode::On));
        assert_eq!("off".parse(), Ok(Mode::Off));
        assert_eq!("yes".parse::<Mode>(), Err(()));
        assert_eq!(Mode::default(), Mode::Auto);
    }
}
