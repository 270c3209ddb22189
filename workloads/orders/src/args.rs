//! The `orders` subcommand's own settings: the hoarding cap (how many pending orders one
//! user may have at once, [`crate::postgres::PgOrders::with_pending_cap`]).

use clap::Args;

use storefront_platform::config::ConfigError;

/// The largest pending-order cap accepted.
pub const MAX_PENDING_CAP: u32 = 1_000;

/// Limits on what one shopper may hold.
#[derive(Args, Clone, Debug)]
pub struct OrderArgs {
    /// Pending orders (waiting for stock or payment) one user may have at once; past it a new
    /// order is refused (409) until one is confirmed or cancelled. A pending order holds its
    /// stock, so this caps what one account can hoard during a sale. 0: no cap.
    #[arg(long, env = "MAX_PENDING_ORDERS", default_value_t = 5)]
    pub max_pending_orders: u32,
}

impl Default for OrderArgs {
    fn default() -> Self {
        Self {
            max_pending_orders: 5,
        }
    }
}

impl OrderArgs {
    /// The validated cap (`None`: no cap).
    pub fn pending_cap(&self) -> Result<Option<u32>, ConfigError> {
        match self.max_pending_orders {
            0 => Ok(None),
            n if n <= MAX_PENDING_CAP => Ok(Some(n)),
            n => Err(ConfigError::Invalid {
                flag: "--max-pending-orders",
                reason: format!("must be 0 (no cap) or 1..={MAX_PENDING_CAP}, got {n}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_checked_and_zero_turns_it_off() {
        let cap = |n| {
            OrderArgs {
                max_pending_orders: n,
            }
            .pending_cap()
        };
        assert_eq!(OrderArgs::default().pending_cap().ok(), Some(Some(5)));
        assert_eq!(cap(0).ok(), Some(None));
        assert_eq!(cap(1).ok(), Some(Some(1)));
        let err = cap(1_001).expect_err("too large").to_string();
        assert!(err.contains("--max-pending-orders"), "{err}");
    }
}
