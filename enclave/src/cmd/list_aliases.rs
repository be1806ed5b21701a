//! ListAliases.

use super::{decode_marker, encode_marker, page_limit, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::ids::parse_direct_key_ref;
use crate::state::keys::Lookup;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    alias_name: String,
    alias_arn: String,
    target_key_id: String,
    creation_date: f64,
    last_updated_date: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response {
    aliases: Vec<Entry>,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    crate::access::authz::authorize_account(svc, caller, "kms:ListAliases")?;
    let limit = page_limit(req.limit, 50, 100)?;
    let mut after = req.marker.as_deref().map(|m| decode_marker('A', m)).transpose()?;
    let filter = match req.key_id.as_deref() {
        Some(k) => {
            let id = parse_direct_key_ref(k, &svc.scope)?;
            if svc.keys.get(&id).await?.is_none() {
                return Err(Error::NotFound(format!("Key '{}' does not exist", svc.scope.key_arn(&id))));
            }
            Some(id)
        }
        None => None,
    };
    let mut out = Vec::new();
    let mut more = true;
    // Without a filter one page suffices; with one, scan store pages until the page is full or the store is done.
    while more && out.len() < limit as usize {
        let want = limit - u32::try_from(out.len()).unwrap_or(limit);
        let (page, last, page_more) = svc.aliases.list(after.as_deref(), want).await?;
        more = page_more;
        // Continue after the last record listed, even one skipped because it failed its checks.
        let Some(last) = last else { break };
        after = Some(last);
        for a in page {
            if filter.as_deref().is_some_and(|f| a.target_key_id != f) {
                continue;
            }
            // The aliases of a destroyed key are deleted, as AWS deletes them with the key.
            // A target key whose record fails its checks does not take the listing down: the alias is listed, and
            // the key answers KMSInternalException on its own.
            match svc.keys.lookup(&a.target_key_id).await {
                Ok(Lookup::Destroyed) => {
                    if let Err(e) = svc.aliases.delete_if_targets(&a.name, &a.target_key_id).await {
                        tracing::error!(alias = %a.name, error = ?e, "deleting a destroyed key's alias failed");
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(alias = %a.name, key_id = %a.target_key_id, error = ?e, "alias target unreadable")
                }
            }
            out.push(Entry {
                alias_arn: svc.scope.alias_arn(&a.name),
                alias_name: a.name,
                target_key_id: a.target_key_id,
                creation_date: a.creation_date,
                last_updated_date: a.last_updated_date,
            });
        }
    }
    let next_marker = if more { after.as_deref().map(|l| encode_marker('A', l)) } else { None };
    respond(Response { aliases: out, truncated: next_marker.is_some(), next_marker })
}
