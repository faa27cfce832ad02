//! `SPAWNPOINT_BILLING=none`: servers are free within the quota; nothing is ever charged.

use catalog::account::User;
use catalog::{ServerId, UserId};

use super::{Checkout, Event, Open, Payments, PaymentsError, SignatureError};
use crate::orchestrator::BoxFuture;

pub struct NoPayments;

impl Payments for NoPayments {
    fn enabled(&self) -> bool {
        false
    }

    fn checkout<'a>(
        &'a self,
        _user: &'a User,
        _server: &'a ServerId,
        _game: &'a str,
        _plan: &'a str,
    ) -> BoxFuture<'a, Result<Checkout, PaymentsError>> {
        Box::pin(async { Err(PaymentsError::Off) })
    }

    fn settle<'a>(&'a self, open: &'a Open) -> BoxFuture<'a, Result<(), PaymentsError>> {
        // Switched off since the server was paid for: nothing here can reach the provider, and holding the
        // deletion would not help.
        if open.subscription.is_some() || open.checkout_session.is_some() {
            tracing::error!(server = %open.server, "billing is off; cancel this server's subscription at Stripe");
        }
        Box::pin(async { Ok(()) })
    }

    fn has_customer<'a>(&'a self, _user: &'a UserId) -> BoxFuture<'a, Result<bool, PaymentsError>> {
        Box::pin(async { Ok(false) })
    }

    fn portal<'a>(&'a self, _user: &'a User) -> BoxFuture<'a, Result<String, PaymentsError>> {
        Box::pin(async { Err(PaymentsError::Off) })
    }

    fn verify(&self, _signature: &str, _body: &[u8]) -> Option<Result<Event, SignatureError>> {
        None
    }
}
