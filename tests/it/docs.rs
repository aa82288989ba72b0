//! The project's own docs carry its contract (issue #15, item 3): `docs/cli.md` is every
//! command's `--help` as the binary prints it (regenerate with
//! `UPDATE_DOCS=1 cargo test --test it docs::`), `docs/configuration.md` names every config key of
//! `config/esgate.toml`, `docs/admin-api.md` every route of `docs/openapi.yaml`, and the README
//! points at them instead of a file outside the repository.

use std::path::Path;

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

const CLI_INTRO: &str = "# esgate command line

Generated from the binary's own help (`esgate <command> --help`); `tests/it/docs.rs` fails when
it is out of date (regenerate with `UPDATE_DOCS=1 cargo test --test it docs::`). `esgate man` prints
the same as a man page, `esgate completions <shell>` a completion script.

The admin client commands (`token`, `filter`, `ip-filter`, `link`) call the admin API
([admin-api.md](admin-api.md)). They find it and its key as the server does, most specific
first:

- the URL: `ESGATE_ADMIN_URL`, else `listen.admin` of the config file (`http://` and the
  address; `0.0.0.0` or `::` as loopback), else `http://127.0.0.1:9202`;
- the key: `ESGATE_ADMIN_KEY`, else the config file's `[admin]` `key` or `key_env`, else the
  file `ESGATE_ADMIN_KEY_FILE` names, else the key `serve` generated into `admin.key` in the
  config's `store.path` (without a config file `./data/admin.key`).

The config file is `--config PATH` (one flag of each command group, before or after the
subcommand), else `config/esgate.toml` when it exists, as for `serve` (not read when
`ESGATE_ADMIN_URL` and `ESGATE_ADMIN_KEY` are both set and `--config` is not given). It is parsed whole as
`serve` parses it; of its settings only `listen.data`, `listen.admin`, `[admin]` and `store.kind`,
`store.path` are checked by the server's rules (`[admin]` and `[store]` only when
`ESGATE_ADMIN_KEY` is not set), so the server's TLS files and backend credentials need not be
readable where the CLI runs. A file that cannot be read, a syntax error, an unknown key or an
invalid value among those exits 1 with the problem on stderr. The admin key is never printed.

They print text for people, or the admin API's JSON with `--json` (one flag of each command
group, before or after the subcommand: `esgate token list --json`, `esgate token --json list`; a
`delete`, which gets no answer body, prints its message either way), and exit 1 on any error
(the admin API's reason is printed on stderr).

Exit codes of `check-config`: 0 the configuration is valid (printed on stdout), 1 it cannot be
read or is invalid (every problem is listed with its key path on stderr, nothing on stdout).

Exit codes of `serve`: 0 stopped by SIGTERM or SIGINT after draining the requests in flight,
2 the configuration cannot be read or is invalid (as above; also: its connection limits do not
fit the open-files limit), 1 any other failure to start (an address in use, a damaged store), so
a script can tell a bad configuration from a failure to start.

A usage error (an unknown command or flag, `check-config PATH --config PATH`) exits 2 from
every command, with the usage on stderr.
";

/// The CLI reference: the intro, then each command's help, depth first.
fn cli_reference() -> String {
    fn walk(cmd: &mut clap::Command, out: &mut String) {
        let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_owned();
        out.push_str(&format!(
            "\n## `{name}`\n\n```text\n{}\n```\n",
            cmd.render_long_help().to_string().trim_end()
        ));
        for sub in cmd.get_subcommands_mut() {
            if sub.get_name() != "help" {
                walk(sub, out);
            }
        }
    }
    let mut cmd = <esgate::cli::Args as clap::CommandFactory>::command()
        .term_width(100)
        .bin_name("esgate");
    cmd.build();
    let mut out = CLI_INTRO.to_owned();
    walk(&mut cmd, &mut out);
    out
}

#[test]
fn the_cli_reference_is_the_binarys_help() {
    let generated = cli_reference();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md");
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "docs/cli.md is out of date: run `UPDATE_DOCS=1 cargo test --test it docs::`"
    );
    for command in [
        "esgate serve",
        "esgate check-config",
        "esgate token create",
        "esgate filter delete",
        "esgate ip-filter update",
    ] {
        assert!(generated.contains(&format!("## `{command}`")), "{command}");
    }
}

/// Every key of the example config (set or commented out) is in the configuration reference.
#[test]
fn the_configuration_reference_names_every_key() {
    let reference = repo_file("docs/configuration.md");
    let mut section = String::new();
    let mut missing = vec![];
    for line in repo_file("config/esgate.toml").lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            continue;
        }
        let full = format!("`{section}.{key}`");
        if !reference.contains(&full) {
            missing.push(full);
        }
    }
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
    // And the keys the example leaves out.
    for key in [
        "`backend.username`",
        "`backend.password`",
        "`backend.api_key`",
        "`admin.key`",
        "`audit.path`",
        "`store.password`",
        "`store.api_key`",
    ] {
        assert!(reference.contains(key), "{key} is not documented");
    }
}

#[test]
fn the_admin_api_reference_names_every_route() {
    let reference = repo_file("docs/admin-api.md");
    let doc: serde_json::Value = serde_yaml::from_str(&repo_file("docs/openapi.yaml")).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "delete"] {
            if item.get(method).is_some() {
                let route = format!("{} {path}", method.to_uppercase());
                assert!(
                    reference.contains(&route),
                    "{route} is not in docs/admin-api.md"
                );
            }
        }
    }
}

#[test]
fn the_readme_points_at_the_docs_not_outside_the_repository() {
    let readme = repo_file("README.md");
    assert!(
        !readme.contains("../shared"),
        "README refers outside the repository"
    );
    for doc in [
        "docs/admin-api.md",
        "docs/openapi.yaml",
        "docs/configuration.md",
        "docs/cli.md",
        "docs/file-store.md",
    ] {
        assert!(readme.contains(doc), "README does not link {doc}");
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(doc).exists(),
            "{doc} is missing"
        );
    }
}
