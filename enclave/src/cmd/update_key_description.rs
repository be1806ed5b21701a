//! UpdateKeyDescription.

use super::{authorized_key, constraint, required};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    description: Option<String>,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let description = required(req.description, "description")?;
    if description.chars().count() > super::create_key::MAX_DESCRIPTION {
        return Err(constraint("<description>", "description", "Member must have length less than or equal to 8192"));
    }
    let key = authorized_key(svc, caller, &key_id, "kms:UpdateKeyDescription", |_| {}).await?;
    svc.keys
        .update(&key.meta.key_id, |key| {
            key.check_not_pending_deletion()?;
            key.meta.description = description.clone();
            Ok(())
        })
        .await?;
    Ok(b"{}".to_vec())
}
