//! What several test crates share: where the third-party reference data is, and fakes of outside APIs (Cloudflare,
//! Stripe, the game download services) that the production clients talk to over HTTP on loopback, and real
//! peers that need starting (an S3 server).

pub mod cloudflare;
pub mod downloads;
pub mod s3;
pub mod stripe;

use std::path::PathBuf;

/// The reference directory: `$SPAWNPOINT_REFERENCE`, default `../shared/reference`, a relative path being taken
/// from the repository root (tests run in their crate's directory). `None`, with the reason printed, when it
/// is absent outside CI; under `CI=true` its absence is a failure.
pub fn reference_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let given =
        std::env::var_os("SPAWNPOINT_REFERENCE").map_or_else(|| PathBuf::from("../shared/reference"), PathBuf::from);
    let dir = if given.is_absolute() { given } else { root.join(given) };
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("the reference data is needed under CI and is missing at {}", dir.display());
    }
    eprintln!("skipped: no reference data at {} (set SPAWNPOINT_REFERENCE)", dir.display());
    None
}

/// A JSON file of the reference data, e.g. `cloudflare/error-envelope-examples.json`.
pub fn reference_json(reference: &std::path::Path, file: &str) -> serde_json::Value {
    let path = reference.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
