//! The sealed enclave's side of unsealing: which attestation documents it issued this start, which shares it holds,
//! and the check of one submission on its own. A refused submission changes nothing, so unsealing continues with
//! good shares after any number of bad ones.

use super::descriptor::{Descriptor, share_from};
use super::hpke::{QuorumCryptoError, UnsealKey, verify_operator};
use super::shamir::{self, Share};
use crate::crypto::secret::Key256;
use kms_shared::quorum as wire;
use std::collections::{BTreeMap, VecDeque};
use subtle::ConstantTimeEq;

/// Documents remembered per start (the oldest is forgotten first; an operator fetches one and submits at once).
pub const MAX_ISSUED: usize = 256;

/// One submission as it arrives.
pub struct Submission<'a> {
    /// SHA-384 of the attestation document the operator verified and answers.
    pub document_sha384: &'a [u8],
    /// The deployment id from the operator's share file.
    pub deployment_id: &'a [u8],
    /// The share's index.
    pub index: u8,
    /// The share value sealed to the unseal key with [`wire::submission_info`].
    pub ciphertext: &'a [u8],
    /// The operator's ECDSA P-384 signature over [`wire::submission_message`].
    pub signature: &'a [u8],
}

/// Why a submission was refused. Messages are for the operator; none carries share material.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Already unsealed.
    #[error("the enclave is already unsealed")]
    AlreadyUnsealed,
    /// Another deployment's share.
    #[error("the share belongs to another deployment (deployment id differs); it was not used")]
    ForeignDeployment,
    /// Index not in 1..=N.
    #[error("share index {0} is not in 1..={1}")]
    BadIndex(u8, u8),
    /// Not a document this start issued.
    #[error(
        "the submission answers an attestation document this enclave did not issue since it started (replayed or \
         stale); fetch a fresh document and submit again"
    )]
    UnknownDocument,
    /// This share is already in.
    #[error("share {0} was already accepted (replayed submission); it was not counted again")]
    Duplicate(u8),
    /// Not signed by the operator of that index.
    #[error("the submission is not signed by operator {0}'s key")]
    BadSignature(u8),
    /// The HPKE ciphertext does not open for this document and index.
    #[error("the sealed share does not open for this enclave's unseal key, document and index")]
    DoesNotOpen,
    /// Opened, but not the share committed at initialisation.
    #[error("share {0} is not the share made at initialisation (wrong or corrupted); it was not used")]
    WrongShare(u8),
    /// Enough shares, but they do not give the domain key (the host edited the descriptor).
    #[error(
        "the accepted shares do not give this deployment's domain key (the custody record does not match); the \
         shares were discarded"
    )]
    CheckFailed,
}

/// What an accepted submission led to.
pub enum Progress {
    /// Accepted; this many more are needed.
    NeedMore(u8),
    /// Accepted, and the domain key is back.
    Unsealed(Key256),
}

/// The unsealing state of one sealed start.
pub struct Unsealer {
    descriptor: Descriptor,
    key: UnsealKey,
    issued: VecDeque<[u8; 48]>,
    shares: BTreeMap<u8, Share>,
    done: bool,
}

impl Unsealer {
    /// A fresh state with a fresh unseal key.
    pub fn new(descriptor: Descriptor) -> Result<Self, QuorumCryptoError> {
        Ok(Self {
            descriptor,
            key: UnsealKey::generate()?,
            issued: VecDeque::new(),
            shares: BTreeMap::new(),
            done: false,
        })
    }

    /// The unseal key's SPKI (for attestation documents).
    pub fn unseal_spki(&self) -> &[u8] {
        self.key.spki()
    }

    /// The descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// Indices accepted so far.
    pub fn accepted(&self) -> Vec<u8> {
        self.shares.keys().copied().collect()
    }

    /// Shares still needed.
    pub fn needed(&self) -> u8 {
        self.descriptor.threshold.saturating_sub(u8::try_from(self.shares.len()).unwrap_or(u8::MAX))
    }

    /// Whether the domain key was recovered.
    pub fn is_unsealed(&self) -> bool {
        self.done
    }

    /// Remembers a document issued now.
    pub fn issued(&mut self, document_sha384: [u8; 48]) {
        if self.issued.len() >= MAX_ISSUED {
            self.issued.pop_front();
        }
        self.issued.push_back(document_sha384);
    }

    /// Checks one submission on its own; on success keeps the share and, at the threshold, recombines.
    pub fn submit(&mut self, s: &Submission<'_>) -> Result<Progress, Refusal> {
        if self.done {
            return Err(Refusal::AlreadyUnsealed);
        }
        if !bool::from(s.deployment_id.ct_eq(&self.descriptor.deployment_id)) {
            return Err(Refusal::ForeignDeployment);
        }
        let n = self.descriptor.count();
        let operator = usize::from(s.index)
            .checked_sub(1)
            .and_then(|i| self.descriptor.operators.get(i))
            .ok_or(Refusal::BadIndex(s.index, n))?;
        let doc: [u8; 48] = s.document_sha384.try_into().map_err(|_| Refusal::UnknownDocument)?;
        if !self.issued.contains(&doc) {
            return Err(Refusal::UnknownDocument);
        }
        if self.shares.contains_key(&s.index) {
            return Err(Refusal::Duplicate(s.index));
        }
        let message = wire::submission_message(&doc, s.deployment_id, s.index, s.ciphertext);
        verify_operator(operator, &message, s.signature).map_err(|_| Refusal::BadSignature(s.index))?;
        let info = wire::submission_info(&doc, s.deployment_id, s.index);
        let value = self.key.open(&info, s.ciphertext).map_err(|_| Refusal::DoesNotOpen)?;
        let share = share_from(s.index, &value).ok_or(Refusal::DoesNotOpen)?;
        if !self.descriptor.matches(&share) {
            return Err(Refusal::WrongShare(s.index));
        }
        self.shares.insert(s.index, share);
        if self.needed() > 0 {
            return Ok(Progress::NeedMore(self.needed()));
        }
        let parts: Vec<&Share> = self.shares.values().collect();
        let secret = shamir::combine(&parts).map_err(|_| Refusal::CheckFailed)?;
        let key = Key256::from_array(*secret);
        if !self.descriptor.check_key(&key) {
            self.shares.clear();
            return Err(Refusal::CheckFailed);
        }
        self.shares.clear();
        self.done = true;
        Ok(Progress::Unsealed(key))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::descriptor::initialise;
    use super::super::hpke::{seal, tests::operator};
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::EcdsaKeyPair;
    use hpke::kem::DhP384HkdfSha384;
    use hpke::{Deserializable, Kem, OpModeR};

    const DIGEST: [u8; 48] = [0x33; 48];

    struct Op {
        kp: EcdsaKeyPair,
        /// The operator's HPKE private key: the same P-384 scalar as the signing key.
        sk: <DhP384HkdfSha384 as Kem>::PrivateKey,
    }

    fn operators(n: usize) -> (Vec<Op>, Vec<Vec<u8>>) {
        let mut ops = Vec::new();
        let mut spkis = Vec::new();
        for _ in 0..n {
            let (kp, spki) = operator();
            let scalar = aws_lc_rs::encoding::AsBigEndian::<aws_lc_rs::encoding::EcPrivateKeyBin>::as_be_bytes(
                &kp.private_key(),
            )
            .unwrap();
            let sk = <DhP384HkdfSha384 as Kem>::PrivateKey::from_bytes(scalar.as_ref()).unwrap();
            ops.push(Op { kp, sk });
            spkis.push(spki);
        }
        (ops, spkis)
    }

    /// What `kms-host quorum unseal` does: open the share file, reseal it to the document's key, sign.
    fn submission(op: &Op, file: &wire::ShareFile, unseal_spki: &[u8], doc: &[u8; 48]) -> (Vec<u8>, Vec<u8>) {
        let enc = <DhP384HkdfSha384 as Kem>::EncappedKey::from_bytes(&file.ciphertext[..97]).unwrap();
        let mut ctx = hpke::setup_receiver::<hpke::aead::AesGcm256, hpke::kdf::HkdfSha384, DhP384HkdfSha384>(
            &OpModeR::Base,
            &op.sk,
            &enc,
            &file.info(),
        )
        .unwrap();
        let value = ctx.open(&file.ciphertext[97..], b"").unwrap();
        let ct = seal(unseal_spki, &wire::submission_info(doc, &file.deployment_id, file.index), &value).unwrap();
        let msg = wire::submission_message(doc, &file.deployment_id, file.index, &ct);
        let sig = op.kp.sign(&SystemRandom::new(), &msg).unwrap().as_ref().to_vec();
        (ct, sig)
    }

    fn submit(
        u: &mut Unsealer,
        file: &wire::ShareFile,
        doc: &[u8; 48],
        ct: &[u8],
        sig: &[u8],
    ) -> Result<Progress, Refusal> {
        u.submit(&Submission {
            document_sha384: doc,
            deployment_id: &file.deployment_id,
            index: file.index,
            ciphertext: ct,
            signature: sig,
        })
    }

    fn need(p: Result<Progress, Refusal>) -> u8 {
        match p.unwrap() {
            Progress::NeedMore(n) => n,
            Progress::Unsealed(_) => panic!("unsealed early"),
        }
    }

    #[test]
    fn two_of_three_with_every_kind_of_bad_submission_in_between() {
        let dk = Key256::generate().unwrap();
        let (ops, spkis) = operators(3);
        let (desc, files) = initialise(&dk, &spkis, 2, None, &DIGEST).unwrap();
        let desc = Descriptor::decode(&desc.encode()).unwrap();
        let (other_desc, other_files) = initialise(&dk, &spkis, 2, None, &DIGEST).unwrap();
        assert_ne!(other_desc.deployment_id, desc.deployment_id);

        let mut u = Unsealer::new(desc).unwrap();
        let doc = [7u8; 48];
        // Not issued yet: refused.
        let (ct, sig) = submission(&ops[0], &files[0], u.unseal_spki(), &doc);
        assert_eq!(submit(&mut u, &files[0], &doc, &ct, &sig).err(), Some(Refusal::UnknownDocument));
        u.issued(doc);
        // Foreign deployment.
        let (fct, fsig) = submission(&ops[0], &other_files[0], u.unseal_spki(), &doc);
        assert_eq!(submit(&mut u, &other_files[0], &doc, &fct, &fsig).err(), Some(Refusal::ForeignDeployment));
        // A foreign share relabelled with this deployment's id: the binding breaks (signature over the id).
        assert_eq!(submit(&mut u, &files[0], &doc, &fct, &fsig).err(), Some(Refusal::BadSignature(1)));
        // Signed by operator 2 for index 1.
        let msg = wire::submission_message(&doc, &files[0].deployment_id, 1, &ct);
        let sig2 = ops[1].kp.sign(&SystemRandom::new(), &msg).unwrap().as_ref().to_vec();
        assert_eq!(submit(&mut u, &files[0], &doc, &ct, &sig2).err(), Some(Refusal::BadSignature(1)));
        // A corrupted share, correctly sealed and signed (an operator with a flipped share file).
        let mut bad = files[0].clone();
        let value = vec![0x42u8; 32];
        let bct = seal(u.unseal_spki(), &wire::submission_info(&doc, &bad.deployment_id, 1), &value).unwrap();
        let bsig =
            ops[0].kp.sign(&SystemRandom::new(), &wire::submission_message(&doc, &bad.deployment_id, 1, &bct)).unwrap();
        assert_eq!(submit(&mut u, &bad, &doc, &bct, bsig.as_ref()).err(), Some(Refusal::WrongShare(1)));
        bad.index = 9;
        assert_eq!(submit(&mut u, &bad, &doc, &ct, &sig).err(), Some(Refusal::BadIndex(9, 3)));
        // A flipped ciphertext byte: the signature covers it.
        let mut flipped = ct.clone();
        flipped[100] ^= 1;
        assert_eq!(submit(&mut u, &files[0], &doc, &flipped, &sig).err(), Some(Refusal::BadSignature(1)));

        // The good one.
        assert_eq!(need(submit(&mut u, &files[0], &doc, &ct, &sig)), 1);
        assert_eq!(u.accepted(), vec![1]);
        // Replayed.
        assert_eq!(submit(&mut u, &files[0], &doc, &ct, &sig).err(), Some(Refusal::Duplicate(1)));
        // Sealed for another start's unseal key (an earlier boot): does not open here.
        let old = UnsealKey::generate().unwrap();
        let (oct, osig) = submission(&ops[2], &files[2], old.spki(), &doc);
        assert_eq!(submit(&mut u, &files[2], &doc, &oct, &osig).err(), Some(Refusal::DoesNotOpen));
        // Operator 3 completes it.
        let doc2 = [8u8; 48];
        u.issued(doc2);
        let (ct3, sig3) = submission(&ops[2], &files[2], u.unseal_spki(), &doc2);
        match submit(&mut u, &files[2], &doc2, &ct3, &sig3).unwrap() {
            Progress::Unsealed(k) => assert!(k == dk),
            Progress::NeedMore(_) => panic!("not unsealed"),
        }
        assert!(u.is_unsealed());
        assert_eq!(submit(&mut u, &files[1], &doc2, &ct3, &sig3).err(), Some(Refusal::AlreadyUnsealed));
    }

    #[test]
    fn an_edited_descriptor_only_refuses() {
        let dk = Key256::generate().unwrap();
        let (ops, spkis) = operators(2);
        let (mut desc, files) = initialise(&dk, &spkis, 2, None, &DIGEST).unwrap();
        // The host rewrites commitment 2 and the check for shares of its own: operator 2's real share is refused.
        desc.commitments[1] = serde_bytes::ByteBuf::from(vec![0u8; 32]);
        let mut u = Unsealer::new(desc.clone()).unwrap();
        let doc = [1u8; 48];
        u.issued(doc);
        let (ct, sig) = submission(&ops[1], &files[1], u.unseal_spki(), &doc);
        assert_eq!(submit(&mut u, &files[1], &doc, &ct, &sig).err(), Some(Refusal::WrongShare(2)));
        // A wrong check: the right shares are discarded rather than a wrong key used.
        let (mut desc, files) = initialise(&dk, &spkis, 2, None, &DIGEST).unwrap();
        desc.check = vec![0u8; 32];
        let mut u = Unsealer::new(desc).unwrap();
        u.issued(doc);
        for (i, f) in files.iter().enumerate() {
            let (ct, sig) = submission(&ops[i], f, u.unseal_spki(), &doc);
            let r = submit(&mut u, f, &doc, &ct, &sig);
            if i == 1 {
                assert_eq!(r.err(), Some(Refusal::CheckFailed));
            } else {
                assert_eq!(need(r), 1);
            }
        }
        assert!(!u.is_unsealed());
    }

    #[test]
    fn initialise_refuses_bad_parameters() {
        let dk = Key256::generate().unwrap();
        let (_, spkis) = operators(3);
        assert!(initialise(&dk, &spkis, 0, None, &DIGEST).is_err());
        assert!(initialise(&dk, &spkis, 4, None, &DIGEST).is_err());
        let many: Vec<Vec<u8>> = (0..17).map(|i| spkis[i % 3].clone()).collect();
        assert!(initialise(&dk, &many, 2, None, &DIGEST).is_err());
        assert!(initialise(&dk, &[b"junk".to_vec()], 1, None, &DIGEST).is_err());
        assert!(Descriptor::decode(b"junk").is_err());
    }

    #[test]
    fn issued_documents_are_bounded() {
        let dk = Key256::generate().unwrap();
        let (_, spkis) = operators(1);
        let (desc, _) = initialise(&dk, &spkis, 1, None, &DIGEST).unwrap();
        let mut u = Unsealer::new(desc).unwrap();
        for i in 0..=MAX_ISSUED {
            let mut d = [0u8; 48];
            d[..8].copy_from_slice(&(i as u64).to_be_bytes());
            u.issued(d);
        }
        assert_eq!(u.issued.len(), MAX_ISSUED);
        assert!(!u.issued.contains(&[0u8; 48]));
    }
}
