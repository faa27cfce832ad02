//! Billing's HTTP surface: `GET /api/billing` (the signed-in user's subscriptions, as the billing page shows
//! them), `POST /api/billing/portal` (a Stripe Customer Portal link) and `POST /webhooks/stripe`, Stripe's signed
//! event deliveries.
//!
//! The webhook
//! answers: 200 once an event is handled, or was before (a redelivery), or is of no concern (logged); 400 for a
//! request whose signature does not verify or that is no event, which changes nothing; 500 when handling
//! failed, so that Stripe delivers it again later; 404 with billing off.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use catalog::billing::BillingOverview;
use serde_json::json;

use super::webhook::Event;
use crate::auth::middleware::CurrentUser;
use crate::error::Result;
use crate::servers::Applied;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/billing", get(overview))
        .route("/api/billing/portal", post(portal))
        .route("/webhooks/stripe", post(stripe_webhook))
}

async fn overview(State(state): State<AppState>, CurrentUser(session): CurrentUser) -> Result<Json<BillingOverview>> {
    Ok(Json(state.servers.billing_overview(&session.user).await?))
}

async fn portal(State(state): State<AppState>, CurrentUser(session): CurrentUser) -> Result<Json<serde_json::Value>> {
    let url = state.servers.billing_portal(&session.user).await?;
    Ok(Json(json!({ "url": url })))
}

async fn stripe_webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    // No session and no Origin here: Stripe's signature is what authenticates the request.
    let Some(billing) = state.servers.billing() else {
        return refuse(StatusCode::NOT_FOUND, "billing is off");
    };
    let signature = headers.get("stripe-signature").and_then(|value| value.to_str().ok()).unwrap_or_default();
    if let Err(error) = billing.verify(signature, &body) {
        tracing::warn!(%error, "Stripe webhook refused");
        return refuse(StatusCode::BAD_REQUEST, &format!("Stripe-Signature: {error}"));
    }
    let Some(event) = Event::parse(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "body: not a Stripe event (id, type, created)");
    };
    match billing.claim(&event).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(event = %event.id, kind = %event.kind, "Stripe event already handled");
            return received();
        }
        Err(_) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "try again later"),
    }
    let Some(change) = event.change() else {
        tracing::info!(event = %event.id, kind = %event.kind, "Stripe event of a type Spawnpoint does not act on");
        return received();
    };
    match state.servers.apply_payment(&change, event.created).await {
        Ok(applied) => {
            match applied {
                Applied::UnknownServer => {
                    tracing::info!(event = %event.id, kind = %event.kind, "Stripe event for no server known here");
                }
                Applied::Stale => {
                    tracing::info!(event = %event.id, kind = %event.kind, "Stripe event older than one applied; ignored");
                }
                Applied::Moved(_) | Applied::Recorded => {
                    tracing::info!(event = %event.id, kind = %event.kind, ?applied, "Stripe event applied");
                }
            }
            received()
        }
        Err(error) => {
            tracing::warn!(event = %event.id, %error, "Stripe event not applied; Stripe will deliver it again");
            billing.release(&event.id).await;
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "try again later")
        }
    }
}

fn received() -> Response {
    Json(json!({ "received": true })).into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message } }))).into_response()
}
