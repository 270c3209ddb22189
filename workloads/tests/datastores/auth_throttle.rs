//! Auth's sign-in and sign-up throttles over real PostgreSQL and real gRPC, two auth
//! "replicas" (two servers, two pools) sharing one schema as a shop's replicas do:
//!
//! - 1,000 wrong passwords for one account from 250 addresses (the gateway's
//!   `x-client-address` metadata), alternating between the replicas over ~3 s: the number
//!   that reached the hash is at most what the account policy admits in the elapsed time
//!   ([`Policy::most_admitted`], not a number written here), every other one is a throttle
//!   (`RESOURCE_EXHAUSTED` marked as such, with a retry hint); another account signs in
//!   meanwhile; the right password is refused during a block and accepted after it, and
//!   that success clears the count.
//! - Per address: failed sign-ins at many accounts from one address are stopped by the
//!   address's throttle, and its own success forgives only itself; sign-ups from one address
//!   stop after its allowance, the owner signing up again is forgiven; quiet counters are
//!   swept.
//!
//! Small policies (50 ms base, 1 s cap) keep it to a few seconds; the address checks use
//! longer blocks (5 s), so that a slow machine still checks within them. Prints a `figure:`
//! line.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use sqlx::AssertSqlSafe;
use storefront_contracts::{client_address, overload};
use storefront_workloads::{
    auth::{
        domain::{
            HashCost, Passwords, SigningKeys, TokenIssuer,
            throttle::{Policy, Scope},
        },
        grpc::{SERVICE, serve},
        hash_gate::{HashGate, HashLimits, HashMetrics},
        postgres::PgUserStore,
        service::Accounts,
        throttle::{Policies, Throttle, ThrottleMetrics},
    },
    grpc::ServiceTokenAttacher,
    proto::auth::{SignInRequest, SignUpRequest, auth_client::AuthClient},
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{Code, Status, service::interceptor::InterceptedService, transport::Channel};

const BASE: Duration = Duration::from_millis(50);
const CAP: Duration = Duration::from_secs(1);
const SIGN_INS: usize = 1000;
const ADDRESSES: usize = 250;

type Client = AuthClient<InterceptedService<Channel, ServiceTokenAttacher>>;

/// One auth replica: its server's stop switch, its accounts and a client as the gateway.
struct Replica {
    accounts: Arc<Accounts<PgUserStore>>,
    client: Client,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

fn policies(base: Duration, free: [u32; 3]) -> Policies {
    let [account_free, address_free, sign_up_free] = free;
    // A quiet window far past the test: no count starts afresh while it runs.
    let policy = |free| Policy::new(free, base, CAP.max(base), Duration::from_secs(600));
    Policies {
        account: policy(account_free),
        address: policy(address_free),
        sign_up: policy(sign_up_free),
    }
}

async fn store(url: &str, schema: &str) -> PgUserStore {
    PgUserStore::connect(url, schema, 8)
        .await
        .expect("connects")
}

/// A fresh schema, migrated.
async fn fresh_schema(url: &str, schema: &str) {
    let store = store(url, schema).await;
    sqlx::query(AssertSqlSafe(format!(
        r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
    )))
    .execute(store.pool())
    .await
    .expect("clean schema");
    store.migrate().await.expect("migrates");
}

/// A replica over `schema` with `policies`, served on loopback.
async fn replica(url: &str, schema: &str, policies: Policies) -> Replica {
    let store = Arc::new(store(url, schema).await);
    let passwords = Passwords::new(HashCost {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    })
    .expect("params");
    let issuer = TokenIssuer::new(
        SigningKeys::from_seed([31; 32]).expect("key"),
        "shop",
        3600,
        60,
    );
    let throttle = Throttle::new(store.clone(), policies, ThrottleMetrics::default());
    let accounts = Arc::new(
        Accounts::new(store, passwords, issuer.clone())
            .expect("accounts")
            .with_gate(HashGate::new(
                HashLimits {
                    concurrency: 4,
                    queue: 4096,
                    wait: Duration::from_secs(5),
                },
                HashMetrics::default(),
            ))
            .with_throttle(Arc::new(throttle)),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Arc::clone(&accounts), async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    let client = AuthClient::with_interceptor(
        channel,
        ServiceTokenAttacher::new(Arc::new(issuer), "gateway", SERVICE),
    );
    Replica {
        accounts,
        client,
        stop,
        server,
    }
}

impl Replica {
    async fn shut_down(self) {
        self.stop.send(()).expect("server running");
        self.server.await.expect("joins").expect("drains cleanly");
    }
}

fn address(i: usize) -> IpAddr {
    IpAddr::from([10, 1, (i / 200) as u8, (i % 200) as u8 + 1])
}

async fn sign_in(
    client: &mut Client,
    email: &str,
    password: &str,
    from: IpAddr,
) -> Result<(), Status> {
    let mut request = tonic::Request::new(SignInRequest {
        email: email.into(),
        password: password.into(),
    });
    client_address::attach(request.metadata_mut(), from);
    client.sign_in(request).await.map(drop)
}

async fn sign_up(
    client: &mut Client,
    email: &str,
    password: &str,
    from: IpAddr,
) -> Result<(), Status> {
    let mut request = tonic::Request::new(SignUpRequest {
        email: email.into(),
        password: password.into(),
        name: String::new(),
    });
    client_address::attach(request.metadata_mut(), from);
    client.sign_up(request).await.map(drop)
}

/// What an answer was: `Ok` through, the hash's wrong-credentials, or a throttle with its
/// retry hint (seconds); anything else fails the test.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Ok,
    Wrong,
    Throttled(u64),
}

fn seen(answer: Result<(), Status>) -> Seen {
    match answer {
        Ok(()) => Seen::Ok,
        Err(s) if s.code() == Code::Unauthenticated => Seen::Wrong,
        Err(s) if overload::is_throttled(&s) => {
            Seen::Throttled(overload::retry_after(&s).expect("a throttle carries a retry hint"))
        }
        Err(s) => panic!("answered {:?}: {}", s.code(), s.message()),
    }
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run workloads/scripts/test-datastores up and eval its env")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_wrong_passwords_for_one_account_from_many_addresses_are_slowed_to_the_policy() {
    let url = database_url();
    let schema = format!("it_auth_throttle_{}", std::process::id());
    fresh_schema(&url, &schema).await;
    let policies = policies(BASE, [5, 20, 100]);
    let replicas = [
        replica(&url, &schema, policies).await,
        replica(&url, &schema, policies).await,
    ];
    for email in ["ann@example.com", "bob@example.com"] {
        replicas[0]
            .accounts
            .sign_up(email, "correct horse", None)
            .await
            .expect("signed up");
    }

    // 1,000 wrong passwords, one every 3 ms, alternating replicas, 4 from each address.
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(3));
    let mut calls = Vec::with_capacity(SIGN_INS);
    let mut bob = None;
    for i in 0..SIGN_INS {
        tick.tick().await;
        let mut client = replicas[i % 2].client.clone();
        calls.push(tokio::spawn(async move {
            sign_in(
                &mut client,
                "ann@example.com",
                "wrong horse",
                address(i % ADDRESSES),
            )
            .await
        }));
        if i == SIGN_INS / 2 {
            let mut client = replicas[1].client.clone();
            bob = Some(tokio::spawn(async move {
                sign_in(
                    &mut client,
                    "bob@example.com",
                    "correct horse",
                    address(ADDRESSES + 1),
                )
                .await
            }));
        }
    }
    let (mut reached_hash, mut throttled) = (0u64, 0u64);
    for call in calls {
        match seen(call.await.expect("joins")) {
            Seen::Wrong => reached_hash += 1,
            Seen::Throttled(hint) => {
                assert_eq!(hint, 1, "a block is at most the 1 s cap");
                throttled += 1;
            }
            Seen::Ok => panic!("a wrong password signed in"),
        }
    }
    let elapsed = started.elapsed();
    let bound = policies.account.most_admitted(elapsed);
    println!(
        "figure: auth throttle, {SIGN_INS} wrong passwords for one account from {ADDRESSES} \
         addresses over 2 replicas (gRPC + PostgreSQL; {} free, {} ms base, {} ms cap): \
         reached_hash={reached_hash} throttled={throttled} policy_bound={bound} elapsed_ms={}",
        policies.account.free,
        BASE.as_millis(),
        CAP.as_millis(),
        elapsed.as_millis()
    );
    assert_eq!(reached_hash + throttled, SIGN_INS as u64);
    assert!(
        reached_hash <= bound,
        "{reached_hash} reached the hash in {elapsed:?}; the policy admits at most {bound}"
    );
    assert!(
        reached_hash > u64::from(policies.account.free),
        "the free attempts and then one per block went through: {reached_hash}"
    );
    assert_eq!(
        seen(bob.expect("spawned").await.expect("joins")),
        Seen::Ok,
        "another account signs in during the flood"
    );
    let metrics = |r: &Replica, scope| {
        r.accounts
            .throttle()
            .expect("throttled accounts")
            .metrics()
            .throttled(scope)
    };
    assert_eq!(
        metrics(&replicas[0], Scope::SignInAccount) + metrics(&replicas[1], Scope::SignInAccount),
        throttled,
        "every refusal counted, by the account"
    );
    assert_eq!(
        metrics(&replicas[0], Scope::SignInAddress) + metrics(&replicas[1], Scope::SignInAddress),
        0,
        "4 attempts per address are within its allowance"
    );

    // The right password during a block: a wrong one is admitted (past the free ones, it
    // blocks for the cap), then the right one at once is refused. (Each poll from a new
    // address: refused polls count against their address too.)
    let mut client = replicas[0].client.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in 0.. {
        let poll = address(ADDRESSES + 10 + n);
        if seen(sign_in(&mut client, "ann@example.com", "wrong horse", poll).await) == Seen::Wrong {
            break;
        }
        assert!(Instant::now() < deadline, "no wrong password admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let from = address(ADDRESSES + 2);
    let blocked_at = Instant::now();
    let mut other = replicas[1].client.clone();
    assert_eq!(
        seen(sign_in(&mut other, "ann@example.com", "correct horse", from).await),
        Seen::Throttled(1),
        "the right password is refused during the block, on the other replica too"
    );
    assert!(blocked_at.elapsed() < CAP, "checked within the block");
    // After it, accepted; and the success cleared the count: the next wrong one is free.
    tokio::time::sleep(CAP + Duration::from_millis(50)).await;
    assert_eq!(
        seen(sign_in(&mut other, "ann@example.com", "correct horse", from).await),
        Seen::Ok
    );
    for _ in 0..policies.account.free {
        assert_eq!(
            seen(sign_in(&mut client, "ann@example.com", "wrong horse", from).await),
            Seen::Wrong
        );
    }
    for r in replicas {
        r.shut_down().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_throttled_for_sign_ins_and_sign_ups_over_postgres() {
    let url = database_url();
    let schema = format!("it_auth_throttle_addr_{}", std::process::id());
    fresh_schema(&url, &schema).await;
    let policies = policies(Duration::from_secs(5), [1000, 3, 2]);
    let r = replica(&url, &schema, policies).await;
    let mut client = r.client.clone();
    let eve: IpAddr = "192.0.2.66".parse().expect("ip");

    // Sign-ups: 2 free, the 3rd admitted and blocking; the owner signing up again forgiven.
    assert_eq!(
        seen(sign_up(&mut client, "eve@example.com", "correct horse", eve).await),
        Seen::Ok
    );
    for _ in 0..5 {
        let again = sign_up(&mut client, "eve@example.com", "correct horse", eve).await;
        assert_eq!(again.map_err(|s| s.code()), Err(Code::AlreadyExists));
    }
    assert_eq!(
        seen(sign_up(&mut client, "eve2@example.com", "correct horse", eve).await),
        Seen::Ok
    );
    assert_eq!(
        seen(sign_up(&mut client, "eve3@example.com", "correct horse", eve).await),
        Seen::Ok,
        "the 3rd counted sign-up (the re-registrations were forgiven)"
    );
    assert_eq!(
        seen(sign_up(&mut client, "eve4@example.com", "correct horse", eve).await),
        Seen::Throttled(5)
    );

    // Sign-ins: Eve's own success between guesses forgives only itself.
    for account in ["a@example.com", "b@example.com"] {
        assert_eq!(
            seen(sign_in(&mut client, account, "guess", eve).await),
            Seen::Wrong
        );
        assert_eq!(
            seen(sign_in(&mut client, "eve@example.com", "correct horse", eve).await),
            Seen::Ok
        );
    }
    assert_eq!(
        seen(sign_in(&mut client, "c@example.com", "guess", eve).await),
        Seen::Wrong
    );
    assert_eq!(
        seen(sign_in(&mut client, "d@example.com", "guess", eve).await),
        Seen::Wrong,
        "the 4th counted attempt is admitted and blocks the next"
    );
    assert_eq!(
        seen(sign_in(&mut client, "eve@example.com", "correct horse", eve).await),
        Seen::Throttled(5),
        "an address past its allowance is refused, even for its own account"
    );
    let metrics = r.accounts.throttle().expect("throttle").metrics().clone();
    assert_eq!(metrics.throttled(Scope::SignInAddress), 1);
    assert_eq!(metrics.throttled(Scope::SignUpAddress), 1);
    assert_eq!(metrics.throttled(Scope::SignInAccount), 0);
    // Another address is not affected.
    assert_eq!(
        seen(
            sign_in(
                &mut client,
                "eve@example.com",
                "correct horse",
                "192.0.2.7".parse().expect("ip")
            )
            .await
        ),
        Seen::Ok
    );

    // Nothing is quiet yet; a sweep with a quiet window of zero forgets every counter.
    let throttle = r.accounts.throttle().expect("throttle");
    assert_eq!(throttle.sweep().await.expect("sweeps"), 0);
    let instant = Throttle::new(
        Arc::new(store(&url, &schema).await),
        Policies {
            account: Policy::new(0, BASE, Duration::ZERO, Duration::ZERO),
            address: Policy::new(0, BASE, Duration::ZERO, Duration::ZERO),
            sign_up: Policy::new(0, BASE, Duration::ZERO, Duration::ZERO),
        },
        ThrottleMetrics::default(),
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        instant.sweep().await.expect("sweeps") >= 3,
        "address and sign-up rows"
    );
    r.shut_down().await;
}
