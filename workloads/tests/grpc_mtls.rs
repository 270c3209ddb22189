//! The mutual-TLS switch on a real socket: with TLS installed (what `GRPC_TLS_DIR` does),
//! a server answers only clients that present a certificate from the shop's CA, over TLS;
//! a plain-text client and a client without a certificate are refused, and a client that
//! does not trust the server's CA refuses the server. (Its own test binary: TLS is
//! process-wide, as in a service.)

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use storefront_workloads::{
    auth::{
        domain::{HashCost, Passwords, SigningKeys, TokenIssuer},
        grpc::serve,
        service::{Accounts, MemoryUserStore},
    },
    gateway::upstream::{
        channel::H2Channel,
        discovery::PodSource,
        pool::{Pool, Upstream},
    },
    grpc::{TlsFiles, client_rustls, client_tls, install_tls},
};
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki(name: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca_cert = ca.self_signed(&ca_key).expect("self-signed");
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |dns: &str| {
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec![dns.to_string()]).expect("params");
        let cert = params.signed_by(&key, &issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca_cert.pem(),
        server: leaf("localhost"),
        client: leaf("gateway"),
    }
}

/// A health check through the gateway's own channel to `localhost:port`.
async fn gateway_health(
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(), tonic::Status> {
    let channel = H2Channel::lazy(
        &format!("localhost:{port}"),
        tls,
        std::time::Duration::from_secs(2),
    )
    .expect("channel");
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
}

async fn health(channel: Channel) -> Result<(), tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn with_tls_installed_only_certified_clients_get_in() {
    let shop = pki("shop-ca");
    // The process's own identity: the server side uses it, and so do its clients.
    install_tls(TlsFiles {
        ca: shop.ca_pem.clone(),
        cert: shop.server.0.clone(),
        key: shop.server.1.clone(),
    });
    let accounts = Arc::new(
        Accounts::new(
            Arc::new(MemoryUserStore::default()),
            Passwords::new(HashCost {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            })
            .expect("params"),
            TokenIssuer::new(
                SigningKeys::from_seed([3; 32]).expect("key"),
                "shop",
                60,
                60,
            ),
        )
        .expect("accounts"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(serve(listener, accounts, std::future::pending()));
    let https = format!("https://localhost:{port}");

    // A client with the process's TLS (what the gateway's channels use): in.
    let tls = client_tls("localhost").expect("installed");
    let ok = Channel::from_shared(https.clone())
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("a certified client connects");
    health(ok).await.expect("and is answered");
    // The gateway's own HTTP/2 channel with the process's TLS: in, over TLS.
    let tls = client_rustls().transpose().expect("usable certificates");
    gateway_health(port, tls)
        .await
        .expect("the gateway's channel is answered over mutual TLS");
    // A pool over the service's pods connects to a pod's IP and still checks the service's
    // name ("localhost", in the server's certificate), not the IP (which it does not carry).
    let pod: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("pod");
    let pool = Pool::new(
        "pods.invalid:1",
        &format!("localhost:{port}"),
        client_rustls().transpose().expect("usable certificates"),
        std::time::Duration::from_secs(2),
        PodSource {
            resolve: Arc::new(move |_| Box::pin(async move { Ok(vec![pod]) })),
            refresh: std::time::Duration::from_secs(60),
        },
    )
    .expect("pool");
    HealthClient::new(Upstream::Pool(pool.clone()))
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a pod is answered over mutual TLS under the service's name");
    assert_eq!(pool.pods(), [pod], "through the pod, not the fallback");
    // The same channel without TLS is refused by the server.
    gateway_health(port, None)
        .await
        .expect_err("plain text is refused");

    // Another certificate from the shop's CA: in.
    let peer = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&shop.ca_pem))
        .identity(Identity::from_pem(&shop.client.0, &shop.client.1))
        .domain_name("localhost");
    let ok = Channel::from_shared(https.clone())
        .expect("uri")
        .tls_config(peer)
        .expect("tls")
        .connect()
        .await
        .expect("connects");
    health(ok)
        .await
        .expect("a peer with the shop's CA is answered");

    // No client certificate: refused.
    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&shop.ca_pem))
        .domain_name("localhost");
    let refused = match Channel::from_shared(https.clone())
        .expect("uri")
        .tls_config(anonymous)
        .expect("tls")
        .connect()
        .await
    {
        Ok(channel) => health(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a client without a certificate is refused");

    // A certificate from another CA: refused.
    let stranger = pki("other-ca");
    let foreign = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&shop.ca_pem))
        .identity(Identity::from_pem(&stranger.client.0, &stranger.client.1))
        .domain_name("localhost");
    let refused = match Channel::from_shared(https.clone())
        .expect("uri")
        .tls_config(foreign)
        .expect("tls")
        .connect()
        .await
    {
        Ok(channel) => health(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a certificate from another CA is refused");

    // Plain text: refused.
    let plain = match Channel::from_shared(format!("http://localhost:{port}"))
        .expect("uri")
        .connect()
        .await
    {
        Ok(channel) => health(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(plain, "plain-text gRPC is refused");

    // A client that trusts another CA does not accept the server.
    let distrustful = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&stranger.ca_pem))
        .identity(Identity::from_pem(&stranger.client.0, &stranger.client.1))
        .domain_name("localhost");
    assert!(
        Channel::from_shared(https)
            .expect("uri")
            .tls_config(distrustful)
            .expect("tls")
            .connect()
            .await
            .is_err(),
        "the server's certificate is checked"
    );
}
