//! What the billing page shows: each of the user's servers with its subscription.

use serde::{Deserialize, Serialize};

use crate::state::ServerStatus;

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
    pub server_id: String,
    pub server_name: String,
    pub server_status: ServerStatus,
    pub game: String,
    pub plan: String,
    /// US cents per month, from the catalog.
    pub price_cents: u32,
    /// The subscription's status at the payment provider (`active`, `past_due`, …); `None` before payment.
    pub status: Option<String>,
    /// When the current period ends and the next payment is due (Unix seconds).
    pub renews_at: Option<i64>,
    /// When an unpaid or expired server will be deleted (Unix seconds).
    pub delete_after: Option<i64>,
    /// Where to pay, while the first payment is awaited.
    pub checkout_url: Option<String>,
}
