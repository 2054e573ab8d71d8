//! Who the client is: the IP address every per-address limit counts. By default the TCP
//! peer, since a client writes `X-Forwarded-For` itself. Behind proxies the operator trusts
//! (`TRUSTED_PROXIES`: a number of hops, or the proxies' networks), the right-most address
//! of `X-Forwarded-For` that no trusted proxy added.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Which proxies may set `X-Forwarded-For`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrustedProxies {
    /// None: the header is ignored, the TCP peer is the client.
    #[default]
    None,
    /// This many proxies stand in front of the server (Heroku, Render, Railway: 1).
    Hops(usize),
    /// Proxies whose addresses are in these networks (nginx on the same host: 127.0.0.1/32).
    Networks(Vec<IpNet>),
}

impl TrustedProxies {
    /// `TRUSTED_PROXIES`: a whole number of hops, or addresses / CIDR networks separated by
    /// commas; empty for none.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::None);
        }
        if let Ok(hops) = raw.parse::<usize>() {
            return Ok(if hops == 0 {
                Self::None
            } else {
                Self::Hops(hops)
            });
        }
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{item:?} is neither an address nor a CIDR network"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self::Networks)
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        match self {
            Self::None => peer,
            Self::Hops(hops) => {
                let forwarded = forwarded_for(headers);
                // The first of the trusted hops is the peer; each of the others appended
                // the address it received the request from.
                match forwarded.len().checked_sub(*hops) {
                    Some(index) => forwarded[index],
                    None => peer,
                }
            }
            Self::Networks(networks) => {
                let trusted = |ip: &IpAddr| networks.iter().any(|net| net.contains(ip));
                if !trusted(&peer) {
                    return peer;
                }
                let forwarded = forwarded_for(headers);
                forwarded
                    .iter()
                    .rev()
                    .find(|ip| !trusted(ip))
                    .or(forwarded.first())
                    .copied()
                    .unwrap_or(peer)
            }
        }
    }
}

/// Every `X-Forwarded-For` address, left to right, up to the first that does not parse (a
/// proxy never writes that, so what is left of it came from the client).
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            addresses.clear();
            continue;
        };
        for item in value.split(',') {
            match item.trim().parse() {
                Ok(ip) => addresses.push(ip),
                Err(_) => addresses.clear(),
            }
        }
    }
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::parse("").unwrap();
        assert_eq!(none, TrustedProxies::None);
        assert_eq!(
            none.client(ip("203.0.113.9"), &headers(&["1.2.3.4"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn hops_count_from_the_right() {
        let one = TrustedProxies::parse("1").unwrap();
        let peer = ip("10.0.0.1");
        // The client wrote "6.6.6.6" itself; the one proxy appended the real address.
        assert_eq!(
            one.client(peer, &headers(&["6.6.6.6, 198.51.100.7"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            one.client(peer, &headers(&["6.6.6.6", "198.51.100.7"])),
            ip("198.51.100.7")
        );
        let two = TrustedProxies::parse("2").unwrap();
        assert_eq!(
            two.client(peer, &headers(&["6.6.6.6, 198.51.100.7, 10.0.0.9"])),
            ip("198.51.100.7")
        );
        // Fewer addresses than hops: the request did not come through them all.
        assert_eq!(two.client(peer, &headers(&["198.51.100.7"])), peer);
        assert_eq!(one.client(peer, &headers(&[])), peer);
        assert_eq!(TrustedProxies::parse("0").unwrap(), TrustedProxies::None);
    }

    #[test]
    fn networks_skip_trusted_proxies_from_the_right() {
        let nets = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8 ,::1").unwrap();
        let proxy = ip("10.1.2.3");
        assert_eq!(
            nets.client(proxy, &headers(&["6.6.6.6, 198.51.100.7, 10.9.9.9"])),
            ip("198.51.100.7")
        );
        // A peer that is not a trusted proxy is the client, whatever it claims.
        assert_eq!(
            nets.client(ip("203.0.113.5"), &headers(&["1.2.3.4"])),
            ip("203.0.113.5")
        );
        // Only trusted addresses: the left-most.
        assert_eq!(
            nets.client(ip("127.0.0.1"), &headers(&["10.0.0.2"])),
            ip("10.0.0.2")
        );
        assert_eq!(nets.client(proxy, &headers(&[])), proxy);
        // Garbage left of a real address is cut off.
        assert_eq!(
            nets.client(proxy, &headers(&["nonsense, 198.51.100.7"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in ["-1", "proxy", "10.0.0.0/33", "1.2.3.4, x"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }
}
