//! The local machine's own faults (rel19), injected for real on the real binary: the file
//! store's disk full while admin changes are written (each refused with a clear error, memory
//! and disk equal, a SIGKILL then and a restart read back exactly what was acknowledged); the
//! audit file's disk full under load (fail-open: requests and admin changes go on, the failure
//! logged once and counted, no record left half-written once there is room again); and the
//! open-files limit reached under a connection flood (no busy accept loop, logged once).
//!
//! The full disk is a tiny tmpfs in a mount namespace of its own (`TinyFs`, `unshare -rm`),
//! which nothing outside the test sees; esgate runs inside it through `nsenter`, the test reaches
//! its files through `/proc/<holder>/root`. Where this machine cannot make one (no user
//! namespaces), those tests say so and pass.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use support::backend::Backend;
use support::binary::{self, Served};
use support::esgate::{audit_file_section, ADMIN_KEY};
use support::http::{bearer, send, send_with_timeout};

/// A tmpfs of a few hundred KB mounted in a mount namespace of its own, held by a sleeping
/// process for as long as this value lives (so it outlives an esgate killed and started again).
struct TinyFs {
    holder: Child,
    /// Where it is mounted, as processes inside the namespace see it.
    dir: PathBuf,
    _mount_point: tempfile::TempDir,
}

impl TinyFs {
    /// `None` when the machine cannot make one (no `unshare`, user namespaces disabled).
    fn new(kilobytes: u32) -> Option<TinyFs> {
        let mount_point = tempfile::tempdir().unwrap();
        let dir = mount_point.path().to_path_buf();
        let script = format!(
            "mount -t tmpfs -o size={kilobytes}k tmpfs '{}' && echo mounted && exec sleep 100000",
            dir.display()
        );
        let mut holder = Command::new("unshare")
            .args(["-rm", "--propagation", "private", "sh", "-c", &script])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut line = String::new();
        let _ = BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let _ = holder.wait();
            eprintln!("SKIPPED: cannot mount a tmpfs in a namespace of its own here");
            return None;
        }
        Some(TinyFs {
            holder,
            dir,
            _mount_point: mount_point,
        })
    }

    /// `name` inside the tmpfs, as esgate (inside the namespace) names it.
    fn inside(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `name` inside the tmpfs, as this test reaches it.
    fn outside(&self, name: &str) -> PathBuf {
        let relative = self.dir.strip_prefix("/").unwrap();
        Path::new(&format!("/proc/{}/root", self.holder.id()))
            .join(relative)
            .join(name)
    }

    /// The command that runs a program inside the namespace (`binary::serve_via`).
    fn wrapper(&self) -> Vec<String> {
        let pid = self.holder.id().to_string();
        [
            "nsenter",
            "-t",
            &pid,
            "-U",
            "-m",
            "--preserve-credentials",
            "--",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Fills the file system: a file grows until the disk refuses it.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.outside("fill")).unwrap();
        let block = [0u8; 4096];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                return;
            }
        }
    }

    /// After `fill`: the last block of `name` has room for a few hundred bytes still, where a
    /// small write succeeds between failures (the brink of a full disk); filled with empty
    /// lines, so that every write to the file fails.
    fn fill_up(&self, name: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.outside(name))
            .unwrap();
        loop {
            if let Err(e) = f.write_all(b"\n") {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                return;
            }
        }
    }

    /// Frees the space `fill` took.
    fn free(&self) {
        std::fs::remove_file(self.outside("fill")).unwrap();
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// `esgate serve --config <config>` inside `fs`'s namespace.
fn serve_inside(fs: &TinyFs, config: &str) -> Served {
    let wrapper = fs.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    binary::serve_via(&wrapper, &["--config", config], |_| {})
}

/// esgate inside `fs`'s namespace before `backend`, its store in `store` and its audit file on
/// the tiny disk (`audit.on_failure = on_failure`), and the secret of a pass-through token
/// `load` made while the disk has room.
async fn serve_auditing_inside(
    fs: &TinyFs,
    backend: &Backend,
    store: &Path,
    on_failure: &str,
) -> (Served, String) {
    std::fs::write(
        fs.outside("esgate.toml"),
        format!(
            "[backend]\nurls = [{:?}]\n[store]\npath = {:?}\n[admin]\nkey = {ADMIN_KEY:?}\n\
             {}on_failure = {on_failure:?}\n",
            backend.url(),
            store.join("store").display().to_string(),
            audit_file_section(Path::new(&fs.inside("audit.jsonl"))),
        ),
    )
    .unwrap();
    let served = serve_inside(fs, &fs.inside("esgate.toml"));
    let (status, v) = admin(
        &served,
        "POST",
        "/tokens",
        json!({"name": "load", "permissions": ["all"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let secret = v["secret"].as_str().unwrap().to_owned();
    (served, secret)
}

async fn admin(served: &Served, method: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN_KEY}");
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    let r = send(
        method,
        &format!("{}{path}", served.admin),
        &[("authorization", auth.as_str())],
        body,
    )
    .await
    .unwrap();
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    };
    (r.status.as_u16(), v)
}

/// The token ids the admin API lists.
async fn token_ids(served: &Served) -> std::collections::BTreeSet<String> {
    let (status, list) = admin(served, "GET", "/tokens?size=10000", Value::Null).await;
    assert_eq!(status, 200, "{list}");
    list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A counter's value in the admin listener's exposition.
async fn counter(served: &Served, name: &str) -> f64 {
    let r = send(
        "GET",
        &format!("{}/metrics", served.admin),
        &[],
        Bytes::new(),
    )
    .await
    .unwrap();
    let text = r.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

fn log_of(served: &Served) -> String {
    served.log.lock().unwrap().clone()
}

/// Waits until the log holds `text`.
fn wait_for_log(served: &Served, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = log_of(served);
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {text:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(mut served: Served) {
    served.child.kill().unwrap();
    served.child.wait().unwrap();
}

/// The store's disk fills while admin changes are written: each change the disk refuses is
/// answered with a clear error and is not in memory either; after a SIGKILL and a restart with
/// room again, the store holds exactly the acknowledged tokens, and writes work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_disk_refuses_changes_and_memory_and_disk_agree() {
    let Some(fs) = TinyFs::new(256) else { return };
    std::fs::write(
        fs.outside("esgate.toml"),
        format!(
            "[backend]\nurls = [\"http://127.0.0.1:9\"]\n[store]\npath = {:?}\n\
             [admin]\nkey = {ADMIN_KEY:?}\n[audit]\noutput = \"off\"\n",
            fs.inside("store")
        ),
    )
    .unwrap();
    let config = fs.inside("esgate.toml");
    let served = serve_inside(&fs, &config);
    let mut acknowledged = std::collections::BTreeSet::new();
    for i in 0..2 {
        let (status, v) = admin(
            &served,
            "POST",
            "/tokens",
            json!({"name": format!("before{i}"), "permissions": ["all"]}),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        acknowledged.insert(v["id"].as_str().unwrap().to_owned());
    }

    fs.fill();
    // The journal's last page may hold a few more records; then the disk refuses.
    let mut refused = None;
    for i in 0..500 {
        let (status, v) = admin(
            &served,
            "POST",
            "/tokens",
            json!({"name": format!("full{i}"), "permissions": ["all"]}),
        )
        .await;
        match status {
            201 => {
                acknowledged.insert(v["id"].as_str().unwrap().to_owned());
            }
            _ => {
                refused = Some((status, v));
                break;
            }
        }
    }
    let (status, v) = refused.expect("the full disk refused a change");
    assert_eq!(status, 500, "{v}");
    assert_eq!(v["error"]["type"], "store_exception", "{v}");
    assert_eq!(
        v["error"]["reason"],
        "the change could not be made durable; nothing was changed"
    );
    assert_eq!(
        token_ids(&served).await,
        acknowledged,
        "memory holds what was acknowledged"
    );
    // (The log reaches this process through a pipe and a reader thread: waited for, as in
    // the checks below.)
    wait_for_log(&served, "No space left on device");

    // SIGKILL while the disk is full, then a restart with room again.
    kill(served);
    fs.free();
    let served = serve_inside(&fs, &config);
    assert_eq!(
        token_ids(&served).await,
        acknowledged,
        "the restart reads back exactly what was acknowledged"
    );
    let (status, v) = admin(
        &served,
        "POST",
        "/tokens",
        json!({"name": "after", "permissions": ["all"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    kill(served);
}

/// The audit file's disk fills under load. The audit log is fail-open: requests and admin
/// changes go on (none waits on the disk), the failure is logged once and counted
/// (`esgate_audit_lost_total`), even at the brink, where a batch fits now and then; once there
/// is room again the recovery is logged once and the
/// file holds whole records only (before rel19 the batch the disk had taken part of was
/// continued by the next: `{"type":"request{"type":"request",...`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_disk_loses_records_not_requests_and_leaves_no_torn_record() {
    let Some(fs) = TinyFs::new(128) else { return };
    let backend = Backend::osmem();
    let store = tempfile::tempdir().unwrap();
    let (served, secret) = serve_auditing_inside(&fs, &backend, store.path(), "open").await;

    fs.fill();
    let load = || {
        let url = format!("{}/", served.data);
        let auth = bearer(&secret);
        async move {
            let mut clients = vec![];
            for _ in 0..4 {
                let (url, auth) = (url.clone(), auth.clone());
                clients.push(tokio::spawn(async move {
                    for _ in 0..50 {
                        let r = send_with_timeout(
                            "GET",
                            &url,
                            &[("authorization", &auth)],
                            Bytes::new(),
                            Duration::from_secs(5),
                        )
                        .await
                        .expect("no request waits on the audit disk");
                        assert_eq!(r.status, 200);
                    }
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
        }
    };
    load().await;
    // An admin change goes on too (its record is lost): a revocation must never wait on it.
    let (status, v) = admin(
        &served,
        "POST",
        "/tokens",
        json!({"name": "during", "permissions": ["all"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = admin(
        &served,
        "DELETE",
        &format!("/tokens/{}", v["id"].as_str().unwrap()),
        Value::Null,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {v}");
    let lost = counter(&served, "esgate_audit_lost_total").await;
    assert!(lost > 0.0, "lost {lost}");
    let log = wait_for_log(&served, "Cannot write the audit log");
    assert_eq!(
        log.matches("Cannot write the audit log").count(),
        1,
        "logged once:\n{log}"
    );

    fs.free();
    load().await;
    // The run of failures is over once writes succeed for 2 s (`audit::CALM`).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    load().await;
    let log = wait_for_log(&served, "The audit log is written again");
    assert_eq!(log.matches("The audit log is written again").count(), 1);
    // Every line a whole record; every request is either in the file or counted lost, and
    // all of those after the recovery are in the file.
    let lost = counter(&served, "esgate_audit_lost_total").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(fs.outside("audit.jsonl")).unwrap();
        let mut requests = 0;
        for line in text.lines() {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a torn record ({e}): {line:?}"));
            if record["type"] == "request" {
                requests += 1;
            }
        }
        if requests >= 400 && f64::from(requests) + lost >= 600.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{requests} request records and {lost} lost of 600"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill(served);
}

/// `audit.on_failure = "closed"` (rel20): the audit file's disk fills; once a write has failed,
/// data requests are refused with 503 before they are forwarded (a document PUT then is not in
/// the backend after), admin changes are refused and not made, reads of the admin API served, a
/// SIGHUP keeps the gateway closed; once there is room, the writer's probe resumes service with
/// no request and no restart, and the file holds an `audit_gap` record where records are missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_disk_closes_the_gateway_until_the_audit_can_be_written() {
    let Some(fs) = TinyFs::new(128) else { return };
    let backend = Backend::osmem();
    let store = tempfile::tempdir().unwrap();
    let (served, secret) = serve_auditing_inside(&fs, &backend, store.path(), "closed").await;
    let auth = bearer(&secret);
    let get = || async {
        send(
            "GET",
            &format!("{}/", served.data),
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await
        .unwrap()
    };
    assert_eq!(get().await.status, 200);
    let tokens = token_ids(&served).await;

    fs.fill();
    fs.fill_up("audit.jsonl");
    // The requests of the batch that finds the disk full are served (their records lost):
    // the state is known once a write failed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = get().await;
        if r.status == 503 {
            break r;
        }
        assert_eq!(r.status, 200);
        assert!(Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.headers["retry-after"], "1");
    let body: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(body["error"]["type"], "unavailable_exception", "{body}");
    wait_for_log(&served, "Cannot write the audit log");
    // Nothing is forwarded: a write refused now is not in the backend afterwards.
    let put = send(
        "PUT",
        &format!("{}/audit-closed/_doc/1?refresh=true", served.data),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Bytes::from_static(b"{\"a\":1}"),
    )
    .await
    .unwrap();
    assert_eq!(put.status, 503, "{}", put.text());
    for _ in 0..10 {
        assert_eq!(get().await.status, 503);
    }
    assert!(counter(&served, "esgate_rejected_total{reason=\"audit\"}").await >= 12.0);
    // Probes and metrics say so: a load balancer moves the traffic away, an alert can fire.
    assert_eq!(counter(&served, "esgate_audit_refusing").await, 1.0);
    let (status, v) = admin(&served, "GET", "/ready", Value::Null).await;
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"]["reason"].as_str().unwrap().contains("audit log"),
        "{v}"
    );
    // Admin changes are refused and not made; reads are served.
    let (status, v) = admin(
        &served,
        "POST",
        "/tokens",
        json!({"name": "during", "permissions": ["all"]}),
    )
    .await;
    assert_eq!(status, 503, "{v}");
    let only = tokens.iter().next().unwrap();
    let (status, v) = admin(&served, "DELETE", &format!("/tokens/{only}"), Value::Null).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(token_ids(&served).await, tokens, "nothing changed");
    // A reload keeps the gateway closed: the same file, still unwritable.
    let status = Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_log(&served, "Configuration reloaded");
    for _ in 0..5 {
        assert_eq!(get().await.status, 503);
    }
    // Their records (and the writer's probes) have found the disk full again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(get().await.status, 503);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Room again: no request is sent; the writer's probe finds it within a second or so.
    fs.free();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get().await.status, 200, "service resumed by itself");
    assert_eq!(counter(&served, "esgate_audit_refusing").await, 0.0);
    let (status, v) = admin(&served, "GET", "/ready", Value::Null).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = admin(
        &served,
        "POST",
        "/tokens",
        json!({"name": "after", "permissions": ["all"]}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let r = send(
        "GET",
        &format!("{}/audit-closed/_doc/1", served.data),
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status,
        404,
        "the refused PUT never reached the backend: {}",
        r.text()
    );
    let text = std::fs::read_to_string(fs.outside("audit.jsonl")).unwrap();
    let gaps: Vec<Value> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .filter(|r| r["type"] == "audit_gap")
        .collect();
    assert!(!gaps.is_empty(), "no audit_gap record:\n{text}");
    assert!(gaps[0]["lost"].as_u64().unwrap() >= 1, "{gaps:?}");
    kill(served);
}

/// CPU time (user + system, clock ticks) the process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The process's hard open-files limit (`None`: unlimited), from `/proc/<pid>/limits`.
fn open_files_hard_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let hard = line.split_whitespace().nth(4).unwrap();
    hard.parse().ok()
}

/// The open-files limit is reached under a connection flood: the accept loop does not spin
/// (a failed `accept` waits 50 ms), the failure is logged once per run (before rel19: a warning
/// every 50 ms) and counted, and accepting works again once descriptors are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_waits_and_logs_once() {
    let dir = tempfile::tempdir().unwrap();
    let served = binary::serve(&["--backend", "http://127.0.0.1:9", "--store"], |cmd| {
        cmd.arg(dir.path().join("store"))
            .env("ESGATE_ADMIN_KEY", ADMIN_KEY)
            .current_dir(dir.path());
    });
    // Every worker's runtime up before the limit comes down.
    let r = send("GET", &format!("{}/", served.data), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = rustix::process::Pid::from_raw(served.child.id() as i32).unwrap();
    let nofile = rustix::process::Resource::Nofile;
    // Only the soft limit is lowered (the hard one kept, so it can be raised again).
    let before = rustix::process::prlimit(
        Some(pid),
        nofile,
        rustix::process::Rlimit {
            current: Some(64),
            maximum: open_files_hard_limit(served.child.id()),
        },
    )
    .expect("prlimit");
    let data: std::net::SocketAddr = served.data.trim_start_matches("http://").parse().unwrap();
    let flood: Vec<std::net::TcpStream> = (0..150)
        .filter_map(|_| std::net::TcpStream::connect(data).ok())
        .collect();
    assert!(flood.len() > 64, "{} connections", flood.len());
    wait_for_log(&served, "Cannot accept connections");
    let ticks = cpu_ticks(served.child.id());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(served.child.id()) - ticks;
    // 100 ticks a second: a busy loop would use about 200.
    assert!(used < 40, "{used} ticks in 2 s: the accept loop spins");
    let log = log_of(&served);
    assert_eq!(
        log.matches("Cannot accept connections").count(),
        1,
        "logged once:\n{log}"
    );

    drop(flood);
    rustix::process::prlimit(Some(pid), nofile, before).unwrap();
    // The run is over at an accept 2 s after its last failure (`server::ACCEPT_CALM`).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = send("GET", &format!("{}/", served.data), &[], Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 401, "served again");
    let log = wait_for_log(&served, "Accepting connections again");
    assert_eq!(
        log.matches("Accepting connections again").count(),
        1,
        "{log}"
    );
    assert!(counter(&served, "esgate_accept_errors_total").await > 1.0);
    kill(served);
}

/// rel19 finding: several large bodies at once, together past `listen.max_buffered_bytes` (six
/// of 8 MiB under 32 MiB, the budget `check-config` advises: four times `max_body_bytes`), were
/// refused 429 but one, and now and then all six: the bodies read whole held the budget, and
/// each one's checks (the parse claims from the same budget, without waiting) then found no
/// room (one round of eight served none; this test, five rounds a run, failed 2 runs of 4). Now
/// the first request whose checks are refused room waits in the budget's line for the room the
/// others, refused at once, give back (`BodyBudget::wait_in_line`): at least one is served in
/// every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_past_the_budget_together_are_not_all_refused() {
    const BODY: usize = 8 << 20;
    let backend = support::fixture::seeded_osmem();
    let gw = support::esgate::Esgate::start_full(
        &[backend.url()],
        &format!("max_body_bytes = {BODY}\nmax_buffered_bytes = {}", 4 * BODY),
        "",
        "",
    )
    .await;
    let auth = bearer(&gw.token(support::corpus::token_a()).await.1);
    // One search with a long term: valid, and its parse claims about its size again.
    let body = {
        let head = br#"{"query":{"term":{"tenant":""#;
        let tail = br#""}}}"#;
        let mut b = head.to_vec();
        b.resize(BODY - tail.len(), b'a');
        b.extend_from_slice(tail);
        Bytes::from(b)
    };
    let url = gw.url("/logs-*/_search");
    let alone = send("POST", &url, &[("authorization", &auth)], body.clone())
        .await
        .unwrap();
    assert_ne!(alone.status, 429, "one alone fits: {}", alone.text());
    // Five rounds of six at once: in each, at least one should be served.
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let mut at_once = Vec::new();
        for _ in 0..6 {
            let (url, auth, body) = (url.clone(), auth.clone(), body.clone());
            // A body refused while it is read is answered 429 and its connection closed
            // (`Connection: close`): the client, still sending, may see the connection cut
            // before the answer (0 here), refused all the same.
            at_once.push(tokio::spawn(async move {
                match send("POST", &url, &[("authorization", &auth)], body).await {
                    Ok(reply) => reply.status.as_u16(),
                    Err(support::http::SendError::Transport(_)) => 0,
                    Err(e) => panic!("{e:?}"),
                }
            }));
        }
        let mut statuses = Vec::new();
        for r in at_once {
            statuses.push(r.await.unwrap());
        }
        rounds.push(statuses);
    }
    eprintln!("{rounds:?}");
    assert!(
        rounds
            .iter()
            .all(|r| r.iter().any(|s| ![0, 429].contains(s))),
        "rounds where every one of six was refused: {rounds:?}"
    );
    // attack29 (perf29c: a check's outcome settled where it lies, the hold taken into the
    // line and back): after the rounds, every hold is given back; one alone fits again, each
    // of several times (a hold kept by a refused or waited request would leave no room).
    for _ in 0..3 {
        let again = send("POST", &url, &[("authorization", &auth)], body.clone())
            .await
            .unwrap();
        assert_ne!(again.status, 429, "one alone fits after: {}", again.text());
    }
}
