//! The ops console in a real terminal: tmux runs `storefront-console` against the cluster with
//! the sample shop; the test sends keys, captures the pane, and checks what a person would —
//! every service with its replicas, the views behind the number keys and the palette, and a
//! service turning red within seconds of its pods being killed (then recovering).
//!
//! With Prometheus (`E2E_PROMETHEUS_URL`, else `http://127.0.0.1:9090` when it answers there:
//! the local cluster's `up` starts it) it also checks the Prometheus-backed numbers: the header
//! says `prom ● ok`, no "Prometheus unreachable" banner, and the operator's reconcile rate (the
//! only traffic there is until the workloads serve requests) is a live, positive number while
//! the shop's creation and the pod kills keep it reconciling. Without Prometheus that part is skipped, and says so.
//!
//! Needs `tmux` on the PATH. The console binary is `E2E_CONSOLE_BIN` (CI: build it first), or
//! built here with cargo into a target directory of its own.

#![allow(clippy::unwrap_used)]

use std::{
    io::{Read, Write},
    net::{TcpStream, ToSocketAddrs},
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use storefront_crds::Storefront;
use storefront_e2e::{
    TestNamespace, client, ensure_operator, repo, sample, storefront_from, wait_for, wait_ready,
};

const READY_TIMEOUT: Duration = Duration::from_secs(240);

/// The console binary: `E2E_CONSOLE_BIN`, or built here by cargo into a target directory of
/// its own (`<target>/e2e-console`: the `cargo test` running this holds the lock of the main
/// one, so building there would wait forever).
fn console_bin() -> PathBuf {
    if let Ok(p) = std::env::var("E2E_CONSOLE_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"))
        .join("e2e-console");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "storefront-console",
            "--bin",
            "storefront-console",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(repo())
        .status()
        .expect("failed to run cargo build for the console");
    assert!(status.success(), "failed to build storefront-console");
    target.join("debug/storefront-console")
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

#[tokio::test]
async fn console_shows_the_shop_switches_views_and_turns_a_killed_service_red() {
    let bin = console_bin();
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "console").await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    let sf = storefront_from(&sample("storefront.yaml").unwrap(), &ns.name).unwrap();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    let sf = wait_ready(&sfs, "acme", "True", READY_TIMEOUT)
        .await
        .unwrap();
    let status = sf.status.clone().unwrap();

    let kubeconfig = std::env::var("KUBECONFIG").unwrap();
    let prom_url = prometheus_url();
    let prom = prom_url
        .as_ref()
        .map(|u| format!(" --prometheus-url {u}"))
        .unwrap_or_default();
    let command = format!(
        "env KUBECONFIG={kubeconfig} {} --namespace {} --storefront acme{prom}; echo CONSOLE-EXITED $?; sleep 600",
        bin.display(),
        ns.name
    );
    let started = Instant::now();
    let tmux = Tmux::start(&format!("e2e-{}", ns.name), 100, 32, &command);

    // Every service with its replicas, as the status reports them.
    let expected: Vec<String> = status
        .services
        .iter()
        .map(|(name, s)| format!("{name} {}/{}", s.ready, s.desired))
        .collect();
    let pane = tmux
        .wait(
            "every service with its replicas",
            Duration::from_secs(30),
            |p| expected.iter().all(|e| p.contains(e.as_str())),
        )
        .await;
    println!(
        "figure: console start-up to the first full topology: {:.2}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        pane.contains(&format!("Topology {}/acme", ns.name)),
        "{pane}"
    );
    tmux.wait("every watch synced", Duration::from_secs(10), |p| {
        p.contains("api ● ok")
    })
    .await;
    if let Some(url) = &prom_url {
        let pane = tmux
            .wait(
                &format!("Prometheus answering ({url})"),
                Duration::from_secs(30),
                |p| p.contains("prom ● ok"),
            )
            .await;
        assert!(!pane.contains("Prometheus unreachable"), "{pane}");
    } else {
        println!(
            "no Prometheus (E2E_PROMETHEUS_URL unset, none on 127.0.0.1:9090): not checking live metrics"
        );
    }
    for i in 0..4 {
        assert!(
            pane.contains(&format!("#{i} 1/1")),
            "shard {i} of inventory:\n{pane}"
        );
    }

    // Views behind the number keys and the palette.
    tmux.keys(&["2"]);
    tmux.wait("the Services view", Duration::from_secs(5), |p| {
        p.contains("SERVICE") && p.contains("REQ/S")
    })
    .await;
    tmux.keys(&["3"]);
    tmux.wait("the Shards view", Duration::from_secs(5), |p| {
        p.contains("Shards (4)") && p.contains("acme-inventory-3")
    })
    .await;
    tmux.keys(&[":", "ev", "Tab", "Enter"]);
    tmux.wait(
        "the Events view through the palette",
        Duration::from_secs(5),
        |p| p.contains("Events ("),
    )
    .await;
    tmux.keys(&["?"]);
    tmux.wait("help", Duration::from_secs(5), |p| p.contains("Help"))
        .await;
    tmux.keys(&["Escape", "1"]);
    tmux.wait("the Topology view again", Duration::from_secs(5), |p| {
        p.contains("Topology ")
    })
    .await;

    // Kill payments' pods (again and again, as chaos would) until the console paints it red.
    let pods: Api<Pod> = ns.api();
    let lp = ListParams::default()
        .labels("app.kubernetes.io/instance=acme,app.kubernetes.io/component=payments");
    let killed = Instant::now();
    let mut red = false;
    while killed.elapsed() < Duration::from_secs(20) && !red {
        for p in pods.list(&lp).await.unwrap() {
            let _ = pods
                .delete(&p.name_any(), &DeleteParams::default().grace_period(0))
                .await;
        }
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if red_before(&tmux.capture(true), "payments 0/") {
                red = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        red,
        "payments did not turn red within 20s of its pods being killed:\n{}",
        tmux.capture(false)
    );
    println!(
        "figure: pods killed to red on screen: {:.2}s",
        killed.elapsed().as_secs_f64()
    );
    let pane = tmux.capture(false);
    assert!(
        pane.contains("failing"),
        "the failure is listed under the graph:\n{pane}"
    );

    // Live numbers from Prometheus: creating the shop and killing its pods made the operator
    // reconcile, and the console shows a positive rate of it over its 2-minute window (from
    // successive readings of the scraped counter).
    if prom_url.is_some() {
        let started = Instant::now();
        let pane = tmux
            .wait(
                "a positive operator reconcile rate from Prometheus",
                Duration::from_secs(60),
                |p| reconcile_rate(p).is_some_and(|r| r > 0.0),
            )
            .await;
        assert!(!pane.contains("Prometheus unreachable"), "{pane}");
        println!(
            "figure: operator reconcile rate on screen {:.2}/s ({:.1}s after red)",
            reconcile_rate(&pane).unwrap_or_default(),
            started.elapsed().as_secs_f64()
        );
    }

    // It recovers by itself once the pods are back.
    let desired = status.services["payments"].desired;
    tmux.wait("payments ready again", Duration::from_secs(120), |p| {
        p.contains(&format!("payments {desired}/{desired}"))
    })
    .await;
    let sf = wait_for(
        "the operator to see payments ready",
        Duration::from_secs(120),
        || async {
            let sf = sfs.get("acme").await?;
            let ok = sf.status.as_ref().is_some_and(|s| {
                s.services
                    .get("payments")
                    .is_some_and(|p| p.ready == p.desired)
            });
            Ok(ok.then_some(sf))
        },
    )
    .await
    .unwrap();
    assert!(
        !red_before(&tmux.capture(true), "payments"),
        "payments is red after recovering"
    );
    drop(sf);

    // `q` quits cleanly.
    tmux.keys(&["q"]);
    tmux.wait("the console to exit", Duration::from_secs(5), |p| {
        p.contains("CONSOLE-EXITED 0")
    })
    .await;
}

#[tokio::test]
async fn once_prints_a_frame_and_diagram_writes_mermaid() {
    let bin = console_bin();
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let ns = TestNamespace::new(&client, "console-once").await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    let sf = storefront_from(&sample("minimal.yaml").unwrap(), &ns.name).unwrap();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    wait_ready(&sfs, "minimal", "True", READY_TIMEOUT)
        .await
        .unwrap();

    let out = Command::new(&bin)
        .args([
            "--once",
            "--namespace",
            &ns.name,
            "--width",
            "80",
            "--height",
            "24",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = String::from_utf8(out.stdout).unwrap();
    assert_eq!(frame.lines().count(), 24, "{frame}");
    assert!(frame.lines().all(|l| l.chars().count() <= 80), "{frame}");
    assert!(
        frame.contains("gateway 1/1") && frame.contains("catalog 1/1"),
        "{frame}"
    );

    let out = Command::new(&bin)
        .args([
            "diagram",
            "--namespace",
            &ns.name,
            "--storefront",
            "minimal",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mermaid = String::from_utf8(out.stdout).unwrap();
    assert!(mermaid.contains("graph TD"), "{mermaid}");
    assert!(
        mermaid.contains("client -->|") && mermaid.contains("| gateway"),
        "{mermaid}"
    );
    assert!(mermaid.contains("class gateway core"), "{mermaid}");
    assert!(mermaid.contains("class catalog supporting"), "{mermaid}");
}
