//! The public HTTP/JSON API of the gateway (DESIGN.md "Public API") as serde types: request
//! bodies (unknown fields refused), answers, and the one error body
//! `{"error": {"code": "...", "message": "...", "requestId": "..."}}` with the status code
//! that fits.
//!
//! Money is integer minor units (`priceCents`, `totalCents`) with a `currency`. Field names
//! are camelCase on the wire. Request types have a `validate` that turns semantically
//! invalid input (quantity 0, too many lines, an empty SKU) into a 422 before any service
//! is called; malformed JSON is a 400, a body over the limit a 413.
//!
//! Every answer names its request: the `X-Request-Id` header ([`REQUEST_ID_HEADER`], the
//! client's own when [`valid_request_id`], else one the gateway made), repeated as
//! `requestId` in an error body. The gateway passes it on as gRPC metadata of the same name,
//! so a shopper's report finds the log lines of every service the request went through. A
//! 5xx message names the service and what to do, never a service's internals (those are
//! logged with the request id).

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

/// The largest request body the gateway accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub use crate::order_lines::{MAX_ORDER_LINES, MAX_QUANTITY, MAX_SKU_LEN};
/// The longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// The header (and gRPC metadata key) that names a request.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The longest client `X-Request-Id` taken as it is (a longer one is replaced).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client's `X-Request-Id` is taken as the request's id: 1..=[`MAX_REQUEST_ID_LEN`]
/// visible ASCII characters (no spaces, no control characters), so it is safe in a header, a
/// log line and gRPC metadata.
pub fn valid_request_id(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

/// `POST /api/v1/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl CreateUserRequest {
    /// Checks the email ([`crate::email::canonical_email`]: the rule auth stores by), so a
    /// refused address is a 422 before any call. The password's rules stay auth's.
    pub fn validate(&self) -> Result<(), ApiError> {
        crate::email::canonical_email(&self.email)
            .map(drop)
            .map_err(|e| ApiError::invalid(e.to_string()))
    }
}

/// 201 answer to `POST /api/v1/users`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCreated {
    pub id: String,
    pub email: String,
}

/// `POST /api/v1/sessions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSessionRequest {
    pub email: String,
    pub password: String,
}

/// 200 answer to `POST /api/v1/sessions`: a bearer token and when it expires (RFC 3339).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub token: String,
    pub expires_at: String,
}

/// One product in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductSummary {
    pub sku: String,
    pub name: String,
    pub category: String,
    pub brand: String,
    pub price_cents: i64,
    pub currency: String,
}

/// `GET /api/v1/products`: a page and the cursor of the next one (absent on the last page).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    pub items: Vec<ProductSummary>,
    pub next: Option<String>,
}

/// `GET /api/v1/products/{sku}`: the product with its description and available stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductDetail {
    #[serde(flatten)]
    pub summary: ProductSummary,
    pub description: String,
    pub available: i64,
}

/// `GET /api/v1/products/{sku}/recommendations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendations {
    pub items: Vec<ProductSummary>,
}

/// The header that marks an answer built without a supporting service.
pub const DEGRADED_HEADER: &str = "Storefront-Degraded";

/// One line of `POST /api/v1/orders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderItemRequest {
    pub sku: String,
    /// Signed so that a negative quantity is a 422 that names it, not a parse error.
    pub quantity: i64,
}

/// `POST /api/v1/orders` (Bearer, `Idempotency-Key`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub items: Vec<OrderItemRequest>,
}

impl CreateOrderRequest {
    /// Checks the order's meaning ([`crate::order_lines::validate`]): 1..=50 lines, SKUs
    /// non-empty and short, quantities in 1..=1000, no SKU twice. Returns the lines as
    /// `(sku, quantity)`.
    pub fn validate(&self) -> Result<Vec<(String, u32)>, ApiError> {
        crate::order_lines::validate(self.items.iter().map(|i| (i.sku.as_str(), i.quantity)))
            .map_err(ApiError::invalid)
    }
}

pub use crate::order_lines::validate_sku;

/// Order status on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
}

/// 202 answer to `POST /api/v1/orders`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderAccepted {
    pub order_id: String,
    pub status: OrderStatus,
}

/// One line of an order as shown back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub sku: String,
    pub quantity: u32,
    pub price_cents: i64,
}

/// `GET /api/v1/orders/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_id: String,
    pub status: OrderStatus,
    pub items: Vec<OrderLine>,
    pub total_cents: i64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /api/v1/orders`: the user's orders, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderList {
    pub items: Vec<OrderView>,
}

/// `GET /api/v1/inventory/{sku}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryView {
    pub sku: String,
    pub stock: i64,
    pub reserved: i64,
    pub available: i64,
}

/// The error body: `{"error": {"code": "...", "message": "...", "requestId": "..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable and machine-readable ([`ErrorKind::code`]).
    pub code: String,
    /// For a human: what is wrong, or for a 5xx which service failed and what to do.
    pub message: String,
    /// The request's `X-Request-Id`, set by the gateway (absent where no id is known).
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// What went wrong, as the public API reports it. Each kind has one status code and one
/// stable machine-readable `code`; the message names the problem for a human.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the body is not JSON or not of the expected shape (missing or extra fields).
    Malformed,
    /// 401: no token, or a bad or expired one, or wrong credentials.
    Unauthenticated,
    /// 403: authenticated but not allowed.
    Forbidden,
    /// 404: no such thing (or not yours).
    NotFound,
    /// 409: conflicts with what exists (an email already taken).
    Conflict,
    /// 408: the client did not send its body in time.
    RequestTimeout,
    /// 405: the path exists without this method.
    MethodNotAllowed,
    /// 413: the body is over [`MAX_BODY_BYTES`].
    TooLarge,
    /// 422: well-formed but semantically invalid.
    Invalid,
    /// 422: an `Idempotency-Key` reused with another body.
    IdempotencyKeyReused,
    /// 429: over the rate limit.
    RateLimited,
    /// 503: a core service is unavailable.
    Unavailable,
    /// 500: a bug or an unexpected failure.
    Internal,
}

impl ErrorKind {
    /// The HTTP status of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Malformed => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Invalid | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `code` of the error body.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed_request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::RequestTimeout => "request_timeout",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::TooLarge => "payload_too_large",
            Self::Invalid => "invalid_request",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "service_unavailable",
            Self::Internal => "internal",
        }
    }
}

/// An error answer of the public API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A 422 naming what is invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// The JSON body (without a request id: the gateway adds it, see [`IntoResponse`]).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.kind.code().into(),
                message: self.message.clone(),
                request_id: None,
            },
        }
    }

    /// Parses a JSON request body: over the limit → 413, not JSON or wrong shape → 400.
    pub fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
        if bytes.len() > MAX_BODY_BYTES {
            return Err(Self::new(
                ErrorKind::TooLarge,
                format!(
                    "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                    bytes.len()
                ),
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            Self::new(
                ErrorKind::Malformed,
                format!("failed to parse the body: {e}"),
            )
        })
    }
}

/// The status and JSON body, with the [`ErrorBody`] also kept as a response extension: the
/// gateway's request-id layer, which knows the request's id, renders it again with
/// `requestId` (this crate holds no per-request state).
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.kind.code().into(),
                message: self.message,
                request_id: None,
            },
        };
        let mut response = (self.kind.status(), Json(&body)).into_response();
        response.extensions_mut().insert(body);
        response
    }
}

/// Checks an `Idempotency-Key` header value: 1..=255 visible ASCII characters.
pub fn validate_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(ApiError::new(
            ErrorKind::Malformed,
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"),
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            ErrorKind::Malformed,
            "Idempotency-Key may contain only visible ASCII characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_are_camel_case_as_designed() {
        let product = ProductDetail {
            summary: ProductSummary {
                sku: "SKU-1".into(),
                name: "Kettle".into(),
                category: "kitchen".into(),
                brand: "Acme".into(),
                price_cents: 1999,
                currency: "USD".into(),
            },
            description: "Boils.".into(),
            available: 3,
        };
        assert_eq!(
            serde_json::to_value(&product).expect("serializes"),
            json!({"sku": "SKU-1", "name": "Kettle", "category": "kitchen", "brand": "Acme",
                   "priceCents": 1999, "currency": "USD", "description": "Boils.", "available": 3})
        );
        let order = OrderView {
            order_id: "o1".into(),
            status: OrderStatus::Cancelled,
            items: vec![OrderLine {
                sku: "SKU-1".into(),
                quantity: 2,
                price_cents: 1999,
            }],
            total_cents: 3998,
            currency: "USD".into(),
            reason: Some("payment declined".into()),
        };
        assert_eq!(
            serde_json::to_value(&order).expect("serializes"),
            json!({"orderId": "o1", "status": "CANCELLED",
                   "items": [{"sku": "SKU-1", "quantity": 2, "priceCents": 1999}],
                   "totalCents": 3998, "currency": "USD", "reason": "payment declined"})
        );
        let accepted = OrderAccepted {
            order_id: "o1".into(),
            status: OrderStatus::Pending,
        };
        assert_eq!(
            serde_json::to_value(&accepted).expect("serializes"),
            json!({"orderId": "o1", "status": "PENDING"})
        );
        let page = ProductPage {
            items: vec![],
            next: None,
        };
        assert_eq!(
            serde_json::to_value(&page).expect("serializes"),
            json!({"items": [], "next": null})
        );
    }

    #[test]
    fn error_body_and_status_codes() {
        let err = ApiError::new(
            ErrorKind::IdempotencyKeyReused,
            "key k was used with another body",
        );
        assert_eq!(
            serde_json::to_value(err.body()).expect("serializes"),
            json!({"error": {"code": "idempotency_key_reused",
                             "message": "key k was used with another body"}})
        );
        let statuses = [
            (ErrorKind::Malformed, 400),
            (ErrorKind::Unauthenticated, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
            (ErrorKind::RequestTimeout, 408),
            (ErrorKind::MethodNotAllowed, 405),
            (ErrorKind::TooLarge, 413),
            (ErrorKind::Invalid, 422),
            (ErrorKind::IdempotencyKeyReused, 422),
            (ErrorKind::RateLimited, 429),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Internal, 500),
        ];
        for (kind, status) in statuses {
            assert_eq!(kind.status().as_u16(), status, "{kind:?}");
            let response = ApiError::new(kind, "x").into_response();
            assert_eq!(response.status().as_u16(), status);
            let kept = response
                .extensions()
                .get::<ErrorBody>()
                .expect("the body is kept");
            assert_eq!(kept.error.code, kind.code());
        }
        // With a request id (the gateway's), the field is additive: code and message as before.
        let mut body = err.body();
        body.error.request_id = Some("r-1".into());
        assert_eq!(
            serde_json::to_value(&body).expect("serializes"),
            json!({"error": {"code": "idempotency_key_reused",
                             "message": "key k was used with another body", "requestId": "r-1"}})
        );
        let old: ErrorBody = serde_json::from_value(
            json!({"error": {"code": "not_found", "message": "no order \"o-1\""}}),
        )
        .expect("a body without requestId still reads");
        assert_eq!(old.error.request_id, None);
    }

    #[test]
    fn request_ids_are_short_visible_ascii() {
        assert!(valid_request_id(b"4f7c1e0a-9b7d-4c1e-8f0a-2b3c4d5e6f70"));
        assert!(valid_request_id(b"client:trace/42"));
        assert!(valid_request_id(&[b'a'; MAX_REQUEST_ID_LEN]));
        for bad in [
            &b""[..],
            b"has space",
            b"tab\there",
            b"new\nline",
            "caf\u{e9}".as_bytes(),
            &[b'a'; MAX_REQUEST_ID_LEN + 1],
        ] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn bad_bodies_are_4xx_that_name_the_problem() {
        let parse = |s: &str| ApiError::parse_body::<CreateOrderRequest>(s.as_bytes());
        let err = parse("{").expect_err("not JSON");
        assert_eq!(err.kind, ErrorKind::Malformed);
        let err = parse(r#"{"items": [], "coupon": "x"}"#).expect_err("extra field");
        assert!(err.message.contains("coupon"), "{}", err.message);
        let err = parse(r#"{"items": [{"sku": "A"}]}"#).expect_err("missing field");
        assert!(err.message.contains("quantity"), "{}", err.message);
        let big = format!(
            r#"{{"items": [], "pad": "{}"}}"#,
            "x".repeat(MAX_BODY_BYTES)
        );
        assert_eq!(parse(&big).expect_err("too big").kind, ErrorKind::TooLarge);

        let invalid = |s: &str| {
            parse(s)
                .expect("parses")
                .validate()
                .expect_err("invalid")
                .message
        };
        assert!(invalid(r#"{"items": []}"#).contains("at least one"));
        assert!(invalid(r#"{"items": [{"sku": "A", "quantity": 0}]}"#).contains("quantity"));
        assert!(invalid(r#"{"items": [{"sku": "A", "quantity": -3}]}"#).contains("-3"));
        assert!(invalid(r#"{"items": [{"sku": "A", "quantity": 1000000}]}"#).contains("1000"));
        assert!(invalid(r#"{"items": [{"sku": "", "quantity": 1}]}"#).contains("empty"));
        assert!(invalid(r#"{"items": [{"sku": "a b", "quantity": 1}]}"#).contains("letters"));
        assert!(
            invalid(r#"{"items": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]}"#)
                .contains("twice")
        );
        let lines =
            parse(r#"{"items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]}"#)
                .expect("parses")
                .validate()
                .expect("valid");
        assert_eq!(lines, [("A".to_string(), 2), ("B".to_string(), 1)]);
    }

    #[test]
    fn a_sign_up_email_is_checked_by_the_one_rule() {
        let user = |email: &str| CreateUserRequest {
            email: email.into(),
            password: "correct horse".into(),
            name: None,
        };
        assert_eq!(user("Ａlice@Example.com").validate(), Ok(()));
        let err = user("al\u{200D}ice@example.com")
            .validate()
            .expect_err("zero-width joiner");
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.contains("U+200D"), "{}", err.message);
        let err = user("not-an-email").validate().expect_err("shape");
        assert_eq!(
            (err.kind, err.message.starts_with("email")),
            (ErrorKind::Invalid, true),
            "{}",
            err.message
        );
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(validate_idempotency_key("4f7c-11").is_ok());
        assert!(validate_idempotency_key("").is_err());
        assert!(validate_idempotency_key("has space").is_err());
        assert!(validate_idempotency_key(&"k".repeat(256)).is_err());
    }
}
