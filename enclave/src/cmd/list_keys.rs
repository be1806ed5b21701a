//! ListKeys.

use super::{decode_marker, encode_marker, page_limit, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    key_id: String,
    key_arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    keys: Vec<Entry>,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    crate::access::authz::authorize_account(svc, caller, "kms:ListKeys")?;
    let limit = page_limit(req.limit, 100, 1000)?;
    let after = req.marker.as_deref().map(|m| decode_marker('K', m)).transpose()?;
    let (ids, last, more) = svc.keys.list(after.as_deref(), limit).await?;
    // The marker continues after the last record listed, even one skipped because it failed its checks.
    let next_marker = if more { last.as_deref().map(|l| encode_marker('K', l)) } else { None };
    let keys = ids.into_iter().map(|id| Entry { key_arn: svc.scope.key_arn(&id), key_id: id }).collect();
    respond(Response { keys, truncated: next_marker.is_some(), next_marker })
}
