//! DescribeKey.

use super::{authorized, check_grant_tokens, required};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::{ExpirationModel, Key, KeySpec, KeyState, KeyUsage, Origin};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    grant_tokens: Option<Vec<String>>,
}

/// KeyMetadata as AWS returns it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata<'a> {
    #[serde(rename = "AWSAccountId")]
    aws_account_id: &'a str,
    key_id: &'a str,
    arn: &'a str,
    creation_date: f64,
    enabled: bool,
    description: &'a str,
    key_usage: KeyUsage,
    key_state: KeyState,
    origin: Origin,
    key_manager: &'static str,
    customer_master_key_spec: KeySpec,
    key_spec: KeySpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_agreement_algorithms: Option<Vec<&'static str>>,
    multi_region: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_deletion_window_in_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_model: Option<ExpirationModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_to: Option<f64>,
    /// The material new encryptions use (symmetric encryption keys with material).
    #[serde(skip_serializing_if = "Option::is_none")]
    current_key_material_id: Option<String>,
}

/// The algorithm lists of a key, as DescribeKey and GetPublicKey give them: only the list its usage calls for.
pub struct Algorithms {
    pub encryption: Option<Vec<&'static str>>,
    pub signing: Option<Vec<&'static str>>,
    pub mac: Option<Vec<&'static str>>,
    pub key_agreement: Option<Vec<&'static str>>,
}

/// The algorithms `key` offers.
pub fn algorithms(key: &Key) -> Algorithms {
    let spec = key.meta.key_spec;
    let mut a = Algorithms { encryption: None, signing: None, mac: None, key_agreement: None };
    match key.meta.key_usage {
        KeyUsage::EncryptDecrypt => {
            a.encryption = Some(match spec.pair() {
                Some(p) => p.encryption_algorithms().iter().map(|e| e.name()).collect(),
                None => vec!["SYMMETRIC_DEFAULT"],
            });
        }
        KeyUsage::SignVerify => {
            a.signing = spec.pair().map(|p| p.signing_algorithms().iter().map(|s| s.name()).collect());
        }
        KeyUsage::GenerateVerifyMac => a.mac = spec.hmac().map(|h| vec![h.algorithm().name()]),
        KeyUsage::KeyAgreement => a.key_agreement = Some(vec!["ECDH"]),
    }
    a
}

/// The metadata of `key`.
pub fn metadata<'a>(svc: &'a Service, key: &'a Key) -> KeyMetadata<'a> {
    let algs = algorithms(key);
    KeyMetadata {
        aws_account_id: &svc.scope.account_id,
        key_id: &key.meta.key_id,
        arn: &key.arn,
        creation_date: key.meta.creation_date,
        enabled: key.meta.key_state == KeyState::Enabled,
        description: &key.meta.description,
        key_usage: key.meta.key_usage,
        key_state: key.meta.key_state,
        origin: key.meta.origin,
        key_manager: if key.meta.aws_managed { "AWS" } else { "CUSTOMER" },
        customer_master_key_spec: key.meta.key_spec,
        key_spec: key.meta.key_spec,
        encryption_algorithms: algs.encryption,
        signing_algorithms: algs.signing,
        mac_algorithms: algs.mac,
        key_agreement_algorithms: algs.key_agreement,
        multi_region: false,
        deletion_date: key.meta.deletion_date,
        pending_deletion_window_in_days: key.meta.pending_window_days,
        expiration_model: key.meta.imported.as_ref().and_then(|i| i.expiration_model),
        valid_to: key.meta.imported.as_ref().and_then(|i| i.valid_to),
        current_key_material_id: if key.is_symmetric() { key.current_material_id() } else { None },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response<'a> {
    key_metadata: KeyMetadata<'a>,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    check_grant_tokens(&req.grant_tokens)?;
    let key = authorized(svc, caller, &required(req.key_id, "keyId")?, "kms:DescribeKey", |_| {}).await?;
    super::respond(Response { key_metadata: metadata(svc, &key) })
}
