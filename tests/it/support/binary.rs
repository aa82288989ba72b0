//! The real `esgate` binary as a child process: `serve` on ports the OS chooses, with the
//! addresses read from its start-up log line and every stderr line kept for assertions.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running `esgate serve`; killed when dropped.
pub struct Served {
    pub child: Child,
    /// `http://IP:PORT` of the data listener.
    pub data: String,
    /// `http://IP:PORT` of the admin listener.
    pub admin: String,
    /// Everything it wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `esgate serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0` plus `args`, as `configure`
/// sets up the command further (environment, working directory).
pub fn serve(args: &[&str], configure: impl FnOnce(&mut Command)) -> Served {
    serve_via(&[], args, configure)
}

/// [`serve`] started by `wrapper` (a program and its arguments that end by running the program
/// named after them: `nsenter ... --`), which must become esgate (exec it, not fork it): the
/// child is esgate itself, so killing it kills esgate.
pub fn serve_via(wrapper: &[&str], args: &[&str], configure: impl FnOnce(&mut Command)) -> Served {
    let esgate = env!("CARGO_BIN_EXE_esgate");
    let mut cmd = match wrapper.split_first() {
        None => Command::new(esgate),
        Some((program, rest)) => {
            let mut cmd = Command::new(program);
            cmd.args(rest).arg(esgate);
            cmd
        }
    };
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .args(args);
    configure(&mut cmd);
    start(cmd)
}

/// `esgate serve` plus `args` only: the listeners are the configuration's (a config file's
/// `listen`, which a test that reads the file needs to hold).
pub fn serve_as_configured(args: &[&str], configure: impl FnOnce(&mut Command)) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_esgate"));
    cmd.arg("serve").args(args);
    configure(&mut cmd);
    start(cmd)
}

/// Starts `cmd` (an `esgate serve`) and waits for its addresses.
fn start(mut cmd: Command) -> Served {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("esgate starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let log = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&log);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("esgate is serving") {
                let field = |name: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_owned))
                        .unwrap_or_default()
                };
                let _ = tx.send((field("data"), field("admin")));
            }
            let mut log = sink.lock().expect("the log lock is never poisoned");
            log.push_str(&line);
            log.push('\n');
        }
    });
    let (data, admin) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("esgate reports its addresses");
    Served {
        child,
        data: format!("http://{data}"),
        admin: format!("http://{admin}"),
        log,
    }
}
