//! CreateAlias and UpdateAlias: the same request and checks; one creates the alias, the other retargets it.

use super::{key_not_found, required};
use crate::aliases::validate_name;
use crate::error::Error;
use crate::ids::parse_direct_key_ref;
use crate::service::Service;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

/// CreateAlias (`update` false) or UpdateAlias (`update` true).
pub async fn run(svc: &Service, req: Request, update: bool) -> Result<Vec<u8>, Error> {
    let name = required(req.alias_name, "aliasName")?;
    let target = required(req.target_key_id, "targetKeyId")?;
    validate_name(&name)?;
    let key_id = parse_direct_key_ref(&target, &svc.scope)?;
    let key = svc.keys.get(&key_id).await?.ok_or_else(|| key_not_found(svc, &key_id))?;
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
