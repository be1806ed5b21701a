//! Messages of the storage channel.
//!
//! The enclave sends [`EnclaveMessage`]s; the host answers each with a [`HostMessage`] carrying the same `id`.
//! Requests may be answered out of order. The host stores [`SealedBlob`]s and the few plaintext index fields it needs
//! (kind, id, version); it cannot open a blob, and the enclave checks every blob it gets back (AAD binds kind, id and
//! version), so a host that swaps, rewrites or replays records is detected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest record id, in bytes.
pub const MAX_ID_LEN: usize = 512;
/// Most records one `List` may return.
pub const MAX_LIST_LIMIT: u32 = 1000;
/// Largest sealed blob, in bytes.
pub const MAX_BLOB_LEN: usize = 1024 * 1024;

/// What a record holds. Wire numbers are protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(into = "u16", try_from = "u16")]
#[repr(u16)]
#[non_exhaustive]
pub enum RecordKind {
    /// The domain key, sealed for the simulator (simulator mode only).
    SimDomainKey = 1,
    /// A KMS key: metadata and its backing keys.
    Key = 2,
    /// An alias and its target.
    Alias = 3,
    /// An access key: principal and secret.
    Credential = 4,
    /// The TLS issuing CA: certificate and private key.
    TlsIssuer = 5,
    /// The id of a destroyed KMS key (no material).
    KeyTombstone = 6,
    /// An import token handed to a caller (sealed with this kind in its AAD; never stored by the host).
    ImportToken = 7,
    /// A principal (IAM-style user or role) and whether it administers principals.
    Principal = 8,
    /// The custody record: initialisation settings and phase, sealed under the domain key (so opening it checks the
    /// domain key). Exists from the first moment a domain key does.
    Custody = 9,
    /// The upstream service's CiphertextBlob of the domain key (stored as the upstream returned it, not sealed by us).
    UpstreamEnvelope = 10,
    /// The quorum custody descriptor: deployment id, operators, threshold, share commitments, domain-key check. Read
    /// while sealed, so not sealed under the domain key; see the enclave's `quorum::descriptor` for why that is safe.
    QuorumDescriptor = 13,
}

impl From<RecordKind> for u16 {
    fn from(kind: RecordKind) -> u16 {
        kind as u16
    }
}

impl TryFrom<u16> for RecordKind {
    type Error = String;
    fn try_from(v: u16) -> Result<Self, String> {
        Ok(match v {
            1 => Self::SimDomainKey,
            2 => Self::Key,
            3 => Self::Alias,
            4 => Self::Credential,
            5 => Self::TlsIssuer,
            6 => Self::KeyTombstone,
            7 => Self::ImportToken,
            8 => Self::Principal,
            9 => Self::Custody,
            10 => Self::UpstreamEnvelope,
            13 => Self::QuorumDescriptor,
            other => return Err(format!("unknown record kind {other}")),
        })
    }
}

/// Bytes sealed by the enclave. The only record payload the storage channel carries.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(transparent)]
pub struct SealedBlob(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedBlob({} bytes)", self.0.len())
    }
}

/// A record as the host stores it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id, unique within its kind.
    pub id: String,
    /// Version, starting at 1 and increased by every write.
    pub version: u64,
    /// The sealed payload.
    pub sealed: SealedBlob,
}

/// A request from the enclave.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EnclaveMessage {
    /// Correlates the answer.
    pub id: u64,
    /// What is asked.
    pub op: StorageOp,
}

/// Storage operations. Unknown variants are refused by the decoder.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageOp {
    /// Fetch one record.
    Get {
        /// Record kind.
        kind: RecordKind,
        /// Record id.
        id: String,
    },
    /// Write one record if its current version is `expected` (`None`: only if it does not exist). Acknowledged only
    /// once durable.
    Put {
        /// Record kind.
        kind: RecordKind,
        /// Record id.
        id: String,
        /// The new version: `expected + 1`, or for a new record any version from 1 up (a record re-created after a
        /// delete continues its old sequence, so the deleted versions can never be replayed as current).
        version: u64,
        /// The version the write replaces.
        expected: Option<u64>,
        /// The sealed payload.
        sealed: SealedBlob,
    },
    /// Delete one record if its current version is `expected`.
    Delete {
        /// Record kind.
        kind: RecordKind,
        /// Record id.
        id: String,
        /// The version being deleted.
        expected: u64,
    },
    /// List records of one kind in id order, starting after `after`.
    List {
        /// Record kind.
        kind: RecordKind,
        /// Exclusive lower bound.
        after: Option<String>,
        /// At most this many (capped at [`MAX_LIST_LIMIT`]).
        limit: u32,
    },
    /// Tell the operator what the enclave publishes: the TLS trust anchor, and on first start the bootstrap admin
    /// access key, which is shown to the operator exactly once this way.
    Announce(Announcement),
    /// Ask the host for its start-up instructions ([`crate::custody::BootConfig`]), once, before anything else.
    BootConfig,
    /// The enclave serves: sent after the announcement once initialisation is complete (the host prints its ready line
    /// only then).
    Serving,
    /// The enclave refuses to start, for `reason` (one line, no secret); it exits after the host's answer.
    Refuse {
        /// Why.
        reason: String,
    },
    /// Quorum initialisation: the operators' encrypted share files (`kms_shared::quorum::ShareFile` bytes), in
    /// operator order, for the host to write to `DIR/quorum/share-I.enc`. Answered once they are durable.
    QuorumShares {
        /// One file per operator.
        files: Vec<serde_bytes::ByteBuf>,
    },
    /// The enclave is sealed and waits for `threshold` of `count` operator shares: the host starts relaying clients
    /// (who can reach only the attestation document and share submission) and says so.
    Sealed {
        /// Shares needed.
        threshold: u8,
        /// Shares made.
        count: u8,
    },
    /// The enclave's counters for the host's metrics endpoint (sent every few seconds; answered `Done`).
    Metrics(crate::metrics::EnclaveMetrics),
}

/// What the enclave publishes to the operator through the host.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// PEM of the CA certificate clients must trust for the enclave's TLS endpoint.
    pub ca_pem: String,
    /// The admin access key created at first start, or `None` on later starts (local mode only).
    pub bootstrap: Option<BootstrapCredential>,
    /// The admin access key sealed to the admin public key named at initialisation (HPKE, see
    /// `kms-host admin open-bootstrap`), or `None`.
    #[serde(with = "serde_bytes")]
    pub bootstrap_sealed: Option<Vec<u8>>,
    /// SHA-384 of the initialisation settings (as bound into attestation documents).
    #[serde(with = "serde_bytes")]
    pub settings_digest: Vec<u8>,
}

impl fmt::Debug for Announcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Announcement")
            .field("ca_pem_len", &self.ca_pem.len())
            .field("bootstrap", &self.bootstrap)
            .field("bootstrap_sealed", &self.bootstrap_sealed.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

/// An access key handed to the operator once.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct BootstrapCredential {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key (redacted from `Debug`).
    pub secret_access_key: String,
}

impl fmt::Debug for BootstrapCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapCredential").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// An answer from the host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HostMessage {
    /// The id of the request answered.
    pub id: u64,
    /// The outcome.
    pub result: Result<StorageReply, StorageError>,
}

/// Successful answers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageReply {
    /// Answer to `Get`.
    Record(Option<StoredRecord>),
    /// Answer to `Put`, `Delete` and `Announce`.
    Done,
    /// Answer to `BootConfig`.
    BootConfig(Box<crate::custody::BootConfig>),
    /// Answer to `List`.
    Listed {
        /// Records in id order.
        records: Vec<StoredRecord>,
        /// Whether more records follow the last one.
        more: bool,
    },
}

/// Storage failures. Wire numbers are protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[serde(into = "u16", try_from = "u16")]
#[repr(u16)]
#[non_exhaustive]
pub enum StorageError {
    /// The expected version did not match (a concurrent writer, or the record exists / does not).
    #[error("version conflict")]
    Conflict = 1,
    /// The request was malformed or over a limit.
    #[error("invalid storage request")]
    Invalid = 2,
    /// The store failed; details are in the host's log.
    #[error("storage unavailable")]
    Unavailable = 3,
}

impl From<StorageError> for u16 {
    fn from(e: StorageError) -> u16 {
        e as u16
    }
}

impl TryFrom<u16> for StorageError {
    type Error = String;
    fn try_from(v: u16) -> Result<Self, String> {
        Ok(match v {
            1 => Self::Conflict,
            2 => Self::Invalid,
            3 => Self::Unavailable,
            other => return Err(format!("unknown storage error {other}")),
        })
    }
}

impl StorageOp {
    /// Checks the limits a well-formed request respects; the host refuses anything else with
    /// [`StorageError::Invalid`].
    pub fn validate(&self) -> Result<(), StorageError> {
        let id_ok = |id: &str| !id.is_empty() && id.len() <= MAX_ID_LEN;
        let ok = match self {
            StorageOp::Get { id, .. } => id_ok(id),
            StorageOp::Put { id, version, expected, sealed, .. } => {
                id_ok(id)
                    && sealed.0.len() <= MAX_BLOB_LEN
                    && expected.map_or(*version >= 1, |e| e.checked_add(1) == Some(*version))
            }
            StorageOp::Delete { id, .. } => id_ok(id),
            StorageOp::List { after, limit, .. } => {
                after.as_deref().is_none_or(|a| a.len() <= MAX_ID_LEN) && *limit >= 1 && *limit <= MAX_LIST_LIMIT
            }
            StorageOp::Announce(a) => {
                a.ca_pem.len() <= 64 * 1024
                    && a.bootstrap_sealed.as_ref().is_none_or(|b| b.len() <= 4096)
                    && a.settings_digest.len() <= 64
            }
            StorageOp::BootConfig | StorageOp::Serving => true,
            StorageOp::Refuse { reason } => reason.len() <= 2048,
            StorageOp::QuorumShares { files } => {
                files.len() <= crate::quorum::MAX_SHARES
                    && files.iter().all(|f| f.len() <= crate::quorum::MAX_SHARE_FILE)
            }
            StorageOp::Sealed { threshold, count } => crate::quorum::check_params(*threshold, *count).is_ok(),
            StorageOp::Metrics(m) => m.valid(),
        };
        if ok { Ok(()) } else { Err(StorageError::Invalid) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_refused() {
        for k in [
            RecordKind::SimDomainKey,
            RecordKind::Key,
            RecordKind::Alias,
            RecordKind::Credential,
            RecordKind::TlsIssuer,
            RecordKind::Custody,
            RecordKind::UpstreamEnvelope,
            RecordKind::QuorumDescriptor,
        ] {
            assert_eq!(RecordKind::try_from(u16::from(k)).unwrap(), k);
        }
        assert!(RecordKind::try_from(0).is_err());
        assert!(RecordKind::try_from(99).is_err());
        assert!(StorageError::try_from(42).is_err());
    }

    #[test]
    fn validate_limits() {
        let put = |version, expected| StorageOp::Put {
            kind: RecordKind::Key,
            id: "k".into(),
            version,
            expected,
            sealed: SealedBlob(vec![]),
        };
        assert!(put(1, None).validate().is_ok());
        assert!(put(2, None).validate().is_ok(), "re-creation after delete continues the sequence");
        assert!(put(0, None).validate().is_err());
        assert!(put(3, Some(2)).validate().is_ok());
        assert!(put(3, Some(3)).validate().is_err());
        assert!(put(0, Some(u64::MAX)).validate().is_err());
        let get = StorageOp::Get { kind: RecordKind::Key, id: String::new() };
        assert!(get.validate().is_err());
        let list = StorageOp::List { kind: RecordKind::Key, after: None, limit: MAX_LIST_LIMIT + 1 };
        assert!(list.validate().is_err());
    }

    #[test]
    fn debug_redacts_secret() {
        let b = BootstrapCredential { access_key_id: "AKIA1".into(), secret_access_key: "s3cr3t-value".into() };
        let shown = format!(
            "{:?}",
            Announcement { ca_pem: String::new(), bootstrap: Some(b), bootstrap_sealed: None, settings_digest: vec![] }
        );
        assert!(shown.contains("AKIA1"));
        assert!(!shown.contains("s3cr3t-value"));
    }
}
