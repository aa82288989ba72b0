//! The local machine's own faults (rel19), injected for real on the real binary: the file
//! store's disk full while admin changes are written (each refused with a clear error, memory
//! and disk equal, a SIGKILL then and a restart read back exactly what was acknowledged).
//!
//! The full disk is a tiny tmpfs in a mount namespace of its own (`TinyFs`, `unshare -rm`),
//! which nothing outside the test sees; esgate runs inside it through `nsenter`, the test reaches
//! its files through `/proc/<holder>/root`. Where this machine cannot make one (no user
//! namespaces), those tests say so and pass.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use support::binary::{self, Served};
use support::esgate::ADMIN_KEY;
use support::http::send;

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

fn log_of(served: &Served) -> String {
    served.log.lock().unwrap().clone()
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
    let log = log_of(&served);
    assert!(log.contains("No space left on device"), "{log}");

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
