//! The ops console in a real terminal: tmux runs `storefront-console` against the cluster with
//! the sample shop (`manifests/samples/storefront.yaml`) on the real workload image, its
//! datastores, and traffic from the load generator (`storefront-workloads loadgen`); the test
//! sends keys, captures the pane, and checks what a person would — every service with its
//! replicas, live requests/s on the edges where traffic flows (client → gateway, gateway →
//! catalog, and a service → datastore edge: the services' calls to PostgreSQL), the views
//! behind the number keys and the palette, a service turning red within seconds of its pods
//! being killed (then recovering), and `--once` printing the live rates.
//!
//! Prometheus is `E2E_PROMETHEUS_URL`, else `http://127.0.0.1:9090` when it answers there (the
//! local cluster's `up` starts it). Without one the live numbers cannot be checked: the test
//! says so and checks the rest.
//!
//! Needs `tmux` on the PATH. The console binary is `E2E_CONSOLE_BIN`, the load generator's
//! `E2E_LOADGEN_BIN` (CI: build them first); either missing is built here with cargo into a
//! target directory of its own.
//!
//! By topic: the live console in tmux (`live.rs`), the pane readers' own tests (`pane.rs`),
//! `--once` and `diagram` (`once.rs`). Their harness is here: the binaries, the load generator,
//! tmux, and the pane readers.

#![allow(clippy::unwrap_used)]

use std::{
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use storefront_crds::Storefront;
use storefront_e2e::{
    TestNamespace, client, datastores::DatastoreUrls, ensure_operator, forward::forward,
    real_workload_image, repo, sample, storefront_from, wait_for, wait_ready,
};

const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// Requests per second the load generator offers (the default shopper mix).
const LOAD_RATE: u32 = 20;

/// A binary of the workspace: `$env`, or built here by cargo into a target directory of its
/// own (`<target>/e2e-console`: the `cargo test` running this holds the lock of the main one,
/// so building there would wait forever).
fn workspace_bin(env: &str, package: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"))
        .join("e2e-console");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", package, "--bin", package])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo())
        .status()
        .unwrap_or_else(|e| panic!("failed to run cargo build for {package}: {e}"));
    assert!(status.success(), "failed to build {package}");
    target.join("debug").join(package)
}

fn console_bin() -> PathBuf {
    workspace_bin("E2E_CONSOLE_BIN", "storefront-console")
}

/// The load generator, running until dropped; its output goes to a file shown on failure.
struct Loadgen {
    child: std::process::Child,
    log: PathBuf,
}

impl Loadgen {
    fn start(target: &str, rate: u32, duration: &str) -> Loadgen {
        let bin = workspace_bin("E2E_LOADGEN_BIN", "storefront-workloads");
        let log =
            std::env::temp_dir().join(format!("e2e-console-loadgen-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args([
                "loadgen",
                "--target",
                target,
                "--rate",
                &rate.to_string(),
                "--duration",
                duration,
                "--users",
                "5",
                "--quiet",
            ])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("failed to start storefront-workloads loadgen");
        Loadgen { child, log }
    }

    /// Fails with the load generator's output if it has exited (it runs for the whole test).
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the load generator exited ({status}):\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "===== loadgen =====\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Whether `addr` accepts a TCP connection within 2 s.
fn reachable(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}

/// The status code of `GET path` on `addr` (HTTP/1.0), `None` when it does not answer.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let a = addr.to_socket_addrs().ok()?.next()?;
    let mut s = TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A rate as the console prints it: `12.3`, `0.84`, `1.2k`, `~12.3` (an estimate); `None`
/// for `–`.
fn parse_rate(s: &str) -> Option<f64> {
    let s = s.strip_prefix('~').unwrap_or(s);
    match s.strip_suffix('k') {
        Some(k) => k.parse::<f64>().ok().map(|v| v * 1000.0),
        None => s.parse().ok(),
    }
}

/// Requests/s on the topology's edge into `service`, as the pane shows it: the first
/// `<rate>/s` of the edge label (`├─ 16.9/s 5ms 0   ─▶ catalog 1/1`; the client → gateway
/// edge is labelled on the line under `client ─▶ gateway`). `None` while it reads `–`.
fn edge_rps(pane: &str, service: &str) -> Option<f64> {
    let lines: Vec<&str> = pane.lines().collect();
    let label = if service == "gateway" {
        let i = lines.iter().position(|l| l.contains("client ─▶ gateway"))?;
        lines.get(i + 1)?.to_string()
    } else {
        // `│  20.0/s 46ms 0   ├─ 16.9/s 5ms 0   ─▶ catalog 1/1`: the label after the last
        // branch (`├─ `, `└─ `, `┬─ `) before the arrow, not the gateway's on the left.
        let arrow = format!("─▶ {service} ");
        let l = lines.iter().find(|l| l.contains(&arrow))?;
        let before = &l[..l.find(&arrow)?];
        before.rsplit("─ ").next()?.to_string()
    };
    let token = label
        .split_whitespace()
        .find(|t| t.ends_with("/s") && !t.starts_with('─'))?;
    parse_rate(token.strip_suffix("/s")?)
}

/// Requests/s of the services' calls to the datastore `store` (`pg`, `pg-ro`, `redis`,
/// `nats`), as the topology shows them: the summary's `datastore pg 12.3/s · …` line (narrow
/// terminals), else the sum over the service rows' `→ pg 12.3/s …`. `None` while nothing
/// reads a rate.
fn datastore_rps(pane: &str, store: &str) -> Option<f64> {
    let rate = |t: &str| parse_rate(t.strip_suffix("/s")?);
    let summary = pane.lines().find_map(|l| {
        let mut t = l.trim_matches('│').split_whitespace();
        (t.next()? == "datastore" && t.next()? == store)
            .then(|| t.next().and_then(rate))
            .flatten()
    });
    if summary.is_some() {
        return summary;
    }
    let rows: Vec<f64> = pane
        .lines()
        .filter_map(|l| l.split_once("→ ").map(|(_, stores)| stores))
        .filter_map(|stores| {
            let t: Vec<&str> = stores.split_whitespace().collect();
            let i = t.iter().position(|w| *w == store)?;
            t.get(i + 1).and_then(|w| rate(w))
        })
        .collect();
    (!rows.is_empty()).then(|| rows.iter().sum())
}

/// Prometheus for the console: `E2E_PROMETHEUS_URL`, else the local cluster's (started by its
/// `up`) when `/-/ready` answers 200 on 127.0.0.1:9090; `None` without one (kind).
fn prometheus_url() -> Option<String> {
    if let Ok(u) = std::env::var("E2E_PROMETHEUS_URL") {
        return Some(u);
    }
    let url = "http://127.0.0.1:9090";
    let ready = (|| -> std::io::Result<bool> {
        let addr = ("127.0.0.1", 9090).to_socket_addrs()?.next();
        let Some(addr) = addr else { return Ok(false) };
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"))
    })();
    matches!(ready, Ok(true)).then(|| url.to_string())
}

/// The operator's reconcile rate as the topology view prints it (`operator 0.25 reconciles/s
/// · ...`): `None` while there is no number (`–`).
fn reconcile_rate(pane: &str) -> Option<f64> {
    let line = pane.lines().find(|l| l.contains(" reconciles/s"))?;
    let before = &line[..line.find(" reconciles/s")?];
    before.split_whitespace().last()?.parse().ok()
}

/// A tmux server of its own (`-L`), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(socket: &str, width: u16, height: u16, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: socket.to_string(),
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        assert!(
            out.status.success(),
            "failed to start tmux: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("failed to run tmux (is it installed?)")
    }

    /// The pane as text; with `escapes`, with its colors as SGR sequences.
    fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "console"];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.run(&args).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.run(&["send-keys", "-t", "console", k]);
        }
    }

    /// Waits until the pane satisfies `check`; fails with the last pane.
    async fn wait(&self, what: &str, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let pane = self.capture(false);
            if check(&pane) {
                return pane;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; the pane:\n{pane}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== console pane =====\n{}", self.capture(false));
        }
        let _ = self.run(&["kill-server"]);
    }
}

/// Whether the pane line naming `word` paints it with a red background: the SGR sequences
/// right before it set ANSI colour 1 as background (tmux writes `41` or `48;5;1`).
fn red_before(pane_with_escapes: &str, word: &str) -> bool {
    pane_with_escapes.lines().any(|l| {
        l.find(word).is_some_and(|i| {
            let mut rest = &l[..i];
            let mut params: Vec<String> = Vec::new();
            while rest.ends_with('m') {
                let Some(j) = rest.rfind("\u{1b}[") else {
                    break;
                };
                params.push(rest[j + 2..rest.len() - 1].to_string());
                rest = &rest[..j];
            }
            params.iter().any(|p| {
                let p: Vec<&str> = p.split(';').collect();
                p.contains(&"41") || p.windows(3).any(|w| w == ["48", "5", "1"])
            })
        })
    })
}

mod live;
mod once;
mod pane;
