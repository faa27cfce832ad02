//! `SPAWNPOINT_BILLING=stripe`: every server is a monthly Stripe subscription at its plan's catalog price.
//!
//! The flow: creating a server opens a Checkout Session for it (nothing is provisioned before payment); Stripe's
//! signed webhooks then say what happened to its subscription, which [`crate::subscriptions`] applies to the
//! server. Deleting a server cancels its subscription here before anything else is removed, retried until
//! Stripe confirms. Each user has one Stripe customer, stored on their account.

use catalog::account::User;
use catalog::{ServerId, UserId};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::Row as _;

use super::stripe_api::{CheckoutRequest, CheckoutState, StripeApi, lookup_key};
use super::{Checkout, Event, Open, Payments, PaymentsError, SignatureError, webhook};
use crate::db::Db;
use crate::orchestrator::BoxFuture;

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

pub struct Stripe {
    api: StripeApi,
    db: Db,
    webhook_secret: SecretString,
    /// Where Stripe sends the customer back to.
    public_url: String,
}

impl Stripe {
    pub fn new(config: &StripeConfig, db: Db, public_url: &str) -> Result<Self, super::stripe_api::StripeApiError> {
        Ok(Self {
            api: StripeApi::new(&config.secret_key, &config.api_base)?,
            db,
            webhook_secret: config.webhook_secret.clone(),
            public_url: public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The user's Stripe customer, created on their first checkout and reused after.
    async fn customer(&self, user: &User) -> Result<String, PaymentsError> {
        if let Some(customer) = self.stored_customer(&user.id).await? {
            return Ok(customer);
        }
        let created = self.api.create_customer(user.id.as_str(), &user.email).await.map_err(PaymentsError::Provider)?;
        // Two first checkouts at once get the same customer from Stripe (idempotency key), so whichever write
        // wins stores the same id.
        sqlx::query("UPDATE users SET stripe_customer_id = $1 WHERE id = $2 AND stripe_customer_id IS NULL")
            .bind(created.clone())
            .bind(user.id.to_string())
            .execute(self.db.pool())
            .await
            .map_err(PaymentsError::Database)?;
        Ok(self.stored_customer(&user.id).await?.unwrap_or(created))
    }

    async fn stored_customer(&self, user: &UserId) -> Result<Option<String>, PaymentsError> {
        sqlx::query("SELECT stripe_customer_id FROM users WHERE id = $1")
            .bind(user.to_string())
            .fetch_optional(self.db.pool())
            .await
            .and_then(|row| row.map(|row| row.try_get::<Option<String>, _>("stripe_customer_id")).transpose())
            .map(Option::flatten)
            .map_err(PaymentsError::Database)
    }

    async fn open_checkout(
        &self,
        user: &User,
        server: &ServerId,
        game: &str,
        plan: &str,
    ) -> Result<Checkout, PaymentsError> {
        let key = lookup_key(game, plan);
        let price = self.api.price(&key).await.map_err(PaymentsError::Provider)?.ok_or(PaymentsError::NoPrice(key))?;
        let customer = self.customer(user).await?;
        let server_url = format!("{}/servers/{server}", self.public_url);
        let request = CheckoutRequest {
            customer: &customer,
            price: &price,
            server_id: server.as_str(),
            user_id: user.id.as_str(),
            success_url: format!("{server_url}?checkout=done"),
            cancel_url: server_url,
        };
        self.api.create_checkout(&request).await.map_err(PaymentsError::Provider)
    }

    async fn end(&self, open: &Open) -> Result<(), PaymentsError> {
        let mut subscription = open.subscription.clone();
        if subscription.is_none()
            && let Some(session) = &open.checkout_session
            && let CheckoutState::Complete { subscription: paid } =
                self.api.expire_checkout(session).await.map_err(PaymentsError::Provider)?
        {
            subscription = paid;
        }
        if let Some(subscription) = &subscription {
            self.api.cancel_subscription(subscription).await.map_err(PaymentsError::Provider)?;
            tracing::info!(server = %open.server, %subscription, "subscription cancelled");
        }
        Ok(())
    }
}

impl Payments for Stripe {
    fn enabled(&self) -> bool {
        true
    }

    fn checkout<'a>(
        &'a self,
        user: &'a User,
        server: &'a ServerId,
        game: &'a str,
        plan: &'a str,
    ) -> BoxFuture<'a, Result<Checkout, PaymentsError>> {
        Box::pin(self.open_checkout(user, server, game, plan))
    }

    fn settle<'a>(&'a self, open: &'a Open) -> BoxFuture<'a, Result<(), PaymentsError>> {
        Box::pin(self.end(open))
    }

    fn has_customer<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, PaymentsError>> {
        Box::pin(async move { Ok(self.stored_customer(user).await?.is_some()) })
    }

    fn portal<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<String, PaymentsError>> {
        Box::pin(async move {
            let customer = self.stored_customer(&user.id).await?.ok_or(PaymentsError::NoCustomer)?;
            let back = format!("{}/billing", self.public_url);
            self.api.portal(&customer, &back).await.map_err(PaymentsError::Provider)
        })
    }

    /// Checks the signature against the endpoint's secret at the current (system) time: webhook timestamps are
    /// transport, not business time.
    fn verify(&self, signature: &str, body: &[u8]) -> Option<Result<Event, SignatureError>> {
        let secret = self.webhook_secret.expose_secret().as_bytes();
        let checked = webhook::verify(signature, body, secret, crate::db::now(), webhook::TOLERANCE)
            .and_then(|()| Event::parse(body).ok_or(SignatureError::NotAnEvent));
        Some(checked)
    }
}
