//! Custody on the host side: the `--domain-key` flags of `dev`/`run` turned into the enclave's boot configuration,
//! the sealed admin bootstrap (`DIR/bootstrap.enc`, `kms-host admin open-bootstrap`), `kms-host custody digest`
//! (the settings digest an operator expects), and `kms-host quorum keygen`.
//!
//! The host reads the files it is pointed at and hands their contents to the enclave; it never sees the domain key
//! or, outside local mode, the admin's secret.

use crate::files::write_atomic;
use clap::{Args, ValueEnum};
use kms_shared::custody::{BootConfig, DomainKeySource, InitSettings, MAX_PEM_LEN, UpstreamConfig};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The sealed admin bootstrap in the data directory. Contract file name.
pub const BOOTSTRAP_FILE: &str = "bootstrap.enc";
/// HPKE `info` prefix of the admin bootstrap (the enclave's `custody::BOOTSTRAP_INFO`).
const BOOTSTRAP_INFO: &[u8] = b"enclave-kms admin bootstrap v1";
/// Largest file read here.
const MAX_FILE: u64 = 256 * 1024;

/// `--domain-key` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// INSECURE simulator sealing (kms-host dev only).
    Local,
    /// A data key of an upstream AWS KMS (or enclave-kms) released only to this enclave image.
    Upstream,
    /// M-of-N operator shares.
    Quorum,
}

impl SourceArg {
    fn wire(self) -> DomainKeySource {
        match self {
            Self::Local => DomainKeySource::Local,
            Self::Upstream => DomainKeySource::Upstream,
            Self::Quorum => DomainKeySource::Quorum,
        }
    }
}

/// Custody flags of `kms-host dev` and `kms-host run`.
#[derive(Args, Debug, Clone)]
pub struct CustodyArgs {
    /// Where the domain key comes from (dev: default local; run: upstream or quorum).
    #[arg(long = "domain-key", value_enum)]
    pub domain_key: Option<SourceArg>,
    /// Initialise a new data directory (create the domain key and the first admin). Without it a start never
    /// creates a domain key.
    #[arg(long)]
    pub init: bool,
    /// The upstream service, https://HOST[:PORT] (the host relays bytes only to this address).
    #[arg(long)]
    pub upstream_endpoint: Option<String>,
    /// The upstream key's ARN (or key id).
    #[arg(long)]
    pub upstream_key_id: Option<String>,
    /// The upstream's region (default: the region in --upstream-key-id's ARN, else us-east-1).
    #[arg(long)]
    pub upstream_region: Option<String>,
    /// CA certificate(s) to trust for the upstream (simulator builds only; production trusts compiled-in roots).
    #[arg(long)]
    pub upstream_ca: Option<PathBuf>,
    /// AWS shared-credentials file (profile default) for the upstream.
    #[arg(long)]
    pub upstream_credentials: Option<PathBuf>,
    /// The first admin's public key (P-384 PEM, e.g. `quorum keygen`'s public.pem); needed with --init in
    /// upstream and quorum modes. The admin key is then written only sealed to it, to DIR/bootstrap.enc.
    #[arg(long)]
    pub admin_public_key: Option<PathBuf>,
    /// An operator's public key (P-384 PEM; repeatable, in share order; quorum).
    #[arg(long = "operator")]
    pub operators: Vec<PathBuf>,
    /// Shares needed to unseal (quorum).
    #[arg(long)]
    pub threshold: Option<u32>,
}

fn read_bounded(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let mut buf = Zeroizing::new(Vec::new());
    f.take(MAX_FILE + 1).read_to_end(&mut buf).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(format!("{what} {}: larger than {MAX_FILE} bytes", path.display()));
    }
    Ok(buf)
}

fn read_text(path: &Path, what: &str) -> Result<Zeroizing<String>, String> {
    let bytes = read_bounded(path, what)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("{what} {}: not UTF-8", path.display()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Reads a P-384 public key PEM (checked here for a clear error; the enclave checks again). Returns (PEM, DER).
pub fn read_public_key(path: &Path, what: &str) -> Result<(String, Vec<u8>), String> {
    let pem = read_text(path, what)?;
    let der = kms_attestation::pem::decode_single(&pem, "PUBLIC KEY", MAX_PEM_LEN)
        .map_err(|e| format!("{what} {}: not a PEM public key: {e}", path.display()))?;
    let point = spki_point(&der).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let unparsed = aws_lc_rs::agreement::UnparsedPublicKey::new(&aws_lc_rs::agreement::ECDH_P384, point);
    if aws_lc_rs::agreement::ParsedPublicKey::try_from(&unparsed).is_err() {
        return Err(format!("{what} {}: not a P-384 public key", path.display()));
    }
    Ok((pem.to_string(), der))
}

/// The uncompressed point of a P-384 SubjectPublicKeyInfo (its last 97 bytes, after checking the fixed prefix).
fn spki_point(der: &[u8]) -> Result<&[u8], String> {
    // SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING 0x00 04 X Y }: 23 bytes of header.
    const PREFIX: &[u8] = &[
        0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
        0x00, 0x22, 0x03, 0x62, 0x00,
    ];
    match der.strip_prefix(PREFIX) {
        Some(point) if point.len() == 97 => Ok(point),
        _ => Err("not a P-384 public key".into()),
    }
}

/// The region of an ARN (`arn:PARTITION:kms:REGION:...`).
fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn")).then_some(())?;
    parts.nth(2).filter(|r| !r.is_empty())
}

/// The enclave's boot configuration from the flags. `dev` allows `local`; `auto_init` says whether local mode may
/// initialise without `--init` (a store that holds nothing yet, or only the custody record of a first start killed
/// before it committed its key: the README's quick start).
pub fn boot_config(args: &CustodyArgs, dev: bool, auto_init: bool) -> Result<BootConfig, String> {
    let source = match (args.domain_key, dev) {
        (Some(SourceArg::Local), false) => {
            return Err("--domain-key local exists only in `kms-host dev` (simulator mode)".into());
        }
        (Some(s), _) => s,
        (None, true) => SourceArg::Local,
        (None, false) => return Err("kms-host run needs --domain-key upstream or --domain-key quorum".into()),
    };
    let init = args.init || (source == SourceArg::Local && auto_init);
    let admin_public_key = match (&args.admin_public_key, init) {
        (Some(p), true) => Some(read_public_key(p, "--admin-public-key")?.0),
        (Some(_), false) => None, // needed only at initialisation
        (None, true) if source != SourceArg::Local => {
            return Err(format!(
                "--init with --domain-key {} needs --admin-public-key FILE (the first admin key is handed out only \
                 sealed to it)",
                source.wire().name()
            ));
        }
        (None, _) => None,
    };
    let upstream = if source == SourceArg::Upstream {
        let need = |v: &Option<_>, flag: &str| v.clone().ok_or_else(|| format!("--domain-key upstream needs {flag}"));
        let endpoint: String = need(&args.upstream_endpoint, "--upstream-endpoint URL")?;
        upstream_address(&endpoint)?;
        let key_id: String = need(&args.upstream_key_id, "--upstream-key-id ARN")?;
        let creds_path = args
            .upstream_credentials
            .clone()
            .ok_or_else(|| "--domain-key upstream needs --upstream-credentials FILE".to_owned())?;
        let text = read_text(&creds_path, "--upstream-credentials")?;
        let creds = kms_client::config::parse_shared_credentials(&text, "default").ok_or_else(|| {
            format!(
                "--upstream-credentials {}: no aws_access_key_id and aws_secret_access_key in profile [default]",
                creds_path.display()
            )
        })?;
        let ca_pem = match &args.upstream_ca {
            Some(p) => {
                let pem = read_text(p, "--upstream-ca")?;
                let certs = kms_attestation::pem::parse(&pem, MAX_PEM_LEN)
                    .map_err(|e| format!("--upstream-ca {}: not PEM: {e}", p.display()))?;
                if !certs.iter().any(|(label, _)| label == "CERTIFICATE") {
                    return Err(format!("--upstream-ca {}: no CERTIFICATE in it", p.display()));
                }
                Some(pem.to_string())
            }
            None => None,
        };
        let region = args
            .upstream_region
            .clone()
            .or_else(|| arn_region(&key_id).map(str::to_owned))
            .unwrap_or_else(|| "us-east-1".to_owned());
        Some(UpstreamConfig {
            endpoint,
            key_id,
            region,
            access_key_id: creds.access_key_id.clone(),
            secret_access_key: creds.secret_access_key.clone(),
            session_token: session_token(&text, "default"),
            ca_pem,
        })
    } else {
        None
    };
    let operators = args
        .operators
        .iter()
        .map(|p| read_public_key(p, "--operator").map(|(pem, _)| pem))
        .collect::<Result<Vec<_>, _>>()?;
    if source == SourceArg::Quorum && init {
        check_quorum(args.operators.len(), args.threshold)?;
    }
    let config = BootConfig {
        source: source.wire(),
        init,
        admin_public_key,
        upstream,
        operators,
        threshold: args.threshold.unwrap_or(0),
    };
    config.validate()?;
    Ok(config)
}

/// `aws_session_token` of `profile` in a shared-credentials file (temporary credentials, e.g. an instance role's).
fn session_token(text: &str, profile: &str) -> Option<String> {
    let mut in_profile = false;
    for line in text.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
        } else if in_profile
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "aws_session_token"
        {
            return Some(v.trim().to_owned()).filter(|t| !t.is_empty());
        }
    }
    None
}

/// The quorum flags of an initialisation: at least one `--operator`, at most 16, and 1 <= `--threshold` <= N.
fn check_quorum(operators: usize, threshold: Option<u32>) -> Result<(), String> {
    if operators == 0 {
        return Err("--init with --domain-key quorum needs --operator FILE (one per operator, in share order)".into());
    }
    let Some(threshold) = threshold else {
        return Err(format!("--init with --domain-key quorum needs --threshold M (1 to {operators})"));
    };
    let n = u8::try_from(operators).unwrap_or(u8::MAX);
    let m = u8::try_from(threshold).unwrap_or(u8::MAX);
    kms_shared::quorum::check_params(m, n)
        .map_err(|e| format!("--threshold {threshold} with {operators} --operator: {e}"))
}

/// `HOST:PORT` of an `https://HOST[:PORT]` endpoint (the only address the upstream relay connects to).
pub fn upstream_address(endpoint: &str) -> Result<(String, u16), String> {
    let bad = || format!("--upstream-endpoint {endpoint:?} is not https://HOST[:PORT]");
    let rest = endpoint.strip_prefix("https://").ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
        None => 443,
    };
    if host.is_empty() || host.contains(':') && !rest.starts_with('[') {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// Where the enclave's upstream stream arrives.
pub enum UpstreamListener {
    /// Simulator mode.
    Unix(tokio::net::UnixListener),
    /// Production.
    Vsock(tokio_vsock::VsockListener),
}

/// Relays each stream the enclave opens to the configured upstream address, and nowhere else: the enclave runs TLS
/// over it end to end, so the host sees only ciphertext. Runs until the task is dropped.
pub async fn relay_upstream(listener: UpstreamListener, host: String, port: u16) {
    loop {
        let accepted: std::io::Result<Box<dyn RelayStream>> = match &listener {
            UpstreamListener::Unix(l) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn RelayStream>),
            UpstreamListener::Vsock(l) => l.accept().await.map(|(s, _)| Box::new(s) as Box<dyn RelayStream>),
        };
        let mut inner = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "upstream relay: accept failed");
                continue;
            }
        };
        let (host, port) = (host.clone(), port);
        tokio::spawn(async move {
            match tokio::net::TcpStream::connect((host.as_str(), port)).await {
                Ok(mut outer) => {
                    if let Err(e) = tokio::io::copy_bidirectional(&mut inner, &mut outer).await {
                        tracing::debug!(error = %e, "upstream relay: connection ended");
                    }
                }
                // The enclave reports the failure (its TLS handshake fails) with this cause in the host log.
                Err(e) => {
                    tracing::warn!(error = %e, upstream = %format!("{host}:{port}"), "upstream relay: cannot connect")
                }
            }
        });
    }
}

/// A relayed byte stream.
pub trait RelayStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> RelayStream for T {}

/// Writes the sealed admin bootstrap: `{"SettingsDigest": HEX, "Sealed": BASE64}` (mode 0600).
pub fn write_bootstrap(dir: &Path, sealed: &[u8], settings_digest: &[u8]) -> Result<PathBuf, String> {
    use base64::Engine;
    let path = dir.join(BOOTSTRAP_FILE);
    let text = serde_json::json!({
        "SettingsDigest": hex::encode(settings_digest),
        "Sealed": base64::engine::general_purpose::STANDARD.encode(sealed),
    })
    .to_string();
    write_atomic(&path, text.as_bytes(), 0o600)?;
    Ok(path)
}

/// `kms-host admin open-bootstrap`: opens `DIR/bootstrap.enc` with the admin's private key and writes a 0600
/// shared-credentials file. Returns what to print (no secret).
pub fn open_bootstrap(data_dir: &Path, private_key: &Path, out: &Path) -> Result<serde_json::Value, String> {
    use base64::Engine;
    let path = data_dir.join(BOOTSTRAP_FILE);
    let raw = read_bounded(&path, "bootstrap")?;
    let file: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|_| format!("{}: not a bootstrap file", path.display()))?;
    let field =
        |name: &str| file.get(name).and_then(|v| v.as_str()).ok_or_else(|| format!("{}: no {name}", path.display()));
    let digest =
        hex::decode(field("SettingsDigest")?).map_err(|_| format!("{}: bad SettingsDigest", path.display()))?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(field("Sealed")?)
        .map_err(|_| format!("{}: bad Sealed", path.display()))?;
    let key = crate::open_recipient::parse_p384_private_key(&read_bounded(private_key, "--private-key")?)?;
    let info = [BOOTSTRAP_INFO, &digest].concat();
    let plain = crate::open_recipient::open_hpke_info(&key, &info, b"", &sealed).map_err(|_| {
        format!(
            "cannot open {}: not sealed to this private key, or the file was altered (settings digest included)",
            path.display()
        )
    })?;
    let cred: serde_json::Value =
        serde_json::from_slice(&plain).map_err(|_| "the opened bootstrap is not the expected JSON".to_owned())?;
    let get = |name: &str| cred.get(name).and_then(|v| v.as_str()).ok_or_else(|| format!("bootstrap has no {name}"));
    let text = Zeroizing::new(crate::admin_cmd::credentials_file(get("AccessKeyId")?, get("SecretAccessKey")?));
    write_atomic(out, text.as_bytes(), 0o600)?;
    Ok(serde_json::json!({
        "AccessKeyId": get("AccessKeyId")?,
        "PrincipalArn": get("PrincipalArn")?,
        "SettingsDigest": hex::encode(&digest),
        "CredentialsFile": out.display().to_string(),
    }))
}

/// Arguments of `kms-host custody digest`.
#[derive(Args, Debug)]
pub struct DigestArgs {
    /// The domain-key source the enclave was initialised with.
    #[arg(long = "domain-key", value_enum)]
    pub domain_key: SourceArg,
    /// The upstream key named at initialisation (upstream).
    #[arg(long)]
    pub upstream_key_id: Option<String>,
    /// The admin public key named at initialisation.
    #[arg(long)]
    pub admin_public_key: Option<PathBuf>,
    /// Operator public keys, in order (quorum).
    #[arg(long = "operator")]
    pub operators: Vec<PathBuf>,
    /// Threshold (quorum).
    #[arg(long)]
    pub threshold: Option<u32>,
}

/// `kms-host custody digest`: the settings digest an enclave initialised with these settings binds into its
/// attestation documents (compare with verify-endpoint's `settings_digest`, or pass it as
/// `--expected-settings-digest`).
pub fn digest(args: &DigestArgs) -> Result<serde_json::Value, String> {
    let admin = args.admin_public_key.as_deref().map(|p| read_public_key(p, "--admin-public-key")).transpose()?;
    let operators = args
        .operators
        .iter()
        .map(|p| read_public_key(p, "--operator").map(|(_, der)| serde_bytes::ByteBuf::from(der)))
        .collect::<Result<Vec<_>, _>>()?;
    let settings = InitSettings {
        source: args.domain_key.wire(),
        upstream_key_id: if args.domain_key == SourceArg::Upstream { args.upstream_key_id.clone() } else { None },
        admin_public_key: admin.map(|(_, der)| der),
        operator_public_keys: operators,
        threshold: args.threshold.unwrap_or(0),
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, &settings.canonical());
    Ok(serde_json::json!({ "settings_digest": hex::encode(digest.as_ref()) }))
}

/// `kms-host quorum keygen --out-dir D`: a P-384 key pair, `D/private.pem` (PKCS#8, 0600) and `D/public.pem`.
pub fn keygen(out_dir: &Path) -> Result<serde_json::Value, String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(|e| format!("key generation: {e}"))?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    write_atomic(&out_dir.join("private.pem"), Zeroizing::new(key.serialize_pem()).as_bytes(), 0o600)?;
    write_atomic(&out_dir.join("public.pem"), key.public_key_pem().as_bytes(), 0o644)?;
    Ok(serde_json::json!({
        "private_key": out_dir.join("private.pem").display().to_string(),
        "public_key": out_dir.join("public.pem").display().to_string(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn upstream_addresses() {
        assert_eq!(upstream_address("https://127.0.0.1:8443").unwrap(), ("127.0.0.1".into(), 8443));
        assert_eq!(
            upstream_address("https://kms.us-east-1.amazonaws.com").unwrap(),
            ("kms.us-east-1.amazonaws.com".into(), 443)
        );
        assert_eq!(upstream_address("https://[::1]:9/").unwrap(), ("::1".into(), 9));
        for bad in ["http://h:1", "https://", "https://h:x", "https://h/p", "https://u@h:1", "https://h:70000"] {
            assert!(upstream_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arn_regions() {
        assert_eq!(arn_region("arn:aws:kms:eu-west-1:111122223333:key/k"), Some("eu-west-1"));
        assert_eq!(arn_region("alias/x"), None);
    }

    #[test]
    fn flags_are_checked() {
        let base = CustodyArgs {
            domain_key: None,
            init: false,
            upstream_endpoint: None,
            upstream_key_id: None,
            upstream_region: None,
            upstream_ca: None,
            upstream_credentials: None,
            admin_public_key: None,
            operators: vec![],
            threshold: None,
        };
        let c = boot_config(&base, true, true).unwrap();
        assert_eq!((c.source, c.init), (DomainKeySource::Local, true), "dev's quick start initialises local");
        assert!(!boot_config(&base, true, false).unwrap().init, "an existing directory is not re-initialised");
        assert!(boot_config(&base, false, true).is_err(), "run has no local source");
        let up = CustodyArgs { domain_key: Some(SourceArg::Upstream), init: true, ..base.clone() };
        assert!(boot_config(&up, true, false).unwrap_err().contains("--admin-public-key"));
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path()).unwrap();
        let up = CustodyArgs { admin_public_key: Some(dir.path().join("public.pem")), ..up };
        assert!(boot_config(&up, true, false).unwrap_err().contains("--upstream-endpoint"));
        let bad_key = CustodyArgs { admin_public_key: Some(dir.path().join("private.pem")), ..up.clone() };
        assert!(boot_config(&bad_key, true, false).unwrap_err().contains("not a PEM public key"));
        let creds = dir.path().join("creds");
        std::fs::write(&creds, "[other]\naws_access_key_id = A\naws_secret_access_key = B\n").unwrap();
        let up = CustodyArgs {
            upstream_endpoint: Some("https://127.0.0.1:1".into()),
            upstream_key_id: Some("arn:aws:kms:eu-west-1:111122223333:key/k".into()),
            upstream_credentials: Some(creds.clone()),
            ..up
        };
        assert!(boot_config(&up, true, false).unwrap_err().contains("profile [default]"));
        std::fs::write(&creds, "[default]\naws_access_key_id = A\naws_secret_access_key = B\n").unwrap();
        let c = boot_config(&up, true, false).unwrap();
        assert_eq!(c.upstream.as_ref().unwrap().region, "eu-west-1");
        assert_eq!(c.upstream.unwrap().session_token, None);
        std::fs::write(&creds, "[default]\naws_access_key_id = A\naws_secret_access_key = B\naws_session_token = T1\n[x]\naws_session_token = T2\n").unwrap();
        assert_eq!(boot_config(&up, true, false).unwrap().upstream.unwrap().session_token.as_deref(), Some("T1"));
    }
}
