//! Stripe's webhooks: checking the `Stripe-Signature` header exactly as Stripe's SDKs do, and reading what an
//! event says about a server's subscription, from the payload shapes of current and older API versions.

use catalog::billing::SubscriptionStatus;
use catalog::{Payment, ServerId};
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;

/// How old a signed timestamp may be, in seconds (the SDKs' default).
pub const TOLERANCE: i64 = 300;

/// Why a webhook request was refused. Nothing of it is acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header cannot be read")]
    Malformed,
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1,
    #[error("the signed timestamp is more than {TOLERANCE} s old")]
    TooOld,
    #[error("no v1 signature matches the payload and the webhook secret")]
    Mismatch,
    /// Signed, but not an event envelope.
    #[error("not a Stripe event (id, type, created)")]
    NotAnEvent,
}

/// Checks `header` (`t=<unix>,v1=<hex>[,v1=…][,v0=…]`) against the raw `body`: the HMAC-SHA256 of `"{t}.{body}"`
/// under `secret` must equal one of the `v1` signatures (several appear while a secret is rolled; any match
/// passes), compared in constant time; other schemes (`v0`) and unreadable signatures are ignored; and `t` may
/// be at most `tolerance` seconds before `now` (one-sided, as stripe-node, -go and -python do).
pub fn verify(header: &str, body: &[u8], secret: &[u8], now: i64, tolerance: i64) -> Result<(), SignatureError> {
    if header.trim().is_empty() {
        return Err(SignatureError::Missing);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    let mut has_v1 = false;
    for item in header.split(',') {
        let (key, value) = item.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" => timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => {
                has_v1 = true;
                signatures.extend(hex::decode(value).ok());
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if !has_v1 {
        return Err(SignatureError::NoV1);
    }
    let mac = signed_payload_mac(secret, timestamp, body);
    if !signatures.iter().any(|signature| mac.clone().verify_slice(signature).is_ok()) {
        return Err(SignatureError::Mismatch);
    }
    if tolerance > 0 && now.saturating_sub(timestamp) > tolerance {
        return Err(SignatureError::TooOld);
    }
    Ok(())
}

/// The HMAC-SHA256 state over Stripe's signed payload, `"{timestamp}.{body}"`.
fn signed_payload_mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = hmac(secret);
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac
}

fn hmac(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Lower-case hex HMAC-SHA256 of `message` under `secret`: the primitive under every signature.
pub fn hmac_hex(secret: &[u8], message: &[u8]) -> String {
    let mut mac = hmac(secret);
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// A `Stripe-Signature` header for `body` at `timestamp`, as Stripe sends it (for tests, and for trying a
/// webhook endpoint by hand).
pub fn sign(body: &[u8], secret: &[u8], timestamp: i64) -> String {
    let signature = hex::encode(signed_payload_mac(secret, timestamp, body).finalize().into_bytes());
    format!("t={timestamp},v1={signature}")
}

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
    Change { server_id: server_id.map(ServerId::from), subscription, payment: Some(payment), status: None, period_end }
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

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";

    #[test]
    fn a_signature_made_by_sign_verifies_and_any_change_breaks_it() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, SECRET, 1_000);
        assert_eq!(verify(&header, body, SECRET, 1_000, TOLERANCE), Ok(()));
        assert_eq!(verify(&header, b"{\"id\":\"evt_2\"}", SECRET, 1_000, TOLERANCE), Err(SignatureError::Mismatch));
        assert_eq!(verify(&header, body, b"other", 1_000, TOLERANCE), Err(SignatureError::Mismatch));
        assert_eq!(verify(&header, body, SECRET, 1_301, TOLERANCE), Err(SignatureError::TooOld));
        assert_eq!(verify(&header, body, SECRET, 1_300, TOLERANCE), Ok(()), "300 s is still in time");
    }
}
