//! ICE servers for browsers: the configured STUN servers, and TURN servers with short-lived
//! credentials in the "TURN REST API" scheme that coturn (`use-auth-secret`) and most TURN
//! servers accept — username `<expiry unix time>:<id>`, password
//! `base64(HMAC-SHA1(secret, username))` — so no static TURN password ever reaches a browser.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

/// The STUN server the frontends already hard-code.
pub const DEFAULT_STUN: &str = "stun:stun.l.google.com:19302";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnConfig {
    pub urls: Vec<String>,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceConfig {
    pub stun_urls: Vec<String>,
    /// `None`: STUN only.
    pub turn: Option<TurnConfig>,
    /// How long issued TURN credentials work.
    pub ttl: Duration,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            stun_urls: vec![DEFAULT_STUN.to_owned()],
            turn: None,
            ttl: Duration::from_secs(3600),
        }
    }
}

/// One `RTCIceServer` as browsers take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The answer of `GET /api/ice-servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServers {
    pub ice_servers: Vec<IceServer>,
    /// Seconds the credentials stay valid.
    pub ttl: u64,
}

impl IceConfig {
    /// The ICE servers for caller `id`, with TURN credentials valid for `ttl` from now.
    pub fn issue(&self, id: &str) -> IceServers {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.issue_at(id, now)
    }

    pub fn issue_at(&self, id: &str, now_unix: u64) -> IceServers {
        let mut ice_servers = Vec::new();
        if !self.stun_urls.is_empty() {
            ice_servers.push(IceServer {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if let Some(turn) = &self.turn {
            let username = format!("{}:{}", now_unix + self.ttl.as_secs(), id);
            ice_servers.push(IceServer {
                urls: turn.urls.clone(),
                credential: Some(credential(&turn.secret, &username)),
                username: Some(username),
            });
        }
        IceServers {
            ice_servers,
            ttl: self.ttl.as_secs(),
        }
    }
}

/// `base64(HMAC-SHA1(secret, username))`, coturn's `use-auth-secret` password.
pub fn credential(secret: &str, username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a `stun:`, `stuns:`, `turn:` or `turns:` URL (RFC 7064/7065): a host, an optional
/// port, and for TURN an optional `?transport=udp|tcp`.
pub fn check_url(url: &str, turn: bool) -> Result<(), &'static str> {
    let schemes: &[&str] = if turn {
        &["turn:", "turns:"]
    } else {
        &["stun:", "stuns:"]
    };
    let rest = schemes
        .iter()
        .find_map(|s| url.strip_prefix(s))
        .ok_or(if turn {
            "expected turn: or turns: URLs"
        } else {
            "expected stun: or stuns: URLs"
        })?;
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    match query {
        None => {}
        Some("transport=udp" | "transport=tcp") if turn => {}
        Some(_) => return Err("the only query allowed is ?transport=udp or ?transport=tcp (TURN)"),
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed [ in an IPv6 host")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !host_ok {
        return Err("expected a host name or IP address");
    }
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err("expected a port number 1-65535");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_matches_an_independent_hmac() {
        // printf '%s' '1700000000:alice' | openssl dgst -sha1 -hmac 's3cret' -binary | base64
        assert_eq!(
            credential("s3cret", "1700000000:alice"),
            "TtElzSjT0GdnTQ9xdcRNxx96yQs="
        );
    }

    #[test]
    fn issues_stun_and_expiring_turn_credentials() {
        let config = IceConfig {
            stun_urls: vec!["stun:stun.example.com:3478".into()],
            turn: Some(TurnConfig {
                urls: vec!["turn:turn.example.com:3478?transport=udp".into()],
                secret: "s3cret".into(),
            }),
            ttl: Duration::from_secs(600),
        };
        let issued = config.issue_at("alice", 1_699_999_400);
        assert_eq!(issued.ttl, 600);
        let json = serde_json::to_value(&issued).unwrap();
        assert_eq!(
            json["iceServers"][0],
            serde_json::json!({"urls": ["stun:stun.example.com:3478"]})
        );
        assert_eq!(json["iceServers"][1]["username"], "1700000000:alice");
        assert_eq!(
            json["iceServers"][1]["credential"],
            "TtElzSjT0GdnTQ9xdcRNxx96yQs="
        );
        let stun_only = IceConfig::default().issue_at("x", 0);
        assert_eq!(stun_only.ice_servers.len(), 1);
        assert_eq!(stun_only.ice_servers[0].username, None);
    }

    #[test]
    fn urls_are_checked() {
        for ok in [
            "turn:turn.example.com:3478?transport=udp",
            "turns:t.example.com:5349?transport=tcp",
            "turn:127.0.0.1",
            "turn:[::1]:3478",
        ] {
            assert_eq!(check_url(ok, true), Ok(()), "{ok}");
        }
        assert_eq!(check_url("stun:stun.l.google.com:19302", false), Ok(()));
        for bad in [
            "http://x",
            "turn:",
            "turn:host:0",
            "turn:host:99999",
            "turn:host?transport=sctp",
            "turn:ho st",
            "stun:x",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
        assert!(check_url("stun:x?transport=udp", false).is_err());
    }
}
