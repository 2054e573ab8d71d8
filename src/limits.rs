//! Rate limits, kept by `governor` (GCRA, equivalent to a token bucket of `burst` tokens
//! refilled at `per_sec`): per socket, a quota per class of event, a byte budget per relay
//! target, a quota of repeated joins, plus a count of net refusals after which a client is
//! treated as a flooder and disconnected; per client address, for HTTP endpoints and room
//! creation.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed, keyed::DefaultKeyedStateStore};
use governor::{Quota, RateLimiter};

/// A rate in events per second and a burst size; a rate of zero means "no limit".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: f64,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate {
        per_sec: 0.0,
        burst: 0.0,
    };

    pub fn is_unlimited(&self) -> bool {
        self.per_sec <= 0.0
    }

    /// The quota: `burst` events at once (at least one), one more every `1 / per_sec`
    /// seconds; `None` when unlimited.
    fn quota(&self) -> Option<Quota> {
        if self.is_unlimited() || !self.per_sec.is_finite() {
            return None;
        }
        let period = Duration::try_from_secs_f64(1.0 / self.per_sec).ok()?;
        let burst = NonZeroU32::new(self.burst.clamp(1.0, f64::from(u32::MAX)) as u32)?;
        Quota::with_period(period).map(|q| q.allow_burst(burst))
    }
}

/// The classes of client events that are limited separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `send-message`.
    Chat,
    /// Relayed signaling, media toggles and screen sharing.
    Signal,
    /// `join-room` and `leave-room`.
    Join,
    /// The host's moderation events (a fixed quota: see [`MODERATION_BURST`]).
    Moderation,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Signal => "signal",
            Self::Join => "join",
            Self::Moderation => "moderation",
        }
    }
}

/// The configured limits of every class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub chat: Rate,
    pub signal: Rate,
    pub join: Rate,
    /// Bytes one socket may relay to one other participant (in KiB units of quota).
    pub relay_bytes: Rate,
    /// Net refusals (refusals minus allowed events) that get a client disconnected;
    /// 0 never disconnects.
    pub disconnect_after: u32,
}

impl RateLimits {
    pub const UNLIMITED: RateLimits = RateLimits {
        chat: Rate::UNLIMITED,
        signal: Rate::UNLIMITED,
        join: Rate::UNLIMITED,
        relay_bytes: Rate::UNLIMITED,
        disconnect_after: 0,
    };
}

/// `join-room` for the room a socket is already in answers the whole room again (history
/// included) and changes nothing: a few are normal (a frontend re-sending its join), more
/// would only amplify. Three at once, then one every 10 s.
const REJOIN_PERIOD: Duration = Duration::from_secs(10);
const REJOIN_BURST: u32 = 3;

/// Host moderation events per socket: each one tells the whole room, so a host gets 100 at
/// once (admitting a full lobby one by one, or setting 50 permissions), then 10 per second.
/// Fixed, and off whenever signaling is unlimited (as in the test suites and benchmarks).
pub const MODERATION_BURST: u32 = 100;
pub const MODERATION_PER_SEC: u32 = 10;

/// What the limiter says about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Refused,
    /// Refused, and the client has been refused far more often than allowed: disconnect it.
    Flooding,
}

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One socket's quotas (`None` for an unlimited class).
///
/// Every socket holds one, so its clock is std's monotonic one, which takes no room: governor's
/// default (quanta's) is 40 bytes, and each quota keeps its own copy (5 of them and the
/// limiter's own made this 544 bytes a socket instead of 312; issue 19).
#[derive(Debug)]
pub struct SocketLimiter<C: Clock + Clone = MonotonicClock> {
    chat: Option<Direct<C>>,
    signal: Option<Direct<C>>,
    join: Option<Direct<C>>,
    /// `None` when signaling is unlimited.
    moderation: Option<Direct<C>>,
    /// `None` when joins are unlimited.
    rejoin: Option<Direct<C>>,
    /// Relayed bytes per target, in KiB; made at the socket's first relay (an idle socket
    /// pays nothing for it).
    relay: OnceLock<Keyed<Arc<str>, C>>,
    relay_quota: Option<Quota>,
    clock: C,
    /// Refusals not yet paid back: each refusal adds one, each allowed event takes one
    /// away, so a flooder cannot reset it by slipping in an occasional allowed event.
    strikes: AtomicU32,
    disconnect_after: u32,
}

impl SocketLimiter {
    pub fn new(limits: &RateLimits) -> Self {
        Self::with_clock(limits, &MonotonicClock)
    }
}

impl<C: Clock + Clone> SocketLimiter<C> {
    pub fn with_clock(limits: &RateLimits, clock: &C) -> Self {
        let direct = |rate: Rate| {
            rate.quota()
                .map(|quota| RateLimiter::direct_with_clock(quota, C::clone(clock)))
        };
        let rejoin = Quota::with_period(REJOIN_PERIOD)
            .map(|q| q.allow_burst(NonZeroU32::new(REJOIN_BURST).unwrap_or(NonZeroU32::MIN)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN));
        let moderation = Rate {
            per_sec: f64::from(MODERATION_PER_SEC),
            burst: f64::from(MODERATION_BURST),
        };
        let relay_in_kib = Rate {
            per_sec: limits.relay_bytes.per_sec / 1024.0,
            burst: limits.relay_bytes.burst / 1024.0,
        };
        Self {
            chat: direct(limits.chat),
            signal: direct(limits.signal),
            join: direct(limits.join),
            moderation: if limits.signal.is_unlimited() {
                None
            } else {
                direct(moderation)
            },
            rejoin: (!limits.join.is_unlimited())
                .then(|| RateLimiter::direct_with_clock(rejoin, C::clone(clock))),
            relay: OnceLock::new(),
            relay_quota: relay_in_kib.quota(),
            clock: C::clone(clock),
            strikes: AtomicU32::new(0),
            disconnect_after: limits.disconnect_after,
        }
    }

    pub fn check(&self, class: Class) -> Verdict {
        let limiter = match class {
            Class::Chat => &self.chat,
            Class::Signal => &self.signal,
            Class::Join => &self.join,
            Class::Moderation => &self.moderation,
        };
        self.verdict(limiter.as_ref().is_none_or(|l| l.check().is_ok()))
    }

    /// A join of the room the socket is already in.
    pub fn check_rejoin(&self) -> Verdict {
        self.verdict(self.rejoin.as_ref().is_none_or(|l| l.check().is_ok()))
    }

    /// `bytes` relayed to `target`: each target has its own budget, so a flood aimed at one
    /// participant is refused to its sender long before it fills the target's buffer.
    pub fn check_relay(&self, target: &str, bytes: usize) -> Verdict {
        let Some(quota) = self.relay_quota else {
            return Verdict::Allowed;
        };
        let budget = self
            .relay
            .get_or_init(|| RateLimiter::dashmap_with_clock(quota, C::clone(&self.clock)));
        if budget.len() > RELAY_TARGETS_KEPT {
            budget.retain_recent();
        }
        let kib = u32::try_from(bytes.div_ceil(1024))
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        self.verdict(matches!(
            budget.check_key_n(&Arc::from(target), kib),
            Ok(Ok(()))
        ))
    }

    /// An event refused for another reason (its socket's queue is full): a strike too.
    pub fn refuse(&self) -> Verdict {
        self.verdict(false)
    }

    /// Counts an event allowed or refused toward flooding.
    fn verdict(&self, allowed: bool) -> Verdict {
        let step = |strikes: u32| {
            Some(if allowed {
                strikes.saturating_sub(1)
            } else {
                strikes.saturating_add(1)
            })
        };
        let before = self
            .strikes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, step)
            .unwrap_or_default();
        if allowed {
            Verdict::Allowed
        } else if self.disconnect_after > 0 && before.saturating_add(1) >= self.disconnect_after {
            Verdict::Flooding
        } else {
            Verdict::Refused
        }
    }
}

type Keyed<K, C> =
    RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Targets a socket's relay budgets track before idle ones are forgotten.
const RELAY_TARGETS_KEPT: usize = 64;

/// A quota per client address, for HTTP endpoints.
#[derive(Debug)]
pub struct AddressLimiter<C: Clock = DefaultClock> {
    limiter: Option<Keyed<IpAddr, C>>,
}

impl AddressLimiter {
    pub fn new(rate: Rate) -> Self {
        Self::with_clock(rate, &DefaultClock::default())
    }
}

impl<C: Clock + Clone> AddressLimiter<C> {
    pub fn with_clock(rate: Rate, clock: &C) -> Self {
        Self {
            limiter: rate
                .quota()
                .map(|quota| RateLimiter::dashmap_with_clock(quota, C::clone(clock))),
        }
    }

    pub fn allow(&self, address: IpAddr) -> bool {
        self.limiter
            .as_ref()
            .is_none_or(|l| l.check_key(&address).is_ok())
    }

    /// Forgets addresses idle long enough for their quota to be whole again.
    pub fn prune(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limits(per_sec: f64, burst: f64, disconnect_after: u32) -> RateLimits {
        let rate = Rate { per_sec, burst };
        RateLimits {
            chat: rate,
            signal: Rate::UNLIMITED,
            join: rate,
            relay_bytes: Rate {
                per_sec: 4096.0,
                burst: 8192.0,
            },
            disconnect_after,
        }
    }

    #[test]
    fn each_relay_target_has_its_own_byte_budget() {
        let clock = FakeRelativeClock::default();
        let l = SocketLimiter::with_clock(&limits(1.0, 1.0, 0), &clock);
        assert_eq!(l.check_relay("victim", 6000), Verdict::Allowed);
        assert_eq!(l.check_relay("victim", 3000), Verdict::Refused);
        assert_eq!(l.check_relay("other", 3000), Verdict::Allowed);
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.check_relay("victim", 3000), Verdict::Allowed);
        assert_eq!(
            l.check_relay("victim", 100_000),
            Verdict::Refused,
            "more than the whole budget at once"
        );
    }

    #[test]
    fn repeated_joins_have_a_small_quota() {
        let clock = FakeRelativeClock::default();
        let l = SocketLimiter::with_clock(&limits(1.0, 100.0, 0), &clock);
        for _ in 0..REJOIN_BURST {
            assert_eq!(l.check_rejoin(), Verdict::Allowed);
        }
        assert_eq!(l.check_rejoin(), Verdict::Refused);
        clock.advance(REJOIN_PERIOD);
        assert_eq!(l.check_rejoin(), Verdict::Allowed);
        let open = SocketLimiter::with_clock(&RateLimits::UNLIMITED, &clock);
        for _ in 0..100 {
            assert_eq!(open.check_rejoin(), Verdict::Allowed, "joins unlimited");
        }
    }

    #[test]
    fn burst_then_refill() {
        let clock = FakeRelativeClock::default();
        let l = SocketLimiter::with_clock(&limits(2.0, 3.0, 0), &clock);
        for _ in 0..3 {
            assert_eq!(l.check(Class::Chat), Verdict::Allowed);
        }
        assert_eq!(l.check(Class::Chat), Verdict::Refused);
        assert_eq!(
            l.check(Class::Join),
            Verdict::Allowed,
            "classes are separate"
        );
        clock.advance(Duration::from_millis(500));
        assert_eq!(l.check(Class::Chat), Verdict::Allowed);
        assert_eq!(l.check(Class::Chat), Verdict::Refused);
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(l.check(Class::Chat), Verdict::Allowed);
        }
        assert_eq!(
            l.check(Class::Chat),
            Verdict::Refused,
            "burst caps the refill"
        );
    }

    #[test]
    fn moderation_has_a_fixed_quota_unless_signaling_is_unlimited() {
        let clock = FakeRelativeClock::default();
        let limited = RateLimits {
            signal: Rate {
                per_sec: 500.0,
                burst: 3000.0,
            },
            ..limits(1.0, 1.0, 0)
        };
        let l = SocketLimiter::with_clock(&limited, &clock);
        for _ in 0..MODERATION_BURST {
            assert_eq!(l.check(Class::Moderation), Verdict::Allowed);
        }
        assert_eq!(l.check(Class::Moderation), Verdict::Refused);
        clock.advance(Duration::from_millis(100));
        assert_eq!(l.check(Class::Moderation), Verdict::Allowed);
        let open = SocketLimiter::with_clock(&limits(1.0, 1.0, 0), &clock);
        for _ in 0..1000 {
            assert_eq!(open.check(Class::Moderation), Verdict::Allowed);
        }
    }

    #[test]
    fn unlimited_never_refuses() {
        let l = SocketLimiter::new(&limits(1.0, 1.0, 0));
        for _ in 0..10_000 {
            assert_eq!(l.check(Class::Signal), Verdict::Allowed);
        }
        let a = AddressLimiter::new(Rate::UNLIMITED);
        for _ in 0..10_000 {
            assert!(a.allow(IpAddr::from([10, 0, 0, 1])));
        }
    }

    #[test]
    fn fractional_rates_refill_slowly() {
        let clock = FakeRelativeClock::default();
        let l = SocketLimiter::with_clock(&limits(0.5, 1.0, 0), &clock);
        assert_eq!(l.check(Class::Chat), Verdict::Allowed);
        clock.advance(Duration::from_millis(1900));
        assert_eq!(l.check(Class::Chat), Verdict::Refused);
        clock.advance(Duration::from_millis(100));
        assert_eq!(l.check(Class::Chat), Verdict::Allowed);
    }

    #[test]
    fn addresses_are_limited_separately_and_forgotten_when_idle() {
        let clock = FakeRelativeClock::default();
        let l = AddressLimiter::with_clock(
            Rate {
                per_sec: 1.0,
                burst: 2.0,
            },
            &clock,
        );
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        assert!(l.allow(a) && l.allow(a));
        assert!(!l.allow(a));
        assert!(l.allow(b));
        clock.advance(Duration::from_secs(1));
        l.prune();
        assert_eq!(l.tracked(), 2);
        clock.advance(Duration::from_secs(2));
        l.prune();
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn net_refusals_mean_flooding_even_with_allowed_events_between() {
        let l = SocketLimiter::new(&limits(1.0, 1.0, 3));
        assert_eq!(l.check(Class::Chat), Verdict::Allowed);
        assert_eq!(l.check(Class::Chat), Verdict::Refused);
        assert_eq!(l.check(Class::Chat), Verdict::Refused);
        assert_eq!(
            l.check(Class::Signal),
            Verdict::Allowed,
            "pays back one strike"
        );
        assert_eq!(l.check(Class::Chat), Verdict::Refused);
        assert_eq!(l.check(Class::Chat), Verdict::Flooding);
    }
}
