//! The `Stripe-Signature` header: any header against any body is a verdict, never a panic, and a body only
//! passes with a signature made by the secret.
#![no_main]

use stripe_signature::{SignatureError, TOLERANCE, sign, verify};

const SECRET: &[u8] = b"whsec_fuzz";
const NOW: i64 = 1_700_000_000;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The header, up to the first NUL; the body, after it.
    let (header, body) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let header = String::from_utf8_lossy(header);
    if verify(&header, body, SECRET, NOW, TOLERANCE).is_ok() {
        // Only possible if the header carries the real signature (the fuzzer cannot forge HMAC-SHA256).
        let expected = sign(body, SECRET, header_timestamp(&header));
        let signature = expected.split("v1=").nth(1).expect("v1");
        assert!(header.contains(signature), "accepted a header without the body's signature: {header:?}");
    }
    // A genuine signature of this body always passes; the same with another body never does.
    let genuine = sign(body, SECRET, NOW);
    assert_eq!(verify(&genuine, body, SECRET, NOW, TOLERANCE), Ok(()));
    let mut other = body.to_vec();
    other.push(b'!');
    assert_eq!(verify(&genuine, &other, SECRET, NOW, TOLERANCE), Err(SignatureError::Mismatch));
});

fn header_timestamp(header: &str) -> i64 {
    // The last `t=` counts, as in `verify`.
    let stamps = header.split(',').filter_map(|item| item.trim().strip_prefix("t=")?.parse().ok());
    stamps.last().expect("a verified header has t=")
}
