//! DeleteAlias.

use super::required;
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::aliases::validate_name;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    alias_name: Option<String>,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let name = required(req.alias_name, "aliasName")?;
    validate_name(&name)?;
    super::create_alias::authorize_current_target(svc, caller, &name, "kms:DeleteAlias").await?;
    svc.aliases.delete(&name).await?;
    tracing::info!(alias = %name, "alias deleted");
    Ok(b"{}".to_vec())
}
