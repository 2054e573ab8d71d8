//! Per-socket rate limits: a token bucket per class of event, and a count of net refusals
//! after which a client is treated as a flooder and disconnected.

use std::net::IpAddr;
use std::time::Instant;

use dashmap::DashMap;

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

#[derive(Debug)]
pub struct Bucket {
    rate: Rate,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    pub fn new(rate: Rate, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.burst.max(1.0),
            refilled: now,
        }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.rate.is_unlimited() {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_sec).min(self.rate.burst.max(1.0));
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A token bucket per client address, for HTTP endpoints.
#[derive(Debug)]
pub struct AddressLimiter {
    rate: Rate,
    buckets: DashMap<IpAddr, Bucket>,
}

impl AddressLimiter {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: DashMap::new(),
        }
    }

    pub fn allow(&self, address: IpAddr, now: Instant) -> bool {
        self.buckets
            .entry(address)
            .or_insert_with(|| Bucket::new(self.rate, now))
            .take(now)
    }

    /// Forgets addresses idle long enough for their bucket to be full again.
    pub fn prune(&self, now: Instant) {
        let refill = if self.rate.is_unlimited() {
            0.0
        } else {
            self.rate.burst.max(1.0) / self.rate.per_sec
        };
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.refilled).as_secs_f64() < refill);
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// What the limiter says about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Refused,
    /// Refused, and the client has been refused far more often than allowed: disconnect it.
    Flooding,
}

/// One socket's buckets.
#[derive(Debug)]
pub struct Limiter {
    chat: Bucket,
    signal: Bucket,
    join: Bucket,
    /// Refusals not yet paid back: each refusal adds one, each allowed event takes one
    /// away, so a flooder cannot reset it by slipping in an occasional allowed event.
    strikes: u32,
    disconnect_after: u32,
}

impl Limiter {
    pub fn new(limits: &RateLimits, now: Instant) -> Self {
        Self {
            chat: Bucket::new(limits.chat, now),
            signal: Bucket::new(limits.signal, now),
            join: Bucket::new(limits.join, now),
            strikes: 0,
            disconnect_after: limits.disconnect_after,
        }
    }

    pub fn check(&mut self, class: Class, now: Instant) -> Verdict {
        let bucket = match class {
            Class::Chat => &mut self.chat,
            Class::Signal => &mut self.signal,
            Class::Join => &mut self.join,
        };
        if bucket.take(now) {
            self.strikes = self.strikes.saturating_sub(1);
            return Verdict::Allowed;
        }
        self.strikes = self.strikes.saturating_add(1);
        if self.disconnect_after > 0 && self.strikes >= self.disconnect_after {
            Verdict::Flooding
        } else {
            Verdict::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        let start = Instant::now();
        let mut l = Limiter::new(&limits(2.0, 3.0, 0), start);
        for _ in 0..3 {
            assert_eq!(l.check(Class::Chat, start), Verdict::Allowed);
        }
        assert_eq!(l.check(Class::Chat, start), Verdict::Refused);
        assert_eq!(
            l.check(Class::Join, start),
            Verdict::Allowed,
            "classes are separate"
        );
        let later = start + Duration::from_millis(500);
        assert_eq!(l.check(Class::Chat, later), Verdict::Allowed);
        assert_eq!(l.check(Class::Chat, later), Verdict::Refused);
        let much_later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.check(Class::Chat, much_later), Verdict::Allowed);
        }
        assert_eq!(
            l.check(Class::Chat, much_later),
            Verdict::Refused,
            "burst caps the refill"
        );
    }

    #[test]
    fn unlimited_never_refuses() {
        let now = Instant::now();
        let mut l = Limiter::new(&limits(1.0, 1.0, 0), now);
        for _ in 0..10_000 {
            assert_eq!(l.check(Class::Signal, now), Verdict::Allowed);
        }
    }

    #[test]
    fn addresses_are_limited_separately_and_forgotten_when_idle() {
        let now = Instant::now();
        let l = AddressLimiter::new(Rate {
            per_sec: 1.0,
            burst: 2.0,
        });
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        assert!(l.allow(a, now) && l.allow(a, now));
        assert!(!l.allow(a, now));
        assert!(l.allow(b, now));
        l.prune(now + Duration::from_secs(1));
        assert_eq!(l.tracked(), 2);
        l.prune(now + Duration::from_secs(3));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn net_refusals_mean_flooding_even_with_allowed_events_between() {
        let now = Instant::now();
        let mut l = Limiter::new(&limits(1.0, 1.0, 3), now);
        assert_eq!(l.check(Class::Chat, now), Verdict::Allowed);
        assert_eq!(l.check(Class::Chat, now), Verdict::Refused);
        assert_eq!(l.check(Class::Chat, now), Verdict::Refused);
        assert_eq!(
            l.check(Class::Signal, now),
            Verdict::Allowed,
            "pays back one strike"
        );
        assert_eq!(l.check(Class::Chat, now), Verdict::Refused);
        assert_eq!(l.check(Class::Chat, now), Verdict::Flooding);
    }
}
