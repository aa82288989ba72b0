//! The real `esgate` binary killed with SIGKILL while many admin writes are in flight: after a
//! restart on the same store, every token whose creation was answered 201 exists and works.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use support::backend::Backend;
use support::binary::{self, Served};
use support::esgate::ADMIN_KEY;
use support::http::{bearer, send};

/// Starts `esgate serve` on the store, from its parent directory.
fn start(backend: &str, store: &std::path::Path) -> Served {
    binary::serve(&["--backend", backend, "--store"], |cmd| {
        cmd.arg(store)
            .env("ESGATE_ADMIN_KEY", ADMIN_KEY)
            .current_dir(store.parent().unwrap());
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_creates_loses_no_acknowledged_token() {
    let backend = Backend::osmem();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();

    for round in 0..3 {
        let mut running = start(backend.url(), &store);
        let mut writers = vec![];
        for w in 0..8 {
            let url = format!("{}/tokens", running.admin);
            let acknowledged = Arc::clone(&acknowledged);
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = serde_json::to_vec(
                        &json!({"name": format!("r{round}w{w}i{i}"), "permissions": ["all"]}),
                    )
                    .unwrap();
                    match send(
                        "POST",
                        &url,
                        &[("authorization", &format!("Bearer {ADMIN_KEY}"))],
                        body,
                    )
                    .await
                    {
                        Ok(r) if r.status == 201 => {
                            let v = r.json();
                            acknowledged.lock().unwrap().push((
                                v["id"].as_str().unwrap().to_owned(),
                                v["secret"].as_str().unwrap().to_owned(),
                            ));
                        }
                        // The process is gone: stop writing.
                        _ => break,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        running.child.kill().expect("SIGKILL");
        running.child.wait().unwrap();
        for w in writers {
            w.await.unwrap();
        }
    }

    let tokens = acknowledged.lock().unwrap().clone();
    assert!(
        tokens.len() > 20,
        "too few writes happened before the kills: {}",
        tokens.len()
    );
    eprintln!(
        "{} creates were acknowledged across three SIGKILLs",
        tokens.len()
    );
    let mut running = start(backend.url(), &store);
    let (status, list) = {
        let r = send(
            "GET",
            &format!("{}/tokens?size=10000", running.admin),
            &[("authorization", &format!("Bearer {ADMIN_KEY}"))],
            Bytes::new(),
        )
        .await
        .unwrap();
        (r.status, r.json())
    };
    assert_eq!(status, 200);
    let listed: std::collections::HashSet<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for (id, _) in &tokens {
        assert!(
            listed.contains(id.as_str()),
            "acknowledged token {id} was lost"
        );
    }
    // Every acknowledged secret still authenticates (sampled, to keep the test short).
    for (_, secret) in tokens.iter().step_by(7) {
        let r = send(
            "GET",
            &format!("{}/", running.data),
            &[("authorization", &bearer(secret))],
            Bytes::new(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
    }
    running.child.kill().unwrap();
    running.child.wait().unwrap();
}
