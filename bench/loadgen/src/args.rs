//! Command line: `loadgen <scenario> [--key value | --flag]...`, parsed by hand (no
//! dependency) into typed options with defaults.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

pub const USAGE: &str = "\
usage: loadgen <scenario> [options]

scenarios (each prints exactly one JSON line on stdout):
  idle    --clients N --room-size S [--hold SECS] [--ready-file PATH] [--transport T]
          T: websocket, or polling (long-polling only, never upgraded) [websocket]
  fanout  --rooms R --size S --rate MSGS_PER_SEC --duration SECS
  relay   --pairs P --rate OFFERS_PER_SEC --duration SECS
  relay   --pairs P --closed-loop [--inflight K] --duration SECS
  churn   --clients N --cycles C [--room-size S]
  storm   --clients N --watch-pids SERVER_PID [--storms K] [--room-size S] [--settle SECS]
          K times: N clients connect and join, then all leave at once; the server's RSS
          before, joined, and SECS after each storm                 [K 5, SECS 10]

common options:
  --url URL[,URL...]     server (http://, ws:// or host:port)    [http://127.0.0.1:3001];
                         several: instances of one cluster, clients of each room (pair)
                         spread round robin over them
  --source-ips A,B,...   bind client sockets to these local addresses, round robin
                         (127.0.0.1,127.0.0.2,... lets more than ~28k clients connect)
  --concurrency N        connections being opened at once        [256]
  --warmup SECS          unmeasured traffic before measuring     [2]
  --drain SECS           wait for stragglers after sending stops [2]
  --pad N                extra characters in each chat text / offer sdp [fanout 16, relay 200]
  --connect-timeout SECS give up on a client after this long     [20]
  --watch-pids P,Q,...   fanout and open-loop relay: report these processes' CPU use over
                         the measured window (`watched_cpu`, in cores, same order)
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
            "watch-pids",
            "storms",
            "settle",
            "transport",
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

/// One server to connect to.
pub struct Server {
    pub addr: SocketAddr,
    /// `host:port` for the Host header.
    pub authority: String,
    /// The WebSocket URL of its Engine.IO endpoint, made once.
    pub ws_url: String,
}

/// Where to connect and from where: one server, or several instances of a cluster.
pub struct Target {
    pub servers: Vec<Server>,
    pub source_ips: Vec<IpAddr>,
}

impl Target {
    pub fn from_args(args: &Args) -> Result<Self, String> {
        let list = args.text("url").unwrap_or("http://127.0.0.1:3001");
        let servers = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(server)
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err("--url: no server given".into());
        }
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
            servers,
            source_ips,
        })
    }

    /// Which server client `client` talks to, when clients `g*k .. g*k+g` share group (room,
    /// pair) `k`: round robin inside each group, shifted by one per group. Every group of at
    /// least as many members as there are servers has members on each of them, and when the
    /// group size does not divide evenly the extra members go to a different server in each
    /// group, so the servers get the same share of clients overall.
    pub fn server_of(&self, client: usize, group_size: usize) -> usize {
        let group_size = group_size.max(1);
        (client % group_size + client / group_size) % self.servers.len()
    }
}

fn server(url: &str) -> Result<Server, String> {
    if url.starts_with("wss://") || url.starts_with("https://") {
        return Err("TLS is not supported: benchmark a plain ws:// server".into());
    }
    let rest = ["ws://", "http://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest).to_owned();
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("--url {url}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("--url {url}: no IPv4 address"))?;
    let ws_url = format!("ws://{authority}/socket.io/?EIO=4&transport=websocket");
    Ok(Server {
        addr,
        authority,
        ws_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(servers: usize) -> Target {
        let list: Vec<String> = (0..servers)
            .map(|i| format!("127.0.0.1:{}", 3101 + i))
            .collect();
        let args = Args::parse(
            ["fanout", "--url", &list.join(",")]
                .into_iter()
                .map(str::to_owned),
        )
        .unwrap();
        Target::from_args(&args).unwrap()
    }

    #[test]
    fn reads_one_or_several_urls() {
        let one = target(1);
        assert_eq!(one.servers.len(), 1);
        assert_eq!(one.servers[0].authority, "127.0.0.1:3101");
        let args = Args::parse(
            ["fanout", "--url", "http://127.0.0.1:1, ws://127.0.0.1:2/x"]
                .into_iter()
                .map(str::to_owned),
        )
        .unwrap();
        let two = Target::from_args(&args).unwrap();
        let names: Vec<_> = two.servers.iter().map(|s| s.authority.as_str()).collect();
        assert_eq!(names, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(
            two.servers[1].ws_url,
            "ws://127.0.0.1:2/socket.io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn every_room_spans_the_servers_and_the_load_is_even() {
        let two = target(2);
        let (rooms, size) = (100, 5);
        let mut per_server = [0usize; 2];
        for room in 0..rooms {
            let mut seen = [false; 2];
            for member in 0..size {
                let s = two.server_of(room * size + member, size);
                seen[s] = true;
                per_server[s] += 1;
            }
            assert!(seen[0] && seen[1], "room {room} on one server only");
        }
        assert_eq!(per_server, [250, 250]);
        // Pairs: A and B of each pair on different servers.
        for pair in 0..10 {
            assert_ne!(two.server_of(2 * pair, 2), two.server_of(2 * pair + 1, 2));
        }
        // One server: everything goes there.
        assert!((0..50).all(|i| target(1).server_of(i, 5) == 0));
    }
}
