//! One endpoint's queue of webhooks: a line per room, of which only the head is ever in
//! flight or waiting for its retry, so a room's events are accepted by the endpoint in the
//! order they happened (each one's first 2xx comes after the previous one's), while rooms
//! never wait for each other. Bounded: past its capacity, the oldest event of any room is
//! dropped. Pure bookkeeping, no I/O: the sender (`deliver`) takes jobs and reports back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::body::Hook;

/// An event to attempt now: the head of its room's line.
#[derive(Debug, Clone)]
pub struct Job {
    pub room: Arc<str>,
    pub seq: u64,
    pub hook: Arc<Hook>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// How an attempt ended, as the sender decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// A 2xx: the event is done.
    Delivered,
    /// To be attempted again at this time; the room's later events wait.
    RetryAt(Instant),
    /// Out of attempts: the event is dropped, the room's next one may go.
    GaveUp,
}

#[derive(Debug)]
struct Queued {
    seq: u64,
    hook: Arc<Hook>,
    attempts: u32,
}

/// One room's events, oldest first.
#[derive(Debug, Default)]
struct Line {
    events: VecDeque<Queued>,
    /// Its head is being attempted (at most one per room at a time).
    busy: bool,
    /// Its head waits for a retry until then.
    retry_at: Option<Instant>,
}

impl Line {
    fn can_start(&self) -> bool {
        !self.busy && self.retry_at.is_none() && !self.events.is_empty()
    }
}

#[derive(Debug)]
pub struct Queue {
    rooms: HashMap<Arc<str>, Line>,
    /// Every queued event's `(seq, room)` in arrival order, for dropping the oldest; entries
    /// of events gone meanwhile are skipped (and compacted away now and then).
    arrivals: VecDeque<(u64, Arc<str>)>,
    /// Rooms whose head may start now (possibly stale or repeated: checked when taken).
    ready: VecDeque<Arc<str>>,
    /// Rooms whose head waits for a retry, by time (stale entries skipped).
    retries: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
    next_seq: u64,
    len: usize,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            arrivals: VecDeque::new(),
            ready: VecDeque::new(),
            retries: BinaryHeap::new(),
            next_seq: 0,
            len: 0,
            capacity: capacity.max(1),
        }
    }

    /// Events waiting (the ones in flight included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Nothing waits and nothing is in flight.
    pub fn is_idle(&self) -> bool {
        self.len == 0 && self.rooms.values().all(|line| !line.busy)
    }

    /// Queues `hook` behind its room's earlier events; how many old events it pushed out.
    pub fn push(&mut self, hook: Arc<Hook>) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        let room = hook.room.clone();
        let line = self.rooms.entry(room.clone()).or_default();
        line.events.push_back(Queued {
            seq,
            hook,
            attempts: 0,
        });
        if line.events.len() == 1 && line.can_start() {
            self.ready.push_back(room.clone());
        }
        self.arrivals.push_back((seq, room));
        self.len += 1;
        let mut dropped = 0;
        while self.len > self.capacity && self.drop_oldest() {
            dropped += 1;
        }
        self.compact_arrivals();
        dropped
    }

    /// The next event to attempt at `now`, if a room's head may go; marks its room busy.
    pub fn next_job(&mut self, now: Instant) -> Option<Job> {
        while let Some(Reverse((at, _))) = self.retries.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, room))) = self.retries.pop() else {
                break;
            };
            if let Some(line) = self.rooms.get_mut(&room)
                && line.retry_at == Some(at)
            {
                line.retry_at = None;
                self.ready.push_back(room);
            }
        }
        while let Some(room) = self.ready.pop_front() {
            let Some(line) = self.rooms.get_mut(&room) else {
                continue;
            };
            if !line.can_start() {
                continue;
            }
            let Some(head) = line.events.front_mut() else {
                continue;
            };
            head.attempts += 1;
            line.busy = true;
            return Some(Job {
                seq: head.seq,
                hook: head.hook.clone(),
                attempt: head.attempts,
                room,
            });
        }
        None
    }

    /// When the earliest waiting retry is due.
    pub fn next_retry(&self) -> Option<Instant> {
        self.retries.peek().map(|Reverse((at, _))| *at)
    }

    /// Records how `job` ended; whether its event left the queue (delivered or given up).
    pub fn finish(&mut self, job: &Job, finished: Finished) -> bool {
        let Some(line) = self.rooms.get_mut(&job.room) else {
            return false;
        };
        line.busy = false;
        // The head may have been dropped (queue full) while it was in flight.
        let still_head = line.events.front().is_some_and(|q| q.seq == job.seq);
        let mut removed = false;
        if still_head {
            match finished {
                Finished::Delivered | Finished::GaveUp => {
                    line.events.pop_front();
                    self.len -= 1;
                    removed = true;
                }
                Finished::RetryAt(at) => {
                    line.retry_at = Some(at);
                    self.retries.push(Reverse((at, job.room.clone())));
                }
            }
        }
        if line.events.is_empty() {
            self.rooms.remove(&job.room);
        } else if line.can_start() {
            self.ready.push_back(job.room.clone());
        }
        removed
    }

    /// Drops the oldest queued event; `false` if there is none.
    fn drop_oldest(&mut self) -> bool {
        while let Some((seq, room)) = self.arrivals.pop_front() {
            let Some(line) = self.rooms.get_mut(&room) else {
                continue;
            };
            // Lines lose events only at their head, so the oldest live event is a head.
            if line.events.front().map(|q| q.seq) != Some(seq) {
                continue;
            }
            line.events.pop_front();
            self.len -= 1;
            // The next event need not wait for the dropped one's retry.
            line.retry_at = None;
            if line.events.is_empty() && !line.busy {
                self.rooms.remove(&room);
            } else if line.can_start() {
                self.ready.push_back(room);
            }
            return true;
        }
        false
    }

    /// Forgets the arrival entries of events gone, once they outnumber the live ones.
    fn compact_arrivals(&mut self) {
        if self.arrivals.len() <= 2 * self.len + 64 {
            return;
        }
        let rooms = &self.rooms;
        self.arrivals.retain(|(seq, room)| {
            rooms
                .get(room)
                .and_then(|line| line.events.front())
                .is_some_and(|head| head.seq <= *seq)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hook(room: &str, n: u32) -> Arc<Hook> {
        Arc::new(Hook {
            id: format!("{room}-{n}"),
            room: room.into(),
            kind: "participant.joined",
            body: Vec::new(),
        })
    }

    fn ids(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.hook.id.as_str()).collect()
    }

    /// Takes every job that may start now.
    fn take_all(q: &mut Queue, now: Instant) -> Vec<Job> {
        std::iter::from_fn(|| q.next_job(now)).collect()
    }

    #[test]
    fn one_event_per_room_in_flight_rooms_in_parallel() {
        let mut q = Queue::new(100);
        let now = Instant::now();
        for (room, n) in [("a", 1), ("a", 2), ("b", 1), ("a", 3)] {
            q.push(hook(room, n));
        }
        let jobs = take_all(&mut q, now);
        assert_eq!(ids(&jobs), ["a-1", "b-1"]);
        assert!(q.finish(&jobs[0], Finished::Delivered));
        let next = take_all(&mut q, now);
        assert_eq!(ids(&next), ["a-2"]);
        assert!(q.finish(&jobs[1], Finished::Delivered));
        assert!(q.finish(&next[0], Finished::Delivered));
        let last = take_all(&mut q, now);
        assert_eq!(ids(&last), ["a-3"]);
        q.finish(&last[0], Finished::Delivered);
        assert!(q.is_idle() && q.rooms.is_empty());
    }

    #[test]
    fn a_failing_head_holds_its_room_until_its_retry_and_keeps_its_id() {
        let mut q = Queue::new(100);
        let now = Instant::now();
        q.push(hook("a", 1));
        q.push(hook("a", 2));
        q.push(hook("b", 1));
        let first = take_all(&mut q, now);
        assert_eq!(ids(&first), ["a-1", "b-1"]);
        let later = now + Duration::from_secs(1);
        assert!(!q.finish(&first[0], Finished::RetryAt(later)));
        assert!(take_all(&mut q, now).is_empty(), "a-2 waits behind a-1");
        assert_eq!(q.next_retry(), Some(later));
        let retry = take_all(&mut q, later);
        assert_eq!(ids(&retry), ["a-1"]);
        assert_eq!(retry[0].attempt, 2);
        assert!(q.finish(&retry[0], Finished::GaveUp));
        assert_eq!(ids(&take_all(&mut q, later)), ["a-2"]);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_event_of_any_room() {
        let mut q = Queue::new(3);
        let now = Instant::now();
        q.push(hook("a", 1));
        q.push(hook("b", 1));
        q.push(hook("a", 2));
        let busy = q.next_job(now).unwrap();
        assert_eq!(busy.hook.id, "a-1");
        assert_eq!(q.push(hook("c", 1)), 1, "a-1 (in flight) goes");
        assert_eq!(q.len(), 3);
        // The attempt of the dropped event ends; its room's next one was kept waiting.
        assert!(!q.finish(&busy, Finished::Delivered));
        assert_eq!(ids(&take_all(&mut q, now)), ["b-1", "c-1", "a-2"]);
        assert_eq!(q.push(hook("d", 1)), 1, "b-1 goes");
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn arrivals_stay_bounded_while_one_room_is_stuck() {
        let mut q = Queue::new(10_000);
        let now = Instant::now();
        q.push(hook("stuck", 0));
        let stuck = q.next_job(now).unwrap();
        for n in 0..10_000 {
            q.push(hook("busy", n));
            let job = q.next_job(now).unwrap();
            q.finish(&job, Finished::Delivered);
        }
        assert_eq!(q.len(), 1);
        assert!(q.arrivals.len() < 100, "{}", q.arrivals.len());
        q.finish(&stuck, Finished::Delivered);
        assert!(q.is_idle());
    }
}
