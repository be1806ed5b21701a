//! The custody descriptor of a quorum deployment, and initialisation: split the domain key, seal each share to its
//! operator, and record what lets the sealed enclave check each submitted share on its own.
//!
//! The descriptor is stored by the host (record kind `QuorumDescriptor`) and cannot be sealed under the domain key
//! (it is read while sealed), so nothing in it is trusted for confidentiality or for choosing who may unseal:
//! - the operator keys, the threshold and the admin key are the initialisation settings, whose digest the sealed
//!   enclave computes from them and binds into every attestation document; operators refuse a document whose digest
//!   is not the one their share file was sealed with, so a host that edits them only stops unsealing;
//! - the deployment id, the per-share commitments and the domain-key check can only make the enclave refuse good
//!   shares (availability): a share is accepted only if it is signed by the listed operator and matches its
//!   commitment, and the recombined key only if it matches the check, which needs the domain key to compute.

use super::shamir::{self, SECRET_LEN, Share};
use crate::crypto::secret::Key256;
use kms_shared::quorum::{self as wire, DEPLOYMENT_ID_LEN, ShareFile};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use subtle::ConstantTimeEq;

/// Record id of the descriptor (one per data directory).
pub const DESCRIPTOR_ID: &str = "quorum";
/// Largest descriptor body accepted.
pub const MAX_DESCRIPTOR: usize = 64 * 1024;
const COMMITMENT_TAG: &[u8] = b"enclave-kms quorum commitment v1";
const CHECK_TAG: &[u8] = b"enclave-kms quorum domain-key check v1";

/// What a sealed start needs to check shares and the recombined key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Random id of this deployment.
    #[serde(with = "serde_bytes")]
    pub deployment_id: Vec<u8>,
    /// Shares needed.
    pub threshold: u8,
    /// Operator public keys (DER SubjectPublicKeyInfo, P-384), in `--operator` order; share `i` is operator `i`'s.
    pub operators: Vec<ByteBuf>,
    /// The first admin's public key (DER SPKI) named at initialisation: part of the settings digest.
    pub admin_public_key: Option<ByteBuf>,
    /// SHA-256(tag || deployment id || index || share) for each share, in index order.
    pub commitments: Vec<ByteBuf>,
    /// HMAC-SHA256(domain key, tag || deployment id).
    #[serde(with = "serde_bytes")]
    pub check: Vec<u8>,
}

/// Why a descriptor was refused.
#[derive(Debug, thiserror::Error)]
#[error("quorum descriptor: {0}")]
pub struct DescriptorError(pub String);

impl Descriptor {
    /// The record body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        let _ = ciborium::into_writer(self, &mut out);
        out
    }

    /// Parses and checks a record body.
    pub fn decode(bytes: &[u8]) -> Result<Self, DescriptorError> {
        if bytes.len() > MAX_DESCRIPTOR {
            return Err(DescriptorError("too large".into()));
        }
        let d: Descriptor = ciborium::de::from_reader_with_recursion_limit(bytes, 8)
            .map_err(|_| DescriptorError("undecodable".into()))?;
        let n = u8::try_from(d.operators.len()).map_err(|_| DescriptorError("too many operators".into()))?;
        wire::check_params(d.threshold, n).map_err(|e| DescriptorError(e.into()))?;
        if d.deployment_id.len() != DEPLOYMENT_ID_LEN
            || d.commitments.len() != d.operators.len()
            || d.commitments.iter().any(|c| c.len() != 32)
            || d.check.len() != 32
        {
            return Err(DescriptorError("inconsistent lengths".into()));
        }
        for op in &d.operators {
            super::hpke::p384_point(op).map_err(|_| DescriptorError("an operator key is not P-384".into()))?;
        }
        Ok(d)
    }

    /// Number of shares (operators).
    pub fn count(&self) -> u8 {
        u8::try_from(self.operators.len()).unwrap_or(u8::MAX)
    }

    /// Whether `share` matches its commitment (constant time over the share).
    pub fn matches(&self, share: &Share) -> bool {
        let Some(expected) = usize::from(share.index()).checked_sub(1).and_then(|i| self.commitments.get(i)) else {
            return false;
        };
        commitment(&self.deployment_id, share).ct_eq(expected.as_slice()).into()
    }

    /// Whether `key` is the domain key this descriptor was made for.
    pub fn check_key(&self, key: &Key256) -> bool {
        check(key, &self.deployment_id).ct_eq(self.check.as_slice()).into()
    }
}

fn commitment(deployment_id: &[u8], share: &Share) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(COMMITMENT_TAG);
    ctx.update(deployment_id);
    ctx.update(&[share.index()]);
    ctx.update(share.expose_secret());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn check(key: &Key256, deployment_id: &[u8]) -> [u8; 32] {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.expose_secret());
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&k);
    ctx.update(CHECK_TAG);
    ctx.update(deployment_id);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Splits `domain_key` `threshold`-of-N among `operators` (DER SPKIs) and seals share `i` to operator `i`, bound to
/// a fresh deployment id and `settings_digest` (the digest that the settings made from this descriptor give).
/// Returns the descriptor to store and the share files, in operator order.
pub fn initialise(
    domain_key: &Key256,
    operators: &[Vec<u8>],
    threshold: u8,
    admin_public_key: Option<&[u8]>,
    settings_digest: &[u8; 48],
) -> Result<(Descriptor, Vec<ShareFile>), DescriptorError> {
    let count = u8::try_from(operators.len()).map_err(|_| DescriptorError("more than 16 operators".into()))?;
    wire::check_params(threshold, count).map_err(|e| DescriptorError(e.into()))?;
    for (i, op) in operators.iter().enumerate() {
        super::hpke::p384_point(op).map_err(|_| DescriptorError(format!("operator {} is not a P-384 key", i + 1)))?;
    }
    let mut deployment_id = vec![0u8; DEPLOYMENT_ID_LEN];
    getrandom::fill(&mut deployment_id).map_err(|_| DescriptorError("random source failed".into()))?;
    let shares =
        shamir::split(domain_key.expose_secret(), threshold, count).map_err(|e| DescriptorError(e.to_string()))?;
    let mut files = Vec::with_capacity(shares.len());
    let mut commitments = Vec::with_capacity(shares.len());
    for (share, op) in shares.iter().zip(operators) {
        let info = wire::share_info(&deployment_id, settings_digest, share.index(), threshold, count);
        let ciphertext = super::hpke::seal(op, &info, share.expose_secret())
            .map_err(|e| DescriptorError(format!("sealing share {}: {e}", share.index())))?;
        files.push(ShareFile {
            version: wire::SHARE_FILE_VERSION,
            deployment_id: deployment_id.clone(),
            settings_digest: settings_digest.to_vec(),
            index: share.index(),
            threshold,
            count,
            ciphertext,
        });
        commitments.push(ByteBuf::from(commitment(&deployment_id, share).to_vec()));
    }
    let check = check(domain_key, &deployment_id).to_vec();
    let descriptor = Descriptor {
        deployment_id,
        threshold,
        operators: operators.iter().map(|o| ByteBuf::from(o.clone())).collect(),
        admin_public_key: admin_public_key.map(|a| ByteBuf::from(a.to_vec())),
        commitments,
        check,
    };
    Ok((descriptor, files))
}

/// A share value of [`SECRET_LEN`] bytes from an opened submission.
pub fn share_from(index: u8, value: &[u8]) -> Option<Share> {
    let arr: [u8; SECRET_LEN] = value.try_into().ok()?;
    Some(Share::new(index, arr))
}
