//! Configuration: the environment (and `.env`, loaded by `main`) read once at start-up into a
//! validated [`Config`]. A bad value is a [`ConfigError`] naming the variable.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::access::JwtSecret;
use crate::address::TrustedProxies;
use crate::assist::Mode as AssistMode;
use crate::ice::{IceConfig, TurnConfig, check_url};
use crate::limits::{Rate, RateLimits};
use crate::password::PasswordKey;
use crate::webhook_secret::WebhookSecret;

/// Which browser origins may call the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `FRONTEND_URL=*`: every origin (echoed back, since browsers refuse `*` with credentials).
    Any,
    /// Exact origins such as `https://meet.example.com`, without trailing slash.
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o == origin),
        }
    }
}

impl std::fmt::Display for AllowedOrigins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::List(list) => f.write_str(&list.join(", ")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub allowed_origins: AllowedOrigins,
    /// `NODE_ENV`, kept as given (`development` when unset).
    pub node_env: String,
    /// JSON log lines instead of human-readable ones.
    pub log_json: bool,
    /// How long an emptied room (and its chat) is kept; zero removes it at once.
    pub empty_room_ttl: Duration,
    /// How long a room made by `POST /api/create-room` waits for its first participant.
    pub unused_room_ttl: Duration,
    pub max_participants: usize,
    pub chat_history_limit: usize,
    /// Bytes of chat history kept per room.
    pub chat_history_bytes: usize,
    /// Bytes of chat history kept in all rooms together.
    pub chat_history_total_bytes: usize,
    /// A built frontend to serve at `/` (`STATIC_DIR`), if any.
    pub static_dir: Option<PathBuf>,
    /// Largest Socket.IO packet or HTTP body accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Most Socket.IO connections open at once; 0 = no cap.
    pub max_connections: usize,
    /// Most rooms in existence at once; 0 = no cap.
    pub max_rooms: usize,
    /// Most rooms one client address may have made and still in existence; 0 = no cap.
    pub max_rooms_per_address: usize,
    /// Per client address: rooms made (`POST /api/create-room`, or `join-room` naming a room
    /// that does not exist).
    pub room_create_rate: Rate,
    /// Packets a socket's outgoing buffer holds; a socket found with a full buffer is evicted.
    pub socket_buffer_packets: usize,
    /// Bytes a socket's outgoing buffer holds (one larger message still fits an empty one).
    pub socket_buffer_bytes: usize,
    /// Events of one socket waiting to be handled, and their bytes: more are refused.
    pub max_queued_events: usize,
    pub max_queued_bytes: usize,
    /// A connection whose writes make no progress for this long is closed.
    pub write_stall_timeout: Duration,
    pub rate_limits: RateLimits,
    /// When set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// When set, enables the operator API under `/api/admin` for this bearer token.
    pub admin_token: Option<String>,
    /// STUN and TURN servers handed to browsers.
    pub ice: IceConfig,
    /// Per client address limit of `GET /api/ice-servers`.
    pub ice_rate: Rate,
    /// Where rooms live: in this process, or in a Redis several instances share.
    pub deployment: Deployment,
    /// Which proxies may name the client in `X-Forwarded-For` (`TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// The key room passwords are hashed with (`ROOM_PASSWORD_KEY`), the same on every
    /// instance of a cluster; unset, one instance makes its own and a cluster keeps one in
    /// Redis.
    pub room_password_key: Option<PasswordKey>,
    /// Signed webhooks to the application's backend (`WEBHOOK_*`); `None`: off.
    pub webhooks: Option<WebhookSettings>,
    /// `JWT_SECRET`: joins need a token signed with it (`None`: off, anyone may join).
    pub jwt_secret: Option<JwtSecret>,
    /// `NEGOTIATION_ASSIST`: whether the server helps clients that negotiate WebRTC naively
    /// (docs/PROTOCOL.md, "Negotiation assist").
    pub negotiation_assist: AssistMode,
    /// `RECOVERY_WINDOW_S`: how long a socket whose connection dropped keeps its session (and
    /// its place in its room) for its client to come back; zero turns connection state
    /// recovery off (docs/PROTOCOL.md, "Connection state recovery").
    pub recovery_window: Duration,
    /// `RECOVERY_BUFFER_MAX`: packets kept for one socket until its client is known to have
    /// them; a disconnected session that would need more ends (a normal leave).
    pub recovery_buffer_max: usize,
    /// `RECOVERY_BUFFER_BYTES`: bytes kept for one socket until its client is known to have
    /// them (at most `SOCKET_BUFFER_BYTES` apply); a disconnected session that would need more
    /// ends (a normal leave). It bounds what a vanished client pins for the whole window.
    pub recovery_buffer_bytes: usize,
}

/// Shortest `ROOM_PASSWORD_KEY`, in characters.
const ROOM_PASSWORD_KEY_MIN: usize = 16;
/// Where and how webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_URLS`: every event goes to each, in its own queue.
    pub urls: Vec<String>,
    pub secret: WebhookSecret,
    /// One attempt's limit (`WEBHOOK_TIMEOUT_MS`).
    pub timeout: Duration,
    /// Attempts per event before it is dropped (`WEBHOOK_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Events queued per endpoint; past it the oldest is dropped (`WEBHOOK_QUEUE_MAX`).
    pub queue_max: usize,
}

impl WebhookSettings {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
    pub const DEFAULT_QUEUE_MAX: usize = 10_000;
}

/// The one switch between the two ways to run: decided here, once, at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deployment {
    /// One instance, rooms in memory (`REDIS_URL` unset).
    Memory,
    /// Several instances sharing rooms through Redis (`REDIS_URL`).
    Redis {
        url: String,
        /// Prefix of every Redis key and pub/sub channel (`REDIS_PREFIX`), so several
        /// deployments can share a Redis.
        prefix: String,
    },
}

impl Deployment {
    /// `memory` or `redis`, as `/health` reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis { .. } => "redis",
        }
    }
}

/// `REDIS_PREFIX` when unset.
pub const DEFAULT_REDIS_PREFIX: &str = "prolitemeet";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 3001,
            allowed_origins: AllowedOrigins::List(vec!["http://localhost:5173".into()]),
            node_env: "development".into(),
            log_json: false,
            empty_room_ttl: Duration::from_secs(300),
            unused_room_ttl: Duration::from_secs(60),
            max_participants: 50,
            chat_history_limit: 200,
            chat_history_bytes: 128 * 1024,
            chat_history_total_bytes: 64 * 1024 * 1024,
            static_dir: None,
            max_payload_bytes: 100_000,
            max_connections: 10_000,
            max_rooms: 10_000,
            max_rooms_per_address: 100,
            room_create_rate: Rate {
                per_sec: 0.2,
                burst: 10.0,
            },
            socket_buffer_packets: 1024,
            socket_buffer_bytes: 4 * 1024 * 1024,
            max_queued_events: 1024,
            max_queued_bytes: 4 * 1024 * 1024,
            write_stall_timeout: Duration::from_secs(10),
            rate_limits: RateLimits {
                // Generous enough for scripted clients and a full room; a flood is still
                // refused and then disconnected.
                chat: Rate {
                    per_sec: 10.0,
                    burst: 250.0,
                },
                // A newcomer in a full mesh of 50 offers to 49 peers and trickles ~30 ICE
                // candidates to each within a second or two.
                signal: Rate {
                    per_sec: 500.0,
                    burst: 3000.0,
                },
                join: Rate {
                    per_sec: 5.0,
                    burst: 50.0,
                },
                // Per target: a real call relays a few KB of SDP and ICE to each peer.
                relay_bytes: Rate {
                    per_sec: 256.0 * 1024.0,
                    burst: 1024.0 * 1024.0,
                },
                disconnect_after: 200,
            },
            metrics_token: None,
            admin_token: None,
            room_password_key: None,
            ice: IceConfig::default(),
            ice_rate: Rate {
                per_sec: 1.0,
                burst: 10.0,
            },
            deployment: Deployment::Memory,
            trusted_proxies: TrustedProxies::None,
            webhooks: None,
            jwt_secret: None,
            negotiation_assist: AssistMode::Auto,
            recovery_window: Duration::from_secs(120),
            recovery_buffer_max: 1000,
            recovery_buffer_bytes: 256 * 1024,
        }
    }
}

/// The longest `RECOVERY_WINDOW_S` accepted: a day (a session kept longer is a leak, not a
/// network blip).
const MAX_RECOVERY_WINDOW_SECS: u64 = 86_400;

impl Config {
    /// Connection state recovery is on (`RECOVERY_WINDOW_S` > 0).
    pub fn recovery(&self) -> bool {
        !self.recovery_window.is_zero()
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads variables through `lookup`; unset or blank variables take their defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let defaults = Self::default();
        let node_env = get("NODE_ENV").unwrap_or(defaults.node_env);
        let log_json = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None => node_env.trim() == "production",
            Some("json") => true,
            Some("text") => false,
            Some(other) => return Err(invalid("LOG_FORMAT", other, "expected `json` or `text`")),
        };
        Ok(Self {
            host: parse(&get, "HOST", defaults.host, "expected an IP address")?,
            port: parse(
                &get,
                "PORT",
                defaults.port,
                "expected a port number 0-65535",
            )?,
            allowed_origins: match get("FRONTEND_URL") {
                None => defaults.allowed_origins,
                Some(raw) => parse_origins(&raw)?,
            },
            node_env,
            log_json,
            empty_room_ttl: Duration::from_secs(parse(
                &get,
                "EMPTY_ROOM_TTL_SECS",
                defaults.empty_room_ttl.as_secs(),
                "expected a whole number of seconds",
            )?),
            unused_room_ttl: Duration::from_secs(
                at_least_one(parse(
                    &get,
                    "UNUSED_ROOM_TTL_SECS",
                    defaults.unused_room_ttl.as_secs(),
                    "expected a whole number of seconds, at least 1",
                )?)
                .map_err(|v| invalid("UNUSED_ROOM_TTL_SECS", &v, "must be at least 1"))?,
            ),
            max_participants: at_least_one(parse(
                &get,
                "MAX_PARTICIPANTS",
                defaults.max_participants,
                "expected a whole number, at least 1",
            )?)
            .map_err(|v| invalid("MAX_PARTICIPANTS", &v, "must be at least 1"))?,
            chat_history_limit: parse(
                &get,
                "CHAT_HISTORY_LIMIT",
                defaults.chat_history_limit,
                "expected a whole number",
            )?,
            chat_history_bytes: parse(
                &get,
                "CHAT_HISTORY_BYTES",
                defaults.chat_history_bytes,
                "expected a number of bytes",
            )?,
            chat_history_total_bytes: parse(
                &get,
                "CHAT_HISTORY_TOTAL_BYTES",
                defaults.chat_history_total_bytes,
                "expected a number of bytes",
            )?,
            static_dir: match get("STATIC_DIR") {
                None => None,
                Some(dir) => Some(static_dir(&dir)?),
            },
            max_payload_bytes: {
                let bytes = parse(
                    &get,
                    "MAX_PAYLOAD_BYTES",
                    defaults.max_payload_bytes,
                    "expected a number of bytes, at least 1024",
                )?;
                if bytes < 1024 {
                    return Err(invalid(
                        "MAX_PAYLOAD_BYTES",
                        &bytes.to_string(),
                        "must be at least 1024",
                    ));
                }
                bytes
            },
            max_connections: parse(
                &get,
                "MAX_CONNECTIONS",
                defaults.max_connections,
                "expected a whole number (0 = no cap)",
            )?,
            max_rooms: parse(
                &get,
                "MAX_ROOMS",
                defaults.max_rooms,
                "expected a whole number (0 = no cap)",
            )?,
            socket_buffer_packets: {
                let packets = parse(
                    &get,
                    "SOCKET_BUFFER_PACKETS",
                    defaults.socket_buffer_packets,
                    "expected a number of packets, at least 16",
                )?;
                if packets < 16 {
                    return Err(invalid(
                        "SOCKET_BUFFER_PACKETS",
                        &packets.to_string(),
                        "must be at least 16",
                    ));
                }
                packets
            },
            socket_buffer_bytes: at_least(
                "SOCKET_BUFFER_BYTES",
                parse(
                    &get,
                    "SOCKET_BUFFER_BYTES",
                    defaults.socket_buffer_bytes,
                    "expected a number of bytes, at least 65536",
                )?,
                65_536,
            )?,
            max_queued_events: at_least(
                "MAX_QUEUED_EVENTS",
                parse(
                    &get,
                    "MAX_QUEUED_EVENTS",
                    defaults.max_queued_events,
                    "expected a number of events, at least 16",
                )?,
                16,
            )?,
            max_queued_bytes: at_least(
                "MAX_QUEUED_BYTES",
                parse(
                    &get,
                    "MAX_QUEUED_BYTES",
                    defaults.max_queued_bytes,
                    "expected a number of bytes, at least 65536",
                )?,
                65_536,
            )?,
            write_stall_timeout: Duration::from_secs(
                at_least_one(parse(
                    &get,
                    "WRITE_STALL_TIMEOUT_SECS",
                    defaults.write_stall_timeout.as_secs(),
                    "expected a whole number of seconds, at least 1",
                )?)
                .map_err(|v| invalid("WRITE_STALL_TIMEOUT_SECS", &v, "must be at least 1"))?,
            ),
            rate_limits: RateLimits {
                chat: rate(
                    &get,
                    "CHAT_RATE_PER_SEC",
                    "CHAT_BURST",
                    defaults.rate_limits.chat,
                )?,
                signal: rate(
                    &get,
                    "SIGNAL_RATE_PER_SEC",
                    "SIGNAL_BURST",
                    defaults.rate_limits.signal,
                )?,
                join: rate(
                    &get,
                    "JOIN_RATE_PER_SEC",
                    "JOIN_BURST",
                    defaults.rate_limits.join,
                )?,
                relay_bytes: rate(
                    &get,
                    "RELAY_BYTES_PER_SEC",
                    "RELAY_BYTES_BURST",
                    defaults.rate_limits.relay_bytes,
                )?,
                disconnect_after: parse(
                    &get,
                    "RATE_LIMIT_DISCONNECT_AFTER",
                    defaults.rate_limits.disconnect_after,
                    "expected a whole number (0 = never disconnect)",
                )?,
            },
            metrics_token: get("METRICS_TOKEN").map(|t| t.trim().to_owned()),
            admin_token: get("ADMIN_TOKEN").map(|t| t.trim().to_owned()),
            room_password_key: match get("ROOM_PASSWORD_KEY").map(|k| k.trim().to_owned()) {
                None => None,
                Some(key) if key.chars().count() >= ROOM_PASSWORD_KEY_MIN => {
                    Some(PasswordKey::from_secret(&key))
                }
                Some(_) => {
                    return Err(invalid(
                        "ROOM_PASSWORD_KEY",
                        "(hidden)",
                        "must be at least 16 characters (a long random string)",
                    ));
                }
            },
            ice: ice(&get, defaults.ice)?,
            ice_rate: rate(&get, "ICE_RATE_PER_SEC", "ICE_BURST", defaults.ice_rate)?,
            max_rooms_per_address: parse(
                &get,
                "MAX_ROOMS_PER_ADDRESS",
                defaults.max_rooms_per_address,
                "expected a whole number (0 = no cap)",
            )?,
            room_create_rate: rate(
                &get,
                "ROOM_CREATE_RATE_PER_SEC",
                "ROOM_CREATE_BURST",
                defaults.room_create_rate,
            )?,
            trusted_proxies: match get("TRUSTED_PROXIES") {
                None => TrustedProxies::None,
                Some(raw) => TrustedProxies::parse(&raw).map_err(|_| {
                    invalid(
                        "TRUSTED_PROXIES",
                        &raw,
                        "expected a number of proxy hops, or addresses/CIDR networks separated by commas",
                    )
                })?,
            },
            webhooks: webhooks(&get)?,
            jwt_secret: get("JWT_SECRET").map(|raw| JwtSecret::new(&raw)),
            negotiation_assist: parse(
                &get,
                "NEGOTIATION_ASSIST",
                defaults.negotiation_assist,
                "expected `auto`, `on` or `off`",
            )?,
            recovery_window: {
                let secs = parse(
                    &get,
                    "RECOVERY_WINDOW_S",
                    defaults.recovery_window.as_secs(),
                    "expected a whole number of seconds (0 = recovery off)",
                )?;
                if secs > MAX_RECOVERY_WINDOW_SECS {
                    return Err(invalid(
                        "RECOVERY_WINDOW_S",
                        &secs.to_string(),
                        "must be at most 86400 (a day)",
                    ));
                }
                Duration::from_secs(secs)
            },
            recovery_buffer_max: at_least(
                "RECOVERY_BUFFER_MAX",
                parse(
                    &get,
                    "RECOVERY_BUFFER_MAX",
                    defaults.recovery_buffer_max,
                    "expected a number of packets, at least 1",
                )?,
                1,
            )?,
            recovery_buffer_bytes: at_least(
                "RECOVERY_BUFFER_BYTES",
                parse(
                    &get,
                    "RECOVERY_BUFFER_BYTES",
                    defaults.recovery_buffer_bytes,
                    "expected a number of bytes, at least 16384",
                )?,
                16 * 1024,
            )?,
            deployment: {
                let prefix = match get("REDIS_PREFIX") {
                    None => DEFAULT_REDIS_PREFIX.to_owned(),
                    Some(raw) => redis_prefix(&raw)?,
                };
                match get("REDIS_URL") {
                    None => Deployment::Memory,
                    Some(url) => Deployment::Redis {
                        url: redis_url(&url)?,
                        prefix,
                    },
                }
            },
        })
    }
}

/// A token-bucket rate from `<NAME>_RATE_PER_SEC` and `<NAME>_BURST`; a rate of 0 is no limit.
fn rate(
    get: &impl Fn(&str) -> Option<String>,
    rate_var: &'static str,
    burst_var: &'static str,
    default: Rate,
) -> Result<Rate, ConfigError> {
    let non_negative = |var: &'static str, value: f64| {
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err(invalid(
                var,
                &value.to_string(),
                "must be a finite number, 0 or more",
            ))
        }
    };
    let per_sec = non_negative(
        rate_var,
        parse(
            get,
            rate_var,
            default.per_sec,
            "expected events per second (0 = no limit)",
        )?,
    )?;
    let burst = non_negative(
        burst_var,
        parse(get, burst_var, default.burst, "expected a number of events")?,
    )?;
    if per_sec > 0.0 && burst < 1.0 {
        return Err(invalid(
            burst_var,
            &burst.to_string(),
            "must be at least 1 when the rate is set",
        ));
    }
    Ok(Rate { per_sec, burst })
}

/// `STUN_URLS`, `TURN_URLS`, `TURN_SECRET`, `TURN_TTL_SECS`. TURN URLs need a secret; a
/// secret without TURN URLs is pointless and refused too, as a likely typo.
fn ice(
    get: &impl Fn(&str) -> Option<String>,
    default: IceConfig,
) -> Result<IceConfig, ConfigError> {
    let list = |var: &'static str, raw: String, turn: bool| -> Result<Vec<String>, ConfigError> {
        let urls: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect();
        for url in &urls {
            check_url(url, turn).map_err(|reason| invalid(var, url, reason))?;
        }
        Ok(urls)
    };
    let stun_urls = match get("STUN_URLS") {
        None => default.stun_urls,
        Some(raw) if raw.trim() == "none" => Vec::new(),
        Some(raw) => list("STUN_URLS", raw, false)?,
    };
    let turn_urls = get("TURN_URLS")
        .map(|raw| list("TURN_URLS", raw, true))
        .transpose()?;
    let secret = get("TURN_SECRET").map(|s| s.trim().to_owned());
    let turn = match (turn_urls.filter(|urls| !urls.is_empty()), secret) {
        (Some(urls), Some(secret)) => Some(TurnConfig { urls, secret }),
        (Some(urls), None) => {
            return Err(invalid(
                "TURN_URLS",
                &urls.join(","),
                "TURN_SECRET (coturn's static-auth-secret) must be set too",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "TURN_SECRET",
                "(hidden)",
                "TURN_URLS must be set too",
            ));
        }
        (None, None) => None,
    };
    let ttl = parse(
        get,
        "TURN_TTL_SECS",
        default.ttl.as_secs(),
        "expected a whole number of seconds, at least 60",
    )?;
    if ttl < 60 {
        return Err(invalid(
            "TURN_TTL_SECS",
            &ttl.to_string(),
            "must be at least 60",
        ));
    }
    Ok(IceConfig {
        stun_urls,
        turn,
        ttl: Duration::from_secs(ttl),
    })
}

/// `WEBHOOK_URLS` (off when unset or empty), with the `WEBHOOK_SECRET` they need and the
/// delivery settings. A secret without URLs is checked too, and kept unused.
fn webhooks(get: &impl Fn(&str) -> Option<String>) -> Result<Option<WebhookSettings>, ConfigError> {
    let secret = get("WEBHOOK_SECRET")
        .map(|raw| {
            WebhookSecret::parse(&raw)
                .map_err(|reason| invalid("WEBHOOK_SECRET", "(hidden)", reason))
        })
        .transpose()?;
    let timeout_ms: u64 = parse(
        get,
        "WEBHOOK_TIMEOUT_MS",
        WebhookSettings::DEFAULT_TIMEOUT.as_millis() as u64,
        "expected a whole number of milliseconds, at least 1",
    )?;
    let timeout_ms = at_least_one(timeout_ms)
        .map_err(|v| invalid("WEBHOOK_TIMEOUT_MS", &v, "must be at least 1"))?;
    let max_attempts = at_least_one(parse(
        get,
        "WEBHOOK_MAX_ATTEMPTS",
        WebhookSettings::DEFAULT_MAX_ATTEMPTS,
        "expected a whole number of attempts, at least 1",
    )?)
    .map_err(|v| invalid("WEBHOOK_MAX_ATTEMPTS", &v, "must be at least 1"))?;
    let queue_max = at_least_one(parse(
        get,
        "WEBHOOK_QUEUE_MAX",
        WebhookSettings::DEFAULT_QUEUE_MAX,
        "expected a whole number of events, at least 1",
    )?)
    .map_err(|v| invalid("WEBHOOK_QUEUE_MAX", &v, "must be at least 1"))?;
    let urls: Vec<String> = get("WEBHOOK_URLS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    for url in &urls {
        let usable = reqwest::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !usable {
            return Err(invalid(
                "WEBHOOK_URLS",
                url,
                "expected http:// or https:// URLs separated by commas",
            ));
        }
    }
    if urls.is_empty() {
        return Ok(None);
    }
    let Some(secret) = secret else {
        return Err(invalid(
            "WEBHOOK_SECRET",
            "",
            "must be set when WEBHOOK_URLS is: `whsec_` followed by the base64 of at least 24 random bytes",
        ));
    };
    Ok(Some(WebhookSettings {
        urls,
        secret,
        timeout: Duration::from_millis(timeout_ms),
        max_attempts,
        queue_max,
    }))
}

/// A `redis://` URL that the Redis client can parse (TLS is not built in).
fn redis_url(raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim();
    if !url.starts_with("redis://") || redis::Client::open(url).is_err() {
        return Err(invalid(
            "REDIS_URL",
            raw,
            "expected a URL like redis://host:6379 or redis://:password@host:6379/0",
        ));
    }
    Ok(url.to_owned())
}

/// Key prefixes stay printable and free of the characters Redis gives meaning (`{}` hash
/// tags, spaces) and short enough to keep every key small.
fn redis_prefix(raw: &str) -> Result<String, ConfigError> {
    let prefix = raw.trim();
    let ok = prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(prefix.to_owned())
    } else {
        Err(invalid(
            "REDIS_PREFIX",
            raw,
            "expected at most 64 letters, digits, '-', '_', '.' or ':'",
        ))
    }
}

/// `STATIC_DIR` must be a folder with an `index.html` in it.
fn static_dir(raw: &str) -> Result<PathBuf, ConfigError> {
    let dir = PathBuf::from(raw.trim());
    if dir.join("index.html").is_file() {
        Ok(dir)
    } else {
        Err(invalid(
            "STATIC_DIR",
            raw,
            "expected a folder containing index.html (a built frontend)",
        ))
    }
}

fn invalid(var: &'static str, value: &str, reason: &'static str) -> ConfigError {
    ConfigError {
        var,
        value: value.to_owned(),
        reason,
    }
}

fn parse<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    reason: &'static str,
) -> Result<T, ConfigError> {
    match get(var) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|_| invalid(var, &raw, reason)),
    }
}

/// `value` of `var`, refused below `min`.
fn at_least(var: &'static str, value: usize, min: usize) -> Result<usize, ConfigError> {
    if value >= min {
        Ok(value)
    } else {
        Err(ConfigError {
            var,
            value: value.to_string(),
            reason: "below its minimum",
        })
    }
}

fn at_least_one<T: PartialOrd + From<u8> + ToString>(value: T) -> Result<T, String> {
    if value >= T::from(1) {
        Ok(value)
    } else {
        Err(value.to_string())
    }
}

/// `FRONTEND_URL`: `*`, or origins separated by commas. A trailing `/` is dropped, since
/// browsers send origins without one and people often paste URLs with one.
fn parse_origins(raw: &str) -> Result<AllowedOrigins, ConfigError> {
    let mut list = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            return Ok(AllowedOrigins::Any);
        }
        let origin = item.trim_end_matches('/');
        let well_formed = (origin.starts_with("http://") || origin.starts_with("https://"))
            && origin.split_once("://").is_some_and(|(_, host)| {
                !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace)
            });
        if !well_formed {
            return Err(invalid(
                "FRONTEND_URL",
                raw,
                "expected `*` or comma-separated origins like https://app.example.com",
            ));
        }
        list.push(origin.to_owned());
    }
    if list.is_empty() {
        return Err(invalid("FRONTEND_URL", raw, "no origin given"));
    }
    Ok(AllowedOrigins::List(list))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_original() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert!(c.allowed_origins.allows("http://localhost:5173"));
        assert!(!c.allowed_origins.allows("http://evil.example"));
        assert_eq!(c.empty_room_ttl, Duration::from_secs(300));
        assert_eq!(c.unused_room_ttl, Duration::from_secs(60));
        assert_eq!(c.max_participants, 50);
        assert_eq!(c.chat_history_limit, 200);
        assert!(!c.log_json);
    }

    #[test]
    fn negotiation_assist_is_auto_unless_set() {
        assert_eq!(config(&[]).unwrap().negotiation_assist, AssistMode::Auto);
        let c = config(&[("NEGOTIATION_ASSIST", " Off ")]).unwrap();
        assert_eq!(c.negotiation_assist, AssistMode::Off);
    }

    #[test]
    fn room_password_key_is_optional_long_and_never_shown() {
        assert_eq!(config(&[]).unwrap().room_password_key, None);
        assert_eq!(
            config(&[("ROOM_PASSWORD_KEY", "  ")])
                .unwrap()
                .room_password_key,
            None
        );
        let secret = "a-long-random-secret-string";
        let c = config(&[("ROOM_PASSWORD_KEY", secret)]).unwrap();
        assert_eq!(c.room_password_key, Some(PasswordKey::from_secret(secret)));
        assert!(!format!("{c:?}").contains(secret));
        let err = config(&[("ROOM_PASSWORD_KEY", "short-secret")]).unwrap_err();
        assert_eq!(err.var, "ROOM_PASSWORD_KEY");
        assert!(!err.to_string().contains("short-secret"), "{err}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PORT", "abc"),
            ("PORT", "70000"),
            ("HOST", "not-an-ip"),
            ("MAX_PARTICIPANTS", "0"),
            ("MAX_PARTICIPANTS", "-1"),
            ("UNUSED_ROOM_TTL_SECS", "0"),
            ("EMPTY_ROOM_TTL_SECS", "soon"),
            ("CHAT_HISTORY_LIMIT", "1.5"),
            ("FRONTEND_URL", "localhost:5173"),
            ("LOG_FORMAT", "xml"),
            ("STATIC_DIR", "/nonexistent/folder"),
            ("MAX_PAYLOAD_BYTES", "10"),
            ("MAX_ROOMS", "many"),
            ("CHAT_RATE_PER_SEC", "-1"),
            ("SIGNAL_BURST", "NaN"),
            ("JOIN_RATE_PER_SEC", "fast"),
            ("TURN_URLS", "turn:turn.example.com:3478"),
            ("TURN_SECRET", "secret-without-urls"),
            ("STUN_URLS", "http://stun.example.com"),
            ("TURN_TTL_SECS", "10"),
            ("REDIS_URL", "localhost:6379"),
            ("REDIS_URL", "http://redis:6379"),
            ("REDIS_PREFIX", "has space"),
            ("REDIS_PREFIX", "{tag}"),
            ("NEGOTIATION_ASSIST", "yes"),
            ("TRUSTED_PROXIES", "everyone"),
            ("TRUSTED_PROXIES", "10.0.0.0/40"),
            ("RECOVERY_WINDOW_S", "-1"),
            ("RECOVERY_WINDOW_S", "2.5"),
            ("RECOVERY_WINDOW_S", "86401"),
            ("RECOVERY_BUFFER_MAX", "0"),
            ("RECOVERY_BUFFER_MAX", "lots"),
            ("RECOVERY_BUFFER_BYTES", "1024"),
            ("RECOVERY_BUFFER_BYTES", "big"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn recovery_is_on_for_two_minutes_unless_set() {
        let c = config(&[]).unwrap();
        assert!(c.recovery());
        assert_eq!(c.recovery_window, Duration::from_secs(120));
        assert_eq!(c.recovery_buffer_max, 1000);
        assert_eq!(c.recovery_buffer_bytes, 262_144);
        let bytes = config(&[("RECOVERY_BUFFER_BYTES", "65536")]).unwrap();
        assert_eq!(bytes.recovery_buffer_bytes, 65_536);
        let off = config(&[("RECOVERY_WINDOW_S", "0")]).unwrap();
        assert!(!off.recovery());
        let c = config(&[("RECOVERY_WINDOW_S", " 2 "), ("RECOVERY_BUFFER_MAX", "1")]).unwrap();
        assert_eq!(c.recovery_window, Duration::from_secs(2));
        assert_eq!(c.recovery_buffer_max, 1);
        let longest = config(&[("RECOVERY_WINDOW_S", "86400")]).unwrap();
        assert_eq!(longest.recovery_window, Duration::from_secs(86_400));
    }

    #[test]
    fn webhooks_and_jwt_are_off_unless_set_and_need_a_sound_secret() {
        let c = config(&[]).unwrap();
        assert!(c.webhooks.is_none() && c.jwt_secret.is_none());
        let secret = ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let urls = (
            "WEBHOOK_URLS",
            " https://app.example/hooks , http://10.0.0.2:8080/h ",
        );
        let hooks = config(&[urls, secret]).unwrap().webhooks.unwrap();
        assert_eq!(
            hooks.urls,
            ["https://app.example/hooks", "http://10.0.0.2:8080/h"]
        );
        assert_eq!(hooks.timeout, Duration::from_millis(5000));
        assert_eq!(hooks.max_attempts, 8);
        assert_eq!(hooks.queue_max, 10_000);
        for bad in [
            vec![urls],
            vec![urls, ("WEBHOOK_SECRET", "whsec_c2hvcnQ=")],
            vec![urls, ("WEBHOOK_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
        ] {
            let err = config(&bad).unwrap_err();
            assert_eq!(err.var, "WEBHOOK_SECRET", "{err}");
            assert!(
                !err.to_string().contains("MfKQ9r8"),
                "the secret is not echoed"
            );
        }
        for (var, value) in [
            ("WEBHOOK_URLS", "ftp://app.example/hooks"),
            ("WEBHOOK_TIMEOUT_MS", "0"),
            ("WEBHOOK_MAX_ATTEMPTS", "many"),
            ("WEBHOOK_QUEUE_MAX", "0"),
        ] {
            let err = config(&[urls, secret, (var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{err}");
        }
        assert!(
            config(&[("JWT_SECRET", "s3cret")])
                .unwrap()
                .jwt_secret
                .is_some()
        );
    }

    #[test]
    fn redis_url_turns_on_cluster_mode() {
        let single = config(&[]).unwrap();
        assert_eq!(single.deployment, Deployment::Memory);
        let cluster = config(&[
            ("REDIS_URL", " redis://:pw@10.0.0.5:6380/2 "),
            ("REDIS_PREFIX", "meet-eu"),
        ])
        .unwrap();
        assert_eq!(
            cluster.deployment,
            Deployment::Redis {
                url: "redis://:pw@10.0.0.5:6380/2".into(),
                prefix: "meet-eu".into()
            }
        );
        let default_prefix = config(&[("REDIS_URL", "redis://r:6379")]).unwrap();
        assert_eq!(
            default_prefix.deployment,
            Deployment::Redis {
                url: "redis://r:6379".into(),
                prefix: DEFAULT_REDIS_PREFIX.into()
            }
        );
    }

    #[test]
    fn origins_list_star_and_production_logs() {
        let c = config(&[
            ("FRONTEND_URL", "https://a.example/, http://b.example:8080"),
            ("NODE_ENV", "production"),
        ])
        .unwrap();
        assert!(c.allowed_origins.allows("https://a.example"));
        assert!(c.allowed_origins.allows("http://b.example:8080"));
        assert!(c.log_json);
        let c = config(&[("FRONTEND_URL", "*"), ("LOG_FORMAT", "text")]).unwrap();
        assert_eq!(c.allowed_origins, AllowedOrigins::Any);
        assert!(!c.log_json);
        let c = config(&[("EMPTY_ROOM_TTL_SECS", "0")]).unwrap();
        assert_eq!(c.empty_room_ttl, Duration::ZERO);
    }
}
