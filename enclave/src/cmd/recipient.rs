//! The `Recipient` parameter of Decrypt, GenerateDataKey and GenerateRandom: the caller's attestation document is
//! verified against this world's trust anchor (AWS's Nitro root in production, the simulator's root in simulator
//! mode), its age bounded, its PCRs handed to the key policy as `kms:RecipientAttestation:*`, and the response's
//! secret encrypted to the document's public key (`CiphertextForRecipient`), never returned in plaintext.
//!
//! Beyond AWS: a document whose nonce is one this service issued (`EnclaveKms.GetRecipientNonce`) has it redeemed
//! once, and the policy sees `enclavekms:RecipientServerNonce` = `true` (else `false`), so a key policy can require
//! replay protection. The nonce is only checked (ours, unexpired, unused) before the key policy is evaluated; it is
//! redeemed when the answer is sealed, after authorization, so a caller the policy refuses cannot spend nonces or fill
//! the book.

use super::{Blob, required, respond};
use crate::access::principals::Caller;
pub use crate::crypto::recipient::Binding;
use crate::crypto::recipient::nonce::{NonceBook, NonceError};
use crate::crypto::recipient::{KeyEncryptionAlgorithm, RecipientError};
use crate::error::Error;
use crate::service::Service;
use kms_attestation::{PcrPolicy, TimeRule, VerifiedAttestation};
use serde::{Deserialize, Serialize};

/// Largest AttestationDocument AWS accepts.
pub const MAX_DOCUMENT: usize = 262_144;
/// Oldest Recipient document accepted, by its timestamp.
pub const MAX_AGE_MS: u64 = 5 * 60 * 1000;
/// How far a document's timestamp may be ahead of our clock.
pub const MAX_SKEW_MS: u64 = 60 * 1000;
/// The condition key that tells whether the document carried a nonce this service issued and had not seen.
pub const SERVER_NONCE_KEY: &str = "enclavekms:RecipientServerNonce";

/// `Recipient` as it arrives.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecipientInfo {
    key_encryption_algorithm: Option<String>,
    attestation_document: Option<Blob>,
}

/// A Recipient whose document verified.
pub struct Verified {
    alg: KeyEncryptionAlgorithm,
    doc: VerifiedAttestation,
    server_nonce: bool,
    caller_arn: String,
}

impl Verified {
    /// Adds the Recipient's condition keys.
    pub fn conditions(&self, c: &mut crate::access::authz::Conditions<'_>) {
        c.recipient(Some(self.doc.pcrs()));
        c.set(SERVER_NONCE_KEY, if self.server_nonce { "true" } else { "false" });
    }

    /// Redeems the document's server nonce, if it has one, and encrypts `plaintext` to the document's public key,
    /// bound (HPKE) to `binding`. Call it only once the request is authorized: redemption spends the nonce.
    pub fn seal(&self, svc: &Service, binding: Binding<'_>, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        if self.server_nonce {
            let nonce = self.doc.nonce().unwrap_or_default();
            svc.nonces.redeem(nonce, svc.clock.now_unix()).map_err(|e| nonce_error(&self.caller_arn, e))?;
        }
        let spki = self.doc.public_key().ok_or_else(no_public_key)?;
        let aad = binding.aad();
        crate::crypto::recipient::seal(self.alg, spki, self.doc.document_sha384(), &aad, plaintext).map_err(|e| match e
        {
            RecipientError::Internal => Error::Internal("sealing for the recipient failed".into()),
            other => Error::Validation(format!("Recipient: {other}")),
        })
    }
}

fn nonce_error(caller_arn: &str, e: NonceError) -> Error {
    match e {
        NonceError::Busy => Error::LimitExceeded(format!("Recipient: {e}")),
        other => Error::AccessDenied(format!("User: {caller_arn} is not authorized: {other}")),
    }
}

fn no_public_key() -> Error {
    Error::Validation("Recipient: the attestation document has no public key".into())
}

/// Verifies a request's Recipient, if it has one. Shape errors are `ValidationException`; a document that does not
/// verify (signature, chain, anchor, age, a server nonce forged, expired or replayed) is `AccessDeniedException`,
/// since it proves nothing about the caller.
pub fn verify(svc: &Service, caller: &Caller, info: Option<RecipientInfo>) -> Result<Option<Verified>, Error> {
    let Some(info) = info else { return Ok(None) };
    let alg = match info.key_encryption_algorithm.as_deref() {
        None => KeyEncryptionAlgorithm::RsaesOaepSha256,
        Some(a) => KeyEncryptionAlgorithm::parse(a).ok_or_else(|| {
            super::constraint(
                a,
                "recipient.keyEncryptionAlgorithm",
                "Member must satisfy enum value set: [RSAES_OAEP_SHA_256, HPKE_DHKEM_P384_HKDF_SHA384_AES_256_GCM]",
            )
        })?,
    };
    let doc = required(info.attestation_document, "recipient.attestationDocument")?.0;
    super::check_len(doc.len(), "recipient.attestationDocument", MAX_DOCUMENT)?;
    // The lifecycle clock: the wall clock in production; simulator tests move it to make a document stale.
    let now_ms = u64::try_from(svc.clock.now_ms()).unwrap_or(0);
    let time = TimeRule::Now { now_ms, max_age_ms: MAX_AGE_MS, max_skew_ms: MAX_SKEW_MS };
    // Debug-mode documents verify (as AWS accepts them); their all-zero PCRs match no production policy.
    let policy = PcrPolicy::new().allow_debug();
    let doc = svc.recipient_verifier.verify(&doc, &policy, None, time).map_err(|e| {
        tracing::info!(caller = %caller.arn(), step = e.step(), error = %e, "Recipient document refused");
        Error::AccessDenied(format!(
            "User: {} is not authorized: the attestation document in the Recipient parameter is not valid ({})",
            caller.arn(),
            e.step()
        ))
    })?;
    if doc.public_key().is_none() {
        return Err(no_public_key());
    }
    // Checked now (a forged, expired or spent nonce is refused before anything else), redeemed in `seal`.
    let server_nonce = match doc.nonce() {
        Some(n) if NonceBook::is_ours(n) => {
            svc.nonces.check(n, svc.clock.now_unix()).map_err(|e| nonce_error(caller.arn(), e))?;
            true
        }
        _ => false,
    };
    Ok(Some(Verified { alg, doc, server_nonce, caller_arn: caller.arn().to_owned() }))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct NonceResponse<'a> {
    #[serde(serialize_with = "super::b64")]
    nonce: &'a [u8],
    expires_at: u64,
}

/// `EnclaveKms.GetRecipientNonce`: a single-use nonce, valid for five minutes, for the caller's next attestation
/// document. Principals of the service's own account only (as GenerateRandom), at most
/// [`MAX_OUTSTANDING_PER_PRINCIPAL`](crate::crypto::recipient::nonce::MAX_OUTSTANDING_PER_PRINCIPAL) unexpired ones
/// per principal.
pub fn get_nonce(svc: &Service, caller: &Caller) -> Result<Vec<u8>, Error> {
    crate::access::authz::authorize_account(svc, caller, "enclavekms:GetRecipientNonce")?;
    let now = svc.clock.now_unix();
    let nonce = svc.nonces.issue(caller.arn(), now).map_err(|e| match e {
        NonceError::Busy => Error::LimitExceeded(format!(
            "Too many unexpired recipient nonces for {}; use or let expire the ones issued",
            caller.arn()
        )),
        other => Error::Internal(format!("nonce issue: {other}")),
    })?;
    respond(NonceResponse { nonce: &nonce, expires_at: now + crate::crypto::recipient::nonce::NONCE_TTL_SECS })
}
