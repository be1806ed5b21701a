//! Encrypt.

use super::{
    Context, SecretBlob, authorized, b64, check_context, check_grant_tokens, check_len, check_symmetric_algorithm,
    required, respond,
};
use crate::crypto::{self, BlobHeader};
use crate::error::Error;
use crate::principals::Caller;
use crate::service::Service;
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
pub fn seal(key: &crate::keys::Key, ctx: &Context, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let (version, backing) = key.current().ok_or_else(|| Error::Internal("key without material".into()))?;
    crypto::encrypt_blob(backing, BlobHeader { key_id: key.uuid, key_version: version }, ctx.as_ref(), plaintext)
        .map_err(|_| Error::Internal("encryption failed".into()))
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let plaintext = required(req.plaintext, "plaintext")?;
    check_len(plaintext.0.len(), "plaintext", MAX_PLAINTEXT)?;
    check_context(&req.encryption_context)?;
    check_grant_tokens(&req.grant_tokens)?;
    check_symmetric_algorithm(&req.encryption_algorithm)?;
    let key = authorized(svc, caller, &key_id, "kms:Encrypt", |c| {
        c.encryption_context(&req.encryption_context).set("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    })
    .await?;
    key.check_usable()?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let blob = seal(&key, &req.encryption_context, &plaintext.0)?;
    respond(Response { ciphertext_blob: &blob, key_id: &key.arn, encryption_algorithm: "SYMMETRIC_DEFAULT" })
}
