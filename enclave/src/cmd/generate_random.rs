//! GenerateRandom.

use super::{constraint, required, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    number_of_bytes: Option<i64>,
    custom_key_store_id: Option<String>,
    recipient: Option<super::recipient::RecipientInfo>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a [u8]>,
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    ciphertext_for_recipient: Option<&'a [u8]>,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    // No key is involved: AWS governs GenerateRandom by identity policy, here by account (as ListKeys).
    crate::access::authz::authorize_account(svc, caller, "kms:GenerateRandom")?;
    let n = required(req.number_of_bytes, "numberOfBytes")?;
    if !(1..=1024).contains(&n) {
        return Err(constraint(n, "numberOfBytes", "Member must have value between 1 and 1024"));
    }
    if req.custom_key_store_id.is_some() {
        return Err(Error::UnsupportedOperation("Custom key stores are not supported by this key service".into()));
    }
    crate::access::authz::authorize_account(svc, caller, "kms:GenerateRandom")?;
    let recipient = super::recipient::verify(svc, caller, req.recipient)?;
    let mut bytes = Zeroizing::new(vec![0u8; usize::try_from(n).unwrap_or(0)]);
    getrandom::fill(&mut bytes).map_err(|_| Error::Internal("random source failed".into()))?;
    let sealed = recipient.as_ref().map(|r| r.seal(svc, super::recipient::Binding::default(), &bytes)).transpose()?;
    respond(Response {
        plaintext: if sealed.is_some() { None } else { Some(&bytes) },
        ciphertext_for_recipient: sealed.as_deref(),
    })
}
