//! The effective configuration printed back as TOML (`esgate check-config`): every setting with
//! the value `serve` uses, defaults included, in the file's own shape, so the output can be
//! saved and fed to `serve` or `check-config` again (printing that gives the same text).
//!
//! Secrets never appear: a secret read from an environment variable is printed as that
//! variable's `*_env` name; one written in the file is printed as [`REDACTED`], which validation
//! refuses, so a printed configuration never runs with a well-known placeholder key.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::{AuditOutput, Config, SecretSource, REDACTED};

/// A TOML basic string (quotes and escapes), as the `toml` crate writes it.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn path(p: &Path) -> String {
    quoted(&p.display().to_string())
}

/// A duration in the largest unit that holds it exactly (`90s`, `2m`, `7d`, `500ms`), which
/// `duration::parse` reads back to the same value.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let text = if ms == 0 || !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        let s = ms / 1000;
        match s {
            s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
            s if s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
            // Below ten minutes seconds read better ("60s", "120s", as the example config).
            s if s.is_multiple_of(60) && s >= 600 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    };
    quoted(&text)
}

/// Writes `key = value` lines, or comments, under a section header.
struct Out(String);

impl Out {
    fn section(&mut self, name: &str) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        let _ = writeln!(self.0, "[{name}]");
    }

    fn key(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{key} = {value}");
    }

    fn comment(&mut self, text: &str) {
        let _ = writeln!(self.0, "# {text}");
    }

    /// A secret: its environment variable's name, or the placeholder when it is in the file.
    fn secret(&mut self, key: &str, source: &SecretSource) {
        match source {
            SecretSource::Unset => {}
            SecretSource::Inline => {
                self.comment(&format!(
                    "{key} is written in the config file; it is not printed (serve refuses the placeholder: put it back or use {key}_env)"
                ));
                self.key(key, quoted(REDACTED));
            }
            SecretSource::Env(name) => self.key(&format!("{key}_env"), quoted(name)),
        }
    }
}

impl Config {
    /// The effective configuration as TOML that `serve` accepts, secrets redacted.
    pub fn describe(&self) -> String {
        let mut o = Out(String::new());
        let l = &self.limits;
        o.section("listen");
        o.key("data", quoted(&self.data_listen.to_string()));
        o.key("admin", quoted(&self.admin_listen.to_string()));
        o.key("max_connections", l.max_connections);
        o.key("admin_max_connections", l.admin_max_connections);
        o.key("max_connections_per_ip", l.max_connections_per_ip);
        o.key("workers", l.workers);
        o.key("header_timeout", duration(l.header_timeout));
        o.key("idle_timeout", duration(l.idle_timeout));
        o.key("h2_keep_alive_interval", duration(l.h2_keep_alive_interval));
        o.key("h2_keep_alive_timeout", duration(l.h2_keep_alive_timeout));
        o.key("h2_max_concurrent_streams", l.h2_max_concurrent_streams);
        o.key("max_header_bytes", l.max_header_bytes);
        o.key("max_body_bytes", l.max_body_bytes);
        o.key("max_buffered_bytes", l.max_buffered_bytes);
        o.key("buffered_wait", duration(l.buffered_wait));
        o.key("drain_timeout", duration(l.drain_timeout));
        match &self.server_tls {
            Some(tls) => {
                o.section("listen.tls");
                o.key("cert_file", path(&tls.cert_file));
                o.key("key_file", path(&tls.key_file));
                o.key("handshake_timeout", duration(tls.handshake_timeout));
            }
            None => o.comment("[listen.tls] is not set: the data listener speaks plain HTTP"),
        }

        let b = &self.backend;
        let s = &self.sources;
        o.section("backend");
        let urls: Vec<String> = b
            .urls
            .iter()
            .map(|u| {
                let text = u.to_string();
                quoted(text.strip_suffix('/').unwrap_or(&text))
            })
            .collect();
        o.key("urls", format!("[{}]", urls.join(", ")));
        if let Some(user) = &s.backend_username {
            o.key("username", quoted(user));
        }
        o.secret("password", &s.backend_password);
        o.secret("api_key", &s.backend_api_key);
        if b.authorization.is_none() {
            o.comment("no backend credentials: esgate sends no Authorization header upstream");
        }
        match &s.backend_ca_file {
            Some(ca) => o.key("ca_file", path(ca)),
            None => o.comment(
                "ca_file is not set: https backends are checked against the system's roots",
            ),
        }
        if let (Some(cert), Some(key)) = (&s.backend_client_cert_file, &s.backend_client_key_file) {
            o.key("client_cert_file", path(cert));
            o.key("client_key_file", path(key));
        }
        o.key("connect_timeout", duration(b.connect_timeout));
        o.key("request_timeout", duration(b.request_timeout));
        o.key("body_idle_timeout", duration(b.body_idle_timeout));
        o.key("answer_timeout", duration(b.answer_timeout));
        o.key("pool_idle_timeout", duration(b.pool_idle_timeout));
        o.key("max_connections_per_node", b.max_connections_per_node);
        o.key("max_connections_per_token", b.max_connections_per_token);
        o.key("unhealthy_cooldown", duration(b.unhealthy_cooldown));
        o.key("resolve_cache_ttl", duration(b.resolve_cache_ttl));
        let relayed: Vec<String> = b.relay_headers.names().map(quoted).collect();
        o.key("relay_headers", format!("[{}]", relayed.join(", ")));

        o.section("store");
        o.key("path", path(&self.store_path));
        match &self.store {
            crate::config::StoreKind::File => o.key("kind", quoted("file")),
            crate::config::StoreKind::Elasticsearch {
                index,
                urls,
                poll_interval,
                tombstone_retention,
                access,
            } => {
                o.key("kind", quoted("elasticsearch"));
                o.key("index", quoted(index));
                if urls.is_empty() {
                    o.comment("store.urls is not set: the store lives in the [backend] cluster");
                } else {
                    let list: Vec<String> = urls.iter().map(|u| quoted(&u.to_string())).collect();
                    o.key("urls", format!("[{}]", list.join(", ")));
                }
                o.key("poll_interval", duration(*poll_interval));
                o.key("tombstone_retention", duration(*tombstone_retention));
                if let Some(user) = &s.store_username {
                    o.key("username", quoted(user));
                }
                o.secret("password", &s.store_password);
                o.secret("api_key", &s.store_api_key);
                if !access.own_credential() {
                    o.comment(
                        "no store credential: the store is read and written with the [backend] credential",
                    );
                }
                if let Some(ca) = &access.ca_file {
                    o.key("ca_file", path(ca));
                }
            }
        }

        o.section("admin");
        match &s.admin_key {
            SecretSource::Unset => o.comment(&format!(
                "no admin key configured: serve generates one into {} (mode 0600) on first start",
                self.store_path.join(crate::app::ADMIN_KEY_FILE).display()
            )),
            source => o.secret("key", source),
        }

        o.section("ids");
        match &s.ids_key_env {
            Some(name) => o.key("key_env", quoted(name)),
            None => o.comment(&format!(
                "ids.key_env is not set: the id-sealing key is {} (created on first start)",
                self.store_path.join("id.key").display()
            )),
        }

        let a = &self.auth;
        o.section("auth");
        let proxies: Vec<String> = a
            .trusted_proxies
            .iter()
            .map(|n| quoted(&n.to_string()))
            .collect();
        o.key("trusted_proxies", format!("[{}]", proxies.join(", ")));
        o.key("max_failures", a.max_failures);
        o.key("failure_window", duration(a.failure_window));
        o.key("max_tracked_addresses", a.max_tracked_addresses);

        let p = &self.policies;
        o.section("policies");
        match p.max_lifetime {
            Some(d) => o.key("max_lifetime", duration(d)),
            None => o.comment("max_lifetime is not set: a token's lifetime is not capped"),
        }
        o.key("require_expiry", p.require_expiry);
        o.key("require_ip_filter", p.require_ip_filter);
        o.key("require_filters", p.require_filters);
        o.key("allow_permission_updates", p.allow_permission_updates);
        o.key("allow_open_ip_filters", p.allow_open_ip_filters);
        if !p.limits.is_empty() {
            o.section("policies.limits");
            let view =
                serde_json::to_value(crate::admin::limits::view(&p.limits)).unwrap_or_default();
            for (k, v) in view.as_object().into_iter().flatten() {
                o.key(k, v);
            }
        }

        o.section("audit");
        match &self.audit {
            AuditOutput::Off => o.key("output", quoted("off")),
            AuditOutput::Stdout => o.key("output", quoted("stdout")),
            AuditOutput::File(file) => {
                o.key("output", quoted("file"));
                o.key("path", path(file));
            }
        }
        o.key("on_failure", quoted(self.audit_on_failure.as_str()));

        o.section("log");
        o.key("level", quoted(&self.log.level));
        o.key(
            "format",
            quoted(if self.log.json { "json" } else { "text" }),
        );

        o.section("metrics");
        o.key(
            "max_token_series",
            self.metrics.max_token_series.to_string(),
        );
        if let Some(k) = &self.kibana {
            o.section("kibana");
            o.key("url", quoted(k.url.to_string().trim_end_matches('/')));
            o.key("listen", quoted(&k.listen.to_string()));
            o.key("public_url", quoted(&k.public_url));
        }
        o.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, validate, Overrides};

    fn env(name: &str) -> Option<String> {
        match name {
            "ES_PW" => Some("backend-password-value".into()),
            "ESGATE_ADMIN_KEY" | "ADMIN" => Some("admin-key-value-0123456789".into()),
            _ => None,
        }
    }

    fn described(toml: &str) -> String {
        validate(parse(toml).expect("parses"), &Overrides::default(), &env)
            .expect("valid")
            .describe()
    }

    #[test]
    fn durations_print_in_a_unit_that_reads_back_exactly() {
        for (d, text) in [
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(900), "15m"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(7 * 86_400), "7d"),
        ] {
            assert_eq!(duration(d), format!("\"{text}\""));
            assert_eq!(crate::duration::parse(text).unwrap(), d);
        }
    }

    /// Every configuration prints as TOML that validates again and prints the same text.
    #[test]
    fn the_printed_configuration_is_a_fixed_point() {
        for toml in [
            "",
            include_str!("../../config/esgate.toml"),
            "[backend]\nurls = [\"http://a:9200/\", \"https://b:9243\"]\nusername = \"u\"\npassword_env = \"ES_PW\"\n\
             [admin]\nkey_env = \"ADMIN\"\n[auth]\ntrusted_proxies = [\"10.1.2.3\", \"fd00::/8\"]\n\
             [policies]\nmax_lifetime = \"90d\"\nallow_open_ip_filters = false\n\
             [policies.limits]\nrequests_per_second = 50\nmax_size = 1000\nsearch_timeout = \"1500ms\"\n\
             [audit]\noutput = \"file\"\npath = \"/var/log/a \\\"b\\\".jsonl\"\n\
             [log]\nlevel = \"info,esgate=debug\"\nformat = \"json\"\n\
             [listen]\nheader_timeout = \"1500ms\"\n",
            "[store]\nkind = \"elasticsearch\"\n[admin]\nkey_env = \"ADMIN\"\n",
            "[store]\nkind = \"elasticsearch\"\nindex = \".tokens\"\nurls = [\"https://s:9200\"]\npoll_interval = \"250ms\"\n[admin]\nkey_env = \"ADMIN\"\n",
            "[store]\nkind = \"elasticsearch\"\nusername = \"esgate_store\"\npassword_env = \"ES_PW\"\n[admin]\nkey_env = \"ADMIN\"\n",
            "[store]\nkind = \"elasticsearch\"\napi_key_env = \"ES_PW\"\n[admin]\nkey_env = \"ADMIN\"\n",
            "[kibana]\nurl = \"http://kibana:5601\"\nlisten = \"0.0.0.0:5602\"\npublic_url = \"https://dash.example.com/\"\n",
        ] {
            let first = described(toml);
            let again = described(&first);
            assert_eq!(first, again, "not a fixed point for:\n{toml}");
            let value: toml::Table = toml::from_str(&first).expect("valid TOML");
            assert!(value.contains_key("listen") && value.contains_key("policies"));
        }
    }

    /// store17: the store's own credential prints as its variable's name (or the refused
    /// placeholder), never its value; without one, a comment says the backend's is used.
    #[test]
    fn the_store_credential_prints_without_its_secret() {
        let text = described(
            "[store]\nkind = \"elasticsearch\"\nusername = \"esgate_store\"\npassword_env = \"ES_PW\"\n[admin]\nkey_env = \"ADMIN\"\n",
        );
        let store = &text[text.find("[store]").unwrap()..text.find("[admin]").unwrap()];
        assert!(
            store.contains("username = \"esgate_store\"\npassword_env = \"ES_PW\"\n"),
            "{store}"
        );
        assert!(!text.contains("backend-password-value"), "{text}");
        let text = described(
            "[store]\nkind = \"elasticsearch\"\napi_key = \"inline-store-key\"\n[admin]\nkey_env = \"ADMIN\"\n",
        );
        assert!(!text.contains("inline-store-key"), "{text}");
        assert!(text.contains("api_key = \"<redacted>\""), "{text}");
        let text = described("[store]\nkind = \"elasticsearch\"\n[admin]\nkey_env = \"ADMIN\"\n");
        assert!(text.contains("# no store credential"), "{text}");
    }

    #[test]
    fn secrets_print_as_their_variable_names_or_the_refused_placeholder() {
        let text = described("[backend]\nusername = \"u\"\npassword_env = \"ES_PW\"\n");
        assert!(text.contains("password_env = \"ES_PW\""), "{text}");
        assert!(
            text.contains("[admin]\nkey_env = \"ESGATE_ADMIN_KEY\""),
            "{text}"
        );
        assert!(!text.contains("backend-password-value") && !text.contains("admin-key-value"));

        let text = described(
            "[backend]\nusername = \"u\"\npassword = \"inline-secret-1\"\n[admin]\nkey = \"inline-admin-key-0123\"\n",
        );
        assert!(!text.contains("inline-secret-1") && !text.contains("inline-admin-key"));
        assert!(text.contains("password = \"<redacted>\""), "{text}");
        assert!(text.contains("key = \"<redacted>\""), "{text}");
        let issues = validate(parse(&text).unwrap(), &Overrides::default(), &env).unwrap_err();
        let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["backend.password", "admin.key"], "{issues:?}");
        assert!(issues[0].message.contains("placeholder"), "{issues:?}");
    }

    #[test]
    fn every_setting_is_printed() {
        let text = described("");
        let value: toml::Table = toml::from_str(&text).unwrap();
        for (section, keys) in [
            (
                "listen",
                &[
                    "data",
                    "admin",
                    "max_connections",
                    "admin_max_connections",
                    "max_connections_per_ip",
                    "workers",
                    "header_timeout",
                    "idle_timeout",
                    "h2_keep_alive_interval",
                    "h2_keep_alive_timeout",
                    "h2_max_concurrent_streams",
                    "max_header_bytes",
                    "max_body_bytes",
                    "max_buffered_bytes",
                    "buffered_wait",
                    "drain_timeout",
                ][..],
            ),
            (
                "backend",
                &[
                    "urls",
                    "connect_timeout",
                    "request_timeout",
                    "body_idle_timeout",
                    "answer_timeout",
                    "pool_idle_timeout",
                    "max_connections_per_node",
                    "max_connections_per_token",
                    "unhealthy_cooldown",
                    "resolve_cache_ttl",
                    "relay_headers",
                ][..],
            ),
            ("store", &["path", "kind"][..]),
            (
                "auth",
                &[
                    "trusted_proxies",
                    "max_failures",
                    "failure_window",
                    "max_tracked_addresses",
                ][..],
            ),
            (
                "policies",
                &[
                    "require_expiry",
                    "require_ip_filter",
                    "require_filters",
                    "allow_permission_updates",
                    "allow_open_ip_filters",
                ][..],
            ),
            ("audit", &["output", "on_failure"][..]),
            ("log", &["level", "format"][..]),
            ("metrics", &["max_token_series"][..]),
        ] {
            for key in keys {
                assert!(
                    value[section].get(*key).is_some(),
                    "{section}.{key} missing:\n{text}"
                );
            }
        }
        assert!(!text.contains("Some(") && !text.contains("None") && !text.contains(" { "));
    }
}
