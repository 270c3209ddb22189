//! The sign-in flood the auth tests share (included with `#[path]` by `services`,
//! `datastores` and `auth_memory`, so one harness serves every store and allocator): serves
//! an [`Accounts`] over real gRPC on loopback, fires sign-ins at it all at once over several
//! HTTP/2 connections, and checks that each was answered with OK, UNAUTHENTICATED or
//! RESOURCE_EXHAUSTED carrying a retry hint (anything else, or a call that never ends, fails
//! the test); then that the gate is idle again and counted every refusal, and that the server
//! drains cleanly. Returns what it saw, with the growth of the process's peak resident set
//! (`VmHWM`) over the flood.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use storefront_contracts::overload;
use storefront_workloads::{
    auth::{
        grpc::{SERVICE, serve},
        service::{Accounts, UserStore},
    },
    grpc::ServiceTokenAttacher,
    proto::auth::{SignInRequest, auth_client::AuthClient},
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, transport::Channel};

/// How long the whole flood may take before the test fails (every call answered by then).
pub const FLOOD_DEADLINE: Duration = Duration::from_secs(120);

/// What one flood saw.
#[derive(Debug)]
pub struct Flood {
    pub sign_ins: usize,
    pub slots: usize,
    pub ok: usize,
    pub unauthenticated: usize,
    pub exhausted: usize,
    pub peak_hashes: i64,
    /// Growth of `VmHWM` over the flood, in bytes (`None` off Linux).
    pub hwm_growth: Option<u64>,
    pub elapsed: Duration,
}

impl Flood {
    /// The `figure:` line of this flood, `what` naming the setup.
    pub fn figure(&self, what: &str) -> String {
        let hwm = self.hwm_growth.map_or_else(
            || "n/a".to_string(),
            |b| format!("{:.1}", b as f64 / (1024.0 * 1024.0)),
        );
        format!(
            "figure: auth sign-in flood, {what}: {} concurrent sign-ins, {} slots: ok={} \
             unauthenticated={} resource_exhausted={} peak_hashes={} VmHWM_growth_MiB={hwm} \
             elapsed_ms={}",
            self.sign_ins,
            self.slots,
            self.ok,
            self.unauthenticated,
            self.exhausted,
            self.peak_hashes,
            self.elapsed.as_millis()
        )
    }
}

/// The process's peak resident set (`VmHWM` of `/proc/self/status`) in bytes, on Linux.
pub fn vm_hwm() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// Serves `accounts` and fires `sign_ins` sign-ins at once over `connections` connections,
/// the `i`-th with `credentials(i)` (email, password).
pub async fn flood<S: UserStore>(
    accounts: Arc<Accounts<S>>,
    sign_ins: usize,
    connections: usize,
    credentials: impl Fn(usize) -> (&'static str, &'static str),
) -> Flood {
    let tokens = Arc::new(accounts.issuer().clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Arc::clone(&accounts), async {
        let _ = stopped.await;
    }));
    let mut clients = vec![];
    for _ in 0..connections.max(1) {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connects");
        clients.push(AuthClient::with_interceptor(
            channel,
            ServiceTokenAttacher::new(Arc::clone(&tokens), "gateway", SERVICE),
        ));
    }

    let hwm_before = vm_hwm();
    let started = Instant::now();
    let calls: Vec<_> = (0..sign_ins)
        .map(|i| {
            let mut client = clients[i % clients.len()].clone();
            let (email, password) = credentials(i);
            let request = SignInRequest {
                email: email.into(),
                password: password.into(),
            };
            tokio::spawn(async move { client.sign_in(request).await })
        })
        .collect();
    let answers = tokio::time::timeout(FLOOD_DEADLINE, futures::future::join_all(calls))
        .await
        .expect("every sign-in was answered in time");
    let elapsed = started.elapsed();
    let hwm_growth = vm_hwm()
        .zip(hwm_before)
        .map(|(after, before)| after.saturating_sub(before));
    let (mut ok, mut unauthenticated, mut exhausted) = (0, 0, 0);
    for answer in answers {
        match answer.expect("the call's task did not panic") {
            Ok(_) => ok += 1,
            Err(s) if s.code() == Code::Unauthenticated => unauthenticated += 1,
            Err(s) if s.code() == Code::ResourceExhausted => {
                assert!(overload::retry_after(&s).is_some(), "no retry hint: {s:?}");
                exhausted += 1;
            }
            Err(s) => panic!("a sign-in was answered {:?}: {}", s.code(), s.message()),
        }
    }
    let gate = accounts.gate();
    assert_eq!(gate.refused(), exhausted as u64, "every refusal counted");
    assert_eq!(
        (gate.in_flight(), gate.waiting()),
        (0, 0),
        "the gate is idle"
    );
    stop.send(()).expect("server running");
    server.await.expect("joins").expect("drains cleanly");
    Flood {
        sign_ins,
        slots: gate.limits().concurrency,
        ok,
        unauthenticated,
        exhausted,
        peak_hashes: gate.peak(),
        hwm_growth,
        elapsed,
    }
}
