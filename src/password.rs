//! Room passwords (host moderation): what a client sends is a [`RoomPassword`] that never
//! prints; what the registry keeps is a [`PasswordHash`], a keyed hash — HMAC-SHA256 under the
//! server's [`PasswordKey`] of a per-room random salt and the password — compared in constant
//! time. A keyed hash rather than a slow one (argon2): it costs a fraction of a microsecond,
//! so checking a password never slows joins down nor hands out a CPU lever, and whoever copies
//! the stored hashes (a Redis dump) cannot test guesses against them without the key. The
//! figures behind that choice are in docs/PROTOCOL.md ("Passwords").

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Shortest and longest password, in characters (Unicode scalar values).
pub const PASSWORD_MIN: usize = 4;
pub const PASSWORD_MAX: usize = 128;

const SALT_BYTES: usize = 16;
const MAC_BYTES: usize = 32;
const KEY_BYTES: usize = 32;
/// The version tag of the stored form, so the scheme can change without misreading old rooms.
const FORMAT: &str = "v1";

/// A room password as a client sent it. Its `Debug` hides it, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomPassword(String);

impl RoomPassword {
    pub fn new(password: String) -> Self {
        Self(password)
    }

    /// A length a room password may have: 4 to 128 characters.
    pub fn has_valid_length(password: &str) -> bool {
        (PASSWORD_MIN..=PASSWORD_MAX).contains(&password.chars().count())
    }
}

impl std::fmt::Debug for RoomPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomPassword(<hidden>)")
    }
}

/// The key every password hash of a deployment is made with. In cluster mode all instances
/// must share it (`ROOM_PASSWORD_KEY`, or one kept in Redis); one instance alone makes its
/// own at start-up.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordKey([u8; KEY_BYTES]);

impl std::fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordKey(<hidden>)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl PasswordKey {
    /// A fresh random key.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0; KEY_BYTES];
        getrandom::fill(&mut key)?;
        Ok(Self(key))
    }

    /// The key a configured secret stands for (any length: it is hashed to 32 bytes).
    pub fn from_secret(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// The key as 64 hexadecimal characters (how a cluster shares a key it made itself).
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        unhex(text).map(Self)
    }

    fn mac(&self, salt: &[u8], password: &RoomPassword) -> HmacSha256 {
        // HMAC takes a key of any length: it cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(salt);
        mac.update(password.0.as_bytes());
        mac
    }

    /// A salted hash of `password` under this key, with a fresh random salt.
    pub fn hash(&self, password: &RoomPassword) -> Result<PasswordHash, getrandom::Error> {
        let mut salt = [0; SALT_BYTES];
        getrandom::fill(&mut salt)?;
        let mac = self.mac(&salt, password).finalize().into_bytes().into();
        Ok(PasswordHash { salt, mac })
    }

    /// Whether `password` is the one `hash` was made from; constant time in the hash.
    pub fn verify(&self, hash: &PasswordHash, password: &RoomPassword) -> bool {
        self.mac(&hash.salt, password)
            .verify_slice(&hash.mac)
            .is_ok()
    }
}

/// A room password as kept: salt and keyed hash, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    salt: [u8; SALT_BYTES],
    mac: [u8; MAC_BYTES],
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<hidden>)")
    }
}

impl PasswordHash {
    /// The stored form: `v1.<salt hex>.<hash hex>`.
    pub fn encode(&self) -> String {
        format!("{FORMAT}.{}.{}", hex(&self.salt), hex(&self.mac))
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        if parts.next()? != FORMAT {
            return None;
        }
        let salt = unhex(parts.next()?)?;
        let mac = unhex(parts.next()?)?;
        parts.next().is_none().then_some(Self { salt, mac })
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_checks_its_password_only_under_its_key() {
        let key = PasswordKey::random().unwrap();
        let right = RoomPassword::new("Open Sesame".into());
        let hash = key.hash(&right).unwrap();
        assert!(key.verify(&hash, &right));
        assert!(!key.verify(&hash, &RoomPassword::new("open sesame".into())));
        assert!(!key.verify(&hash, &RoomPassword::new("Open Sesame ".into())));
        let other = PasswordKey::random().unwrap();
        assert!(!other.verify(&hash, &right), "another key");
        let again = key.hash(&right).unwrap();
        assert_ne!(hash, again, "a fresh salt each time");
        assert!(key.verify(&again, &right));
    }

    #[test]
    fn stored_forms_round_trip_and_never_show_the_password() {
        let key = PasswordKey::from_secret("a configured secret");
        assert_eq!(key, PasswordKey::from_secret("a configured secret"));
        assert_eq!(PasswordKey::from_hex(&key.to_hex()), Some(key.clone()));
        let password = RoomPassword::new("hunter22".into());
        let hash = key.hash(&password).unwrap();
        let stored = hash.encode();
        assert!(!stored.contains("hunter22"));
        assert_eq!(PasswordHash::decode(&stored), Some(hash.clone()));
        for bad in ["", "v1", "v2.00.00", "v1.zz.00", &format!("{stored}.x")] {
            assert_eq!(PasswordHash::decode(bad), None, "{bad}");
        }
        for shown in [
            format!("{password:?}"),
            format!("{hash:?}"),
            format!("{key:?}"),
        ] {
            assert!(!shown.contains("hunter22") && !shown.contains(&stored[3..10]));
        }
    }

    #[test]
    fn lengths_count_characters() {
        assert!(!RoomPassword::has_valid_length("abc"));
        assert!(RoomPassword::has_valid_length("abcd"));
        assert!(RoomPassword::has_valid_length(&"é".repeat(128)));
        assert!(!RoomPassword::has_valid_length(&"é".repeat(129)));
    }
}
