//! The `healthledger` command line: see `healthledger --help`.

fn main() -> std::process::ExitCode {
    healthledger_api::cli::main()
}
