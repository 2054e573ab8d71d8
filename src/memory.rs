//! Gives memory back to the system after bursts of connections. glibc's allocator keeps
//! what a burst freed (handshake buffers, the sessions of clients that left) in its arenas,
//! between chunks still in use, so after 3,000 clients came and went at once the RSS stayed
//! ~57 MB above where it started (issue 19). `malloc_trim(0)` returns those free pages; it is
//! called once at least [`TRIM_AFTER_CHANGES`] connections have opened or closed since the
//! last trim and then a whole tick went by without any (the burst is over), so a steady load
//! never pays for it.
//!
//! It also turns glibc's fastbins off (`M_MXFAST` 0) at startup. With them on, every request
//! of a kilobyte or more first merges all the small chunks freed since into the free lists
//! (`malloc_consolidate`); a cluster instance makes such requests for every batch it sends
//! to or reads from Redis, between thousands of small frees, and `perf` showed glibc's slow
//! paths (`_int_malloc`, `unlink_chunk`, `malloc_consolidate`) at 15 % of its CPU. Without
//! fastbins small chunks still come from the per-thread cache (tcache), and the instances took
//! 13 % fewer samples at 11,000 chat messages/s; memory mode's, idle memory and storms did not
//! move (see `docs/PERFORMANCE.md`).

use std::time::Duration;

use crate::state::AppState;

/// How often the connection counters are looked at.
const TICK: Duration = Duration::from_secs(1);

/// Connections opened or closed since the last trim that make a burst worth trimming after.
const TRIM_AFTER_CHANGES: u64 = 256;

pub async fn run(state: AppState) {
    tune_allocator();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut at_last_trim = state.connection_changes();
    let mut previous = at_last_trim;
    loop {
        tick.tick().await;
        let now = state.connection_changes();
        if now == previous && now - at_last_trim >= TRIM_AFTER_CHANGES {
            let started = std::time::Instant::now();
            trim();
            tracing::debug!(
                connections = state.connections(),
                changes = now - at_last_trim,
                took_ms = started.elapsed().as_millis() as u64,
                "returned free heap memory to the system"
            );
            at_last_trim = now;
        }
        previous = now;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    unsafe extern "C" {
        /// glibc: releases free memory at the top of the heap and free whole pages inside
        /// it; returns 1 if any memory was released.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim takes no pointer and only touches the allocator's own state, under
    // its locks; any thread may call it at any time.
    unsafe {
        malloc_trim(0);
    }
}

/// Other allocators (musl, macOS) have no `malloc_trim`; nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    /// glibc's `mallopt` parameter for the largest request served from a fastbin.
    const M_MXFAST: std::ffi::c_int = 1;
    unsafe extern "C" {
        /// glibc: sets one of the allocator's parameters; returns 1 on success.
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    // SAFETY: mallopt takes no pointer; glibc consolidates the fastbins it empties under its
    // own locks, so it may be called while other threads allocate.
    if unsafe { mallopt(M_MXFAST, 0) } != 1 {
        tracing::debug!("glibc refused M_MXFAST 0; fastbins stay on");
    }
}

/// Other allocators have no fastbins to turn off.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
