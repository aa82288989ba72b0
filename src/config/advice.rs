//! Advice on a configuration that validates but may not do what its writer expects: logged by
//! `serve` at start-up and on reload, and printed by `check-config`. Pure: it reads the checked
//! [`Config`] only.

use super::{Config, ConfigIssue};

/// How many times a body's size checking it may hold (its parsed form is about four times a
/// search body's size; see `listen.max_buffered_bytes` in docs/configuration.md).
const CHECKING_FACTOR: usize = 4;

impl Config {
    /// What in this configuration deserves a second look, each with its key.
    pub fn advice(&self) -> Vec<ConfigIssue> {
        let mut out = Vec::new();
        let l = &self.limits;
        if l.max_buffered_bytes / CHECKING_FACTOR < l.max_body_bytes {
            out.push(ConfigIssue {
                path: "listen.max_buffered_bytes".to_string(),
                message: format!(
                    "is less than {CHECKING_FACTOR} times listen.max_body_bytes: checking a body holds several times its size, so bodies near listen.max_body_bytes may be refused (413) even when nothing else is in flight"
                ),
            });
        }
        if let super::StoreKind::Elasticsearch {
            tombstone_retention,
            urls,
            access,
            ..
        } = &self.store
        {
            // attack17b: request checks cannot keep an `all` token away from the store index
            // when the cluster computes the name (scripts, ingest pipelines, templates).
            let same = access.authorization.as_ref().map(|a| &a.0)
                == self.backend.authorization.as_ref().map(|a| &a.0);
            if access.own_credential() && same {
                out.push(ConfigIssue {
                    path: "store.username".to_string(),
                    message: "and store.api_key name the [backend] credential: the store's credential keeps all tokens away from the store index only when it is another one, whose role alone holds the store index".to_string(),
                });
            }
            if urls.is_empty() && !access.own_credential() {
                out.push(ConfigIssue {
                    path: "store.username".to_string(),
                    message: "and store.api_key are not set: the store index is read and written with the [backend] credential, which every `all` token's request also carries, and a name the cluster computes (a reindex script, an ingest pipeline) reaches the store index past esgate's checks; where `all` tokens go to parties that must not administer esgate, give the store a credential of its own whose role alone holds the store index (see \"Several replicas\" in the README), or keep the store in another cluster (store.urls)".to_string(),
                });
            }
            if *tombstone_retention < std::time::Duration::from_secs(3600) {
                out.push(ConfigIssue {
                    path: "store.tombstone_retention".to_string(),
                    message: "is under an hour: a replica that misses polls for half of it reads the whole store again, and a delete's tombstone may be purged before a replica restarted or partitioned for longer saw it only through that reload".to_string(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, validate, Overrides};

    fn advice(listen: &str) -> Vec<String> {
        let text = format!(
            "[listen]\n{listen}\n[backend]\nurls = [\"http://127.0.0.1:9200\"]\n[admin]\nkey = \"0123456789abcdef0\"\n"
        );
        let config = validate(parse(&text).unwrap(), &Overrides::default(), &|_| None).unwrap();
        config.advice().into_iter().map(|a| a.path).collect()
    }

    /// The advice's paths for a cluster store with `extra` in its section.
    fn store_advice(extra: &str) -> Vec<String> {
        let text = format!(
            "[backend]\nurls = [\"http://127.0.0.1:9200\"]\n[store]\nkind = \"elasticsearch\"\n{extra}\n[admin]\nkey = \"0123456789abcdef0\"\n"
        );
        let config = validate(parse(&text).unwrap(), &Overrides::default(), &|_| None).unwrap();
        config.advice().into_iter().map(|a| a.path).collect()
    }

    /// Session 13: a tombstone retention under an hour is named; the default is not.
    #[test]
    fn a_short_tombstone_retention_is_named() {
        // With a credential of its own, so that only the retention is advised on.
        let store = |extra: &str| store_advice(&format!("api_key = \"k\"\n{extra}"));
        assert!(store("").is_empty(), "the default (7d)");
        assert!(store("tombstone_retention = \"1h\"").is_empty());
        assert_eq!(
            store("tombstone_retention = \"59m\""),
            ["store.tombstone_retention"]
        );
    }

    /// store17 (attack17b): a cluster store in the backend cluster read and written with the
    /// data credential is named; one with a credential of its own, or in another cluster, and
    /// the file store are not.
    #[test]
    fn a_store_read_with_the_data_credential_is_named() {
        let store = store_advice;
        assert_eq!(store(""), ["store.username"]);
        assert!(store("username = \"esgate_store\"\npassword = \"p\"").is_empty());
        assert!(store("api_key = \"k\"").is_empty());
        assert!(store("urls = [\"http://store:9200\"]").is_empty());
        let same =
            "api_key = \"k\"\n[backend]\nurls = [\"http://127.0.0.1:9200\"]\napi_key = \"k\"";
        let text = format!(
            "[store]\nkind = \"elasticsearch\"\n{same}\n[admin]\nkey = \"0123456789abcdef0\"\n"
        );
        let config = validate(parse(&text).unwrap(), &Overrides::default(), &|_| None).unwrap();
        let paths: Vec<_> = config.advice().into_iter().map(|a| a.path).collect();
        assert_eq!(
            paths,
            ["store.username"],
            "the store's credential is the backend's"
        );
        assert!(advice("").is_empty(), "the file store");
    }

    /// Session 12: a budget that validates (at least the body cap) but cannot hold a body near
    /// the cap while it is checked is named; the defaults and a budget of four caps are not.
    #[test]
    fn a_body_budget_too_small_to_check_the_largest_body_is_named() {
        assert!(advice("").is_empty(), "the defaults");
        assert!(advice("max_body_bytes = 1048576\nmax_buffered_bytes = 4194304").is_empty());
        for budget in [1_048_576, 2_097_152, 4_194_303] {
            assert_eq!(
                advice(&format!(
                    "max_body_bytes = 1048576\nmax_buffered_bytes = {budget}"
                )),
                ["listen.max_buffered_bytes"],
                "{budget}"
            );
        }
    }
}
