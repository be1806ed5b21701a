//! Trust anchors: the pinned AWS Nitro Enclaves root, or (feature `simulator`) a simulator root.
//!
//! The anchor is never taken from a document: [`verify`](crate::verify) requires the document's `cabundle[0]` to be
//! byte-identical to the anchor's DER and builds the path to this anchor only.

use crate::error::AttestError;
use crate::verify::{CertProfile, cert_profile, digest_array};
use aws_lc_rs::digest;
use rustls_pki_types::{CertificateDer, TrustAnchor as WebpkiAnchor};
use std::fmt;
use x509_cert::Certificate;
use x509_cert::der::Decode;

/// The AWS Nitro Enclaves root certificate (G1), as published by AWS (`root.pem` in AWS_NitroEnclaves_Root-G1.zip).
const AWS_NITRO_ROOT_PEM: &str = include_str!("aws_nitro_root.pem");

/// SHA-256 of the AWS root's DER: 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b (AWS's published
/// fingerprint).
const AWS_NITRO_ROOT_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31, 0x7e, 0xd7, 0xcd,
    0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// Largest PEM text accepted for an anchor.
const MAX_PEM_LEN: usize = 8 * 1024;
/// Largest anchor DER: it must equal a document's `cabundle[0]`, which is at most this long.
const MAX_ANCHOR_DER_LEN: usize = crate::document::MAX_CERT_LEN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnchorKind {
    AwsNitro,
    #[cfg(feature = "simulator")]
    Simulator,
}

/// The root certificate that attestation documents must chain to.
///
/// Built only by [`TrustAnchor::aws_nitro`] (the pinned AWS root) or, with feature `simulator`,
/// [`TrustAnchor::simulator`]. Construction checks that the certificate parses, is a self-issued P-384 CA with
/// keyCertSign and has a sane validity period.
#[derive(Clone)]
pub struct TrustAnchor {
    der: Vec<u8>,
    sha256: [u8; 32],
    kind: AnchorKind,
    webpki: WebpkiAnchor<'static>,
    profile: CertProfile,
}

impl fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchor")
            .field("kind", &self.kind)
            .field("sha256", &hex::encode(self.sha256))
            .finish_non_exhaustive()
    }
}

impl TrustAnchor {
    /// The AWS Nitro Enclaves root (G1), embedded from `src/aws_nitro_root.pem`; refused unless the SHA-256 of its
    /// DER is 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b.
    pub fn aws_nitro() -> Result<TrustAnchor, AttestError> {
        Self::pinned(AWS_NITRO_ROOT_PEM, &AWS_NITRO_ROOT_SHA256)
    }

    /// The anchor in `pem`, refused unless its DER's SHA-256 is `expected_sha256`.
    fn pinned(pem: &str, expected_sha256: &[u8; 32]) -> Result<TrustAnchor, AttestError> {
        let der = pem_to_der(pem)?;
        let anchor = Self::from_der(der, AnchorKind::AwsNitro)?;
        if &anchor.sha256 != expected_sha256 {
            return Err(AttestError::BadAnchor(format!(
                "root fingerprint {} is not the pinned {}",
                hex::encode(anchor.sha256),
                hex::encode(expected_sha256)
            )));
        }
        Ok(anchor)
    }

    /// A simulator root (DER). Documents whose module_id does not start with "sim-" are refused under it, and
    /// documents whose module_id starts with "sim-" are refused under [`TrustAnchor::aws_nitro`]. The AWS root itself
    /// is refused here.
    #[cfg(feature = "simulator")]
    pub fn simulator(root_der: &[u8]) -> Result<TrustAnchor, AttestError> {
        let anchor = Self::from_der(root_der.to_vec(), AnchorKind::Simulator)?;
        if anchor.sha256 == AWS_NITRO_ROOT_SHA256 {
            return Err(AttestError::BadAnchor("the AWS Nitro root cannot be a simulator root".into()));
        }
        Ok(anchor)
    }

    /// A simulator root given as one PEM `CERTIFICATE` block; see [`TrustAnchor::simulator`].
    #[cfg(feature = "simulator")]
    pub fn simulator_pem(root_pem: &str) -> Result<TrustAnchor, AttestError> {
        Self::simulator(&pem_to_der(root_pem)?)
    }

    /// Whether this is a simulator root (never true without feature `simulator`).
    pub fn is_simulator(&self) -> bool {
        match self.kind {
            AnchorKind::AwsNitro => false,
            #[cfg(feature = "simulator")]
            AnchorKind::Simulator => true,
        }
    }

    /// The root certificate (DER).
    pub fn root_der(&self) -> &[u8] {
        &self.der
    }

    /// SHA-256 of the root certificate's DER.
    pub fn sha256_fingerprint(&self) -> &[u8; 32] {
        &self.sha256
    }

    pub(crate) fn webpki(&self) -> &WebpkiAnchor<'static> {
        &self.webpki
    }

    pub(crate) fn profile(&self) -> &CertProfile {
        &self.profile
    }

    fn from_der(der: Vec<u8>, kind: AnchorKind) -> Result<TrustAnchor, AttestError> {
        if der.is_empty() || der.len() > MAX_ANCHOR_DER_LEN {
            return Err(AttestError::BadAnchor(format!("root certificate has {} bytes", der.len())));
        }
        let cert = Certificate::from_der(&der).map_err(|e| AttestError::BadAnchor(format!("not DER X.509: {e}")))?;
        let tbs = cert.tbs_certificate();
        if tbs.subject() != tbs.issuer() {
            return Err(AttestError::BadAnchor("root certificate is not self-issued".into()));
        }
        let profile = cert_profile(&cert).map_err(|e| AttestError::BadAnchor(e.to_string()))?;
        if !profile.is_ca || !profile.key_cert_sign {
            return Err(AttestError::BadAnchor("root certificate is not a CA with keyCertSign".into()));
        }
        if profile.p384_point.is_none() {
            return Err(AttestError::BadAnchor("root key is not ECDSA P-384".into()));
        }
        let webpki = webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
            .map_err(|e| AttestError::BadAnchor(format!("webpki refuses the root: {e}")))?
            .to_owned();
        let sha256 = digest_array(digest::digest(&digest::SHA256, &der));
        Ok(TrustAnchor { der, sha256, kind, webpki, profile })
    }
}

/// Decodes exactly one PEM `CERTIFICATE` block (see [`crate::pem`]).
fn pem_to_der(pem: &str) -> Result<Vec<u8>, AttestError> {
    crate::pem::decode_single(pem, "CERTIFICATE", MAX_PEM_LEN).map_err(|e| AttestError::BadAnchor(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_root_is_pinned() {
        let anchor = TrustAnchor::aws_nitro().unwrap();
        assert!(!anchor.is_simulator());
        assert_eq!(
            hex::encode(anchor.sha256_fingerprint()),
            "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
        );
        assert_eq!(digest::digest(&digest::SHA256, anchor.root_der()).as_ref(), AWS_NITRO_ROOT_SHA256);
        // The vendored test copy is byte-identical.
        assert_eq!(AWS_NITRO_ROOT_PEM, include_str!("../tests/vectors/root.pem"));
        let dbg = format!("{anchor:?}");
        assert!(dbg.contains("641a0321") && dbg.len() < 200, "{dbg}");
    }

    #[test]
    fn wrong_fingerprint_is_refused() {
        let mut other = AWS_NITRO_ROOT_SHA256;
        other[31] ^= 1;
        let err = TrustAnchor::pinned(AWS_NITRO_ROOT_PEM, &other).unwrap_err();
        assert!(matches!(err, AttestError::BadAnchor(_)), "{err:?}");
    }

    #[test]
    fn pem_is_strict() {
        let good = pem_to_der(AWS_NITRO_ROOT_PEM).unwrap();
        // CRLF and surrounding whitespace are fine.
        assert_eq!(pem_to_der(&format!("\n{}\r\n", AWS_NITRO_ROOT_PEM.replace('\n', "\r\n"))).unwrap(), good);
        // Two blocks, text around the block, another label, a bad character: refused.
        assert!(pem_to_der(&format!("{AWS_NITRO_ROOT_PEM}\n{AWS_NITRO_ROOT_PEM}")).is_err());
        assert!(pem_to_der(&format!("subject=foo\n{AWS_NITRO_ROOT_PEM}")).is_err());
        assert!(pem_to_der(&AWS_NITRO_ROOT_PEM.replace("CERTIFICATE", "X509 CRL")).is_err());
        assert!(pem_to_der(&AWS_NITRO_ROOT_PEM.replacen("MIIC", "MII*", 1)).is_err());
        assert!(pem_to_der("").is_err());
        assert!(pem_to_der(&" ".repeat(MAX_PEM_LEN + 1)).is_err());
    }

    #[test]
    fn garbage_anchors_are_refused() {
        assert!(matches!(TrustAnchor::from_der(vec![], AnchorKind::AwsNitro), Err(AttestError::BadAnchor(_))));
        assert!(matches!(
            TrustAnchor::from_der(vec![0x30, 0x00], AnchorKind::AwsNitro),
            Err(AttestError::BadAnchor(_))
        ));
        assert!(matches!(
            TrustAnchor::from_der(vec![0x30; 2000], AnchorKind::AwsNitro),
            Err(AttestError::BadAnchor(_))
        ));
    }

    #[cfg(feature = "simulator")]
    #[test]
    fn simulator_anchor_rules() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384};
        let aws = TrustAnchor::aws_nitro().unwrap();
        assert!(matches!(TrustAnchor::simulator(aws.root_der()), Err(AttestError::BadAnchor(_))));
        assert!(matches!(TrustAnchor::simulator_pem(AWS_NITRO_ROOT_PEM), Err(AttestError::BadAnchor(_))));

        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = params.self_signed(&key).unwrap();
        let sim = TrustAnchor::simulator(root.der()).unwrap();
        assert!(sim.is_simulator());
        assert_eq!(sim.root_der(), root.der().as_ref());
        assert_eq!(TrustAnchor::simulator_pem(&root.pem()).unwrap().root_der(), root.der().as_ref());

        // Not a CA: refused.
        let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf = leaf.self_signed(&key).unwrap();
        assert!(matches!(TrustAnchor::simulator(leaf.der()), Err(AttestError::BadAnchor(_))));

        // A CA without keyCertSign: refused.
        let mut no_ku = CertificateParams::new(Vec::<String>::new()).unwrap();
        no_ku.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        no_ku.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let no_ku = no_ku.self_signed(&key).unwrap();
        assert!(matches!(TrustAnchor::simulator(no_ku.der()), Err(AttestError::BadAnchor(_))));

        // A P-256 root: refused.
        let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p256_root = params.self_signed(&p256).unwrap();
        assert!(matches!(TrustAnchor::simulator(p256_root.der()), Err(AttestError::BadAnchor(_))));
    }
}
