//! Stripe's webhooks: the `Stripe-Signature` header (checked by the `stripe-signature` crate, exactly as Stripe's
//! SDKs do), and what an event says about a server's subscription, from the payload shapes of current and older
//! API versions.

use catalog::billing::{SubscriptionStatus, price_plan};
use catalog::{Payment, ServerId};
use serde_json::Value;

pub use stripe_signature::{SignatureError, TOLERANCE, hmac_hex, sign, verify};

/// The parts of an event envelope Spawnpoint reads.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub kind: String,
    /// Unix seconds: when Stripe created the event, which orders events that arrive out of order.
    pub created: i64,
    pub object: Value,
}

impl Event {
    /// Reads an event envelope; `None` if it is not one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let envelope: Value = serde_json::from_slice(body).ok()?;
        Some(Self {
            id: envelope["id"].as_str()?.to_owned(),
            kind: envelope["type"].as_str()?.to_owned(),
            created: envelope["created"].as_i64()?,
            object: envelope["data"]["object"].clone(),
        })
    }

    /// What this event says about a server's subscription; `None` for an event Spawnpoint does not act on.
    pub fn change(&self) -> Option<Change> {
        let object = &self.object;
        let change = match self.kind.as_str() {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                // A session paid by a slow method (a bank debit) completes unpaid; its payment comes later.
                let paid = matches!(object["payment_status"].as_str(), Some("paid" | "no_payment_required"));
                Change {
                    server_id: checkout_server(object).map(ServerId::from),
                    subscription: id(&object["subscription"]),
                    payment: paid.then_some(Payment::Paid),
                    ..Change::default()
                }
            }
            "checkout.session.expired" => Change {
                server_id: checkout_server(object).map(ServerId::from),
                payment: Some(Payment::CheckoutExpired),
                ..Change::default()
            },
            "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => {
                let paid = self.kind != "invoice.payment_failed";
                invoice(object, if paid { Payment::Paid } else { Payment::Lapsed })
            }
            "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
                let status = text(&object["status"]).map(SubscriptionStatus::from);
                let payment = if self.kind == "customer.subscription.deleted" {
                    Some(Payment::Lapsed)
                } else {
                    status.as_ref().and_then(SubscriptionStatus::payment)
                };
                Change {
                    server_id: text(&object["metadata"]["server_id"]).map(ServerId::from),
                    subscription: text(&object["id"]),
                    payment,
                    status,
                    price_plan: price_plan_of(&object["items"]["data"][0]["price"]),
                    // Current API versions keep the period on the subscription's items; older ones on itself.
                    period_end: object["current_period_end"]
                        .as_i64()
                        .or_else(|| object["items"]["data"][0]["current_period_end"].as_i64()),
                }
            }
            _ => return None,
        };
        Some(change)
    }
}

/// What an event says about one server's subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The server, when the event's metadata names it (else it is found by `subscription`).
    pub server_id: Option<ServerId>,
    pub subscription: Option<String>,
    pub payment: Option<Payment>,
    /// The subscription's status at Stripe.
    pub status: Option<SubscriptionStatus>,
    /// When the paid period ends.
    pub period_end: Option<i64>,
    /// What the subscription's price is for ([`catalog::billing::price_plan`]), when the event shows it
    /// (subscription events do).
    pub price_plan: Option<String>,
}

/// An invoice of a subscription: where its subscription and metadata are depends on the API version. Since
/// 2025-03 (basil): `parent.subscription_details.{subscription, metadata}`; before: `subscription` and
/// `subscription_details.metadata`; older still, only the line items carry the subscription and its metadata.
fn invoice(object: &Value, payment: Payment) -> Change {
    let details = &object["parent"]["subscription_details"];
    let lines = object["lines"]["data"].as_array().map(Vec::as_slice).unwrap_or_default();
    let server_id = text(&details["metadata"]["server_id"])
        .or_else(|| text(&object["subscription_details"]["metadata"]["server_id"]))
        .or_else(|| lines.iter().find_map(|line| text(&line["metadata"]["server_id"])));
    let subscription = id(&details["subscription"])
        .or_else(|| id(&object["subscription"]))
        .or_else(|| lines.iter().find_map(|line| id(&line["subscription"])));
    let period_end = lines.iter().find_map(|line| line["period"]["end"].as_i64());
    Change {
        server_id: server_id.map(ServerId::from),
        subscription,
        payment: Some(payment),
        period_end,
        ..Change::default()
    }
}

/// What an expanded price is for; one that is not Spawnpoint's (no product or no plan) reads as `/`, which no
/// server's plan is.
fn price_plan_of(price: &Value) -> Option<String> {
    let product = id(&price["product"]).unwrap_or_default();
    price.is_object().then(|| price_plan(&product, &text(&price["metadata"]["plan"]).unwrap_or_default()))
}

/// The server a Checkout Session is for: its `client_reference_id`, else its metadata.
fn checkout_server(session: &Value) -> Option<String> {
    text(&session["client_reference_id"]).or_else(|| text(&session["metadata"]["server_id"]))
}

fn text(value: &Value) -> Option<String> {
    value.as_str().filter(|text| !text.is_empty()).map(str::to_owned)
}

/// An id given either as a string or as an expanded object.
fn id(value: &Value) -> Option<String> {
    text(value).or_else(|| text(&value["id"]))
}
