//! Test fixtures shared by the unit tests of `es/`: the scope of tenant `a` on `logs-*`.

use super::continuation::{Binding, IdKey};
use super::{FilterSet, Scope};

/// Tenant `a` (`tenant: a`) on `logs-*`, token `tok_test`, a fixed sealing key.
pub(crate) fn scope() -> Scope {
    Scope {
        filters: FilterSet::new([("tenant".to_string(), "a".to_string())]),
        indices: vec!["logs-*".to_string()],
        ids: Binding {
            token_id: "tok_test".into(),
            key: std::sync::Arc::new(IdKey::new([1; 32])),
        },
    }
}
