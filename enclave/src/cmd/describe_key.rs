//! DescribeKey.

use super::{authorized, check_grant_tokens, required};
use crate::error::Error;
use crate::keys::{ExpirationModel, Key, KeySpec, KeyState, KeyUsage, Origin};
use crate::principals::Caller;
use crate::service::Service;
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
    encryption_algorithms: [&'static str; 1],
    multi_region: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_deletion_window_in_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_model: Option<ExpirationModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_to: Option<f64>,
}

/// The metadata of `key`.
pub fn metadata<'a>(svc: &'a Service, key: &'a Key) -> KeyMetadata<'a> {
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
        key_manager: "CUSTOMER",
        customer_master_key_spec: key.meta.key_spec,
        key_spec: key.meta.key_spec,
        encryption_algorithms: ["SYMMETRIC_DEFAULT"],
        multi_region: false,
        deletion_date: key.meta.deletion_date,
        pending_deletion_window_in_days: key.meta.pending_window_days,
        expiration_model: key.meta.imported.as_ref().and_then(|i| i.expiration_model),
        valid_to: key.meta.imported.as_ref().and_then(|i| i.valid_to),
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
