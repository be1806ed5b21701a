//! The attestation document's payload, as the NSM encodes it (CBOR map, keys in this order, optional fields present
//! as `null` when not requested). Decoding accepts definite and indefinite-length maps, `null` optional fields and
//! unknown keys (ignored), and refuses duplicate keys. Limits are checked by the verifier after decoding; the whole
//! document is size-checked before any decoding.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

/// Largest attestation document accepted, in bytes (COSE envelope included).
pub const MAX_DOCUMENT_LEN: usize = 16 * 1024;
/// Largest certificate, in bytes.
pub const MAX_CERT_LEN: usize = 1024;
/// Largest `public_key`, `user_data` or `nonce`, in bytes (real NSMs emit up to 1024; AWS's text says 512).
pub const MAX_OPTIONAL_LEN: usize = 1024;
/// Most certificates in `cabundle`.
pub const MAX_CABUNDLE: usize = 8;
/// PCR indexes are below this.
pub const PCR_COUNT: u32 = 32;

/// The payload of an attestation document. Field order is the NSM's; serializing this struct with ciborium gives the
/// NSM's bytes (definite-length map).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AttestationPayload {
    /// Issuing NSM id.
    pub module_id: String,
    /// Always "SHA384".
    pub digest: String,
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// PCR index → value (48 bytes for SHA-384).
    pub pcrs: BTreeMap<u32, ByteBuf>,
    /// The leaf certificate that signed the document (DER).
    pub certificate: ByteBuf,
    /// The issuing chain, root first (DER).
    pub cabundle: Vec<ByteBuf>,
    /// Optional key the enclave supplied (DER).
    pub public_key: Option<ByteBuf>,
    /// Optional application data.
    pub user_data: Option<ByteBuf>,
    /// Optional consumer-supplied nonce.
    pub nonce: Option<ByteBuf>,
}
