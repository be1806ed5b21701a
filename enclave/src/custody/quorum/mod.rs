//! The `quorum` domain-key source: the domain key split M-of-N among operators (Shamir), the sealed start and unsealing.
//!
//! - `create` (only with `--init`): a fresh key, split and sealed to the operators named in the boot configuration,
//!   bound to the settings digest of this initialisation.
//! - `commit`: the host writes the share files (`DIR/quorum/share-I.enc`) and acknowledges; then the descriptor
//!   record is stored. Its presence is what "this data directory has a domain key" means for this source.
//! - `load`: with a descriptor, the enclave stays sealed (serving only its attestation document and share
//!   submission) until M operators have submitted their shares; the recombined key is then checked by the caller
//!   (the custody record must open under it).

pub mod descriptor;
pub mod hpke;
pub mod sealed;
pub mod shamir;
pub mod unseal;

use super::{Context, Fresh};
use crate::crypto::secret::Key256;
use crate::error::Error;
use crate::state::store::{Records, StoreError};
use descriptor::{DESCRIPTOR_ID, Descriptor, initialise};
use kms_shared::custody::{DomainKeySource, InitSettings};
use kms_shared::quorum as wire;
use kms_shared::storage::{RecordKind, StorageError, StorageOp, StorageReply};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use unseal::Unsealer;
use zeroize::Zeroizing;

/// Label of the key the descriptor record is sealed under. Public: the seal only gives the record the store's
/// framing; its integrity argument is in [`crate::custody::quorum::descriptor`].
const DESCRIPTOR_SEALING_LABEL: &[u8] = b"enclave-kms quorum descriptor record v1 (public label)";

/// What `create` hands `commit`.
#[derive(Serialize, Deserialize)]
struct CommitBody {
    descriptor: ByteBuf,
    files: Vec<ByteBuf>,
}

fn records(cx: &Context<'_>) -> Records {
    Records::new(cx.channel.clone(), Key256::from_array(Sha256::digest(DESCRIPTOR_SEALING_LABEL).into()))
}

/// The settings a descriptor stands for (their digest is what the sealed enclave attests).
pub fn settings_of(d: &Descriptor) -> InitSettings {
    InitSettings {
        source: DomainKeySource::Quorum,
        upstream_key_id: None,
        admin_public_key: d.admin_public_key.as_ref().map(|k| k.to_vec()),
        operator_public_keys: d.operators.clone(),
        threshold: u32::from(d.threshold),
    }
}

/// A new domain key, split among the configured operators.
pub fn create(cx: &Context<'_>) -> Result<Fresh, Error> {
    let settings = super::new_settings(cx.config)?;
    let count = settings.operator_public_keys.len();
    if count == 0 {
        return Err(Error::Internal("--domain-key quorum needs --operator FILE (one per operator)".into()));
    }
    let n = u8::try_from(count).ok().filter(|n| usize::from(*n) <= wire::MAX_SHARES);
    let threshold = u8::try_from(settings.threshold).unwrap_or(u8::MAX);
    let Some(n) = n else {
        return Err(Error::Internal(format!("{count} operators: at most {} are supported", wire::MAX_SHARES)));
    };
    wire::check_params(threshold, n)
        .map_err(|e| Error::Internal(format!("--threshold {} with {n} operators: {e}", settings.threshold)))?;
    let digest = super::settings_digest(&settings);
    let key = Key256::generate().map_err(|_| Error::Internal("random source failed".into()))?;
    let operators: Vec<Vec<u8>> = settings.operator_public_keys.iter().map(|k| k.to_vec()).collect();
    let (descriptor, files) = initialise(&key, &operators, threshold, settings.admin_public_key.as_deref(), &digest)
        .map_err(|e| Error::Internal(e.to_string()))?;
    debug_assert_eq!(super::settings_digest(&settings_of(&descriptor)), digest);
    let body = CommitBody {
        descriptor: ByteBuf::from(descriptor.encode()),
        files: files.iter().map(|f| ByteBuf::from(f.encode())).collect(),
    };
    let mut commit = Zeroizing::new(Vec::with_capacity(4096));
    ciborium::into_writer(&body, &mut *commit).map_err(|e| Error::Internal(format!("quorum commit: {e}")))?;
    Ok(Fresh { key, commit })
}

/// Hands the share files to the host, then stores the descriptor.
pub async fn commit(cx: &Context<'_>, commit: &[u8]) -> Result<(), Error> {
    let body: CommitBody = ciborium::from_reader(commit).map_err(|_| Error::Internal("quorum commit body".into()))?;
    match cx.channel.call(StorageOp::QuorumShares { files: body.files }).await {
        Ok(StorageReply::Done) => {}
        Ok(_) => return Err(StoreError::Protocol.into()),
        Err(e) => return Err(Error::Internal(format!("the host did not store the share files: {e}"))),
    }
    match records(cx).put(RecordKind::QuorumDescriptor, DESCRIPTOR_ID, None, &body.descriptor).await {
        Ok(_) => Ok(()),
        Err(StoreError::Host(StorageError::Conflict)) => {
            Err(Error::Internal("another start initialised this data directory at the same time".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// With a descriptor: stays sealed until the operators' shares give the domain key back.
pub async fn load(cx: &Context<'_>) -> Result<Option<Key256>, Error> {
    let Some(opened) = records(cx).get(RecordKind::QuorumDescriptor, DESCRIPTOR_ID).await? else { return Ok(None) };
    let descriptor = Descriptor::decode(&opened.body)
        .map_err(|e| Error::Internal(format!("{e}; refusing to start (restore the store)")))?;
    let Some(sealed) = &cx.sealed else {
        return Err(Error::Internal("the quorum source needs the client listener to unseal".into()));
    };
    let digest = super::settings_digest(&settings_of(&descriptor));
    let (threshold, count) = (descriptor.threshold, descriptor.count());
    let unsealer = Unsealer::new(descriptor).map_err(|e| Error::Internal(format!("unseal key: {e}")))?;
    cx.channel.call(StorageOp::Sealed { threshold, count }).await.map_err(Error::from)?;
    tracing::info!(threshold, count, settings_digest = %hex::encode(digest), "sealed: waiting for operator shares");
    let key =
        crate::custody::quorum::sealed::serve(sealed.listener, sealed.nsm.clone(), unsealer, &digest, sealed.tls_names)
            .await?;
    tracing::info!("unsealed");
    Ok(Some(key))
}
