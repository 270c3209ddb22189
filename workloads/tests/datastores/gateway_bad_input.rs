//! Every bad input of issue 6 ("Bad input") through the real gateway in front of the real
//! services: malformed JSON, missing or extra fields, bodies over the limit, bad, expired,
//! wrong-audience and wrong-issuer JWTs, unknown SKUs, quantities <= 0 or absurd, a reused
//! Idempotency-Key with another body, and more. Each must be a 4xx with a JSON error body
//! whose message names the problem; never a 5xx.
//!
//! Needs `DATABASE_URL` (run by `workloads/scripts/integration`):
//! `workloads/scripts/test-datastores up && eval "$(workloads/scripts/test-datastores env)"`.

use crate::gateway_support::{SHOP, error_of, forged, forged_with, send, shop};
use serde_json::json;
use storefront_workloads::{
    auth::domain::{Claims, SigningKeys, TokenIssuer, TokenKind},
    grpc::unix_now,
};

/// `(what, method, path, headers, body, status, error code, a word the message must contain)`.
struct Bad<'a> {
    what: &'a str,
    method: &'a str,
    path: String,
    headers: Vec<(&'a str, String)>,
    body: String,
    status: u16,
    code: &'a str,
    names: &'a str,
}

#[allow(clippy::too_many_arguments)]
fn bad<'a>(
    what: &'a str,
    method: &'a str,
    path: &str,
    headers: &[(&'a str, &str)],
    body: &str,
    status: u16,
    code: &'a str,
    names: &'a str,
) -> Bad<'a> {
    Bad {
        what,
        method,
        path: path.to_string(),
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body: body.to_string(),
        status,
        code,
        names,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_a_4xx_that_names_the_problem() {
    let shop = shop("bad").await;
    let gw = shop.gateway;
    let sku = shop.products[0].sku.clone();
    let user = json!({"email": "bob@example.com", "password": "correct horse battery"});
    let (status, _, _) = send(gw, "POST", "/api/v1/users", &[], &user.to_string()).await;
    assert_eq!(status, 201);
    let (_, _, session) = send(gw, "POST", "/api/v1/sessions", &[], &user.to_string()).await;
    let bearer = format!("Bearer {}", session["token"].as_str().expect("token"));
    let now = unix_now();
    let claims = |aud: &str, iss: &str, exp: i64, kind: TokenKind| Claims {
        iss: iss.into(),
        sub: "u-bob".into(),
        aud: aud.into(),
        iat: now - 10,
        exp,
        kind,
        email: Some("bob@example.com".into()),
    };
    let expired = format!(
        "Bearer {}",
        forged(&claims("storefront", SHOP, now - 3600, TokenKind::User))
    );
    let wrong_aud = format!(
        "Bearer {}",
        forged(&claims("orders", SHOP, now + 600, TokenKind::User))
    );
    let wrong_iss = format!(
        "Bearer {}",
        forged(&claims(
            "storefront",
            "other-shop",
            now + 600,
            TokenKind::User
        ))
    );
    let service = format!(
        "Bearer {}",
        shop.issuer
            .issue_service("gateway", "storefront", now)
            .expect("token")
            .token
    );
    let other_key = TokenIssuer::new(
        SigningKeys::from_seed([99; 32]).expect("key"),
        SHOP,
        600,
        60,
    );
    let unknown_key = format!(
        "Bearer {}",
        other_key
            .issue_user("u-bob", "bob@example.com", now)
            .expect("token")
            .token
    );
    let bad_signature = format!(
        "Bearer {}",
        forged_with(
            &claims("storefront", SHOP, now + 600, TokenKind::User),
            [99; 32]
        )
    );
    let line = |q: &str| format!(r#"{{"items": [{{"sku": "{sku}", "quantity": {q}}}]}}"#);
    let good = line("1");
    let big_padding = "x".repeat(70 * 1024);
    let big_user = format!(r#"{{"email": "a@b.co", "password": "{big_padding}"}}"#);
    let big_order = format!(r#"{{"items": [{{"sku": "{big_padding}", "quantity": 1}}]}}"#);
    let b = bearer.as_str();
    #[rustfmt::skip]
    let mut cases = vec![
        // Malformed JSON.
        bad("not JSON", "POST", "/api/v1/users", &[], "{\"email\": ", 400, "malformed_request", "parse"),
        bad("not JSON", "POST", "/api/v1/sessions", &[], "email=a", 400, "malformed_request", "parse"),
        bad("empty body", "POST", "/api/v1/users", &[], "", 400, "malformed_request", "empty"),
        bad("a JSON array", "POST", "/api/v1/sessions", &[], "[]", 400, "malformed_request", "parse"),
        // Missing and extra fields.
        bad("missing password", "POST", "/api/v1/users", &[], r#"{"email": "a@b.co"}"#, 400, "malformed_request", "password"),
        bad("extra field", "POST", "/api/v1/users", &[], r#"{"email": "a@b.co", "password": "correct horse battery", "admin": true}"#, 400, "malformed_request", "admin"),
        bad("missing email", "POST", "/api/v1/sessions", &[], r#"{"password": "x"}"#, 400, "malformed_request", "email"),
        bad("wrong type", "POST", "/api/v1/users", &[], r#"{"email": 5, "password": "correct horse battery"}"#, 400, "malformed_request", "string"),
        // Semantically invalid sign-up, taken email, wrong password.
        bad("bad email", "POST", "/api/v1/users", &[], r#"{"email": "not-an-email", "password": "correct horse battery"}"#, 422, "invalid_request", "email"),
        bad("short password", "POST", "/api/v1/users", &[], r#"{"email": "c@example.com", "password": "x"}"#, 422, "invalid_request", "password"),
        bad("email taken", "POST", "/api/v1/users", &[], &user.to_string(), 409, "conflict", "bob@example.com"),
        bad("wrong password", "POST", "/api/v1/sessions", &[], r#"{"email": "bob@example.com", "password": "wrong horse battery"}"#, 401, "unauthenticated", "wrong"),
        // Bodies over the limit.
        bad("huge sign-up", "POST", "/api/v1/users", &[], &big_user, 413, "payload_too_large", "limit"),
        // Tokens: none, garbage, bad signature, expired, wrong audience, wrong issuer, service.
        bad("no token", "POST", "/api/v1/orders", &[("idempotency-key", "k")], &good, 401, "unauthenticated", "Bearer"),
        bad("not bearer", "GET", "/api/v1/orders", &[("authorization", "Basic Ym9iOng=")], "", 401, "unauthenticated", "Bearer"),
        bad("garbage token", "GET", "/api/v1/orders", &[("authorization", "Bearer abc.def.ghi")], "", 401, "unauthenticated", "malformed"),
        bad("bad signature", "GET", "/api/v1/orders", &[("authorization", bad_signature.as_str())], "", 401, "unauthenticated", "signature"),
        bad("unknown key", "GET", "/api/v1/orders", &[("authorization", unknown_key.as_str())], "", 401, "unauthenticated", "key"),
        bad("expired", "GET", "/api/v1/orders/o-1", &[("authorization", expired.as_str())], "", 401, "unauthenticated", "expired"),
        bad("wrong audience", "POST", "/api/v1/orders", &[ ("authorization", wrong_aud.as_str()), ("idempotency-key", "k"), ], &good, 401, "unauthenticated", "orders"),
        bad("wrong issuer", "GET", "/api/v1/orders", &[("authorization", wrong_iss.as_str())], "", 401, "unauthenticated", "other-shop"),
        bad("service token", "GET", "/api/v1/orders", &[("authorization", service.as_str())], "", 401, "unauthenticated", "token"),
        // Orders: key, shape, quantities, SKUs.
        bad("no Idempotency-Key", "POST", "/api/v1/orders", &[("authorization", b)], &good, 400, "malformed_request", "Idempotency-Key"),
        bad("long Idempotency-Key", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", &"k".repeat(300))], &good, 400, "malformed_request", "Idempotency-Key"),
        bad("malformed order", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], r#"{"items": [{"sku": "#, 400, "malformed_request", "parse"),
        bad("missing quantity", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], &format!(r#"{{"items": [{{"sku": "{sku}"}}]}}"#), 400, "malformed_request", "quantity"),
        bad("extra order field", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], r#"{"items": [], "coupon": "FREE"}"#, 400, "malformed_request", "coupon"),
        bad("huge order", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], &big_order, 413, "payload_too_large", "limit"),
        bad("no items", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], r#"{"items": []}"#, 422, "invalid_request", "at least one"),
        bad("quantity 0", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], &line("0"), 422, "invalid_request", "quantity"),
        bad("quantity -5", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], &line("-5"), 422, "invalid_request", "-5"),
        bad("quantity absurd", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], &line("1000000000"), 422, "invalid_request", "1000000000"),
        bad("quantity past i64", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], &line("99999999999999999999999"), 400, "malformed_request", "parse"),
        bad("quantity 1.5", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], &line("1.5"), 400, "malformed_request", "parse"),
        bad("quantity \"2\"", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], &line("\"2\""), 400, "malformed_request", "parse"),
        bad("unknown SKU", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], r#"{"items": [{"sku": "SKU-NOPE-1", "quantity": 1}]}"#, 422, "invalid_request", "SKU-NOPE-1"),
        bad("bad SKU", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], r#"{"items": [{"sku": "a b", "quantity": 1}]}"#, 422, "invalid_request", "sku"),
        bad("SKU twice", "POST", "/api/v1/orders", &[("authorization", b), ("idempotency-key", "k")], &format!( r#"{{"items": [{{"sku": "{sku}", "quantity": 1}}, {{"sku": "{sku}", "quantity": 1}}]}}"#),
        422,
        "invalid_request",
        "twice",
        ),
        // Reads of things that do not exist.
        bad("unknown product", "GET", "/api/v1/products/SKU-NOPE-1", &[], "", 404, "not_found", "SKU-NOPE-1"),
        bad("unknown stock", "GET", "/api/v1/inventory/SKU-NOPE-1", &[], "", 404, "not_found", "SKU-NOPE-1"),
        bad("not a SKU", "GET", "/api/v1/inventory/a%20b", &[], "", 404, "not_found", "SKU"),
        bad("unknown order", "GET", "/api/v1/orders/o-nope", &[("authorization", b)], "", 404, "not_found", "o-nope"),
        // Query parameters.
        bad("limit 0", "GET", "/api/v1/products?limit=0", &[], "", 422, "invalid_request", "limit"),
        bad("limit huge", "GET", "/api/v1/products?limit=100000", &[], "", 422, "invalid_request", "limit"),
        bad("limit text", "GET", "/api/v1/products?limit=ten", &[], "", 400, "malformed_request", "limit"),
        bad("unknown parameter", "GET", "/api/v1/products?sort=price", &[], "", 400, "malformed_request", "sort"),
        bad("bad cursor", "GET", "/api/v1/products?cursor=%%%", &[], "", 422, "invalid_request", "cursor"),
        // Routes and methods.
        bad("no route", "GET", "/api/v1/carts", &[], "", 404, "not_found", "/api/v1/carts"),
        bad("wrong method", "DELETE", "/api/v1/orders", &[("authorization", b)], "", 405, "method_not_allowed", "DELETE"),
    ];
    // The same Idempotency-Key with another body: first a good order, then a changed one.
    let (status, _, first) = send(
        gw,
        "POST",
        "/api/v1/orders",
        &[("authorization", b), ("idempotency-key", "reused")],
        &good,
    )
    .await;
    assert_eq!(status, 202, "{first}");
    cases.push(bad(
        "key reused, other body",
        "POST",
        "/api/v1/orders",
        &[("authorization", b), ("idempotency-key", "reused")],
        &line("2"),
        422,
        "idempotency_key_reused",
        "reused",
    ));

    let mut failures = vec![];
    for case in &cases {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, json) = send(gw, case.method, &case.path, &headers, &case.body).await;
        let (code, message) = error_of(&json);
        let ok = status == case.status
            && code == case.code
            && message.to_lowercase().contains(&case.names.to_lowercase())
            && (400..500).contains(&status);
        if !ok {
            failures.push(format!(
                "{}: {} {} → {status} {json} (want {} {} naming {:?})",
                case.what, case.method, case.path, case.status, case.code, case.names
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs answered wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The reused key still answers its first order.
    let (status, _, again) = send(
        gw,
        "POST",
        "/api/v1/orders",
        &[("authorization", b), ("idempotency-key", "reused")],
        &good,
    )
    .await;
    assert_eq!((status, &again), (202, &first));
}
