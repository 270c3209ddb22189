//! The load generator (`storefront-workloads loadgen`) as a child process of a test: the
//! binary is `E2E_LOADGEN_BIN` (`tests/e2e/run` points it at the build the images
//! come from), else the workspace's debug build; runs to the end and returns its JSON
//! summary, or shows its output when it fails.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::paths::repo;

/// The loadgen binary.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("E2E_LOADGEN_BIN") {
        return PathBuf::from(p);
    }
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"))
        .join("debug/storefront-workloads")
}

/// Runs `loadgen --target <target> <args…> --quiet --out <file>` to the end (on a blocking
/// thread) and returns its JSON summary.
pub async fn run(target: &str, args: &[&str]) -> anyhow::Result<Value> {
    let out = std::env::temp_dir().join(format!(
        "e2e-loadgen-{}-{}.json",
        std::process::id(),
        rand_suffix()
    ));
    let mut command = Command::new(binary());
    command
        .args([
            "loadgen",
            "--log-format",
            "text",
            "--target",
            target,
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .with_context(|| format!("failed to run {}", binary().display()))?;
    if !output.status.success() {
        bail!(
            "loadgen failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(&out).with_context(|| format!("no summary at {out:?}"))?;
    let _ = std::fs::remove_file(&out);
    Ok(serde_json::from_str(&text)?)
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()))
}

/// Sums a status count (`"2xx"`, `"429"`, `"4xx"`, `"5xx"`, `"other"`) or a top-level
/// endpoint field (`"sent"`, `"transportErrors"`, `"unfinished"`) over every endpoint.
pub fn total(summary: &Value, field: &str) -> u64 {
    summary["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            e["status"][field]
                .as_u64()
                .or_else(|| e[field].as_u64())
                .unwrap_or(0)
        })
        .sum()
}

/// What a limiter let through of one row (an endpoint, the total or a face of `--abusive`):
/// sent, less 429s and requests without an answer (a 401 or a 404 was admitted, then
/// answered).
pub fn admitted(row: &Value) -> u64 {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    n(&row["sent"])
        .saturating_sub(n(&row["status"]["429"]))
        .saturating_sub(n(&row["transportErrors"]))
        .saturating_sub(n(&row["unfinished"]))
}
