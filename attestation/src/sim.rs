//! The simulated Nitro Secure Module (feature `simulator`). INSECURE: for development and tests only.
//!
//! [`SimPki`] owns a P-384 certificate chain shaped like AWS's (root → three intermediates with pathLen 2/1/0 →
//! 3-hour leaf) and issues attestation documents byte-compatible with Nitro's: the payload is an
//! [`AttestationPayload`] serialized by ciborium (optional fields `null` when absent), wrapped in an untagged
//! COSE_Sign1 with protected header `{1: -35}` and a raw 96-byte ES384 signature by the leaf key. The very same
//! verifier runs on them; only the trust anchor differs. [`SimNsm`] puts a `SimPki` and a PCR set behind [`Nsm`].
//!
//! This module is pure: it reads the clock and the OS random source but does no file I/O. The host stores the
//! PKI as a PEM bundle ([`SimPki::to_pem_bundle`] / [`SimPki::from_pem_bundle`]).

use crate::document::{AttestationPayload, MAX_DOCUMENT_LEN, MAX_OPTIONAL_LEN, PCR_COUNT};
use crate::nsm::{Nsm, NsmError, check_request_limits};
use aws_lc_rs::digest::{SHA256, SHA384, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey,
};
use coset::{CborSerializable, CoseSign1Builder, HeaderBuilder, iana};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, PublicKeyData, SignatureAlgorithm,
};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use time::{Duration, OffsetDateTime};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, BasicConstraints as X509BasicConstraints, SubjectKeyIdentifier};
use x509_cert::name::Name;
use zeroize::Zeroizing;

/// Common name of the simulator root. Never `aws.nitro-enclaves`.
const ROOT_CN: &str = "simulator.nitro-enclaves";
/// Organization of every simulator certificate.
const ORGANIZATION: &str = "enclave-kms simulator";
/// The simulated "region" in certificate names.
const REGION: &str = "sim-1";
/// Validity of the root and the intermediates from generation.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How far back the root's and the intermediates' notBefore is set.
const CA_BACKDATE: Duration = Duration::hours(1);
/// A leaf's notBefore is this many seconds before the document that first uses it (as on Nitro).
const LEAF_BACKDATE_S: i64 = 3;
/// A leaf lives this long (as on Nitro).
const LEAF_VALIDITY_S: i64 = 3 * 3600;
/// A cached leaf is replaced when fewer than this many seconds of its validity remain (as on Nitro).
const LEAF_RENEW_BEFORE_S: i64 = 15 * 60;
/// Largest PEM bundle accepted, in bytes.
const MAX_BUNDLE_LEN: usize = 64 * 1024;
/// Largest `module_id` accepted in a [`DocumentRequest`], in bytes.
const MAX_MODULE_ID_LEN: usize = 1024;
/// First line of a PEM bundle.
const BUNDLE_HEADER: &str = "# enclave-kms simulator PKI. INSECURE: simulator mode only. Contains private keys.\n";
/// ecdsa-with-SHA384 (1.2.840.10045.4.3.3), DER content octets.
const ECDSA_WITH_SHA384_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];

/// Why the simulator PKI could not be built, loaded or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimPkiError {
    /// The operating system's random source failed.
    #[error("random source failed")]
    Random,
    /// A key pair could not be generated.
    #[error("key generation failed")]
    KeyGeneration,
    /// A certificate could not be generated.
    #[error("certificate generation failed: {0}")]
    Certificate(String),
    /// The PEM bundle is malformed or incomplete.
    #[error("malformed simulator PKI bundle: {0}")]
    Bundle(String),
    /// The PEM bundle's pieces do not fit together (a key not matching its certificate, a broken chain).
    #[error("inconsistent simulator PKI bundle: {0}")]
    Inconsistent(String),
    /// A document request field is outside the limits.
    #[error("document request field {field} has {len} bytes, outside the limits")]
    FieldSize {
        /// `public_key`, `user_data`, `nonce` or `module_id`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The document request's PCRs are outside the limits (1 to 32 entries, index below 32, 32/48/64 bytes).
    #[error("document request PCRs: {0}")]
    Pcr(String),
    /// The time given is outside what certificates can express.
    #[error("time out of range: {0}")]
    Time(String),
    /// Signing the document failed.
    #[error("signing failed")]
    Signing,
    /// Encoding the document failed.
    #[error("encoding failed: {0}")]
    Encoding(String),
}

fn cert_error(e: rcgen::Error) -> SimPkiError {
    SimPkiError::Certificate(e.to_string())
}

/// What goes into a simulated attestation document besides what the PKI supplies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentRequest {
    /// PCR index → value: 1 to 32 entries, index below 32, 32, 48 or 64 bytes each.
    pub pcrs: BTreeMap<u32, Vec<u8>>,
    /// Optional key the enclave supplies (1 to 1024 bytes).
    pub public_key: Option<Vec<u8>>,
    /// Optional application data (at most 1024 bytes).
    pub user_data: Option<Vec<u8>>,
    /// Optional nonce (at most 1024 bytes).
    pub nonce: Option<Vec<u8>>,
    /// Overrides the module id; `None` gives the PKI's own `sim-<16 hex>-enc<16 hex>`. A test knob, checked only for
    /// length: a value not starting with `sim-` gives a document every verifier must refuse.
    pub module_id: Option<String>,
}

impl DocumentRequest {
    fn check(&self) -> Result<(), SimPkiError> {
        let count = self.pcrs.len();
        if count == 0 || count > PCR_COUNT as usize {
            return Err(SimPkiError::Pcr(format!("{count} entries, not 1 to {PCR_COUNT}")));
        }
        for (index, value) in &self.pcrs {
            if *index >= PCR_COUNT {
                return Err(SimPkiError::Pcr(format!("index {index} is not below {PCR_COUNT}")));
            }
            if !matches!(value.len(), 32 | 48 | 64) {
                return Err(SimPkiError::Pcr(format!("PCR {index} has {} bytes, not 32, 48 or 64", value.len())));
            }
        }
        if let Some(k) = &self.public_key
            && (k.is_empty() || k.len() > MAX_OPTIONAL_LEN)
        {
            return Err(SimPkiError::FieldSize { field: "public_key", len: k.len() });
        }
        for (field, value) in [("user_data", &self.user_data), ("nonce", &self.nonce)] {
            if let Some(v) = value
                && v.len() > MAX_OPTIONAL_LEN
            {
                return Err(SimPkiError::FieldSize { field, len: v.len() });
            }
        }
        if let Some(m) = &self.module_id
            && m.len() > MAX_MODULE_ID_LEN
        {
            return Err(SimPkiError::FieldSize { field: "module_id", len: m.len() });
        }
        Ok(())
    }
}

/// The four CA levels, root first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Root,
    I1,
    I2,
    I3,
}

impl Role {
    const ALL: [Role; 4] = [Role::Root, Role::I1, Role::I2, Role::I3];

    fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::I1 => "intermediate 1",
            Role::I2 => "intermediate 2",
            Role::I3 => "intermediate 3",
        }
    }

    fn cert_label(self) -> &'static str {
        match self {
            Role::Root => "SIM ROOT CERTIFICATE",
            Role::I1 => "SIM INTERMEDIATE 1 CERTIFICATE",
            Role::I2 => "SIM INTERMEDIATE 2 CERTIFICATE",
            Role::I3 => "SIM INTERMEDIATE 3 CERTIFICATE",
        }
    }

    fn key_label(self) -> &'static str {
        match self {
            Role::Root => "SIM ROOT PRIVATE KEY",
            Role::I1 => "SIM INTERMEDIATE 1 PRIVATE KEY",
            Role::I2 => "SIM INTERMEDIATE 2 PRIVATE KEY",
            Role::I3 => "SIM INTERMEDIATE 3 PRIVATE KEY",
        }
    }

    /// The pathLenConstraint, as on AWS's chain (the root has none).
    fn path_len(self) -> Option<u8> {
        match self {
            Role::Root => None,
            Role::I1 => Some(2),
            Role::I2 => Some(1),
            Role::I3 => Some(0),
        }
    }

    /// The subject of a newly generated CA at this level; `id` makes the intermediates' names unique.
    fn subject(self, id: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, ORGANIZATION);
        let cn = match self {
            Role::Root => ROOT_CN.to_owned(),
            Role::I1 => format!("{id}.{REGION}.{ROOT_CN}"),
            Role::I2 => format!("{id}.zonal.{REGION}.{ROOT_CN}"),
            Role::I3 => format!("i-{id}.{REGION}.{ROOT_CN}"),
        };
        dn.push(DnType::CommonName, cn);
        dn
    }
}

/// A CA certificate as generated (DER, never regenerated) and its key.
struct Ca {
    der: Vec<u8>,
    key: KeyPair,
}

/// A leaf certificate and its key, cached until 15 minutes before it expires.
struct Leaf {
    der: Vec<u8>,
    key: EcdsaKeyPair,
    not_before: i64,
    not_after: i64,
}

impl Leaf {
    /// Whether this leaf may sign a document at `now` (seconds).
    fn serves(&self, now: i64) -> bool {
        self.not_before <= now && now.saturating_add(LEAF_RENEW_BEFORE_S) <= self.not_after
    }
}

/// A leaf's public key, for rcgen.
struct LeafPublicKey(Vec<u8>);

impl PublicKeyData for LeafPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P384_SHA384
    }
}

/// The simulator's PKI: a P-384 root (`CN=simulator.nitro-enclaves, O=enclave-kms simulator`), three intermediates
/// with pathLen 2/1/0, and 3-hour leaves minted by the third intermediate and re-minted 15 minutes before expiry.
/// INSECURE: its private keys live in process memory and in the host's bundle.
pub struct SimPki {
    root: Ca,
    i1: Ca,
    i2: Ca,
    i3_der: Vec<u8>,
    /// Rebuilt from the stored i3 certificate; owns i3's key.
    i3_issuer: Issuer<'static, KeyPair>,
    i3_subject_der: Vec<u8>,
    i3_key_id: Vec<u8>,
    /// i3's public key (uncompressed point), to check every minted leaf.
    i3_public: Vec<u8>,
    module_id: String,
    leaf: Mutex<Option<Leaf>>,
}

impl std::fmt::Debug for SimPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPki")
            .field("root_sha256", &hex::encode(digest(&SHA256, &self.root.der)))
            .field("module_id", &self.module_id)
            .finish_non_exhaustive()
    }
}

fn new_ca_key() -> Result<KeyPair, SimPkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(|_| SimPkiError::KeyGeneration)
}

fn random_hex(bytes: usize) -> Result<String, SimPkiError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| SimPkiError::Random)?;
    Ok(hex::encode(buf))
}

fn ca_params(
    role: Role,
    subject: DistinguishedName,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::Ca(match role.path_len() {
        None => BasicConstraints::Unconstrained,
        Some(n) => BasicConstraints::Constrained(n),
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = role != Role::Root;
    params
}

fn parse_cert(role: Role, der: &[u8]) -> Result<Certificate, SimPkiError> {
    Certificate::from_der(der)
        .map_err(|e| SimPkiError::Inconsistent(format!("{} certificate does not parse: {e}", role.name())))
}

fn name_der(role: Role, name: &Name) -> Result<Vec<u8>, SimPkiError> {
    name.to_der().map_err(|e| SimPkiError::Inconsistent(format!("{} name: {e}", role.name())))
}

fn subject_key_id(role: Role, cert: &Certificate) -> Result<Vec<u8>, SimPkiError> {
    match cert.tbs_certificate().get_extension::<SubjectKeyIdentifier>() {
        Ok(Some((_, ski))) => Ok(ski.0.as_bytes().to_vec()),
        _ => Err(SimPkiError::Inconsistent(format!("{} certificate has no usable subjectKeyIdentifier", role.name()))),
    }
}

/// Verifies `cert`'s signature (ecdsa-with-SHA384 only) under the P-384 public key `issuer_public`.
fn check_cert_signature(role: Role, cert: &Certificate, issuer_public: &[u8]) -> Result<(), SimPkiError> {
    let inconsistent = |what: &str| SimPkiError::Inconsistent(format!("{} certificate: {what}", role.name()));
    if cert.signature_algorithm().oid.as_bytes() != ECDSA_WITH_SHA384_OID
        || cert.tbs_certificate().signature().oid.as_bytes() != ECDSA_WITH_SHA384_OID
    {
        return Err(inconsistent("not signed with ecdsa-with-SHA384"));
    }
    let tbs = cert.tbs_certificate().to_der().map_err(|_| inconsistent("cannot re-encode"))?;
    let signature = cert.signature().as_bytes().ok_or_else(|| inconsistent("signature has unused bits"))?;
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, issuer_public)
        .verify(&tbs, signature)
        .map_err(|_| inconsistent("signature does not verify under its issuer's key"))
}

/// The uncompressed P-384 point of `cert`'s subject public key, after checking it is `key`'s.
fn check_key_matches(role: Role, cert: &Certificate, key: &KeyPair) -> Result<Vec<u8>, SimPkiError> {
    let spki = cert.tbs_certificate().subject_public_key_info();
    let spki_der = spki.to_der().map_err(|e| SimPkiError::Inconsistent(format!("{} public key: {e}", role.name())))?;
    if spki_der != key.subject_public_key_info() {
        return Err(SimPkiError::Inconsistent(format!("{} private key does not match its certificate", role.name())));
    }
    spki.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| SimPkiError::Inconsistent(format!("{} public key has unused bits", role.name())))
}

/// rcgen's view of a name read from a certificate: one UTF8String or PrintableString attribute per RDN, no
/// attribute type twice (what `SimPki::generate` produces). The caller checks the re-encoding is byte-identical.
fn rcgen_name(role: Role, name: &Name) -> Result<DistinguishedName, SimPkiError> {
    let unsupported = || SimPkiError::Inconsistent(format!("{} subject is not in the simulator's form", role.name()));
    let mut dn = DistinguishedName::new();
    for rdn in name.iter_rdn() {
        let mut attributes = rdn.iter();
        let (Some(atv), None) = (attributes.next(), attributes.next()) else {
            return Err(unsupported());
        };
        let arcs: Vec<u64> = atv.oid.arcs().map(u64::from).collect();
        let ty = DnType::from_oid(&arcs);
        if dn.get(&ty).is_some() {
            return Err(unsupported());
        }
        let text = std::str::from_utf8(atv.value.value()).map_err(|_| unsupported())?;
        let value = match atv.value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => {
                DnValue::PrintableString(rcgen::string::PrintableString::try_from(text).map_err(|_| unsupported())?)
            }
            _ => return Err(unsupported()),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// A CA signed by `parent`: its parameters (to sign the next level), key and certificate DER.
fn sub_ca(
    role: Role,
    parent: (&CertificateParams, &KeyPair),
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(CertificateParams, KeyPair, Vec<u8>), SimPkiError> {
    let key = new_ca_key()?;
    let params = ca_params(role, role.subject(&random_hex(8)?), not_before, not_after);
    let cert = params.signed_by(&key, &Issuer::from_params(parent.0, parent.1)).map_err(cert_error)?;
    Ok((params, key, cert.der().to_vec()))
}

impl SimPki {
    /// Generates a fresh PKI: root and intermediates valid from an hour ago for 10 years.
    pub fn generate() -> Result<SimPki, SimPkiError> {
        let now = OffsetDateTime::now_utc();
        let (not_before, not_after) = (now - CA_BACKDATE, now + CA_VALIDITY);
        let root_key = new_ca_key()?;
        let root_params = ca_params(Role::Root, Role::Root.subject(""), not_before, not_after);
        let root_der = root_params.self_signed(&root_key).map_err(cert_error)?.der().to_vec();
        let (i1_params, i1_key, i1_der) = sub_ca(Role::I1, (&root_params, &root_key), not_before, not_after)?;
        let (i2_params, i2_key, i2_der) = sub_ca(Role::I2, (&i1_params, &i1_key), not_before, not_after)?;
        let (_, i3_key, i3_der) = sub_ca(Role::I3, (&i2_params, &i2_key), not_before, not_after)?;
        Self::assemble([
            Ca { der: root_der, key: root_key },
            Ca { der: i1_der, key: i1_key },
            Ca { der: i2_der, key: i2_key },
            Ca { der: i3_der, key: i3_key },
        ])
    }

    /// Checks that the four CAs form the simulator's chain (each key matches its certificate, root self-signed and
    /// named `simulator.nitro-enclaves`, each link signed by its parent, CA with the expected pathLen), rebuilds
    /// i3's issuer from its stored certificate, and mints a first leaf to prove the issuer reproduces i3 exactly.
    fn assemble(cas: [Ca; 4]) -> Result<SimPki, SimPkiError> {
        let [root, i1, i2, i3] = cas;
        let mut publics: Vec<Vec<u8>> = Vec::with_capacity(4);
        let mut subjects: Vec<Vec<u8>> = Vec::with_capacity(4);
        let mut i3_cert = None;
        for (role, ca) in Role::ALL.into_iter().zip([&root, &i1, &i2, &i3]) {
            let cert = parse_cert(role, &ca.der)?;
            let tbs = cert.tbs_certificate();
            let public = check_key_matches(role, &cert, &ca.key)?;
            match tbs.get_extension::<X509BasicConstraints>() {
                Ok(Some((true, bc))) if bc.ca && bc.path_len_constraint == role.path_len() => {}
                _ => {
                    return Err(SimPkiError::Inconsistent(format!(
                        "{} certificate lacks basicConstraints cA with pathLen {:?}",
                        role.name(),
                        role.path_len()
                    )));
                }
            }
            let issuer = name_der(role, tbs.issuer())?;
            let subject = name_der(role, tbs.subject())?;
            let (parent_subject, parent_public) = match (subjects.last(), publics.last()) {
                (Some(s), Some(p)) => (s.as_slice(), p.as_slice()),
                _ => {
                    let cn = tbs.subject().common_name().ok().flatten().map(String::from);
                    if cn.as_deref() != Some(ROOT_CN) {
                        return Err(SimPkiError::Inconsistent(format!("root is not CN={ROOT_CN}")));
                    }
                    (subject.as_slice(), public.as_slice())
                }
            };
            if issuer != parent_subject {
                return Err(SimPkiError::Inconsistent(format!("{} issuer is not its parent's subject", role.name())));
            }
            check_cert_signature(role, &cert, parent_public)?;
            publics.push(public);
            subjects.push(subject);
            if role == Role::I3 {
                i3_cert = Some(cert);
            }
        }
        let (Some(i3_cert), Some(i3_public), Some(i3_subject_der)) = (i3_cert, publics.pop(), subjects.pop()) else {
            return Err(SimPkiError::Inconsistent("intermediate 3 missing".into()));
        };
        let i3_key_id = subject_key_id(Role::I3, &i3_cert)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen_name(Role::I3, i3_cert.tbs_certificate().subject())?;
        params.key_identifier_method = KeyIdMethod::PreSpecified(i3_key_id.clone());
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let spki_hash = digest(&SHA256, &i3.key.subject_public_key_info());
        let id = |range: std::ops::Range<usize>| hex::encode(spki_hash.as_ref().get(range).unwrap_or_default());
        let module_id = format!("sim-{}-enc{}", id(0..8), id(8..16));
        let pki = SimPki {
            root,
            i1,
            i2,
            i3_der: i3.der,
            i3_issuer: Issuer::new(params, i3.key),
            i3_subject_der,
            i3_key_id,
            i3_public,
            module_id,
            leaf: Mutex::new(None),
        };
        let now_s = i64::try_from(now_ms()? / 1000).map_err(|_| SimPkiError::Time("clock too far ahead".into()))?;
        let first = pki.mint_leaf(now_s)?;
        *pki.leaf.lock().unwrap_or_else(PoisonError::into_inner) = Some(first);
        Ok(pki)
    }

    /// The PEM bundle of every certificate and private key (PKCS#8), for the host to store. Secret.
    ///
    /// Blocks, in this order: `SIM ROOT CERTIFICATE`, `SIM ROOT PRIVATE KEY`, then `SIM INTERMEDIATE n CERTIFICATE`
    /// and `SIM INTERMEDIATE n PRIVATE KEY` for n = 1, 2, 3; `#` comment lines and blank lines between blocks.
    pub fn to_pem_bundle(&self) -> Zeroizing<String> {
        let parts: [(Role, &[u8], &[u8]); 4] = [
            (Role::Root, &self.root.der, self.root.key.serialized_der()),
            (Role::I1, &self.i1.der, self.i1.key.serialized_der()),
            (Role::I2, &self.i2.der, self.i2.key.serialized_der()),
            (Role::I3, &self.i3_der, self.i3_issuer.key().serialized_der()),
        ];
        // Sized up front so the secret is never copied by a reallocation.
        let capacity = BUNDLE_HEADER.len()
            + parts
                .iter()
                .map(|(_, c, k)| crate::pem::encoded_len(c.len()) + crate::pem::encoded_len(k.len()) + 200)
                .sum::<usize>();
        let mut out = Zeroizing::new(String::with_capacity(capacity));
        out.push_str(BUNDLE_HEADER);
        for (role, cert, key) in parts {
            out.push_str("# ");
            out.push_str(role.name());
            out.push('\n');
            crate::pem::encode_into(&mut out, role.cert_label(), cert);
            crate::pem::encode_into(&mut out, role.key_label(), key);
        }
        out
    }

    /// Loads a bundle written by [`SimPki::to_pem_bundle`]. Refuses (never panics) anything malformed, incomplete
    /// or inconsistent: unknown, duplicate or missing blocks, bad base64, keys that are not P-384 PKCS#8 or do not
    /// match their certificate, a chain that does not link up.
    pub fn from_pem_bundle(pem: &str) -> Result<SimPki, SimPkiError> {
        if pem.len() > MAX_BUNDLE_LEN {
            return Err(SimPkiError::Bundle(format!("more than {MAX_BUNDLE_LEN} bytes")));
        }
        let mut blocks = crate::pem::parse(pem, MAX_BUNDLE_LEN).map_err(|e| SimPkiError::Bundle(e.to_string()))?;
        let mut take = |label: &str| -> Result<Zeroizing<Vec<u8>>, SimPkiError> {
            let at = blocks
                .iter()
                .position(|(l, _)| *l == label)
                .ok_or_else(|| SimPkiError::Bundle(format!("no {label} block")))?;
            Ok(blocks.swap_remove(at).1)
        };
        let mut cas = Vec::with_capacity(4);
        for role in Role::ALL {
            let der = take(role.cert_label())?;
            let key_der = take(role.key_label())?;
            let key = KeyPair::from_pkcs8_der_and_sign_algo(&key_der.as_slice().into(), &PKCS_ECDSA_P384_SHA384)
                .map_err(|_| SimPkiError::Bundle(format!("{} private key is not a PKCS#8 P-384 key", role.name())))?;
            cas.push(Ca { der: der.to_vec(), key });
        }
        if let Some((label, _)) = blocks.first() {
            return Err(SimPkiError::Bundle(format!("unexpected {label} block")));
        }
        let cas: [Ca; 4] = cas.try_into().map_err(|_| SimPkiError::Bundle("wrong number of blocks".into()))?;
        Self::assemble(cas)
    }

    /// The root certificate in PEM (`CERTIFICATE`), for the host, clients and tests to pin.
    pub fn root_pem(&self) -> String {
        let mut out = String::with_capacity(crate::pem::encoded_len(self.root.der.len()) + 64);
        crate::pem::encode_into(&mut out, "CERTIFICATE", &self.root.der);
        out
    }

    /// The root certificate (DER).
    pub fn root_der(&self) -> Vec<u8> {
        self.root.der.clone()
    }

    /// The module id of this simulated NSM, `sim-<16 hex>-enc<16 hex>` (derived from intermediate 3's key, so the
    /// same across reloads of a bundle).
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    /// Issues a document at `now_ms` (timestamp), byte-compatible with Nitro's: payload = [`AttestationPayload`]
    /// serialized by ciborium, module_id `sim-...` (unless the request overrides it), digest `SHA384`, cabundle =
    /// [root, i1, i2, i3], optional fields `null` when absent; COSE_Sign1 untagged, protected `{1: -35}`,
    /// unprotected `{}`, ES384 raw r‖s by a leaf valid at `now_ms`.
    pub fn issue(&self, req: &DocumentRequest, now_ms: u64) -> Result<Vec<u8>, SimPkiError> {
        req.check()?;
        let now_s = i64::try_from(now_ms / 1000).map_err(|_| SimPkiError::Time(format!("{now_ms} ms")))?;
        let mut cached = self.leaf.lock().unwrap_or_else(PoisonError::into_inner);
        let leaf = match cached.take() {
            Some(leaf) if leaf.serves(now_s) => cached.insert(leaf),
            _ => cached.insert(self.mint_leaf(now_s)?),
        };
        let payload = AttestationPayload {
            module_id: req.module_id.clone().unwrap_or_else(|| self.module_id.clone()),
            digest: "SHA384".to_owned(),
            timestamp: now_ms,
            pcrs: req.pcrs.iter().map(|(i, v)| (*i, ByteBuf::from(v.clone()))).collect(),
            certificate: ByteBuf::from(leaf.der.clone()),
            cabundle: [&self.root.der, &self.i1.der, &self.i2.der, &self.i3_der]
                .into_iter()
                .map(|der| ByteBuf::from(der.clone()))
                .collect(),
            public_key: req.public_key.clone().map(ByteBuf::from),
            user_data: req.user_data.clone().map(ByteBuf::from),
            nonce: req.nonce.clone().map(ByteBuf::from),
        };
        let mut payload_bytes = Vec::with_capacity(8192);
        ciborium::into_writer(&payload, &mut payload_bytes).map_err(|e| SimPkiError::Encoding(e.to_string()))?;
        let rng = SystemRandom::new();
        let document = CoseSign1Builder::new()
            .protected(HeaderBuilder::new().algorithm(iana::Algorithm::ES384).build())
            .payload(payload_bytes)
            .try_create_signature(b"", |tbs| {
                leaf.key.sign(&rng, tbs).map(|s| s.as_ref().to_vec()).map_err(|_| SimPkiError::Signing)
            })?
            .build()
            .to_vec()
            .map_err(|e| SimPkiError::Encoding(e.to_string()))?;
        if document.len() > MAX_DOCUMENT_LEN {
            return Err(SimPkiError::Encoding(format!("document of {} bytes", document.len())));
        }
        Ok(document)
    }

    /// A new leaf valid from `now - 3 s` for 3 hours, signed by i3 and checked against i3's stored certificate.
    fn mint_leaf(&self, now_s: i64) -> Result<Leaf, SimPkiError> {
        let not_before = now_s.saturating_sub(LEAF_BACKDATE_S);
        let not_after = not_before.saturating_add(LEAF_VALIDITY_S);
        let time = |t: i64| OffsetDateTime::from_unix_timestamp(t).map_err(|e| SimPkiError::Time(e.to_string()));
        let key = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).map_err(|_| SimPkiError::KeyGeneration)?;
        let mut params = CertificateParams::default();
        params.not_before = time(not_before)?;
        params.not_after = time(not_after)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, ORGANIZATION);
        dn.push(DnType::CommonName, format!("{}.{REGION}.simulator", self.module_id));
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        params.use_authority_key_identifier_extension = true;
        let der = params
            .signed_by(&LeafPublicKey(key.public_key().as_ref().to_vec()), &self.i3_issuer)
            .map_err(cert_error)?
            .der()
            .to_vec();
        self.check_leaf(&der)?;
        Ok(Leaf { der, key, not_before, not_after })
    }

    /// Checks that a minted leaf names i3 as issuer byte for byte, carries i3's key identifier, and verifies under
    /// i3's stored public key: the rebuilt issuer reproduces the stored certificate.
    fn check_leaf(&self, der: &[u8]) -> Result<(), SimPkiError> {
        let mismatch = |what: &str| SimPkiError::Inconsistent(format!("leaf minted by intermediate 3: {what}"));
        let leaf = Certificate::from_der(der).map_err(|_| mismatch("does not parse"))?;
        let tbs = leaf.tbs_certificate();
        if tbs.issuer().to_der().ok().as_deref() != Some(self.i3_subject_der.as_slice()) {
            return Err(mismatch("issuer is not intermediate 3's subject"));
        }
        match tbs.get_extension::<AuthorityKeyIdentifier>() {
            Ok(Some((_, aki))) if aki.key_identifier.as_ref().map(|k| k.as_bytes()) == Some(&self.i3_key_id[..]) => {}
            _ => return Err(mismatch("authorityKeyIdentifier is not intermediate 3's key identifier")),
        }
        check_cert_signature(Role::I3, &leaf, &self.i3_public).map_err(|_| mismatch("signature does not verify"))
    }
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> Result<u64, SimPkiError> {
    let since =
        SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| SimPkiError::Time("clock before 1970".into()))?;
    u64::try_from(since.as_millis()).map_err(|_| SimPkiError::Time("clock too far ahead".into()))
}

/// Label of the simulated kernel-and-boot measurement (PCR1).
const PCR1_LABEL: &[u8] = b"enclave-kms simulator PCR1 (kernel and boot ramfs)";
/// Label of the simulated application measurement (PCR2).
const PCR2_LABEL: &[u8] = b"enclave-kms simulator PCR2 (application)";
/// Length of a SHA-384 PCR.
const PCR_LEN: usize = 48;

/// The simulated enclave's default PCRs: 0..=15 present (48 bytes each), PCR0 = SHA-384 of `enclave_binary`,
/// PCR1 and PCR2 fixed (SHA-384 of fixed labels), PCR3..15 zero; `debug` zeroes PCR0-2 as Nitro does.
pub fn simulated_pcrs(enclave_binary: &[u8], debug: bool) -> BTreeMap<u32, Vec<u8>> {
    let mut pcrs: BTreeMap<u32, Vec<u8>> = (0..16).map(|i| (i, vec![0u8; PCR_LEN])).collect();
    if !debug {
        pcrs.insert(0, digest(&SHA384, enclave_binary).as_ref().to_vec());
        pcrs.insert(1, digest(&SHA384, PCR1_LABEL).as_ref().to_vec());
        pcrs.insert(2, digest(&SHA384, PCR2_LABEL).as_ref().to_vec());
    }
    pcrs
}

/// The simulated NSM of a simulator-mode enclave. INSECURE.
pub struct SimNsm {
    pki: SimPki,
    pcrs: BTreeMap<u32, Vec<u8>>,
}

impl std::fmt::Debug for SimNsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNsm").field("pki", &self.pki).field("pcrs", &self.pcrs.len()).finish()
    }
}

impl SimNsm {
    /// A simulated NSM issuing documents from `pki` with `pcrs` (see [`simulated_pcrs`]). PCRs outside the limits
    /// make every [`Nsm::attestation`] fail.
    pub fn new(pki: SimPki, pcrs: BTreeMap<u32, Vec<u8>>) -> SimNsm {
        SimNsm { pki, pcrs }
    }

    /// The PKI (for its root).
    pub fn pki(&self) -> &SimPki {
        &self.pki
    }
}

impl Nsm for SimNsm {
    fn fill_random(&self, out: &mut [u8]) -> Result<(), NsmError> {
        getrandom::fill(out).map_err(|_| NsmError::Random)
    }

    fn is_simulated(&self) -> bool {
        true
    }

    /// Issues a document at the current system time, with the same request limits as the hardware NSM.
    fn attestation(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        check_request_limits(user_data, nonce, public_key)?;
        let request = DocumentRequest {
            pcrs: self.pcrs.clone(),
            public_key: public_key.map(<[u8]>::to_vec),
            user_data: user_data.map(<[u8]>::to_vec),
            nonce: nonce.map(<[u8]>::to_vec),
            module_id: None,
        };
        let now = now_ms().map_err(|e| NsmError::Request(format!("simulator: {e}")))?;
        self.pki.issue(&request, now).map_err(|e| NsmError::Request(format!("simulator: {e}")))
    }

    fn trust_anchor(&self) -> Result<crate::TrustAnchor, crate::AttestError> {
        crate::TrustAnchor::simulator(&self.pki.root_der())
    }

    /// The PCR's value; PCRs below 32 that were not configured read as 48 zero bytes, as on Nitro.
    fn describe_pcr(&self, index: u16) -> Result<Vec<u8>, NsmError> {
        if u32::from(index) >= PCR_COUNT {
            return Err(NsmError::Request("InvalidIndex".into()));
        }
        Ok(self.pcrs.get(&u32::from(index)).cloned().unwrap_or_else(|| vec![0u8; PCR_LEN]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    fn pki() -> SimPki {
        SimPki::generate().unwrap()
    }

    fn request() -> DocumentRequest {
        DocumentRequest { pcrs: simulated_pcrs(b"binary", false), ..DocumentRequest::default() }
    }

    /// The leaf certificate of a document.
    fn leaf_of(doc: &[u8]) -> Vec<u8> {
        let sign1 = coset::CoseSign1::from_slice(doc).unwrap();
        let payload: AttestationPayload = ciborium::from_reader(sign1.payload.unwrap().as_slice()).unwrap();
        payload.certificate.into_vec()
    }

    #[test]
    fn leaf_is_cached_then_reminted_fifteen_minutes_before_expiry() {
        let pki = pki();
        let t0 = 1_900_000_000_000u64;
        let first = leaf_of(&pki.issue(&request(), t0).unwrap());
        assert_eq!(leaf_of(&pki.issue(&request(), t0 + 1_000).unwrap()), first);
        // notBefore = t0 - 3 s, notAfter = notBefore + 3 h; still served with 15 min (and 1 s) left.
        let last_served = t0 + (3 * 3600 - 3 - 15 * 60) * 1000;
        assert_eq!(leaf_of(&pki.issue(&request(), last_served).unwrap()), first);
        let renewed = leaf_of(&pki.issue(&request(), last_served + 1_000).unwrap());
        assert_ne!(renewed, first);
        // A document dated before the cached leaf's notBefore gets a leaf of its own.
        assert_ne!(leaf_of(&pki.issue(&request(), t0).unwrap()), renewed);
    }

    #[test]
    fn a_rebuilt_issuer_that_does_not_reproduce_i3_is_caught() {
        let mut pki = pki();
        pki.i3_subject_der = pki.root.der.clone();
        assert!(matches!(pki.mint_leaf(1_900_000_000), Err(SimPkiError::Inconsistent(_))));
        let mut pki = self::pki();
        pki.i3_key_id = vec![0; 20];
        assert!(matches!(pki.mint_leaf(1_900_000_000), Err(SimPkiError::Inconsistent(_))));
        let mut pki = self::pki();
        pki.i3_public = pki.i1.key.public_key_raw().to_vec();
        assert!(matches!(pki.mint_leaf(1_900_000_000), Err(SimPkiError::Inconsistent(_))));
    }

    #[test]
    fn subject_parsed_back_into_rcgen_is_byte_identical() {
        let pki = pki();
        for der in [&pki.root.der, &pki.i1.der, &pki.i2.der, &pki.i3_der] {
            let cert = Certificate::from_der(der).unwrap();
            let subject = cert.tbs_certificate().subject();
            let mut params = CertificateParams::default();
            params.distinguished_name = rcgen_name(Role::I3, subject).unwrap();
            let key = new_ca_key().unwrap();
            let probe = params.self_signed(&key).unwrap();
            let probe = Certificate::from_der(probe.der()).unwrap();
            assert_eq!(probe.tbs_certificate().subject().to_der().unwrap(), subject.to_der().unwrap());
        }
    }

    #[test]
    fn debug_output_has_no_key_material() {
        let pki = pki();
        let nsm = SimNsm::new(pki, simulated_pcrs(b"x", false));
        let debug = format!("{nsm:?} {:?}", nsm.pki());
        assert!(debug.contains(nsm.pki().module_id()));
        let bundle = nsm.pki().to_pem_bundle();
        let b64 = |data: &[u8]| -> String {
            crate::pem::encode("X", data).lines().filter(|l| !l.starts_with("-----")).collect()
        };
        for key in [
            nsm.pki().root.key.serialized_der(),
            nsm.pki().i1.key.serialized_der(),
            nsm.pki().i2.key.serialized_der(),
            nsm.pki().i3_issuer.key().serialized_der(),
        ] {
            assert!(bundle.contains(&b64(key)[..64]));
            assert!(!debug.contains(&hex::encode(key)[..32]));
            assert!(!debug.contains(&b64(key)[..32]));
        }
        assert!(!debug.contains("PRIVATE"));
    }

    #[test]
    fn sim_nsm_serves_pcrs_random_and_limits() {
        let pcrs = simulated_pcrs(b"enclave", false);
        let nsm = SimNsm::new(pki(), pcrs.clone());
        assert!(nsm.is_simulated());
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        nsm.fill_random(&mut a).unwrap();
        nsm.fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        assert_eq!(nsm.describe_pcr(0).unwrap(), pcrs[&0]);
        assert_eq!(nsm.describe_pcr(2).unwrap(), pcrs[&2]);
        assert_eq!(nsm.describe_pcr(31).unwrap(), vec![0u8; 48]);
        assert!(nsm.describe_pcr(32).is_err());
        assert!(matches!(
            nsm.attestation(Some(&[0u8; 513]), None, None),
            Err(NsmError::RequestLimit { field: "user_data", len: 513 })
        ));
        assert!(matches!(nsm.attestation(None, Some(&[0u8; 513]), None), Err(NsmError::RequestLimit { .. })));
        assert!(matches!(nsm.attestation(None, None, Some(&[])), Err(NsmError::RequestLimit { .. })));
        let doc = nsm.attestation(Some(&[1u8; 512]), Some(&[2u8; 512]), Some(&[3u8; 1024])).unwrap();
        let sign1 = coset::CoseSign1::from_slice(&doc).unwrap();
        let payload: Value = ciborium::from_reader(sign1.payload.unwrap().as_slice()).unwrap();
        assert!(
            payload
                .as_map()
                .unwrap()
                .iter()
                .any(|(k, v)| k.as_text() == Some("nonce") && v.as_bytes().unwrap() == &[2u8; 512])
        );
    }

    #[test]
    fn sim_nsm_with_bad_pcrs_fails_to_attest() {
        let nsm = SimNsm::new(pki(), BTreeMap::from([(0, vec![0u8; 47])]));
        assert!(matches!(nsm.attestation(None, None, None), Err(NsmError::Request(_))));
    }
}
