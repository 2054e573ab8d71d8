//! `loadgen`: the ProLiteMeet benchmark's load generator. It speaks Engine.IO v4 /
//! Socket.IO v5 over WebSocket itself, with the original field names only, so it drives the
//! Rust server and the Node original alike. One single-threaded runtime runs every client;
//! one timer paces open-loop sends; the packets that carry load are built from templates
//! made once, with only the send timestamp written in per message.
//!
//! Each scenario prints one JSON line on stdout; diagnostics go to stderr.

mod args;
mod eio;
mod poll;
mod stats;

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::{JoinHandle, spawn_local};

use args::{Args, Target};
use eio::{Conn, Frame, event_name, stamp};
use stats::{Stats, cpu_secs, now_ns, proc_cpu_secs, proc_rss_kb, round};

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("loadgen: {e}");
            }
            eprint!("{}", args::USAGE);
            std::process::exit(2);
        }
    };
    now_ns();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(&args)) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("loadgen: {e}");
            eprint!("{}", args::USAGE);
            std::process::exit(2);
        }
    }
}

/// Options every scenario shares.
#[derive(Clone)]
struct Common {
    target: Rc<Target>,
    /// Connections opened to each of `target.servers` (Engine.IO and Socket.IO connected).
    connected_to: Rc<[Cell<u64>]>,
    concurrency: usize,
    warmup: Duration,
    drain: Duration,
    timeout: Duration,
    /// Processes whose CPU use over the measured window is reported (`--watch-pids`).
    watch: Rc<[u32]>,
}

fn secs(args: &Args, key: &str, default: f64) -> Result<Duration, String> {
    let value: f64 = args.get(key, default)?;
    Duration::try_from_secs_f64(value).map_err(|_| format!("--{key}: not a duration"))
}

fn watch_pids(args: &Args) -> Result<Rc<[u32]>, String> {
    let Some(list) = args.text("watch-pids") else {
        return Ok(Rc::new([]));
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .map_err(|_| format!("--watch-pids: {s:?} is not a process id"))
        })
        .collect()
}

async fn run(args: &Args) -> Result<Value, String> {
    args.check_known()?;
    let target = Target::from_args(args)?;
    let common = Common {
        connected_to: (0..target.servers.len()).map(|_| Cell::new(0)).collect(),
        target: Rc::new(target),
        concurrency: args.get("concurrency", 256usize)?.max(1),
        warmup: secs(args, "warmup", 2.0)?,
        drain: secs(args, "drain", 2.0)?,
        timeout: secs(args, "connect-timeout", 20.0)?,
        watch: watch_pids(args)?,
    };
    let mut report = match args.scenario.as_str() {
        "idle" => {
            idle(
                &common,
                args.require("clients")?,
                args.get("room-size", 5usize)?.max(1),
                secs(args, "hold", 5.0)?,
                args.text("ready-file"),
                transport(args)?,
            )
            .await
        }
        "fanout" => {
            fanout(
                &common,
                args.require("rooms")?,
                args.require("size")?,
                args.require("rate")?,
                secs(args, "duration", 10.0)?,
                args.get("pad", 16usize)?,
            )
            .await
        }
        "relay" => {
            let pairs = args.require("pairs")?;
            let duration = secs(args, "duration", 10.0)?;
            let pad = args.get("pad", 200usize)?;
            if args.flag("closed-loop") {
                relay_closed(
                    &common,
                    pairs,
                    args.get("inflight", 1usize)?.max(1),
                    duration,
                    pad,
                )
                .await
            } else {
                relay_open(&common, pairs, args.require("rate")?, duration, pad).await
            }
        }
        "storm" => {
            storm(
                &common,
                args.require("clients")?,
                args.get("storms", 5usize)?.max(1),
                args.get("room-size", 5usize)?.max(1),
                secs(args, "settle", 10.0)?,
            )
            .await
        }
        "churn" => {
            churn(
                &common,
                args.require("clients")?,
                args.require("cycles")?,
                args.get("room-size", 5usize)?.max(1),
            )
            .await
        }
        other => return Err(format!("unknown scenario {other:?}")),
    }?;
    if let Value::Object(map) = &mut report {
        let targets: Vec<&str> = common
            .target
            .servers
            .iter()
            .map(|s| s.authority.as_str())
            .collect();
        map.insert("url".into(), json!(targets.join(",")));
        map.insert("targets".into(), json!(targets));
        let per_target: Vec<u64> = common.connected_to.iter().map(Cell::get).collect();
        map.insert("connections_per_target".into(), json!(per_target));
        map.insert(
            "source_ips".into(),
            json!(common.target.source_ips.len().max(1)),
        );
    }
    Ok(report)
}

impl Common {
    /// Opens client `index`'s connection to `server`, and counts it.
    async fn connect(&self, server: usize, index: usize) -> eio::Result<Conn> {
        let conn = eio::connect(&self.target, server, index, self.timeout).await?;
        let count = &self.connected_to[server];
        count.set(count.get() + 1);
        Ok(conn)
    }
}

/// Opens and joins `n` clients (client `i` joins room `room(i)` as `u<i>`), at most
/// `concurrency` at a time. Clients `g*k .. g*k+g` (g = `group_size`) share a room; with
/// several servers they are spread over them ([`Target::server_of`]). Failed clients are
/// `None`, and counted in `stats`.
async fn connect_all(
    common: &Common,
    n: usize,
    group_size: usize,
    room: impl Fn(usize) -> String,
    stats: &Rc<Stats>,
) -> Vec<Option<Conn>> {
    let slots: Rc<RefCell<Vec<Option<Conn>>>> =
        Rc::new(RefCell::new((0..n).map(|_| None).collect()));
    let gate = Arc::new(Semaphore::new(common.concurrency));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let gate = gate.clone();
        let common = common.clone();
        let server = common.target.server_of(i, group_size);
        let room = room(i);
        let slots = slots.clone();
        let stats = stats.clone();
        tasks.push(spawn_local(async move {
            let _permit = gate.acquire_owned().await;
            let result = async {
                let mut conn = common.connect(server, i).await?;
                conn.join(&room, &format!("u{i}"), common.timeout).await?;
                Ok::<_, eio::Error>(conn)
            }
            .await;
            match result {
                Ok(conn) => slots.borrow_mut()[i] = Some(conn),
                Err(e) => stats.error(&e.0),
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Rc::try_unwrap(slots)
        .map(RefCell::into_inner)
        .unwrap_or_default()
}

fn errors_json(stats: &Stats) -> Value {
    json!(stats.first_errors())
}

// ---- idle -----------------------------------------------------------------------------

/// How the idle scenario's clients talk to the server (`--transport`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// A WebSocket from the start (`transports: ['websocket']`).
    Websocket,
    /// HTTP long-polling only, never upgraded (`transports: ['polling']`).
    Polling,
}

fn transport(args: &Args) -> Result<Transport, String> {
    match args.text("transport").unwrap_or("websocket") {
        "websocket" => Ok(Transport::Websocket),
        "polling" => Ok(Transport::Polling),
        other => Err(format!(
            "--transport: {other:?} is not websocket or polling"
        )),
    }
}

async fn idle(
    common: &Common,
    clients: usize,
    room_size: usize,
    hold: Duration,
    ready_file: Option<&str>,
    transport: Transport,
) -> Result<Value, String> {
    let stats = Rc::new(Stats::new());
    let connected = Rc::new(Cell::new(0usize));
    let joined = Rc::new(Cell::new(0usize));
    let dropped = Rc::new(Cell::new(0usize));
    let done = Rc::new(Cell::new(0usize));
    let all_done = Rc::new(tokio::sync::Notify::new());
    let gate = Arc::new(Semaphore::new(common.concurrency));
    let started = now_ns();
    let mut tasks: Vec<JoinHandle<()>> = Vec::with_capacity(clients);
    for i in 0..clients {
        let (gate, stats, connected, joined, dropped, done, all_done) = (
            gate.clone(),
            stats.clone(),
            connected.clone(),
            joined.clone(),
            dropped.clone(),
            done.clone(),
            all_done.clone(),
        );
        let common = common.clone();
        let timeout = common.timeout;
        let server = common.target.server_of(i, room_size);
        tasks.push(spawn_local(async move {
            let permit = gate.acquire_owned().await;
            let settle = || {
                done.set(done.get() + 1);
                if done.get() == clients {
                    all_done.notify_one();
                }
            };
            let room = format!("idle{}", i / room_size);
            let user = format!("u{i}");
            if transport == Transport::Polling {
                let target = &common.target;
                match poll::connect_and_join(target, server, i, &room, &user, timeout).await {
                    Ok(conn) => {
                        connected.set(connected.get() + 1);
                        let count = &common.connected_to[server];
                        count.set(count.get() + 1);
                        joined.set(joined.get() + 1);
                        drop(permit);
                        settle();
                        // Held: long-polls, answering pings.
                        let e = conn.hold().await;
                        dropped.set(dropped.get() + 1);
                        stats.error(&e.0);
                    }
                    Err(e) => {
                        stats.error(&e.0);
                        settle();
                    }
                }
                return;
            }
            let mut conn = match common.connect(server, i).await {
                Ok(conn) => conn,
                Err(e) => {
                    stats.error(&e.0);
                    settle();
                    return;
                }
            };
            connected.set(connected.get() + 1);
            if let Err(e) = conn.join(&room, &user, timeout).await {
                stats.error(&e.0);
                settle();
                return;
            }
            joined.set(joined.get() + 1);
            drop(permit);
            settle();
            // Held: answer pings, drop whatever else comes.
            loop {
                if let Err(e) = conn.next().await {
                    dropped.set(dropped.get() + 1);
                    stats.error(&e.0);
                    return;
                }
            }
        }));
    }
    if clients > 0 {
        all_done.notified().await;
    }
    let setup = (now_ns() - started) as f64 / 1e9;
    eprintln!(
        "loadgen idle: {} connected, {} joined in {setup:.2}s; holding {:?}",
        connected.get(),
        joined.get(),
        hold
    );
    if let Some(path) = ready_file {
        std::fs::write(path, format!("{}\n", joined.get()))
            .map_err(|e| format!("--ready-file {path}: {e}"))?;
    }
    tokio::time::sleep(hold).await;
    let held = joined.get() - dropped.get();
    for task in &tasks {
        task.abort();
    }
    Ok(json!({
        "scenario": "idle",
        "transport": match transport {
            Transport::Websocket => "websocket",
            Transport::Polling => "polling",
        },
        "clients": clients,
        "room_size": room_size,
        "connected": connected.get(),
        "joined": joined.get(),
        "held": held,
        "errors": stats.errors.get(),
        "first_errors": errors_json(&stats),
        "setup_secs": round(setup, 3),
        "joins_per_sec": round(joined.get() as f64 / setup.max(1e-9), 1),
        "hold_secs": hold.as_secs_f64(),
    }))
}

// ---- storm ----------------------------------------------------------------------------

/// `storms` times: `clients` clients connect and join (rooms of `room_size`) as fast as the
/// server takes them, then all leave and disconnect at once; `settle` later the watched
/// server's RSS is read again. Reports, per storm, the RSS before it, with every client
/// joined, and `settle` after it (`--watch-pids`: the first pid is the server).
async fn storm(
    common: &Common,
    clients: usize,
    storms: usize,
    room_size: usize,
    settle: Duration,
) -> Result<Value, String> {
    let pid = *common
        .watch
        .first()
        .ok_or("storm needs --watch-pids SERVER_PID (its RSS is what is measured)")?;
    let rss = || proc_rss_kb(pid).unwrap_or(0);
    let stats = Rc::new(Stats::new());
    let mut before = Vec::with_capacity(storms);
    let mut joined_rss = Vec::with_capacity(storms);
    let mut after = Vec::with_capacity(storms);
    let mut joined_counts = Vec::with_capacity(storms);
    let mut storm_secs = Vec::with_capacity(storms);
    for s in 0..storms {
        before.push(rss());
        let started = now_ns();
        let conns = connect_all(
            common,
            clients,
            room_size,
            |i| format!("storm{s}-{}", i / room_size),
            &stats,
        )
        .await;
        joined_rss.push(rss());
        joined_counts.push(conns.iter().flatten().count());
        // Everyone leaves at once.
        let leaving: Vec<JoinHandle<()>> = conns
            .into_iter()
            .enumerate()
            .filter_map(|(i, conn)| conn.map(|c| (format!("storm{s}-{}", i / room_size), c)))
            .map(|(room, mut conn)| {
                spawn_local(async move {
                    let _ = conn
                        .send(format!(r#"42["leave-room",{{"roomId":"{room}"}}]"#))
                        .await;
                    conn.close().await;
                })
            })
            .collect();
        for task in leaving {
            let _ = task.await;
        }
        storm_secs.push(round((now_ns() - started) as f64 / 1e9, 3));
        tokio::time::sleep(settle).await;
        after.push(rss());
    }
    let start = before.first().copied().unwrap_or(0);
    let above_mb: Vec<f64> = after
        .iter()
        .map(|&kb| round((kb as f64 - start as f64) / 1024.0, 1))
        .collect();
    Ok(json!({
        "scenario": "storm",
        "clients": clients,
        "storms": storms,
        "room_size": room_size,
        "settle_secs": settle.as_secs_f64(),
        "joined": joined_counts,
        "errors": stats.errors.get(),
        "first_errors": errors_json(&stats),
        "storm_secs": storm_secs,
        "rss_before_kb": before,
        "rss_joined_kb": joined_rss,
        "rss_after_kb": after,
        "after_above_start_mb": above_mb,
        "max_after_above_start_mb": above_mb.iter().copied().fold(0.0, f64::max),
    }))
}

// ---- the paced scenarios (fanout, open-loop relay) -------------------------------------

/// What a client sends when the timer gives it a turn: `prefix`, the timestamp, `suffix`.
struct Template {
    prefix: String,
    suffix: String,
}

impl Template {
    fn build(&self, stamp: u64) -> String {
        let mut packet = String::with_capacity(self.prefix.len() + 20 + self.suffix.len());
        packet.push_str(&self.prefix);
        let _ = write!(packet, "{stamp}");
        packet.push_str(&self.suffix);
        packet
    }
}

/// How a client reacts to events while the load runs.
enum Role {
    /// Counts `event` deliveries against their stamps; sends `template` when told.
    Receiver {
        event: &'static str,
        template: Option<Template>,
    },
    /// Closed-loop relay, side A: an answer closes a round trip and starts the next offer.
    Offerer { template: Template },
    /// Closed-loop relay, side B: answers each offer, echoing its stamp.
    Answerer { template: Template },
}

/// Runs one client until its command channel closes or the connection fails.
async fn drive(mut conn: Conn, mut rx: UnboundedReceiver<u64>, role: Role, stats: Rc<Stats>) {
    loop {
        tokio::select! {
            frame = conn.next() => {
                let text = match frame {
                    Ok(Frame::Event(text)) => text,
                    Ok(Frame::Other) => continue,
                    Err(e) => {
                        stats.error(&e.0);
                        return;
                    }
                };
                let reply = match &role {
                    Role::Receiver { event, .. } => {
                        if event_name(&text) == *event
                            && let Some(stamp) = stamp(&text)
                        {
                            stats.delivered(stamp);
                        }
                        None
                    }
                    Role::Offerer { template } => {
                        match (event_name(&text), stamp(&text)) {
                            ("webrtc-answer", Some(stamp)) => {
                                let now = now_ns();
                                if stats.in_window(stamp) {
                                    stats.received.set(stats.received.get() + 1);
                                    stats.latency((now - stamp) / 1_000);
                                }
                                (now < stats.until.get()).then(|| template.build(now))
                            }
                            _ => None,
                        }
                    }
                    Role::Answerer { template } => match (event_name(&text), stamp(&text)) {
                        ("webrtc-offer", Some(stamp)) => Some(template.build(stamp)),
                        _ => None,
                    },
                };
                if let Some(packet) = reply
                    && let Err(e) = conn.send(packet).await
                {
                    stats.error(&e.0);
                    return;
                }
            }
            turn = rx.recv() => {
                let Some(stamp) = turn else { return };
                let template = match &role {
                    Role::Receiver { template: Some(t), .. } | Role::Offerer { template: t } => t,
                    _ => continue,
                };
                if let Err(e) = conn.send(template.build(stamp)).await {
                    stats.error(&e.0);
                    return;
                }
            }
        }
    }
}

/// The one shared send timer: every millisecond, hands out as many send turns as the rate
/// says are due, round robin over `senders`, each stamped with the current time. Stops
/// after `warmup + duration`; only turns of the last `duration` count.
async fn pace(
    senders: &[UnboundedSender<u64>],
    rate: f64,
    common: &Common,
    duration: Duration,
    stats: &Stats,
) -> PaceReport {
    let t0 = now_ns();
    let from = t0 + common.warmup.as_nanos() as u64;
    let until = from + duration.as_nanos() as u64;
    stats.from.set(from);
    stats.until.set(until);
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut issued: u64 = 0;
    let mut next = 0usize;
    let mut last = t0;
    let mut max_gap: u64 = 0;
    let mut cpu_from = None;
    let mut watched_from: Vec<Option<f64>> = Vec::new();
    loop {
        interval.tick().await;
        let now = now_ns();
        if cpu_from.is_none() && now >= from {
            cpu_from = Some(cpu_secs());
            watched_from = common.watch.iter().map(|&pid| proc_cpu_secs(pid)).collect();
        }
        max_gap = max_gap.max(now - last);
        last = now;
        if now >= until {
            break;
        }
        let due = ((now - t0) as f64 * rate / 1e9) as u64;
        while issued < due {
            if senders[next].send(now).is_ok() {
                stats.count_sent(now);
            }
            next = (next + 1) % senders.len();
            issued += 1;
        }
    }
    let cpu = cpu_secs() - cpu_from.unwrap_or_else(cpu_secs);
    let window = duration.as_secs_f64().max(1e-9);
    let watched_cpu = common
        .watch
        .iter()
        .zip(watched_from.iter().chain(std::iter::repeat(&None)))
        .map(|(&pid, from)| match (from, proc_cpu_secs(pid)) {
            (Some(from), Some(to)) => Some(round((to - from) / window, 3)),
            _ => None,
        })
        .collect();
    PaceReport {
        timer_max_gap_ms: max_gap as f64 / 1e6,
        loadgen_cpu: cpu / window,
        watched_cpu,
    }
}

struct PaceReport {
    timer_max_gap_ms: f64,
    loadgen_cpu: f64,
    /// CPU of each `--watch-pids` process over the measured window, in cores (`None`: the
    /// process was gone).
    watched_cpu: Vec<Option<f64>>,
}

/// After sending stops: waits until `expected` deliveries arrived or `drain` passed.
async fn drain(stats: &Stats, expected: u64, drain: Duration) {
    let deadline = tokio::time::Instant::now() + drain;
    while stats.received.get() < expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn loss(expected: u64, received: u64) -> f64 {
    if expected == 0 {
        0.0
    } else {
        round(
            (expected.saturating_sub(received)) as f64 / expected as f64,
            6,
        )
    }
}

fn pad_text(pad: usize) -> String {
    "x".repeat(pad)
}

// ---- fanout ---------------------------------------------------------------------------

async fn fanout(
    common: &Common,
    rooms: usize,
    size: usize,
    rate: f64,
    duration: Duration,
    pad: usize,
) -> Result<Value, String> {
    if rooms == 0 || size == 0 || rate <= 0.0 {
        return Err("fanout needs --rooms, --size and --rate above 0".into());
    }
    let stats = Rc::new(Stats::new());
    let n = rooms * size;
    let started = now_ns();
    let conns = connect_all(common, n, size, |i| format!("fan{}", i / size), &stats).await;
    let setup = (now_ns() - started) as f64 / 1e9;
    let pad = pad_text(pad);
    // Interleave rooms in the send order so consecutive messages go to different rooms.
    let mut senders = Vec::with_capacity(n);
    let mut slots: Vec<Option<UnboundedSender<u64>>> = (0..n).map(|_| None).collect();
    for (i, conn) in conns.into_iter().enumerate() {
        let Some(conn) = conn else { continue };
        let (tx, rx) = unbounded_channel();
        slots[i] = Some(tx);
        let room = format!("fan{}", i / size);
        let template = Template {
            prefix: format!(r#"42["send-message",{{"roomId":"{room}","message":"bench {pad} ~T"#),
            suffix: " end\"}]".to_owned(),
        };
        spawn_local(drive(
            conn,
            rx,
            Role::Receiver {
                event: "new-message",
                template: Some(template),
            },
            stats.clone(),
        ));
    }
    for member in 0..size {
        for room in 0..rooms {
            if let Some(tx) = slots[room * size + member].take() {
                senders.push(tx);
            }
        }
    }
    if senders.is_empty() {
        return Err(format!("no client connected: {:?}", stats.first_errors()));
    }
    let connect_errors = stats.errors.get();
    let pace = pace(&senders, rate, common, duration, &stats).await;
    let sent = stats.sent.get();
    let expected = sent * size as u64;
    drain(&stats, expected, common.drain).await;
    let received = stats.received.get();
    drop(senders);
    Ok(json!({
        "scenario": "fanout",
        "rooms": rooms,
        "size": size,
        "clients": n,
        "rate": rate,
        "duration_secs": duration.as_secs_f64(),
        "sent": sent,
        "expected_deliveries": expected,
        "deliveries": received,
        "deliveries_per_sec": round(received as f64 / duration.as_secs_f64(), 1),
        "offered_deliveries_per_sec": round(rate * size as f64, 1),
        "loss": loss(expected, received),
        "latency_ms": stats.latency_ms(),
        "connect_errors": connect_errors,
        "errors": stats.errors.get(),
        "first_errors": errors_json(&stats),
        "setup_secs": round(setup, 3),
        "timer_max_gap_ms": round(pace.timer_max_gap_ms, 3),
        "loadgen_cpu": round(pace.loadgen_cpu, 3),
        "watched_cpu": pace.watched_cpu,
        "pad": pad.len(),
    }))
}

// ---- relay ----------------------------------------------------------------------------

/// Connects pairs: client `2p` (A) and `2p+1` (B) share room `pair<p>`. Returns the pairs
/// where both sides connected.
async fn connect_pairs(common: &Common, pairs: usize, stats: &Rc<Stats>) -> Vec<(Conn, Conn)> {
    let conns = connect_all(common, pairs * 2, 2, |i| format!("pair{}", i / 2), stats).await;
    let mut out = Vec::with_capacity(pairs);
    let mut it = conns.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        if let (Some(a), Some(b)) = (a, b) {
            out.push((a, b));
        }
    }
    out
}

fn offer_template(target: &str, pad: &str) -> Template {
    Template {
        prefix: format!(
            r#"42["webrtc-offer",{{"targetId":"{target}","offer":{{"type":"offer","sdp":"v=0 {pad} ~T"#
        ),
        suffix: " end\"}}]".to_owned(),
    }
}

fn answer_template(target: &str, pad: &str) -> Template {
    Template {
        prefix: format!(
            r#"42["webrtc-answer",{{"targetId":"{target}","answer":{{"type":"answer","sdp":"v=0 {pad} ~T"#
        ),
        suffix: " end\"}}]".to_owned(),
    }
}

async fn relay_open(
    common: &Common,
    pairs: usize,
    rate: f64,
    duration: Duration,
    pad: usize,
) -> Result<Value, String> {
    if pairs == 0 || rate <= 0.0 {
        return Err("relay needs --pairs and --rate above 0".into());
    }
    let stats = Rc::new(Stats::new());
    let started = now_ns();
    let connected = connect_pairs(common, pairs, &stats).await;
    let setup = (now_ns() - started) as f64 / 1e9;
    let pad = pad_text(pad);
    let mut senders = Vec::with_capacity(connected.len());
    // B sides get no send turns, but their channels stay open until the run ends.
    let mut quiet = Vec::with_capacity(connected.len());
    for (a, b) in connected {
        let (tx, rx) = unbounded_channel();
        let (idle_tx, idle_rx) = unbounded_channel();
        quiet.push(idle_tx);
        let template = offer_template(&b.sid, &pad);
        spawn_local(drive(
            a,
            rx,
            Role::Receiver {
                event: "webrtc-answer",
                template: Some(template),
            },
            stats.clone(),
        ));
        spawn_local(drive(
            b,
            idle_rx,
            Role::Receiver {
                event: "webrtc-offer",
                template: None,
            },
            stats.clone(),
        ));
        senders.push(tx);
    }
    if senders.is_empty() {
        return Err(format!("no pair connected: {:?}", stats.first_errors()));
    }
    let connect_errors = stats.errors.get();
    let pace = pace(&senders, rate, common, duration, &stats).await;
    let sent = stats.sent.get();
    drain(&stats, sent, common.drain).await;
    let received = stats.received.get();
    drop(quiet);
    Ok(json!({
        "scenario": "relay",
        "mode": "open-loop",
        "pairs": pairs,
        "pairs_connected": senders.len(),
        "rate": rate,
        "duration_secs": duration.as_secs_f64(),
        "sent": sent,
        "relayed": received,
        "relays_per_sec": round(received as f64 / duration.as_secs_f64(), 1),
        "loss": loss(sent, received),
        "latency_ms": stats.latency_ms(),
        "connect_errors": connect_errors,
        "errors": stats.errors.get(),
        "first_errors": errors_json(&stats),
        "setup_secs": round(setup, 3),
        "timer_max_gap_ms": round(pace.timer_max_gap_ms, 3),
        "loadgen_cpu": round(pace.loadgen_cpu, 3),
        "watched_cpu": pace.watched_cpu,
        "pad": pad.len(),
    }))
}

async fn relay_closed(
    common: &Common,
    pairs: usize,
    inflight: usize,
    duration: Duration,
    pad: usize,
) -> Result<Value, String> {
    if pairs == 0 {
        return Err("relay needs --pairs above 0".into());
    }
    let stats = Rc::new(Stats::new());
    let started = now_ns();
    let connected = connect_pairs(common, pairs, &stats).await;
    let setup = (now_ns() - started) as f64 / 1e9;
    let pad = pad_text(pad);
    let t0 = now_ns();
    let from = t0 + common.warmup.as_nanos() as u64;
    let until = from + duration.as_nanos() as u64;
    stats.from.set(from);
    stats.until.set(until);
    let mut kick = Vec::with_capacity(connected.len());
    let mut quiet = Vec::with_capacity(connected.len());
    for (a, b) in connected {
        let (tx, rx) = unbounded_channel();
        let (idle_tx, idle_rx) = unbounded_channel();
        quiet.push(idle_tx);
        let offer = offer_template(&b.sid, &pad);
        let answer = answer_template(&a.sid, &pad);
        spawn_local(drive(
            a,
            rx,
            Role::Offerer { template: offer },
            stats.clone(),
        ));
        spawn_local(drive(
            b,
            idle_rx,
            Role::Answerer { template: answer },
            stats.clone(),
        ));
        kick.push(tx);
    }
    if kick.is_empty() {
        return Err(format!("no pair connected: {:?}", stats.first_errors()));
    }
    let connect_errors = stats.errors.get();
    for _ in 0..inflight {
        for tx in &kick {
            let _ = tx.send(now_ns());
        }
    }
    tokio::time::sleep_until(tokio::time::Instant::now() + common.warmup).await;
    let cpu_from = cpu_secs();
    tokio::time::sleep(duration).await;
    let cpu = cpu_secs() - cpu_from;
    // Let the round trips in flight at the end finish (they were started in the window).
    drain(
        &stats,
        u64::MAX,
        Duration::from_millis(200).min(common.drain),
    )
    .await;
    let round_trips = stats.received.get();
    drop(quiet);
    Ok(json!({
        "scenario": "relay",
        "mode": "closed-loop",
        "pairs": pairs,
        "pairs_connected": kick.len(),
        "inflight": inflight,
        "duration_secs": duration.as_secs_f64(),
        "round_trips": round_trips,
        "round_trips_per_sec": round(round_trips as f64 / duration.as_secs_f64(), 1),
        "relays_per_sec": round(2.0 * round_trips as f64 / duration.as_secs_f64(), 1),
        "rtt_ms": stats.latency_ms(),
        "connect_errors": connect_errors,
        "errors": stats.errors.get(),
        "first_errors": errors_json(&stats),
        "setup_secs": round(setup, 3),
        "loadgen_cpu": round(cpu / duration.as_secs_f64().max(1e-9), 3),
        "pad": pad.len(),
    }))
}

// ---- churn ----------------------------------------------------------------------------

/// Each of `clients` clients, concurrently, `cycles` times: connect, join its room, send a
/// chat message and wait for it to come back, leave the room, disconnect.
async fn churn(
    common: &Common,
    clients: usize,
    cycles: usize,
    room_size: usize,
) -> Result<Value, String> {
    if clients == 0 || cycles == 0 {
        return Err("churn needs --clients and --cycles above 0".into());
    }
    let stats = Rc::new(Stats::new());
    let started = now_ns();
    let cpu_from = cpu_secs();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let stats = stats.clone();
        let common = common.clone();
        let timeout = common.timeout;
        let server = common.target.server_of(i, room_size);
        tasks.push(spawn_local(async move {
            let room = format!("churn{}", i / room_size);
            let user = format!("u{i}");
            for c in 0..cycles {
                let began = now_ns();
                let marker = (i * cycles + c) as u64;
                let result = async {
                    let mut conn = common.connect(server, i * cycles + c).await?;
                    conn.join(&room, &user, timeout).await?;
                    conn.send(format!(
                        r#"42["send-message",{{"roomId":"{room}","message":"churn ~T{marker} end"}}]"#
                    ))
                    .await?;
                    let deadline = tokio::time::Instant::now() + timeout;
                    loop {
                        let text = tokio::time::timeout_at(deadline, conn.wait_for("new-message", timeout, |_| {}))
                            .await
                            .map_err(|_| eio::Error("no echo of the chat message".into()))??;
                        if stamp(&text) == Some(marker) {
                            break;
                        }
                    }
                    conn.send(format!(r#"42["leave-room",{{"roomId":"{room}"}}]"#))
                        .await?;
                    conn.close().await;
                    Ok::<_, eio::Error>(())
                }
                .await;
                match result {
                    Ok(()) => {
                        stats.received.set(stats.received.get() + 1);
                        stats.latency((now_ns() - began) / 1_000);
                    }
                    Err(e) => stats.error(&e.0),
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = (now_ns() - started) as f64 / 1e9;
    let cpu = cpu_secs() - cpu_from;
    let done = stats.received.get();
    Ok(json!({
        "scenario": "churn",
        "clients": clients,
        "cycles": cycles,
        "room_size": room_size,
        "completed": done,
        "errors": stats.errors.get(),
        "first_errors": errors_json(&stats),
        "elapsed_secs": round(elapsed, 3),
        "cycles_per_sec": round(done as f64 / elapsed.max(1e-9), 1),
        "cycle_ms": stats.latency_ms(),
        "loadgen_cpu": round(cpu / elapsed.max(1e-9), 3),
    }))
}
