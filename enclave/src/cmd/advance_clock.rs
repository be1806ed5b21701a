//! EnclaveKms.AdvanceClock (our extension, simulator mode only): moves the lifecycle clock forward so that tests
//! reach deletion dates without sleeping, then destroys the keys whose date has passed.

use super::{constraint, required, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use serde::{Deserialize, Serialize};

/// Largest single step: ten years.
const MAX_SECONDS: i64 = 10 * 366 * 86_400;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    seconds: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    offset_seconds: i64,
    destroyed_keys: usize,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    if !svc.nsm.is_simulated() {
        return Err(Error::UnsupportedOperation("The clock can be moved only in simulator mode".into()));
    }
    crate::access::authz::authorize_admin(caller, "EnclaveKms:AdvanceClock")?;
    let seconds = required(req.seconds, "seconds")?;
    if !(1..=MAX_SECONDS).contains(&seconds) {
        return Err(constraint(seconds, "seconds", &format!("Member must have value between 1 and {MAX_SECONDS}")));
    }
    let offset_ms = svc.clock.advance_ms(seconds.saturating_mul(1000));
    let destroyed_keys = svc.keys.sweep().await?;
    tracing::warn!(offset_seconds = offset_ms / 1000, destroyed_keys, "SIMULATOR: lifecycle clock moved forward");
    respond(Response { offset_seconds: offset_ms / 1000, destroyed_keys })
}
