//! EnableKey and DisableKey.

use super::{authorized_key, required};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::KeyState;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request, enable: bool) -> Result<Vec<u8>, Error> {
    let key = authorized_key(
        svc,
        caller,
        &required(req.key_id, "keyId")?,
        if enable { "kms:EnableKey" } else { "kms:DisableKey" },
        |_| {},
    )
    .await?;
    let target = if enable { KeyState::Enabled } else { KeyState::Disabled };
    svc.keys
        .update(&key.meta.key_id, |key| {
            match key.meta.key_state {
                KeyState::Enabled | KeyState::Disabled => {}
                KeyState::PendingDeletion => key.check_not_pending_deletion()?,
                KeyState::PendingImport => {
                    return Err(Error::KmsInvalidState(format!("{} is pending import.", key.arn)));
                }
            }
            key.meta.key_state = target;
            Ok(())
        })
        .await?;
    tracing::info!(key_id = %key.meta.key_id, enabled = enable, "key state changed");
    Ok(b"{}".to_vec())
}
