//! How a service that sheds load says so over gRPC, and how long the caller should wait:
//! `RESOURCE_EXHAUSTED` with the metadata [`RETRY_AFTER`] in whole seconds. Auth answers so
//! when its password hashes are all busy; the gateway turns it into a 503 with the HTTP
//! `Retry-After` header of the same value, whichever service sent it.

use tonic::{Status, metadata::MetadataValue};

/// The metadata key of the retry hint (the HTTP header's name; whole seconds, at least 1).
pub const RETRY_AFTER: &str = "retry-after";

/// The longest wait a hint may ask for; a larger or unreadable one is clamped to it.
pub const MAX_RETRY_AFTER_SECONDS: u64 = 300;

/// A `RESOURCE_EXHAUSTED` status asking the caller to come back in `seconds` (at least 1).
pub fn overloaded(message: impl Into<String>, seconds: u64) -> Status {
    let seconds = seconds.clamp(1, MAX_RETRY_AFTER_SECONDS);
    let mut status = Status::resource_exhausted(message);
    status
        .metadata_mut()
        .insert(RETRY_AFTER, MetadataValue::from(seconds));
    status
}

/// The retry hint of a status: its [`RETRY_AFTER`] metadata clamped to
/// `1..=`[`MAX_RETRY_AFTER_SECONDS`], `None` when absent or not a whole number.
pub fn retry_after(status: &Status) -> Option<u64> {
    status
        .metadata()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.clamp(1, MAX_RETRY_AFTER_SECONDS))
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
    }
}
