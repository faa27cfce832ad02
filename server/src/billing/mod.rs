//! Billing with Stripe: every server is a monthly subscription at its plan's catalog price.
//!
//! The flow: creating a server writes its row `awaiting_payment` and opens a Stripe Checkout Session for it
//! (nothing is provisioned before payment); Stripe's signed webhooks then move the server through the shared
//! state machine ([`catalog::ServerStatus::on_payment`]): paid → `pending` (the reconciler provisions it), payment
//! failed or subscription ended → `expired` with a grace period (the reconciler stops it, and deletes it when the
//! grace period is over), paid again within it → `pending` with its data. Deleting a server cancels its
//! subscription at Stripe before anything else is removed, retried until Stripe confirms.
//!
//! This module is the Stripe side: customers, checkouts, cancelling, the portal and price sync. The server rows
//! are written by [`crate::servers::ServerService`], the one home of the `servers` table.

pub mod routes;
pub mod stripe;
pub mod webhook;

use std::time::Duration;

use app::error::AppError;
use catalog::account::User;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::Row as _;

use self::stripe::{CheckoutRequest, CheckoutState, StripeApi, StripeApiError, lookup_key};
use crate::db::Db;
use crate::error::internal;
use crate::servers::Desired;

/// How long an unpaid server waits for its first payment before it is deleted (Stripe's Checkout Sessions
/// expire after 24 h).
pub const CHECKOUT_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// How long an expired server's data is kept for a late payment.
pub const GRACE_PERIOD: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// `SPAWNPOINT_BILLING=stripe` and its keys.
#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `STRIPE_SECRET_KEY`.
    pub secret_key: SecretString,
    /// `STRIPE_WEBHOOK_SECRET`: the signing secret of the webhook endpoint (`whsec_…`).
    pub webhook_secret: SecretString,
    /// `STRIPE_API_BASE` (default `https://api.stripe.com`).
    pub api_base: String,
}

pub struct Billing {
    api: StripeApi,
    db: Db,
    webhook_secret: SecretString,
    /// Where Stripe sends the customer back to.
    public_url: String,
}

impl Billing {
    pub fn new(config: &StripeConfig, db: Db, public_url: &str) -> Result<Self, String> {
        Ok(Self {
            api: StripeApi::new(&config.secret_key, &config.api_base)?,
            db,
            webhook_secret: config.webhook_secret.clone(),
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Checks a webhook's signature against the endpoint's secret, at the current (system) time.
    pub fn verify(&self, header: &str, body: &[u8]) -> Result<(), webhook::SignatureError> {
        let secret = self.webhook_secret.expose_secret().as_bytes();
        webhook::verify(header, body, secret, crate::db::now(), webhook::TOLERANCE)
    }

    /// Marks `event` as handled; `false` if it already was (a redelivery). The mark comes first so that two
    /// deliveries at once do not both act; [`Billing::release`] takes it back when handling fails.
    pub async fn claim(&self, event: &webhook::Event) -> Result<bool, AppError> {
        let claimed = sqlx::query(
            "INSERT INTO stripe_events (id, type, created, received_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.id.clone())
        .bind(event.kind.clone())
        .bind(event.created)
        .bind(crate::db::now())
        .execute(self.db.pool())
        .await
        .map_err(|e| internal("recording a Stripe event", e))?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Forgets that `event_id` was handled, so its redelivery is handled again.
    pub async fn release(&self, event_id: &str) {
        let released = sqlx::query("DELETE FROM stripe_events WHERE id = $1")
            .bind(event_id.to_owned())
            .execute(self.db.pool())
            .await;
        if let Err(error) = released {
            internal("forgetting a Stripe event", error);
        }
    }

    /// Opens a Checkout Session for the user's new server `server_id` on `game`'s `plan`; returns it.
    pub async fn checkout(
        &self,
        user: &User,
        server_id: &str,
        game: &str,
        plan: &str,
    ) -> Result<stripe::Checkout, AppError> {
        let key = lookup_key(game, plan);
        let price = self.api.price(&key).await.map_err(unavailable)?.ok_or_else(|| {
            tracing::error!(lookup_key = %key, "no Stripe price for this plan; run `spawnpoint stripe sync`");
            AppError::Unavailable("this plan cannot be bought right now; the operator has been told".into())
        })?;
        let customer = self.customer(user).await?;
        let server_url = format!("{}/servers/{server_id}", self.public_url);
        let request = CheckoutRequest {
            customer: &customer,
            price: &price,
            server_id,
            user_id: &user.id,
            success_url: format!("{server_url}?checkout=done"),
            cancel_url: server_url,
        };
        self.api.create_checkout(&request).await.map_err(unavailable)
    }

    /// The user's Stripe customer, created on their first checkout and reused after.
    async fn customer(&self, user: &User) -> Result<String, AppError> {
        if let Some(customer) = self.stored_customer(&user.id).await? {
            return Ok(customer);
        }
        let created = self.api.create_customer(&user.id, &user.email).await.map_err(unavailable)?;
        // Two first checkouts at once get the same customer from Stripe (idempotency key), so whichever write
        // wins stores the same id.
        sqlx::query("UPDATE users SET stripe_customer_id = $1 WHERE id = $2 AND stripe_customer_id IS NULL")
            .bind(created.clone())
            .bind(user.id.clone())
            .execute(self.db.pool())
            .await
            .map_err(|e| internal("storing a Stripe customer", e))?;
        Ok(self.stored_customer(&user.id).await?.unwrap_or(created))
    }

    pub async fn stored_customer(&self, user_id: &str) -> Result<Option<String>, AppError> {
        sqlx::query("SELECT stripe_customer_id FROM users WHERE id = $1")
            .bind(user_id.to_owned())
            .fetch_optional(self.db.pool())
            .await
            .and_then(|row| row.map(|row| row.try_get::<Option<String>, _>("stripe_customer_id")).transpose())
            .map(Option::flatten)
            .map_err(|e| internal("reading a Stripe customer", e))
    }

    /// A Customer Portal link for the user (payment methods, invoices).
    pub async fn portal(&self, user: &User) -> Result<String, AppError> {
        let customer = self.stored_customer(&user.id).await?.ok_or_else(|| {
            AppError::NotFound("there is nothing to manage yet: you have not paid for a server".into())
        })?;
        let back = format!("{}/billing", self.public_url);
        self.api.portal(&customer, &back).await.map_err(unavailable)
    }

    /// Ends what a deleted server has at Stripe, so it is never billed again: its subscription is cancelled, or
    /// its unpaid checkout closed (and if that checkout was paid meanwhile, the subscription it made is
    /// cancelled). An error is for the caller to retry.
    pub async fn settle(&self, row: &Desired) -> Result<(), StripeApiError> {
        let mut subscription = row.subscription.clone();
        if subscription.is_none()
            && let Some(session) = &row.checkout_session
            && let CheckoutState::Complete { subscription: paid } = self.api.expire_checkout(session).await?
        {
            subscription = paid;
        }
        if let Some(subscription) = &subscription {
            self.api.cancel_subscription(subscription).await?;
            tracing::info!(server = %row.id, %subscription, "subscription cancelled");
        }
        Ok(())
    }
}

/// A Stripe failure as the user sees it; the cause goes to the log.
fn unavailable(error: StripeApiError) -> AppError {
    tracing::warn!(%error, "a Stripe request failed");
    AppError::Unavailable("the payment provider cannot be reached; try again in a minute".into())
}
