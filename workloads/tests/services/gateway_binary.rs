//! The `gateway` subcommand as shipped: the binary with the flags the operator renders (a
//! JWT key directory, a route table, a rings directory) serves the public API on its HTTP
//! port and the operations endpoints on its ops port (not on the public one: 404 there), is
//! ready once its table loads, answers 503 JSON while its upstreams are down, counts requests
//! on `/metrics`, and exits cleanly on SIGTERM.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use storefront_workloads::auth::domain::SigningKeys;

struct Gateway {
    child: Child,
    dir: PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `(status line, body)` of a GET, or `None` while nothing listens.
fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_gateway_subcommand_serves_reloads_and_drains() {
    let dir = std::env::temp_dir().join(format!("sf-gw-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("jwt")).expect("dirs");
    std::fs::create_dir_all(dir.join("rings/shop-inventory-ring")).expect("dirs");
    let pem = SigningKeys::seed_to_pkcs8_pem([4; 32]).expect("pem");
    std::fs::write(dir.join("jwt/private.pem"), pem).expect("write");
    let dead = free_port();
    let routes = format!(
        r#"{{"storefront": "shop", "routes": [
            {{"service": "catalog", "upstream": "127.0.0.1:{dead}"}},
            {{"service": "inventory", "ring": "shop-inventory-ring"}}]}}"#
    );
    let ring = format!(
        r#"{{"service": "inventory", "epoch": 1, "algorithm": "jump",
            "shards": [{{"index": 0, "name": "s0", "address": "127.0.0.1:{dead}"}}]}}"#
    );
    let port = free_port();
    let ops = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_storefront-workloads"))
        .args(["--log-format", "text", "gateway", "--storefront", "shop"])
        .arg("--http-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--ops-addr")
        .arg(format!("127.0.0.1:{ops}"))
        .arg("--jwt-keys-dir")
        .arg(dir.join("jwt"))
        .arg("--routes-file")
        .arg(dir.join("routes.json"))
        .arg("--rings-dir")
        .arg(dir.join("rings"))
        .args(["--drain-seconds", "2", "--reload-ms", "100"])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut gw = Gateway {
        child,
        dir: dir.clone(),
    };

    // No route table yet: alive, not ready.
    wait_for("/healthz", || get(ops, "/healthz").is_some());
    let (status, _) = get(ops, "/readyz").expect("answers");
    assert!(status.contains(" 503"), "{status}");

    std::fs::write(dir.join("rings/shop-inventory-ring/ring.json"), ring).expect("write");
    std::fs::write(dir.join("routes.json"), routes).expect("write");
    wait_for("ready", || {
        get(ops, "/readyz").is_some_and(|(s, _)| s.contains(" 200"))
    });

    let (status, body) = get(port, "/api/v1/products?q=kettle").expect("answers");
    assert!(status.contains(" 503"), "{status}");
    assert!(body.contains(r#""code":"service_unavailable""#), "{body}");
    let (status, body) = get(port, "/api/v1/inventory/SKU-1").expect("answers");
    assert!(
        status.contains(" 503") && body.contains("inventory"),
        "{body}"
    );
    let (status, body) = get(port, "/api/v1/openapi.json").expect("answers");
    assert!(status.contains(" 200") && body.contains(r#""openapi":"3.1.0""#));
    for path in ["/metrics", "/routes", "/healthz", "/readyz"] {
        let (status, body) = get(port, path).expect("answers");
        assert!(
            status.contains(" 404") && body.contains(r#""code":"not_found""#),
            "{path} on the public port: {status} {body}"
        );
    }
    let (status, body) = get(ops, "/routes").expect("answers");
    assert!(
        status.contains(" 200")
            && body.contains(r#""source":"file""#)
            && body.contains(r#""routes":2"#),
        "{status} {body}"
    );
    let (_, metrics) = get(ops, "/metrics").expect("answers");
    assert!(
        metrics.contains(
            r#"storefront_requests_total{service="gateway",route="/api/v1/products",code="503"} 1"#
        ),
        "{metrics}"
    );

    let pid = gw.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = gw.child.try_wait().expect("waits") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}
