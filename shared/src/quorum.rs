//! The `quorum` domain-key source's formats, shared by the enclave (which makes and checks them) and the operator's
//! CLI (`kms-host quorum unseal`, which opens and re-seals them): the encrypted share file, and the byte strings that
//! HPKE `info` and the operator's signature are computed over. No cryptography here: each side does its own.
//!
//! - Share file (`DIR/quorum/share-I.enc`): CBOR [`ShareFile`]; `ciphertext` is RFC 9180 base mode (DHKEM(P-384,
//!   HKDF-SHA384), HKDF-SHA384, AES-256-GCM; `enc` || ciphertext || tag) of the 32-byte share value to the operator's
//!   key, with `info` = [`share_info`], which binds the deployment, the index, the threshold, the number of shares and
//!   the attested settings digest.
//! - Submission: the share value sealed the same way to the sealed enclave's attested unseal key, with `info` =
//!   [`submission_info`] (binds the SHA-384 of the attestation document it answers), and an ECDSA P-384 SHA-384
//!   signature by the operator's key over [`submission_message`].

use serde::{Deserialize, Serialize};

/// Most shares (operators) of one deployment.
pub const MAX_SHARES: usize = 16;
/// Length of a deployment id.
pub const DEPLOYMENT_ID_LEN: usize = 16;
/// Length of the settings digest (SHA-384).
pub const DIGEST_LEN: usize = 48;
/// Length of a share value.
pub const SHARE_LEN: usize = 32;
/// Length of an HPKE ciphertext of a share: `enc` (97) + 32 + tag (16).
pub const SEALED_SHARE_LEN: usize = 97 + SHARE_LEN + 16;
/// Largest share file accepted.
pub const MAX_SHARE_FILE: usize = 1024;
/// Current share file version.
pub const SHARE_FILE_VERSION: u8 = 1;

const SHARE_INFO_TAG: &[u8] = b"enclave-kms quorum share v1";
const SUBMISSION_INFO_TAG: &[u8] = b"enclave-kms quorum submission v1";
const SUBMISSION_SIG_TAG: &[u8] = b"enclave-kms quorum submission signature v1";

/// One operator's encrypted share, as the host writes it to `DIR/quorum/share-I.enc`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ShareFile {
    /// [`SHARE_FILE_VERSION`].
    pub version: u8,
    /// Random id of the deployment (made at initialisation).
    #[serde(with = "serde_bytes")]
    pub deployment_id: Vec<u8>,
    /// SHA-384 of the initialisation settings, as the enclave binds it into its attestation documents.
    #[serde(with = "serde_bytes")]
    pub settings_digest: Vec<u8>,
    /// The share's index (1..=count): the operator's position on the `--operator` list.
    pub index: u8,
    /// Shares needed to unseal.
    pub threshold: u8,
    /// Shares made.
    pub count: u8,
    /// HPKE ciphertext of the share value to the operator's key.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Why a share file was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShareFileError {
    /// Larger than [`MAX_SHARE_FILE`].
    #[error("larger than {MAX_SHARE_FILE} bytes")]
    TooLarge,
    /// Not the CBOR structure.
    #[error("not an enclave-kms share file")]
    Malformed,
    /// Another version.
    #[error("unsupported share file version {0}")]
    Version(u8),
    /// Fields out of range.
    #[error("inconsistent share file: {0}")]
    Inconsistent(&'static str),
}

impl ShareFile {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(320);
        // Serializing a struct of bytes and integers into a Vec cannot fail.
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Parses and checks a share file.
    pub fn decode(bytes: &[u8]) -> Result<Self, ShareFileError> {
        if bytes.len() > MAX_SHARE_FILE {
            return Err(ShareFileError::TooLarge);
        }
        let f: ShareFile =
            ciborium::de::from_reader_with_recursion_limit(bytes, 8).map_err(|_| ShareFileError::Malformed)?;
        if f.version != SHARE_FILE_VERSION {
            return Err(ShareFileError::Version(f.version));
        }
        f.check()?;
        Ok(f)
    }

    /// Checks field lengths and ranges.
    pub fn check(&self) -> Result<(), ShareFileError> {
        if self.deployment_id.len() != DEPLOYMENT_ID_LEN {
            return Err(ShareFileError::Inconsistent("deployment id length"));
        }
        if self.settings_digest.len() != DIGEST_LEN {
            return Err(ShareFileError::Inconsistent("settings digest length"));
        }
        if self.ciphertext.len() != SEALED_SHARE_LEN {
            return Err(ShareFileError::Inconsistent("ciphertext length"));
        }
        check_params(self.threshold, self.count).map_err(ShareFileError::Inconsistent)?;
        if self.index < 1 || self.index > self.count {
            return Err(ShareFileError::Inconsistent("index out of range"));
        }
        Ok(())
    }

    /// The HPKE `info` this file's ciphertext was sealed with.
    pub fn info(&self) -> Vec<u8> {
        share_info(&self.deployment_id, &self.settings_digest, self.index, self.threshold, self.count)
    }
}

/// Checks an M-of-N choice: 1 <= threshold <= count <= [`MAX_SHARES`].
pub fn check_params(threshold: u8, count: u8) -> Result<(), &'static str> {
    if threshold < 1 {
        return Err("the threshold must be at least 1");
    }
    if threshold > count {
        return Err("the threshold is larger than the number of operators");
    }
    if usize::from(count) > MAX_SHARES {
        return Err("more than 16 operators");
    }
    Ok(())
}

/// HPKE `info` of a share sealed to its operator.
pub fn share_info(deployment_id: &[u8], settings_digest: &[u8], index: u8, threshold: u8, count: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(SHARE_INFO_TAG.len() + deployment_id.len() + settings_digest.len() + 3);
    out.extend_from_slice(SHARE_INFO_TAG);
    out.extend_from_slice(deployment_id);
    out.extend_from_slice(settings_digest);
    out.extend_from_slice(&[index, threshold, count]);
    out
}

/// HPKE `info` of a share submitted to a sealed enclave, answering the document whose SHA-384 is `document_sha384`.
pub fn submission_info(document_sha384: &[u8], deployment_id: &[u8], index: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(SUBMISSION_INFO_TAG.len() + document_sha384.len() + deployment_id.len() + 1);
    out.extend_from_slice(SUBMISSION_INFO_TAG);
    out.extend_from_slice(document_sha384);
    out.extend_from_slice(deployment_id);
    out.push(index);
    out
}

/// What the operator signs (ECDSA P-384, SHA-384) for a submission: the tag, the document's SHA-384, the deployment
/// id, the index and the whole ciphertext, each fixed-length or last, so the encoding is unambiguous.
pub fn submission_message(document_sha384: &[u8], deployment_id: &[u8], index: u8, ciphertext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SUBMISSION_SIG_TAG.len() + 48 + 16 + 1 + ciphertext.len());
    out.extend_from_slice(SUBMISSION_SIG_TAG);
    out.extend_from_slice(document_sha384);
    out.extend_from_slice(deployment_id);
    out.push(index);
    out.extend_from_slice(ciphertext);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file() -> ShareFile {
        ShareFile {
            version: SHARE_FILE_VERSION,
            deployment_id: vec![7; DEPLOYMENT_ID_LEN],
            settings_digest: vec![9; DIGEST_LEN],
            index: 2,
            threshold: 2,
            count: 3,
            ciphertext: vec![4; SEALED_SHARE_LEN],
        }
    }

    #[test]
    fn round_trip() {
        let f = file();
        assert_eq!(ShareFile::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn bad_files_are_refused() {
        assert_eq!(ShareFile::decode(b"not cbor").unwrap_err(), ShareFileError::Malformed);
        assert_eq!(ShareFile::decode(&[0u8; MAX_SHARE_FILE + 1]).unwrap_err(), ShareFileError::TooLarge);
        let mut f = file();
        f.version = 2;
        assert_eq!(ShareFile::decode(&f.encode()).unwrap_err(), ShareFileError::Version(2));
        for (change, what) in [
            ((|f: &mut ShareFile| f.index = 0) as fn(&mut ShareFile), "index out of range"),
            (|f| f.index = 4, "index out of range"),
            (|f| f.threshold = 0, "the threshold must be at least 1"),
            (|f| f.threshold = 4, "the threshold is larger than the number of operators"),
            (|f| f.count = 17, "more than 16 operators"),
            (|f| f.deployment_id.pop().map(drop).unwrap_or(()), "deployment id length"),
            (|f| f.settings_digest.push(0), "settings digest length"),
            (|f| f.ciphertext.push(0), "ciphertext length"),
        ] {
            let mut f = file();
            change(&mut f);
            assert_eq!(ShareFile::decode(&f.encode()).unwrap_err(), ShareFileError::Inconsistent(what));
        }
    }

    #[test]
    fn bindings_differ_in_every_field() {
        let base = share_info(&[1; 16], &[2; 48], 1, 2, 3);
        assert_ne!(base, share_info(&[0; 16], &[2; 48], 1, 2, 3));
        assert_ne!(base, share_info(&[1; 16], &[0; 48], 1, 2, 3));
        assert_ne!(base, share_info(&[1; 16], &[2; 48], 2, 2, 3));
        assert_ne!(base, share_info(&[1; 16], &[2; 48], 1, 3, 3));
        assert_ne!(base, share_info(&[1; 16], &[2; 48], 1, 2, 4));
        let s = submission_info(&[1; 48], &[2; 16], 1);
        assert_ne!(s, submission_info(&[0; 48], &[2; 16], 1));
        assert_ne!(s, submission_info(&[1; 48], &[2; 16], 2));
        let m = submission_message(&[1; 48], &[2; 16], 1, b"c");
        assert_ne!(m, submission_message(&[1; 48], &[2; 16], 1, b"d"));
        assert_ne!(m, submission_message(&[1; 48], &[3; 16], 1, b"c"));
    }
}
