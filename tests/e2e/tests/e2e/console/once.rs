//! `--once` and `diagram` on the minimal shop, and `--once` reading an HTTPS Prometheus.

use super::*;

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
