//! Command line: `loadgen <scenario> [--key value | --flag]...`, parsed by hand (no
//! dependency) into typed options with defaults.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

pub const USAGE: &str = "\
usage: loadgen <scenario> [options]

scenarios (each prints exactly one JSON line on stdout):
  idle    --clients N --room-size S [--hold SECS] [--ready-file PATH]
  fanout  --rooms R --size S --rate MSGS_PER_SEC --duration SECS
  relay   --pairs P --rate OFFERS_PER_SEC --duration SECS
  relay   --pairs P --closed-loop [--inflight K] --duration SECS
  churn   --clients N --cycles C [--room-size S]

common options:
  --url URL              server (http://, ws:// or host:port)    [http://127.0.0.1:3001]
  --source-ips A,B,...   bind client sockets to these local addresses, round robin
                         (127.0.0.1,127.0.0.2,... lets more than ~28k clients connect)
  --concurrency N        connections being opened at once        [256]
  --warmup SECS          unmeasured traffic before measuring     [2]
  --drain SECS           wait for stragglers after sending stops [2]
  --pad N                extra characters in each chat text / offer sdp [fanout 16, relay 200]
  --connect-timeout SECS give up on a client after this long     [20]
";

pub struct Args {
    pub scenario: String,
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    pub fn parse(mut raw: impl Iterator<Item = String>) -> Result<Self, String> {
        let scenario = raw.next().ok_or("no scenario given")?;
        if scenario == "-h" || scenario == "--help" {
            return Err(String::new());
        }
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let raw: Vec<String> = raw.collect();
        let mut i = 0;
        while i < raw.len() {
            let key = raw[i]
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {:?}", raw[i]))?;
            if let Some((k, v)) = key.split_once('=') {
                values.insert(k.to_owned(), v.to_owned());
                i += 1;
            } else if raw.get(i + 1).is_some_and(|next| !next.starts_with("--")) {
                values.insert(key.to_owned(), raw[i + 1].clone());
                i += 2;
            } else {
                flags.push(key.to_owned());
                i += 1;
            }
        }
        Ok(Self {
            scenario,
            values,
            flags,
        })
    }

    /// Refuses options and flags no scenario knows (a typo would otherwise be ignored).
    pub fn check_known(&self) -> Result<(), String> {
        const VALUES: &[&str] = &[
            "url",
            "source-ips",
            "concurrency",
            "warmup",
            "drain",
            "pad",
            "connect-timeout",
            "clients",
            "room-size",
            "hold",
            "ready-file",
            "rooms",
            "size",
            "rate",
            "duration",
            "pairs",
            "inflight",
            "cycles",
        ];
        const FLAGS: &[&str] = &["closed-loop"];
        if let Some(key) = self.values.keys().find(|k| !VALUES.contains(&k.as_str())) {
            return Err(format!("unknown option --{key}"));
        }
        if let Some(flag) = self.flags.iter().find(|f| !FLAGS.contains(&f.as_str())) {
            return Err(format!("unknown flag --{flag} (or it needs a value)"));
        }
        Ok(())
    }

    pub fn get<T: FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.values.get(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| format!("--{key}: cannot read {raw:?}")),
        }
    }

    pub fn require<T: FromStr>(&self, key: &str) -> Result<T, String> {
        let raw = self
            .values
            .get(key)
            .ok_or_else(|| format!("--{key} is required for {}", self.scenario))?;
        raw.parse()
            .map_err(|_| format!("--{key}: cannot read {raw:?}"))
    }

    pub fn text(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }
}

/// Where to connect and from where.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port` for the Host header.
    pub authority: String,
    pub source_ips: Vec<IpAddr>,
}

impl Target {
    pub fn from_args(args: &Args) -> Result<Self, String> {
        let url = args.text("url").unwrap_or("http://127.0.0.1:3001");
        let rest = ["ws://", "http://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme))
            .unwrap_or(url);
        if url.starts_with("wss://") || url.starts_with("https://") {
            return Err("TLS is not supported: benchmark a plain ws:// server".into());
        }
        let authority = rest.split('/').next().unwrap_or(rest).to_owned();
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("--url {url}: {e}"))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| format!("--url {url}: no IPv4 address"))?;
        let source_ips = match args.text("source-ips") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.trim()
                        .parse::<Ipv4Addr>()
                        .map(IpAddr::V4)
                        .map_err(|_| format!("--source-ips: {s:?} is not an IPv4 address"))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            addr,
            authority,
            source_ips,
        })
    }
}
