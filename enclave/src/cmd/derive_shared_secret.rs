//! DeriveSharedSecret: ECDH between a KEY_AGREEMENT key's private half and the caller's public key.

use super::{Blob, authorized, check_grant_tokens, check_len, constraint, required, respond};
use crate::access::principals::Caller;
use crate::crypto::asym::AsymError;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::KeyUsage;
use serde::{Deserialize, Serialize};

/// Largest PublicKey.
pub const MAX_PUBLIC_KEY: usize = 8192;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    key_agreement_algorithm: Option<String>,
    public_key: Option<Blob>,
    grant_tokens: Option<Vec<String>>,
    recipient: Option<super::recipient::RecipientInfo>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    key_id: &'a str,
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    shared_secret: Option<&'a [u8]>,
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    ciphertext_for_recipient: Option<&'a [u8]>,
    key_agreement_algorithm: &'static str,
    key_origin: crate::state::keys::Origin,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let alg = required(req.key_agreement_algorithm, "keyAgreementAlgorithm")?;
    if alg != "ECDH" {
        return Err(constraint(&alg, "keyAgreementAlgorithm", "Member must satisfy enum value set: [ECDH]"));
    }
    let public_key = required(req.public_key, "publicKey")?.0;
    check_len(public_key.len(), "publicKey", MAX_PUBLIC_KEY)?;
    check_grant_tokens(&req.grant_tokens)?;
    let recipient = super::recipient::verify(svc, caller, req.recipient)?;
    let key = authorized(svc, caller, &key_id, "kms:DeriveSharedSecret", |c| {
        c.set("kms:KeyAgreementAlgorithm", "ECDH");
        if let Some(r) = &recipient {
            r.conditions(c);
        }
    })
    .await?;
    key.check_usable()?;
    let pair = match key.pair() {
        Some(p) if key.meta.key_usage == KeyUsage::KeyAgreement => p,
        _ => return Err(super::wrong_usage(&key, "DeriveSharedSecret")),
    };
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let secret = pair.derive_shared_secret(&public_key).map_err(|e| match e {
        AsymError::InvalidPublicKey => Error::Validation(format!(
            "PublicKey must be a DER-encoded SubjectPublicKeyInfo of a valid point on the curve of {}",
            pair.spec().name()
        )),
        other => Error::Internal(format!("key agreement: {other}")),
    })?;
    let sealed = recipient
        .as_ref()
        .map(|r| r.seal(svc, super::recipient::Binding { key_id: &key.arn, ciphertext_blob: b"" }, &secret))
        .transpose()?;
    respond(Response {
        key_id: &key.arn,
        shared_secret: if sealed.is_some() { None } else { Some(&secret) },
        ciphertext_for_recipient: sealed.as_deref(),
        key_agreement_algorithm: "ECDH",
        key_origin: key.meta.origin,
    })
}
