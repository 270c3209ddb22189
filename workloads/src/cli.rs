//! The command line: a subcommand per service, plus `seed` and `migrate`. Services that are
//! missing a setting exit non-zero naming the flag and the variable to set.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::{
    auth,
    catalog::{self, seed},
    config::{BusArgs, CatalogSeedArgs, CommonArgs, ShardArgs, TokenArgs, required},
    gateway, inventory, loadgen, orders, payments,
    payments::args::ProviderArgs,
    recommendations,
};

/// Storefront's commerce services.
#[derive(Parser, Debug)]
#[command(name = "storefront-workloads", version, about)]
pub struct Cli {
    /// Log format: `json` (default, for clusters) or `text`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// The public HTTP/JSON API.
    Gateway(gateway::run::GatewayArgs),
    /// Users, passwords and tokens.
    Auth {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        tokens: TokenArgs,
        #[command(flatten)]
        hashing: auth::args::HashArgs,
        #[command(flatten)]
        throttling: auth::args::ThrottleArgs,
    },
    /// Products and search.
    Catalog {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        seed: CatalogSeedArgs,
    },
    /// Event-sourced orders and the checkout saga.
    Orders {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        bus: BusArgs,
        #[command(flatten)]
        limits: orders::args::OrderArgs,
    },
    /// Stock and reservations on one shard.
    Inventory {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        shard: ShardArgs,
        #[command(flatten)]
        bus: BusArgs,
        #[command(flatten)]
        seed: CatalogSeedArgs,
    },
    /// Charges against the simulated provider.
    Payments {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        provider: ProviderArgs,
        #[command(flatten)]
        bus: BusArgs,
    },
    /// Bought-together recommendations.
    Recommendations {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        bus: BusArgs,
    },
    /// Writes a deterministic catalog as JSON Lines.
    Seed(SeedArgs),
    /// Creates or upgrades a service's database schema (`--service`, or STOREFRONT_SERVICE).
    Migrate {
        #[command(flatten)]
        common: CommonArgs,
        /// The service whose schema to migrate.
        #[arg(long, env = "STOREFRONT_SERVICE")]
        service: Option<String>,
    },
    /// Open-loop shopper traffic against a gateway, with latency percentiles per endpoint.
    Loadgen(loadgen::LoadgenArgs),
    /// One step of resharding a sharded inventory (run by the operator as a Job).
    Reshard(inventory::reshard_cmd::ReshardArgs),
}

/// `seed` settings.
#[derive(clap::Args, Debug)]
pub struct SeedArgs {
    /// The seed number: the same number gives the same catalog.
    #[arg(long, env = "SEED", default_value_t = 1)]
    pub seed: u64,
    /// How many products.
    #[arg(long, env = "SEED_PRODUCTS", default_value_t = seed::DEFAULT_PRODUCTS)]
    pub products: usize,
    /// Where to write JSON Lines (default: standard output, unless loading a database).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Load the catalog into this PostgreSQL database (the catalog's schema) instead.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The catalog's schema, when loading a database.
    #[arg(long, env = "DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

impl Command {
    /// The subcommand's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gateway(_) => "gateway",
            Self::Auth { .. } => "auth",
            Self::Catalog { .. } => "catalog",
            Self::Orders { .. } => "orders",
            Self::Inventory { .. } => "inventory",
            Self::Payments { .. } => "payments",
            Self::Recommendations { .. } => "recommendations",
            Self::Seed(_) => "seed",
            Self::Migrate { .. } => "migrate",
            Self::Loadgen(_) => "loadgen",
            Self::Reshard(_) => "reshard",
        }
    }
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Seed(args) => write_seed(&args),
        Command::Loadgen(args) => runtime()?.block_on(loadgen::run(args)),
        Command::Reshard(args) => runtime()?.block_on(inventory::reshard_cmd::run(args)),
        Command::Payments {
            common,
            provider,
            bus,
        } => runtime()?.block_on(payments::run::run(common, provider, bus)),
        Command::Catalog { common, seed } => runtime()?.block_on(catalog::run::run(common, seed)),
        Command::Gateway(args) => runtime()?.block_on(gateway::run::run(args)),
        Command::Auth {
            common,
            tokens,
            hashing,
            throttling,
        } => runtime()?.block_on(auth::run::run(common, tokens, hashing, throttling)),
        Command::Inventory {
            common,
            shard,
            bus,
            seed,
        } => runtime()?.block_on(inventory::run::run(common, shard, bus, seed)),
        Command::Orders {
            common,
            bus,
            limits,
        } => runtime()?.block_on(orders::run::run(common, bus, limits)),
        Command::Recommendations { common, bus } => {
            runtime()?.block_on(recommendations::run::run(common, bus))
        }
        Command::Migrate { common, service } => {
            match required(service.as_deref(), "--service", "STOREFRONT_SERVICE")? {
                "inventory" => runtime()?.block_on(inventory::run::migrate(&common)),
                "auth" => runtime()?.block_on(auth::run::migrate(&common)),
                "catalog" => runtime()?.block_on(catalog::run::migrate(&common)),
                "orders" => runtime()?.block_on(orders::run::migrate(&common)),
                "payments" => runtime()?.block_on(payments::run::migrate(&common)),
                "recommendations" => runtime()?.block_on(recommendations::run::migrate(&common)),
                other => bail!(
                    "failed to migrate {other:?}: use auth, catalog, orders, inventory, payments or recommendations"
                ),
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

fn write_seed(args: &SeedArgs) -> Result<()> {
    let products = seed::generate(args.seed, args.products);
    if let Some(url) = &args.database_url {
        let schema = required(
            args.database_schema.as_deref(),
            "--database-schema",
            "DATABASE_SCHEMA",
        )?;
        runtime()?.block_on(async {
            let store = catalog::postgres::PgCatalog::connect(url, schema, 2).await?;
            store.migrate().await?;
            store.upsert(&products).await
        })?;
        tracing::info!(
            products = products.len(),
            seed = args.seed,
            schema,
            "catalog loaded"
        );
        if args.output.is_none() {
            return Ok(());
        }
    }
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("failed to create {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    for product in &products {
        serde_json::to_writer(&mut out, product).context("failed to write a product")?;
        out.write_all(b"\n").context("failed to write a product")?;
    }
    out.flush().context("failed to write the catalog")?;
    tracing::info!(
        products = products.len(),
        seed = args.seed,
        "catalog written"
    );
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // sqlx logs PostgreSQL's notices ("already exists, skipping") at info.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The binary's entry point: parse, log, run, and map errors to a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let name = cli.command.name();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(command = name, "{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses flags only: the environment of whoever runs the tests (a `DATABASE_URL` for
    /// the integration tests, say) must not leak into these.
    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        use clap::{CommandFactory, FromArgMatches};
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            let owned = std::mem::take(sub);
            *sub = owned.mut_args(|a| a.env(None));
        }
        let matches = cmd.try_get_matches_from(
            std::iter::once("storefront-workloads").chain(args.iter().copied()),
        )?;
        Cli::from_arg_matches(&matches)
    }

    #[test]
    fn every_service_has_a_subcommand() {
        for name in [
            "gateway",
            "auth",
            "catalog",
            "orders",
            "inventory",
            "payments",
            "recommendations",
            "seed",
            "migrate",
        ] {
            let cli = parse(&[name]).expect(name);
            assert_eq!(cli.command.name(), name);
        }
        assert!(parse(&["warehouse"]).is_err());
    }

    #[test]
    fn services_on_the_bus_need_nats() {
        for service in ["orders", "payments", "recommendations"] {
            let cli = parse(&[
                service,
                "--storefront",
                "shop",
                "--database-url",
                "postgres://127.0.0.1:1/x",
                "--database-schema",
                "s",
            ])
            .expect("parses");
            let err = run(cli).expect_err("no NATS");
            assert_eq!(
                err.to_string(),
                "missing setting: pass --nats-url or set NATS_URL",
                "{service}"
            );
        }
        let cli = parse(&["orders", "--order-timeout-seconds", "1"]).expect("parses");
        assert!(cli_bus(&cli).checked().is_err());
    }

    fn cli_bus(cli: &Cli) -> &BusArgs {
        match &cli.command {
            Command::Orders { bus, .. } => bus,
            _ => unreachable!("orders"),
        }
    }

    #[test]
    fn missing_and_invalid_settings_are_named() {
        let cli = parse(&["payments", "--payment-failure-rate", "0.1"]).expect("parses");
        let err = run(cli).expect_err("no storefront");
        assert_eq!(
            err.to_string(),
            "missing setting: pass --storefront or set STOREFRONT_NAME"
        );
        let cli = parse(&[
            "payments",
            "--storefront",
            "shop",
            "--payment-failure-rate",
            "2",
        ])
        .expect("parses");
        let err = run(cli).expect_err("bad rate");
        assert!(
            err.to_string()
                .starts_with("invalid setting --payment-failure-rate"),
            "{err}"
        );
        let err =
            run(parse(&["inventory", "--storefront", "shop"]).expect("parses")).expect_err("no db");
        assert_eq!(
            err.to_string(),
            "missing setting: pass --database-url or set DATABASE_URL"
        );
        let err =
            run(parse(&["inventory", "--storefront", "s", "--shard-index", "1"]).expect("parses"))
                .expect_err("no count");
        assert_eq!(
            err.to_string(),
            "missing setting: pass --shard-count or set SHARD_COUNT"
        );
        let err = run(parse(&[
            "inventory",
            "--storefront",
            "s",
            "--shard-index",
            "2",
            "--shard-count",
            "2",
        ])
        .expect("parses"))
        .expect_err("no such shard");
        assert!(
            err.to_string().contains("shard 2 of 2 does not exist"),
            "{err}"
        );
        let err = run(parse(&["seed", "--database-url", "postgres://x"]).expect("parses"))
            .expect_err("no schema");
        assert_eq!(
            err.to_string(),
            "missing setting: pass --database-schema or set DATABASE_SCHEMA"
        );
        let err = run(parse(&["gateway", "--storefront", "shop"]).expect("parses"))
            .expect_err("no routes");
        assert_eq!(
            err.to_string(),
            "missing setting: pass --routes-file or set GATEWAY_ROUTES"
        );
        let err = run(parse(&[
            "gateway",
            "--storefront",
            "shop",
            "--routes-file",
            "/nonexistent/routes.json",
            "--upstream-timeout-ms",
            "0",
        ])
        .expect("parses"))
        .expect_err("bad deadline");
        assert!(
            err.to_string()
                .starts_with("invalid setting --upstream-timeout-ms"),
            "{err}"
        );
        let err = run(parse(&["migrate"]).expect("parses")).expect_err("no service");
        assert_eq!(
            err.to_string(),
            "missing setting: pass --service or set STOREFRONT_SERVICE"
        );
        let cli = parse(&["auth", "--storefront", "shop"]).expect("parses");
        let Command::Auth { common, .. } = cli.command else {
            panic!("auth parses as auth");
        };
        let err = common.signing_keys().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("missing setting: pass --jwt-keys-dir or set JWT_KEYS_DIR")
        );
    }

    #[test]
    fn auth_takes_its_hashing_limits_from_flags() {
        let cli = parse(&["auth", "--hash-concurrency", "3", "--hash-queue", "0"]).expect("parses");
        let Command::Auth { hashing, .. } = cli.command else {
            panic!("auth parses as auth");
        };
        let limits = hashing.limits().expect("valid");
        assert_eq!((limits.concurrency, limits.queue), (3, 0));
        let cli = parse(&["auth", "--hash-concurrency", "0"]).expect("parses");
        let Command::Auth { hashing, .. } = cli.command else {
            panic!("auth parses as auth");
        };
        let err = hashing.limits().expect_err("no slot").to_string();
        assert!(
            err.starts_with("invalid setting --hash-concurrency"),
            "{err}"
        );
    }

    #[test]
    fn jwt_keys_load_from_the_mounted_secret() {
        let dir = std::env::temp_dir().join(format!("sf-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pem = crate::auth::domain::SigningKeys::seed_to_pkcs8_pem([5; 32]).expect("pem");
        std::fs::write(dir.join("private.pem"), pem).expect("write");
        let dir_arg = dir.to_string_lossy().to_string();
        let cli = parse(&["auth", "--jwt-keys-dir", &dir_arg]).expect("parses");
        let Command::Auth { common, .. } = cli.command else {
            panic!("auth parses as auth");
        };
        assert!(common.signing_keys().is_ok());
        std::fs::write(dir.join("private.pem"), "garbage").expect("write");
        let err = common
            .signing_keys()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("failed to load the JWT key from"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn seed_writes_json_lines() {
        let path = std::env::temp_dir().join(format!("sf-seed-{}.jsonl", std::process::id()));
        let out = path.to_string_lossy().to_string();
        run(parse(&["seed", "--seed", "3", "--products", "25", "--output", &out]).expect("parses"))
            .expect("writes");
        let text = std::fs::read_to_string(&path).expect("read");
        let products: Vec<seed::Product> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a product per line"))
            .collect();
        assert_eq!(products, seed::generate(3, 25));
        let _ = std::fs::remove_file(&path);
    }
}
