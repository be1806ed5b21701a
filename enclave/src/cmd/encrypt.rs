//! Encrypt.

use super::{
    Context, EncryptionAlgorithm, SecretBlob, authorized, b64, check_context, check_grant_tokens, check_len,
    parse_encryption_algorithm, refuse_context, required, respond,
};
use crate::access::principals::Caller;
use crate::crypto::asym;
use crate::crypto::blob::{self, BlobHeader};
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::KeyUsage;
use serde::{Deserialize, Serialize};

/// Largest plaintext Encrypt takes.
pub const MAX_PLAINTEXT: usize = 4096;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    plaintext: Option<SecretBlob>,
    encryption_context: Context,
    grant_tokens: Option<Vec<String>>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    #[serde(serialize_with = "b64")]
    ciphertext_blob: &'a [u8],
    key_id: &'a str,
    encryption_algorithm: &'static str,
}

/// Encrypts under the newest backing key of `key` (shared with GenerateDataKey).
pub fn seal(key: &crate::state::keys::Key, ctx: &Context, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let (version, backing) = key.current().ok_or_else(|| Error::Internal("key without material".into()))?;
    blob::encrypt_blob(backing, BlobHeader { key_id: key.uuid, key_version: version }, ctx.as_ref(), plaintext)
        .map_err(|_| Error::Internal("encryption failed".into()))
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let plaintext = required(req.plaintext, "plaintext")?;
    check_len(plaintext.0.len(), "plaintext", MAX_PLAINTEXT)?;
    check_context(&req.encryption_context)?;
    check_grant_tokens(&req.grant_tokens)?;
    let alg = parse_encryption_algorithm(&req.encryption_algorithm)?;
    let key = authorized(svc, caller, &key_id, "kms:Encrypt", |c| {
        c.encryption_context(&req.encryption_context).set("kms:EncryptionAlgorithm", alg.name());
    })
    .await?;
    key.check_usable()?;
    if key.meta.key_usage != KeyUsage::EncryptDecrypt {
        return Err(super::wrong_usage(&key, "Encrypt"));
    }
    let blob = match (alg, key.pair()) {
        (EncryptionAlgorithm::Symmetric, None) if key.is_symmetric() => {
            if req.dry_run == Some(true) {
                return Err(Error::DryRunOperation);
            }
            seal(&key, &req.encryption_context, &plaintext.0)?
        }
        (EncryptionAlgorithm::Rsa(a), Some(pair)) => {
            refuse_context(&req.encryption_context)?;
            let max = a.max_plaintext(pair.spec());
            if plaintext.0.len() > max {
                return Err(Error::Validation(format!(
                    "Plaintext is too long: {} with {} takes at most {max} bytes",
                    pair.spec().name(),
                    a.name()
                )));
            }
            if req.dry_run == Some(true) {
                return Err(Error::DryRunOperation);
            }
            asym::encrypt(pair.public_key_der(), a, &plaintext.0)
                .map_err(|e| Error::Internal(format!("RSA encryption: {e}")))?
        }
        _ => {
            return Err(super::incompatible_algorithm(alg.name(), &key));
        }
    };
    respond(Response { ciphertext_blob: &blob, key_id: &key.arn, encryption_algorithm: alg.name() })
}
