//! Decrypt.

use super::{
    Blob, Context, b64, check_context, check_grant_tokens, check_len, check_symmetric_algorithm, refuse_recipient,
    required, resolve, respond,
};
use crate::crypto;
use crate::error::Error;
use crate::ids::format_uuid;
use crate::keys::Lookup;
use crate::service::Service;
use serde::{Deserialize, Serialize};

/// Largest CiphertextBlob.
pub const MAX_CIPHERTEXT: usize = 6144;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    ciphertext_blob: Option<Blob>,
    encryption_context: Context,
    grant_tokens: Option<Vec<String>>,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
    recipient: Option<serde_json::Value>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    key_id: &'a str,
    #[serde(serialize_with = "b64")]
    plaintext: &'a [u8],
    encryption_algorithm: &'static str,
}

pub async fn run(svc: &Service, req: Request) -> Result<Vec<u8>, Error> {
    let blob = required(req.ciphertext_blob, "ciphertextBlob")?.0;
    check_len(blob.len(), "ciphertextBlob", MAX_CIPHERTEXT)?;
    check_context(&req.encryption_context)?;
    check_grant_tokens(&req.grant_tokens)?;
    check_symmetric_algorithm(&req.encryption_algorithm)?;
    refuse_recipient(&req.recipient)?;
    let header = crypto::parse_blob_header(&blob).map_err(|_| Error::InvalidCiphertext)?;
    let blob_key_id = format_uuid(&header.key_id);
    if let Some(named) = req.key_id.as_deref() {
        let named = resolve(svc, named).await?;
        if named.uuid != header.key_id {
            return Err(Error::IncorrectKey);
        }
    }
    // A blob naming a destroyed key answers as AWS does for a deleted key; one naming a key that never existed cannot
    // be authenticated: to the caller it is an invalid ciphertext.
    let key = match svc.keys.lookup(&blob_key_id).await? {
        Lookup::Live(k) => k,
        Lookup::Destroyed => {
            return Err(Error::NotFound(format!("Key '{}' does not exist", svc.scope.key_arn(&blob_key_id))));
        }
        Lookup::Unknown => return Err(Error::InvalidCiphertext),
    };
    key.check_usable()?;
    let backing = key.material(header.key_version).ok_or(Error::InvalidCiphertext)?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let plaintext =
        crypto::decrypt_blob(backing, &blob, req.encryption_context.as_ref()).map_err(|_| Error::InvalidCiphertext)?;
    respond(Response { key_id: &key.arn, plaintext: &plaintext, encryption_algorithm: "SYMMETRIC_DEFAULT" })
}
