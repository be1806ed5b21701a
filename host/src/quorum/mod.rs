//! `kms-host quorum unseal`: an operator's part in unsealing a `quorum` enclave (verify it, submit one share), and
//! the operator key and share-file helpers it uses (`quorum keygen` is in `custody_cmd`).
//! These run on the operator's machine, never on the relay or storage path.

pub mod hpke;
pub mod unseal;

use aws_lc_rs::agreement::{ECDH_P384, PrivateKey};
use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};
use clap::Args;
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use zeroize::Zeroizing;

/// Options of `kms-host quorum unseal`.
#[derive(Args)]
pub struct UnsealArgs {
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
}

/// `kms-host quorum unseal`: one line on stdout and exit 0, or one line on stderr and exit 1.
pub fn run_unseal(a: UnsealArgs) -> ExitCode {
    let result = unseal::run(unseal::Args {
        endpoint: &a.endpoint,
        share: &a.share,
        private_key: &a.private_key,
        expected_pcrs: a.expected_pcrs,
        sim_root: a.sim_root.as_deref(),
    });
    match result {
        Ok(line) => {
            println!("{line}");
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
    fn keygen_output_is_a_usable_operator_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        crate::custody_cmd::keygen(dir.path()).unwrap();
        let private = dir.path().join("private.pem");
        assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
        let key = read_private_key(&private).unwrap();
        let (_, spki) = crate::custody_cmd::read_public_key(&dir.path().join("public.pem"), "--operator").unwrap();
        let point = p384_point(&spki).unwrap();
        assert_eq!(key.agreement.compute_public_key().unwrap().as_ref(), point.as_slice());
    }

    #[test]
    fn bad_key_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        assert!(read_private_key(&junk).err().unwrap().contains("not a PKCS#8"));
        // A P-256 key is refused.
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p = dir.path().join("p256.pem");
        std::fs::write(&p, p256.serialize_pem()).unwrap();
        assert!(read_private_key(&p).err().unwrap().contains("P-384"));
    }
}
