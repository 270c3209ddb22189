//! A shopper of the public API (HTTP/JSON through the gateway), for the e2e tests of the
//! real shop: sign up, sign in, search, order, poll an order until it settles.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

/// One answer: status, the `Storefront-Degraded` header if any, and the JSON body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub degraded: Option<String>,
    pub body: Value,
}

/// A client of one gateway address.
#[derive(Clone)]
pub struct Shopper {
    addr: SocketAddr,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    pub token: Option<String>,
}

impl Shopper {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            token: None,
        }
    }

    /// One request with a 10 s timeout.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<Answer> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = req.body(Full::new(Bytes::from(body)))?;
        let res = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .with_context(|| format!("{method} {path} timed out"))?
            .with_context(|| format!("{method} {path} failed"))?;
        let status = res.status().as_u16();
        let degraded = res
            .headers()
            .get("storefront-degraded")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = res.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            degraded,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// `GET path` with a 10 s timeout: the status and the body as text (`/metrics`).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let req = hyper::Request::builder()
            .uri(format!("http://{}{path}", self.addr))
            .body(Full::new(Bytes::new()))?;
        let res = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .with_context(|| format!("GET {path} timed out"))?
            .with_context(|| format!("GET {path} failed"))?;
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Signs up (201) and signs in (200), keeping the token. A shop that just turned Ready
    /// may answer 503 for a few seconds (Service routes still being programmed): retried for
    /// up to a minute, as a person would; a 409 after such a retry means the first one landed.
    pub async fn sign_up_and_in(&mut self, email: &str) -> anyhow::Result<()> {
        let creds = json!({"email": email, "password": "correct horse battery"});
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut retried = false;
        loop {
            let up = self
                .call("POST", "/api/v1/users", &[], Some(creds.clone()))
                .await?;
            match up.status {
                201 => break,
                409 if retried => break,
                503 if Instant::now() < deadline => {
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                _ => bail!("sign-up answered {}: {}", up.status, up.body),
            }
        }
        let session = self
            .call("POST", "/api/v1/sessions", &[], Some(creds))
            .await?;
        if session.status != 200 {
            bail!("sign-in answered {}: {}", session.status, session.body);
        }
        self.token = session.body["token"].as_str().map(str::to_string);
        Ok(())
    }

    /// Places an order (expects 202) and returns its id.
    pub async fn order(&self, key: &str, items: Value) -> anyhow::Result<String> {
        let placed = self
            .call(
                "POST",
                "/api/v1/orders",
                &[("idempotency-key", key)],
                Some(json!({ "items": items })),
            )
            .await?;
        if placed.status != 202 {
            bail!("POST /orders answered {}: {}", placed.status, placed.body);
        }
        placed.body["orderId"]
            .as_str()
            .map(str::to_string)
            .context("no orderId")
    }

    /// Polls an order until it is no longer PENDING (or `timeout`).
    pub async fn settled(&self, id: &str, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self
                .call("GET", &format!("/api/v1/orders/{id}"), &[], None)
                .await?;
            if got.status == 200 && got.body["status"] != "PENDING" {
                return Ok(got.body);
            }
            if Instant::now() > deadline {
                bail!(
                    "order {id} not settled after {timeout:?}: {} {}",
                    got.status,
                    got.body
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
