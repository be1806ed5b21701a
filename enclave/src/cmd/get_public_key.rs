//! GetPublicKey.

use super::{authorized, b64, check_grant_tokens, required, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use crate::state::keys::{KeySpec, KeyUsage};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    grant_tokens: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    key_id: &'a str,
    #[serde(serialize_with = "b64")]
    public_key: &'a [u8],
    customer_master_key_spec: KeySpec,
    key_spec: KeySpec,
    key_usage: KeyUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_agreement_algorithms: Option<Vec<&'static str>>,
}

pub async fn run(svc: &Service, caller: &Caller, req: Request) -> Result<Vec<u8>, Error> {
    check_grant_tokens(&req.grant_tokens)?;
    let key = authorized(svc, caller, &required(req.key_id, "keyId")?, "kms:GetPublicKey", |_| {}).await?;
    key.check_usable()?;
    let Some(pair) = key.pair() else {
        return Err(Error::UnsupportedOperation(format!(
            "{} is not an asymmetric KMS key: it has no public key",
            key.arn
        )));
    };
    let algs = super::describe_key::algorithms(&key);
    respond(Response {
        key_id: &key.arn,
        public_key: pair.public_key_der(),
        customer_master_key_spec: key.meta.key_spec,
        key_spec: key.meta.key_spec,
        key_usage: key.meta.key_usage,
        encryption_algorithms: algs.encryption,
        signing_algorithms: algs.signing,
        key_agreement_algorithms: algs.key_agreement,
    })
}
