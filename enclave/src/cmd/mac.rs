//! GenerateMac and VerifyMac with an HMAC key (GENERATE_VERIFY_MAC).

use super::{Blob, SecretBlob, authorized, b64, check_grant_tokens, check_len, constraint, required, respond};
use crate::access::principals::Caller;
use crate::crypto::asym::MacAlgorithm;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::{Key, KeyUsage};
use serde::{Deserialize, Serialize};

/// Largest Message.
pub const MAX_MESSAGE: usize = 4096;
/// Largest Mac of VerifyMac.
pub const MAX_MAC: usize = 6144;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    message: Option<SecretBlob>,
    mac_algorithm: Option<String>,
    mac: Option<Blob>,
    grant_tokens: Option<Vec<String>>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateResponse<'a> {
    #[serde(serialize_with = "b64")]
    mac: &'a [u8],
    mac_algorithm: &'static str,
    key_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyResponse<'a> {
    key_id: &'a str,
    mac_valid: bool,
    mac_algorithm: &'static str,
}

fn check(req: &mut Request) -> Result<(String, SecretBlob, MacAlgorithm), Error> {
    let key_id = required(req.key_id.take(), "keyId")?;
    let message = required(req.message.take(), "message")?;
    check_len(message.0.len(), "message", MAX_MESSAGE)?;
    let alg = required(req.mac_algorithm.as_deref(), "macAlgorithm")?;
    let alg = MacAlgorithm::from_name(alg).ok_or_else(|| {
        constraint(
            alg,
            "macAlgorithm",
            "Member must satisfy enum value set: [HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512]",
        )
    })?;
    check_grant_tokens(&req.grant_tokens)?;
    Ok((key_id, message, alg))
}

fn mac_key<'k>(key: &'k Key, alg: MacAlgorithm, op: &str) -> Result<&'k crate::crypto::asym::HmacKey, Error> {
    if key.meta.key_usage != KeyUsage::GenerateVerifyMac {
        return Err(super::wrong_usage(key, op));
    }
    let hmac = key.hmac().ok_or_else(|| super::wrong_usage(key, op))?;
    if hmac.spec().algorithm() != alg {
        return Err(Error::InvalidKeyUsage(format!(
            "Algorithm {} is incompatible with key spec {}.",
            alg.name(),
            hmac.spec().name()
        )));
    }
    Ok(hmac)
}

pub async fn generate(svc: &Service, caller: &Caller, mut req: Request) -> Result<Vec<u8>, Error> {
    let (key_id, message, alg) = check(&mut req)?;
    let key = authorized(svc, caller, &key_id, "kms:GenerateMac", |c| {
        c.set("kms:MacAlgorithm", alg.name());
    })
    .await?;
    key.check_usable()?;
    let hmac = mac_key(&key, alg, "GenerateMac")?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let mac = hmac.mac(alg, &message.0).map_err(|e| Error::Internal(format!("mac: {e}")))?;
    respond(GenerateResponse { mac: &mac, mac_algorithm: alg.name(), key_id: &key.arn })
}

pub async fn verify(svc: &Service, caller: &Caller, mut req: Request) -> Result<Vec<u8>, Error> {
    let (key_id, message, alg) = check(&mut req)?;
    let mac = required(req.mac.take(), "mac")?.0;
    check_len(mac.len(), "mac", MAX_MAC)?;
    let key = authorized(svc, caller, &key_id, "kms:VerifyMac", |c| {
        c.set("kms:MacAlgorithm", alg.name());
    })
    .await?;
    key.check_usable()?;
    let hmac = mac_key(&key, alg, "VerifyMac")?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    if !hmac.verify(alg, &message.0, &mac).map_err(|e| Error::Internal(format!("mac: {e}")))? {
        return Err(Error::KmsInvalidMac);
    }
    respond(VerifyResponse { key_id: &key.arn, mac_valid: true, mac_algorithm: alg.name() })
}
