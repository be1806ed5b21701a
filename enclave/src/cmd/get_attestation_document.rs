//! EnclaveKms.GetAttestationDocument (our extension): a fresh attestation document of this enclave that binds its
//! TLS identity and initialisation settings (`public_key` = the TLS leaf's SubjectPublicKeyInfo, `user_data` = SHA-384
//! of the CA certificate ‖ SHA-384 of the initialisation settings, 96 bytes) and carries the caller's nonce, so a client can check the PCRs and that it is talking to this very enclave.

use super::{Blob, b64, check_len, required, respond};
use crate::error::Error;
use crate::service::Service;
use serde::{Deserialize, Serialize};

/// Longest nonce (the NSM's limit).
pub const MAX_NONCE: usize = 512;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    nonce: Option<Blob>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Response<'a> {
    #[serde(serialize_with = "b64")]
    attestation_document: &'a [u8],
}

pub async fn run(svc: &Service, req: Request) -> Result<Vec<u8>, Error> {
    let nonce = required(req.nonce, "nonce")?.0;
    check_len(nonce.len(), "nonce", MAX_NONCE)?;
    let nsm = svc.nsm.clone();
    let spki = svc.binding.leaf_spki.clone();
    let user_data = [&svc.binding.ca_sha384[..], &svc.binding.settings_digest[..]].concat();
    let doc = tokio::task::spawn_blocking(move || nsm.attestation(Some(&user_data), Some(&nonce), Some(&spki)))
        .await
        .map_err(|_| Error::Internal("attestation task failed".into()))?
        .map_err(|e| Error::Internal(format!("NSM attestation: {e}")))?;
    respond(Response { attestation_document: &doc })
}
