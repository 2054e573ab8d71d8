//! The Standard Webhooks signing secret (`WEBHOOK_SECRET`: `whsec_` followed by the base64 of
//! at least 24 random bytes) and the signature it makes, exactly as the specification
//! (<https://www.standardwebhooks.com>) defines it, so its published libraries verify our
//! deliveries unchanged: `v1,` + base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Fewest key bytes the specification allows.
pub const MIN_SECRET_BYTES: usize = 24;
const PREFIX: &str = "whsec_";

#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(hidden)")
    }
}

impl WebhookSecret {
    /// Reads `whsec_<base64>`; why not, as a sentence.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let encoded = raw
            .trim()
            .strip_prefix(PREFIX)
            .ok_or("expected `whsec_` followed by base64 (a Standard Webhooks secret)")?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "the part after `whsec_` is not valid base64")?;
        if key.len() < MIN_SECRET_BYTES {
            return Err("too short: the base64 after `whsec_` must hold at least 24 bytes");
        }
        Ok(Self { key })
    }

    /// The `webhook-signature` header of a delivery of `body` with this id and timestamp.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the specification's reference libraries.
    #[test]
    fn signs_like_the_reference_implementation() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn malformed_or_short_secrets_are_refused() {
        for bad in [
            "",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
        assert!(
            format!(
                "{:?}",
                WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
            )
            .contains("hidden")
        );
    }
}
