//! CreateAlias and UpdateAlias: the same request and checks; one creates the alias, the other retargets it.

use super::{key_not_found, required};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::aliases::validate_name;
use crate::state::ids::parse_direct_key_ref;
use crate::state::keys::Lookup;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

/// CreateAlias (`update` false) or UpdateAlias (`update` true).
pub async fn run(svc: &Service, caller: &Caller, req: Request, update: bool) -> Result<Vec<u8>, Error> {
    let name = required(req.alias_name, "aliasName")?;
    let target = required(req.target_key_id, "targetKeyId")?;
    validate_name(&name)?;
    let key_id = parse_direct_key_ref(&target, &svc.scope)?;
    let key = svc.keys.get(&key_id).await?.ok_or_else(|| key_not_found(svc, &key_id))?;
    let action = if update { "kms:UpdateAlias" } else { "kms:CreateAlias" };
    crate::access::authz::authorize(svc, caller, &key, action, |_| {})?;
    if update {
        // Retargeting needs the permission on the key the alias leaves too.
        authorize_current_target(svc, caller, &name, "kms:UpdateAlias").await?;
    }
    key.check_not_pending_deletion()?;
    let now = svc.clock.now_secs();
    if update {
        svc.aliases.update(&name, &key_id, now).await?;
    } else {
        svc.aliases.create(&name, &key_id, now).await?;
    }
    tracing::info!(alias = %name, key_id = %key_id, update, "alias written");
    Ok(b"{}".to_vec())
}

/// Authorizes `action` on the key an existing alias points to. Nothing to check if the alias is missing (which the
/// operation then reports) or a tombstone proves its key destroyed. A target the store answers "unknown" for, with no
/// tombstone, fails closed: keys are never deleted without a tombstone, so only a host hiding the key's record gets
/// there, and skipping the check would let a caller without rights on the victim key take its alias.
pub async fn authorize_current_target(
    svc: &Service,
    caller: &Caller,
    name: &str,
    action: &'static str,
) -> Result<(), Error> {
    let Some(alias) = svc.aliases.get(name).await? else { return Ok(()) };
    match svc.keys.lookup(&alias.target_key_id).await? {
        Lookup::Live(current) => crate::access::authz::authorize(svc, caller, &current, action, |_| {}),
        Lookup::Destroyed => Ok(()),
        Lookup::Unknown => Err(Error::Internal(format!(
            "alias {name} targets key {} which the store does not hold and no tombstone proves destroyed",
            alias.target_key_id
        ))),
    }
}
