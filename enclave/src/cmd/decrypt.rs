//! Decrypt.

use super::{
    Blob, Context, EncryptionAlgorithm, check_context, check_grant_tokens, check_len, parse_encryption_algorithm,
    required, resolve, respond,
};
use crate::access::principals::Caller;
use crate::crypto::blob::{self, BlobHeader};
use crate::error::Error;
use crate::service::Service;
use crate::state::ids::format_uuid;
use crate::state::keys::{Key, Lookup};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use zeroize::Zeroizing;

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
    recipient: Option<super::recipient::RecipientInfo>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    key_id: &'a str,
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a [u8]>,
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    ciphertext_for_recipient: Option<&'a [u8]>,
    encryption_algorithm: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_material_id: Option<String>,
}

pub async fn run(svc: &Service, caller: &Caller, mut req: Request) -> Result<Vec<u8>, Error> {
    let blob = required(req.ciphertext_blob.take(), "ciphertextBlob")?.0;
    check_len(blob.len(), "ciphertextBlob", MAX_CIPHERTEXT)?;
    check_context(&req.encryption_context)?;
    check_grant_tokens(&req.grant_tokens)?;
    let alg = parse_encryption_algorithm(&req.encryption_algorithm)?;
    let recipient = super::recipient::verify(svc, caller, req.recipient.take())?;
    if let EncryptionAlgorithm::Rsa(a) = alg {
        return decrypt_asymmetric(svc, caller, req, recipient, a, &blob).await;
    }
    if let Some(named) = req.key_id.as_deref() {
        let named_key = resolve(svc, named).await?;
        if !named_key.is_symmetric() {
            // Told only to callers the key policy admits, like the key's state.
            crate::access::authz::authorize(svc, caller, &named_key, "kms:Decrypt", |c| {
                c.encryption_context(&req.encryption_context).set("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
                c.request_alias(named, &svc.scope);
            })?;
            // AWS answers IncorrectKeyException before InvalidKeyUsageException when the ciphertext names another key.
            if blob::parse_blob_header(&blob).is_ok_and(|h| h.key_id != named_key.uuid) {
                return Err(Error::IncorrectKey);
            }
            return Err(super::incompatible_algorithm("SYMMETRIC_DEFAULT", &named_key));
        }
    }
    let (key, header) = source_key(svc, &blob, req.key_id.as_deref()).await?;
    crate::access::authz::authorize(svc, caller, &key, "kms:Decrypt", |c| {
        c.encryption_context(&req.encryption_context).set("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
        if let Some(named) = req.key_id.as_deref() {
            c.request_alias(named, &svc.scope);
        }
        if let Some(r) = &recipient {
            r.conditions(c);
        }
    })?;
    // After authorization, so that the key's state is told only to callers the key policy admits (as AWS).
    key.check_usable()?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let key_material_id = Some(key.material_id(header.key_version));
    let plaintext = open(&key, header, &blob, &req.encryption_context)?;
    let sealed = recipient
        .as_ref()
        .map(|r| r.seal(svc, super::recipient::Binding { key_id: &key.arn, ciphertext_blob: b"" }, &plaintext))
        .transpose()?;
    respond(Response {
        key_id: &key.arn,
        plaintext: if sealed.is_some() { None } else { Some(&plaintext) },
        ciphertext_for_recipient: sealed.as_deref(),
        encryption_algorithm: "SYMMETRIC_DEFAULT",
        key_material_id,
    })
}

/// Decrypt of an RSA ciphertext: the KeyId and the algorithm are required, no encryption context; any failure to
/// decrypt is the same InvalidCiphertextException.
async fn decrypt_asymmetric(
    svc: &Service,
    caller: &Caller,
    req: Request,
    recipient: Option<super::recipient::Verified>,
    alg: crate::crypto::asym::EncryptionAlgorithm,
    blob: &[u8],
) -> Result<Vec<u8>, Error> {
    let Some(named) = req.key_id.as_deref() else {
        return Err(Error::Validation("KeyId is required to decrypt with an asymmetric KMS key".into()));
    };
    let key = super::authorized(svc, caller, named, "kms:Decrypt", |c| {
        c.encryption_context(&req.encryption_context).set("kms:EncryptionAlgorithm", alg.name());
        if let Some(r) = &recipient {
            r.conditions(c);
        }
    })
    .await?;
    key.check_usable()?;
    let pair = match key.pair() {
        Some(p) if key.meta.key_usage == crate::state::keys::KeyUsage::EncryptDecrypt => p,
        _ if key.meta.key_usage != crate::state::keys::KeyUsage::EncryptDecrypt => {
            return Err(super::wrong_usage(&key, "Decrypt"));
        }
        _ => {
            return Err(super::incompatible_algorithm(alg.name(), &key));
        }
    };
    super::refuse_context(&req.encryption_context)?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let plaintext = pair.decrypt(alg, blob).map_err(|_| Error::InvalidCiphertext)?;
    let sealed = recipient
        .as_ref()
        .map(|r| r.seal(svc, super::recipient::Binding { key_id: &key.arn, ciphertext_blob: b"" }, &plaintext))
        .transpose()?;
    respond(Response {
        key_id: &key.arn,
        plaintext: if sealed.is_some() { None } else { Some(&plaintext) },
        ciphertext_for_recipient: sealed.as_deref(),
        encryption_algorithm: alg.name(),
        key_material_id: None,
    })
}

/// The key a ciphertext blob was made under (its state not yet checked), checked against `named` (a KeyId the caller gave). A blob
/// naming a destroyed key answers as AWS does for a deleted key; one naming a key that never existed cannot be
/// authenticated: to the caller it is an invalid ciphertext.
pub async fn source_key(svc: &Service, blob: &[u8], named: Option<&str>) -> Result<(Arc<Key>, BlobHeader), Error> {
    let named = match named {
        Some(n) => Some(resolve(svc, n).await?),
        None => None,
    };
    let header = blob::parse_blob_header(blob).map_err(|_| Error::InvalidCiphertext)?;
    if let Some(named) = named
        && named.uuid != header.key_id
    {
        return Err(Error::IncorrectKey);
    }
    let blob_key_id = format_uuid(&header.key_id);
    let key = match svc.keys.lookup(&blob_key_id).await? {
        Lookup::Live(k) => k,
        Lookup::Destroyed => return Err(super::key_not_found(svc, &blob_key_id)),
        Lookup::Unknown => return Err(Error::InvalidCiphertext),
    };
    Ok((key, header))
}

/// Opens a blob with the backing-key version its header names.
pub fn open(key: &Key, header: BlobHeader, blob: &[u8], ctx: &Context) -> Result<Zeroizing<Vec<u8>>, Error> {
    let backing = key.material(header.key_version).ok_or(Error::InvalidCiphertext)?;
    blob::decrypt_blob(backing, blob, ctx.as_ref()).map_err(|_| Error::InvalidCiphertext)
}
