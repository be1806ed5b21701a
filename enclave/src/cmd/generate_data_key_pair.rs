//! GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: a fresh key pair whose private half (PKCS#8 DER) is
//! encrypted under a symmetric encryption KMS key exactly as a data key is, so `PrivateKeyCiphertextBlob` decrypts
//! through Decrypt.

use super::{Context, authorized, b64, check_context, check_grant_tokens, constraint, required, respond};
use crate::access::principals::Caller;
use crate::crypto::asym::{self, PairSpec};
use crate::error::Error;
use crate::service::Service;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    key_pair_spec: Option<String>,
    encryption_context: Context,
    grant_tokens: Option<Vec<String>>,
    recipient: Option<super::recipient::RecipientInfo>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    #[serde(serialize_with = "b64")]
    private_key_ciphertext_blob: &'a [u8],
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    private_key_plaintext: Option<&'a [u8]>,
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    ciphertext_for_recipient: Option<&'a [u8]>,
    #[serde(serialize_with = "b64")]
    public_key: &'a [u8],
    key_id: &'a str,
    key_pair_spec: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_material_id: Option<String>,
}

/// The KeyPairSpec member.
fn pair_spec(spec: &str) -> Result<PairSpec, Error> {
    if let Some(s) = PairSpec::from_name(spec) {
        return Ok(s);
    }
    if matches!(spec, "SM2" | "ECC_NIST_EDWARDS25519" | "ML_KEM_512" | "ML_KEM_768" | "ML_KEM_1024") {
        return Err(Error::UnsupportedOperation(format!("KeyPairSpec {spec} is not supported by this key service")));
    }
    Err(constraint(
        spec,
        "keyPairSpec",
        "Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, \
         ECC_NIST_P521, ECC_SECG_P256K1, SM2, ECC_NIST_EDWARDS25519, ML_KEM_512, ML_KEM_768, ML_KEM_1024]",
    ))
}

pub async fn run(svc: &Service, caller: &Caller, req: Request, with_plaintext: bool) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let spec = pair_spec(&required(req.key_pair_spec, "keyPairSpec")?)?;
    check_context(&req.encryption_context)?;
    check_grant_tokens(&req.grant_tokens)?;
    // AWS's GenerateDataKeyPairWithoutPlaintext has no Recipient member: like any unknown member it is ignored there.
    let recipient = if with_plaintext { super::recipient::verify(svc, caller, req.recipient)? } else { None };
    let action = if with_plaintext { "kms:GenerateDataKeyPair" } else { "kms:GenerateDataKeyPairWithoutPlaintext" };
    let key = authorized(svc, caller, &key_id, action, |c| {
        c.encryption_context(&req.encryption_context).set("kms:DataKeyPairSpec", spec.name());
        if let Some(r) = &recipient {
            r.conditions(c);
        }
    })
    .await?;
    key.check_usable()?;
    super::require_symmetric(
        &key,
        if with_plaintext { "GenerateDataKeyPair" } else { "GenerateDataKeyPairWithoutPlaintext" },
    )?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let _ticket = if spec.name().starts_with("RSA_") { Some(svc.keygen.ticket(caller.arn()).await?) } else { None };
    let pair = tokio::task::spawn_blocking(move || asym::generate_pair(spec))
        .await
        .map_err(|_| Error::Internal("key pair generation task failed".into()))?
        .map_err(|e| Error::Internal(format!("key pair generation: {e}")))?;
    let blob = super::encrypt::seal(&key, &req.encryption_context, &pair.private_pkcs8)?;
    let sealed = recipient
        .as_ref()
        .map(|r| {
            r.seal(svc, super::recipient::Binding { key_id: &key.arn, ciphertext_blob: &blob }, &pair.private_pkcs8)
        })
        .transpose()?;
    respond(Response {
        private_key_ciphertext_blob: &blob,
        private_key_plaintext: (with_plaintext && sealed.is_none()).then_some(&pair.private_pkcs8[..]),
        ciphertext_for_recipient: sealed.as_deref(),
        public_key: &pair.public_spki,
        key_id: &key.arn,
        key_pair_spec: spec.name(),
        key_material_id: key.current_material_id(),
    })
}
