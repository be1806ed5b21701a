//! Bringing the service up and down: the storage listener, the enclave (a child process in simulator mode, or
//! `nitro-cli run-enclave` in production), the announcement, the operator files, the ready line, the relay, and a
//! clean shutdown on SIGINT or SIGTERM.

use crate::blobstore::BlobStore;
use crate::files::{shell_quote, write_atomic};
use crate::notify;
use crate::relay::{self, EnclaveAddr};
use crate::storage_server::Event;
use kms_shared::storage::Announcement;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::net::{TcpListener, UnixListener};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_vsock::{VsockAddr, VsockListener};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// File names in the data directory. Contract: users and tests rely on them.
pub const STORE_FILE: &str = "kms.sqlite3";
/// The CA certificate clients trust.
pub const CA_FILE: &str = "ca.pem";
/// The AWS shared-credentials file with the bootstrap admin key.
pub const CREDENTIALS_FILE: &str = "credentials";
/// Shell lines that point the AWS CLI and SDKs at this service.
pub const ENV_FILE: &str = "env";

/// Where the enclave's storage channel arrives.
pub enum StorageListener {
    /// Simulator mode.
    Unix(UnixListener),
    /// Production.
    Vsock(VsockListener),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

impl StorageListener {
    async fn accept(&self) -> std::io::Result<Box<dyn Stream>> {
        match self {
            Self::Unix(l) => Ok(Box::new(l.accept().await?.0)),
            Self::Vsock(l) => Ok(Box::new(l.accept().await?.0)),
        }
    }

    /// Binds vsock `port` on any CID.
    pub fn vsock(port: u32) -> std::io::Result<Self> {
        VsockListener::bind(VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, port)).map(Self::Vsock)
    }
}

/// Everything [`run`] needs.
pub struct Plan {
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// The bound client listener.
    pub listener: TcpListener,
    /// Where the enclave's storage channel arrives.
    pub storage: StorageListener,
    /// How to reach the enclave.
    pub enclave: EnclaveAddr,
    /// The enclave process, when the host started one it can stop.
    pub child: Option<Child>,
    /// Region, for the env file.
    pub region: String,
    /// The enclave's boot configuration (custody).
    pub boot: Arc<kms_shared::custody::BootConfig>,
    /// The longest a requested stop waits for open connections to finish.
    pub drain_timeout: Duration,
}

/// Forwards a child's output lines to our stderr: prefixed with `source: ` as text, or as JSON lines (a line that is
/// already a JSON object passes unchanged; any other becomes `{"level":"INFO","target":SOURCE,"message":LINE}`).
pub fn forward_logs(child: &mut Child, source: &'static str, json: bool) {
    fn pump<R: tokio::io::AsyncRead + Unpin + Send + 'static>(r: R, source: &'static str, json: bool) {
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{}", forwarded(&line, source, json));
            }
        });
    }
    if let Some(out) = child.stdout.take() {
        pump(out, source, json);
    }
    if let Some(err) = child.stderr.take() {
        pump(err, source, json);
    }
}

/// One forwarded log line (see [`forward_logs`]).
fn forwarded(line: &str, source: &str, json: bool) -> String {
    if !json {
        return format!("{source}: {line}");
    }
    if line.starts_with('{') && serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()) {
        return line.to_owned();
    }
    serde_json::json!({"level": "INFO", "target": source, "message": line}).to_string()
}

/// Spawns `kms-enclave simulator ...` with its output piped to ours and `config` (the simulated NSM's PKI and PCRs)
/// written to its standard input, which is then closed.
pub fn spawn_simulator(
    bin: &Path,
    args: &[String],
    config: zeroize::Zeroizing<Vec<u8>>,
    json_logs: bool,
) -> Result<Child, String> {
    let mut child = Command::new(bin)
        .arg("simulator")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    forward_logs(&mut child, "enclave", json_logs);
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Err(e) = stdin.write_all(&config).await {
                tracing::error!(error = %e, "cannot hand the simulator configuration to the enclave");
            }
        });
    }
    Ok(child)
}

async fn child_exit(child: &mut Option<Child>) -> String {
    match child {
        Some(c) => match c.wait().await {
            Ok(status) => format!("the enclave exited ({status})"),
            Err(e) => format!("cannot wait for the enclave: {e}"),
        },
        None => std::future::pending().await,
    }
}

fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
        SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port())),
        other => other,
    }
}

fn write_operator_files(
    dir: &Path,
    region: &str,
    boot: &kms_shared::custody::BootConfig,
    ann: &Announcement,
    endpoint: SocketAddr,
) -> Result<(), String> {
    write_atomic(&dir.join(CA_FILE), ann.ca_pem.as_bytes(), 0o644)?;
    let creds = dir.join(CREDENTIALS_FILE);
    if let Some(sealed) = &ann.bootstrap_sealed {
        let path = crate::custody_cmd::write_bootstrap(dir, sealed, &ann.settings_digest)?;
        tracing::info!(path = %path.display(), "the first admin key, sealed to the admin public key, written: open it with `kms-host admin open-bootstrap`");
    }
    match &ann.bootstrap {
        Some(b) => {
            let text = format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                b.access_key_id, b.secret_access_key
            );
            write_atomic(&creds, text.as_bytes(), 0o600)?;
            tracing::info!(access_key_id = %b.access_key_id, path = %creds.display(), "bootstrap admin credentials written (shown once)");
        }
        None if ann.bootstrap_sealed.is_some() || boot.source != kms_shared::custody::DomainKeySource::Local => {}
        None if !creds.exists() => tracing::warn!(
            path = %creds.display(),
            "no credentials file: the admin key is shown only once, at the first start of a data directory"
        ),
        None => {}
    }
    let env = env_file_text(endpoint, &dir.join(CA_FILE), &creds, region);
    write_atomic(&dir.join(ENV_FILE), env.as_bytes(), 0o644)
}

/// The `env` file: every variable a mainstream AWS client needs to reach this service (docs/clients.md).
/// `AWS_REGION` beside `AWS_DEFAULT_REGION` for the JavaScript SDK v3, which reads only the former;
/// `NODE_EXTRA_CA_CERTS` because Node ignores `AWS_CA_BUNDLE`.
fn env_file_text(endpoint: SocketAddr, ca: &Path, creds: &Path, region: &str) -> String {
    let ca = shell_quote(&ca.to_string_lossy());
    let region = shell_quote(region);
    format!(
        "export AWS_ENDPOINT_URL_KMS={}\nexport AWS_CA_BUNDLE={ca}\nexport NODE_EXTRA_CA_CERTS={ca}\n\
         export AWS_SHARED_CREDENTIALS_FILE={}\nexport AWS_DEFAULT_REGION={region}\nexport AWS_REGION={region}\n",
        shell_quote(&format!("https://{endpoint}")),
        shell_quote(&creds.to_string_lossy()),
    )
}

/// Runs the service until a signal or the enclave's exit. `Ok` means a clean, requested shutdown.
pub async fn run(mut plan: Plan, store: Arc<dyn BlobStore>) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("signal handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("signal handler: {e}"))?;

    let storage = tokio::select! {
        s = tokio::time::timeout(STARTUP_TIMEOUT, plan.storage.accept()) => match s {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("storage channel: {e}")),
            Err(_) => return Err("the enclave did not connect its storage channel in time".into()),
        },
        why = child_exit(&mut plan.child) => return Err(why),
    };
    let (atx, mut arx) = mpsc::channel(4);
    let store_dyn = store;
    let (dead_tx, mut dead_rx) = mpsc::channel::<String>(1);
    let boot = plan.boot.clone();
    tokio::spawn(async move {
        let why = match crate::storage_server::serve(storage, store_dyn, atx, boot).await {
            Ok(()) => "the enclave closed the storage channel".to_owned(),
            Err(e) => e,
        };
        let _ = dead_tx.send(why).await;
    });

    let local = plan.listener.local_addr().map_err(|e| format!("listener: {e}"))?;
    let endpoint = connectable(local);
    let mut listener = Some(plan.listener);
    let connections = relay::Connections::new();
    // Started early when the enclave is sealed (quorum): clients then reach only its unseal endpoint.
    let mut relay: Option<tokio::task::JoinHandle<()>> = None;
    let (announcement, ack) = loop {
        let sealed = relay.is_some();
        // While sealed, the wait for the operators' shares has no deadline.
        let next = async {
            if sealed { Ok(arx.recv().await) } else { tokio::time::timeout(STARTUP_TIMEOUT, arx.recv()).await }
        };
        tokio::select! {
            a = next => match a {
                Ok(Some(Event::Announce(a, ack))) => break (a, ack),
                Ok(Some(Event::Serving)) => return Err("the enclave claimed to serve before announcing itself".into()),
                Ok(Some(Event::Refuse(reason))) => {
                    // The enclave exits after this; wait for it briefly so no process is left behind.
                    let _ = tokio::time::timeout(STOP_TIMEOUT, child_exit(&mut plan.child)).await;
                    return Err(format!("the enclave refused to start: {}", one_line(&reason)));
                }
                Ok(Some(Event::QuorumShares(files, ack))) => {
                    let written = write_shares(&plan.data_dir, &files);
                    let _ = ack.send(written.clone().map(|_| ()).map_err(|_| kms_shared::storage::StorageError::Unavailable));
                    let dir = written?;
                    println!("quorum: {} encrypted shares written to {}", files.len(), dir.display());
                }
                Ok(Some(Event::Sealed { threshold, count })) => {
                    if let Some(l) = listener.take() {
                        relay = Some(tokio::spawn(relay::run(l, plan.enclave.clone(), connections.clone())));
                    }
                    crate::metrics::global().set_state(crate::metrics::State::sealed);
                    println!("sealed: waiting for {threshold} of {count} shares");
                    println!("unseal endpoint: https://{endpoint}");
                }
                Ok(None) => {
                    // The storage channel ended: the enclave is exiting; report why.
                    let why = tokio::time::timeout(STOP_TIMEOUT, child_exit(&mut plan.child))
                        .await
                        .unwrap_or_else(|_| "the enclave closed the storage channel".into());
                    return Err(why);
                }
                Err(_) => return Err("the enclave did not announce itself in time".into()),
            },
            why = child_exit(&mut plan.child) => {
                // A refusal may be queued behind the exit.
                if let Ok(Event::Refuse(reason)) = arx.try_recv() {
                    return Err(format!("the enclave refused to start: {}", one_line(&reason)));
                }
                return Err(why);
            }
            Some(why) = dead_rx.recv() => {
                if let Ok(Event::Refuse(reason)) = arx.try_recv() {
                    return Err(format!("the enclave refused to start: {}", one_line(&reason)));
                }
                return Err(why);
            }
            _ = term.recv(), if sealed => {
                relay.iter().for_each(tokio::task::JoinHandle::abort);
                stop_child(&mut plan.child).await;
                return Ok(());
            }
            _ = int.recv(), if sealed => {
                relay.iter().for_each(tokio::task::JoinHandle::abort);
                stop_child(&mut plan.child).await;
                return Ok(());
            }
        }
    };
    let written = write_operator_files(&plan.data_dir, &plan.region, &plan.boot, &announcement, endpoint);
    let _ = ack.send(written.clone().map_err(|_| kms_shared::storage::StorageError::Unavailable));
    written?;
    println!("settings digest: {}", hex::encode(&announcement.settings_digest));
    drop(announcement);
    // Ready only once the enclave has completed its initialisation (after the files above were written).
    tokio::select! {
        e = tokio::time::timeout(STARTUP_TIMEOUT, arx.recv()) => match e {
            Ok(Some(Event::Serving)) => {}
            Ok(Some(Event::Refuse(reason))) => return Err(format!("the enclave refused to start: {}", one_line(&reason))),
            _ => return Err("the enclave did not complete its start".into()),
        },
        why = child_exit(&mut plan.child) => return Err(why),
        Some(why) = dead_rx.recv() => return Err(why),
    }

    let relay = match (relay, listener.take()) {
        (Some(r), _) => r,
        (None, Some(l)) => tokio::spawn(relay::run(l, plan.enclave.clone(), connections.clone())),
        (None, None) => return Err("no client listener".into()),
    };
    println!("ready: https://{endpoint}");
    println!("env: source {}", shell_quote(&plan.data_dir.join(ENV_FILE).to_string_lossy()));
    notify::ready(&format!("serving https://{endpoint}"));
    crate::metrics::global().set_state(crate::metrics::State::serving);
    let outcome = tokio::select! {
        _ = term.recv() => Ok(()),
        _ = int.recv() => Ok(()),
        why = child_exit(&mut plan.child) => Err(why),
        Some(why) = dead_rx.recv() => Err(why),
    };
    if outcome.is_ok() {
        notify::stopping();
        crate::metrics::global().set_state(crate::metrics::State::draining);
        drain(&plan.enclave, &connections, plan.drain_timeout, &mut term, &mut int).await;
    }
    relay.abort();
    if outcome.is_ok() {
        tracing::info!("shutting down");
    }
    stop_child(&mut plan.child).await;
    outcome
}

/// Drains before a requested stop: asks the enclave to drain (`/healthz` answers 503, connections close once their
/// request in flight is answered), then waits until no relayed connection is open, at most `timeout`; a second signal
/// ends the wait. The listener stays open meanwhile, so a probe reads the 503 rather than a refused connection.
async fn drain(
    enclave: &relay::EnclaveAddr,
    connections: &relay::Connections,
    timeout: Duration,
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) {
    if let Err(e) = relay::send_drain(enclave).await {
        tracing::warn!(error = %e, "could not ask the enclave to drain; stopping without it");
        return;
    }
    let open = connections.open();
    tracing::info!(open, timeout_secs = timeout.as_secs(), "draining");
    let deadline = tokio::time::Instant::now() + timeout;
    // The drain request's own connection is not relayed, so it is not counted.
    let quiet = async {
        while connections.open() > 0 {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    };
    tokio::select! {
        () = quiet => tracing::info!("drained: no connection open"),
        () = tokio::time::sleep_until(deadline) => {
            tracing::warn!(open = connections.open(), "drain timeout reached; stopping with connections open");
        }
        _ = term.recv() => tracing::warn!("second signal: stopping without waiting for the drain"),
        _ = int.recv() => tracing::warn!("second signal: stopping without waiting for the drain"),
    }
}

/// How often a drain checks whether connections are still open.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// Directory of the quorum share files in the data directory, and their names. Contract: operators rely on them.
pub const QUORUM_DIR: &str = "quorum";

/// Writes `DIR/quorum/share-1.enc` ... in operator order (each durable before the enclave is answered); returns the
/// directory. The files are encrypted to their operators: the host cannot read them.
fn write_shares(data_dir: &Path, files: &[Vec<u8>]) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = data_dir.join(QUORUM_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    for (i, f) in files.iter().enumerate() {
        write_atomic(&dir.join(format!("share-{}.enc", i + 1)), f, 0o600)?;
    }
    Ok(dir)
}

/// The enclave's reason on one line (it is shown as the one error line of this process).
fn one_line(reason: &str) -> String {
    reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

async fn stop_child(child: &mut Option<Child>) {
    let Some(c) = child else { return };
    if let Some(pid) = c.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_TIMEOUT, c.wait()).await.is_err() {
        tracing::warn!("the enclave did not stop in time; killing it");
        let _ = c.kill().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_lines_keep_one_format() {
        assert_eq!(forwarded("started", "enclave", false), "enclave: started");
        assert_eq!(forwarded(r#"{"level":"INFO","x":1}"#, "enclave", true), r#"{"level":"INFO","x":1}"#);
        let wrapped: serde_json::Value = serde_json::from_str(&forwarded("panicked at {x}", "enclave", true)).unwrap();
        assert_eq!(wrapped, serde_json::json!({"level": "INFO", "target": "enclave", "message": "panicked at {x}"}));
        let not_object: serde_json::Value = serde_json::from_str(&forwarded("[1]", "nitro-cli", true)).unwrap();
        assert_eq!(not_object["message"], "[1]");
    }

    #[test]
    fn env_file_serves_every_mainstream_client() {
        let text = env_file_text(
            SocketAddr::from(([127, 0, 0, 1], 9443)),
            Path::new("/d d/ca.pem"),
            Path::new("/d d/credentials"),
            "eu-west-1",
        );
        assert_eq!(
            text,
            "export AWS_ENDPOINT_URL_KMS=https://127.0.0.1:9443\n\
             export AWS_CA_BUNDLE='/d d/ca.pem'\n\
             export NODE_EXTRA_CA_CERTS='/d d/ca.pem'\n\
             export AWS_SHARED_CREDENTIALS_FILE='/d d/credentials'\n\
             export AWS_DEFAULT_REGION=eu-west-1\n\
             export AWS_REGION=eu-west-1\n"
        );
    }
}
