//! Authentication: credential parsing, secrets, lookup, and the failure limiter.
//!
//! Invariant: never awaits the store (reads a `Snapshot`); secrets never logged; compares in
//! constant time where a comparison is needed.

pub mod credential;
pub mod limiter;
pub mod secret;

use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::store::model::Token;
use crate::store::Snapshot;
use credential::Credential;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing authentication credentials for REST request")]
    Missing,
    #[error("malformed authentication credentials")]
    Malformed,
    #[error("unable to authenticate with the provided credentials")]
    Unknown,
}

/// Finds the token a credential names.
///
/// The lookup is by SHA-256 of the secret (256 random bits, so a hash-table probe leaks nothing
/// useful); for `ApiKey` the presented id must also equal the token's id, compared in constant
/// time. Every failure is the same `Unknown`, so callers cannot tell which part was wrong.
pub fn authenticate(snapshot: &Snapshot, credential: &Credential) -> Result<Arc<Token>, AuthError> {
    let (secret, claimed_id) = match credential {
        Credential::Secret(secret) => (secret, None),
        Credential::ApiKey { id, secret } => (secret, Some(id)),
    };
    let token = snapshot
        .token_by_hash(&secret.hash())
        .ok_or(AuthError::Unknown)?;
    if let Some(id) = claimed_id {
        if !bool::from(token.id.as_bytes().ct_eq(id.as_bytes())) {
            return Err(AuthError::Unknown);
        }
    }
    Ok(Arc::clone(token))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::secret::Secret;
    use super::*;
    use crate::store::model::Permission;
    use crate::store::{Change, Persistence, Store, StoreError};

    struct MemoryPersistence(Vec<Change>);

    impl Persistence for MemoryPersistence {
        fn load(&mut self) -> Result<Vec<Change>, StoreError> {
            Ok(self.0.clone())
        }
        fn append(&mut self, changes: &[Change]) -> Result<(), StoreError> {
            self.0.extend_from_slice(changes);
            Ok(())
        }
    }

    fn token(id: &str, secret: &Secret) -> Token {
        Token {
            id: id.to_owned(),
            name: format!("token {id}"),
            secret_hash: secret.hash(),
            filters: vec![],
            indices: vec!["*".to_owned()],
            permissions: BTreeSet::from([Permission::Read]),
            created_at: 0,
            expires_at: None,
            ip_filter: None,
            kibana_spaces: vec!["default".into()],
        }
    }

    fn snapshot_with(tokens: &[Token]) -> Arc<Snapshot> {
        let changes = tokens
            .iter()
            .map(|t| Change::PutToken { token: t.clone() })
            .collect();
        match Store::open(Box::new(MemoryPersistence(changes))) {
            Ok(store) => store.snapshot(),
            Err(e) => panic!("in-memory store failed to open: {e}"),
        }
    }

    #[test]
    fn credentials_find_their_token_or_fail_as_unknown() {
        let (sa, sb, stranger) = (Secret::generate(), Secret::generate(), Secret::generate());
        let snap = snapshot_with(&[token("a", &sa), token("b", &sb)]);
        let cases: Vec<(Credential, Result<&str, AuthError>)> = vec![
            (Credential::Secret(sa.clone()), Ok("a")),
            (Credential::Secret(sb.clone()), Ok("b")),
            (
                Credential::Secret(stranger.clone()),
                Err(AuthError::Unknown),
            ),
            (
                Credential::ApiKey {
                    id: "a".into(),
                    secret: sa.clone(),
                },
                Ok("a"),
            ),
            // The id must be the secret's own token, not another existing one.
            (
                Credential::ApiKey {
                    id: "b".into(),
                    secret: sa.clone(),
                },
                Err(AuthError::Unknown),
            ),
            (
                Credential::ApiKey {
                    id: "a ".into(),
                    secret: sa.clone(),
                },
                Err(AuthError::Unknown),
            ),
            (
                Credential::ApiKey {
                    id: "".into(),
                    secret: sa.clone(),
                },
                Err(AuthError::Unknown),
            ),
            (
                Credential::ApiKey {
                    id: "a".into(),
                    secret: stranger,
                },
                Err(AuthError::Unknown),
            ),
        ];
        for (credential, expected) in cases {
            let got = authenticate(&snap, &credential).map(|t| t.id.clone());
            assert_eq!(got, expected.map(str::to_owned), "{credential:?}");
        }
    }

    #[tokio::test]
    async fn reset_and_delete_stop_the_old_secret_at_once() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let store = match Store::open(Box::new(MemoryPersistence(vec![Change::PutToken {
            token: token("a", &old),
        }]))) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert!(authenticate(&store.snapshot(), &Credential::Secret(old.clone())).is_ok());
        let reset = token("a", &new);
        store
            .update(|_| Ok::<_, StoreError>((vec![Change::PutToken { token: reset }], ())))
            .await
            .map_err(|e| e.to_string())
            .expect("update");
        let snap = store.snapshot();
        assert_eq!(
            authenticate(&snap, &Credential::Secret(old.clone())).map(|t| t.id.clone()),
            Err(AuthError::Unknown)
        );
        assert!(authenticate(&snap, &Credential::Secret(new.clone())).is_ok());
        store
            .update(|_| Ok::<_, StoreError>((vec![Change::DeleteToken { id: "a".into() }], ())))
            .await
            .map_err(|e| e.to_string())
            .expect("update");
        assert_eq!(
            authenticate(&store.snapshot(), &Credential::Secret(new)).map(|t| t.id.clone()),
            Err(AuthError::Unknown)
        );
    }
}
