//! `kms-host`: the untrusted parent-instance side of enclave-kms.

mod blobstore;
mod files;
mod relay;
mod storage_server;
mod supervise;

use blobstore::SqliteStore;
use clap::{Args, Parser, Subcommand};
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
    },
}

#[derive(Args)]
struct Common {
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
    let mut args =
        vec!["--region".to_owned(), common.region.clone(), "--account-id".to_owned(), common.account_id.clone()];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        args.extend(["--tls-name".to_owned(), listen.ip().to_string()]);
    }
    for n in &common.tls_names {
        args.extend(["--tls-name".to_owned(), n.clone()]);
    }
    args
}

async fn dev(common: Common, enclave_bin: Option<PathBuf>) -> Result<(), String> {
    eprintln!("kms-host: SIMULATOR MODE (insecure): the enclave runs as an ordinary process with a simulated NSM.");
    let data_dir = prepare_data_dir(&common.data_dir)?;
    let store = Arc::new(SqliteStore::open(&data_dir.join(supervise::STORE_FILE))?);
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
    let child = supervise::spawn_simulator(&bin, &args)?;
    let plan = Plan {
        data_dir,
        listener,
        storage: StorageListener::Unix(storage),
        enclave: EnclaveAddr::Unix(client_sock),
        child: Some(child),
        region: common.region.clone(),
    };
    let result = supervise::run(plan, store).await;
    drop(run_dir);
    result
}

#[allow(clippy::too_many_arguments)]
async fn production(
    common: Common,
    enclave_cid: u32,
    enclave_port: u32,
    storage_port: u32,
    eif: Option<PathBuf>,
    cpu_count: u32,
    memory_mib: u32,
) -> Result<(), String> {
    if !Path::new("/dev/nitro_enclaves").exists() {
        return Err("refusing to start in production mode: /dev/nitro_enclaves not found (not a Nitro Enclaves parent instance); use `kms-host dev` for the simulator".into());
    }
    if enclave_cid <= 3 {
        return Err(format!("--enclave-cid {enclave_cid} is reserved (0-2: hypervisor and local, 3: this parent)"));
    }
    let data_dir = prepare_data_dir(&common.data_dir)?;
    let store = Arc::new(SqliteStore::open(&data_dir.join(supervise::STORE_FILE))?);
    let storage = StorageListener::vsock(storage_port).map_err(|e| format!("vsock port {storage_port}: {e}"))?;
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
            supervise::forward_logs(&mut c);
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
    };
    supervise::run(plan, store).await
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kms-host: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev { common, enclave_bin } => dev(common, enclave_bin).await,
            Command::Run { common, enclave_cid, enclave_port, storage_port, eif, cpu_count, memory_mib } => {
                production(common, enclave_cid, enclave_port, storage_port, eif, cpu_count, memory_mib).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kms-host: {e}");
            ExitCode::FAILURE
        }
    }
}
