//! `kms-host attestation verify`: verifies any attestation document file and prints its fields as JSON, or names
//! the step that failed.

use kms_attestation::{AttestError, PcrPolicy, TimeRule, TrustAnchor, VerifiedAttestation, verify};
use std::path::Path;

/// Allowed clock difference for documents from the future.
pub const MAX_SKEW_MS: u64 = 60_000;

/// Why a verification command failed: the document (with its step), or anything else.
#[derive(Debug)]
pub enum Failure {
    /// The document did not verify.
    Document(AttestError),
    /// Bad arguments or unreadable files.
    Usage(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Document(e) => write!(f, "verification failed at step {}: {e}", e.step()),
            Failure::Usage(s) => f.write_str(s),
        }
    }
}

/// The anchor: the simulator root from `sim_root` if given, else the AWS Nitro root.
pub fn anchor(sim_root: Option<&Path>) -> Result<TrustAnchor, Failure> {
    match sim_root {
        Some(p) => {
            let pem = std::fs::read_to_string(p).map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))?;
            TrustAnchor::simulator_pem(&pem).map_err(|e| Failure::Usage(format!("{}: {e}", p.display())))
        }
        None => TrustAnchor::aws_nitro().map_err(Failure::Document),
    }
}

/// The PCR policy of the command-line options.
pub fn policy(expected: Vec<(u32, Vec<u8>)>, allow_debug: bool) -> PcrPolicy {
    let policy = expected.into_iter().fold(PcrPolicy::new(), |p, (n, v)| p.expect(n, v));
    if allow_debug { policy.allow_debug() } else { policy }
}

/// The current time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The fields of a verified document as JSON.
pub fn to_json(v: &VerifiedAttestation) -> serde_json::Value {
    let pcrs: serde_json::Map<String, serde_json::Value> =
        v.pcrs().iter().map(|(i, p)| (i.to_string(), hex::encode(p).into())).collect();
    serde_json::json!({
        "module_id": v.module_id(),
        "timestamp": v.timestamp_ms(),
        "digest": "SHA384",
        "pcrs": pcrs,
        "public_key": v.public_key().map(hex::encode),
        "user_data": v.user_data().map(hex::encode),
        "nonce": v.nonce().map(hex::encode),
        "debug": v.is_debug(),
        "document_sha384": hex::encode(v.document_sha384()),
    })
}

/// Options of `kms-host attestation verify`.
pub struct VerifyArgs<'a> {
    pub file: &'a Path,
    pub at_document_time: bool,
    pub sim_root: Option<&'a Path>,
    pub expected_pcrs: Vec<(u32, Vec<u8>)>,
    pub max_age_secs: u64,
    pub allow_debug: bool,
    pub nonce: Option<Vec<u8>>,
}

/// Runs the command; the JSON to print on success.
pub fn run(args: VerifyArgs<'_>) -> Result<serde_json::Value, Failure> {
    let doc = std::fs::read(args.file).map_err(|e| Failure::Usage(format!("{}: {e}", args.file.display())))?;
    let anchor = anchor(args.sim_root)?;
    let policy = policy(args.expected_pcrs, args.allow_debug);
    let time = if args.at_document_time {
        TimeRule::DocumentTime
    } else {
        TimeRule::Now { now_ms: now_ms(), max_age_ms: args.max_age_secs.saturating_mul(1000), max_skew_ms: MAX_SKEW_MS }
    };
    let verified = verify(&doc, &anchor, &policy, args.nonce.as_deref(), time).map_err(Failure::Document)?;
    Ok(to_json(&verified))
}
