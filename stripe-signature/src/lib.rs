//! Stripe's webhook signatures (`Stripe-Signature: t=<unix>,v1=<hex>`), checked exactly as Stripe's SDKs check
//! them. A crate of its own: it is pure computation over untrusted input, which the fuzz targets exercise
//! without building the whole server.

use hmac::{Hmac, Mac as _};
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
