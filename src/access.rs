//! Optional JWT room access (`JWT_SECRET`, HS256; unset: off, everyone may join any room).
//! The application's backend mints a token per person and room; the server admits a
//! `join-room` only with a valid one, and takes the display name and host role from it.
//! Tokens are judged here and nowhere else: the join handler, `POST /api/create-room` and
//! the `token` subcommand (which mints them) share these rules.

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Seconds a token's `exp` and `nbf` are allowed to be off, for clocks a little apart.
pub const LEEWAY_SECS: u64 = 5;
/// The `room` claim that admits to every room (and allows `POST /api/create-room`).
pub const ANY_ROOM: &str = "*";

/// The HS256 secret shared with the application's backend.
#[derive(Clone)]
pub struct JwtSecret {
    raw: Vec<u8>,
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(hidden)")
    }
}

/// The claims the server reads; others are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room the token admits to, or `"*"` for any.
    pub room: String,
    /// The display name everywhere, in place of the payload's `userName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The joiner becomes the room's host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host: bool,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Why a token was refused, as a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub &'static str);

impl JwtSecret {
    pub fn new(raw: &str) -> Self {
        Self {
            raw: raw.as_bytes().to_vec(),
        }
    }

    /// The claims of `token` if it is signed with this secret (HS256 only: `alg: none` and
    /// every other algorithm are refused), carries `exp` and `room`, and is valid now.
    pub fn verify(&self, token: &str) -> Result<Claims, Refused> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        // Claims the server does not read (`aud`, `iss`, `sub`, …) are the backend's business.
        validation.validate_aud = false;
        let key = DecodingKey::from_secret(&self.raw);
        jsonwebtoken::decode::<Claims>(token.trim(), &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                Refused(match e.kind() {
                    K::ExpiredSignature => "Access token expired",
                    K::ImmatureSignature => "Access token not valid yet",
                    K::InvalidSignature => "Access token signature is invalid",
                    K::InvalidAlgorithm | K::InvalidAlgorithmName => {
                        "Access token must be signed with HS256"
                    }
                    K::MissingRequiredClaim(_) => "Access token lacks its `exp` claim",
                    K::Json(_) => "Access token claims are malformed (`room` and `exp` required)",
                    _ => "Access token is malformed",
                })
            })
    }

    /// The token of `claims`, signed with this secret.
    pub fn mint(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&self.raw),
        )
    }
}

impl Claims {
    /// Whether these claims admit to `room_id`.
    pub fn admits(&self, room_id: &str) -> bool {
        self.room == ANY_ROOM || self.room == room_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        chrono::Utc::now().timestamp().unsigned_abs()
    }

    fn claims(room: &str) -> Claims {
        Claims {
            room: room.into(),
            name: Some("Ann".into()),
            host: true,
            exp: now() + 60,
            nbf: None,
            iat: Some(now()),
        }
    }

    #[test]
    fn a_minted_token_verifies_with_its_secret_only() {
        let secret = JwtSecret::new("a secret of the application backend");
        let minted = claims("R1");
        let token = secret.mint(&minted).unwrap();
        let got = secret.verify(&token).unwrap();
        assert_eq!(got, minted);
        assert!(got.admits("R1") && !got.admits("R2"));
        assert!(JwtSecret::new("another secret").verify(&token).is_err());
    }

    #[test]
    fn claims_the_server_does_not_read_are_ignored() {
        #[derive(Serialize)]
        struct Extra {
            room: &'static str,
            exp: u64,
            aud: &'static str,
            iss: &'static str,
            sub: &'static str,
        }
        let extra = Extra {
            room: "R",
            exp: now() + 60,
            aud: "meetings",
            iss: "app",
            sub: "user-1",
        };
        let secret = JwtSecret::new("s");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &extra,
            &EncodingKey::from_secret(b"s"),
        )
        .unwrap();
        assert_eq!(secret.verify(&token).unwrap().room, "R");
    }

    #[test]
    fn expired_premature_and_unsigned_tokens_are_refused() {
        let secret = JwtSecret::new("s");
        let mut old = claims("R");
        old.exp = now() - 60;
        assert_eq!(
            secret.verify(&secret.mint(&old).unwrap()),
            Err(Refused("Access token expired"))
        );
        let mut early = claims("R");
        early.nbf = Some(now() + 60);
        assert_eq!(
            secret.verify(&secret.mint(&early).unwrap()),
            Err(Refused("Access token not valid yet"))
        );
        // {"alg":"none","typ":"JWT"} . {"room":"R","exp":9999999999} . (no signature)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb29tIjoiUiIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(secret.verify(none).is_err());
        assert!(secret.verify("garbage").is_err());
        assert!(secret.verify("").is_err());
    }
}
