//! Payments' gRPC adapter (`proto/payments.proto`): reads a charge, behind the service-token
//! check. Charges themselves are only ever taken from the bus ([`super::bus`]).

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status};

use super::postgres::PgLedger;
use storefront_contracts::proto::payments::{
    Charge, GetChargeRequest,
    payments_server::{Payments as PaymentsApi, PaymentsServer},
};
use storefront_platform::grpc::RequireServiceToken;
use storefront_platform::request_id::hidden;
use storefront_platform::token::TokenVerifier;

/// This service's name: the audience of the service tokens it accepts.
pub const SERVICE: &str = "payments";

/// Who may call each method, by the name its service token proves (the architecture's call
/// graph: orders alone (the gateway never reads charges)); anyone else, and any other method, is refused with `PERMISSION_DENIED`.
pub fn callers(method: &str) -> &'static [&'static str] {
    match method {
        "GetCharge" => &["orders"],
        _ => &[],
    }
}

/// The tonic implementation.
pub struct PaymentsGrpc {
    ledger: PgLedger,
}

#[tonic::async_trait]
impl PaymentsApi for PaymentsGrpc {
    async fn get_charge(
        &self,
        request: Request<GetChargeRequest>,
    ) -> Result<Response<Charge>, Status> {
        let order_id = request.into_inner().order_id;
        if order_id.is_empty() || order_id.len() > 128 {
            return Err(Status::invalid_argument(
                "order_id must be 1..=128 characters",
            ));
        }
        let row = self
            .ledger
            .get(&order_id)
            .await
            .map_err(|e| hidden(Code::Unavailable, "the payments ledger is unavailable", e))?
            .ok_or_else(|| Status::not_found(format!("no charge for order {order_id}")))?;
        Ok(Response::new(Charge {
            order_id,
            status: row.state.to_ascii_uppercase(),
            amount_cents: row.amount_cents,
            charge_id: row.charge_id.unwrap_or_default(),
            reason: row.reason.unwrap_or_default(),
        }))
    }
}

/// Serves payments and gRPC health on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    ledger: PgLedger,
    verifier: Arc<TokenVerifier>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let service = PaymentsServer::with_interceptor(
        PaymentsGrpc { ledger },
        RequireServiceToken::new(verifier, SERVICE, callers),
    );
    storefront_platform::grpc::serve(listener, service, shutdown).await
}
