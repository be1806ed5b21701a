//! The KMS operations, one file each, and what they share: request parsing, blob encoding, key resolution, paging
//! markers and common validation.

mod admin;
#[cfg(feature = "simulator")]
mod advance_clock;
mod cancel_key_deletion;
mod create_alias;
mod create_key;
mod decrypt;
mod delete_alias;
mod derive_shared_secret;
mod describe_key;
mod enable_disable_key;
mod encrypt;
mod generate_data_key;
mod generate_data_key_pair;
mod generate_random;
mod get_attestation_document;
mod get_public_key;
mod import;
mod key_policy;
mod list_aliases;
mod list_keys;
mod mac;
mod re_encrypt;
mod recipient;
mod rotation;
mod schedule_key_deletion;
mod sign;
mod tags;
mod update_key_description;

use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::ids::{KeyRef, parse_key_ref};
use crate::state::keys::{Key, Lookup};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
pub use create_key::default_policy;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The one operation served without SigV4: the enclave's own attestation document (our extension, outside AWS's
/// `TrentService` namespace). It reveals only public facts (PCRs, the TLS public key, the CA's hash) and is what lets a
/// client decide whether to trust this endpoint before it has any reason to.
pub const ATTESTATION_TARGET: &str = "EnclaveKms.GetAttestationDocument";

/// Simulator mode only: moves the lifecycle clock forward (our extension, SigV4-authenticated). Not compiled into the
/// production enclave (`--no-default-features`): there the target is an unknown operation.
#[cfg(feature = "simulator")]
pub const ADVANCE_CLOCK_TARGET: &str = "EnclaveKms.AdvanceClock";

/// Runs the operation named by `X-Amz-Target` on a JSON body, returning the JSON response body. `caller` is the
/// SigV4-authenticated principal; only [`ATTESTATION_TARGET`] runs without one.
pub async fn dispatch(svc: &Service, caller: Option<&Caller>, target: &str, body: &[u8]) -> Result<Vec<u8>, Error> {
    if target == ATTESTATION_TARGET {
        return get_attestation_document::run(svc, parse(body)?).await;
    }
    let Some(caller) = caller else {
        return Err(Error::Auth(crate::net::sigv4::AuthError::MissingAuthentication));
    };
    #[cfg(feature = "simulator")]
    if target == ADVANCE_CLOCK_TARGET {
        return advance_clock::run(svc, caller, parse(body)?).await;
    }
    if let Some(op) = target.strip_prefix("EnclaveKms.") {
        return match op {
            "CreatePrincipal" => admin::create_principal(svc, caller, parse(body)?).await,
            "DeletePrincipal" => admin::delete_principal(svc, caller, parse(body)?).await,
            "ListPrincipals" => admin::list_principals(svc, caller).await,
            "CreateAccessKey" => admin::create_access_key(svc, caller, parse(body)?).await,
            "DeleteAccessKey" => admin::delete_access_key(svc, caller, parse(body)?).await,
            "PutPrincipalPolicy" => admin::put_principal_policy(svc, caller, parse(body)?).await,
            "GetPrincipalPolicy" => admin::get_principal_policy(svc, caller, parse(body)?).await,
            "DeletePrincipalPolicy" => admin::delete_principal_policy(svc, caller, parse(body)?).await,
            "GetCallerIdentity" => admin::get_caller_identity(svc, caller),
            "GetRecipientNonce" => recipient::get_nonce(svc, caller),
            _ => Err(unknown(target)),
        };
    }
    let Some(op) = target.strip_prefix("TrentService.") else {
        return Err(unknown(target));
    };
    match op {
        "CreateKey" => create_key::run(svc, caller, parse(body)?).await,
        "DescribeKey" => describe_key::run(svc, caller, parse(body)?).await,
        "ListKeys" => list_keys::run(svc, caller, parse(body)?).await,
        "Encrypt" => encrypt::run(svc, caller, parse(body)?).await,
        "Decrypt" => decrypt::run(svc, caller, parse(body)?).await,
        "GenerateDataKey" => generate_data_key::run(svc, caller, parse(body)?, true).await,
        "GenerateDataKeyWithoutPlaintext" => generate_data_key::run(svc, caller, parse(body)?, false).await,
        "GenerateRandom" => generate_random::run(svc, caller, parse(body)?).await,
        "CreateAlias" => create_alias::run(svc, caller, parse(body)?, false).await,
        "DeleteAlias" => delete_alias::run(svc, caller, parse(body)?).await,
        "ListAliases" => list_aliases::run(svc, caller, parse(body)?).await,
        "EnableKey" => enable_disable_key::run(svc, caller, parse(body)?, true).await,
        "DisableKey" => enable_disable_key::run(svc, caller, parse(body)?, false).await,
        "ScheduleKeyDeletion" => schedule_key_deletion::run(svc, caller, parse(body)?).await,
        "CancelKeyDeletion" => cancel_key_deletion::run(svc, caller, parse(body)?).await,
        "UpdateKeyDescription" => update_key_description::run(svc, caller, parse(body)?).await,
        "UpdateAlias" => create_alias::run(svc, caller, parse(body)?, true).await,
        "TagResource" => tags::tag(svc, caller, parse(body)?).await,
        "UntagResource" => tags::untag(svc, caller, parse(body)?).await,
        "ListResourceTags" => tags::list(svc, caller, parse(body)?).await,
        "GetKeyPolicy" => key_policy::get(svc, caller, parse(body)?).await,
        "PutKeyPolicy" => key_policy::put(svc, caller, parse(body)?).await,
        "ListKeyPolicies" => key_policy::list(svc, caller, parse(body)?).await,
        "EnableKeyRotation" => rotation::enable(svc, caller, parse(body)?).await,
        "DisableKeyRotation" => rotation::disable(svc, caller, parse(body)?).await,
        "GetKeyRotationStatus" => rotation::status(svc, caller, parse(body)?).await,
        "RotateKeyOnDemand" => rotation::on_demand(svc, caller, parse(body)?).await,
        "ListKeyRotations" => rotation::list(svc, caller, parse(body)?).await,
        "ReEncrypt" => re_encrypt::run(svc, caller, parse(body)?).await,
        "GetParametersForImport" => import::parameters(svc, caller, parse(body)?).await,
        "ImportKeyMaterial" => import::import(svc, caller, parse(body)?).await,
        "DeleteImportedKeyMaterial" => import::delete(svc, caller, parse(body)?).await,
        "Sign" => sign::sign(svc, caller, parse(body)?).await,
        "Verify" => sign::verify(svc, caller, parse(body)?).await,
        "GetPublicKey" => get_public_key::run(svc, caller, parse(body)?).await,
        "GenerateMac" => mac::generate(svc, caller, parse(body)?).await,
        "VerifyMac" => mac::verify(svc, caller, parse(body)?).await,
        "GenerateDataKeyPair" => generate_data_key_pair::run(svc, caller, parse(body)?, true).await,
        "GenerateDataKeyPairWithoutPlaintext" => generate_data_key_pair::run(svc, caller, parse(body)?, false).await,
        "DeriveSharedSecret" => derive_shared_secret::run(svc, caller, parse(body)?).await,
        _ => Err(unknown(target)),
    }
}

fn unknown(target: &str) -> Error {
    let shown: String = target.chars().take(128).collect();
    Error::UnknownOperation(format!("Unknown operation {shown}"))
}

/// Parses a JSON request body. An empty body is an empty object, as SDKs send for operations without members.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| Error::Serialization(format!("Malformed request body: {e}")))
}

pub(crate) fn respond<T: Serialize>(value: T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(&value).map_err(|e| Error::Internal(format!("response encoding: {e}")))
}

/// A base64 blob member of a request.
pub struct Blob(pub Vec<u8>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD.decode(s.as_bytes()).map(Blob).map_err(|_| serde::de::Error::custom("invalid base64 blob"))
    }
}

/// A base64 blob member holding secret bytes (a plaintext): zeroized on drop.
pub struct SecretBlob(pub Zeroizing<Vec<u8>>);

impl<'de> Deserialize<'de> for SecretBlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        STANDARD
            .decode(s.as_bytes())
            .map(|v| SecretBlob(Zeroizing::new(v)))
            .map_err(|_| serde::de::Error::custom("invalid base64 blob"))
    }
}

/// Serializes bytes as a base64 string (for response blobs).
pub fn b64<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&Zeroizing::new(STANDARD.encode(bytes)))
}

/// Serializes optional bytes as a base64 string (absent members are skipped by the caller's attribute).
pub fn opt_b64<S: Serializer>(bytes: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => b64(b, s),
        None => s.serialize_none(),
    }
}

/// An encryption context as it arrives.
pub type Context = Option<BTreeMap<String, String>>;

/// Finds the key a KeyId names, through an alias if need be. An alias whose key was destroyed is deleted here, as
/// AWS deletes the aliases of a deleted key.
pub async fn resolve(svc: &Service, key_id: &str) -> Result<Arc<Key>, Error> {
    let key = resolve_ref(svc, key_id).await?;
    crate::net::server::note_key(key.uuid);
    Ok(key)
}

async fn resolve_ref(svc: &Service, key_id: &str) -> Result<Arc<Key>, Error> {
    match parse_key_ref(key_id, &svc.scope)? {
        KeyRef::Id(id) => svc.keys.get(&id).await?.ok_or_else(|| key_not_found(svc, &id)),
        KeyRef::Alias(name) => {
            let alias_missing = || Error::NotFound(format!("Alias {} is not found.", svc.scope.alias_arn(&name)));
            let Some(alias) = svc.aliases.get(&name).await? else { return Err(alias_missing()) };
            match svc.keys.lookup(&alias.target_key_id).await? {
                Lookup::Live(k) => Ok(k),
                Lookup::Destroyed => {
                    svc.aliases.delete_if_targets(&name, &alias.target_key_id).await?;
                    Err(alias_missing())
                }
                Lookup::Unknown => Err(key_not_found(svc, &alias.target_key_id)),
            }
        }
    }
}

/// Resolves a KeyId (any form) and authorizes `action` on the key by its key policy, with `kms:RequestAlias` when
/// the KeyId is an alias and the operation's own condition keys from `extra`.
pub async fn authorized(
    svc: &Service,
    caller: &Caller,
    key_id: &str,
    action: &'static str,
    extra: impl FnOnce(&mut crate::access::authz::Conditions<'_>),
) -> Result<Arc<Key>, Error> {
    let key = resolve(svc, key_id).await?;
    crate::access::authz::authorize(svc, caller, &key, action, |c| {
        c.request_alias(key_id, &svc.scope);
        extra(c);
    })?;
    Ok(key)
}

/// NotFoundException for a key id, worded as AWS words it.
pub fn key_not_found(svc: &Service, key_id: &str) -> Error {
    Error::NotFound(format!("Key '{}' does not exist", svc.scope.key_arn(key_id)))
}

/// A required member.
pub fn required<T>(v: Option<T>, member: &str) -> Result<T, Error> {
    v.ok_or_else(|| Error::missing(member))
}

/// A length/number constraint failure, worded as AWS words it.
pub fn constraint(value: impl std::fmt::Display, member: &str, rule: &str) -> Error {
    Error::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    ))
}

/// Checks a blob's length is within `1..=max`.
pub fn check_len(len: usize, member: &str, max: usize) -> Result<(), Error> {
    if len == 0 || len > max {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length between 1 and {max}"
        )));
    }
    Ok(())
}

/// Checks GrantTokens (accepted; grants come with a later feature).
pub fn check_grant_tokens(tokens: &Option<Vec<String>>) -> Result<(), Error> {
    if let Some(t) = tokens {
        if t.len() > 10 {
            return Err(constraint(t.len(), "grantTokens", "Member must have length less than or equal to 10"));
        }
        if t.iter().any(|s| s.is_empty() || s.len() > 8192) {
            return Err(Error::Validation("Grant tokens must be between 1 and 8192 characters".into()));
        }
    }
    Ok(())
}

/// Checks an encryption context's size: AWS bounds it at 8 KiB in total.
pub fn check_context(ctx: &Context) -> Result<(), Error> {
    if let Some(c) = ctx {
        let total: usize = c.iter().map(|(k, v)| k.len() + v.len()).sum();
        if total > 8192 {
            return Err(Error::Validation("Encryption context exceeds the maximum size of 8192 bytes".into()));
        }
        // Policy condition keys are case-insensitive, so `kms:EncryptionContext:Tenant` would see both of two keys
        // that differ only in case: such a context is ambiguous to a policy, and refused.
        if c.len() > 1 {
            let mut folded: Vec<String> = c.keys().map(|k| k.to_lowercase()).collect();
            folded.sort_unstable();
            if folded.windows(2).any(|w| w.first() == w.get(1)) {
                return Err(Error::Validation(
                    "Encryption context keys must differ in more than letter case (key policy conditions compare them case-insensitively)".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses parameters for features that come later, rather than silently ignoring them.
pub fn refuse_recipient(recipient: &Option<serde_json::Value>) -> Result<(), Error> {
    if recipient.is_some() {
        return Err(Error::UnsupportedOperation(
            "The Recipient parameter is not supported yet by this key service".into(),
        ));
    }
    Ok(())
}

/// InvalidKeyUsageException for a key used against its KeyUsage, worded as AWS words it.
pub fn wrong_usage(key: &Key, op: &str) -> Error {
    Error::InvalidKeyUsage(format!(
        "{} key usage is {} and key spec is {}, which is not valid for {op}.",
        key.arn,
        key.meta.key_usage.name(),
        key.meta.key_spec.name()
    ))
}

/// InvalidKeyUsageException for an encryption algorithm (its AWS name) that the key's spec cannot use.
pub fn incompatible_algorithm(alg: &str, key: &Key) -> Error {
    Error::InvalidKeyUsage(format!(
        "The encryption algorithm {alg} is not compatible with the key spec {} of {}",
        key.meta.key_spec.name(),
        key.arn
    ))
}

/// Refuses any key but a symmetric encryption key (the only kind that makes ciphertext blobs and data keys).
pub fn require_symmetric(key: &Key, op: &str) -> Result<(), Error> {
    if key.is_symmetric() { Ok(()) } else { Err(wrong_usage(key, op)) }
}

/// An EncryptionAlgorithm member.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EncryptionAlgorithm {
    Symmetric,
    Rsa(crate::crypto::asym::EncryptionAlgorithm),
}

impl EncryptionAlgorithm {
    /// AWS's name.
    pub fn name(self) -> &'static str {
        match self {
            EncryptionAlgorithm::Symmetric => "SYMMETRIC_DEFAULT",
            EncryptionAlgorithm::Rsa(a) => a.name(),
        }
    }
}

/// Parses EncryptionAlgorithm (default SYMMETRIC_DEFAULT). SM2PKE is valid for AWS but no key here offers it.
pub fn parse_encryption_algorithm(alg: &Option<String>) -> Result<EncryptionAlgorithm, Error> {
    match alg.as_deref() {
        None | Some("SYMMETRIC_DEFAULT") => Ok(EncryptionAlgorithm::Symmetric),
        Some("SM2PKE") => Err(Error::InvalidKeyUsage("The encryption algorithm SM2PKE needs an SM2 key".into())),
        Some(a) => crate::crypto::asym::EncryptionAlgorithm::from_name(a).map(EncryptionAlgorithm::Rsa).ok_or_else(|| {
            constraint(
                a,
                "encryptionAlgorithm",
                "Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]",
            )
        }),
    }
}

/// Refuses an encryption context with an asymmetric key (AWS: only symmetric encryption supports one).
pub fn refuse_context(ctx: &Context) -> Result<(), Error> {
    if ctx.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err(Error::Validation("An encryption context is supported only with symmetric encryption keys".into()));
    }
    Ok(())
}

/// Paging markers: opaque to callers, checked on the way back in.
pub fn encode_marker(kind: char, last: &str) -> String {
    let mut s = String::with_capacity(1 + last.len());
    s.push(kind);
    s.push_str(last);
    URL_SAFE_NO_PAD.encode(s.as_bytes())
}

/// Decodes a marker of `kind`; `InvalidMarkerException` for anything we did not issue.
pub fn decode_marker(kind: char, marker: &str) -> Result<String, Error> {
    let raw = URL_SAFE_NO_PAD.decode(marker.as_bytes()).map_err(|_| Error::InvalidMarker)?;
    let s = String::from_utf8(raw).map_err(|_| Error::InvalidMarker)?;
    let rest = s.strip_prefix(kind).ok_or(Error::InvalidMarker)?;
    if rest.is_empty() || rest.len() > kms_shared::storage::MAX_ID_LEN {
        return Err(Error::InvalidMarker);
    }
    Ok(rest.to_owned())
}

/// Checks a paging limit within `1..=max`, defaulting to `default`.
pub fn page_limit(limit: Option<i64>, default: u32, max: u32) -> Result<u32, Error> {
    match limit {
        None => Ok(default),
        Some(l) if l >= 1 && l <= i64::from(max) => Ok(u32::try_from(l).unwrap_or(default)),
        Some(l) => Err(constraint(l, "limit", &format!("Member must have value between 1 and {max}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_refuse_foreign() {
        let m = encode_marker('K', "abc");
        assert_eq!(decode_marker('K', &m).unwrap(), "abc");
        assert!(matches!(decode_marker('A', &m), Err(Error::InvalidMarker)));
        assert!(matches!(decode_marker('K', "!!!"), Err(Error::InvalidMarker)));
        assert!(matches!(decode_marker('K', &encode_marker('K', "")), Err(Error::InvalidMarker)));
    }

    #[test]
    fn parse_errors_are_serialization_errors() {
        #[derive(Deserialize, Debug)]
        #[serde(rename_all = "PascalCase")]
        #[allow(dead_code)]
        struct R {
            key_id: Option<String>,
        }
        assert!(matches!(parse::<R>(b"{"), Err(Error::Serialization(_))));
        assert!(matches!(parse::<R>(b"[]"), Err(Error::Serialization(_))));
        assert!(matches!(parse::<R>(br#"{"KeyId": 5}"#), Err(Error::Serialization(_))));
        assert!(parse::<R>(b"").is_ok());
        assert!(parse::<R>(br#"{"Unknown": 1}"#).is_ok());
    }

    #[test]
    fn contexts_with_keys_equal_but_for_case_are_refused() {
        let ctx = |pairs: &[(&str, &str)]| -> Context {
            Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
        };
        assert!(check_context(&ctx(&[("Tenant", "a"), ("tenant", "b")])).is_err());
        assert!(check_context(&ctx(&[("ÄB", "a"), ("äb", "b")])).is_err());
        assert!(check_context(&ctx(&[("Tenant", "a"), ("Tenant2", "b")])).is_ok());
        assert!(check_context(&ctx(&[("Tenant", "a")])).is_ok());
        assert!(check_context(&None).is_ok());
    }

    #[test]
    fn limits() {
        assert_eq!(page_limit(None, 100, 1000).unwrap(), 100);
        assert!(page_limit(Some(0), 100, 1000).is_err());
        assert!(page_limit(Some(1001), 100, 1000).is_err());
        assert!(check_len(0, "plaintext", 4096).is_err());
        assert!(check_len(4097, "plaintext", 4096).is_err());
        assert!(check_len(4096, "plaintext", 4096).is_ok());
    }
}
