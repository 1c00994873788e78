//! Bearer tokens for clients that cannot hold a certificate.
//!
//! A token reads `qvr_<id>_<secret>`: `id` is 12 random alphanumerics that find the
//! token's entry in the metadata, `secret` is 32 random bytes in hex. Only the SHA-256
//! of the secret is stored (a token is as strong as 256 random bits, so a fast hash is
//! enough; a password would need a slow one). The secret is shown once, when the token
//! is issued.

use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};

/// The prefix that makes a token recognisable in a config file or a leaked log line.
const PREFIX: &str = "qvr_";
const ID_LEN: usize = 12;
const SECRET_BYTES: usize = 32;

/// A freshly issued token: the text to give the client, and what the metadata keeps.
#[derive(Clone)]
pub struct IssuedToken {
    pub token_id: String,
    /// The whole token, `qvr_<id>_<secret>`; shown once.
    pub token: String,
    pub secret_sha256: String,
}

impl std::fmt::Debug for IssuedToken {
    // The secret never reaches a log through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// Draws a new token.
pub fn issue() -> IssuedToken {
    let mut rng = rand::thread_rng();
    let token_id: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(ID_LEN)
        .map(char::from)
        .collect();
    let secret_bytes: [u8; SECRET_BYTES] = rng.r#gen();
    let secret = hex(&secret_bytes);
    IssuedToken {
        token: format!("{PREFIX}{token_id}_{secret}"),
        secret_sha256: sha256_hex(secret.as_bytes()),
        token_id,
    }
}

/// A presented token split into its id and the hash of its secret; `None` when it is
/// not shaped like a token at all.
pub fn parse(presented: &str) -> Option<(String, String)> {
    let rest = presented.trim().strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.is_empty() || secret.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some((id.to_string(), sha256_hex(secret.as_bytes())))
}

/// Compares two hashes in time that does not depend on where they differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_parses_back_to_its_id_and_hash() {
        let issued = issue();
        assert!(issued.token.starts_with("qvr_"));
        let (id, hash) = parse(&issued.token).expect("parses");
        assert_eq!(id, issued.token_id);
        assert!(same_hash(&hash, &issued.secret_sha256));
        assert!(
            !format!("{issued:?}").contains(&issued.token),
            "Debug hides the secret"
        );
    }

    #[test]
    fn a_wrong_secret_gives_another_hash_and_junk_does_not_parse() {
        let issued = issue();
        let forged = format!("qvr_{}_{}", issued.token_id, "00".repeat(32));
        let (_, hash) = parse(&forged).expect("well-formed");
        assert!(!same_hash(&hash, &issued.secret_sha256));
        for junk in ["", "qvr_", "qvr__abc", "qvr_id_", "Bearer x", "qvr_a-b_c"] {
            assert!(parse(junk).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn tokens_are_unique() {
        let a = issue();
        let b = issue();
        assert_ne!(a.token_id, b.token_id);
        assert_ne!(a.secret_sha256, b.secret_sha256);
    }
}
