//! GetKeyPolicy, PutKeyPolicy and ListKeyPolicies. Every key has exactly one policy, named `default`. The policy is
//! stored and returned here; its evaluation comes with access control.

use super::create_key::policy as check_policy;
use super::{authorized_key, required, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use serde::{Deserialize, Serialize};

const POLICY_NAME: &str = "default";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRequest {
    key_id: Option<String>,
    policy_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRequest {
    key_id: Option<String>,
    policy_name: Option<String>,
    policy: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRequest {
    key_id: Option<String>,
    limit: Option<i64>,
    #[allow(dead_code)]
    marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetResponse<'a> {
    policy: &'a str,
    policy_name: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListResponse {
    policy_names: [&'static str; 1],
    truncated: bool,
}

fn check_name(name: Option<&str>) -> Result<(), Error> {
    match name {
        None | Some(POLICY_NAME) => Ok(()),
        Some(other) => Err(Error::NotFound(format!("No such policy exists: {other}"))),
    }
}

pub async fn get(svc: &Service, caller: &Caller, req: GetRequest) -> Result<Vec<u8>, Error> {
    check_name(req.policy_name.as_deref())?;
    let key = authorized_key(svc, caller, &required(req.key_id, "keyId")?, "kms:GetKeyPolicy", |_| {}).await?;
    respond(GetResponse { policy: &key.meta.policy, policy_name: POLICY_NAME })
}

pub async fn put(svc: &Service, caller: &Caller, req: PutRequest) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let (policy, parsed) = check_policy(Some(required(req.policy, "policy")?), svc)?;
    let bypass = req.bypass_policy_lockout_safety_check == Some(true);
    check_name(req.policy_name.as_deref())?;
    let key = authorized_key(svc, caller, &key_id, "kms:PutKeyPolicy", |c| {
        c.set("kms:BypassPolicyLockoutSafetyCheck", if bypass { "true" } else { "false" });
    })
    .await?;
    let bindings = svc.principals.bindings(&parsed).await?;
    let parsed = parsed.bind(Some(std::sync::Arc::new(bindings.clone())));
    if !bypass {
        crate::access::authz::check_lockout(caller, &parsed, &key.arn)?;
    }
    crate::access::authz::check_attestation_gate(&parsed, &key.arn)?;
    svc.keys
        .update(&key.meta.key_id, |key| {
            key.meta.policy = crate::state::keys::shared_policy(&policy);
            key.meta.policy_principals = Some(bindings.clone());
            Ok(())
        })
        .await?;
    tracing::info!(key_id = %key.meta.key_id, "key policy replaced");
    Ok(b"{}".to_vec())
}

pub async fn list(svc: &Service, caller: &Caller, req: ListRequest) -> Result<Vec<u8>, Error> {
    super::page_limit(req.limit, 100, 1000)?;
    authorized_key(svc, caller, &required(req.key_id, "keyId")?, "kms:ListKeyPolicies", |_| {}).await?;
    respond(ListResponse { policy_names: [POLICY_NAME], truncated: false })
}
