//! Test helper: a private `redis-server` child on a free loopback port, for the tests of
//! cluster mode. Standalone (std only) so any test binary can include it, with
//! `#[path = "common/redis.rs"] mod redis;` or through `mod common;`.
//!
//! Without `redis-server` installed, [`RedisServer::start`] returns `None` (the test says it
//! is skipped) unless `CI` is set, where a missing server is a failure.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `redis-server` gets to start answering PING.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// The pause between two PINGs while it starts.
const POLL_EVERY: Duration = Duration::from_millis(20);
const BINARY: &str = "redis-server";

pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port; `None` if `redis-server` is missing outside CI.
    pub fn start() -> Option<Self> {
        if !installed() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{BINARY} is not installed, and CI is set: install it (apt-get install redis-server)"
            );
            eprintln!("skipped: {BINARY} is not installed");
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("plm-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the redis temp dir");
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.start_again();
        Some(server)
    }

    /// `redis://127.0.0.1:<port>/?protocol=resp3`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/?protocol=resp3", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (an outage); [`Self::start_again`] brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again, empty) on the same port and waits until it answers PING.
    pub fn start_again(&mut self) {
        self.stop();
        let child = Command::new(BINARY)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        self.wait_until_ready();
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        while !answers_ping(self.port) {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {START_DEADLINE:?}",
                self.port
            );
            std::thread::sleep(POLL_EVERY);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn installed() -> bool {
    Command::new(BINARY)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A loopback port nobody listens on right now (the OS picks it; we let it go at once).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether something on `port` answers `PING` with `+PONG`.
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
