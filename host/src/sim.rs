//! Simulator mode's identity and the workload simulator.
//!
//! `kms-host dev` keeps the simulated NSM's PKI in the data directory (`sim-pki.pem`, private; the root published as
//! `sim-root.pem`), derives the simulated enclave's PCRs from the `kms-enclave` binary (published as `pcrs.json`, as
//! `nitro-cli build-enclave` prints them for a real image), and hands both to the enclave on its standard input.
//! `kms-host sim keygen` and `kms-host sim attest` let anyone act as an attested workload without Nitro hardware.
//! Everything here is INSECURE by design: the simulator root is a file on the untrusted side.

use crate::files::write_atomic;
use kms_attestation::{DocumentRequest, SimPki, simulated_pcrs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The simulator PKI bundle (certificates and private keys). Contract file name.
pub const SIM_PKI_FILE: &str = "sim-pki.pem";
/// The simulator root certificate. Contract file name.
pub const SIM_ROOT_FILE: &str = "sim-root.pem";
/// The simulated enclave's PCR0-2. Contract file name.
pub const PCRS_FILE: &str = "pcrs.json";

/// Largest file the simulator commands read.
const MAX_INPUT: u64 = 1024 * 1024;

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_INPUT + 1).read_to_end(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(format!("{}: larger than {MAX_INPUT} bytes", path.display()));
    }
    Ok(buf)
}

/// The data directory's simulator PKI, created on first use; `sim-root.pem` is (re)published every time.
pub fn load_or_create_pki(dir: &Path) -> Result<SimPki, String> {
    let path = dir.join(SIM_PKI_FILE);
    let pki = if path.exists() {
        let bytes = Zeroizing::new(read_bounded(&path)?);
        let text = std::str::from_utf8(&bytes).map_err(|_| format!("{}: not UTF-8", path.display()))?;
        SimPki::from_pem_bundle(text).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        let pki = SimPki::generate().map_err(|e| format!("cannot generate the simulator PKI: {e}"))?;
        write_atomic(&path, pki.to_pem_bundle().as_bytes(), 0o600)?;
        pki
    };
    write_atomic(&dir.join(SIM_ROOT_FILE), pki.root_pem().as_bytes(), 0o644)?;
    Ok(pki)
}

/// `kms-host dev --sim-pki FILE`: another data directory's simulator PKI, shared so that simulated enclaves trust
/// each other's documents; its root is published in this directory's `sim-root.pem` too.
pub fn load_pki_file(path: &Path, dir: &Path) -> Result<SimPki, String> {
    let bytes = Zeroizing::new(read_bounded(path).map_err(|e| format!("--sim-pki {e}"))?);
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("--sim-pki {}: not UTF-8", path.display()))?;
    let pki = SimPki::from_pem_bundle(text).map_err(|e| format!("--sim-pki {}: {e}", path.display()))?;
    write_atomic(&dir.join(SIM_ROOT_FILE), pki.root_pem().as_bytes(), 0o644)?;
    Ok(pki)
}

/// The simulated enclave's PCRs for this enclave binary.
pub fn enclave_pcrs(enclave_bin: &Path) -> Result<BTreeMap<u32, Vec<u8>>, String> {
    let bytes = std::fs::read(enclave_bin)
        .map_err(|e| format!("cannot read the enclave binary {}: {e}", enclave_bin.display()))?;
    Ok(simulated_pcrs(&bytes, false))
}

/// `pcrs.json`: `{"0": HEX, "1": HEX, "2": HEX}`.
pub fn pcrs_json(pcrs: &BTreeMap<u32, Vec<u8>>) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        (0..=2).filter_map(|i| pcrs.get(&i).map(|v| (i.to_string(), hex::encode(v).into()))).collect();
    let mut s = serde_json::Value::Object(map).to_string();
    s.push('\n');
    s
}

/// The JSON the simulator-mode enclave reads on its standard input.
pub fn enclave_config(pki: &SimPki, pcrs: &BTreeMap<u32, Vec<u8>>) -> Zeroizing<Vec<u8>> {
    let pcrs: serde_json::Map<String, serde_json::Value> =
        pcrs.iter().map(|(i, v)| (i.to_string(), hex::encode(v).into())).collect();
    let bundle = pki.to_pem_bundle();
    let value = serde_json::json!({ "pki": bundle.as_str(), "pcrs": pcrs });
    Zeroizing::new(value.to_string().into_bytes())
}

/// Key algorithms of `sim keygen`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum KeyAlg {
    /// RSA 2048 (what AWS KMS's Recipient takes).
    Rsa2048,
    /// ECDSA/ECDH P-384.
    P384,
}

/// `kms-host sim keygen`: `D/private.pem` (PKCS#8) and `D/public.der` (SubjectPublicKeyInfo).
pub fn keygen(alg: KeyAlg, out_dir: &Path) -> Result<(), String> {
    let key = match alg {
        KeyAlg::Rsa2048 => rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048),
        KeyAlg::P384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
    }
    .map_err(|e| format!("key generation: {e}"))?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    write_atomic(&out_dir.join("private.pem"), Zeroizing::new(key.serialize_pem()).as_bytes(), 0o600)?;
    write_atomic(&out_dir.join("public.der"), &rcgen::PublicKeyData::subject_public_key_info(&key), 0o644)?;
    Ok(())
}

/// Parses `N=HEX` (a PCR index and value).
pub fn parse_pcr(s: &str) -> Result<(u32, Vec<u8>), String> {
    let (n, v) = s.split_once('=').ok_or_else(|| format!("expected N=HEX, got {s:?}"))?;
    let n: u32 = n.trim().parse().map_err(|_| format!("bad PCR index in {s:?}"))?;
    if n >= 32 {
        return Err(format!("PCR index {n} out of range 0..31"));
    }
    let v = hex::decode(v.trim()).map_err(|_| format!("PCR {n} value is not hex"))?;
    if ![32, 48, 64].contains(&v.len()) {
        return Err(format!("PCR {n} must be 32, 48 or 64 bytes, not {}", v.len()));
    }
    Ok((n, v))
}

/// Decodes a hex argument.
pub fn parse_hex(what: &str, s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s.trim()).map_err(|_| format!("{what} is not hex"))
}

/// Arguments of `kms-host sim attest`.
pub struct AttestArgs {
    pub data_dir: PathBuf,
    pub public_key: PathBuf,
    pub pcrs: Vec<(u32, Vec<u8>)>,
    pub nonce: Option<Vec<u8>>,
    pub user_data: Option<Vec<u8>>,
    pub debug: bool,
    pub out: PathBuf,
}

/// The simulated enclave's default PCRs for a data directory: PCR0-2 from its `pcrs.json` (what `kms-host dev` ran),
/// else from the `kms-enclave` beside this binary; PCR3-15 zero.
fn default_pcrs(data_dir: &Path) -> Result<BTreeMap<u32, Vec<u8>>, String> {
    let path = data_dir.join(PCRS_FILE);
    if path.exists() {
        let mut pcrs = simulated_pcrs(&[], false);
        let parsed: BTreeMap<String, String> =
            serde_json::from_slice(&read_bounded(&path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        for (n, v) in parsed {
            let (n, v) = parse_pcr(&format!("{n}={v}")).map_err(|e| format!("{}: {e}", path.display()))?;
            pcrs.insert(n, v);
        }
        return Ok(pcrs);
    }
    let bin = std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("kms-enclave");
    enclave_pcrs(&bin)
}

/// `kms-host sim attest`: an attestation document signed by the data directory's simulator root.
pub fn attest(args: AttestArgs) -> Result<(), String> {
    if !args.data_dir.join(SIM_PKI_FILE).exists() {
        return Err(format!(
            "{} has no {SIM_PKI_FILE}: start `kms-host dev --data-dir {}` once first",
            args.data_dir.display(),
            args.data_dir.display()
        ));
    }
    let pki = load_or_create_pki(&args.data_dir)?;
    let mut pcrs = default_pcrs(&args.data_dir)?;
    for (n, v) in args.pcrs {
        pcrs.insert(n, v);
    }
    if args.debug {
        for n in 0..=2 {
            pcrs.insert(n, vec![0u8; 48]);
        }
    }
    let public_key = read_bounded(&args.public_key)?;
    let req = DocumentRequest {
        pcrs,
        public_key: Some(public_key),
        user_data: args.user_data,
        nonce: args.nonce,
        module_id: None,
    };
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?.as_millis();
    let doc = pki.issue(&req, u64::try_from(now_ms).map_err(|e| e.to_string())?).map_err(|e| format!("attest: {e}"))?;
    write_atomic(&args.out, &doc, 0o644)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pcr_arguments() {
        let hex48 = "ab".repeat(48);
        assert_eq!(parse_pcr(&format!("0={hex48}")).unwrap(), (0, vec![0xab; 48]));
        assert!(parse_pcr("0").is_err());
        assert!(parse_pcr(&format!("32={hex48}")).is_err());
        assert!(parse_pcr("1=abcd").is_err(), "wrong length");
        assert!(parse_pcr(&format!("x={hex48}")).is_err());
        assert!(parse_pcr("1=zz").is_err());
    }

    #[test]
    fn pcrs_json_has_the_image_pcrs_only() {
        let pcrs = simulated_pcrs(b"binary", false);
        let v: serde_json::Value = serde_json::from_str(&pcrs_json(&pcrs)).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 3);
        assert_eq!(v["0"].as_str().unwrap(), hex::encode(&pcrs[&0]));
    }
}
