//! Key material import for symmetric keys (Origin EXTERNAL): GetParametersForImport, ImportKeyMaterial and
//! DeleteImportedKeyMaterial.
//!
//! The wrapping key is an RSA key made in the enclave for one GetParametersForImport; its private half travels only
//! inside the import token, which is sealed under the domain key with the KMS key's id in its AAD. So a token opens
//! only here, only for that key, and its expiry (24 hours by the lifecycle clock) cannot be altered. RSA decryption
//! is done with aws-lc-rs (constant-time; the `rsa` crate is under RUSTSEC-2023-0071).

use super::{Blob, authorized_key, b64, constraint, required, respond};
use crate::access::principals::Caller;
use crate::crypto::secret::Key256;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::{ExpirationModel, IMPORTED_VERSION, Imported, Key, KeyState, Origin};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::key_wrap::{AES_256, KeyEncryptionKey, KeyWrapPadded};
use aws_lc_rs::rsa::PrivateDecryptingKey;
use aws_lc_rs::rsa::{KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey};
use kms_shared::storage::RecordKind;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// How long import parameters are valid.
const TOKEN_LIFETIME_SECS: f64 = 24.0 * 3600.0;
/// Latest ValidTo accepted, from now.
const MAX_VALID_TO_SECS: f64 = 365.0 * 86_400.0;
/// Largest ImportToken and EncryptedKeyMaterial.
const MAX_BLOB: usize = 6144;
/// Symmetric key material is 256 bits.
const MATERIAL_LEN: usize = 32;

#[derive(Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Debug)]
enum Wrapping {
    OaepSha1,
    OaepSha256,
    AesKeyWrapSha1,
    AesKeyWrapSha256,
}

impl Wrapping {
    fn parse(s: &str) -> Result<Wrapping, Error> {
        Ok(match s {
            "RSAES_OAEP_SHA_1" => Wrapping::OaepSha1,
            "RSAES_OAEP_SHA_256" => Wrapping::OaepSha256,
            "RSA_AES_KEY_WRAP_SHA_1" => Wrapping::AesKeyWrapSha1,
            "RSA_AES_KEY_WRAP_SHA_256" => Wrapping::AesKeyWrapSha256,
            "RSAES_PKCS1_V1_5" => {
                return Err(Error::Validation(
                    "RSAES_PKCS1_V1_5 is no longer offered for key import; use RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256"
                        .into(),
                ));
            }
            other => {
                return Err(constraint(
                    other,
                    "wrappingAlgorithm",
                    "Member must satisfy enum value set: [RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256]",
                ));
            }
        })
    }

    fn oaep(self) -> &'static OaepAlgorithm {
        match self {
            Wrapping::OaepSha1 | Wrapping::AesKeyWrapSha1 => &OAEP_SHA1_MGF1SHA1,
            Wrapping::OaepSha256 | Wrapping::AesKeyWrapSha256 => &OAEP_SHA256_MGF1SHA256,
        }
    }
}

/// The wrapping algorithms AWS allows for a key's material: an RSA private key only with RSA_AES_KEY_WRAP_* (too long
/// for RSAES_OAEP_*), and ECC_NIST_P521 material not with RSAES_OAEP_* under an RSA_2048 wrapping key (likewise).
fn check_wrapping(key: &Key, wrapping: Wrapping, rsa_2048: bool) -> Result<(), Error> {
    let oaep = matches!(wrapping, Wrapping::OaepSha1 | Wrapping::OaepSha256);
    let spec = key.meta.key_spec;
    if oaep && spec.name().starts_with("RSA_") {
        return Err(Error::Validation(format!(
            "{} key material (an RSA private key) must be wrapped with RSA_AES_KEY_WRAP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256",
            spec.name()
        )));
    }
    if oaep && rsa_2048 && spec == crate::state::keys::KeySpec::EccNistP521 {
        return Err(Error::Validation(
            "ECC_NIST_P521 key material cannot be wrapped with RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256 under an RSA_2048 \
             wrapping key: use RSA_3072, RSA_4096 or an RSA_AES_KEY_WRAP algorithm"
                .into(),
        ));
    }
    Ok(())
}

/// What an import token holds. Only ever serialized into the sealed token.
#[derive(Serialize, Deserialize)]
struct Token {
    wrapping: Wrapping,
    #[serde(with = "serde_bytes")]
    private_key_pkcs8: Vec<u8>,
    expires: f64,
}

impl Drop for Token {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key_pkcs8);
    }
}

fn require_external(key: &Key) -> Result<(), Error> {
    if key.meta.origin != Origin::External {
        return Err(Error::UnsupportedOperation(format!(
            "{} has Origin AWS_KMS: key material can be imported only into keys created with Origin EXTERNAL",
            key.arn
        )));
    }
    key.check_not_pending_deletion()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParametersRequest {
    key_id: Option<String>,
    wrapping_algorithm: Option<String>,
    wrapping_key_spec: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ParametersResponse<'a> {
    key_id: &'a str,
    #[serde(serialize_with = "b64")]
    import_token: &'a [u8],
    #[serde(serialize_with = "b64")]
    public_key: &'a [u8],
    parameters_valid_to: f64,
}

pub async fn parameters(svc: &Service, caller: &Caller, req: ParametersRequest) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let wrapping_name = required(req.wrapping_algorithm, "wrappingAlgorithm")?;
    let wrapping = Wrapping::parse(&wrapping_name)?;
    let spec_name = required(req.wrapping_key_spec, "wrappingKeySpec")?;
    let size = match spec_name.as_str() {
        "RSA_2048" => KeySize::Rsa2048,
        "RSA_3072" => KeySize::Rsa3072,
        "RSA_4096" => KeySize::Rsa4096,
        other => {
            return Err(constraint(
                other,
                "wrappingKeySpec",
                "Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096]",
            ));
        }
    };
    let key = authorized_key(svc, caller, &key_id, "kms:GetParametersForImport", |c| {
        c.set("kms:WrappingAlgorithm", wrapping_name.as_str()).set("kms:WrappingKeySpec", spec_name.as_str());
    })
    .await?;
    require_external(&key)?;
    check_wrapping(&key, wrapping, matches!(size, KeySize::Rsa2048))?;
    // RSA key generation takes a while (seconds for 4096 bits): keep it off the async workers, bounded per vCPU and
    // per principal.
    let ticket = svc.keygen.ticket(caller.arn()).await?;
    let rsa = tokio::task::spawn_blocking(move || PrivateDecryptingKey::generate(size))
        .await
        .map_err(|_| Error::Internal("key generation task failed".into()))?
        .map_err(|_| Error::Internal("RSA key generation failed".into()))?;
    drop(ticket);
    let public: PublicKeyX509Der<'_> =
        rsa.public_key().as_der().map_err(|_| Error::Internal("public key encoding".into()))?;
    let private: Pkcs8V1Der<'_> = rsa.as_der().map_err(|_| Error::Internal("private key encoding".into()))?;
    let expires = svc.clock.now_secs() + TOKEN_LIFETIME_SECS;
    let token = Token { wrapping, private_key_pkcs8: private.as_ref().to_vec(), expires };
    let mut body = Zeroizing::new(Vec::with_capacity(3072));
    ciborium::into_writer(&token, &mut *body).map_err(|e| Error::Internal(e.to_string()))?;
    let sealed = svc.records.seal_transient(RecordKind::ImportToken, &key.meta.key_id, &body)?;
    respond(ParametersResponse {
        key_id: &key.arn,
        import_token: &sealed,
        public_key: public.as_ref(),
        parameters_valid_to: expires,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportRequest {
    key_id: Option<String>,
    import_token: Option<Blob>,
    encrypted_key_material: Option<Blob>,
    valid_to: Option<f64>,
    expiration_model: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdResponse<'a> {
    key_id: &'a str,
    /// The imported (or deleted) material's KeyMaterialId.
    key_material_id: String,
}

/// Unwraps the material with the token's RSA key.
fn unwrap_material(token: &Token, encrypted: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    let rsa = PrivateDecryptingKey::from_pkcs8(&token.private_key_pkcs8)
        .map_err(|_| Error::Internal("import token key".into()))?;
    let oaep = OaepPrivateDecryptingKey::new(rsa).map_err(|_| Error::Internal("import token key".into()))?;
    let modulus = oaep.key_size_bytes();
    let mut out = Zeroizing::new(vec![0u8; modulus]);
    match token.wrapping {
        Wrapping::OaepSha1 | Wrapping::OaepSha256 => {
            let n = oaep
                .decrypt(token.wrapping.oaep(), encrypted, &mut out, None)
                .map_err(|_| Error::InvalidCiphertext)?
                .len();
            out.truncate(n);
            Ok(out)
        }
        Wrapping::AesKeyWrapSha1 | Wrapping::AesKeyWrapSha256 => {
            let (rsa_part, wrapped) = encrypted.split_at_checked(modulus).ok_or(Error::InvalidCiphertext)?;
            let n = oaep
                .decrypt(token.wrapping.oaep(), rsa_part, &mut out, None)
                .map_err(|_| Error::InvalidCiphertext)?
                .len();
            let aes = out.get(..n).ok_or(Error::InvalidCiphertext)?;
            let kek = KeyEncryptionKey::new(&AES_256, aes).map_err(|_| Error::InvalidCiphertext)?;
            let mut material = Zeroizing::new(vec![0u8; wrapped.len()]);
            let m = kek.unwrap_with_padding(wrapped, &mut material).map_err(|_| Error::InvalidCiphertext)?.len();
            material.truncate(m);
            Ok(material)
        }
    }
}

fn expiration_name(model: ExpirationModel) -> &'static str {
    match model {
        ExpirationModel::Expires => "KEY_MATERIAL_EXPIRES",
        ExpirationModel::DoesNotExpire => "KEY_MATERIAL_DOES_NOT_EXPIRE",
    }
}

fn expiration(model: Option<&str>, valid_to: Option<f64>, now: f64) -> Result<(ExpirationModel, Option<f64>), Error> {
    let model = match (model, valid_to) {
        (Some("KEY_MATERIAL_EXPIRES"), Some(_)) | (None, Some(_)) => ExpirationModel::Expires,
        (Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), None) => ExpirationModel::DoesNotExpire,
        // AWS's default ExpirationModel is KEY_MATERIAL_EXPIRES, so a request naming neither lacks its ValidTo.
        (Some("KEY_MATERIAL_EXPIRES") | None, None) => {
            return Err(Error::Validation(
                "A ValidTo date is required when ExpirationModel is KEY_MATERIAL_EXPIRES (the default)".into(),
            ));
        }
        (Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), Some(_)) => {
            return Err(Error::Validation(
                "ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE".into(),
            ));
        }
        (Some(other), _) => {
            return Err(constraint(
                other,
                "expirationModel",
                "Member must satisfy enum value set: [KEY_MATERIAL_EXPIRES, KEY_MATERIAL_DOES_NOT_EXPIRE]",
            ));
        }
    };
    if let Some(t) = valid_to
        && (t <= now || t > now + MAX_VALID_TO_SECS || !t.is_finite())
    {
        return Err(Error::Validation("ValidTo must be in the future and at most 365 days from now".into()));
    }
    Ok((model, valid_to))
}

pub async fn import(svc: &Service, caller: &Caller, req: ImportRequest) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let token = required(req.import_token, "importToken")?.0;
    let encrypted = required(req.encrypted_key_material, "encryptedKeyMaterial")?.0;
    super::check_len(token.len(), "importToken", MAX_BLOB)?;
    super::check_len(encrypted.len(), "encryptedKeyMaterial", MAX_BLOB)?;
    let now = svc.clock.now_secs();
    let (model, valid_to) = expiration(req.expiration_model.as_deref(), req.valid_to, now)?;
    let key = authorized_key(svc, caller, &key_id, "kms:ImportKeyMaterial", |c| {
        c.set("kms:ExpirationModel", expiration_name(model));
        if let Some(t) = valid_to {
            c.set("kms:ValidTo", format!("{}", t as i64));
        }
    })
    .await?;
    require_external(&key)?;
    let invalid = || Error::InvalidImportToken(format!("The import token is not valid for {}", key.arn));
    let body = svc.records.open_transient(RecordKind::ImportToken, &key.meta.key_id, &token).ok_or_else(invalid)?;
    let token: Token = ciborium::from_reader(&body[..]).map_err(|_| invalid())?;
    if now > token.expires {
        return Err(Error::ExpiredImportToken(format!("The import token for {} has expired", key.arn)));
    }
    let material = unwrap_material(&token, &encrypted)?;
    let spec = key.meta.key_spec;
    let symmetric = spec == crate::state::keys::KeySpec::SymmetricDefault;
    if symmetric && material.len() != MATERIAL_LEN {
        return Err(Error::IncorrectKeyMaterial(format!(
            "Symmetric key material must be {MATERIAL_LEN} bytes (256 bits), not {}",
            material.len()
        )));
    }
    // Asymmetric material is PKCS#8 DER of the key spec's kind (RSA modulus size, curve); HMAC material is raw bytes
    // of the lengths AWS takes for the spec. Checked here, and parsed again when installed.
    let not_for_spec = || {
        Error::IncorrectKeyMaterial(format!(
            "The key material is not a valid {} key ({}) for {}",
            spec.name(),
            if spec.hmac().is_some() { "raw bytes of an allowed length" } else { "PKCS#8 DER" },
            key.arn
        ))
    };
    if !symmetric {
        crate::state::keys::Secret::import(spec, &material).map_err(|_| not_for_spec())?;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &material).as_ref().to_vec();
    let updated = svc
        .keys
        .update(&key.meta.key_id, |key| {
            require_external(key)?;
            if let Some(previous) = &key.meta.imported
                && previous.material_sha256 != digest
            {
                return Err(Error::IncorrectKeyMaterial(format!(
                    "{} already had different key material: only the same material can be imported again",
                    key.arn
                )));
            }
            if symmetric {
                key.set_material(
                    Key256::from_slice(&material).ok_or_else(|| Error::Internal("material length".into()))?,
                );
            } else {
                key.set_secret(crate::state::keys::Secret::import(spec, &material).map_err(|_| not_for_spec())?);
            }
            key.meta.imported =
                Some(Imported { material_sha256: digest.clone(), expiration_model: Some(model), valid_to });
            if key.meta.key_state == KeyState::PendingImport {
                key.meta.key_state = KeyState::Enabled;
            }
            Ok(())
        })
        .await?;
    tracing::info!(key_id = %key.meta.key_id, "key material imported");
    respond(KeyIdResponse { key_id: &updated.arn, key_material_id: updated.material_id(IMPORTED_VERSION) })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteRequest {
    key_id: Option<String>,
    key_material_id: Option<String>,
}

pub async fn delete(svc: &Service, caller: &Caller, req: DeleteRequest) -> Result<Vec<u8>, Error> {
    let key =
        authorized_key(svc, caller, &required(req.key_id, "keyId")?, "kms:DeleteImportedKeyMaterial", |_| {}).await?;
    let updated = svc
        .keys
        .update(&key.meta.key_id, |key| {
            require_external(key)?;
            // One material per key here: a KeyMaterialId must name it (AWS: NotFoundException for another).
            if let Some(named) = req.key_material_id.as_deref()
                && named != key.material_id(IMPORTED_VERSION)
            {
                let shown: String = named.chars().take(64).collect();
                return Err(Error::NotFound(format!("Key material {shown} does not exist for {}", key.arn)));
            }
            key.remove_material();
            Ok(())
        })
        .await?;
    tracing::info!(key_id = %key.meta.key_id, "imported key material deleted");
    respond(KeyIdResponse { key_id: &updated.arn, key_material_id: updated.material_id(IMPORTED_VERSION) })
}
