//! Sign and Verify with an asymmetric SIGN_VERIFY key.

use super::{Blob, SecretBlob, authorized, b64, check_grant_tokens, check_len, constraint, required, respond};
use crate::access::principals::Caller;
use crate::crypto::asym::{AsymError, MessageType, SigningAlgorithm};
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::{Key, KeyUsage};
use serde::{Deserialize, Serialize};

/// Largest Message of Sign and Verify.
pub const MAX_MESSAGE: usize = 4096;
/// Largest Signature of Verify.
pub const MAX_SIGNATURE: usize = 6144;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    message: Option<SecretBlob>,
    message_type: Option<String>,
    signing_algorithm: Option<String>,
    signature: Option<Blob>,
    grant_tokens: Option<Vec<String>>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SignResponse<'a> {
    key_id: &'a str,
    #[serde(serialize_with = "b64")]
    signature: &'a [u8],
    signing_algorithm: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyResponse<'a> {
    key_id: &'a str,
    signature_valid: bool,
    signing_algorithm: &'static str,
}

/// The members Sign and Verify share, checked.
struct Checked {
    key_id: String,
    message: SecretBlob,
    message_type: MessageType,
    alg: SigningAlgorithm,
}

fn check(req: &mut Request) -> Result<Checked, Error> {
    let key_id = required(req.key_id.take(), "keyId")?;
    let message = required(req.message.take(), "message")?;
    check_len(message.0.len(), "message", MAX_MESSAGE)?;
    let message_type = match req.message_type.as_deref() {
        None => MessageType::Raw,
        Some(t) => MessageType::from_name(t).ok_or_else(|| {
            constraint(t, "messageType", "Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]")
        })?,
    };
    let alg = required(req.signing_algorithm.as_deref(), "signingAlgorithm")?;
    let alg = SigningAlgorithm::from_name(alg).ok_or_else(|| {
        constraint(
            alg,
            "signingAlgorithm",
            "Member must satisfy enum value set: [RSASSA_PSS_SHA_256, RSASSA_PSS_SHA_384, RSASSA_PSS_SHA_512, \
             RSASSA_PKCS1_V1_5_SHA_256, RSASSA_PKCS1_V1_5_SHA_384, RSASSA_PKCS1_V1_5_SHA_512, ECDSA_SHA_256, \
             ECDSA_SHA_384, ECDSA_SHA_512, SM2DSA, ML_DSA_SHAKE_256]",
        )
    })?;
    if message_type == MessageType::Digest && message.0.len() != alg.digest_len() {
        return Err(Error::Validation(format!(
            "Digest is invalid length for algorithm {}: expected {} bytes for message type DIGEST",
            alg.name(),
            alg.digest_len()
        )));
    }
    check_grant_tokens(&req.grant_tokens)?;
    Ok(Checked { key_id, message, message_type, alg })
}

/// The key's private half, if it is a SIGN_VERIFY key offering `alg`.
fn signing_key<'k>(
    key: &'k Key,
    alg: SigningAlgorithm,
    op: &str,
) -> Result<&'k crate::crypto::asym::PrivateKey, Error> {
    if key.meta.key_usage != KeyUsage::SignVerify {
        return Err(super::wrong_usage(key, op));
    }
    let pair = key.pair().ok_or_else(|| super::wrong_usage(key, op))?;
    if !pair.spec().signing_algorithms().contains(&alg) {
        return Err(Error::InvalidKeyUsage(format!(
            "Algorithm {} is incompatible with key spec {}.",
            alg.name(),
            pair.spec().name()
        )));
    }
    Ok(pair)
}

fn crypto_error(e: AsymError) -> Error {
    match e {
        AsymError::DigestLength => Error::Validation("Digest is invalid length for the signing algorithm".into()),
        AsymError::AlgorithmMismatch => Error::InvalidKeyUsage("The algorithm is incompatible with the key".into()),
        _ => Error::Internal(format!("signature operation: {e}")),
    }
}

pub async fn sign(svc: &Service, caller: &Caller, mut req: Request) -> Result<Vec<u8>, Error> {
    let c = check(&mut req)?;
    let key = authorized(svc, caller, &c.key_id, "kms:Sign", |p| {
        p.set("kms:SigningAlgorithm", c.alg.name()).set("kms:MessageType", c.message_type.name());
    })
    .await?;
    key.check_usable()?;
    let pair = signing_key(&key, c.alg, "Sign")?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let signature = pair.sign(c.alg, c.message_type, &c.message.0).map_err(crypto_error)?;
    respond(SignResponse { key_id: &key.arn, signature: &signature, signing_algorithm: c.alg.name() })
}

pub async fn verify(svc: &Service, caller: &Caller, mut req: Request) -> Result<Vec<u8>, Error> {
    let c = check(&mut req)?;
    let signature = required(req.signature.take(), "signature")?.0;
    check_len(signature.len(), "signature", MAX_SIGNATURE)?;
    let key = authorized(svc, caller, &c.key_id, "kms:Verify", |p| {
        p.set("kms:SigningAlgorithm", c.alg.name()).set("kms:MessageType", c.message_type.name());
    })
    .await?;
    key.check_usable()?;
    let pair = signing_key(&key, c.alg, "Verify")?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    if !pair.verify(c.alg, c.message_type, &c.message.0, &signature).map_err(crypto_error)? {
        return Err(Error::KmsInvalidSignature);
    }
    respond(VerifyResponse { key_id: &key.arn, signature_valid: true, signing_algorithm: c.alg.name() })
}
