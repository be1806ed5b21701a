//! `kms-host quorum`: operator tools of the `quorum` domain-key source. `keygen` makes an operator's P-384 key pair
//! (the same kind of key serves `--admin-public-key`); `unseal` verifies a sealed enclave and submits one share.
//! These run on the operator's machine, never on the relay or storage path.

pub mod hpke;
pub mod unseal;

use crate::files::write_atomic;
use aws_lc_rs::agreement::{ECDH_P384, PrivateKey};
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};
use clap::Subcommand;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

/// `kms-host quorum ...`.
#[derive(Subcommand)]
pub enum QuorumCommand {
    /// Generate an operator key pair: D/private.pem (PKCS#8, mode 0600) and D/public.pem (P-384).
    Keygen {
        /// Output directory.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Verify a sealed enclave's attestation, then submit this operator's share to it.
    Unseal {
        /// The sealed enclave's endpoint, https://HOST:PORT.
        #[arg(long)]
        endpoint: String,
        /// This operator's share file (DIR/quorum/share-I.enc of the initialisation).
        #[arg(long)]
        share: PathBuf,
        /// This operator's private key (PKCS#8 PEM, from `quorum keygen`).
        #[arg(long)]
        private_key: PathBuf,
        /// An expected PCR, N=HEX (repeatable; at least one).
        #[arg(long = "expected-pcr", value_parser = crate::sim::parse_pcr)]
        expected_pcrs: Vec<(u32, Vec<u8>)>,
        /// Trust this simulator root instead of the AWS Nitro root.
        #[arg(long)]
        sim_root: Option<PathBuf>,
    },
}

/// Runs a `quorum` command: one line on stdout and exit 0, or one line on stderr and exit 1.
pub fn run(c: QuorumCommand) -> ExitCode {
    let result = match c {
        QuorumCommand::Keygen { out_dir } => keygen(&out_dir).map(|()| None),
        QuorumCommand::Unseal { endpoint, share, private_key, expected_pcrs, sim_root } => unseal::run(unseal::Args {
            endpoint: &endpoint,
            share: &share,
            private_key: &private_key,
            expected_pcrs,
            sim_root: sim_root.as_deref(),
        })
        .map(Some),
    };
    match result {
        Ok(line) => {
            if let Some(line) = line {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kms-host: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Largest key or share file read.
pub const MAX_FILE: u64 = 64 * 1024;

/// `kms-host quorum keygen --out-dir D`: `D/private.pem` (PKCS#8, 0600) and `D/public.pem` (SubjectPublicKeyInfo).
pub fn keygen(out_dir: &Path) -> Result<(), String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(|e| format!("key generation: {e}"))?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    write_atomic(&out_dir.join("private.pem"), Zeroizing::new(key.serialize_pem()).as_bytes(), 0o600)?;
    write_atomic(&out_dir.join("public.pem"), key.public_key_pem().as_bytes(), 0o644)
}

/// Reads at most [`MAX_FILE`] bytes of `path`, naming the file and the option in errors.
pub fn read_small(option: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{option} {}: {e}", path.display()))?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(MAX_FILE + 1).read_to_end(&mut buf).map_err(|e| format!("{option} {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(format!("{option} {}: larger than {MAX_FILE} bytes", path.display()));
    }
    Ok(buf)
}

/// An operator's P-384 public key file (PEM "PUBLIC KEY", as `quorum keygen` writes it) as DER SubjectPublicKeyInfo.
pub fn read_public_key(option: &str, path: &Path) -> Result<Vec<u8>, String> {
    let bytes = read_small(option, path)?;
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(&bytes)
        .map_err(|_| format!("{option} {}: not a PEM public key (\"PUBLIC KEY\")", path.display()))?;
    let der = spki.as_ref().to_vec();
    p384_point(&der).ok_or_else(|| format!("{option} {}: not a P-384 public key", path.display()))?;
    Ok(der)
}

/// The uncompressed point of a P-384 SubjectPublicKeyInfo.
pub fn p384_point(spki_der: &[u8]) -> Option<Vec<u8>> {
    use x509_cert::der::Decode;
    use x509_cert::der::asn1::ObjectIdentifier;
    const ID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    let curve: ObjectIdentifier = spki.algorithm.parameters?.decode_as().ok()?;
    if spki.algorithm.oid != ID_EC || curve != P384 {
        return None;
    }
    let point = spki.subject_public_key.as_bytes()?;
    (point.len() == hpke::ENC_LEN && point.first() == Some(&0x04)).then(|| point.to_vec())
}

/// An operator's private key: signs submissions and opens share files (one P-384 scalar, two uses).
pub struct OperatorKey {
    pub(crate) signing: EcdsaKeyPair,
    pub(crate) agreement: PrivateKey,
}

/// Reads an operator's PKCS#8 private key (PEM "PRIVATE KEY", as `quorum keygen` writes it).
pub fn read_private_key(path: &Path) -> Result<OperatorKey, String> {
    let bytes = read_small("--private-key", path)?;
    let pkcs8 = PrivatePkcs8KeyDer::from_pem_slice(&bytes)
        .map_err(|_| format!("--private-key {}: not a PKCS#8 private key (PEM \"PRIVATE KEY\")", path.display()))?;
    let der = pkcs8.secret_pkcs8_der();
    let signing = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, der)
        .map_err(|_| format!("--private-key {}: not a P-384 private key", path.display()))?;
    let agreement = PrivateKey::from_private_key_der(&ECDH_P384, der)
        .map_err(|_| format!("--private-key {}: not a P-384 private key", path.display()))?;
    Ok(OperatorKey { signing, agreement })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_usable_pair_with_a_private_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path()).unwrap();
        let private = dir.path().join("private.pem");
        assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
        let key = read_private_key(&private).unwrap();
        let spki = read_public_key("--operator", &dir.path().join("public.pem")).unwrap();
        let point = p384_point(&spki).unwrap();
        assert_eq!(key.agreement.compute_public_key().unwrap().as_ref(), point.as_slice());
    }

    #[test]
    fn bad_key_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        assert!(read_private_key(&junk).err().unwrap().contains("not a PKCS#8"));
        assert!(read_public_key("--operator", &junk).err().unwrap().contains("--operator"));
        assert!(read_public_key("--operator", &dir.path().join("missing")).err().unwrap().contains("missing"));
        // A P-256 key is refused.
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p = dir.path().join("p256.pem");
        std::fs::write(&p, p256.public_key_pem()).unwrap();
        assert!(read_public_key("--operator", &p).err().unwrap().contains("P-384"));
        std::fs::write(&p, p256.serialize_pem()).unwrap();
        assert!(read_private_key(&p).err().unwrap().contains("P-384"));
    }
}
