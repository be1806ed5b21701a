//! The `local` source (simulator builds only): the domain key sealed in the store under a key derived from a public
//! label. Anyone can derive it: it protects nothing and exists for development and tests.

use super::{Context, Fresh};
use crate::crypto::secret::Key256;
use crate::error::Error;
use crate::state::store::{Records, StoreError};
use kms_shared::storage::{RecordKind, StorageError};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Label of the simulator's sealing key.
const SIM_SEALING_LABEL: &[u8] = b"enclave-kms INSECURE simulator domain-key sealing key v1";
const SIM_DOMAIN_KEY_ID: &str = "domain-key";

fn sealed(cx: &Context<'_>) -> Records {
    tracing::warn!("SIMULATOR MODE: the domain key is sealed under a public key; nothing here is secure");
    Records::new(cx.channel.clone(), Key256::from_array(Sha256::digest(SIM_SEALING_LABEL).into()))
}

/// The stored simulator domain key, if any.
pub async fn load(cx: &Context<'_>) -> Result<Option<Key256>, Error> {
    let Some(opened) = sealed(cx).get(RecordKind::SimDomainKey, SIM_DOMAIN_KEY_ID).await? else { return Ok(None) };
    Key256::from_slice(&opened.body).map(Some).ok_or_else(|| Error::Internal("bad domain key record".into()))
}

/// A new random domain key.
pub fn create(_cx: &Context<'_>) -> Result<Fresh, Error> {
    let key = Key256::generate().map_err(|_| Error::Internal("random source failed".into()))?;
    let commit = Zeroizing::new(key.expose_secret().to_vec());
    Ok(Fresh { key, commit })
}

/// Stores the sealed key. A concurrent initialiser that got there first wins; this start then fails (its custody
/// record no longer matches) rather than run with a second key.
pub async fn commit(cx: &Context<'_>, key: &[u8]) -> Result<(), Error> {
    match sealed(cx).put(RecordKind::SimDomainKey, SIM_DOMAIN_KEY_ID, None, key).await {
        Ok(_) => Ok(()),
        Err(StoreError::Host(StorageError::Conflict)) => {
            Err(Error::Internal("another start initialised this data directory at the same time".into()))
        }
        Err(e) => Err(e.into()),
    }
}
