//! Recommendations' gRPC adapter (`proto/recommendations.proto`), behind the service-token
//! check.

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};

use super::postgres::PgRecommendations;
use storefront_contracts::proto::recommendations::{
    BoughtTogetherRequest, BoughtTogetherResponse,
    recommendations_server::{Recommendations as RecommendationsApi, RecommendationsServer},
};
use storefront_platform::grpc::RequireServiceToken;
use storefront_platform::request_id::hidden;
use storefront_platform::token::TokenVerifier;

/// This service's name: the audience of the service tokens it accepts.
pub const SERVICE: &str = "recommendations";

/// Who may call each method, by the name its service token proves (the architecture's call
/// graph: the gateway, for product pages); anyone else, and any other method, is refused with `PERMISSION_DENIED`.
pub fn callers(method: &str) -> &'static [&'static str] {
    match method {
        "BoughtTogether" => &["gateway"],
        _ => &[],
    }
}

/// The tonic implementation.
pub struct RecommendationsGrpc {
    store: PgRecommendations,
}

#[tonic::async_trait]
impl RecommendationsApi for RecommendationsGrpc {
    async fn bought_together(
        &self,
        request: Request<BoughtTogetherRequest>,
    ) -> Result<Response<BoughtTogetherResponse>, Status> {
        let r = request.into_inner();
        if r.sku.is_empty() || r.sku.len() > 64 {
            return Err(Status::invalid_argument("sku must be 1..=64 characters"));
        }
        let limit = if r.limit == 0 { 4 } else { i64::from(r.limit) };
        let skus = self.store.top(&r.sku, limit).await.map_err(|e| {
            hidden(
                Code::Unavailable,
                "the recommendations store is unavailable",
                e,
            )
        })?;
        Ok(Response::new(BoughtTogetherResponse { skus }))
    }
}

/// Serves recommendations and gRPC health on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    store: PgRecommendations,
    verifier: Arc<TokenVerifier>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = RecommendationsServer::with_interceptor(
        RecommendationsGrpc { store },
        RequireServiceToken::new(verifier, SERVICE, callers),
    );
    storefront_platform::grpc::serve(listener, service, shutdown).await
}
