//! The admin web page (`/ui/`, issue #14) in a real browser: headless Debian Chromium driven
//! through chromedriver (WebDriver), against a real esgate in front of a real backend.
//!
//! What it proves, flow by flow, by the labels of `interface.md` "Admin web page": signing in
//! (a wrong key says so; the key is in `sessionStorage` only, never in `localStorage`, a cookie or
//! the URL; "Sign out" clears it); the token list (filters with library ones by description,
//! indices, permissions, expiry, IP filter, last used), "Filter tokens" and paging by 100; "New
//! token" whose secret, shown once with its four usage forms, works on the data listener with
//! the token's filters applied; a token named like HTML shows as text and runs nothing; "Edit"
//! (expiry only shortened, an IP filter never removable), "Reset secret", "Rotate" and "Delete"
//! each asking first; the "Filters" and "IP filters" views (a change applies at once, deletes
//! name the tokens using what they delete, in-use IP filters are refused with the API's 409);
//! every API error shown in words next to its cause; and the page's security headers (CSP
//! without `unsafe-inline`, `X-Frame-Options: DENY`). "Share link" (issue #16) on a read token:
//! live and snapshot links created, listed with the URL the API gives, copied and deleted.
//!
//! `ESGATE_UI_SCREENSHOTS=1` also saves the list, the create dialog and a token's share links
//! to `docs/img/` (the README shows them). Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages
//! `chromium` and `chromium-driver`, installed by `.ci/run`).

use crate::support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use esgate::admin::api;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use support::esgate::{Esgate, ADMIN_KEY};
use support::fixture::{self, TENANT_A_DOCS};
use support::http::{self, send};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a step may take before the test fails (the machine is shared and slow).
const PATIENCE: Duration = Duration::from_secs(20);
/// XPath scopes: the open dialog, and the visible view.
const DIALOG: &str = "//dialog[@open]";
const VIEW: &str = "//section[not(@hidden)]";

/// chromedriver (and the Chromium it starts) in a process group of its own, killed as a group
/// when dropped, with a fresh profile directory.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is the one chromedriver leads (started below with process_group(0)).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A browser session on a fresh headless Chromium.
struct Ui {
    c: Client,
    base: String,
    _driver: Driver,
}

impl Ui {
    async fn open(gw: &Esgate) -> Ui {
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} (apt-get install chromium-driver): {e}"));
        let driver = Driver {
            child,
            port,
            _profile: profile,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = send(
                "GET",
                &format!("http://127.0.0.1:{}/status", driver.port),
                &[],
                "",
            )
            .await;
            if status.is_ok_and(|r| r.status == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1360,900",
                    format!("--user-data-dir={}", driver._profile.path().display()),
                ],
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a Chromium session");
        let base = gw.admin_url("/ui/");
        c.goto(&base).await.expect("the page loads");
        Ui {
            c,
            base,
            _driver: driver,
        }
    }

    async fn close(self) {
        let _ = self.c.close().await;
    }

    /// Runs `script` (a function body returning a value) until it returns something truthy.
    async fn until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = self.c.execute(script, vec![]).await.expect("script runs");
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn js(&self, script: &str) -> Value {
        self.c.execute(script, vec![]).await.expect("script runs")
    }

    async fn find(&self, xpath: &str) -> Element {
        self.c
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("{xpath}: {e}"))
    }

    /// The button named `name` (its visible text) within `scope`, clicked. The page re-renders
    /// its tables after each change, so a button found just before may be replaced: find again.
    async fn click(&self, scope: &str, name: &str) {
        let xpath = format!("{scope}//button[normalize-space(.)='{name}']");
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.find(&xpath).await.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("click {name}: {e}"),
            }
        }
    }

    /// The control whose `<label>` reads `label`, within `scope`.
    async fn field(&self, scope: &str, label: &str) -> Element {
        let l = self
            .find(&format!("{scope}//label[normalize-space(.)='{label}']"))
            .await;
        let id = l
            .attr("for")
            .await
            .expect("attr")
            .unwrap_or_else(|| panic!("label {label} has no for="));
        self.c
            .find(Locator::Id(&id))
            .await
            .expect("labelled control")
    }

    async fn fill(&self, scope: &str, label: &str, text: &str) {
        let f = self.field(scope, label).await;
        f.clear().await.expect("clear");
        if !text.is_empty() {
            f.send_keys(text).await.expect("type");
        }
    }

    async fn choose(&self, scope: &str, label: &str, value: &str) {
        self.field(scope, label)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {label}: {e}"));
    }

    async fn value(&self, scope: &str, label: &str) -> String {
        self.field(scope, label)
            .await
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// The text of the element with this id once it is shown and not empty.
    async fn message(&self, id: &str) -> String {
        self.until(
            &format!("a message in #{id}"),
            &format!("const e = document.getElementById('{id}'); return e && !e.hidden && e.textContent;"),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    async fn dialog_open(&self) -> bool {
        self.js("return document.querySelector('dialog[open]') !== null")
            .await
            .as_bool()
            .unwrap_or(false)
    }

    async fn wait_dialog_closed(&self) {
        self.until(
            "the dialog to close",
            "return document.querySelector('dialog[open]') === null",
        )
        .await;
    }

    /// The visible text of the token row for `id` (waits for it).
    async fn token_row(&self, id: &str) -> String {
        self.until(
            &format!("the row of {id}"),
            &format!("const r = document.querySelector('tr[data-token-id=\"{id}\"]'); return r && r.innerText;"),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    async fn row_button(&self, attr: &str, key: &str, name: &str) {
        self.click(&format!("//tr[@{attr}='{key}']"), name).await;
    }

    async fn sign_in(&self, key: &str) {
        self.fill(VIEW, "Admin key", key).await;
        self.click(VIEW, "Sign in").await;
    }

    async fn screenshot(&self, name: &str) {
        if std::env::var_os("ESGATE_UI_SCREENSHOTS").is_none() {
            return;
        }
        // Let transitions and fonts settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.c.screenshot().await.expect("screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img");
        std::fs::create_dir_all(&dir).expect("docs/img");
        std::fs::write(dir.join(name), png).expect("write screenshot");
    }
}

fn tenants(v: &Value) -> Vec<String> {
    v["hits"]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["_source"]["tenant"].as_str().unwrap_or("?").to_owned())
        .collect()
}

async fn search(gw: &Esgate, auth: &str) -> (u16, Value) {
    let r = send(
        "POST",
        &gw.url("/logs-*/_search"),
        &[
            ("authorization", auth),
            ("content-type", "application/json"),
        ],
        json!({"size": 100, "query": {"match_all": {}}}).to_string(),
    )
    .await
    .expect("esgate answers");
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status.as_u16(), v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_without_a_key_with_strict_headers() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    for (path, status, content_type) in [
        ("/ui/", 200, "text/html; charset=utf-8"),
        ("/ui/app.js", 200, "text/javascript; charset=utf-8"),
        ("/ui/app.css", 200, "text/css; charset=utf-8"),
        ("/ui/missing.js", 404, "text/plain; charset=utf-8"),
    ] {
        let r = send("GET", &gw.admin_url(path), &[], "").await.unwrap();
        assert_eq!(r.status.as_u16(), status, "{path}");
        assert_eq!(r.header("content-type"), Some(content_type), "{path}");
        let csp = r.header("content-security-policy").expect("CSP");
        assert!(!csp.contains("unsafe"), "{csp}");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    }
    // The page is public, the API behind it is not.
    let r = send("GET", &gw.admin_url("/tokens"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status.as_u16(), 401);
    let r = send("GET", &gw.admin_url("/ui"), &[], "").await.unwrap();
    assert_eq!(r.status.as_u16(), 308);
    assert_eq!(r.header("location"), Some("/ui/"));
    let r = send("HEAD", &gw.admin_url("/ui/"), &[], "").await.unwrap();
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.body.is_empty());
    let r = send("POST", &gw.admin_url("/ui/"), &[], "").await.unwrap();
    assert_eq!(r.status.as_u16(), 405);
    // The data listener does not serve it.
    let r = send("GET", &gw.url("/ui/"), &[], "").await.unwrap();
    assert_ne!(r.status.as_u16(), 200);
    gw.stop().await;
}

/// Sign in, the list, create (the secret works on the data listener with the token's filters),
/// the XSS name, errors next to their field, edit (expiry only shortened, IP filter fixed),
/// reset, delete, sign out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_created_edited_reset_and_deleted_in_the_browser() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (s, lib) = gw
        .admin(
            "POST",
            "/filters",
            Some(json!({"description": "Tenant A", "field": "tenant", "value": "a"})),
        )
        .await;
    assert_eq!(s, 201, "{lib}");
    let lib_id = lib["id"].as_str().unwrap().to_owned();
    let (s, v) = gw
        .admin(
            "POST",
            "/ip-filters",
            Some(json!({"name": "loopback", "cidrs": ["127.0.0.0/8"]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (b_id, b_secret) = gw
        .token(
            json!({"name": "viewer-b", "indices": ["logs-*"], "expires_in": "7d",
                      "filters": [{"field": "tenant", "value": "b"}]}),
        )
        .await;
    let (short_id, _) = gw
        .token(json!({"name": "short-lived", "expires_in": "1s"}))
        .await;
    let short_expiry = Instant::now() + Duration::from_millis(1100);

    let ui = Ui::open(&gw).await;
    // Every CSP violation from here on is recorded (the page must cause none).
    ui.js("window.violations = []; document.addEventListener('securitypolicyviolation', e => window.violations.push(e.violatedDirective)); return true").await;

    // Sign in, by keyboard (Enter submits): a wrong key says so and is not kept.
    let key = ui.field(VIEW, "Admin key").await;
    key.send_keys("not-the-key\u{E007}").await.unwrap();
    let msg = ui.message("sign-in-error").await;
    assert!(msg.to_lowercase().contains("wrong admin key"), "{msg}");
    assert_eq!(
        ui.js("return sessionStorage.length + localStorage.length")
            .await,
        json!(0)
    );
    tokio::time::sleep_until(short_expiry.into()).await;
    ui.sign_in(ADMIN_KEY).await;
    let row = ui.token_row(&b_id).await;
    for text in [
        "viewer-b",
        "tenant: b",
        "logs-*",
        "read",
        "in 7 days",
        "any address",
        "never",
    ] {
        assert!(row.contains(text), "{text} not in {row:?}");
    }
    // An expired token is marked, and still listed (the API keeps it five minutes).
    let row = ui.token_row(&short_id).await;
    assert!(row.contains("expired"), "{row:?}");
    // The key: in sessionStorage only; no cookie, nothing in localStorage or the URL.
    let storage = ui
        .js("return [sessionStorage.getItem('esgate.adminKey'), localStorage.length, document.cookie]")
        .await;
    assert_eq!(storage, json!([ADMIN_KEY, 0, ""]));
    assert!(ui.c.get_all_cookies().await.unwrap().is_empty());
    assert!(!ui
        .c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains(ADMIN_KEY));

    // New token: a library filter, an inline filter, indices, expiry, IP filter.
    ui.click(VIEW, "New token").await;
    ui.fill(DIALOG, "Name", "acme-a").await;
    ui.fill(DIALOG, "Indices", "logs-*").await;
    ui.fill(DIALOG, "Expires in", "12h").await;
    ui.choose(DIALOG, "IP filter", "loopback").await;
    ui.choose(DIALOG, "Permissions", "read").await;
    ui.fill(DIALOG, "Field", "user").await;
    ui.fill(DIALOG, "Value", "alice").await;
    ui.choose(DIALOG, "Library filter", &lib_id).await;
    ui.screenshot("admin-ui-new-token.png").await;
    ui.click(DIALOG, "Create token").await;
    let secret = ui
        .until(
            "the secret",
            "const v = document.getElementById('secret-value'); return document.getElementById('secret-dialog').open && v.value;",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ui.value(DIALOG, "Secret").await, secret);
    assert!(secret.starts_with("esg_"), "{secret}");
    let id = ui
        .js("return document.getElementById('secret-id').textContent")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let usage: Vec<String> = serde_json::from_value(
        ui.js(
            "return [...document.querySelectorAll('#secret-usage code')].map(c => c.textContent)",
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        usage,
        vec![
            format!("Authorization: {}", http::bearer(&secret)),
            format!("Authorization: {}", http::basic(&secret, "token")),
            format!("Authorization: {}", http::basic("esgate", &secret)),
            format!("Authorization: {}", http::api_key(&id, &secret)),
        ]
    );
    ui.click(DIALOG, "Copy").await;
    ui.message("secret-copied").await;
    ui.click(DIALOG, "Done").await;
    ui.wait_dialog_closed().await;
    // Shown once: gone from the page once closed.
    let page = ui.js("return document.documentElement.outerHTML + document.getElementById('secret-value').value").await;
    assert!(!page.as_str().unwrap().contains(&secret));

    // Each usage form works on the data listener, with the token's filters applied.
    for header in &usage {
        let auth = header.strip_prefix("Authorization: ").unwrap();
        let (status, v) = search(&gw, auth).await;
        assert_eq!(status, 200, "{header}: {v}");
        assert_eq!(v["hits"]["total"]["value"], json!(TENANT_A_DOCS), "{v}");
        assert!(tenants(&v).iter().all(|t| t == "a"), "{v}");
    }
    let view = token_view(&gw, &id).await;
    assert_eq!(view.name, "acme-a");
    assert_eq!(view.indices, ["logs-*"]);
    assert_eq!(view.ip_filter.as_deref(), Some("loopback"));
    assert_eq!(
        filter_triples(&view),
        [
            (None, "user", "alice"),
            (Some(lib_id.as_str()), "tenant", "a")
        ]
    );

    // The list after use: library filter by description, expiry relative and absolute, last used.
    ui.click("//nav", "Tokens").await;
    ui.until(
        "last used to show",
        &format!("const r = document.querySelector('tr[data-token-id=\"{id}\"]'); return r && !r.cells[6].innerText.includes('never');"),
    )
    .await;
    let row = ui.token_row(&id).await;
    for text in [
        "acme-a",
        "Tenant A",
        "user: alice",
        "logs-*",
        "read",
        "in 12 hours",
        " UTC",
        "loopback",
    ] {
        assert!(row.contains(text), "{text} not in {row:?}");
    }
    ui.screenshot("admin-ui-tokens.png").await;

    // A token named like HTML shows as text and runs nothing.
    let xss = "<img src=x onerror=\"document.title='pwned';window.pwned=1\">";
    ui.click(VIEW, "New token").await;
    ui.fill(DIALOG, "Name", xss).await;
    ui.click(DIALOG, "Create token").await;
    let title = ui
        .until(
            "the secret dialog",
            "return document.getElementById('secret-dialog').open && document.getElementById('secret-title').textContent",
        )
        .await;
    assert_eq!(title, json!(format!("Secret of {xss}")));
    let xss_id = ui
        .js("return document.getElementById('secret-id').textContent")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    // Escape (the keyboard's way out) closes it too, and the secret leaves the page as well.
    ui.c.active_element()
        .await
        .unwrap()
        .send_keys("\u{E00C}")
        .await
        .unwrap();
    ui.wait_dialog_closed().await;
    ui.until(
        "the secret to leave the page",
        "return document.getElementById('secret-value').value === '' && document.getElementById('secret-usage').children.length === 0",
    )
    .await;
    let name_cell = ui
        .until(
            "the XSS row",
            &format!("const r = document.querySelector('tr[data-token-id=\"{xss_id}\"] .name-text'); return r && r.textContent;"),
        )
        .await;
    assert_eq!(name_cell, json!(xss));
    assert_eq!(
        ui.js("return [document.querySelectorAll('img').length, window.pwned === undefined, document.title]").await,
        json!([0, true, "esgate admin"])
    );

    // An API error shows next to the field it names.
    ui.click(VIEW, "New token").await;
    ui.fill(DIALOG, "Name", "bad-indices").await;
    ui.fill(DIALOG, "Indices", "LOGS").await;
    ui.click(DIALOG, "Create token").await;
    let msg = ui.message("t-indices-error").await;
    assert!(
        msg.contains("400") && msg.contains("indices[0]") && msg.contains("lowercase"),
        "{msg}"
    );
    ui.fill(DIALOG, "Expires in", "soon").await;
    ui.fill(DIALOG, "Indices", "logs-*").await;
    ui.click(DIALOG, "Create token").await;
    let msg = ui.message("t-expires-error").await;
    assert!(msg.contains("expires_in"), "{msg}");
    ui.click(DIALOG, "Cancel").await;
    ui.wait_dialog_closed().await;
    let (_, list) = gw.admin("GET", "/tokens?name=bad-indices", None).await;
    assert_eq!(list["total"], 0);

    // Edit: the IP filter is shown but cannot be removed or replaced; the expiry can only be
    // shortened (a longer one is the API's 409, shown next to the field).
    ui.row_button("data-token-id", &id, "Edit").await;
    assert_eq!(ui.value(DIALOG, "Name").await, "acme-a");
    let ip = ui
        .js("return [document.getElementById('t-ip-field').hidden, document.getElementById('t-ip-fixed').textContent]")
        .await;
    assert_eq!(ip, json!([true, "loopback (127.0.0.0/8)"]));
    ui.fill(DIALOG, "Name", "acme-a2").await;
    ui.fill(DIALOG, "Expires in", "2d").await;
    ui.click(DIALOG, "Save changes").await;
    let msg = ui.message("t-expires-error").await;
    assert!(msg.contains("409"), "{msg}");
    let view = token_view(&gw, &id).await;
    assert_eq!(view.name, "acme-a", "a refused PATCH changes nothing");
    ui.fill(DIALOG, "Expires in", "30m").await;
    ui.click(DIALOG, "Save changes").await;
    ui.wait_dialog_closed().await;
    ui.until(
        "the edited row",
        &format!("const r = document.querySelector('tr[data-token-id=\"{id}\"]'); return r && r.innerText.includes('acme-a2') && r.innerText.includes('in 30 minutes');"),
    )
    .await;
    let view = token_view(&gw, &id).await;
    assert_eq!(view.name, "acme-a2");
    assert_eq!(view.ip_filter.as_deref(), Some("loopback"));
    let expires = time::OffsetDateTime::parse(
        view.expires_at.as_deref().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left <= time::Duration::minutes(30) && left > time::Duration::minutes(25),
        "{left}"
    );

    // Edit filters: drop the inline one, keep the library one.
    ui.row_button("data-token-id", &id, "Edit").await;
    ui.fill(DIALOG, "Field", "").await;
    ui.fill(DIALOG, "Value", "").await;
    ui.click(DIALOG, "Save changes").await;
    ui.wait_dialog_closed().await;
    let view = token_view(&gw, &id).await;
    assert_eq!(
        filter_triples(&view),
        [(Some(lib_id.as_str()), "tenant", "a")]
    );

    // Reset secret asks first; then the old secret stops working and the new one works.
    ui.row_button("data-token-id", &id, "Reset secret").await;
    assert!(ui.dialog_open().await);
    assert_eq!(
        search(&gw, &http::bearer(&secret)).await.0,
        200,
        "not reset before Confirm"
    );
    ui.click(DIALOG, "Confirm").await;
    let fresh = ui
        .until(
            "the new secret",
            &format!("const v = document.getElementById('secret-value').value; return v !== '' && v !== '{secret}' && v;"),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    ui.click(DIALOG, "Done").await;
    ui.wait_dialog_closed().await;
    assert_eq!(search(&gw, &http::bearer(&secret)).await.0, 401);
    let (status, v) = search(&gw, &http::bearer(&fresh)).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        tenants(&v).iter().all(|t| t == "a") && !tenants(&v).is_empty(),
        "{v}"
    );

    // Delete asks first: Cancel keeps the token, Confirm deletes it.
    ui.row_button("data-token-id", &b_id, "Delete").await;
    let title = ui.message("confirm-title").await;
    assert!(title.contains("viewer-b"), "{title}");
    ui.click(DIALOG, "Cancel").await;
    ui.wait_dialog_closed().await;
    assert_eq!(
        gw.admin("GET", &format!("/tokens/{b_id}"), None).await.0,
        200
    );
    ui.row_button("data-token-id", &b_id, "Delete").await;
    ui.click(DIALOG, "Confirm").await;
    ui.wait_dialog_closed().await;
    ui.until(
        "the row to go",
        &format!("return document.querySelector('tr[data-token-id=\"{b_id}\"]') === null"),
    )
    .await;
    assert_eq!(
        gw.admin("GET", &format!("/tokens/{b_id}"), None).await.0,
        404
    );
    assert_eq!(search(&gw, &http::bearer(&b_secret)).await.0, 401);

    // The page caused no CSP violation in all of the above, and the browser does enforce the
    // policy: an inline script added to the page does not run.
    assert_eq!(ui.js("return window.violations").await, json!([]));
    let ran = ui
        .js("window.inlineRan = false; const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; document.head.append(s); return window.inlineRan")
        .await;
    assert_eq!(ran, json!(false));
    ui.until(
        "the violation report",
        "return window.violations.length === 1",
    )
    .await;

    // Sign out clears the key; a reload asks for it again.
    ui.click("//header", "Sign out").await;
    assert_eq!(
        ui.js("return [sessionStorage.getItem('esgate.adminKey'), document.getElementById('sign-in-view').hidden]").await,
        json!([null, false])
    );
    ui.c.goto(&ui.base).await.unwrap();
    ui.find("//section[@id='sign-in-view' and not(@hidden)]")
        .await;
    ui.close().await;
    gw.stop().await;
}

/// "Filter tokens", paging by 100, the "Filters" view (add, an error, edit applying at once,
/// delete naming its tokens, refused then detached) and the "IP filters" view (add, an error,
/// in-use refused with the API's 409, delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filters_and_ip_filters_are_managed_in_the_browser() {
    let backend = fixture::seeded_osmem();
    let gw = Esgate::start(&[backend.url()], "[policies]\nrequire_expiry = true\n").await;
    for n in 1..=104 {
        gw.token(json!({"name": format!("bulk-{n:03}"), "expires_in": "7d"}))
            .await;
    }
    let (special, _) = gw
        .token(json!({"name": "Special-One", "expires_in": "7d"}))
        .await;

    let ui = Ui::open(&gw).await;
    ui.sign_in(ADMIN_KEY).await;
    ui.until(
        "the first page",
        "return document.getElementById('page-info').textContent === '1–100 of 105'",
    )
    .await;
    const ROW_IDS: &str =
        "return [...document.querySelectorAll('#tokens-table tbody tr')].map(r => r.dataset.tokenId)";
    let first: Vec<String> = serde_json::from_value(ui.js(ROW_IDS).await).unwrap();
    assert_eq!(first.len(), 100);
    ui.click(VIEW, "Next").await;
    ui.until(
        "the second page",
        "return document.getElementById('page-info').textContent === '101–105 of 105'",
    )
    .await;
    let second: Vec<String> = serde_json::from_value(ui.js(ROW_IDS).await).unwrap();
    let (_, all) = gw.admin("GET", "/tokens?size=1000", None).await;
    let all: api::TokenPage = serde_json::from_value(all).expect("a token page");
    let mut want: Vec<String> = all.tokens.into_iter().map(|t| t.id).collect();
    let mut seen = [first, second].concat();
    want.sort();
    seen.sort();
    assert_eq!(seen, want, "the two pages show every token once");
    assert!(seen.contains(&special));
    ui.click(VIEW, "Previous").await;
    ui.until(
        "the first page again",
        "return document.getElementById('page-info').textContent === '1–100 of 105'",
    )
    .await;
    // Filter tokens narrows as one types (case-insensitive substring of the name).
    let search_box = ui.field(VIEW, "Filter tokens").await;
    search_box.send_keys("special").await.unwrap();
    ui.until(
        "one match",
        "const rows = document.querySelectorAll('#tokens-table tbody tr'); return rows.length === 1 && rows[0].innerText.includes('Special-One');",
    )
    .await;
    ui.fill(VIEW, "Filter tokens", "bulk-10").await;
    ui.until(
        "bulk-100..104",
        "return document.querySelectorAll('#tokens-table tbody tr').length === 5",
    )
    .await;

    // Filters: add one (an API error first, next to its field).
    ui.click("//nav", "Filters").await;
    ui.click(VIEW, "Add filter").await;
    ui.fill(DIALOG, "Description", "Tenant B").await;
    ui.fill(DIALOG, "Field", "tenant").await;
    ui.click(DIALOG, "Save filter").await;
    let msg = ui.message("f-value-error").await;
    assert!(msg.contains("400") && msg.contains("value"), "{msg}");
    ui.fill(DIALOG, "Value", "b").await;
    ui.click(DIALOG, "Save filter").await;
    ui.wait_dialog_closed().await;
    let (_, filters) = gw.admin("GET", "/filters", None).await;
    let filters: api::FilterList = serde_json::from_value(filters).expect("a filter list");
    let fid = filters.filters[0].id.clone();
    assert_eq!(filters.filters[0].value, "b");
    let (tid, tsecret) = gw
        .token(
            json!({"name": "uses-b", "indices": ["logs-*"], "filters": [fid], "expires_in": "1d"}),
        )
        .await;
    let (_, v) = search(&gw, &http::bearer(&tsecret)).await;
    assert!(
        tenants(&v).iter().all(|t| t == "b") && !tenants(&v).is_empty(),
        "{v}"
    );
    ui.click("//nav", "Filters").await;
    let row = ui
        .until(
            "the filter row with its token",
            &format!("const r = document.querySelector('tr[data-filter-id=\"{fid}\"]'); return r && r.innerText.includes('uses-b') && r.innerText;"),
        )
        .await;
    assert!(row.as_str().unwrap().contains("Tenant B"), "{row}");

    // Edit warns that it applies at once, naming the token; it does.
    ui.row_button("data-filter-id", &fid, "Edit").await;
    let warning = ui.message("filter-warning").await;
    assert!(
        warning.contains("at once") && warning.contains("uses-b"),
        "{warning}"
    );
    ui.fill(DIALOG, "Value", "a").await;
    ui.click(DIALOG, "Save filter").await;
    ui.wait_dialog_closed().await;
    let (_, v) = search(&gw, &http::bearer(&tsecret)).await;
    assert!(
        tenants(&v).iter().all(|t| t == "a") && !tenants(&v).is_empty(),
        "{v}"
    );

    // Delete names the tokens; without detaching, the API's 409 is shown; detached, it goes.
    ui.row_button("data-filter-id", &fid, "Delete").await;
    let list = ui.message("confirm-list").await;
    assert!(list.contains("uses-b"), "{list}");
    ui.click(DIALOG, "Confirm").await;
    let msg = ui.message("confirm-error").await;
    assert!(msg.contains("409"), "{msg}");
    assert_eq!(
        gw.admin("GET", &format!("/filters/{fid}"), None).await.0,
        200
    );
    ui.find(&format!("{DIALOG}//label[normalize-space(.)='Also remove it from these tokens (they then see more)']"))
        .await
        .click()
        .await
        .unwrap();
    ui.click(DIALOG, "Confirm").await;
    ui.wait_dialog_closed().await;
    assert_eq!(
        gw.admin("GET", &format!("/filters/{fid}"), None).await.0,
        404
    );
    let (_, view) = gw.admin("GET", &format!("/tokens/{tid}"), None).await;
    assert_eq!(view["filters"], json!([]));
    ui.until(
        "the empty library",
        "return !document.getElementById('filters-empty').hidden",
    )
    .await;

    // IP filters: add (a bad CIDR first), in use refused, unused deleted.
    ui.click("//nav", "IP filters").await;
    ui.click(VIEW, "Add IP filter").await;
    ui.fill(DIALOG, "Name", "office").await;
    ui.fill(DIALOG, "CIDRs", "10.0.0.0/8\nnot-an-address").await;
    ui.click(DIALOG, "Save IP filter").await;
    let msg = ui.message("i-cidrs-error").await;
    assert!(msg.contains("400") && msg.contains("cidrs"), "{msg}");
    ui.fill(DIALOG, "CIDRs", "10.0.0.0/8\n192.0.2.1").await;
    ui.click(DIALOG, "Save IP filter").await;
    ui.wait_dialog_closed().await;
    ui.click(VIEW, "Add IP filter").await;
    ui.fill(DIALOG, "Name", "spare").await;
    ui.fill(DIALOG, "CIDRs", "192.0.2.0/24").await;
    ui.click(DIALOG, "Save IP filter").await;
    ui.wait_dialog_closed().await;
    let row = ui
        .until(
            "the office row",
            "const r = document.querySelector('tr[data-ip-filter=\"office\"]'); return r && r.innerText;",
        )
        .await;
    assert!(
        row.as_str().unwrap().contains("10.0.0.0/8, 192.0.2.1/32"),
        "{row}"
    );
    // A token without an IP filter can be given one in "Edit".
    ui.click("//nav", "Tokens").await;
    ui.fill(VIEW, "Filter tokens", "uses-b").await;
    ui.until(
        "uses-b alone",
        "const rows = document.querySelectorAll('#tokens-table tbody tr'); return rows.length === 1 && rows[0].innerText.includes('uses-b');",
    )
    .await;
    ui.row_button("data-token-id", &tid, "Edit").await;
    ui.choose(DIALOG, "IP filter", "office").await;
    ui.click(DIALOG, "Save changes").await;
    ui.wait_dialog_closed().await;
    let (_, view) = gw.admin("GET", &format!("/tokens/{tid}"), None).await;
    assert_eq!(view["ip_filter"], "office");
    ui.click("//nav", "IP filters").await;
    ui.until(
        "office used by uses-b",
        "const r = document.querySelector('tr[data-ip-filter=\"office\"]'); return r && r.innerText.includes('uses-b');",
    )
    .await;
    ui.row_button("data-ip-filter", "office", "Delete").await;
    assert!(ui.message("confirm-list").await.contains("uses-b"));
    ui.click(DIALOG, "Confirm").await;
    let msg = ui.message("confirm-error").await;
    assert!(msg.contains("409"), "{msg}");
    ui.click(DIALOG, "Cancel").await;
    ui.wait_dialog_closed().await;
    assert_eq!(gw.admin("GET", "/ip-filters/office", None).await.0, 200);
    // Editing its CIDRs warns that the change applies at once to the token using it.
    ui.row_button("data-ip-filter", "office", "Edit").await;
    let warning = ui.message("ip-warning").await;
    assert!(
        warning.contains("at once") && warning.contains("uses-b"),
        "{warning}"
    );
    ui.fill(DIALOG, "CIDRs", "10.0.0.0/8").await;
    ui.click(DIALOG, "Save IP filter").await;
    ui.wait_dialog_closed().await;
    let (_, office) = gw.admin("GET", "/ip-filters/office", None).await;
    assert_eq!(office["cidrs"], json!(["10.0.0.0/8"]));
    ui.row_button("data-ip-filter", "spare", "Delete").await;
    ui.click(DIALOG, "Confirm").await;
    ui.wait_dialog_closed().await;
    ui.until(
        "spare to go",
        "return document.querySelector('tr[data-ip-filter=\"spare\"]') === null",
    )
    .await;
    assert_eq!(gw.admin("GET", "/ip-filters/spare", None).await.0, 404);

    // In the token form, the token with an IP filter cannot lose it: no control is offered.
    ui.click("//nav", "Tokens").await;
    ui.until(
        "uses-b with its IP filter",
        &format!("const r = document.querySelector('tr[data-token-id=\"{tid}\"]'); return r && r.innerText.includes('office');"),
    )
    .await;
    ui.row_button("data-token-id", &tid, "Edit").await;
    assert_eq!(
        ui.js("return document.getElementById('t-ip-field').hidden")
            .await,
        json!(true)
    );
    ui.click(DIALOG, "Cancel").await;
    ui.wait_dialog_closed().await;

    // A policy the API enforces is shown next to the field it concerns.
    ui.click(VIEW, "New token").await;
    ui.fill(DIALOG, "Name", "forever").await;
    ui.click(DIALOG, "Create token").await;
    let msg = ui.message("t-expires-error").await;
    assert!(msg.contains("require_expiry"), "{msg}");
    ui.click(DIALOG, "Cancel").await;
    ui.close().await;
    gw.stop().await;
}

/// "Rotate" asks first, with the overlap; the new secret works at once (filters applied) and the
/// previous one keeps working during the overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_asks_first_and_both_secrets_work_during_the_overlap() {
    let backend = fixture::seeded_noida();
    let gw = Esgate::start(&[backend.url()], "").await;
    let (id, old) = gw
        .token(json!({"name": "rotating", "indices": ["logs-*"],
                      "filters": [{"field": "tenant", "value": "a"}],
                      "limits": {"max_size": 500}}))
        .await;
    let ui = Ui::open(&gw).await;
    ui.sign_in(ADMIN_KEY).await;
    ui.row_button("data-token-id", &id, "Rotate").await;
    assert_eq!(ui.value(DIALOG, "Overlap").await, "1h");
    ui.fill(DIALOG, "Overlap", "2h").await;
    ui.click(DIALOG, "Confirm").await;
    let fresh = ui
        .until(
            "the rotated secret",
            "return document.getElementById('secret-dialog').open && document.getElementById('secret-value').value",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let extra = ui.message("secret-extra").await;
    assert!(extra.contains("previous secret works until"), "{extra}");
    ui.click(DIALOG, "Done").await;
    ui.wait_dialog_closed().await;
    let row = ui
        .until(
            "the overlap in the list",
            &format!("const r = document.querySelector('tr[data-token-id=\"{id}\"]'); return r && r.innerText.includes('previous secret works until') && r.innerText;"),
        )
        .await;
    assert!(row.as_str().unwrap().contains("rotating"), "{row}");
    assert!(row.as_str().unwrap().contains("max size: 500"), "{row}");
    for secret in [&fresh, &old] {
        let (status, v) = search(&gw, &http::bearer(secret)).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["hits"]["total"]["value"], json!(TENANT_A_DOCS), "{v}");
        assert!(tenants(&v).iter().all(|t| t == "a"), "{v}");
    }
    ui.close().await;
    gw.stop().await;
}

/// The links of `token_id` as the admin API lists them (read as the shape the server and the
/// CLI share, `esgate::admin::api`).
async fn links_of(gw: &Esgate, token_id: &str) -> Vec<api::Link> {
    let (status, v) = gw
        .admin("GET", &format!("/tokens/{token_id}/links"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    serde_json::from_value::<api::LinkList>(v)
        .expect("a link list")
        .links
}

/// A token as the admin API shows it, read as the shared view type.
async fn token_view(gw: &Esgate, id: &str) -> api::Token {
    let (status, v) = gw.admin("GET", &format!("/tokens/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    serde_json::from_value(v).expect("a token view")
}

/// A token's filters as `(library id, field, value)`.
fn filter_triples(view: &api::Token) -> Vec<(Option<&str>, &str, &str)> {
    view.filters
        .iter()
        .map(|f| {
            (
                f.id.as_deref(),
                f.field.as_deref().unwrap_or("-"),
                f.value.as_deref().unwrap_or("-"),
            )
        })
        .collect()
}

/// The value of the "New link" field once it shows a URL other than `before`.
async fn new_link_url(ui: &Ui, before: &str) -> String {
    ui.until(
        "the new link's URL",
        &format!("const v = document.getElementById('link-new-url').value; return !document.getElementById('link-new').hidden && v !== '{before}' && v;"),
    )
    .await
    .as_str()
    .unwrap()
    .to_owned()
}

/// "Share link" (issue #16) per read token: the dialog lists the token's links and creates live
/// and snapshot ones; the URL shown is the one the admin API lists (and it opens on the Kibana
/// front); errors appear next to their field (a bad path, a snapshot ending before it starts)
/// or at the form's foot (409: an expired token, no Kibana front configured); a path written
/// like HTML is shown as text; "Delete" asks first and the link is gone (404). One browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_links_are_created_copied_listed_and_deleted_in_the_browser() {
    let backend = fixture::seeded_osmem();
    // Opening `/s/<id>` answers from esgate alone, so Kibana's address is never dialled.
    let gw = Esgate::start(
        &[backend.url()],
        &support::share_link::kibana_section("http://127.0.0.1:9"),
    )
    .await;
    let (id, _) = gw
        .token(json!({"name": "dash-viewer", "indices": ["logs-*"],
                      "filters": [{"field": "tenant", "value": "a"}], "expires_in": "7d"}))
        .await;
    let (all_id, _) = gw
        .token(json!({"name": "pass-through", "permissions": ["all"]}))
        .await;
    let (gone_id, _) = gw
        .token(json!({"name": "ends-soon", "expires_in": "1s"}))
        .await;
    let gone_at = Instant::now() + Duration::from_millis(1100);

    let ui = Ui::open(&gw).await;
    ui.js("window.violations = []; document.addEventListener('securitypolicyviolation', e => window.violations.push(e.violatedDirective)); return true").await;
    ui.sign_in(ADMIN_KEY).await;
    // Only read tokens offer it (an `all` token is passed through unchecked).
    assert!(ui.token_row(&id).await.contains("Share link"));
    assert!(!ui.token_row(&all_id).await.contains("Share link"));

    ui.row_button("data-token-id", &id, "Share link").await;
    let title = ui.message("links-title").await;
    assert_eq!(title, "Share links of dash-viewer");
    ui.message("links-empty").await;
    // The keyboard starts in the form.
    assert_eq!(
        ui.js("return document.activeElement.id").await,
        json!("l-path")
    );

    // A URL is not a Kibana path: the API's 400 is shown next to "Kibana path".
    ui.fill(DIALOG, "Kibana path", "https://evil.example/app/x")
        .await;
    ui.click(DIALOG, "Create link").await;
    let msg = ui.message("l-path-error").await;
    assert!(msg.contains("400") && msg.contains("path"), "{msg}");
    assert!(links_of(&gw, &id).await.is_empty());

    // A live link (no snapshot), created with the keyboard (Enter in the form).
    ui.fill(DIALOG, "Expires in", "7d").await;
    ui.fill(DIALOG, "Kibana path", "/app/dashboards#/view/d1\u{E007}")
        .await;
    let live_url = new_link_url(&ui, "").await;
    let listed = links_of(&gw, &id).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let live = listed[0].clone();
    assert_eq!(live.url.as_deref(), Some(live_url.as_str()));
    assert_eq!(live.path, "/app/dashboards#/view/d1");
    assert_eq!(live.time, None);
    assert!(live.expires_at.is_some(), "{live:?}");
    assert!(
        ui.js("return document.getElementById('l-path-error').hidden")
            .await
            .as_bool()
            .unwrap(),
        "the old error is cleared"
    );
    let live_id = live.id.clone();
    let row = ui
        .until(
            "the live link's row",
            &format!("const r = document.querySelector('tr[data-link-id=\"{live_id}\"]'); return r && r.innerText;"),
        )
        .await;
    let row = row.as_str().unwrap();
    assert!(row.contains("live") && row.contains(&live_url), "{row}");
    // The URL shown is the one recipients open: on the front it redirects to the path.
    let front = gw.front_addr.expect("the Kibana front listens");
    let on_front = live_url.replace("http://dash.test", &format!("http://{front}"));
    let r = send("GET", &on_front, &[], "")
        .await
        .expect("the front answers");
    assert_eq!(r.status.as_u16(), 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/app/dashboards#/view/d1?embed=true")
    );
    // "Copy" copies it (or says how to).
    ui.find("//button[@id='link-new-copy']")
        .await
        .click()
        .await
        .unwrap();
    let copied = ui.message("links-copied").await;
    assert!(
        copied.contains("Link copied") || copied.contains("Copying failed"),
        "{copied}"
    );

    // A snapshot: a range ending before it starts is refused next to the range; then made.
    // (datetime-local inputs are set by script: their typed form depends on the locale.)
    ui.fill(DIALOG, "Kibana path", "/app/dashboards#/view/d2")
        .await;
    ui.js("document.getElementById('l-from').value = '2026-11-02T00:00'; document.getElementById('l-to').value = '2026-11-01T00:00'; return true").await;
    ui.click(DIALOG, "Create link").await;
    let msg = ui.message("l-time-error").await;
    assert!(msg.contains("400") && msg.contains("time.to"), "{msg}");
    assert_eq!(links_of(&gw, &id).await.len(), 1);
    ui.js("document.getElementById('l-from').value = '2026-11-01T00:00'; document.getElementById('l-to').value = '2026-11-02T06:30:15'; return true").await;
    ui.click(DIALOG, "Create link").await;
    let snap_url = new_link_url(&ui, &live_url).await;
    let listed = links_of(&gw, &id).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let snap = listed
        .iter()
        .find(|l| l.url.as_deref() == Some(snap_url.as_str()))
        .unwrap_or_else(|| panic!("{snap_url} not in {listed:?}"))
        .clone();
    assert_eq!(snap.path, "/app/dashboards#/view/d2");
    assert_eq!(
        snap.time,
        Some(api::TimeRange {
            from: "2026-11-01T00:00:00Z".into(),
            to: "2026-11-02T06:30:15Z".into()
        })
    );
    let snap_id = snap.id.clone();
    let row = ui
        .until(
            "the snapshot's row",
            &format!("const r = document.querySelector('tr[data-link-id=\"{snap_id}\"]'); return r && r.innerText;"),
        )
        .await;
    let row = row.as_str().unwrap();
    assert!(
        row.contains("snapshot")
            && row.contains("2026-11-01 00:00 UTC")
            && row.contains("2026-11-02 06:30:15 UTC"),
        "{row}"
    );

    ui.screenshot("admin-ui-share-links.png").await;

    // A path written like HTML (the API accepts it: printable ASCII, no space) is text.
    let xss = "/app/dashboards#/view/<img/src=x/onerror=window.pwned=1>";
    ui.fill(DIALOG, "Kibana path", xss).await;
    ui.click(DIALOG, "Create link").await;
    new_link_url(&ui, &snap_url).await;
    let xss_link = links_of(&gw, &id)
        .await
        .into_iter()
        .find(|l| l.path == xss)
        .expect("the API kept the path as given");
    let xss_id = xss_link.id.as_str();
    let cell = ui
        .until(
            "the HTML-like path",
            &format!("const r = document.querySelector('tr[data-link-id=\"{xss_id}\"] td.path'); return r && r.textContent;"),
        )
        .await;
    assert_eq!(cell, json!(xss));
    assert_eq!(
        ui.js("return [document.querySelectorAll('img').length, window.pwned === undefined]")
            .await,
        json!([0, true])
    );

    // Delete asks first: Cancel keeps the link, Confirm deletes it (404 on the API after).
    ui.row_button("data-link-id", &live_id, "Delete").await;
    let list = ui.message("confirm-list").await;
    assert!(list.contains("/app/dashboards#/view/d1"), "{list}");
    ui.click(DIALOG, "Cancel").await;
    ui.until(
        "the confirmation to close",
        "return !document.getElementById('confirm-dialog').open && document.getElementById('links-dialog').open",
    )
    .await;
    assert_eq!(
        gw.admin("GET", &format!("/links/{live_id}"), None).await.0,
        200
    );
    ui.row_button("data-link-id", &live_id, "Delete").await;
    ui.click(DIALOG, "Confirm").await;
    ui.until(
        "the live link's row to go",
        &format!("return !document.getElementById('confirm-dialog').open && document.querySelector('tr[data-link-id=\"{live_id}\"]') === null"),
    )
    .await;
    assert_eq!(
        gw.admin("GET", &format!("/links/{live_id}"), None).await.0,
        404
    );
    assert_eq!(links_of(&gw, &id).await.len(), 2);
    let r = send("GET", &on_front, &[], "")
        .await
        .expect("the front answers");
    assert_ne!(r.status.as_u16(), 303, "a deleted link still opens");

    // An expired token: the API's 409 is shown at the form's foot.
    ui.click(DIALOG, "Close").await;
    ui.wait_dialog_closed().await;
    tokio::time::sleep(gone_at.saturating_duration_since(Instant::now())).await;
    ui.row_button("data-token-id", &gone_id, "Share link").await;
    ui.fill(DIALOG, "Kibana path", "/app/dashboards#/view/d1")
        .await;
    ui.click(DIALOG, "Create link").await;
    let msg = ui.message("l-error").await;
    assert!(msg.contains("409") && msg.contains("expired"), "{msg}");
    assert_eq!(ui.js("return window.violations").await, json!([]));
    ui.click(DIALOG, "Close").await;
    ui.wait_dialog_closed().await;

    // Without a Kibana front (no `[kibana]`), creating says so (409, naming the section).
    let bare = Esgate::start(&[backend.url()], "").await;
    let (bare_id, _) = bare.token(json!({"name": "no-front"})).await;
    ui.c.goto(&bare.admin_url("/ui/")).await.unwrap();
    ui.sign_in(ADMIN_KEY).await;
    ui.row_button("data-token-id", &bare_id, "Share link").await;
    ui.fill(DIALOG, "Kibana path", "/app/dashboards#/view/d1")
        .await;
    ui.click(DIALOG, "Create link").await;
    let msg = ui.message("l-error").await;
    assert!(msg.contains("409") && msg.contains("[kibana]"), "{msg}");
    assert!(links_of(&bare, &bare_id).await.is_empty());
    ui.close().await;
    bare.stop().await;
    gw.stop().await;
}
