//! Token secrets: generation, format check, hashing. SIGNATURES ONLY (placeholder bodies).

use std::fmt;

use crate::store::model::SecretHash;

/// A token secret. `Debug` and `Display` are redacted; `expose` is the only way to the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed token secret")]
pub struct MalformedSecret;

impl Secret {
    /// A new secret from the OS random source.
    pub fn generate() -> Secret {
        Secret(String::new())
    }

    /// Checks the format (prefix, alphabet, length, checksum) without any lookup.
    pub fn parse(text: &str) -> Result<Secret, MalformedSecret> {
        let _ = text;
        Err(MalformedSecret)
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash([0; 32])
    }

    /// The secret's text: only for the one creation/reset answer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
