//! How a service that sheds load says so over gRPC, and how long the caller should wait:
//! `RESOURCE_EXHAUSTED` with the metadata [`RETRY_AFTER`] in whole seconds. Auth answers so
//! when its password hashes are all busy; the gateway turns it into a 503 with the HTTP
//! `Retry-After` header of the same value, whichever service sent it.
//!
//! A refusal of the *client* rather than of the load — too many attempts from this client or
//! at this account ([`throttled`]) — is the same code, marked with [`REFUSAL`]`: throttled`,
//! and the gateway answers it as 429 with `Retry-After`. Why this and not another code:
//! gRPC defines `RESOURCE_EXHAUSTED` for exactly "a per-user quota" ran out, so the status
//! stays true for any gRPC client; the other candidates say something false (`UNAVAILABLE`
//! is retried by clients and means the service is down, `FAILED_PRECONDITION` means the
//! system's state must change, `PERMISSION_DENIED` that retrying will not help). Neither
//! kind counts against the service in the gateway's breakers: both are a healthy service
//! protecting itself. A throttle's hint may be longer than a shed's (a block lasts up to its
//! cap), so it is clamped to [`MAX_THROTTLE_RETRY_AFTER_SECONDS`] instead.

use tonic::{Status, metadata::MetadataValue};

/// The metadata key of the retry hint (the HTTP header's name; whole seconds, at least 1).
pub const RETRY_AFTER: &str = "retry-after";

/// The longest wait a hint may ask for; a larger or unreadable one is clamped to it.
pub const MAX_RETRY_AFTER_SECONDS: u64 = 300;

/// The longest wait a throttle's hint may ask for.
pub const MAX_THROTTLE_RETRY_AFTER_SECONDS: u64 = 3600;

/// The metadata key that tells a throttle ([`THROTTLED`]) from shedding (absent).
pub const REFUSAL: &str = "x-storefront-refusal";

/// [`REFUSAL`]'s value for a client over its allowance.
pub const THROTTLED: &str = "throttled";

/// A `RESOURCE_EXHAUSTED` status asking the caller to come back in `seconds` (at least 1).
pub fn overloaded(message: impl Into<String>, seconds: u64) -> Status {
    let seconds = seconds.clamp(1, MAX_RETRY_AFTER_SECONDS);
    let mut status = Status::resource_exhausted(message);
    status
        .metadata_mut()
        .insert(RETRY_AFTER, MetadataValue::from(seconds));
    status
}

/// A `RESOURCE_EXHAUSTED` status that refuses this client (not the load) for `seconds`
/// (clamped to `1..=`[`MAX_THROTTLE_RETRY_AFTER_SECONDS`]): the gateway's 429.
pub fn throttled(message: impl Into<String>, seconds: u64) -> Status {
    let seconds = seconds.clamp(1, MAX_THROTTLE_RETRY_AFTER_SECONDS);
    let mut status = Status::resource_exhausted(message);
    let metadata = status.metadata_mut();
    metadata.insert(RETRY_AFTER, MetadataValue::from(seconds));
    metadata.insert(REFUSAL, MetadataValue::from_static(THROTTLED));
    status
}

/// Whether `status` is a throttle's refusal ([`throttled`]).
pub fn is_throttled(status: &Status) -> bool {
    status.code() == tonic::Code::ResourceExhausted
        && status
            .metadata()
            .get(REFUSAL)
            .is_some_and(|v| v.as_bytes() == THROTTLED.as_bytes())
}

/// The retry hint of a status: its [`RETRY_AFTER`] metadata clamped to
/// `1..=`[`MAX_RETRY_AFTER_SECONDS`] (a throttle's to
/// [`MAX_THROTTLE_RETRY_AFTER_SECONDS`]), `None` when absent or not a whole number.
pub fn retry_after(status: &Status) -> Option<u64> {
    let max = if is_throttled(status) {
        MAX_THROTTLE_RETRY_AFTER_SECONDS
    } else {
        MAX_RETRY_AFTER_SECONDS
    };
    status
        .metadata()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.clamp(1, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn the_hint_goes_out_and_comes_back_clamped() {
        let status = overloaded("busy", 3);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(retry_after(&status), Some(3));
        assert_eq!(retry_after(&overloaded("busy", 0)), Some(1));
        assert_eq!(
            retry_after(&overloaded("busy", 86_400)),
            Some(MAX_RETRY_AFTER_SECONDS)
        );
        assert_eq!(retry_after(&Status::resource_exhausted("no hint")), None);
        let mut odd = Status::resource_exhausted("odd");
        odd.metadata_mut()
            .insert(RETRY_AFTER, MetadataValue::from_static("soon"));
        assert_eq!(retry_after(&odd), None);
        assert!(!is_throttled(&overloaded("busy", 3)));
    }

    #[test]
    fn a_throttle_is_marked_and_may_ask_for_longer() {
        let status = throttled("too many attempts", 900);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(is_throttled(&status));
        assert_eq!(retry_after(&status), Some(900));
        assert_eq!(
            retry_after(&throttled("x", u64::MAX)),
            Some(MAX_THROTTLE_RETRY_AFTER_SECONDS)
        );
        assert_eq!(retry_after(&throttled("x", 0)), Some(1));
        // The mark on another code is not a throttle.
        let mut other = Status::unavailable("down");
        other
            .metadata_mut()
            .insert(REFUSAL, MetadataValue::from_static(THROTTLED));
        assert!(!is_throttled(&other));
    }
}
