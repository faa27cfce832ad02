//! Billing as both ends see it: the rules for a paid server's deadlines, a subscription's status at the payment
//! provider, and what the billing page shows.
//!
//! The deadline rules live here, next to the state machine they extend, as pure functions of the server's state,
//! its deadline and the time: creating a server with billing on, applying a payment event, and deciding that an
//! unpaid or lapsed server is overdue are each one function, used by the server and tested here.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::ServerId;
use crate::state::{Payment, ServerStatus};

/// The lookup key of a plan's current monthly price at the payment provider: how Spawnpoint finds the price to
/// sell. It moves to the new price when a plan's price changes, while subscriptions keep the price they have.
pub fn lookup_key(game: &str, plan: &str) -> String {
    format!("spawnpoint:{game}:{plan}")
}

/// The id of a game's product at the payment provider (the provider lets the creator choose it).
pub fn product_id(game: &str) -> String {
    format!("spawnpoint-{game}")
}

/// What a price is for, as Spawnpoint sells it: `<its game's product>/<the plan in its metadata>`. Every price
/// of a plan, old or current, says the same, so this tells whether a subscription pays for a server's plan.
pub fn price_plan(product: &str, plan: &str) -> String {
    format!("{product}/{plan}")
}

/// How long an unpaid server waits for its first payment before it is deleted, in seconds (Stripe's Checkout
/// Sessions expire after 24 h).
pub const CHECKOUT_WINDOW_SECS: i64 = 24 * 60 * 60;
/// How long an expired server's data is kept for a late payment, in seconds.
pub const GRACE_PERIOD_SECS: i64 = 7 * 24 * 60 * 60;

/// A server's billing state: where it is in the state machine and when it is due for deletion (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Billed {
    pub status: ServerStatus,
    pub delete_after: Option<i64>,
}

impl Billed {
    /// A new server at `now`: with billing on it awaits its first payment until the checkout window closes;
    /// without, it is provisioned at once.
    pub fn created(billing: bool, now: i64) -> Self {
        if billing {
            Self { status: ServerStatus::AwaitingPayment, delete_after: Some(now + CHECKOUT_WINDOW_SECS) }
        } else {
            Self { status: ServerStatus::Pending, delete_after: None }
        }
    }

    /// Where `payment`, judged at `now`, takes this server; `None` when it changes nothing.
    ///
    /// The state follows [`ServerStatus::on_payment`]. An expired server comes back only within its grace period;
    /// one that lapses gets a grace period of [`GRACE_PERIOD_SECS`] from now; a paid one has no deadline; an
    /// abandoned checkout keeps its deadline (the server is deleted at once anyway).
    pub fn after(self, payment: Payment, now: i64) -> Option<Self> {
        let next = self.status.on_payment(payment)?;
        let in_grace = self.delete_after.is_none_or(|at| at > now);
        if self.status == ServerStatus::Expired && next == ServerStatus::Pending && !in_grace {
            return None;
        }
        let delete_after = match next {
            ServerStatus::Expired => Some(now + GRACE_PERIOD_SECS),
            ServerStatus::Pending => None,
            _ => self.delete_after,
        };
        Some(Self { status: next, delete_after })
    }

    /// Whether this server is unpaid or expired and its deadline has passed at `now`.
    pub fn overdue(self, now: i64) -> bool {
        matches!(self.status, ServerStatus::AwaitingPayment | ServerStatus::Expired)
            && self.delete_after.is_some_and(|at| at <= now)
    }
}

/// A subscription's status at the payment provider, as Stripe names them; any other is kept as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum SubscriptionStatus {
    Active,
    Trialing,
    Incomplete,
    IncompleteExpired,
    PastDue,
    Unpaid,
    Canceled,
    Paused,
    Unknown(String),
}

impl SubscriptionStatus {
    pub fn as_str(&self) -> &str {
        match self {
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Incomplete => "incomplete",
            SubscriptionStatus::IncompleteExpired => "incomplete_expired",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::Unknown(other) => other,
        }
    }

    /// What this status means for its server: `active`/`trialing` are paid for; `past_due`, `unpaid`,
    /// `canceled`, `incomplete_expired` and `paused` are not; `incomplete` (the first payment under way) and
    /// statuses unknown here are neither.
    pub fn payment(&self) -> Option<Payment> {
        match self {
            SubscriptionStatus::Active | SubscriptionStatus::Trialing => Some(Payment::Paid),
            SubscriptionStatus::PastDue
            | SubscriptionStatus::Unpaid
            | SubscriptionStatus::Canceled
            | SubscriptionStatus::IncompleteExpired
            | SubscriptionStatus::Paused => Some(Payment::Lapsed),
            SubscriptionStatus::Incomplete | SubscriptionStatus::Unknown(_) => None,
        }
    }
}

impl From<String> for SubscriptionStatus {
    fn from(text: String) -> Self {
        match text.as_str() {
            "active" => SubscriptionStatus::Active,
            "trialing" => SubscriptionStatus::Trialing,
            "incomplete" => SubscriptionStatus::Incomplete,
            "incomplete_expired" => SubscriptionStatus::IncompleteExpired,
            "past_due" => SubscriptionStatus::PastDue,
            "unpaid" => SubscriptionStatus::Unpaid,
            "canceled" => SubscriptionStatus::Canceled,
            "paused" => SubscriptionStatus::Paused,
            _ => SubscriptionStatus::Unknown(text),
        }
    }
}

impl From<SubscriptionStatus> for String {
    fn from(status: SubscriptionStatus) -> Self {
        status.as_str().to_owned()
    }
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signed-in user's billing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingOverview {
    /// Whether servers are paid for (Stripe); without billing they are free within the quota.
    pub enabled: bool,
    /// Whether the user has a customer at the payment provider, so the customer portal has something to show.
    pub has_customer: bool,
    pub subscriptions: Vec<Subscription>,
}

/// One server and what it costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub server_id: ServerId,
    pub server_name: String,
    pub server_status: ServerStatus,
    pub game: String,
    pub plan: String,
    /// US cents per month, from the catalog.
    pub price_cents: u32,
    /// The subscription's status at the payment provider; `None` before payment.
    pub status: Option<SubscriptionStatus>,
    /// When the current period ends and the next payment is due (Unix seconds).
    pub renews_at: Option<i64>,
    /// When an unpaid or expired server will be deleted (Unix seconds).
    pub delete_after: Option<i64>,
    /// Where to pay, while the first payment is awaited.
    pub checkout_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServerStatus::*;

    const NOW: i64 = 1_000_000;

    fn billed(status: ServerStatus, delete_after: Option<i64>) -> Billed {
        Billed { status, delete_after }
    }

    #[test]
    fn a_new_server_awaits_payment_for_a_day_only_with_billing() {
        assert_eq!(Billed::created(true, NOW), billed(AwaitingPayment, Some(NOW + 86_400)));
        assert_eq!(Billed::created(false, NOW), billed(Pending, None));
    }

    #[test]
    fn payments_move_servers_and_set_their_deadlines() {
        let unpaid = Billed::created(true, NOW);
        assert_eq!(unpaid.after(Payment::Paid, NOW + 5), Some(billed(Pending, None)));
        assert_eq!(unpaid.after(Payment::CheckoutExpired, NOW), Some(unpaid.with_status(Deleted)));
        assert_eq!(unpaid.after(Payment::Lapsed, NOW), None, "nothing was paid, so nothing lapses");

        let lapsed = billed(Running, None).after(Payment::Lapsed, NOW).expect("lapses");
        assert_eq!(lapsed, billed(Expired, Some(NOW + 7 * 86_400)));
        assert_eq!(lapsed.after(Payment::Paid, NOW + 7 * 86_400 - 1), Some(billed(Pending, None)), "within grace");
        assert_eq!(lapsed.after(Payment::Paid, NOW + 7 * 86_400), None, "the grace period is over");
        assert_eq!(lapsed.after(Payment::Lapsed, NOW + 10), None, "a second failure keeps the first deadline");
        assert_eq!(billed(Deleted, None).after(Payment::Paid, NOW), None, "nothing brings back a deleted server");
    }

    #[test]
    fn only_unpaid_or_expired_servers_past_their_deadline_are_overdue() {
        for status in ServerStatus::ALL {
            let due = billed(status, Some(NOW));
            let expected = matches!(status, AwaitingPayment | Expired);
            assert_eq!(due.overdue(NOW), expected, "{status}");
            assert!(!due.overdue(NOW - 1), "{status} before its deadline");
            assert!(!billed(status, None).overdue(NOW), "{status} without a deadline");
        }
    }

    #[test]
    fn subscription_statuses_round_trip_and_map_to_payments() {
        for text in ["active", "trialing", "incomplete", "incomplete_expired", "past_due", "unpaid", "canceled"] {
            assert_eq!(SubscriptionStatus::from(text.to_owned()).as_str(), text);
        }
        assert_eq!(SubscriptionStatus::from("active".to_owned()).payment(), Some(Payment::Paid));
        assert_eq!(SubscriptionStatus::from("past_due".to_owned()).payment(), Some(Payment::Lapsed));
        assert_eq!(SubscriptionStatus::from("canceled".to_owned()).payment(), Some(Payment::Lapsed));
        assert_eq!(SubscriptionStatus::from("incomplete".to_owned()).payment(), None);
        let future = SubscriptionStatus::from("something_new".to_owned());
        assert_eq!(future, SubscriptionStatus::Unknown("something_new".into()));
        assert_eq!(future.payment(), None);
        assert_eq!(serde_json::to_string(&SubscriptionStatus::PastDue).expect("json"), r#""past_due""#);
    }

    impl Billed {
        fn with_status(self, status: ServerStatus) -> Self {
            Self { status, ..self }
        }
    }
}
