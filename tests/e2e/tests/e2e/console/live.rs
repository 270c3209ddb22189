//! The live console in tmux: the shop under load, its views, a killed service turning red.

use super::*;

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
        // The rate-limit panel under the table: the gateway's per-client decisions by budget
        // and the clients its pods track, from Prometheus (the exported names and labels the
        // console queries; both budgets' counters exist once the route table has the rules).
        tmux.wait(
            "the per-client limits at work in the rate-limit panel",
            Duration::from_secs(30),
            |p| {
                p.lines().any(|l| {
                    l.contains("limited/s") && l.contains("user ") && l.contains("address ")
                }) && p
                    .lines()
                    .any(|l| l.contains("clients") && l.contains("tracked on"))
            },
        )
        .await;
    }
    // The per-client limits in force, from the live Storefront (the defaults unless the
    // sample names some). Waited for on the screen as it is now: the pane captured when the
    // Services table first showed can be a frame drawn over the previous view (a CI run
    // failed on one that still showed the topology below the table).
    tmux.wait(
        "the per-client limits in force in the rate-limit panel",
        Duration::from_secs(10),
        |p| {
            p.lines()
                .any(|l| l.contains("per client  user ") && l.contains("/min burst"))
        },
    )
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
