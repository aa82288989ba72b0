//! Parsing the Authorization header. SIGNATURES ONLY (placeholder bodies).

use super::secret::Secret;
use super::AuthError;

/// A well-formed credential naming a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Bearer, or Basic with the secret as user (password `token`) or as password.
    Secret(Secret),
    /// `ApiKey base64(id:secret)`: the id must be the token's id.
    ApiKey { id: String, secret: Secret },
}

/// Parses every `Authorization` header value of a request (more than one is malformed).
pub fn parse(values: &[&[u8]]) -> Result<Credential, AuthError> {
    if values.is_empty() {
        return Err(AuthError::Missing);
    }
    Err(AuthError::Malformed)
}
