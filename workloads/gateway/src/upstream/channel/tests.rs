use std::sync::atomic::AtomicU64;

use tokio::net::TcpListener;
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_client::HealthClient},
};

use super::*;

const CONNECT: Duration = Duration::from_millis(500);

/// A health server on `listener` until `stop` fires.
fn serve_health(listener: TcpListener, stop: tokio::sync::oneshot::Receiver<()>) {
    let (reporter, service) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        reporter
            .set_service_status("shop", ServingStatus::Serving)
            .await;
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stop.await;
                },
            )
            .await
    });
}

async fn check(channel: &H2Channel, service: &str) -> Result<i32, Status> {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
}

fn never_sent(status: &Status) -> bool {
    crate::upstream::call::not_sent(status)
}

#[tokio::test]
async fn calls_answers_and_statuses_over_one_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    serve_health(listener, stopped);
    let channel = H2Channel::lazy(&address, None, CONNECT).expect("channel");
    assert_eq!(
        check(&channel, "shop").await.expect("answered"),
        ServingStatus::Serving as i32
    );
    // The service's own refusal arrives as its gRPC status, from the trailers.
    let unknown = check(&channel, "nope").await.expect_err("unknown service");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    assert!(!never_sent(&unknown));
    // Many calls at once share the connection.
    let calls = (0..200).map(|_| check(&channel, "shop"));
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let first = channel.live().expect("connected");
    check(&channel, "shop").await.expect("answered");
    assert!(
        Arc::ptr_eq(&first.closed, &channel.live().expect("connected").closed),
        "the same connection"
    );
}

#[tokio::test]
async fn a_refused_connection_is_never_sent_and_a_restarted_server_is_reached_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr");
    drop(listener);
    let channel = H2Channel::lazy(&address.to_string(), None, CONNECT).expect("channel");
    let refused = check(&channel, "shop").await.expect_err("nobody listens");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        never_sent(&refused),
        "a refused connection is retryable: {refused:?}"
    );

    // The server comes up: the next call connects.
    let listener = TcpListener::bind(address).await.expect("bind again");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    serve_health(listener, stopped);
    check(&channel, "shop")
        .await
        .expect("reached once it listens");

    // The server goes away (its connections close) and comes back on the same port.
    let _ = stop.send(());
    for _ in 0..100 {
        if channel.live().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(channel.live().is_none(), "the closed connection is noticed");
    let down = check(&channel, "shop").await.expect_err("down");
    assert!(never_sent(&down), "{down:?}");
    let listener = loop {
        match TcpListener::bind(address).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let (_stop, stopped) = tokio::sync::oneshot::channel();
    serve_health(listener, stopped);
    check(&channel, "shop").await.expect("a new connection");
}

#[tokio::test]
async fn callers_waiting_on_a_failed_attempt_share_its_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let channel = H2Channel::lazy(&address, None, CONNECT).expect("channel");
    let calls = (0..50).map(|_| check(&channel, "shop"));
    let answers = futures::future::join_all(calls).await;
    for answer in &answers {
        let status = answer.as_ref().expect_err("nobody listens");
        assert!(never_sent(status), "{status:?}");
    }
    let attempts = channel.0.attempts.load(Ordering::Acquire);
    assert!(
        attempts <= 2,
        "50 callers at once made {attempts} connection attempts"
    );
    // A later call tries again (the failure is not remembered past its waiters).
    let _ = check(&channel, "shop").await;
    assert_eq!(channel.0.attempts.load(Ordering::Acquire), attempts + 1);
}

#[tokio::test]
async fn a_dropped_call_resets_its_stream_and_the_connection_serves_on() {
    // A server that accepts the stream and never answers it.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let (reset_tx, mut reset_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut conn = h2::server::handshake(tcp).await.expect("handshake");
        while let Some(Ok((_request, mut respond))) = conn.accept().await {
            let tx = reset_tx.clone();
            tokio::spawn(async move {
                let reason = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
                let _ = tx.send(reason.ok());
            });
        }
    });
    let channel = H2Channel::lazy(&address, None, CONNECT).expect("channel");
    let late = tokio::time::timeout(Duration::from_millis(100), check(&channel, "shop")).await;
    assert!(late.is_err(), "no answer: {late:?}");
    let reason = tokio::time::timeout(Duration::from_secs(2), reset_rx.recv())
        .await
        .expect("the server saw the stream end");
    assert_eq!(reason, Some(Some(h2::Reason::CANCEL)));
    assert!(channel.live().is_some(), "the connection stays up");
}

/// A TCP relay to `target`; after `silence` is bumped, the connections open until then
/// carry nothing either way and stay open (a peer that vanished without a FIN or a
/// reset); later connections are relayed. Returns its address and the count of
/// connections it accepted.
async fn relay(target: String, silence: Arc<AtomicU64>) -> (String, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let accepted = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (silence, target) = (Arc::clone(&silence), target.clone());
            tokio::spawn(async move {
                let epoch = silence.load(Ordering::SeqCst);
                let server = TcpStream::connect(&target).await.expect("target");
                let ((mut cr, mut cw), (mut sr, mut sw)) =
                    (client.into_split(), server.into_split());
                let (mut up, mut down) = ([0u8; 16_384], [0u8; 16_384]);
                loop {
                    let quiet = || silence.load(Ordering::SeqCst) != epoch;
                    tokio::select! {
                        n = cr.read(&mut up) => match n {
                            Ok(n @ 1..) if !quiet() => sw.write_all(&up[..n]).await.expect("relay up"),
                            Ok(1..) => break,
                            _ => return,
                        },
                        n = sr.read(&mut down) => match n {
                            Ok(n @ 1..) if !quiet() => cw.write_all(&down[..n]).await.expect("relay down"),
                            Ok(1..) => break,
                            _ => return,
                        },
                    }
                }
                // Silent: both sockets stay open and nothing more passes.
                std::future::pending::<()>().await;
                drop((cr, cw, sr, sw));
            });
        }
    });
    (address, accepted)
}

/// A health server, and a relay in front of it that can be silenced.
async fn silenceable() -> (String, Arc<AtomicU64>, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = listener.local_addr().expect("addr").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    std::mem::forget(stop); // serves until the test ends
    serve_health(listener, stopped);
    let silence = Arc::new(AtomicU64::new(0));
    let (address, accepted) = relay(target, Arc::clone(&silence)).await;
    (address, silence, accepted)
}

/// Calls (each given `each`) until one is answered; how long that took.
async fn until_answered(channel: &H2Channel, each: Duration, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    while started.elapsed() < within {
        if let Ok(Ok(_)) = tokio::time::timeout(each, check(channel, "shop")).await {
            return started.elapsed();
        }
    }
    panic!("no answer within {within:?}");
}

#[tokio::test]
async fn an_abandoned_call_has_a_silent_connection_replaced_at_once() {
    let (address, silence, accepted) = silenceable().await;
    // No periodic PING in this test: only the abandoned call can ask for one.
    let keepalive = Keepalive {
        every: Duration::from_secs(3_600),
        within: Duration::from_millis(200),
    };
    let channel = H2Channel::lazy_with(&address, None, CONNECT, keepalive).expect("channel");
    check(&channel, "shop").await.expect("answered");
    silence.fetch_add(1, Ordering::SeqCst);
    let lost = tokio::time::timeout(Duration::from_millis(300), check(&channel, "shop")).await;
    assert!(
        lost.is_err(),
        "the silent connection answers nothing: {lost:?}"
    );
    // The PING it asked for goes unanswered for 200 ms; then a new connection serves.
    let took = until_answered(&channel, Duration::from_millis(300), Duration::from_secs(3)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one new connection");
    assert!(took < Duration::from_secs(1), "replaced after {took:?}");
}

#[tokio::test]
async fn a_silent_idle_connection_is_found_by_the_periodic_ping() {
    let (address, silence, accepted) = silenceable().await;
    let keepalive = Keepalive {
        every: Duration::from_millis(100),
        within: Duration::from_millis(100),
    };
    let channel = H2Channel::lazy_with(&address, None, CONNECT, keepalive).expect("channel");
    check(&channel, "shop").await.expect("answered");
    // Healthy and idle: pings come and go, the connection stays.
    tokio::time::sleep(Duration::from_millis(500)).await;
    check(&channel, "shop").await.expect("still answered");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "pings keep a live connection"
    );
    // Silent with no call in flight: the next ping finds it, and the first call after
    // that is answered on a new connection.
    silence.fetch_add(1, Ordering::SeqCst);
    for _ in 0..100 {
        if channel.live().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(channel.live().is_none(), "the silent connection is closed");
    tokio::time::timeout(Duration::from_millis(500), check(&channel, "shop"))
        .await
        .expect("answered in time")
        .expect("answered on a new connection");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[test]
fn addresses_are_checked_up_front() {
    for good in [
        "orders.shop.svc:50051",
        "http://10.0.0.7:50051",
        "[::1]:50051",
    ] {
        let c = H2Channel::lazy(good, None, CONNECT).expect(good);
        assert_eq!(c.0.scheme, Scheme::HTTP, "{good}");
    }
    assert_eq!(
        H2Channel::lazy("[::1]:50051", None, CONNECT)
            .expect("v6")
            .0
            .address,
        "[::1]:50051"
    );
    for (bad, says) in [
        ("orders.shop.svc", "no port"),
        ("bad address ::", "failed to use upstream address"),
        ("https://orders:50051", "needs TLS"),
        ("ftp://orders:21", "unknown scheme"),
    ] {
        let err = H2Channel::lazy(bad, None, CONNECT).expect_err(bad);
        assert!(err.contains(says), "{bad}: {err}");
    }
}
