//! Settings shared by every subcommand, from flags or the environment the operator renders
//! (`STOREFRONT_NAME`, `DATABASE_URL`, `JWT_KEYS_DIR`, ...), with one clear error that names
//! both the flag and the variable when a required setting is missing.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use thiserror::Error;

use crate::token::{self, KeyError, KeySet, SigningKeys, TokenVerifier};

/// The file in `JWT_KEYS_DIR` (the mounted JWT Secret) that holds the PKCS#8 PEM private key.
pub const JWT_PRIVATE_KEY_FILE: &str = "private.pem";

/// A setting that is missing or unusable.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("missing setting: pass {flag} or set {env}")]
    Missing {
        flag: &'static str,
        env: &'static str,
    },
    #[error("invalid setting {flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
    #[error("failed to read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to load the JWT key from {path}: {source}")]
    Key { path: PathBuf, source: KeyError },
}

/// A service's token keys from `JWT_KEYS_DIR` ([`CommonArgs::token_keys`]).
#[derive(Clone)]
pub struct TokenKeys {
    /// The key that signs user tokens: auth's alone (`None` in every other service).
    pub user: Option<SigningKeys>,
    /// This service's own key, for the tokens it calls other services with.
    pub service: SigningKeys,
    /// The verifier of the shop's tokens (the keys of every service, and the user key).
    pub verifier: TokenVerifier,
}

/// The value of a required setting, or [`ConfigError::Missing`] naming flag and variable.
pub fn required<T>(
    value: Option<T>,
    flag: &'static str,
    env: &'static str,
) -> Result<T, ConfigError> {
    value.ok_or(ConfigError::Missing { flag, env })
}

/// Settings every service has.
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    /// The Storefront this service belongs to.
    #[arg(long, env = "STOREFRONT_NAME")]
    pub storefront: Option<String>,
    /// The HTTP port: /healthz, /readyz and /metrics of a gRPC service; the gateway's public
    /// API (its operations endpoints are on its own `OPS_ADDR`).
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Where the gRPC server listens.
    #[arg(long, env = "GRPC_ADDR", default_value = "0.0.0.0:50051")]
    pub grpc_addr: SocketAddr,
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A PostgreSQL read replica for read-mostly queries (optional).
    #[arg(long, env = "DATABASE_READ_REPLICA_URL", hide_env_values = true)]
    pub database_read_replica_url: Option<String>,
    /// This service's (or shard's) own database schema.
    #[arg(long, env = "DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// NATS URL (JetStream enabled).
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// The directory of the mounted JWT Secret (holds `private.pem`).
    #[arg(long, env = "JWT_KEYS_DIR")]
    pub jwt_keys_dir: Option<PathBuf>,
    /// Seconds to finish in-flight requests after SIGTERM.
    #[arg(long, env = "DRAIN_SECONDS", default_value_t = 20)]
    pub drain_seconds: u64,
    /// Mutual TLS between services: a directory with `ca.crt`, `tls.crt` and `tls.key`
    /// (unset: plain gRPC, service tokens only).
    #[arg(long, env = "GRPC_TLS_DIR")]
    pub grpc_tls_dir: Option<PathBuf>,
    /// The Kubernetes namespace (set by the operator): Storefronts of the same name in two
    /// namespaces get separate event streams.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
}

impl CommonArgs {
    /// The Storefront's name (required).
    pub fn storefront(&self) -> Result<&str, ConfigError> {
        required(
            self.storefront.as_deref(),
            "--storefront",
            "STOREFRONT_NAME",
        )
    }

    /// Turns mutual TLS on for this process's gRPC servers and clients when `GRPC_TLS_DIR` is
    /// set; a missing or unreadable file is an error at start, never a silent plain channel.
    pub fn install_tls(&self) -> Result<(), ConfigError> {
        if let Some(dir) = &self.grpc_tls_dir {
            let files =
                crate::grpc::TlsFiles::read(dir).map_err(|reason| ConfigError::Invalid {
                    flag: "--grpc-tls-dir",
                    reason,
                })?;
            crate::grpc::install_tls(files);
            tracing::info!(dir = %dir.display(), "mutual TLS between services is on");
        }
        Ok(())
    }

    /// The name of this shop on the event bus: `<namespace>-<storefront>`, or the
    /// Storefront's name outside Kubernetes.
    pub fn bus_name(&self) -> Result<String, ConfigError> {
        let storefront = self.storefront()?;
        Ok(match self.namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(ns) => format!("{ns}-{storefront}"),
            None => storefront.to_string(),
        })
    }

    /// The PostgreSQL URL (required where a service stores anything).
    pub fn database_url(&self) -> Result<&str, ConfigError> {
        required(
            self.database_url.as_deref(),
            "--database-url",
            "DATABASE_URL",
        )
    }

    /// The service's (or shard's) own schema (required where a service stores anything).
    pub fn database_schema(&self) -> Result<&str, ConfigError> {
        required(
            self.database_schema.as_deref(),
            "--database-schema",
            "DATABASE_SCHEMA",
        )
    }

    /// The NATS URL (required where a service publishes or consumes events).
    pub fn nats_url(&self) -> Result<&str, ConfigError> {
        required(self.nats_url.as_deref(), "--nats-url", "NATS_URL")
    }

    /// The JWT signing keys from `JWT_KEYS_DIR/private.pem`.
    pub fn signing_keys(&self) -> Result<SigningKeys, ConfigError> {
        let dir = required(self.jwt_keys_dir.as_ref(), "--jwt-keys-dir", "JWT_KEYS_DIR")?;
        read_signing_keys(&dir.join(JWT_PRIVATE_KEY_FILE))
    }

    /// The token keys of `JWT_KEYS_DIR` for the tokens of Storefront `issuer`. In the
    /// operator's layout (`services/` present, see [`crate::token`]) the user key is
    /// `private.pem` where it is mounted (auth), this service's key `service.pem`, and the
    /// verifier trusts `public.pem` for users and `services/<name>.pem` for each service.
    /// Without `services/`, `private.pem` is the one key for everything (a binary run by
    /// hand, the tests), and a warning says so.
    pub fn token_keys(&self, issuer: &str) -> Result<TokenKeys, ConfigError> {
        let dir = required(self.jwt_keys_dir.as_ref(), "--jwt-keys-dir", "JWT_KEYS_DIR")?;
        if !KeySet::is_split_dir(dir) {
            let keys = self.signing_keys()?;
            tracing::warn!(
                dir = %dir.display(),
                "JWT_KEYS_DIR holds one key for user and service tokens (no services/): \
                 whoever reads it can mint any token; the operator mounts one key per service"
            );
            return Ok(TokenKeys {
                verifier: keys.verifier(issuer),
                service: keys.clone(),
                user: Some(keys),
            });
        }
        let user_path = dir.join(token::USER_PRIVATE_FILE);
        let user = if user_path.exists() {
            Some(read_signing_keys(&user_path)?)
        } else {
            None
        };
        let service = read_signing_keys(&dir.join(token::SERVICE_PRIVATE_FILE))?;
        let verifier = TokenVerifier::from_dir(dir, issuer).map_err(|source| ConfigError::Key {
            path: dir.clone(),
            source,
        })?;
        Ok(TokenKeys {
            user,
            service,
            verifier,
        })
    }

    /// How long to drain on SIGTERM.
    pub fn drain(&self) -> Duration {
        Duration::from_secs(self.drain_seconds)
    }
}

/// The demo catalog a shop starts with (catalog and inventory): both generate the same
/// deterministic catalog from the same numbers, so they agree without talking.
#[derive(Args, Clone, Debug, Default)]
pub struct CatalogSeedArgs {
    /// Load the generated catalog at start when the shop has none (catalog: products;
    /// inventory: the stock of the SKUs this shard owns that it does not know yet).
    #[arg(long, env = "CATALOG_SEED")]
    pub catalog_seed: Option<u64>,
    /// How many products the generated catalog has.
    #[arg(long, env = "CATALOG_PRODUCTS", default_value_t = 10_000)]
    pub catalog_products: usize,
}

impl CatalogSeedArgs {
    /// `(seed, products)` when seeding is asked for; products must be 1..=1,000,000.
    pub fn seed(&self) -> Result<Option<(u64, usize)>, ConfigError> {
        let Some(seed) = self.catalog_seed else {
            return Ok(None);
        };
        if !(1..=1_000_000).contains(&self.catalog_products) {
            return Err(ConfigError::Invalid {
                flag: "--catalog-products",
                reason: format!("must be 1..=1000000, got {}", self.catalog_products),
            });
        }
        Ok(Some((seed, self.catalog_products)))
    }
}

/// How a service consumes the event bus (orders, inventory, payments, recommendations).
#[derive(Args, Clone, Debug)]
pub struct BusArgs {
    /// Events handled at once per consumer.
    #[arg(long, env = "EVENT_CONCURRENCY", default_value_t = 32)]
    pub event_concurrency: usize,
    /// Orders: cancel an order still pending after this many seconds.
    #[arg(long, env = "ORDER_TIMEOUT_SECONDS", default_value_t = 120)]
    pub order_timeout_seconds: u64,
}

impl BusArgs {
    /// `(concurrency, order timeout)`, checked.
    pub fn checked(&self) -> Result<(usize, Duration), ConfigError> {
        if !(1..=1024).contains(&self.event_concurrency) {
            return Err(ConfigError::Invalid {
                flag: "--event-concurrency",
                reason: format!("must be 1..=1024, got {}", self.event_concurrency),
            });
        }
        if !(5..=86_400).contains(&self.order_timeout_seconds) {
            return Err(ConfigError::Invalid {
                flag: "--order-timeout-seconds",
                reason: format!(
                    "must be 5 seconds .. 1 day, got {}",
                    self.order_timeout_seconds
                ),
            });
        }
        Ok((
            self.event_concurrency,
            Duration::from_secs(self.order_timeout_seconds),
        ))
    }
}

/// A shard's place in its ring, as the operator passes it (`SHARD_INDEX`, `SHARD_COUNT`,
/// `RING_EPOCH`). An unsharded service has neither index nor count: one shard of one.
#[derive(Args, Clone, Debug)]
pub struct ShardArgs {
    /// This shard's ordinal.
    #[arg(long, env = "SHARD_INDEX")]
    pub shard_index: Option<u32>,
    /// The number of shards in the ring.
    #[arg(long, env = "SHARD_COUNT")]
    pub shard_count: Option<u32>,
    /// The ring epoch this shard serves.
    #[arg(long, env = "RING_EPOCH", default_value_t = 1)]
    pub ring_epoch: i64,
}

impl ShardArgs {
    /// `(index, count, epoch)`, checked: both or neither of index and count, index < count.
    pub fn place(&self) -> Result<(u32, u32, i64), ConfigError> {
        let (index, count) = match (self.shard_index, self.shard_count) {
            (None, None) => (0, 1),
            (Some(i), Some(n)) => (i, n),
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    flag: "--shard-count",
                    env: "SHARD_COUNT",
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    flag: "--shard-index",
                    env: "SHARD_INDEX",
                });
            }
        };
        if count == 0 || index >= count {
            return Err(ConfigError::Invalid {
                flag: "--shard-index",
                reason: format!("shard {index} of {count} does not exist"),
            });
        }
        if self.ring_epoch < 1 {
            return Err(ConfigError::Invalid {
                flag: "--ring-epoch",
                reason: format!("the epoch must be positive, got {}", self.ring_epoch),
            });
        }
        Ok((index, count, self.ring_epoch))
    }
}

/// Token lifetimes (auth).
#[derive(Args, Clone, Debug)]
pub struct TokenArgs {
    /// Lifetime of a user token, in seconds.
    #[arg(long, env = "USER_TOKEN_TTL_SECONDS", default_value_t = 3600)]
    pub user_token_ttl_seconds: i64,
    /// Lifetime of a service token, in seconds (short: they are minted per call).
    #[arg(long, env = "SERVICE_TOKEN_TTL_SECONDS", default_value_t = 60)]
    pub service_token_ttl_seconds: i64,
}

impl TokenArgs {
    /// `(user, service)` lifetimes, each checked to be 1 s .. 30 days.
    pub fn ttls(&self) -> Result<(i64, i64), ConfigError> {
        let check = |flag: &'static str, v: i64| {
            if (1..=30 * 24 * 3600).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::Invalid {
                    flag,
                    reason: format!("must be between 1 second and 30 days, got {v}"),
                })
            }
        };
        Ok((
            check("--user-token-ttl-seconds", self.user_token_ttl_seconds)?,
            check(
                "--service-token-ttl-seconds",
                self.service_token_ttl_seconds,
            )?,
        ))
    }
}

fn read_signing_keys(path: &std::path::Path) -> Result<SigningKeys, ConfigError> {
    let pem = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    SigningKeys::from_pkcs8_pem(&pem).map_err(|source| ConfigError::Key {
        path: path.to_path_buf(),
        source,
    })
}
