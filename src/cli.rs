//! The command line: `serve`, `check-config`, and the admin API client commands.
//!
//! Invariant: the only place (with `main.rs`) that reads environment variables.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::admin_client::{ClientOpts, ConfigFile, Found};
use crate::config::{self, Config, ConfigError, Overrides};

#[derive(Debug, Parser)]
#[command(
    name = "esgate",
    version,
    about = "Authenticating, filter-injecting reverse proxy for Elasticsearch",
    after_help = "The token, filter, ip-filter and link commands talk to the admin API at ESGATE_ADMIN_URL, \
else listen.admin of the config file (--config PATH, default config/esgate.toml when it exists), \
else http://127.0.0.1:9202; with the key in ESGATE_ADMIN_KEY, else the config file's [admin] key, \
else the file ESGATE_ADMIN_KEY_FILE names, else the key esgate generated (store.path/admin.key, \
default ./data/admin.key)."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy and the admin API. Exits 2 on a bad configuration, 1 when it cannot
    /// start otherwise, 0 after a SIGTERM/SIGINT drain.
    ///
    /// SIGHUP re-reads the config file and its TLS files and reopens the audit file; a bad
    /// file is refused (logged) and the running configuration stays.
    Serve {
        /// Config file (default: config/esgate.toml when it exists, else built-in defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data listener address, e.g. 127.0.0.1:9201.
        #[arg(long)]
        listen: Option<String>,
        /// Admin listener address, e.g. 127.0.0.1:9202.
        #[arg(long = "admin-listen")]
        admin_listen: Option<String>,
        /// Backend node URL; repeat for several nodes of one cluster.
        #[arg(long = "backend")]
        backends: Vec<String>,
        /// Token store directory.
        #[arg(long)]
        store: Option<PathBuf>,
    },
    /// Validate the configuration and print the effective values as TOML that `serve`
    /// accepts (every setting, defaults included; secrets as their *_env names or redacted).
    /// Exits 0 when it is valid, 1 when it cannot be read or is invalid (the problems on stderr).
    CheckConfig {
        /// Config file (default: config/esgate.toml when it exists, else built-in defaults).
        #[arg(long, conflicts_with = "path")]
        config: Option<PathBuf>,
        /// The config file, as a positional argument (the same as --config PATH).
        #[arg(value_name = "PATH")]
        path: Option<PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout, e.g.
    /// `esgate completions bash > /etc/bash_completion.d/esgate`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `esgate man | man -l -`.
    Man,
    /// The token store itself (not through a running esgate): `export` writes the whole store
    /// as JSON to stdout (secrets stay hashed), `import` loads such a file from stdin into the
    /// configured store; lossless between the file and the cluster store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Admin API client commands (token, filter, ip-filter, link), using ESGATE_ADMIN_URL and
    /// ESGATE_ADMIN_KEY, else the config file's listen.admin and admin.key, else
    /// http://127.0.0.1:9202 and the key esgate generated (ESGATE_ADMIN_KEY_FILE, else
    /// store.path/admin.key). Exit 1 on any error, a bad config file included.
    #[command(flatten)]
    Client(Box<crate::admin_client::ClientCmd>),
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Write the whole configured store (tokens, library filters, IP filters, last-used times;
    /// secrets as SHA-256 hashes) as JSON to stdout. The file store must not be in use by a
    /// running esgate (its lock: docs/file-store.md backs it up while esgate runs); the cluster
    /// store may be.
    Export {
        /// Config file (default: config/esgate.toml when it exists, else built-in defaults).
        /// Only its `[store]` section is read, and `[backend]` for the cluster store.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Load an export (stdin) into the configured store: every record in it is written (added
    /// or replaced); records not in it are kept. Running replicas pick the records up.
    Import {
        /// Config file (default: config/esgate.toml when it exists, else built-in defaults).
        /// Only its `[store]` section is read, and `[backend]` for the cluster store.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The exit code of `serve` for a configuration that cannot be read or is invalid (any other
/// failure to start is 1, so a script tells them apart).
pub const BAD_CONFIG: u8 = 2;

/// The exit code of `check-config` for a configuration that cannot be read or is invalid: the
/// interface contract's "exit 0/1" that scripts test (README, "Configuration").
pub const CHECK_CONFIG_INVALID: u8 = 1;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Where the client commands find the admin API and its key (`ClientOpts::found` has the
/// order): the environment, the config file (`--config`, else `config/esgate.toml` when it
/// exists), the key files. A config file that cannot be read, or whose parts the client uses are
/// invalid, is an error: the server refuses it too.
fn client_opts(given: Option<&Path>) -> Result<ClientOpts, ConfigError> {
    let nonempty = |name: &str| env(name).filter(|v| !v.is_empty());
    let url_env = nonempty("ESGATE_ADMIN_URL");
    let key_env = nonempty("ESGATE_ADMIN_KEY");
    // Both from the environment: the default config file has nothing to add, and a script
    // that sets them keeps working whatever that file holds; an explicit `--config` is read.
    let from_env = url_env.is_some() && key_env.is_some();
    let path = match given {
        Some(given) => Some(given.to_owned()),
        None if from_env => None,
        None => config_path(None),
    };
    let config = match path {
        Some(path) => Some(ConfigFile {
            settings: config::load_admin_client_settings(&path, key_env.is_none(), &env)?,
            path,
        }),
        None => None,
    };
    let key_file_env = nonempty("ESGATE_ADMIN_KEY_FILE").map(PathBuf::from);
    let needs_file = key_env.is_none()
        && config
            .as_ref()
            .is_none_or(|c| c.settings.admin_key.is_none());
    let key_file_text = needs_file
        .then(|| ClientOpts::key_file(key_file_env.as_deref(), config.as_ref()))
        .flatten()
        .and_then(|file| std::fs::read_to_string(file).ok());
    Ok(ClientOpts::found(Found {
        url_env,
        key_env,
        key_file_env,
        key_file_text,
        config,
    }))
}

fn config_path(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let default = Path::new(config::DEFAULT_CONFIG_PATH);
        default.exists().then(|| default.to_owned())
    })
}

fn load(path: Option<PathBuf>, overrides: &Overrides) -> Result<Config, ConfigError> {
    config::load(config_path(path).as_deref(), overrides, &env)
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Completions { shell } => {
            let mut cmd = <Args as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "esgate", &mut out);
            write_stdout(&String::from_utf8_lossy(&out))
        }
        Command::Man => {
            let cmd = <Args as clap::CommandFactory>::command();
            let mut out = Vec::new();
            match clap_mangen::Man::new(cmd).render(&mut out) {
                Ok(()) => write_stdout(&String::from_utf8_lossy(&out)),
                Err(e) => {
                    eprintln!("esgate: cannot render the man page: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::CheckConfig { config, path } => match load(config.or(path), &Overrides::default())
        {
            Ok(c) => {
                let advice: String = c
                    .advice()
                    .iter()
                    .map(|a| format!("# advice: {a}\n"))
                    .collect();
                write_stdout(&format!(
                    "{}\n{advice}# configuration is valid\n",
                    c.describe()
                ))
            }
            Err(e) => {
                eprintln!("esgate: {e}");
                ExitCode::from(CHECK_CONFIG_INVALID)
            }
        },
        Command::Store { command } => store_command(command),
        Command::Client(cmd) => {
            let opts = match client_opts(cmd.config()) {
                Ok(opts) => opts,
                Err(e) => {
                    eprintln!("esgate: {e}");
                    return ExitCode::from(1);
                }
            };
            let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
                return ExitCode::from(1);
            };
            match runtime.block_on(crate::admin_client::run(*cmd, &opts)) {
                Ok(mut text) => {
                    if !text.is_empty() && !text.ends_with('\n') {
                        text.push('\n');
                    }
                    write_stdout(&text)
                }
                Err(e) => {
                    eprintln!("esgate: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Serve {
            config,
            listen,
            admin_listen,
            backends,
            store,
        } => {
            let overrides = Overrides {
                listen,
                admin_listen,
                backends,
                store: store.map(|p| p.display().to_string()),
            };
            let path = config_path(config);
            let config = match config::load(path.as_deref(), &overrides, &env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("esgate: {e}");
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            init_logging(&config);
            // Which file was read (the default one is picked up silently) and where requests
            // go: the first thing to check when esgate does not behave as configured.
            let backends: Vec<String> = config
                .backend
                .urls
                .iter()
                .map(|u| u.to_string().trim_end_matches('/').to_owned())
                .collect();
            let store = match config.store.index() {
                None => config.store_path.display().to_string(),
                Some(index) => format!("cluster index {index}"),
            };
            tracing::info!(
                config = %path.as_deref().map_or_else(|| "none (built-in defaults)".to_owned(), |p| p.display().to_string()),
                backend = %backends.join(","),
                %store,
                "Configuration read"
            );
            let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
                return ExitCode::from(1);
            };
            // SIGHUP reads the same file with the same overrides.
            let reread = move || config::load(path.as_deref(), &overrides, &env);
            runtime.block_on(serve(config, reread))
        }
    }
}

/// Writes a command's output. A reader that stops early (`esgate token list | head`) closes
/// the pipe: that ends the output quietly instead of panicking like `print!` does.
fn write_stdout(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esgate: cannot write the output: {e}");
            ExitCode::from(1)
        }
    }
}

fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|e| eprintln!("esgate: cannot start the runtime: {e}"))
        .ok()
}

/// The configured level, with rustls held to errors unless the configuration names it: rustls
/// warns on every TLS handshake of a client that connects by IP address (an IP in SNI), which
/// would put a line per connection in the log.
fn log_directives(level: &str) -> String {
    if level.contains("rustls") {
        level.to_owned()
    } else {
        format!("{level},rustls=error")
    }
}

/// The running log filter, replaced on SIGHUP when `log.level` changes ([`apply_log_level`]).
static LOG_FILTER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

fn log_filter(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_new(log_directives(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}

fn init_logging(config: &Config) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(log_filter(&config.log.level));
    let _ = LOG_FILTER.set(handle);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let registry = tracing_subscriber::registry().with(filter);
    if config.log.json {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
}

/// Applies a reloaded `log.level` (validated with the configuration) to the running log.
fn apply_log_level(level: &str) {
    if let Some(handle) = LOG_FILTER.get() {
        if let Err(e) = handle.reload(log_filter(level)) {
            tracing::warn!(error = %e, "Reload: log.level could not be applied");
        }
    }
}

async fn serve(
    config: Config,
    reread: impl Fn() -> Result<Config, ConfigError> + Send + 'static,
) -> ExitCode {
    // Installed first: SIGHUP's default action would end the process.
    #[cfg(unix)]
    let hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot listen for SIGHUP; reload is unavailable");
            None
        }
    };
    log_advice(&config);
    match crate::server::descriptors::prepare(&config.limits) {
        Ok(limit) => tracing::debug!(limit = ?limit, "Open-files limit"),
        Err(message) => {
            eprintln!("esgate: {message}");
            return ExitCode::from(2);
        }
    }
    let data_addr = config.data_listen;
    let admin_addr = config.admin_listen;
    let app = match crate::app::App::start(config).await {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("esgate: {e}");
            return ExitCode::from(1);
        }
    };
    app.check_store_reach().await;
    let data = match tokio::net::TcpListener::bind(data_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("esgate: cannot listen on {data_addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let admin = match tokio::net::TcpListener::bind(admin_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("esgate: cannot listen on {admin_addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let front = match app.config.kibana.as_ref().map(|k| k.listen) {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(kibana_front = %addr, "Share links: the Kibana front is serving");
                Some(l)
            }
            Err(e) => {
                eprintln!("esgate: cannot listen on {addr} (kibana.listen): {e}");
                return ExitCode::from(1);
            }
        },
    };
    tracing::info!(
        data = %data.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        admin = %admin.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        "esgate is serving"
    );
    if let Some(file) = &app.admin_key_file {
        // The CLI looks in ./data/admin.key by default: only then does it find this file
        // by itself (a relative store path is relative to this directory, and so is the CLI's).
        let default = Path::new(config::DEFAULT_STORE_PATH).join(crate::app::ADMIN_KEY_FILE);
        if file.as_path() == default.as_path() {
            tracing::info!(
                file = %file.display(),
                "No admin key configured (ESGATE_ADMIN_KEY): the admin API uses the generated key in this file (mode 0600); the CLI reads it from there too, when run from this directory"
            );
        } else {
            tracing::info!(
                file = %file.display(),
                "No admin key configured (ESGATE_ADMIN_KEY): the admin API uses the generated key in this file (mode 0600); the CLI looks in ./data/admin.key, so point ESGATE_ADMIN_KEY_FILE at this file"
            );
        }
    }
    let live = Arc::new(crate::app::Live::new(Arc::clone(&app)));
    drop(app);
    #[cfg(unix)]
    let reloader = hangups.map(|s| tokio::spawn(reload_on_hangup(s, Arc::clone(&live), reread)));
    #[cfg(not(unix))]
    drop(reread);
    crate::server::run_live(Arc::clone(&live), data, admin, front, shutdown_signal()).await;
    #[cfg(unix)]
    if let Some(r) = reloader {
        r.abort();
    }
    live.load().audit.sync();
    tracing::info!("esgate stopped");
    ExitCode::SUCCESS
}

/// SIGHUP: re-reads the configuration (and the TLS files it names) and swaps the serving `App`
/// (`app::Live::reload`: the audit file reopened, the backend pool rebuilt). A configuration
/// that does not validate is refused with its reasons, and the running one stays; settings
/// that need a restart are named in the log.
#[cfg(unix)]
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    live: Arc<crate::app::Live>,
    reread: impl Fn() -> Result<Config, ConfigError>,
) {
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        // One log line, whatever the error: its lines joined.
        let one_line = |e: String| e.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        match reread()
            .map_err(|e| one_line(e.to_string()))
            .and_then(|config| {
                log_advice(&config);
                let level = config.log.level.clone();
                let restart = live.reload(config).map_err(|e| one_line(e.to_string()))?;
                apply_log_level(&level);
                Ok(restart)
            }) {
            Err(e) => tracing::error!(
                error = %e,
                "Reload refused; the running configuration stays in force"
            ),
            Ok(restart) => {
                if !restart.is_empty() {
                    tracing::warn!(
                        settings = %restart.join("; "),
                        "Reload: these settings changed but take effect only after a restart; their running values stay"
                    );
                }
                tracing::info!("Configuration reloaded");
                // The backend credential may have changed.
                live.load().check_store_reach().await;
            }
        }
    }
}

/// The configuration's advice (`Config::advice`), a warning each.
fn log_advice(config: &Config) {
    for a in config.advice() {
        tracing::warn!(key = %a.path, "Configuration: {}", a.message);
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// `esgate store export|import`.
fn store_command(command: StoreCommand) -> ExitCode {
    use crate::store::{cluster::ClusterStore, exchange, file::FileStore, Persistence, Snapshot};
    let (config, import) = match command {
        StoreCommand::Export { config } => (config, false),
        StoreCommand::Import { config } => (config, true),
    };
    let config = match config::load_store_settings(config_path(config).as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("esgate: {e}");
            return ExitCode::from(BAD_CONFIG);
        }
    };
    let input = if import {
        let mut text = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            eprintln!("esgate: cannot read the export from stdin: {e}");
            return ExitCode::from(1);
        }
        match exchange::parse(&text) {
            Ok(changes) => Some(changes),
            Err(e) => {
                eprintln!("esgate: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    let result: Result<String, String> = match &config.store {
        config::StoreKind::File => (|| {
            let mut store = FileStore::open(&config.store_path).map_err(|e| e.to_string())?;
            let loaded = store.load().map_err(|e| e.to_string())?;
            match &input {
                Some(changes) => {
                    // Attack 19a: held to the admin API's rules, against what the store holds.
                    crate::admin::records::check_import(changes, &Snapshot::from_changes(&loaded))?;
                    store.append(changes).map_err(|e| e.to_string())?;
                    Ok(format!("imported {} records\n", changes.len()))
                }
                None => Ok(exchange::export(&Snapshot::from_changes(&loaded))),
            }
        })(),
        config::StoreKind::Elasticsearch {
            index,
            urls,
            tombstone_retention,
            access,
            ..
        } => {
            let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
                return ExitCode::from(1);
            };
            runtime.block_on(async {
                let reach = config.backend.for_store(urls, access);
                let cluster = ClusterStore::new(&reach, index, *tombstone_retention);
                let err = |e: crate::store::StoreError| e.to_string();
                match &input {
                    Some(changes) => {
                        cluster.prepare_index(true).await.map_err(err)?;
                        let loaded = cluster.load().await.map_err(err)?;
                        crate::admin::records::check_import(
                            changes,
                            &Snapshot::from_changes(&loaded.changes),
                        )?;
                        let n = cluster.import(changes).await.map_err(err)?;
                        Ok(format!("imported {n} documents\n"))
                    }
                    None => {
                        cluster.prepare_index(false).await.map_err(err)?;
                        let loaded = cluster.load().await.map_err(err)?;
                        Ok(exchange::export(&Snapshot::from_changes(&loaded.changes)))
                    }
                }
            })
        }
    };
    match result {
        Ok(text) if import => {
            eprint!("esgate: {text}");
            ExitCode::SUCCESS
        }
        Ok(text) => write_stdout(&text),
        Err(e) => {
            eprintln!("esgate: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every command, subcommand, flag and argument says what it is in `--help`.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let here = format!("{path} {}", cmd.get_name());
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{here} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(format!("{here} {}", sub.get_name()));
                }
                walk(sub, &here, missing);
            }
        }
        let mut missing = vec![];
        walk(
            &<super::Args as clap::CommandFactory>::command(),
            "",
            &mut missing,
        );
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    #[test]
    fn the_man_page_and_completions_cover_the_commands() {
        let mut man = Vec::new();
        clap_mangen::Man::new(<super::Args as clap::CommandFactory>::command())
            .render(&mut man)
            .unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(
            man.starts_with(".ie") || man.contains(".TH esgate"),
            "{man}"
        );
        for word in ["serve", "check\\-config", "token"] {
            assert!(man.contains(word), "{word} missing from the man page");
        }
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut <super::Args as clap::CommandFactory>::command(),
            "esgate",
            &mut bash,
        );
        let bash = String::from_utf8(bash).unwrap();
        assert!(bash.contains("ip-filter") && bash.contains("--expires-in"));
        // The client groups' one global `--json` is completed on their subcommands too.
        let token_list_opts = bash
            .split("esgate__subcmd__token__subcmd__list)")
            .nth(1)
            .and_then(|rest| rest.lines().find(|l| l.trim_start().starts_with("opts=")))
            .unwrap_or_default();
        assert!(token_list_opts.contains("--json"), "{token_list_opts}");
    }

    /// `--json` belongs to the admin client groups (one `global` flag each, issue #11): it
    /// parses before or after their subcommands, and is refused where it means nothing.
    #[test]
    fn json_is_global_to_the_client_commands_only() {
        use clap::Parser;
        let parses = |args: &[&str]| super::Args::try_parse_from(args).is_ok();
        assert!(parses(&["esgate", "token", "list", "--json"]));
        assert!(parses(&["esgate", "ip-filter", "--json", "show", "office"]));
        assert!(parses(&[
            "esgate", "link", "list", "--token", "t", "--json"
        ]));
        assert!(!parses(&["esgate", "serve", "--json"]));
        // So is `--config` (the server's config file, where the admin API and its key are).
        assert!(parses(&["esgate", "token", "list", "--config", "c.toml"]));
        assert!(parses(&[
            "esgate", "link", "--config", "c.toml", "list", "--token", "t"
        ]));
        assert!(!parses(&["esgate", "check-config", "--json"]));
    }

    #[test]
    fn rustls_is_held_to_errors_unless_configured() {
        assert_eq!(super::log_directives("info"), "info,rustls=error");
        assert_eq!(
            super::log_directives("debug,rustls=debug"),
            "debug,rustls=debug"
        );
        assert!(tracing_subscriber::EnvFilter::try_new(super::log_directives("warn")).is_ok());
    }
}
