//! The esgate binary: everything is in the library; see `esgate::cli`.

fn main() -> std::process::ExitCode {
    esgate::cli::main()
}
