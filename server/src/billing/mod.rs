//! Payments: how servers are paid for. One trait, [`Payments`], with one implementation per provider, chosen by
//! `SPAWNPOINT_BILLING`: [`none`] (servers are free within the quota) and [`stripe`] (a monthly subscription per
//! server).
//!
//! A provider speaks of customers, checkouts and subscriptions only; it never reads or writes the `servers`
//! table. What a payment does to a server is the business of [`crate::subscriptions`], which applies the rules
//! in [`catalog::billing`].

pub mod none;
pub mod stripe;
pub mod stripe_api;
pub mod webhook;

use catalog::account::User;
use catalog::{ServerId, UserId};

use crate::orchestrator::BoxFuture;

pub use self::webhook::{Change, Event, SignatureError};

/// A Checkout Session opened for a new server.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub id: String,
    pub url: String,
}

/// What a deleted server may still have at the provider, to be ended so it is never billed again.
#[derive(Debug, Clone, Default)]
pub struct Open {
    pub server: ServerId,
    pub subscription: Option<String>,
    pub checkout_session: Option<String>,
}

/// Why a payment request failed. Customers read the browser error it converts to, never the provider's words.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("billing is off")]
    Off,
    #[error("no price with lookup key {0}; run `spawnpoint stripe sync`")]
    NoPrice(String),
    #[error("the user has no customer at the payment provider yet")]
    NoCustomer,
    #[error("the payment provider failed")]
    Provider(#[source] stripe_api::StripeApiError),
    #[error("the database failed while recording a customer")]
    Database(#[source] sqlx::Error),
}

impl From<PaymentsError> for app::error::AppError {
    fn from(error: PaymentsError) -> Self {
        use app::error::AppError;
        match error {
            PaymentsError::Off => AppError::NotFound("billing is off: servers here are free".into()),
            PaymentsError::NoCustomer => {
                AppError::NotFound("there is nothing to manage yet: you have not paid for a server".into())
            }
            PaymentsError::NoPrice(_) => {
                crate::error::log_cause(&error);
                AppError::Unavailable("this plan cannot be bought right now; the operator has been told".into())
            }
            PaymentsError::Provider(_) => {
                crate::error::log_cause(&error);
                AppError::Unavailable("the payment provider cannot be reached; try again in a minute".into())
            }
            PaymentsError::Database(_) => {
                crate::error::log_cause(&error);
                AppError::Internal
            }
        }
    }
}

pub trait Payments: Send + Sync + 'static {
    /// Whether servers are paid for at all.
    fn enabled(&self) -> bool;
    /// Opens a Checkout Session for `user`'s new server `server` on `game`'s `plan`.
    fn checkout<'a>(
        &'a self,
        user: &'a User,
        server: &'a ServerId,
        game: &'a str,
        plan: &'a str,
    ) -> BoxFuture<'a, Result<Checkout, PaymentsError>>;
    /// Ends what a deleted server has at the provider: its subscription is cancelled, or its unpaid checkout
    /// closed (and if that was paid meanwhile, the subscription it made is cancelled). An error is retried.
    fn settle<'a>(&'a self, open: &'a Open) -> BoxFuture<'a, Result<(), PaymentsError>>;
    /// Whether `user` has a customer at the provider (the portal then has something to show).
    fn has_customer<'a>(&'a self, user: &'a UserId) -> BoxFuture<'a, Result<bool, PaymentsError>>;
    /// A customer portal link for `user` (payment methods, invoices).
    fn portal<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<String, PaymentsError>>;
    /// Checks a webhook delivery's signature and reads its event; `None` with billing off.
    fn verify(&self, signature: &str, body: &[u8]) -> Option<Result<Event, SignatureError>>;
}
