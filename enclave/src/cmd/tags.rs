//! TagResource, UntagResource and ListResourceTags.

use super::create_key::{MAX_TAGS, Tag, check_tags, same_tag_key};
use super::{authorized_key, decode_marker, encode_marker, page_limit, required, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagRequest {
    key_id: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagRequest {
    key_id: Option<String>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRequest {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagOut<'a> {
    tag_key: &'a str,
    tag_value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ListResponse<'a> {
    tags: Vec<TagOut<'a>>,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

pub async fn tag(svc: &Service, caller: &Caller, req: TagRequest) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let new = check_tags(required(req.tags, "tags")?)?;
    let key = authorized_key(svc, caller, &key_id, "kms:TagResource", |c| {
        c.set_all("aws:TagKeys", new.iter().map(|(k, _)| k.clone()));
        for (k, v) in &new {
            c.set(&format!("aws:RequestTag/{k}"), v.clone());
        }
    })
    .await?;
    svc.keys
        .update(&key.meta.key_id, |key| {
            key.check_not_pending_deletion()?;
            for (k, v) in &new {
                match key.meta.tags.iter_mut().find(|(tk, _)| same_tag_key(tk, k)) {
                    Some(existing) if existing.0 == *k => existing.1 = v.clone(),
                    // A key equal ignoring case would shadow the existing one in `aws:ResourceTag/...` conditions.
                    Some(existing) => {
                        return Err(Error::Tag(format!(
                            "Tag key {k} differs only in case from the key's existing tag key {}",
                            existing.0
                        )));
                    }
                    None => key.meta.tags.push((k.clone(), v.clone())),
                }
            }
            if key.meta.tags.len() > MAX_TAGS {
                return Err(Error::LimitExceeded(format!("A key can have at most {MAX_TAGS} tags")));
            }
            Ok(())
        })
        .await?;
    Ok(b"{}".to_vec())
}

pub async fn untag(svc: &Service, caller: &Caller, req: UntagRequest) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let keys = required(req.tag_keys, "tagKeys")?;
    if keys.is_empty() || keys.len() > MAX_TAGS {
        return Err(Error::Validation(format!("TagKeys must hold between 1 and {MAX_TAGS} keys")));
    }
    if keys.iter().any(|k| k.is_empty() || k.chars().count() > 128) {
        return Err(Error::Validation("Each tag key must have length between 1 and 128".into()));
    }
    let key = authorized_key(svc, caller, &key_id, "kms:UntagResource", |c| {
        c.set_all("aws:TagKeys", keys.iter().cloned());
    })
    .await?;
    svc.keys
        .update(&key.meta.key_id, |key| {
            key.check_not_pending_deletion()?;
            key.meta.tags.retain(|(k, _)| !keys.contains(k));
            Ok(())
        })
        .await?;
    Ok(b"{}".to_vec())
}

pub async fn list(svc: &Service, caller: &Caller, req: ListRequest) -> Result<Vec<u8>, Error> {
    let limit = page_limit(req.limit, 50, 50)? as usize;
    let after = req.marker.as_deref().map(|m| decode_marker('T', m)).transpose()?;
    let key = authorized_key(svc, caller, &required(req.key_id, "keyId")?, "kms:ListResourceTags", |_| {}).await?;
    let mut tags: Vec<&(String, String)> =
        key.meta.tags.iter().filter(|(k, _)| after.as_deref().is_none_or(|a| k.as_str() > a)).collect();
    tags.sort_by(|a, b| a.0.cmp(&b.0));
    let truncated = tags.len() > limit;
    tags.truncate(limit);
    let next_marker = if truncated { tags.last().map(|(k, _)| encode_marker('T', k)) } else { None };
    let tags = tags.into_iter().map(|(k, v)| TagOut { tag_key: k, tag_value: v }).collect();
    respond(ListResponse { tags, truncated, next_marker })
}
