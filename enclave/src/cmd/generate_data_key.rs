//! GenerateDataKey and GenerateDataKeyWithoutPlaintext.

use super::{Context, authorized, b64, check_context, check_grant_tokens, constraint, required, respond};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::service::Service;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Largest NumberOfBytes.
pub const MAX_DATA_KEY_BYTES: i64 = 1024;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    encryption_context: Context,
    number_of_bytes: Option<i64>,
    key_spec: Option<String>,
    grant_tokens: Option<Vec<String>>,
    recipient: Option<super::recipient::RecipientInfo>,
    dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    #[serde(serialize_with = "b64")]
    ciphertext_blob: &'a [u8],
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    plaintext: Option<&'a [u8]>,
    #[serde(serialize_with = "super::opt_b64", skip_serializing_if = "Option::is_none")]
    ciphertext_for_recipient: Option<&'a [u8]>,
    key_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_material_id: Option<String>,
}

/// The data key length from KeySpec or NumberOfBytes (exactly one of them).
fn length(key_spec: Option<&str>, number_of_bytes: Option<i64>) -> Result<usize, Error> {
    match (key_spec, number_of_bytes) {
        (Some(_), Some(_)) => {
            Err(Error::Validation("Please specify either number of bytes or key spec, not both".into()))
        }
        (None, None) => Err(Error::Validation("Please specify either number of bytes or key spec".into())),
        (Some("AES_256"), None) => Ok(32),
        (Some("AES_128"), None) => Ok(16),
        (Some(s), None) => Err(constraint(s, "keySpec", "Member must satisfy enum value set: [AES_256, AES_128]")),
        (None, Some(n)) if (1..=MAX_DATA_KEY_BYTES).contains(&n) => Ok(usize::try_from(n).unwrap_or(0)),
        (None, Some(n)) => Err(constraint(n, "numberOfBytes", "Member must have value between 1 and 1024")),
    }
}

pub async fn run(svc: &Service, caller: &Caller, req: Request, with_plaintext: bool) -> Result<Vec<u8>, Error> {
    let key_id = required(req.key_id, "keyId")?;
    let len = length(req.key_spec.as_deref(), req.number_of_bytes)?;
    check_context(&req.encryption_context)?;
    check_grant_tokens(&req.grant_tokens)?;
    // AWS's GenerateDataKeyWithoutPlaintext has no Recipient member: like any unknown member it is ignored there.
    let recipient = if with_plaintext { super::recipient::verify(svc, caller, req.recipient)? } else { None };
    let action = if with_plaintext { "kms:GenerateDataKey" } else { "kms:GenerateDataKeyWithoutPlaintext" };
    let key = authorized(svc, caller, &key_id, action, |c| {
        c.encryption_context(&req.encryption_context);
        if let Some(r) = &recipient {
            r.conditions(c);
        }
    })
    .await?;
    key.check_usable()?;
    super::require_symmetric(&key, if with_plaintext { "GenerateDataKey" } else { "GenerateDataKeyWithoutPlaintext" })?;
    if req.dry_run == Some(true) {
        return Err(Error::DryRunOperation);
    }
    let mut data_key = Zeroizing::new(vec![0u8; len]);
    getrandom::fill(&mut data_key).map_err(|_| Error::Internal("random source failed".into()))?;
    let blob = super::encrypt::seal(&key, &req.encryption_context, &data_key)?;
    let sealed = recipient
        .as_ref()
        .map(|r| r.seal(svc, super::recipient::Binding { key_id: &key.arn, ciphertext_blob: &blob }, &data_key))
        .transpose()?;
    respond(Response {
        ciphertext_blob: &blob,
        plaintext: (with_plaintext && sealed.is_none()).then_some(&data_key[..]),
        ciphertext_for_recipient: sealed.as_deref(),
        key_id: &key.arn,
        key_material_id: key.current_material_id(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(length(Some("AES_256"), None).ok(), Some(32));
        assert_eq!(length(Some("AES_128"), None).ok(), Some(16));
        assert_eq!(length(None, Some(1)).ok(), Some(1));
        assert_eq!(length(None, Some(1024)).ok(), Some(1024));
        assert!(length(None, Some(0)).is_err());
        assert!(length(None, Some(1025)).is_err());
        assert!(length(None, Some(-1)).is_err());
        assert!(length(None, None).is_err());
        assert!(length(Some("AES_256"), Some(32)).is_err());
        assert!(length(Some("AES_512"), None).is_err());
    }
}
