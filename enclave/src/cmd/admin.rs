//! Principal and access-key administration (our extension, `EnclaveKms.*`): admin principals only, except
//! GetCallerIdentity. Secrets are returned once, by CreateAccessKey, and otherwise live only sealed in the store.

use super::{required, respond};
use crate::access::authz::authorize_admin;
use crate::access::principals::{Caller, check_identity_policy, invalid_arn, parse_arn, principal_not_found};
use crate::error::Error;
use crate::service::Service;
use serde::{Deserialize, Serialize};

/// Most access keys one principal may have, as IAM allows per user.
pub const MAX_ACCESS_KEYS: usize = 2;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PrincipalRequest {
    principal_arn: Option<String>,
    admin: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PrincipalPolicyRequest {
    principal_arn: Option<String>,
    policy_document: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyRequest {
    access_key_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PrincipalOut<'a> {
    principal_arn: &'a str,
    principal_id: &'a str,
    admin: bool,
    has_policy: bool,
    creation_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_ids: Option<Vec<&'a str>>,
}

fn arn_of(req: PrincipalRequest) -> Result<(String, bool), Error> {
    let arn = required(req.principal_arn, "principalArn")?;
    if parse_arn(&arn).is_none() {
        return Err(invalid_arn(&arn));
    }
    Ok((arn, req.admin.unwrap_or(false)))
}

pub async fn create_principal(svc: &Service, caller: &Caller, req: PrincipalRequest) -> Result<Vec<u8>, Error> {
    authorize_admin(caller, "EnclaveKms:CreatePrincipal")?;
    let (arn, admin) = arn_of(req)?;
    let p = svc.principals.create(&arn, admin, svc.clock.now_secs()).await?;
    tracing::info!(principal = %arn, admin, by = %caller.arn(), "principal created");
    let out = PrincipalOut {
        principal_arn: &p.arn,
        principal_id: &p.id,
        admin: p.admin,
        has_policy: p.policy.is_some(),
        creation_date: p.creation_date,
        access_key_ids: None,
    };
    respond(serde_json::json!({ "Principal": out }))
}

pub async fn delete_principal(svc: &Service, caller: &Caller, req: PrincipalRequest) -> Result<Vec<u8>, Error> {
    authorize_admin(caller, "EnclaveKms:DeletePrincipal")?;
    let (arn, _) = arn_of(req)?;
    let Some(target) = svc.principals.get(&arn).await? else { return Err(principal_not_found(&arn)) };
    if target.admin {
        let admins = svc.principals.list().await?.iter().filter(|p| p.admin).count();
        if admins <= 1 {
            return Err(Error::Validation(format!(
                "{arn} is the last admin principal; create another admin before deleting it"
            )));
        }
    }
    // Access keys first: a principal without keys is harmless, keys without a principal authenticate nobody.
    for (akid, owner, _) in svc.credentials.list().await? {
        if owner == arn {
            svc.credentials.delete(&akid).await?;
        }
    }
    svc.principals.delete(&arn).await?;
    tracing::info!(principal = %arn, by = %caller.arn(), "principal deleted");
    Ok(b"{}".to_vec())
}

pub async fn list_principals(svc: &Service, caller: &Caller) -> Result<Vec<u8>, Error> {
    authorize_admin(caller, "EnclaveKms:ListPrincipals")?;
    let principals = svc.principals.list().await?;
    let keys = svc.credentials.list().await?;
    let out: Vec<PrincipalOut<'_>> = principals
        .iter()
        .map(|p| PrincipalOut {
            principal_arn: &p.arn,
            principal_id: &p.id,
            admin: p.admin,
            has_policy: p.policy.is_some(),
            creation_date: p.creation_date,
            access_key_ids: Some(keys.iter().filter(|(_, o, _)| *o == p.arn).map(|(id, _, _)| id.as_str()).collect()),
        })
        .collect();
    respond(serde_json::json!({ "Principals": out }))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AccessKeyOut<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    principal_arn: &'a str,
    creation_date: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AccessKeyResponse<'a> {
    access_key: AccessKeyOut<'a>,
}

pub async fn create_access_key(svc: &Service, caller: &Caller, req: PrincipalRequest) -> Result<Vec<u8>, Error> {
    authorize_admin(caller, "EnclaveKms:CreateAccessKey")?;
    let (arn, _) = arn_of(req)?;
    if svc.principals.get(&arn).await?.is_none() {
        return Err(principal_not_found(&arn));
    }
    let existing = svc.credentials.list().await?.iter().filter(|(_, o, _)| *o == arn).count();
    if existing >= MAX_ACCESS_KEYS {
        return Err(Error::LimitExceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS} ({arn} has {existing})"
        )));
    }
    let now = svc.clock.now_secs();
    let (akid, secret) = svc.credentials.create(&arn, now).await?;
    tracing::info!(principal = %arn, access_key_id = %akid, by = %caller.arn(), "access key created");
    // Serialized straight from the secret's holder: no copy of the secret outlives the response body.
    respond(AccessKeyResponse {
        access_key: AccessKeyOut {
            access_key_id: &akid,
            secret_access_key: secret.expose_secret(),
            principal_arn: &arn,
            creation_date: now,
        },
    })
}

pub async fn delete_access_key(svc: &Service, caller: &Caller, req: AccessKeyRequest) -> Result<Vec<u8>, Error> {
    authorize_admin(caller, "EnclaveKms:DeleteAccessKey")?;
    let akid = required(req.access_key_id, "accessKeyId")?;
    if !svc.credentials.delete(&akid).await? {
        let shown: String = akid.chars().take(128).collect();
        return Err(Error::NotFound(format!("The Access Key with id {shown} cannot be found")));
    }
    tracing::info!(access_key_id = %akid, by = %caller.arn(), "access key deleted");
    Ok(b"{}".to_vec())
}

pub fn get_caller_identity(_svc: &Service, caller: &Caller) -> Result<Vec<u8>, Error> {
    respond(serde_json::json!({
        "Arn": caller.arn(),
        "Account": caller.account(),
        "AccessKeyId": caller.access_key_id(),
        "UserId": caller.id(),
        "Admin": caller.admin(),
    }))
}

fn policy_target(arn: Option<String>) -> Result<String, Error> {
    let arn = required(arn, "principalArn")?;
    if parse_arn(&arn).is_none() {
        return Err(invalid_arn(&arn));
    }
    Ok(arn)
}

/// Attaches (replacing any) the identity policy of a principal.
pub async fn put_principal_policy(
    svc: &Service,
    caller: &Caller,
    req: PrincipalPolicyRequest,
) -> Result<Vec<u8>, Error> {
    authorize_admin(caller, "EnclaveKms:PutPrincipalPolicy")?;
    let arn = policy_target(req.principal_arn)?;
    let text = required(req.policy_document, "policyDocument")?;
    check_identity_policy(&text)?;
    svc.principals.set_policy(&arn, Some(text)).await?;
    tracing::info!(principal = %arn, by = %caller.arn(), "identity policy attached");
    Ok(b"{}".to_vec())
}

/// The identity policy of a principal; `NotFoundException` if it has none.
pub async fn get_principal_policy(
    svc: &Service,
    caller: &Caller,
    req: PrincipalPolicyRequest,
) -> Result<Vec<u8>, Error> {
    authorize_admin(caller, "EnclaveKms:GetPrincipalPolicy")?;
    let arn = policy_target(req.principal_arn)?;
    let Some(p) = svc.principals.get(&arn).await? else { return Err(principal_not_found(&arn)) };
    let Some(policy) = p.policy.as_deref() else {
        return Err(Error::NotFound(format!("Principal {arn} has no identity policy")));
    };
    respond(serde_json::json!({ "PrincipalArn": arn, "PrincipalId": p.id, "PolicyDocument": policy }))
}

/// Removes the identity policy of a principal; `NotFoundException` if it has none.
pub async fn delete_principal_policy(
    svc: &Service,
    caller: &Caller,
    req: PrincipalPolicyRequest,
) -> Result<Vec<u8>, Error> {
    authorize_admin(caller, "EnclaveKms:DeletePrincipalPolicy")?;
    let arn = policy_target(req.principal_arn)?;
    let Some(p) = svc.principals.get(&arn).await? else { return Err(principal_not_found(&arn)) };
    if p.policy.is_none() {
        return Err(Error::NotFound(format!("Principal {arn} has no identity policy")));
    }
    svc.principals.set_policy(&arn, None).await?;
    tracing::info!(principal = %arn, by = %caller.arn(), "identity policy removed");
    Ok(b"{}".to_vec())
}
