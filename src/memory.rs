//! Gives memory back to the system after bursts of connections. glibc's allocator keeps
//! what a burst freed (handshake buffers, the sessions of clients that left) in its arenas,
//! between chunks still in use, so after 3,000 clients came and went at once the RSS stayed
//! ~57 MB above where it started (issue 19). `malloc_trim(0)` returns those free pages; it is
//! called once at least [`TRIM_AFTER_CHANGES`] connections have opened or closed since the
//! last trim and then a whole tick went by without any (the burst is over), so a steady load
//! never pays for it.

use std::time::Duration;

use crate::state::AppState;

/// How often the connection counters are looked at.
const TICK: Duration = Duration::from_secs(1);

/// Connections opened or closed since the last trim that make a burst worth trimming after.
const TRIM_AFTER_CHANGES: u64 = 256;

pub async fn run(state: AppState) {
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
