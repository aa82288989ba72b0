//! esgate started in-process for a test: real listeners on 127.0.0.1:0, a config built from
//! TOML text, a store in a temp dir, and the admin key `ADMIN_KEY`. Dropping or `stop`ping
//! it shuts it down. Also the `[audit]` section of a test writing to a file, and the reading
//! of that file's records.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use esgate::app::App;
use esgate::config::{self, Overrides};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// An `[audit]` section writing its records to the file at `path` (a test's config adds keys
/// such as `on_failure` after it).
pub fn audit_file_section(path: &Path) -> String {
    format!(
        "[audit]\noutput = \"file\"\npath = {:?}\n",
        path.display().to_string()
    )
}

/// The records of the audit file at `audit` that `keep` keeps, waited for until there are
/// `at_least` of them or `patience` is over (then those there are). Records are written by
/// their own thread after the answer: a test reads them through this. Lines that are not JSON
/// (one being written) are passed over.
pub async fn audit_records(
    audit: &Path,
    keep: impl Fn(&Value) -> bool,
    at_least: usize,
    patience: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + patience;
    loop {
        let found: Vec<Value> = std::fs::read_to_string(audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| keep(r))
            .collect();
        if found.len() >= at_least || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Esgate {
    pub data_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The Kibana front's address, when the config has a `[kibana]` section.
    pub front_addr: Option<SocketAddr>,
    pub app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    pub store_dir: tempfile::TempDir,
}

impl Esgate {
    /// esgate in front of `backends`, with `extra` TOML appended to the test config (it may
    /// add sections other than `[listen]`, `[backend]`, `[store]` and `[admin]`).
    pub async fn start(backends: &[&str], extra: &str) -> Esgate {
        Esgate::start_full(backends, "", "", extra).await
    }

    /// Like `start`, with extra keys for the `[listen]` and `[backend]` sections.
    pub async fn start_full(backends: &[&str], listen: &str, backend: &str, extra: &str) -> Esgate {
        let store_dir = tempfile::tempdir().expect("temp dir");
        Esgate::start_on(store_dir, backends, listen, backend, extra).await
    }

    /// Stops this esgate and starts a new one on the same store (a restart), with `extra`.
    pub async fn restart(mut self, backends: &[&str], extra: &str) -> Esgate {
        let dir = std::mem::replace(&mut self.store_dir, tempfile::tempdir().expect("temp dir"));
        self.stop().await;
        Esgate::start_on(dir, backends, "", "", extra).await
    }

    /// Like `start_full`, on an existing store directory (its `store` subdirectory).
    pub async fn start_on(
        store_dir: tempfile::TempDir,
        backends: &[&str],
        listen: &str,
        backend: &str,
        extra: &str,
    ) -> Esgate {
        let urls: Vec<String> = backends.iter().map(|u| format!("{u:?}")).collect();
        let text = format!(
            "[listen]\ndata = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{listen}\n\
             [backend]\nurls = [{}]\n{backend}\n\
             [store]\npath = {:?}\n\
             [admin]\nkey = {ADMIN_KEY:?}\n\
             {}{extra}\n",
            urls.join(", "),
            store_dir.path().join("store").display().to_string(),
            if extra.contains("[audit]") {
                ""
            } else {
                "[audit]\noutput = \"off\"\n"
            },
        );
        let raw = config::parse(&text)
            .unwrap_or_else(|e| panic!("test config does not parse: {e}\n{text}"));
        let config = config::validate(raw, &Overrides::default(), &|_| None)
            .unwrap_or_else(|e| panic!("test config is invalid: {e:?}"));
        let app = Arc::new(App::build(config).expect("esgate builds"));
        let data = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let data_addr = data.local_addr().expect("addr");
        let admin_addr = admin.local_addr().expect("addr");
        let front = match app.config.kibana {
            Some(_) => Some(
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind"),
            ),
            None => None,
        };
        let front_addr = front.as_ref().map(|l| l.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(esgate::server::run_live(
            Arc::new(esgate::app::Live::new(Arc::clone(&app))),
            data,
            admin,
            front,
            async {
                let _ = rx.await;
            },
        ));
        Esgate {
            data_addr,
            admin_addr,
            front_addr,
            app,
            stop: Some(tx),
            task: Some(task),
            store_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.data_addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin_addr, path)
    }

    /// Signals shutdown and waits until esgate has drained and stopped.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task ends cleanly");
        }
        // Tasks that held the App (a connection's, a backend connection's) may still be
        // unwinding: wait until this handle is the last, so the store's lock is released when
        // `stop` returns (a test reopening the store found it held, once in CI).
        for _ in 0..500 {
            if Arc::strong_count(&self.app) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Starts the shutdown without waiting; returns the server task to await.
    pub fn begin_stop(&mut self) -> JoinHandle<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("running")
    }

    /// A GET on the data listener with a token secret as Bearer.
    pub async fn get(&self, path: &str, secret: &str) -> super::http::Reply {
        let auth = format!("Bearer {secret}");
        super::http::send(
            "GET",
            &self.url(path),
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await
        .expect("esgate answers")
    }

    /// A request on the data listener with `auth` as the whole `Authorization` value and an
    /// optional body given as (content type, text).
    pub async fn send_as(
        &self,
        auth: &str,
        method: &str,
        path: &str,
        body: Option<(&str, String)>,
    ) -> super::http::Reply {
        let mut headers = vec![("authorization", auth)];
        let bytes = match &body {
            Some((content_type, text)) => {
                headers.push(("content-type", content_type));
                text.clone().into_bytes()
            }
            None => Vec::new(),
        };
        super::http::send(method, &self.url(path), &headers, bytes)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: esgate does not answer: {e:?}"))
    }

    /// [`Esgate::send_as`] with an optional JSON body.
    pub async fn json_as(
        &self,
        auth: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> super::http::Reply {
        let body = body.map(|b| ("application/json", b.to_string()));
        self.send_as(auth, method, path, body).await
    }

    /// A GET on the data listener with `auth` as the whole `Authorization` value.
    pub async fn get_as(&self, auth: &str, path: &str) -> super::http::Reply {
        self.send_as(auth, "GET", path, None).await
    }

    /// A JSON POST on the data listener with `auth` as the whole `Authorization` value.
    pub async fn post_as(&self, auth: &str, path: &str, body: &Value) -> super::http::Reply {
        self.json_as(auth, "POST", path, Some(body)).await
    }

    /// Calls the admin API with the admin key.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = format!("Bearer {ADMIN_KEY}");
        let bytes = body
            .map(|b| serde_json::to_vec(&b).expect("json"))
            .unwrap_or_default();
        let reply = super::http::send(
            method,
            &self.admin_url(path),
            &[("authorization", &auth)],
            bytes,
        )
        .await
        .expect("admin API answers");
        let v = if reply.body.is_empty() {
            Value::Null
        } else {
            reply.json()
        };
        (reply.status.as_u16(), v)
    }

    /// Creates a token through the admin API; returns (id, secret).
    pub async fn token(&self, body: Value) -> (String, String) {
        let (status, v) = self.admin("POST", "/tokens", Some(body)).await;
        assert_eq!(status, 201, "token creation failed: {v}");
        (
            v["id"].as_str().expect("id").to_owned(),
            v["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// A JSON request on the data listener with a token secret as Bearer (`Value::Null`: no
    /// body) plus `extra` headers; returns the reply.
    pub async fn call_raw(
        &self,
        secret: &str,
        method: &str,
        path: &str,
        body: Value,
        extra: &[(&str, &str)],
    ) -> super::http::Reply {
        let auth = format!("Bearer {secret}");
        let mut headers = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).expect("json")
        };
        super::http::send(method, &self.url(path), &headers, bytes)
            .await
            .expect("esgate answers")
    }

    /// Like `call_raw`; returns the status and the JSON answer (`Null` when empty).
    pub async fn call(
        &self,
        secret: &str,
        method: &str,
        path: &str,
        body: Value,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let r = self.call_raw(secret, method, path, body, extra).await;
        let v = if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        };
        (r.status.as_u16(), v)
    }

    /// A `read` token on `logs-*` filtered to `tenant: <name>`; returns its secret.
    pub async fn tenant_token(&self, name: &str) -> String {
        self.token(json!({"name": name, "indices": ["logs-*"], "filters": [{"field": "tenant", "value": name}]}))
            .await
            .1
    }

    /// A pass-through (`all`) token's secret.
    pub async fn all_token(&self) -> String {
        self.token(json!({"name": "all", "permissions": ["all"]}))
            .await
            .1
    }
}

impl Drop for Esgate {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
