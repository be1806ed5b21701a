//! ScheduleKeyDeletion.

use super::{authorized_key, constraint, required, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::KeyState;
use serde::{Deserialize, Serialize};

/// Default and bounds of PendingWindowInDays.
const DEFAULT_WINDOW_DAYS: i64 = 30;
const MIN_WINDOW_DAYS: i64 = 7;
const MAX_WINDOW_DAYS: i64 = 30;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    pending_window_in_days: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    key_id: &'a str,
    deletion_date: f64,
    key_state: KeyState,
    pending_window_in_days: u32,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let days = req.pending_window_in_days.unwrap_or(DEFAULT_WINDOW_DAYS);
    if !(MIN_WINDOW_DAYS..=MAX_WINDOW_DAYS).contains(&days) {
        return Err(constraint(days, "pendingWindowInDays", "Member must have value between 7 and 30"));
    }
    let days = u32::try_from(days).map_err(|_| Error::Internal("window".into()))?;
    let key = authorized_key(svc, caller, &key_id, "kms:ScheduleKeyDeletion", |c| {
        c.set("kms:ScheduleKeyDeletionPendingWindowInDays", days.to_string());
    })
    .await?;
    let deletion_date = svc.clock.now_secs() + f64::from(days) * 86_400.0;
    let updated = svc
        .keys
        .update(&key.meta.key_id, |key| {
            key.check_not_pending_deletion()?;
            key.meta.key_state = KeyState::PendingDeletion;
            key.meta.deletion_date = Some(deletion_date);
            key.meta.pending_window_days = Some(days);
            Ok(())
        })
        .await?;
    tracing::info!(key_id = %key.meta.key_id, days, "key deletion scheduled");
    respond(Response {
        key_id: &updated.arn,
        deletion_date,
        key_state: KeyState::PendingDeletion,
        pending_window_in_days: days,
    })
}
