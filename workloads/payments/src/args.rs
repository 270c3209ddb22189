//! The `payments` subcommand's own settings: the simulated provider's, validated into a
//! [`ProviderConfig`] with an error that names the flag.

use std::time::Duration;

use clap::Args;

use super::domain::{ProviderConfig, ProviderConfigError};
use storefront_platform::config::ConfigError;

/// The simulated payment provider's settings.
#[derive(Args, Clone, Debug)]
pub struct ProviderArgs {
    /// Median latency of a simulated charge, in milliseconds.
    #[arg(long, env = "PAYMENT_LATENCY_MS", default_value_t = 150)]
    pub payment_latency_ms: u64,
    /// Latency spread as a fraction of the median (0..=1).
    #[arg(long, env = "PAYMENT_JITTER", default_value_t = 0.3)]
    pub payment_jitter: f64,
    /// Probability that a charge is declined (0..=1).
    #[arg(long, env = "PAYMENT_FAILURE_RATE", default_value_t = 0.02)]
    pub payment_failure_rate: f64,
    /// Seed of the provider's RNG.
    #[arg(long, env = "PAYMENT_SEED", default_value_t = 1)]
    pub payment_seed: u64,
}

impl ProviderArgs {
    /// The validated provider configuration.
    pub fn provider(&self) -> Result<ProviderConfig, ConfigError> {
        ProviderConfig {
            latency: Duration::from_millis(self.payment_latency_ms),
            jitter: self.payment_jitter,
            failure_rate: self.payment_failure_rate,
            seed: self.payment_seed,
        }
        .validate()
        .map_err(|e| ConfigError::Invalid {
            flag: match e {
                ProviderConfigError::FailureRate(_) => "--payment-failure-rate",
                ProviderConfigError::Jitter(_) => "--payment-jitter",
            },
            reason: e.to_string(),
        })
    }
}
