//! EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand and ListKeyRotations. A rotation
//! adds a backing-key version: Encrypt uses the newest, Decrypt finds a ciphertext's version in its header, so every
//! old ciphertext keeps decrypting.

use super::{authorized_key, constraint, decode_marker, encode_marker, page_limit, required, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::Key;
use serde::{Deserialize, Serialize};

const DEFAULT_PERIOD_DAYS: i64 = 365;
const MIN_PERIOD_DAYS: i64 = 90;
const MAX_PERIOD_DAYS: i64 = 2560;
/// AWS's limit of on-demand rotations per key.
pub const MAX_ON_DEMAND_ROTATIONS: usize = 25;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnableRequest {
    key_id: Option<String>,
    rotation_period_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyRequest {
    key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRequest {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
    include_key_material: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StatusResponse<'a> {
    key_rotation_enabled: bool,
    key_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation_period_in_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_rotation_date: Option<f64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdResponse<'a> {
    key_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RotationOut<'a> {
    key_id: &'a str,
    key_material_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_material_state: Option<&'static str>,
    rotation_date: f64,
    rotation_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListResponse<'a> {
    rotations: Vec<RotationOut<'a>>,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

/// Rotation settings change only on an Enabled or Disabled key, as AWS's key-state table says (Disabled →
/// DisabledException, PendingDeletion → KMSInvalidStateException). The state is checked before the spec, as AWS
/// checks it: a disabled asymmetric key answers DisabledException, not UnsupportedOperationException.
fn check_rotatable(key: &Key) -> Result<(), Error> {
    key.check_usable()?;
    if !key.is_symmetric() {
        return Err(Error::UnsupportedOperation(format!(
            "{} is a {} key: only symmetric encryption keys can be rotated",
            key.arn,
            key.meta.key_spec.name()
        )));
    }
    if key.meta.origin == crate::state::keys::Origin::External {
        return Err(Error::UnsupportedOperation(format!(
            "{} has imported key material: this key service does not rotate imported keys",
            key.arn
        )));
    }
    Ok(())
}

pub async fn enable(svc: &Service, caller: &Caller, req: EnableRequest) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let days = req.rotation_period_in_days.unwrap_or(DEFAULT_PERIOD_DAYS);
    if !(MIN_PERIOD_DAYS..=MAX_PERIOD_DAYS).contains(&days) {
        return Err(constraint(days, "rotationPeriodInDays", "Member must have value between 90 and 2560"));
    }
    let days = u32::try_from(days).map_err(|_| Error::Internal("period".into()))?;
    let key = authorized_key(svc, caller, &key_id, "kms:EnableKeyRotation", |c| {
        c.set("kms:RotationPeriodInDays", days.to_string());
    })
    .await?;
    let now = svc.clock.now_secs();
    svc.keys
        .update(&key.meta.key_id, |key| {
            check_rotatable(key)?;
            key.meta.rotation_period_days = Some(days);
            key.meta.next_rotation_date = Some(now + f64::from(days) * 86_400.0);
            Ok(())
        })
        .await?;
    Ok(b"{}".to_vec())
}

pub async fn disable(svc: &Service, caller: &Caller, req: KeyRequest) -> Result<Vec<u8>, Error> {
    let key = authorized_key(svc, caller, &required(req.key_id, "keyId")?, "kms:DisableKeyRotation", |_| {}).await?;
    svc.keys
        .update(&key.meta.key_id, |key| {
            check_rotatable(key)?;
            key.meta.rotation_period_days = None;
            key.meta.next_rotation_date = None;
            Ok(())
        })
        .await?;
    Ok(b"{}".to_vec())
}

pub async fn status(svc: &Service, caller: &Caller, req: KeyRequest) -> Result<Vec<u8>, Error> {
    let key = authorized_key(svc, caller, &required(req.key_id, "keyId")?, "kms:GetKeyRotationStatus", |_| {}).await?;
    respond(StatusResponse {
        key_rotation_enabled: key.meta.rotation_period_days.is_some(),
        key_id: &key.arn,
        rotation_period_in_days: key.meta.rotation_period_days,
        next_rotation_date: key.meta.next_rotation_date,
    })
}

pub async fn on_demand(svc: &Service, caller: &Caller, req: KeyRequest) -> Result<Vec<u8>, Error> {
    let key = authorized_key(svc, caller, &required(req.key_id, "keyId")?, "kms:RotateKeyOnDemand", |_| {}).await?;
    let now = svc.clock.now_secs();
    let updated = svc
        .keys
        .update(&key.meta.key_id, |key| {
            check_rotatable(key)?;
            if key.meta.rotations.iter().filter(|r| r.on_demand).count() >= MAX_ON_DEMAND_ROTATIONS {
                return Err(Error::LimitExceeded(format!(
                    "{} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations",
                    key.arn
                )));
            }
            let version = key.rotate(now, true)?;
            tracing::info!(key_id = %key.meta.key_id, version, "on-demand rotation");
            Ok(())
        })
        .await?;
    respond(KeyIdResponse { key_id: &updated.arn })
}

pub async fn list(svc: &Service, caller: &Caller, req: ListRequest) -> Result<Vec<u8>, Error> {
    let limit = page_limit(req.limit, 100, 1000)? as usize;
    let after: Option<u32> = match req.marker.as_deref() {
        Some(m) => Some(decode_marker('R', m)?.parse().map_err(|_| Error::InvalidMarker)?),
        None => None,
    };
    // ROTATIONS_ONLY (the default) or ALL_KEY_MATERIAL, which adds each material's state.
    let with_state = match req.include_key_material.as_deref() {
        None | Some("ROTATIONS_ONLY") => false,
        Some("ALL_KEY_MATERIAL") => true,
        Some(other) => {
            return Err(constraint(
                other.chars().take(64).collect::<String>(),
                "includeKeyMaterial",
                "Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]",
            ));
        }
    };
    let key = authorized_key(svc, caller, &required(req.key_id, "keyId")?, "kms:ListKeyRotations", |_| {}).await?;
    let current = key.current().map(|(v, _)| v);
    let mut rotations: Vec<_> = key.meta.rotations.iter().filter(|r| after.is_none_or(|a| r.version > a)).collect();
    let truncated = rotations.len() > limit;
    rotations.truncate(limit);
    let next_marker =
        if truncated { rotations.last().map(|r| encode_marker('R', &r.version.to_string())) } else { None };
    let rotations = rotations
        .into_iter()
        .map(|r| RotationOut {
            key_id: &key.arn,
            key_material_id: key.material_id(r.version),
            key_material_state: with_state.then_some(if Some(r.version) == current {
                "CURRENT"
            } else {
                "NON_CURRENT"
            }),
            rotation_date: r.date,
            rotation_type: if r.on_demand { "ON_DEMAND" } else { "AUTOMATIC" },
        })
        .collect();
    respond(ListResponse { rotations, truncated, next_marker })
}
