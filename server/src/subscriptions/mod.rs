//! Servers as paid subscriptions: what a payment does to a server, what each costs, and deleting those whose
//! payment never came.
//!
//! The rules are [`catalog::billing`]'s pure functions; the payment provider is reached through
//! [`Payments`]; the rows are the servers' [`ServerRepo`]. Neither of those knows of this module.

pub mod routes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use app::billing::ssr::BillingPages;
use app::context::BoxFuture;
use app::error::AppError;
use catalog::account::User;
use catalog::billing::{BillingOverview, GRACE_PERIOD_SECS, Subscription, price_plan, product_id};
use catalog::{Catalog, Notice, Payment, ServerStatus};

use crate::billing::{Event, Payments};
use crate::clock::Clock;
use crate::db::now;
use crate::servers::Error;
use crate::servers::repo::{PaymentWrite, ServerRepo, ServerRow};

/// What handling a payment event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The server moved to this state.
    Moved(ServerStatus),
    /// Its subscription's details were recorded; its state stays.
    Recorded,
    /// An event older than one already applied: ignored.
    Stale,
    /// No server has this subscription.
    UnknownServer,
    /// Of a type Spawnpoint does not act on.
    Ignored,
    /// Handled before (a redelivery).
    AlreadyHandled,
}

pub struct Subscriptions {
    repo: Arc<ServerRepo>,
    catalog: Arc<Catalog>,
    payments: Arc<dyn Payments>,
    /// The time deadlines are judged by.
    clock: Clock,
    /// Test-only: while set, a handler dies between recording an event and applying it, as a crash would.
    crash_after_claim: Arc<AtomicBool>,
}

impl Subscriptions {
    pub fn new(
        repo: Arc<ServerRepo>,
        catalog: Arc<Catalog>,
        payments: Arc<dyn Payments>,
        clock: Clock,
        crash_after_claim: Arc<AtomicBool>,
    ) -> Self {
        Self { repo, catalog, payments, clock, crash_after_claim }
    }

    pub fn payments(&self) -> &Arc<dyn Payments> {
        &self.payments
    }

    /// Handles one verified event: records it as handled and applies what it says to its server, in one
    /// transaction, so that an event is either both recorded and applied or neither (a crash in between rolls
    /// both back, and Stripe's redelivery is handled afresh). An event older than one already applied to the
    /// server changes nothing, so late deliveries never roll a server back.
    pub async fn handle(&self, event: &Event) -> Result<Applied, Error> {
        let mut tx = self.repo.db().pool().begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO stripe_events (id, type, created, received_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.id.clone())
        .bind(event.kind.clone())
        .bind(event.created)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(Applied::AlreadyHandled);
        }
        if self.crash_after_claim.load(Ordering::Relaxed) {
            panic!("test fault: the handler stops between recording and applying a Stripe event");
        }
        let Some(change) = event.change() else {
            tx.commit().await?;
            return Ok(Applied::Ignored);
        };
        // Conditional on the state read: when the reconciler moves the server on in between, the event is
        // judged again against the row as it is now.
        for _ in 0..5 {
            let Some(row) = self.repo.find_for_payment(&mut tx, &change).await? else {
                tx.commit().await?;
                return Ok(Applied::UnknownServer);
            };
            if row.billing_event_at.is_some_and(|last| last > event.created) {
                tx.commit().await?;
                return Ok(Applied::Stale);
            }
            // A subscription pays for the plan its price is for: one for another plan (switched at the provider,
            // or a cheaper plan's subscription pointed at this server) is recorded, and its payments count as none
            // until a subscription event shows a price of this plan again.
            let expected = price_plan(&product_id(&row.game), &row.plan);
            let mismatch = match &change.price_plan {
                Some(seen) => (*seen != expected).then(|| seen.clone()),
                None => row.price_mismatch.clone(),
            };
            if let Some(key) = mismatch.as_deref().filter(|_| mismatch != row.price_mismatch) {
                tracing::warn!(server = %row.id, expected, found = key, "subscription price is not the server's plan");
            }
            let payment = match (change.payment, &mismatch) {
                (Some(Payment::Paid), Some(_)) => Some(Payment::Lapsed),
                (payment, _) => payment,
            };
            let next = payment.and_then(|payment| row.billed().after(payment, self.clock.now()));
            let grace_days = GRACE_PERIOD_SECS / 86_400;
            let message = match next.map(|next| next.status) {
                Some(ServerStatus::Expired) if mismatch.is_some() => {
                    Some(Notice::PlanMismatch { grace_days }.to_string())
                }
                Some(ServerStatus::Expired) => Some(Notice::Unpaid { grace_days }.to_string()),
                Some(ServerStatus::Deleted) => Some(Notice::CheckoutAbandoned.to_string()),
                Some(_) => None,
                // Nothing moves: the message stays as it is.
                None => row.status_message.clone(),
            };
            let write = PaymentWrite {
                from: row.status,
                to: next.unwrap_or(row.billed()),
                message,
                change: &change,
                price_mismatch: mismatch.clone(),
                created: event.created,
            };
            let Some(written) = self.repo.write_payment(&mut tx, &row.id, &write).await? else { continue };
            tx.commit().await?;
            self.repo.publish(&written);
            return Ok(match next {
                Some(next) => {
                    tracing::info!(server = %row.id, from = %row.status, to = %next.status, "payment event applied");
                    Applied::Moved(next.status)
                }
                None => Applied::Recorded,
            });
        }
        // Still changing: nothing is recorded, and Stripe delivers the event again later.
        Err(Error::Busy)
    }

    /// Moves an overdue server (unpaid or expired past its deadline) to `deleted`; returns whether it did.
    pub async fn delete_if_overdue(&self, row: &ServerRow) -> Result<bool, sqlx::Error> {
        if !row.billed().overdue(self.clock.now()) {
            return Ok(false);
        }
        let notice = match row.status {
            ServerStatus::AwaitingPayment => Notice::NeverPaid,
            _ => Notice::GraceOver,
        };
        tracing::info!(server = %row.id, status = %row.status, "deleting an overdue server");
        self.repo.transition(&row.id, row.status, ServerStatus::Deleted, Some(&notice), None).await
    }

    /// Whether `row` is due for [`Subscriptions::delete_if_overdue`].
    pub fn overdue(&self, row: &ServerRow) -> bool {
        row.billed().overdue(self.clock.now())
    }

    fn subscription(&self, row: &ServerRow) -> Subscription {
        Subscription {
            server_id: row.id.clone(),
            server_name: row.name.clone(),
            server_status: row.status,
            price_cents: self.catalog.plan(&row.game, &row.plan).map_or(0, |(_, plan)| plan.price_cents),
            game: row.game.clone(),
            plan: row.plan.clone(),
            status: row.subscription_status.clone(),
            renews_at: row.current_period_end,
            delete_after: row.delete_after,
            checkout_url: row.checkout_url(),
        }
    }
}

impl BillingPages for Subscriptions {
    /// The user's servers with what they cost and their subscriptions (the billing page).
    fn overview<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<BillingOverview, AppError>> {
        Box::pin(async move {
            let rows = self.repo.list(Some(&user.id)).await.map_err(Error::from)?;
            let subscriptions = rows
                .iter()
                .filter(|row| row.status != ServerStatus::Deleted)
                .map(|row| self.subscription(row))
                .collect();
            let has_customer = self.payments.has_customer(&user.id).await.map_err(Error::from)?;
            Ok(BillingOverview { enabled: self.payments.enabled(), has_customer, subscriptions })
        })
    }

    /// A customer portal link for the user.
    fn portal<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<String, AppError>> {
        Box::pin(async move { Ok(self.payments.portal(user).await.map_err(Error::from)?) })
    }
}
