//! GenerateRandom.

use super::{b64, constraint, refuse_recipient, required, respond};
use crate::error::Error;
use crate::principals::Caller;
use crate::service::Service;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    number_of_bytes: Option<i64>,
    custom_key_store_id: Option<String>,
    recipient: Option<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    #[serde(serialize_with = "b64")]
    plaintext: &'a [u8],
}

pub async fn run(_svc: &Service, _caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    let n = required(req.number_of_bytes, "numberOfBytes")?;
    if !(1..=1024).contains(&n) {
        return Err(constraint(n, "numberOfBytes", "Member must have value between 1 and 1024"));
    }
    if req.custom_key_store_id.is_some() {
        return Err(Error::UnsupportedOperation("Custom key stores are not supported by this key service".into()));
    }
    refuse_recipient(&req.recipient)?;
    let mut bytes = Zeroizing::new(vec![0u8; usize::try_from(n).unwrap_or(0)]);
    getrandom::fill(&mut bytes).map_err(|_| Error::Internal("random source failed".into()))?;
    respond(Response { plaintext: &bytes })
}
