//! CreateKey.

use super::describe_key::metadata;
use super::{constraint, respond};
use crate::access::policy::Policy;
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::{KeyMeta, KeySpec, KeyState, KeyUsage, Origin};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Longest Description.
pub const MAX_DESCRIPTION: usize = 8192;
/// Longest key policy.
const MAX_POLICY: usize = 32768;
/// Most tags on one key.
pub const MAX_TAGS: usize = 50;

/// Key specs AWS offers that this build does not serve: a valid request, refused as unsupported. SM2 stays refused
/// for good (AWS offers it only in its China Regions); the Ed25519, ML-DSA and ML-KEM specs are future work.
const LATER_SPECS: &[&str] =
    &["SM2", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    tag_key: Option<String>,
    tag_value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    policy: Option<String>,
    description: Option<String>,
    key_usage: Option<String>,
    customer_master_key_spec: Option<String>,
    key_spec: Option<String>,
    origin: Option<String>,
    custom_key_store_id: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
    tags: Option<Vec<Tag>>,
    multi_region: Option<bool>,
    xks_key_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    key_metadata: super::describe_key::KeyMetadata<'a>,
}

fn key_spec(req: &Request) -> Result<KeySpec, Error> {
    if req.key_spec.is_some() && req.customer_master_key_spec.is_some() {
        return Err(Error::Validation(
            "You cannot specify KeySpec and CustomerMasterKeySpec in the same request".into(),
        ));
    }
    match req.key_spec.as_deref().or(req.customer_master_key_spec.as_deref()) {
        None => Ok(KeySpec::SymmetricDefault),
        Some(s) => match KeySpec::from_name(s) {
            Some(spec) => Ok(spec),
            None if LATER_SPECS.contains(&s) => {
                Err(Error::UnsupportedOperation(format!("KeySpec {s} is not supported yet by this key service")))
            }
            None => Err(constraint(s, "keySpec", "Member must satisfy enum value set")),
        },
    }
}

/// The key usages AWS allows for each key spec.
fn allowed_usages(spec: KeySpec) -> &'static [KeyUsage] {
    match spec {
        KeySpec::SymmetricDefault => &[KeyUsage::EncryptDecrypt],
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[KeyUsage::EncryptDecrypt, KeyUsage::SignVerify],
        KeySpec::EccNistP256 | KeySpec::EccNistP384 | KeySpec::EccNistP521 => {
            &[KeyUsage::SignVerify, KeyUsage::KeyAgreement]
        }
        KeySpec::EccSecgP256k1 => &[KeyUsage::SignVerify],
        KeySpec::Hmac224 | KeySpec::Hmac256 | KeySpec::Hmac384 | KeySpec::Hmac512 => &[KeyUsage::GenerateVerifyMac],
    }
}

/// KeyUsage (default ENCRYPT_DECRYPT, as AWS), checked against the key spec.
fn key_usage(req: &Request, spec: KeySpec) -> Result<KeyUsage, Error> {
    let usage = match req.key_usage.as_deref() {
        None | Some("ENCRYPT_DECRYPT") => KeyUsage::EncryptDecrypt,
        Some("SIGN_VERIFY") => KeyUsage::SignVerify,
        Some("GENERATE_VERIFY_MAC") => KeyUsage::GenerateVerifyMac,
        Some("KEY_AGREEMENT") => KeyUsage::KeyAgreement,
        // A valid AWS usage (ML-KEM keys) that no key spec served here allows.
        Some(u @ "ENCAPSULATE_DECAPSULATE") => {
            return Err(Error::Validation(format!(
                "The operation failed because the KeyUsage value {u} is not supported for the {} KeySpec",
                spec.name()
            )));
        }
        Some(u) => {
            return Err(constraint(
                u,
                "keyUsage",
                "Member must satisfy enum value set: [SIGN_VERIFY, ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC, KEY_AGREEMENT, \
                 ENCAPSULATE_DECAPSULATE]",
            ));
        }
    };
    if !allowed_usages(spec).contains(&usage) {
        return Err(Error::Validation(format!(
            "The operation failed because the KeyUsage value {} is not supported for the {} KeySpec",
            usage.name(),
            spec.name()
        )));
    }
    Ok(usage)
}

fn origin(req: &Request) -> Result<Origin, Error> {
    match req.origin.as_deref() {
        None | Some("AWS_KMS") => Ok(Origin::AwsKms),
        Some("EXTERNAL") => Ok(Origin::External),
        Some(o @ ("AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE")) => {
            Err(Error::UnsupportedOperation(format!("Origin {o} is not supported yet by this key service")))
        }
        Some(o) => Err(constraint(
            o,
            "origin",
            "Member must satisfy enum value set: [EXTERNAL, AWS_KMS, AWS_CLOUDHSM, EXTERNAL_KEY_STORE]",
        )),
    }
}

/// Checks tags by AWS's rules; returns them as pairs.
pub fn tags(tags: Option<Vec<Tag>>) -> Result<Vec<(String, String)>, Error> {
    check_tags(tags.unwrap_or_default())
}

/// Whether two tag keys name the same condition key (`aws:ResourceTag/KEY` and `aws:RequestTag/KEY` match keys
/// ignoring case, as the policy engine does), so that one could shadow the other.
pub fn same_tag_key(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// Checks tags of one request by AWS's rules (at most 50, lengths, `aws:` prefix in any case, no two keys equal
/// ignoring case: they would land on one condition key, and the later would shadow the earlier in an ABAC policy).
pub fn check_tags(tags: Vec<Tag>) -> Result<Vec<(String, String)>, Error> {
    if tags.len() > MAX_TAGS {
        return Err(Error::Tag(format!("A key can have at most {MAX_TAGS} tags")));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(tags.len());
    for t in tags {
        let k = t.tag_key.ok_or_else(|| Error::missing("tags.member.tagKey"))?;
        let v = t.tag_value.ok_or_else(|| Error::missing("tags.member.tagValue"))?;
        if k.is_empty() || k.chars().count() > 128 {
            return Err(constraint(&k, "tags.member.tagKey", "Member must have length between 1 and 128"));
        }
        if v.chars().count() > 256 {
            return Err(constraint(&v, "tags.member.tagValue", "Member must have length between 0 and 256"));
        }
        if k.as_bytes().get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"aws:")) {
            return Err(Error::Tag("Tags beginning with aws: are reserved".into()));
        }
        if !seen.insert(k.to_lowercase()) {
            return Err(Error::Tag(format!("Duplicate tag key (tag keys are compared ignoring case): {k}")));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Checks a key policy document: JSON with a Statement. Full evaluation comes with access control.
/// The key policy of a request (AWS's default when there is none), checked by the policy engine: anything it cannot
/// parse is `MalformedPolicyDocumentException`.
pub fn policy(p: Option<String>, svc: &Service) -> Result<(String, Policy), Error> {
    let p = p.unwrap_or_else(|| default_policy(&svc.scope.account_id));
    if p.is_empty() || p.len() > MAX_POLICY {
        return Err(constraint("<policy>", "policy", &format!("Member must have length between 1 and {MAX_POLICY}")));
    }
    let parsed = Policy::parse(&p)?;
    Ok((p, parsed))
}

/// The default key policy AWS gives a key created without one.
pub fn default_policy(account: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let key_spec = key_spec(&req)?;
    let key_usage = key_usage(&req, key_spec)?;
    let origin = origin(&req)?;
    if req.custom_key_store_id.is_some() || req.xks_key_id.is_some() {
        return Err(Error::UnsupportedOperation("Custom key stores are not supported by this key service".into()));
    }
    if req.multi_region == Some(true) {
        return Err(Error::UnsupportedOperation("Multi-Region keys are not supported by this key service".into()));
    }
    let description = req.description.unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(constraint("<description>", "description", "Member must have length less than or equal to 8192"));
    }
    crate::access::authz::authorize_account(svc, caller, "kms:CreateKey")?;
    let custom_policy = req.policy.is_some();
    let (policy, parsed) = policy(req.policy, svc)?;
    let tags = tags(req.tags)?;
    let (key_id, _) = crate::state::ids::new_key_id()?;
    let bindings = svc.principals.bindings(&parsed).await?;
    let parsed = parsed.bind(Some(std::sync::Arc::new(bindings.clone())));
    if custom_policy && req.bypass_policy_lockout_safety_check != Some(true) {
        crate::access::authz::check_lockout(caller, &parsed, &svc.scope.key_arn(&key_id))?;
    }
    crate::access::authz::check_attestation_gate(&parsed, &svc.scope.key_arn(&key_id))?;
    let meta = KeyMeta {
        key_id,
        creation_date: svc.clock.now_secs(),
        description,
        key_usage,
        key_spec,
        key_state: if origin == Origin::External { KeyState::PendingImport } else { KeyState::Enabled },
        origin,
        tags,
        policy: crate::state::keys::shared_policy(&policy),
        deletion_date: None,
        pending_window_days: None,
        rotation_period_days: None,
        next_rotation_date: None,
        rotations: Vec::new(),
        imported: None,
        policy_principals: Some(bindings),
        aws_managed: false,
    };
    // RSA generation is bounded per vCPU and per principal (ThrottlingException past the principal's limit).
    let _ticket =
        if meta.key_spec.name().starts_with("RSA_") { Some(svc.keygen.ticket(caller.arn()).await?) } else { None };
    let key = svc.keys.create(meta).await?;
    crate::net::server::note_key(key.uuid);
    tracing::info!(key_id = %key.meta.key_id, "key created");
    respond(Response { key_metadata: metadata(svc, &key) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str) -> Tag {
        Tag { tag_key: Some(k.into()), tag_value: Some("v".into()) }
    }

    fn request(json: &str) -> Request {
        serde_json::from_str(json).expect("test request")
    }

    /// AWS's 2025 ML-KEM specs are valid requests refused as unsupported, not unknown enum values.
    #[test]
    fn ml_kem_specs_are_unsupported_not_invalid() {
        for spec in ["ML_KEM_512", "ML_KEM_768", "ML_KEM_1024", "SM2", "ECC_NIST_EDWARDS25519", "ML_DSA_65"] {
            let req = request(&format!(r#"{{"KeySpec":"{spec}"}}"#));
            assert!(matches!(key_spec(&req), Err(Error::UnsupportedOperation(_))), "{spec}");
        }
        let req = request(r#"{"KeySpec":"ML_KEM_2048"}"#);
        assert!(matches!(key_spec(&req), Err(Error::Validation(_))));
    }

    /// ENCAPSULATE_DECAPSULATE is a usage AWS knows: refused for the spec, and listed in the enum message.
    #[test]
    fn encapsulate_usage_is_refused_for_the_spec() {
        let req = request(r#"{"KeyUsage":"ENCAPSULATE_DECAPSULATE"}"#);
        match key_usage(&req, KeySpec::SymmetricDefault) {
            Err(Error::Validation(m)) => assert_eq!(
                m,
                "The operation failed because the KeyUsage value ENCAPSULATE_DECAPSULATE is not supported for the \
                 SYMMETRIC_DEFAULT KeySpec"
            ),
            other => panic!("{:?}", other.map(|u| u.name())),
        }
        let req = request(r#"{"KeyUsage":"WRAP"}"#);
        match key_usage(&req, KeySpec::SymmetricDefault) {
            Err(Error::Validation(m)) => assert!(m.ends_with("KEY_AGREEMENT, ENCAPSULATE_DECAPSULATE]"), "{m}"),
            other => panic!("{:?}", other.map(|u| u.name())),
        }
    }

    /// Issue 12 item 3: `classification` and `Classification` land on one condition key.
    #[test]
    fn tag_keys_equal_ignoring_case_and_any_case_of_aws_prefix_are_refused() {
        assert!(check_tags(vec![tag("classification"), tag("project")]).is_ok());
        assert!(matches!(check_tags(vec![tag("classification"), tag("Classification")]), Err(Error::Tag(_))));
        assert!(matches!(check_tags(vec![tag("ÄRGER"), tag("ärger")]), Err(Error::Tag(_))));
        for reserved in ["aws:key1", "AWS:key1", "Aws:key1"] {
            assert!(matches!(check_tags(vec![tag(reserved)]), Err(Error::Tag(_))), "{reserved}");
        }
        assert!(check_tags(vec![tag("awsome"), tag("aw")]).is_ok());
        assert!(same_tag_key("Team", "tEAM") && !same_tag_key("team", "teams"));
    }
}
