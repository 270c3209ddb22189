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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_the_live_shop_under_traffic_and_turns_a_killed_service_red() {
    let bin = console_bin();
    let client = client().await.unwrap();
    ensure_operator(&client).await.unwrap();
    let urls = DatastoreUrls::discover()
        .expect("the real shop needs the cluster's datastores (tests/e2e/cluster/datastores)");
    let ns = TestNamespace::create(&client, "console").await.unwrap();
    ns.write_datastore_secrets(&urls).await.unwrap();
    let sfs: Api<Storefront> = ns.api();
    let mut sf = storefront_from(&sample("storefront.yaml").unwrap(), &ns.name).unwrap();
    sf.spec.image = real_workload_image();
    let t0 = Instant::now();
    sfs.create(&PostParams::default(), &sf).await.unwrap();
    let sf = wait_ready(&sfs, "acme", "True", READY_TIMEOUT)
        .await
        .unwrap();
    println!(
        "figure: sample shop (real image) Ready in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let status = sf.status.clone().unwrap();

    // Traffic: the load generator on the gateway, through its Service's ClusterIP where this
    // host routes to it (the local cluster: the host is the node), else a port-forward.
    let svcs: Api<Service> = ns.api();
    let svc = svcs.get("acme-gateway").await.unwrap();
    let cluster_ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .filter(|ip| ip != "None");
    let pods: Api<Pod> = ns.api();
    let mut _forward = None;
    let target =
        match cluster_ip.map(|ip| format!("{ip}:8080")) {
            Some(addr) if reachable(&addr) => format!("http://{addr}"),
            _ => {
                let gw = pods
                    .list(&ListParams::default().labels(
                        "app.kubernetes.io/instance=acme,app.kubernetes.io/component=gateway",
                    ))
                    .await
                    .unwrap()
                    .items
                    .into_iter()
                    .find(|p| p.metadata.deletion_timestamp.is_none())
                    .expect("a gateway pod");
                let (addr, task) = forward(pods.clone(), &gw.name_any(), 8080).await.unwrap();
                _forward = Some(task);
                format!("http://{addr}")
            }
        };
    // A fresh shop's gateway may refuse its first requests (429 until its rate limiter holds a
    // lease, 503 while routes settle), and loadgen gives up when signing its users up fails.
    let addr = target.trim_start_matches("http://").to_string();
    wait_for("the gateway to answer 200", Duration::from_secs(60), || {
        let addr = addr.clone();
        async move {
            let status =
                tokio::task::spawn_blocking(move || http_status(&addr, "/api/v1/products?limit=1"))
                    .await?;
            Ok((status == Some(200)).then_some(()))
        }
    })
    .await
    .unwrap();
    // The gateway's limiter also refuses the first call to each service until it holds that
    // service's lease (429 "budget spent"): start loadgen again while it gives up signing up.
    let (mut tries, first) = (0, Instant::now());
    let mut loadgen = loop {
        tries += 1;
        let mut lg = Loadgen::start(&target, LOAD_RATE, "10m");
        tokio::time::sleep(Duration::from_secs(5)).await;
        if lg.child.try_wait().unwrap().is_none() || first.elapsed() > Duration::from_secs(90) {
            break lg;
        }
        println!(
            "loadgen gave up (try {tries}): {}",
            std::fs::read_to_string(&lg.log)
                .unwrap_or_default()
                .lines()
                .last()
                .unwrap_or_default()
        );
    };
    println!("loadgen: {LOAD_RATE} requests/s on {target} (default shopper mix)");

    let kubeconfig = std::env::var("KUBECONFIG").unwrap();
    let prom_url = prometheus_url();
    let prom = prom_url
        .as_ref()
        .map(|u| format!(" --prometheus-url {u}"))
        .unwrap_or_default();
    let command = format!(
        "env KUBECONFIG={kubeconfig} {} --namespace {} --storefront acme --prometheus-interval 2{prom}; echo CONSOLE-EXITED $?; sleep 600",
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
    for i in 0..4 {
        assert!(
            pane.contains(&format!("#{i} 1/1")),
            "shard {i} of inventory:\n{pane}"
        );
    }

    // Live numbers where the traffic flows: every request passes the gateway, and browsing,
    // search and product pages (80% of the mix) are catalog's.
    if let Some(url) = &prom_url {
        let pane = tmux
            .wait(
                &format!("live requests/s into gateway and catalog from {url}"),
                Duration::from_secs(120),
                |p| {
                    p.contains("prom ● ok")
                        && ["gateway", "catalog"]
                            .iter()
                            .all(|s| edge_rps(p, s).is_some_and(|r| r > 0.0))
                },
            )
            .await;
        loadgen.assert_running();
        assert!(!pane.contains("Prometheus unreachable"), "{pane}");
        let gateway = edge_rps(&pane, "gateway").unwrap();
        println!(
            "figure: live req/s on screen {:.1}s after the console started: gateway {gateway}, catalog {} (offered {LOAD_RATE}/s)",
            started.elapsed().as_secs_f64(),
            edge_rps(&pane, "catalog").unwrap()
        );
        assert!(
            gateway <= f64::from(LOAD_RATE) * 1.5,
            "the gateway's rate is about what the load generator offers ({LOAD_RATE}/s):\n{pane}"
        );
        // The datastore edges: every service's calls to PostgreSQL (sign-ins, product reads,
        // orders), counted by the services themselves (storefront_datastore_requests_total).
        let pane = tmux
            .wait(
                "live requests/s on the services' PostgreSQL edges",
                Duration::from_secs(90),
                |p| datastore_rps(p, "pg").is_some_and(|r| r > 0.0),
            )
            .await;
        println!(
            "figure: datastore edges on screen {:.1}s after the console started: pg {:?}/s, pg-ro {:?}/s, redis {:?}/s, nats {:?}/s; payments' edge {:?}/s",
            started.elapsed().as_secs_f64(),
            datastore_rps(&pane, "pg"),
            datastore_rps(&pane, "pg-ro"),
            datastore_rps(&pane, "redis"),
            datastore_rps(&pane, "nats"),
            edge_rps(&pane, "payments"),
        );
        assert!(
            !pane.contains("~"),
            "the gateway counts its calls per upstream: no served-rate estimates:\n{pane}"
        );

        // `--once` prints the same live numbers (Prometheus's recorded rates: one poll).
        let out = Command::new(&bin)
            .args([
                "--once",
                "--namespace",
                &ns.name,
                "--storefront",
                "acme",
                "--prometheus-url",
                url,
                "--width",
                "100",
                "--height",
                "32",
            ])
            .output()
            .unwrap();
        let frame = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{frame}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            ["gateway", "catalog"]
                .iter()
                .all(|s| edge_rps(&frame, s).is_some_and(|r| r > 0.0)),
            "--once prints live requests/s:\n{frame}"
        );
        assert!(
            frame.contains("reconciles/s") && !frame.contains("– reconciles/s"),
            "--once prints the operator's rate:\n{frame}"
        );
        assert!(
            datastore_rps(&frame, "pg").is_some_and(|r| r > 0.0),
            "--once prints the live PostgreSQL edge:\n{frame}"
        );
    } else {
        println!(
            "no Prometheus (E2E_PROMETHEUS_URL unset, none on 127.0.0.1:9090): not checking live metrics"
        );
    }

    // Views behind the number keys and the palette.
    tmux.keys(&["2"]);
    let pane = tmux
        .wait("the Services view", Duration::from_secs(5), |p| {
            p.contains("SERVICE") && p.contains("REQ/S")
        })
        .await;
    let gateway_row = pane
        .lines()
        .find(|l| l.contains("│gateway "))
        .unwrap_or_default();
    assert!(
        gateway_row.contains("HPA 2"),
        "the gateway's replicas are the HPA's:\n{pane}"
    );
    if prom_url.is_some() {
        // RL USE (second to last column): the gateway limiter's allowed count over the sample's
        // 5000/min, not the `~` estimate from the served rate.
        let rl_use = gateway_row
            .split_whitespace()
            .filter(|t| *t != "│")
            .rev()
            .nth(1)
            .unwrap_or_default();
        assert!(
            rl_use.ends_with('%') && !rl_use.starts_with('~'),
            "the gateway's rate-limit use from its limiter's count:\n{pane}"
        );
    }
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

    // The operator's own numbers: creating the shop and killing its pods made it reconcile,
    // and the console shows a positive rate of it.
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

    // It recovers by itself once the pods are back, with the traffic still flowing.
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
    if prom_url.is_some() {
        let pane = tmux.capture(false);
        assert!(
            edge_rps(&pane, "gateway").is_some_and(|r| r > 0.0),
            "traffic still shows after the recovery:\n{pane}"
        );
    }
    loadgen.assert_running();

    // `q` quits cleanly.
    tmux.keys(&["q"]);
    tmux.wait("the console to exit", Duration::from_secs(5), |p| {
        p.contains("CONSOLE-EXITED 0")
    })
    .await;
}

#[test]
fn edge_rates_are_read_from_the_pane() {
    let pane = "│client ─▶ gateway 2/2 ──┬─ 1.22/s 66ms 0   ─▶ auth 2/2         → pg   │\n\
                │  20.0/s 46ms 0         ├─ 16.9/s 5ms 0    ─▶ catalog 1/1      → pg   │\n\
                │                        ├─ 0/s – –         ─▶ payments 2/2     → pg   │\n\
                │                        ├─ –/s – –         ─▶ orders 2/2       → pg   │\n\
                │                        └─ 1.2k/s 5ms 0    ─▶ recommendations 1/1     │";
    assert_eq!(edge_rps(pane, "gateway"), Some(20.0));
    assert_eq!(edge_rps(pane, "auth"), Some(1.22));
    assert_eq!(edge_rps(pane, "catalog"), Some(16.9));
    assert_eq!(edge_rps(pane, "payments"), Some(0.0));
    assert_eq!(edge_rps(pane, "orders"), None);
    assert_eq!(edge_rps(pane, "recommendations"), Some(1200.0));
    assert_eq!(edge_rps(pane, "inventory"), None);
    assert_eq!(
        edge_rps("│ ├─ ~3.50/s 5ms 0 ─▶ orders 2/2 → pg", "orders"),
        Some(3.5)
    );
}

#[test]
fn datastore_rates_are_read_from_the_pane() {
    let summary = "│operator  0.25 reconciles/s · 0 errors/s · 0 writes/s · p99 2ms      │\n\
                   │datastore pg    56.0/s · p99 ≤6ms · err 0.0% · from 6 services     │\n\
                   │datastore nats  –/s · p99 ≤– · err – · from 1 service              │";
    assert_eq!(datastore_rps(summary, "pg"), Some(56.0));
    assert_eq!(datastore_rps(summary, "nats"), None);
    assert_eq!(datastore_rps(summary, "redis"), None);
    let rows = "│ ├─ 9.0/s 5ms 0 ─▶ auth 2/2    → pg 9.00/s 2ms                     │\n\
                │ ├─ 20/s 5ms 0  ─▶ catalog 1/1 → pg 1.00/s · pg-ro 12.0/s · redis 3.0/s │\n\
                │ └─ 0/s – 0     ─▶ orders 2/2  → pg · nats                          │";
    assert_eq!(datastore_rps(rows, "pg"), Some(10.0));
    assert_eq!(datastore_rps(rows, "pg-ro"), Some(12.0));
    assert_eq!(datastore_rps(rows, "nats"), None);
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

/// Prometheus started here with TLS on a free loopback port (Debian's binary, installed by
/// the cluster's `up`), stopped when dropped.
struct TlsPrometheus {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl TlsPrometheus {
    /// A private CA, a server certificate for `localhost` signed by it, and Prometheus
    /// serving HTTPS with that certificate (and scraping itself, so queries have data).
    fn start() -> TlsPrometheus {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = std::env::temp_dir().join(format!("e2e-console-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "storefront e2e private CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(
            dir.join("web.yml"),
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global: {{scrape_interval: 1s}}\nscrape_configs:\n- job_name: self\n  scheme: https\n  tls_config: {{ca_file: {}}}\n  static_configs: [{{targets: ['localhost:{port}']}}]\n",
                dir.join("ca.pem").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--web.config.file={}",
                dir.join("web.yml").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus on the PATH (tests/e2e/cluster/up installs it)");
        let p = TlsPrometheus { child, dir, port };
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "Prometheus did not listen within 30 s:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for TlsPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTPS Prometheus behind a private CA: with `--prometheus-ca` the console reads it
/// (`prom ● ok`); without it the certificate is refused, and the console says why in its
/// banner instead of showing numbers (and does not crash). A CA file that is not one is an
/// error at start that names the flag.
#[tokio::test]
async fn once_reads_an_https_prometheus_behind_a_private_ca() {
    let bin = console_bin();
    let client = client().await.unwrap();
    let ns = TestNamespace::new(&client, "console-tls").await.unwrap();
    let prom = TlsPrometheus::start();
    let url = format!("https://localhost:{}", prom.port);
    let ca = prom.dir.join("ca.pem");
    let once = |extra: &[&str]| {
        let mut args = vec![
            "--once",
            "--namespace",
            &ns.name,
            "--width",
            "200",
            "--height",
            "24",
            "--wait",
            "8",
            "--prometheus-url",
            &url,
        ];
        args.extend_from_slice(extra);
        Command::new(&bin).args(&args).output().unwrap()
    };

    let trusted = once(&["--prometheus-ca", ca.to_str().unwrap()]);
    let frame = String::from_utf8_lossy(&trusted.stdout).to_string();
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(
        frame.contains("prom ● ok") && !frame.contains("Prometheus unreachable"),
        "with the CA the console reads the HTTPS Prometheus:\n{frame}\nprometheus log:\n{}",
        prom.log()
    );

    let untrusted = once(&[]);
    let frame = String::from_utf8_lossy(&untrusted.stdout).to_string();
    assert!(
        untrusted.status.success(),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    assert!(
        frame.contains("Prometheus unreachable")
            && frame.contains("certificate")
            && !frame.contains("prom ● ok"),
        "without the CA the certificate is refused and said so:\n{frame}"
    );

    let bad = once(&["--prometheus-ca", "/nonexistent/ca.pem"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--prometheus-ca") && stderr.contains("/nonexistent/ca.pem"),
        "{stderr}"
    );
}
