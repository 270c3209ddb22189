//! `storefront-workloads`: one binary for every commerce service; `--help` lists them.

fn main() -> std::process::ExitCode {
    storefront_workloads::cli::main()
}
