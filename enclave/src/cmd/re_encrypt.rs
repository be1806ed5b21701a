//! ReEncrypt: decrypts under the source key and encrypts under the destination key inside the enclave; the plaintext
//! never leaves it.

use super::decrypt::{MAX_CIPHERTEXT, open, source_key};
use super::{
    Blob, Context, EncryptionAlgorithm, b64, check_context, check_grant_tokens, check_len, parse_encryption_algorithm,
    refuse_context, required, resolve, respond,
};
use crate::access::principals::Caller;
use crate::crypto::asym;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::{Key, KeyUsage};
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
    #[serde(skip_serializing_if = "Option::is_none")]
    source_key_material_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_key_material_id: Option<String>,
}

/// Refuses a key that does not offer `alg` (symmetric keys SYMMETRIC_DEFAULT, RSA ENCRYPT_DECRYPT keys RSAES_*).
fn check_fits(key: &Key, alg: EncryptionAlgorithm) -> Result<(), Error> {
    if key.meta.key_usage != KeyUsage::EncryptDecrypt {
        return Err(super::wrong_usage(key, "ReEncrypt"));
    }
    let fits = match alg {
        EncryptionAlgorithm::Symmetric => key.is_symmetric(),
        EncryptionAlgorithm::Rsa(_) => key.pair().is_some(),
    };
    if fits { Ok(()) } else { Err(super::incompatible_algorithm(alg.name(), key)) }
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let blob = required(req.ciphertext_blob, "ciphertextBlob")?.0;
    let destination_id = required(req.destination_key_id, "destinationKeyId")?;
    check_len(blob.len(), "ciphertextBlob", MAX_CIPHERTEXT)?;
    check_context(&req.source_encryption_context)?;
    check_context(&req.destination_encryption_context)?;
    check_grant_tokens(&req.grant_tokens)?;
    let source_alg = parse_encryption_algorithm(&req.source_encryption_algorithm)?;
    let destination_alg = parse_encryption_algorithm(&req.destination_encryption_algorithm)?;
    // A symmetric ciphertext names its key; an RSA ciphertext does not, so SourceKeyId is required for it.
    let (source, header) = match source_alg {
        EncryptionAlgorithm::Symmetric => {
            let (key, header) = source_key(svc, &blob, req.source_key_id.as_deref()).await?;
            (key, Some(header))
        }
        EncryptionAlgorithm::Rsa(_) => {
            let Some(named) = req.source_key_id.as_deref() else {
                return Err(Error::Validation(
                    "SourceKeyId is required to re-encrypt from an asymmetric KMS key".into(),
                ));
            };
            (resolve(svc, named).await?, None)
        }
    };
    let destination = resolve(svc, &destination_id).await?;
    let on_same_key = if destination.uuid == source.uuid { "true" } else { "false" };
    crate::access::authz::authorize(svc, caller, &source, "kms:ReEncryptFrom", |c| {
        c.encryption_context(&req.source_encryption_context)
            .set("kms:EncryptionAlgorithm", source_alg.name())
            .set("kms:ReEncryptOnSameKey", on_same_key);
        if let Some(named) = req.source_key_id.as_deref() {
            c.request_alias(named, &svc.scope);
        }
    })?;
    crate::access::authz::authorize(svc, caller, &destination, "kms:ReEncryptTo", |c| {
        c.encryption_context(&req.destination_encryption_context)
            .set("kms:EncryptionAlgorithm", destination_alg.name())
            .set("kms:ReEncryptOnSameKey", on_same_key)
            .request_alias(&destination_id, &svc.scope);
    })?;
    source.check_usable()?;
    destination.check_usable()?;
    check_fits(&source, source_alg)?;
    check_fits(&destination, destination_alg)?;
    if source_alg != EncryptionAlgorithm::Symmetric {
        refuse_context(&req.source_encryption_context)?;
    }
    if destination_alg != EncryptionAlgorithm::Symmetric {
        refuse_context(&req.destination_encryption_context)?;
    }
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let source_key_material_id = header.map(|h| source.material_id(h.key_version));
    let plaintext = match (source_alg, header, source.pair()) {
        (EncryptionAlgorithm::Symmetric, Some(h), _) => open(&source, h, &blob, &req.source_encryption_context)?,
        (EncryptionAlgorithm::Rsa(a), _, Some(pair)) => pair.decrypt(a, &blob).map_err(|_| Error::InvalidCiphertext)?,
        _ => return Err(Error::Internal("re-encrypt source without its material".into())),
    };
    let new_blob = match (destination_alg, destination.pair()) {
        (EncryptionAlgorithm::Symmetric, _) => {
            super::encrypt::seal(&destination, &req.destination_encryption_context, &plaintext)?
        }
        (EncryptionAlgorithm::Rsa(a), Some(pair)) => {
            let max = a.max_plaintext(pair.spec());
            if plaintext.len() > max {
                return Err(Error::Validation(format!(
                    "The plaintext is too long for the destination key: {} with {} takes at most {max} bytes",
                    pair.spec().name(),
                    a.name()
                )));
            }
            asym::encrypt(pair.public_key_der(), a, &plaintext)
                .map_err(|e| Error::Internal(format!("RSA encryption: {e}")))?
        }
        (EncryptionAlgorithm::Rsa(_), None) => return Err(Error::Internal("destination without its key".into())),
    };
    respond(Response {
        ciphertext_blob: &new_blob,
        source_key_id: &source.arn,
        key_id: &destination.arn,
        source_encryption_algorithm: source_alg.name(),
        destination_encryption_algorithm: destination_alg.name(),
        source_key_material_id,
        destination_key_material_id: if destination_alg == EncryptionAlgorithm::Symmetric {
            destination.current_material_id()
        } else {
            None
        },
    })
}
