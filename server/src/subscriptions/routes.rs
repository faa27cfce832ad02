//! Billing's HTTP surface: `GET /api/billing` (the signed-in user's subscriptions, as the billing page shows
//! them), `POST /api/billing/portal` (a customer portal link) and `POST /webhooks/stripe`, Stripe's signed event
//! deliveries.
//!
//! The webhook answers: 200 once an event is handled, or was before (a redelivery), or is of no concern
//! (logged); 400 for a request whose signature does not verify or that is no event, which changes nothing; 500
//! when handling failed, so that Stripe delivers it again later; 404 with billing off.

use app::billing::ssr::BillingPages as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use catalog::billing::BillingOverview;
use serde_json::json;

use super::Applied;
use crate::auth::middleware::CurrentUser;
use crate::billing::SignatureError;
use crate::error::{Result, log_cause};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/billing", get(overview))
        .route("/api/billing/portal", post(portal))
        .route("/webhooks/stripe", post(stripe_webhook))
}

async fn overview(State(state): State<AppState>, CurrentUser(session): CurrentUser) -> Result<Json<BillingOverview>> {
    Ok(Json(state.subscriptions.overview(&session.user).await?))
}

async fn portal(State(state): State<AppState>, CurrentUser(session): CurrentUser) -> Result<Json<serde_json::Value>> {
    let url = state.subscriptions.portal(&session.user).await?;
    Ok(Json(json!({ "url": url })))
}

async fn stripe_webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    // No session and no Origin here: Stripe's signature is what authenticates the request.
    let signature = headers.get("stripe-signature").and_then(|value| value.to_str().ok()).unwrap_or_default();
    let event = match state.subscriptions.payments().verify(signature, &body) {
        None => return refuse(StatusCode::NOT_FOUND, "billing is off"),
        Some(Err(SignatureError::NotAnEvent)) => {
            return refuse(StatusCode::BAD_REQUEST, "body: not a Stripe event (id, type, created)");
        }
        Some(Err(error)) => {
            tracing::warn!(%error, "Stripe webhook refused");
            return refuse(StatusCode::BAD_REQUEST, &format!("Stripe-Signature: {error}"));
        }
        Some(Ok(event)) => event,
    };
    match state.subscriptions.handle(&event).await {
        Ok(applied) => {
            let (id, kind) = (&event.id, &event.kind);
            match applied {
                Applied::AlreadyHandled => tracing::info!(event = %id, %kind, "Stripe event already handled"),
                Applied::Ignored => {
                    tracing::info!(event = %id, %kind, "Stripe event of a type Spawnpoint does not act on")
                }
                Applied::UnknownServer => tracing::info!(event = %id, %kind, "Stripe event for no server known here"),
                Applied::Stale => tracing::info!(event = %id, %kind, "Stripe event older than one applied; ignored"),
                Applied::Moved(_) | Applied::Recorded => {
                    tracing::info!(event = %id, %kind, ?applied, "Stripe event applied");
                }
            }
            Json(json!({ "received": true })).into_response()
        }
        Err(error) => {
            log_cause(&error);
            tracing::warn!(event = %event.id, "Stripe event not applied; Stripe will deliver it again");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "try again later")
        }
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message } }))).into_response()
}
