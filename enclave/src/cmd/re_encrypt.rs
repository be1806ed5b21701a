//! ReEncrypt: decrypts under the source key and encrypts under the destination key inside the enclave; the plaintext
//! never leaves it.

use super::decrypt::{MAX_CIPHERTEXT, open, source_key};
use super::{
    Blob, Context, b64, check_context, check_grant_tokens, check_len, check_symmetric_algorithm, required, respond,
};
use crate::error::Error;
use crate::principals::Caller;
use crate::service::Service;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    ciphertext_blob: Option<Blob>,
    source_encryption_context: Context,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
    destination_encryption_context: Context,
    source_encryption_algorithm: Option<String>,
    destination_encryption_algorithm: Option<String>,
    grant_tokens: Option<Vec<String>>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    #[serde(serialize_with = "b64")]
    ciphertext_blob: &'a [u8],
    source_key_id: &'a str,
    key_id: &'a str,
    source_encryption_algorithm: &'static str,
    destination_encryption_algorithm: &'static str,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let blob = required(req.ciphertext_blob, "ciphertextBlob")?.0;
    let destination_id = required(req.destination_key_id, "destinationKeyId")?;
    check_len(blob.len(), "ciphertextBlob", MAX_CIPHERTEXT)?;
    check_context(&req.source_encryption_context)?;
    check_context(&req.destination_encryption_context)?;
    check_grant_tokens(&req.grant_tokens)?;
    check_symmetric_algorithm(&req.source_encryption_algorithm)?;
    check_symmetric_algorithm(&req.destination_encryption_algorithm)?;
    let (source, header) = source_key(svc, &blob, req.source_key_id.as_deref()).await?;
    let destination = super::resolve(svc, &destination_id).await?;
    let on_same_key = if destination.uuid == source.uuid { "true" } else { "false" };
    crate::authz::authorize(svc, caller, &source, "kms:ReEncryptFrom", |c| {
        c.encryption_context(&req.source_encryption_context)
            .set("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
            .set("kms:ReEncryptOnSameKey", on_same_key);
        if let Some(named) = req.source_key_id.as_deref() {
            c.request_alias(named, &svc.scope);
        }
    })?;
    crate::authz::authorize(svc, caller, &destination, "kms:ReEncryptTo", |c| {
        c.encryption_context(&req.destination_encryption_context)
            .set("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
            .set("kms:ReEncryptOnSameKey", on_same_key)
            .request_alias(&destination_id, &svc.scope);
    })?;
    source.check_usable()?;
    destination.check_usable()?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let plaintext = open(&source, header, &blob, &req.source_encryption_context)?;
    let new_blob = super::encrypt::seal(&destination, &req.destination_encryption_context, &plaintext)?;
    respond(Response {
        ciphertext_blob: &new_blob,
        source_key_id: &source.arn,
        key_id: &destination.arn,
        source_encryption_algorithm: "SYMMETRIC_DEFAULT",
        destination_encryption_algorithm: "SYMMETRIC_DEFAULT",
    })
}
