//! Rate limits, kept by `governor` (GCRA, equivalent to a token bucket of `burst` tokens
//! refilled at `per_sec`): per socket, a quota per class of event plus a count of net
//! refusals after which a client is treated as a flooder and disconnected; per client
//! address, for HTTP endpoints.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
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
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Signal => "signal",
            Self::Join => "join",
        }
    }
}

/// The configured limits of every class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub chat: Rate,
    pub signal: Rate,
    pub join: Rate,
    /// Net refusals (refusals minus allowed events) that get a client disconnected;
    /// 0 never disconnects.
    pub disconnect_after: u32,
}

impl RateLimits {
    pub const UNLIMITED: RateLimits = RateLimits {
        chat: Rate::UNLIMITED,
        signal: Rate::UNLIMITED,
        join: Rate::UNLIMITED,
        disconnect_after: 0,
    };
}

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
#[derive(Debug)]
pub struct SocketLimiter<C: Clock = DefaultClock> {
    chat: Option<Direct<C>>,
    signal: Option<Direct<C>>,
    join: Option<Direct<C>>,
    /// Refusals not yet paid back: each refusal adds one, each allowed event takes one
    /// away, so a flooder cannot reset it by slipping in an occasional allowed event.
    strikes: AtomicU32,
    disconnect_after: u32,
}

impl SocketLimiter {
    pub fn new(limits: &RateLimits) -> Self {
        Self::with_clock(limits, &DefaultClock::default())
    }
}

impl<C: Clock + Clone> SocketLimiter<C> {
    pub fn with_clock(limits: &RateLimits, clock: &C) -> Self {
        let direct = |rate: Rate| {
            rate.quota()
                .map(|quota| RateLimiter::direct_with_clock(quota, C::clone(clock)))
        };
        Self {
            chat: direct(limits.chat),
            signal: direct(limits.signal),
            join: direct(limits.join),
            strikes: AtomicU32::new(0),
            disconnect_after: limits.disconnect_after,
        }
    }

    pub fn check(&self, class: Class) -> Verdict {
        let limiter = match class {
            Class::Chat => &self.chat,
            Class::Signal => &self.signal,
            Class::Join => &self.join,
        };
        let allowed = limiter.as_ref().is_none_or(|l| l.check().is_ok());
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

type Keyed<C> =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A quota per client address, for HTTP endpoints.
#[derive(Debug)]
pub struct AddressLimiter<C: Clock = DefaultClock> {
    limiter: Option<Keyed<C>>,
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
            disconnect_after,
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
