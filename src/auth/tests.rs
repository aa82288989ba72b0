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
        previous_secret: None,
        limits: Default::default(),
        kibana_spaces: vec!["default".into()],
        scores: None,
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
        let got = authenticate(&snap, &credential, 0).map(|t| t.id.clone());
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
    assert!(authenticate(&store.snapshot(), &Credential::Secret(old.clone()), 0).is_ok());
    let reset = token("a", &new);
    store
        .update(|_| Ok::<_, StoreError>((vec![Change::PutToken { token: reset }], ())))
        .await
        .map_err(|e| e.to_string())
        .expect("update");
    let snap = store.snapshot();
    assert_eq!(
        authenticate(&snap, &Credential::Secret(old.clone()), 0).map(|t| t.id.clone()),
        Err(AuthError::Unknown)
    );
    assert!(authenticate(&snap, &Credential::Secret(new.clone()), 0).is_ok());
    store
        .update(|_| Ok::<_, StoreError>((vec![Change::DeleteToken { id: "a".into() }], ())))
        .await
        .map_err(|e| e.to_string())
        .expect("update");
    assert_eq!(
        authenticate(&store.snapshot(), &Credential::Secret(new), 0).map(|t| t.id.clone()),
        Err(AuthError::Unknown)
    );
}

#[tokio::test]
async fn a_previous_secret_opens_the_token_only_during_its_overlap() {
    let (old, new, older) = (Secret::generate(), Secret::generate(), Secret::generate());
    let mut t = token("a", &new);
    t.previous_secret = Some(Box::new(crate::store::model::PreviousSecret {
        hash: old.hash(),
        expires_at: 100,
    }));
    let store = match Store::open(Box::new(MemoryPersistence(vec![Change::PutToken {
        token: t.clone(),
    }]))) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let snap = store.snapshot();
    let id = |s: &Secret, now| {
        authenticate(&snap, &Credential::Secret(s.clone()), now).map(|t| t.id.clone())
    };
    for (secret, now, expected) in [
        (&new, 0, Ok("a")),
        (&new, 1_000, Ok("a")),
        (&old, 0, Ok("a")),
        (&old, 99, Ok("a")),
        (&old, 100, Err(AuthError::Unknown)),
        (&old, 1_000, Err(AuthError::Unknown)),
        (&older, 0, Err(AuthError::Unknown)),
    ] {
        assert_eq!(id(secret, now), expected.map(str::to_owned), "at {now}");
    }
    // A second rotation replaces the previous secret: the older one stops at once.
    let mut again = token("a", &older);
    again.previous_secret = Some(Box::new(crate::store::model::PreviousSecret {
        hash: new.hash(),
        expires_at: 100,
    }));
    store
        .update(|_| Ok::<_, StoreError>((vec![Change::PutToken { token: again }], ())))
        .await
        .map_err(|e| e.to_string())
        .expect("update");
    let snap = store.snapshot();
    for (secret, expected) in [
        (&older, Ok("a")),
        (&new, Ok("a")),
        (&old, Err(AuthError::Unknown)),
    ] {
        let got = authenticate(&snap, &Credential::Secret(secret.clone()), 0);
        assert_eq!(got.map(|t| t.id.clone()), expected.map(str::to_owned));
    }
    assert!(
        snap.token_by_hash(&old.hash()).is_none(),
        "old hash left the index"
    );
    // Delete removes both.
    store
        .update(|_| Ok::<_, StoreError>((vec![Change::DeleteToken { id: "a".into() }], ())))
        .await
        .map_err(|e| e.to_string())
        .expect("update");
    let snap = store.snapshot();
    assert!(snap.token_by_hash(&new.hash()).is_none());
    assert!(snap.token_by_hash(&older.hash()).is_none());
}

/// A malformed credential's refusal says which forms esgate takes (it echoes nothing sent).
#[test]
fn the_malformed_refusal_names_the_accepted_forms() {
    let text = AuthError::Malformed.to_string();
    for form in ["Bearer", "Basic", "ApiKey", "esg_"] {
        assert!(text.contains(form), "{form}: {text}");
    }
}
