//! CancelKeyDeletion: back to Disabled, as AWS does.

use super::{authorized_key, required, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::KeyState;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    key_id: &'a str,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let key = authorized_key(svc, caller, &required(req.key_id, "keyId")?, "kms:CancelKeyDeletion", |_| {}).await?;
    let updated = svc
        .keys
        .update(&key.meta.key_id, |key| {
            if key.meta.key_state != KeyState::PendingDeletion {
                return Err(Error::KmsInvalidState(format!("{} is not pending deletion.", key.arn)));
            }
            key.meta.key_state = KeyState::Disabled;
            key.meta.deletion_date = None;
            key.meta.pending_window_days = None;
            Ok(())
        })
        .await?;
    tracing::info!(key_id = %key.meta.key_id, "key deletion cancelled");
    respond(Response { key_id: &updated.arn })
}
