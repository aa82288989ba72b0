//! The esgate binary: everything is in the library; see `esgate::cli`.

// The request path allocates many small, short-lived objects (headers, JSON values); glibc's
// allocator was the largest user-space cost under load (benches/load/run.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    esgate::cli::main()
}
