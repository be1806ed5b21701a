//! `kms-host`: the untrusted parent-instance side of enclave-kms.

mod admin_cmd;
mod attest_cmd;
mod blobstore;
mod config_file;
mod custody_cmd;
mod files;
mod metrics;
mod notify;
mod open_recipient;
mod quorum;
mod relay;
mod sim;
mod storage_server;
mod supervise;
mod verify_endpoint;

use blobstore::SqliteStore;
use clap::{Args, CommandFactory, Parser, Subcommand};
use relay::EnclaveAddr;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use supervise::{Plan, StorageListener};
use tokio::net::{TcpListener, UnixListener};

#[derive(Parser)]
#[command(
    name = "kms-host",
    version,
    about = "enclave-kms: the host side (relay, sealed storage, enclave supervision)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service in INSECURE simulator mode: the enclave as a child process over Unix sockets.
    Dev {
        #[command(flatten)]
        common: Common,
        /// The kms-enclave binary (default: beside kms-host).
        #[arg(long)]
        enclave_bin: Option<PathBuf>,
        /// Use this simulator PKI (another data directory's sim-pki.pem) instead of this directory's own, so that
        /// simulated enclaves trust each other's attestation documents (as Nitro hosts share the AWS root).
        #[arg(long)]
        sim_pki: Option<PathBuf>,
        #[command(flatten)]
        custody: custody_cmd::CustodyArgs,
    },
    /// Run in production next to a Nitro Enclave (needs /dev/nitro_enclaves).
    Run {
        #[command(flatten)]
        common: Common,
        /// The enclave's vsock CID.
        #[arg(long)]
        enclave_cid: u32,
        /// The enclave's vsock port for client connections.
        #[arg(long, default_value_t = 5000)]
        enclave_port: u32,
        /// The vsock port this host listens on for the enclave's storage channel.
        #[arg(long, default_value_t = 5001)]
        storage_port: u32,
        /// Start the enclave from this EIF with nitro-cli (otherwise it is started separately).
        #[arg(long)]
        eif: Option<PathBuf>,
        /// vCPUs for nitro-cli run-enclave.
        #[arg(long, default_value_t = 2)]
        cpu_count: u32,
        /// Memory (MiB) for nitro-cli run-enclave.
        #[arg(long, default_value_t = 1024)]
        memory_mib: u32,
        /// The vsock port this host listens on for the enclave's upstream stream (relayed to --upstream-endpoint).
        #[arg(long, default_value_t = 5002)]
        upstream_port: u32,
        #[command(flatten)]
        custody: custody_cmd::CustodyArgs,
    },
    /// Custody: the initialisation settings digest an operator expects.
    #[command(subcommand)]
    Custody(CustodyCommand),
    /// Quorum custody tools.
    #[command(subcommand)]
    Quorum(QuorumCommand),
    /// The workload simulator: act as an attested enclave without Nitro hardware (INSECURE).
    #[command(subcommand)]
    Sim(SimCommand),
    /// Attestation documents.
    #[command(subcommand)]
    Attestation(AttestationCommand),
    /// Verify an endpoint's attestation (PCRs, freshness, TLS key binding), then write the CA bundle to trust.
    VerifyEndpoint {
        /// The endpoint, https://HOST:PORT.
        #[arg(long)]
        endpoint: String,
        /// An expected PCR, N=HEX (repeatable; at least one).
        #[arg(long = "expected-pcr", value_parser = sim::parse_pcr)]
        expected_pcrs: Vec<(u32, Vec<u8>)>,
        /// Trust this simulator root instead of the AWS Nitro root.
        #[arg(long)]
        sim_root: Option<PathBuf>,
        /// Accept a debug-mode enclave (PCR0 all zero).
        #[arg(long)]
        allow_debug: bool,
        /// The initialisation settings digest the enclave must bind (hex; from `kms-host custody digest`).
        #[arg(long)]
        expected_settings_digest: Option<String>,
        /// Where to write the CA certificate to trust.
        #[arg(long)]
        out: PathBuf,
    },
    /// Principals and access keys (the EnclaveKms admin API; the caller must be an admin principal).
    Admin(admin_cmd::AdminArgs),
}

#[derive(Subcommand)]
enum CustodyCommand {
    /// Print the settings digest of an initialisation with these settings (as verify-endpoint reports it).
    Digest(custody_cmd::DigestArgs),
}

#[derive(Subcommand)]
enum QuorumCommand {
    /// Generate a P-384 key pair for an admin or operator: D/private.pem (PKCS#8, 0600) and D/public.pem.
    Keygen {
        /// Output directory.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Verify a sealed enclave's attestation, then submit this operator's share to it.
    Unseal(quorum::UnsealArgs),
}

#[derive(Subcommand)]
enum SimCommand {
    /// Generate a workload key pair: D/private.pem (PKCS#8) and D/public.der (SubjectPublicKeyInfo).
    Keygen {
        /// Key algorithm.
        #[arg(long, value_enum)]
        alg: sim::KeyAlg,
        /// Output directory.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Write an attestation document signed by a data directory's simulator root (INSECURE: for tests and demos).
    Attest {
        /// The data directory of a `kms-host dev` service.
        #[arg(long)]
        data_dir: PathBuf,
        /// The workload's public key (DER SubjectPublicKeyInfo), e.g. from `sim keygen`.
        #[arg(long)]
        public_key: PathBuf,
        /// A PCR value, N=HEX (repeatable); others take the simulated enclave's defaults.
        #[arg(long = "pcr", value_parser = sim::parse_pcr)]
        pcrs: Vec<(u32, Vec<u8>)>,
        /// Nonce (hex).
        #[arg(long)]
        nonce: Option<String>,
        /// User data (hex).
        #[arg(long)]
        user_data: Option<String>,
        /// Debug mode: PCR0-2 are zero, as Nitro reports for debug enclaves.
        #[arg(long)]
        debug: bool,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Decrypt a `CiphertextForRecipient` with the workload's private key (from `sim keygen`): CMS EnvelopedData
    /// for an RSA key, enclave-kms's HPKE extension for a P-384 key.
    OpenRecipient {
        /// The workload's private key (PKCS#8, PEM or DER).
        #[arg(long)]
        private_key: PathBuf,
        /// The CiphertextForRecipient (raw bytes or base64).
        #[arg(long = "in")]
        input: PathBuf,
        /// The attestation document sent as Recipient (required for HPKE: the ciphertext is bound to it).
        #[arg(long)]
        document: Option<PathBuf>,
        /// HPKE: the answer's KeyId (the key ARN the response names; omit for GenerateRandom). The ciphertext is
        /// bound to it.
        #[arg(long)]
        key_id: Option<String>,
        /// HPKE: a file with the answer's CiphertextBlob (GenerateDataKey) or PrivateKeyCiphertextBlob
        /// (GenerateDataKeyPair), raw bytes or base64; omit where the response has none. The ciphertext is bound to it.
        #[arg(long)]
        ciphertext_blob: Option<PathBuf>,
        /// Output file for the plaintext (mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AttestationCommand {
    /// Verify an attestation document file; print its fields as JSON (exit 0) or name the failed step (exit 1).
    Verify {
        /// The document (COSE_Sign1 bytes).
        file: PathBuf,
        /// Check the certificate chain at the document's own timestamp, and not its age.
        #[arg(long)]
        at_document_time: bool,
        /// Trust this simulator root instead of the AWS Nitro root.
        #[arg(long)]
        sim_root: Option<PathBuf>,
        /// An expected PCR, N=HEX (repeatable).
        #[arg(long = "expected-pcr", value_parser = sim::parse_pcr)]
        expected_pcrs: Vec<(u32, Vec<u8>)>,
        /// Largest accepted age of the document, in seconds.
        #[arg(long, default_value_t = 300)]
        max_age: u64,
        /// Accept debug-mode documents (PCR0 all zero).
        #[arg(long)]
        allow_debug: bool,
        /// The nonce the document must carry (hex).
        #[arg(long)]
        nonce: Option<String>,
    },
}

#[derive(Args)]
struct Common {
    /// A TOML file of settings: each key is one of these long flags without its dashes (`data-dir = "/var/lib/kms"`,
    /// `tls-name = ["kms.internal"]`); flags on the command line override it; an unknown key is an error.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory for the store and the operator files (ca.pem, credentials, env).
    #[arg(long, default_value = "./kms-data")]
    data_dir: PathBuf,
    /// Address for client connections (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Region in ARNs and the SigV4 scope.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// 12-digit account id in ARNs.
    #[arg(long, default_value = "000000000000")]
    account_id: String,
    /// Extra DNS names or IPs for the TLS certificate.
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
    /// Log lines as text (default) or JSON, for kms-host and (in simulator mode) the enclave. Without RUST_LOG, JSON
    /// logs include the enclave's one `request` event per request; text logs leave them out.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Serve Prometheus metrics (`GET /metrics`, plain HTTP) on this address. Counts and latencies only; see
    /// SECURITY.md for what they reveal. Bind it to a private interface.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// On SIGTERM or SIGINT, the longest to wait (seconds) for open connections to finish after asking the enclave to
    /// drain (`/healthz` then answers 503); a second signal stops at once.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    drain_timeout: u64,
}

/// How log lines are written on standard error.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON layer).
    Json,
}

impl LogFormat {
    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
}

/// Starts the metrics endpoint when `--metrics-listen` asks for it, and says where on standard output.
async fn start_metrics(common: &Common) -> Result<(), String> {
    let Some(addr) = common.metrics_listen else { return Ok(()) };
    let (listener, local) = metrics::serve_bind(addr).await?;
    println!("metrics: http://{local}/metrics");
    tokio::spawn(metrics::serve(listener));
    Ok(())
}

fn prepare_data_dir(dir: &Path) -> Result<PathBuf, String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))
}

/// A private directory for the Unix sockets (short paths, mode 0700), removed on drop.
struct RunDir(PathBuf);

impl RunDir {
    fn create() -> Result<Self, String> {
        let mut nonce = [0u8; 8];
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        nonce.copy_from_slice(&(now as u64).to_le_bytes());
        let p = std::env::temp_dir().join(format!("kms-host-{}-{:x}", std::process::id(), u64::from_le_bytes(nonce)));
        std::fs::DirBuilder::new().mode(0o700).create(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn enclave_args(common: &Common, listen: SocketAddr) -> Vec<String> {
    let mut args = vec![
        "--region".to_owned(),
        common.region.clone(),
        "--account-id".to_owned(),
        common.account_id.clone(),
        "--log-format".to_owned(),
        common.log_format.name().to_owned(),
    ];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        args.extend(["--tls-name".to_owned(), listen.ip().to_string()]);
    }
    for n in &common.tls_names {
        args.extend(["--tls-name".to_owned(), n.clone()]);
    }
    args
}

async fn dev(
    common: Common,
    enclave_bin: Option<PathBuf>,
    sim_pki: Option<PathBuf>,
    custody: custody_cmd::CustodyArgs,
) -> Result<(), String> {
    const BANNER: &str = "SIMULATOR MODE (insecure): the enclave runs as an ordinary process with a simulated NSM.";
    match common.log_format {
        LogFormat::Text => eprintln!("kms-host: {BANNER}"),
        LogFormat::Json => tracing::warn!("{BANNER}"),
    }
    let data_dir = prepare_data_dir(&common.data_dir)?;
    start_metrics(&common).await?;
    let sqlite = SqliteStore::open(&data_dir.join(supervise::STORE_FILE))?;
    // Local mode initialises a data directory whose store holds nothing yet, or only the custody record of a first
    // start killed before it committed its domain key (the enclave replaces it); a store with anything else and no
    // domain key needs --init, as every other source does. Local mode is insecure by design: the host deciding this
    // gives it nothing it lacks.
    let fresh_dir = !sqlite.holds_other_than(kms_shared::storage::RecordKind::Custody)?;
    let boot = Arc::new(custody_cmd::boot_config(&custody, true, fresh_dir)?);
    let store: Arc<dyn blobstore::BlobStore> = Arc::new(sqlite);
    // Test builds only: a scripted dishonest store for the hostile-host tests (see blobstore/hostile.rs).
    #[cfg(debug_assertions)]
    let store = blobstore::hostile::wrap_from_env(store);
    let run_dir = RunDir::create()?;
    let storage_sock = run_dir.0.join("storage.sock");
    let client_sock = run_dir.0.join("enclave.sock");
    let storage = UnixListener::bind(&storage_sock).map_err(|e| format!("{}: {e}", storage_sock.display()))?;
    let listener =
        TcpListener::bind(common.listen).await.map_err(|e| format!("cannot listen on {}: {e}", common.listen))?;
    let bin = match enclave_bin {
        Some(b) => b,
        None => {
            std::env::current_exe().map_err(|e| format!("cannot locate kms-host: {e}"))?.with_file_name("kms-enclave")
        }
    };
    let mut args = vec![
        "--client-socket".to_owned(),
        client_sock.to_string_lossy().into_owned(),
        "--storage-socket".to_owned(),
        storage_sock.to_string_lossy().into_owned(),
    ];
    args.extend(enclave_args(&common, common.listen));
    let upstream_relay = match &boot.upstream {
        Some(u) => {
            let (host, port) = custody_cmd::upstream_address(&u.endpoint)?;
            let sock = run_dir.0.join("upstream.sock");
            let l = UnixListener::bind(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
            args.extend(["--upstream-socket".to_owned(), sock.to_string_lossy().into_owned()]);
            Some(tokio::spawn(custody_cmd::relay_upstream(custody_cmd::UpstreamListener::Unix(l), host, port)))
        }
        None => None,
    };
    let pki = match &sim_pki {
        Some(path) => sim::load_pki_file(path, &data_dir)?,
        None => sim::load_or_create_pki(&data_dir)?,
    };
    let pcrs = sim::enclave_pcrs(&bin)?;
    files::write_atomic(&data_dir.join(sim::PCRS_FILE), sim::pcrs_json(&pcrs).as_bytes(), 0o644)?;
    let child = supervise::spawn_simulator(
        &bin,
        &args,
        sim::enclave_config(&pki, &pcrs),
        common.log_format == LogFormat::Json,
    )?;
    drop(pki);
    let plan = Plan {
        data_dir,
        listener,
        storage: StorageListener::Unix(storage),
        enclave: EnclaveAddr::Unix(client_sock),
        child: Some(child),
        region: common.region.clone(),
        boot,
        drain_timeout: std::time::Duration::from_secs(common.drain_timeout),
    };
    let result = supervise::run(plan, store).await;
    if let Some(r) = upstream_relay {
        r.abort();
    }
    drop(run_dir);
    result
}

/// vsock ports and the enclave's CID in production.
struct Vsock {
    enclave_cid: u32,
    enclave_port: u32,
    storage_port: u32,
    upstream_port: u32,
}

async fn production(
    common: Common,
    vsock: Vsock,
    eif: Option<PathBuf>,
    cpu_count: u32,
    memory_mib: u32,
    custody: custody_cmd::CustodyArgs,
) -> Result<(), String> {
    let Vsock { enclave_cid, enclave_port, storage_port, upstream_port } = vsock;
    let boot = Arc::new(custody_cmd::boot_config(&custody, false, false)?);
    // Flags first, so a usage error says so on any machine.
    if !Path::new("/dev/nitro_enclaves").exists() {
        return Err("refusing to start in production mode: /dev/nitro_enclaves not found (not a Nitro Enclaves parent instance); use `kms-host dev` for the simulator".into());
    }
    if enclave_cid <= 3 {
        return Err(format!("--enclave-cid {enclave_cid} is reserved (0-2: hypervisor and local, 3: this parent)"));
    }
    let data_dir = prepare_data_dir(&common.data_dir)?;
    start_metrics(&common).await?;
    let store = Arc::new(SqliteStore::open(&data_dir.join(supervise::STORE_FILE))?);
    let storage = StorageListener::vsock(storage_port).map_err(|e| format!("vsock port {storage_port}: {e}"))?;
    if let Some(u) = &boot.upstream {
        let (host, port) = custody_cmd::upstream_address(&u.endpoint)?;
        let l =
            tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, upstream_port))
                .map_err(|e| format!("vsock port {upstream_port}: {e}"))?;
        tokio::spawn(custody_cmd::relay_upstream(custody_cmd::UpstreamListener::Vsock(l), host, port));
    }
    let listener =
        TcpListener::bind(common.listen).await.map_err(|e| format!("cannot listen on {}: {e}", common.listen))?;
    let child = match eif {
        Some(eif) => {
            let mut c = tokio::process::Command::new("nitro-cli")
                .args(["run-enclave", "--eif-path"])
                .arg(&eif)
                .args(["--cpu-count", &cpu_count.to_string(), "--memory", &memory_mib.to_string()])
                .args(["--enclave-cid", &enclave_cid.to_string()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot run nitro-cli: {e}"))?;
            supervise::forward_logs(&mut c, "nitro-cli", common.log_format == LogFormat::Json);
            let status = c.wait().await.map_err(|e| format!("nitro-cli: {e}"))?;
            if !status.success() {
                return Err(format!("nitro-cli run-enclave failed ({status})"));
            }
            None // nitro-cli returns once the enclave runs; the enclave is not our child process
        }
        None => None,
    };
    let plan = Plan {
        data_dir,
        listener,
        storage,
        enclave: EnclaveAddr::Vsock { cid: enclave_cid, port: enclave_port },
        child,
        region: common.region.clone(),
        boot,
        drain_timeout: std::time::Duration::from_secs(common.drain_timeout),
    };
    supervise::run(plan, store).await
}

fn main() -> ExitCode {
    let argv = match config_file::expand(&Cli::command(), std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kms-host: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    let log_format = match &cli.command {
        Command::Dev { common, .. } | Command::Run { common, .. } => common.log_format,
        _ => LogFormat::Text,
    };
    init_logs(log_format);
    let command = match cli.command {
        Command::Sim(c) => return exit(sim_command(c).map(|()| None)),
        Command::Admin(args) => return admin_cmd::run(args),
        Command::Attestation(AttestationCommand::Verify {
            file,
            at_document_time,
            sim_root,
            expected_pcrs,
            max_age,
            allow_debug,
            nonce,
        }) => {
            let nonce = match nonce.map(|n| sim::parse_hex("--nonce", &n)).transpose() {
                Ok(n) => n,
                Err(e) => return exit(Err(e)),
            };
            let args = attest_cmd::VerifyArgs {
                file: &file,
                at_document_time,
                sim_root: sim_root.as_deref(),
                expected_pcrs,
                max_age_secs: max_age,
                allow_debug,
                nonce,
            };
            return exit(attest_cmd::run(args).map(Some).map_err(|e| e.to_string()));
        }
        Command::Custody(CustodyCommand::Digest(args)) => return exit(custody_cmd::digest(&args).map(Some)),
        Command::Quorum(QuorumCommand::Keygen { out_dir }) => return exit(custody_cmd::keygen(&out_dir).map(Some)),
        Command::Quorum(QuorumCommand::Unseal(args)) => return quorum::run_unseal(args),
        Command::VerifyEndpoint { endpoint, expected_pcrs, sim_root, allow_debug, expected_settings_digest, out } => {
            let expected_settings_digest =
                match expected_settings_digest.map(|d| sim::parse_hex("--expected-settings-digest", &d)).transpose() {
                    Ok(d) => d,
                    Err(e) => return exit(Err(e)),
                };
            let args = verify_endpoint::Args {
                endpoint: &endpoint,
                expected_pcrs,
                sim_root: sim_root.as_deref(),
                allow_debug,
                expected_settings_digest,
                out: &out,
            };
            return exit(verify_endpoint::run(args).map(Some).map_err(|e| e.to_string()));
        }
        other => other,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kms-host: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Dev { common, enclave_bin, sim_pki, custody } => dev(common, enclave_bin, sim_pki, custody).await,
            Command::Run {
                common,
                enclave_cid,
                enclave_port,
                storage_port,
                eif,
                cpu_count,
                memory_mib,
                upstream_port,
                custody,
            } => {
                let vsock = Vsock { enclave_cid, enclave_port, storage_port, upstream_port };
                production(common, vsock, eif, cpu_count, memory_mib, custody).await
            }
            Command::Sim(_)
            | Command::Attestation(_)
            | Command::VerifyEndpoint { .. }
            | Command::Admin(_)
            | Command::Custody(_)
            | Command::Quorum(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if log_format == LogFormat::Json => {
            tracing::error!(error = %e, "kms-host stopped");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("kms-host: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sim_command(c: SimCommand) -> Result<(), String> {
    match c {
        SimCommand::Keygen { alg, out_dir } => sim::keygen(alg, &out_dir),
        SimCommand::Attest { data_dir, public_key, pcrs, nonce, user_data, debug, out } => {
            sim::attest(sim::AttestArgs {
                data_dir,
                public_key,
                pcrs,
                nonce: nonce.map(|n| sim::parse_hex("--nonce", &n)).transpose()?,
                user_data: user_data.map(|u| sim::parse_hex("--user-data", &u)).transpose()?,
                debug,
                out,
            })
        }
        SimCommand::OpenRecipient { private_key, input, document, key_id, ciphertext_blob, out } => {
            let answer =
                open_recipient::Answer { key_id: key_id.as_deref(), ciphertext_blob: ciphertext_blob.as_deref() };
            open_recipient::open_recipient(&private_key, &input, document.as_deref(), &answer, &out)
        }
    }
}

/// Ends a one-shot command: JSON on stdout and exit 0, or the error on stderr and exit 1.
fn exit(result: Result<Option<serde_json::Value>, String>) -> ExitCode {
    match result {
        Ok(Some(json)) => {
            println!("{json:#}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kms-host: {e}");
            ExitCode::FAILURE
        }
    }
}
