//! What a run measures, shared by every client task of the (single-threaded) runtime.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

static START: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process started measuring (monotonic; every timestamp a message
/// carries is one of these, and sender and receiver are this same process).
pub fn now_ns() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

pub struct Stats {
    /// Latencies in microseconds, 1 µs to 10 min, 3 significant digits.
    hist: RefCell<Histogram<u64>>,
    /// Only messages stamped inside `[from, until)` count.
    pub from: Cell<u64>,
    pub until: Cell<u64>,
    /// Messages (chat, offers) sent inside the window.
    pub sent: Cell<u64>,
    /// Deliveries (or round trips) received inside the window.
    pub received: Cell<u64>,
    pub errors: Cell<u64>,
    first_errors: RefCell<Vec<String>>,
}

impl Stats {
    pub fn new() -> Self {
        Self {
            hist: RefCell::new(
                Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
            ),
            from: Cell::new(0),
            until: Cell::new(u64::MAX),
            sent: Cell::new(0),
            received: Cell::new(0),
            errors: Cell::new(0),
            first_errors: RefCell::new(Vec::new()),
        }
    }

    pub fn in_window(&self, stamp: u64) -> bool {
        stamp >= self.from.get() && stamp < self.until.get()
    }

    /// Counts a delivery of a message stamped `stamp` if it belongs to the window.
    pub fn delivered(&self, stamp: u64) {
        if self.in_window(stamp) {
            self.received.set(self.received.get() + 1);
            let micros = (now_ns().saturating_sub(stamp) / 1_000).max(1);
            self.hist.borrow_mut().saturating_record(micros);
        }
    }

    pub fn latency(&self, micros: u64) {
        self.hist.borrow_mut().saturating_record(micros.max(1));
    }

    pub fn count_sent(&self, stamp: u64) {
        if self.in_window(stamp) {
            self.sent.set(self.sent.get() + 1);
        }
    }

    pub fn error(&self, what: &str) {
        self.errors.set(self.errors.get() + 1);
        let mut first = self.first_errors.borrow_mut();
        if first.len() < 5 && !first.iter().any(|e| e == what) {
            first.push(what.to_owned());
        }
    }

    pub fn first_errors(&self) -> Vec<String> {
        self.first_errors.borrow().clone()
    }

    /// `{"p50":…,"p90":…,"p99":…,"p999":…,"max":…,"mean":…}` in milliseconds.
    pub fn latency_ms(&self) -> Value {
        let h = self.hist.borrow();
        let ms = |micros: u64| (micros as f64 / 1000.0 * 1000.0).round() / 1000.0;
        if h.is_empty() {
            return Value::Null;
        }
        json!({
            "p50": ms(h.value_at_quantile(0.50)),
            "p90": ms(h.value_at_quantile(0.90)),
            "p99": ms(h.value_at_quantile(0.99)),
            "p999": ms(h.value_at_quantile(0.999)),
            "max": ms(h.max()),
            "mean": (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
        })
    }
}

/// CPU seconds (user + system) this process has used.
pub fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds (user + system, all threads) process `pid` has used, from `/proc/PID/stat`;
/// `None` if it cannot be read (no such process, not Linux).
pub fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces, hence the last ')'): state is
    // field 3, utime 14 and stime 15.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some((utime + stime) as f64 / tck.max(1) as f64)
}

/// A process's resident memory (`VmRSS` of `/proc/PID/status`), in KiB.
pub fn proc_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Rounds to `places` decimals for the report.
pub fn round(value: f64, places: i32) -> f64 {
    let factor = 10f64.powi(places);
    (value * factor).round() / factor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_from_proc() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let own = proc_cpu_secs(std::process::id()).expect("/proc/self/stat");
        assert!(
            own >= 0.0 && own <= cpu_secs() + 0.05,
            "{own} vs {}",
            cpu_secs()
        );
        assert_eq!(proc_cpu_secs(u32::MAX), None);
        assert!(proc_rss_kb(std::process::id()).is_some_and(|kb| kb > 0));
        assert_eq!(proc_rss_kb(u32::MAX), None);
    }
}
