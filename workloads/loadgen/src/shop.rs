//! The shop as the load generator sees it: an HTTP/1 client of the public API (hyper-util's
//! pooled client, one connection per concurrent request), the setup (users signed up and
//! in, SKUs and search words learned from the listing) and one request per [`Kind`]. Every
//! request may carry the `X-Forwarded-For` of the client it stands for ([`super::identity`]).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt as _;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri, body::Bytes};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{
    identity::{Addresses, Face},
    mix::Kind,
    stats::Outcome,
};

/// The password of every load-generator user.
const PASSWORD: &str = "loadgen correct horse battery";
/// How long setup waits out a shop that is still starting (503s, refused connections).
const SETUP_PATIENCE: Duration = Duration::from_secs(60);

/// Checks `--target` (`http://host:port`, no path) and returns it without a trailing slash.
pub fn parse_target(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('/');
    let uri: Uri = t
        .parse()
        .map_err(|e| format!("invalid target {s:?}: {e} (use e.g. http://127.0.0.1:8080)"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "invalid target {s:?}: only http:// is supported (e.g. http://127.0.0.1:8080)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("invalid target {s:?}: no host"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!(
            "invalid target {s:?}: give the gateway's address only, without a path"
        ));
    }
    Ok(t.to_string())
}

/// One answer: the status and the body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A pre-created user: credentials and a token for orders.
#[derive(Clone, Debug)]
pub struct User {
    pub email: String,
    pub token: String,
    /// The `X-Forwarded-For` it signed up and in with (`--forwarded-for`).
    pub forwarded_for: Option<String>,
}

/// What one arrival does, drawn from the run's generator when it is scheduled.
#[derive(Clone, Debug)]
pub struct Call {
    pub kind: Kind,
    pub method: Method,
    pub path: String,
    pub token: Option<String>,
    pub idempotency_key: Option<String>,
    pub body: Option<String>,
    /// `X-Forwarded-For`, when the run stands for clients behind a proxy.
    pub forwarded_for: Option<String>,
    /// The abusive client's face (`--abusive`), for its report.
    pub face: Option<Face>,
}

/// The client and what setup learned.
pub struct Shop {
    target: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    pub users: Vec<User>,
    pub skus: Vec<String>,
    pub words: Vec<String>,
    /// The `X-Forwarded-For` of set-up requests that are no user's (the catalog listing).
    pub setup_forwarded_for: Option<String>,
}

impl Shop {
    pub fn new(target: &str, timeout: Duration, max_in_flight: usize) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_in_flight)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            target: target.to_string(),
            client,
            timeout,
            users: vec![],
            skus: vec![],
            words: vec![],
            setup_forwarded_for: None,
        }
    }

    /// One request; `Err` is a transport error (refused, reset, timed out), any status is `Ok`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        idempotency_key: Option<&str>,
        forwarded_for: Option<&str>,
        body: Option<String>,
    ) -> Result<Answer> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.target));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        if let Some(addresses) = forwarded_for {
            req = req.header("x-forwarded-for", addresses);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("failed to build a request")?;
        let exchange = async {
            let res = self.client.request(req).await?;
            let status = res.status().as_u16();
            let body = res.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .with_context(|| format!("timed out after {:?}", self.timeout))?
    }

    /// Runs one scheduled call: its outcome and, for a 202 order, the order id.
    pub async fn call(&self, call: &Call) -> (Outcome, Option<String>) {
        match self
            .send(
                call.method.clone(),
                &call.path,
                call.token.as_deref(),
                call.idempotency_key.as_deref(),
                call.forwarded_for.as_deref(),
                call.body.clone(),
            )
            .await
        {
            Ok(a) => {
                let id = (call.kind == Kind::Order && a.status == 202)
                    .then(|| a.json()["orderId"].as_str().map(str::to_string))
                    .flatten();
                (Outcome::Status(a.status), id)
            }
            Err(_) => (Outcome::Transport, None),
        }
    }

    /// A request during setup, retried while the shop is still starting.
    async fn setup_send(
        &self,
        method: Method,
        path: &str,
        forwarded_for: Option<&str>,
        body: Option<Value>,
    ) -> Result<Answer> {
        let deadline = Instant::now() + SETUP_PATIENCE;
        loop {
            let sent = self
                .send(
                    method.clone(),
                    path,
                    None,
                    None,
                    forwarded_for,
                    body.as_ref().map(Value::to_string),
                )
                .await;
            match sent {
                // Not up yet (502/503) or over its budget (429): set-up waits and tries again.
                Ok(a) if !matches!(a.status, 429 | 502 | 503) => return Ok(a),
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Ok(a) => bail!("{method} {path} answered {}", a.status),
                Err(e) => return Err(e).with_context(|| format!("failed to reach {path}")),
            }
        }
    }

    /// Learns up to `want` SKUs (paging the listing) and the words of their names.
    pub async fn learn_catalog(&mut self, want: usize) -> Result<()> {
        let mut cursor = String::new();
        while self.skus.len() < want {
            let limit = (want - self.skus.len()).clamp(1, 100);
            let mut path = format!("/api/v1/products?limit={limit}");
            if !cursor.is_empty() {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let a = self
                .setup_send(
                    Method::GET,
                    &path,
                    self.setup_forwarded_for.as_deref(),
                    None,
                )
                .await?;
            if a.status != 200 {
                bail!(
                    "failed to list products: {path} answered {}: {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                );
            }
            let page = a.json();
            let items = page["items"].as_array().cloned().unwrap_or_default();
            for item in &items {
                if let Some(sku) = item["sku"].as_str() {
                    self.skus.push(sku.to_string());
                }
                for w in item["name"].as_str().unwrap_or_default().split_whitespace() {
                    if w.len() > 2
                        && w.chars().all(char::is_alphanumeric)
                        && !self.words.iter().any(|x| x == w)
                    {
                        self.words.push(w.to_string());
                    }
                }
            }
            match page["next"].as_str() {
                Some(next) if !next.is_empty() && !items.is_empty() => cursor = next.to_string(),
                _ => break,
            }
        }
        if self.skus.is_empty() {
            bail!("failed to learn the catalog: the listing is empty");
        }
        Ok(())
    }

    /// Signs up `n` users (a 409 means one exists from an earlier run) and signs each in;
    /// user `i` is `loadgen-<i>@example.com`, from address `i` of `addresses` when given.
    pub async fn create_users(
        &self,
        n: usize,
        concurrency: usize,
        addresses: Option<&Addresses>,
    ) -> Result<Vec<User>> {
        let mut users = Vec::with_capacity(n);
        let mut pending = futures::stream::iter((0..n).map(|i| async move {
            let email = format!("loadgen-{i}@example.com");
            let forwarded_for = addresses.map(|a| a.nth(i).to_string());
            self.account(email, forwarded_for).await.map(|u| (i, u))
        }))
        .buffer_unordered(concurrency.max(1));
        while let Some(user) = pending.next().await {
            users.push(user?);
        }
        // Shopper i is user i (and address i).
        users.sort_by_key(|(i, _)| *i);
        Ok(users.into_iter().map(|(_, u)| u).collect())
    }

    /// Signs up `email` (409: it exists) and signs it in, as the client `forwarded_for`.
    pub async fn account(&self, email: String, forwarded_for: Option<String>) -> Result<User> {
        let creds = json!({"email": email, "password": PASSWORD});
        let xff = forwarded_for.as_deref();
        let up = self
            .setup_send(Method::POST, "/api/v1/users", xff, Some(creds.clone()))
            .await?;
        if up.status != 201 && up.status != 409 {
            bail!(
                "failed to sign up {email}: {}: {}",
                up.status,
                String::from_utf8_lossy(&up.body)
            );
        }
        let session = self
            .setup_send(Method::POST, "/api/v1/sessions", xff, Some(creds))
            .await?;
        let token = session.json()["token"].as_str().map(str::to_string);
        match (session.status, token) {
            (200, Some(token)) => Ok(User {
                email,
                token,
                forwarded_for,
            }),
            (status, _) => bail!(
                "failed to sign in {email}: {status}: {} (a user of that email from another run with another password?)",
                String::from_utf8_lossy(&session.body)
            ),
        }
    }

    /// The body of a sign-in.
    pub fn sign_in_body(email: &str) -> String {
        json!({"email": email, "password": PASSWORD}).to_string()
    }

    /// `GET /api/v1/orders/{id}`: `Some((status, reason))` once CONFIRMED or CANCELLED.
    pub async fn order_status(
        &self,
        id: &str,
        token: &str,
        forwarded_for: Option<&str>,
    ) -> (Outcome, Option<(String, Option<String>)>) {
        match self
            .send(
                Method::GET,
                &format!("/api/v1/orders/{id}"),
                Some(token),
                None,
                forwarded_for,
                None,
            )
            .await
        {
            Ok(a) => {
                let body = a.json();
                let status = (a.status == 200)
                    .then(|| body["status"].as_str().map(str::to_string))
                    .flatten()
                    .filter(|s| s == "CONFIRMED" || s == "CANCELLED")
                    .map(|s| (s, body["reason"].as_str().map(str::to_string)));
                (Outcome::Status(a.status), status)
            }
            Err(_) => (Outcome::Transport, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked() {
        assert_eq!(
            parse_target("http://10.0.0.1:8080/").as_deref(),
            Ok("http://10.0.0.1:8080")
        );
        for (bad, wanted) in [
            ("https://shop:443", "only http://"),
            ("10.0.0.1:8080", "only http://"),
            ("http://shop:8080/api", "without a path"),
            ("http://", "invalid target"),
            ("not a url", "invalid target"),
        ] {
            let err = parse_target(bad).expect_err(bad);
            assert!(err.contains(wanted), "{bad}: {err}");
        }
    }
}
