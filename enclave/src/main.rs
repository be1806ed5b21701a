//! `kms-enclave`: the enclave binary. `nitro` inside a Nitro Enclave; `simulator` (INSECURE) as a child of
//! `kms-host dev`.

use clap::{Args, Parser, Subcommand};
use kms_attestation::{NitroNsm, Nsm};
use kms_enclave::boot::{self, Settings};
use kms_enclave::net::transport::{ClientListener, StorageTarget};
use kms_enclave::state::ids::Scope;
#[cfg(feature = "simulator")]
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kms-enclave", version, about = "enclave-kms: the enclave side")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Production: inside a Nitro Enclave; needs /dev/nsm.
    Nitro {
        /// vsock port for relayed client connections.
        #[arg(long, default_value_t = 5000)]
        client_port: u32,
        /// The parent instance's vsock CID.
        #[arg(long, default_value_t = 3)]
        parent_cid: u32,
        /// The host's vsock storage port.
        #[arg(long, default_value_t = 5001)]
        storage_port: u32,
        /// The host's vsock port relaying the upstream service's TLS stream (custody `upstream`).
        #[arg(long, default_value_t = 5002)]
        upstream_port: u32,
        #[command(flatten)]
        common: Common,
    },
    /// INSECURE simulator mode over Unix sockets, for development and tests. Reads the simulated NSM's PKI and PCRs
    /// as JSON on standard input (`{"pki": PEM bundle, "pcrs": {"0": HEX, ...}}`), as `kms-host dev` writes them.
    #[cfg(feature = "simulator")]
    Simulator {
        /// Unix socket to listen on for relayed client connections.
        #[arg(long)]
        client_socket: PathBuf,
        /// The host's Unix socket for the storage channel.
        #[arg(long)]
        storage_socket: PathBuf,
        /// The host's Unix socket relaying the upstream service's TLS stream (custody `upstream`).
        #[arg(long)]
        upstream_socket: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
}

/// How log lines are written on standard error.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON layer), with one event per request.
    Json,
}

#[derive(Args)]
struct Common {
    /// Log lines as text (default) or JSON. Without RUST_LOG, JSON logs include one `request` event per request;
    /// text logs leave them out (RUST_LOG=info,request=info adds them).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Region in ARNs and the SigV4 scope.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// 12-digit account id in ARNs.
    #[arg(long, default_value = "000000000000")]
    account_id: String,
    /// DNS names or IP addresses for the TLS certificate (localhost, 127.0.0.1 and ::1 are always included).
    #[arg(long = "tls-name")]
    tls_names: Vec<String>,
    /// Most unwrapped keys cached in enclave memory.
    #[arg(long, default_value_t = 100_000)]
    key_cache: usize,
}

fn settings(c: &Common) -> Result<Settings, String> {
    if c.account_id.len() != 12 || !c.account_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("--account-id must be 12 digits, not {:?}", c.account_id));
    }
    if c.region.is_empty()
        || c.region.len() > 32
        || !c.region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("--region is not a region name: {:?}", c.region));
    }
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(c.tls_names.iter().cloned());
    Ok(Settings {
        scope: Scope { region: c.region.clone(), account_id: c.account_id.clone() },
        tls_names: names,
        key_cache: c.key_cache,
        upstream: None,
        limits: kms_enclave::net::limits::Limits::default(),
    })
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match format {
        LogFormat::Text => "info,request=off",
        LogFormat::Json => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Arguments first (cheap, and a usage error should say so), then the NSM.
    let common = match &cli.mode {
        Mode::Nitro { common, .. } => common,
        #[cfg(feature = "simulator")]
        Mode::Simulator { common, .. } => common,
    };
    init_logs(common.log_format);
    let mut settings = match settings(common) {
        // Simulator mode only: tests shorten the network limits through KMS_ENCLAVE_TEST_* variables.
        #[cfg(feature = "simulator")]
        Ok(mut s) if matches!(cli.mode, Mode::Simulator { .. }) => {
            s.limits = s.limits.with_test_overrides(|k| std::env::var(k).ok());
            s
        }
        Ok(s) => s,
        Err(e) => {
            eprintln!("kms-enclave: {e}");
            return ExitCode::from(2);
        }
    };
    let (nsm, storage, listener): (Box<dyn Nsm>, _, _) = match cli.mode {
        Mode::Nitro { client_port, parent_cid, storage_port, upstream_port, .. } => {
            settings.upstream = Some(StorageTarget::Vsock { cid: parent_cid, port: upstream_port });
            let nsm = match NitroNsm::open() {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("kms-enclave: refusing to start in Nitro mode: {e}");
                    return ExitCode::from(2);
                }
            };
            (Box::new(nsm), StorageTarget::Vsock { cid: parent_cid, port: storage_port }, Listen::Vsock(client_port))
        }
        #[cfg(feature = "simulator")]
        Mode::Simulator { client_socket, storage_socket, upstream_socket, .. } => {
            settings.upstream = upstream_socket.map(StorageTarget::Unix);
            eprintln!(
                "kms-enclave: INSECURE SIMULATOR MODE: simulated NSM, domain key sealed under a public key. Never use in production."
            );
            let nsm = match simulator::nsm_from_stdin() {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("kms-enclave: simulator configuration on standard input: {e}");
                    return ExitCode::from(2);
                }
            };
            (Box::new(nsm), StorageTarget::Unix(storage_socket), Listen::Unix(client_socket))
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kms-enclave: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let listener = match listener {
            #[cfg(feature = "simulator")]
            Listen::Unix(p) => ClientListener::unix(&p),
            Listen::Vsock(port) => ClientListener::vsock(port),
        }
        .map_err(|e| kms_enclave::error::Error::Internal(format!("cannot listen: {e}")))?;
        boot::run(nsm, storage, listener, settings).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let detail = match &e {
                kms_enclave::error::Error::Internal(d) => d.clone(),
                other => other.to_string(),
            };
            tracing::error!(error = %detail, "kms-enclave stopped");
            ExitCode::FAILURE
        }
    }
}

enum Listen {
    #[cfg(feature = "simulator")]
    Unix(PathBuf),
    Vsock(u32),
}

#[cfg(feature = "simulator")]
mod simulator {
    use kms_attestation::{SimNsm, SimPki};
    use serde::Deserialize;
    use std::collections::BTreeMap;
    use std::io::Read;
    use zeroize::Zeroizing;

    /// Largest configuration accepted on standard input.
    const MAX_CONFIG: u64 = 256 * 1024;

    #[derive(Deserialize)]
    struct Config {
        pki: Zeroizing<String>,
        pcrs: BTreeMap<String, String>,
    }

    /// The simulated NSM from the JSON configuration the host writes on our standard input.
    pub fn nsm_from_stdin() -> Result<SimNsm, String> {
        let mut buf = Zeroizing::new(Vec::new());
        std::io::stdin().take(MAX_CONFIG + 1).read_to_end(&mut buf).map_err(|e| e.to_string())?;
        if buf.len() as u64 > MAX_CONFIG {
            return Err(format!("more than {MAX_CONFIG} bytes"));
        }
        let config: Config = serde_json::from_slice(&buf).map_err(|e| format!("not the expected JSON: {e}"))?;
        let mut pcrs = BTreeMap::new();
        for (index, value) in &config.pcrs {
            let index: u32 = index.parse().map_err(|_| format!("bad PCR index {index:?}"))?;
            let value = hex::decode(value).map_err(|_| format!("PCR {index} is not hex"))?;
            pcrs.insert(index, value);
        }
        let pki = SimPki::from_pem_bundle(&config.pki).map_err(|e| format!("simulator PKI: {e}"))?;
        Ok(SimNsm::new(pki, pcrs))
    }
}
