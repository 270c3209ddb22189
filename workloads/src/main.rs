//! `storefront-workloads`: one binary for every commerce service; `--help` lists them.

/// mimalloc instead of glibc's malloc: the gateway allocates and frees many small buffers per
/// request (HTTP/1 and HTTP/2 frames, futures, headers) and glibc's allocator was a quarter
/// of its CPU under load (perf; docs/benchmarks.md "Gateway").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    storefront_workloads::cli::main()
}
