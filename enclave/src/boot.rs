//! Start-up: domain key, TLS identity, bootstrap credential, announcement to the host, then the accept loop.

use crate::access::credentials::Credentials;
use crate::crypto::secret::Key256;
use crate::error::Error;
use crate::net::transport::{ClientListener, StorageTarget};
use crate::service::{Clock, Service};
use crate::state::aliases::Aliases;
use crate::state::ids::Scope;
use crate::state::keys::Keyring;
use crate::state::store::{Channel, Records, StoreError};
use kms_attestation::Nsm;
use kms_shared::storage::{Announcement, BootstrapCredential, RecordKind, StorageError, StorageOp};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// How often keys past their deletion date are looked for.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);
/// Pause of the background sweep after each page of 500 keys: at 1,000,000 keys a sweep opens every record (about
/// 10 ms of CPU per page) and would otherwise hold a runtime worker for seconds at a time.
const SWEEP_PACE: std::time::Duration = std::time::Duration::from_millis(20);

/// Label of the simulator's sealing key. Anyone can derive it: the simulator's domain key is NOT protected.
const SIM_SEALING_LABEL: &[u8] = b"enclave-kms INSECURE simulator domain-key sealing key v1";
const SIM_DOMAIN_KEY_ID: &str = "domain-key";

/// How this enclave runs.
pub struct Settings {
    /// Region and account of ARNs.
    pub scope: Scope,
    /// Names (DNS or IP) the TLS certificate is issued for.
    pub tls_names: Vec<String>,
    /// Most unwrapped keys cached.
    pub key_cache: usize,
    /// Connection, time and memory bounds of the client side.
    pub limits: crate::net::limits::Limits,
}

/// The simulator's domain key: sealed in the store under a key derived from a public label. Returns the key and
/// whether it was created now (first start of this data directory).
async fn sim_domain_key(channel: &Channel) -> Result<(Key256, bool), Error> {
    let sealing = Key256::from_array(Sha256::digest(SIM_SEALING_LABEL).into());
    let sim = Records::new(channel.clone(), sealing);
    for _ in 0..2 {
        if let Some(opened) = sim.get(RecordKind::SimDomainKey, SIM_DOMAIN_KEY_ID).await? {
            let dk = Key256::from_slice(&opened.body).ok_or_else(|| Error::Internal("bad domain key record".into()))?;
            return Ok((dk, false));
        }
        let dk = Key256::generate().map_err(|_| Error::Internal("random source failed".into()))?;
        match sim.put(RecordKind::SimDomainKey, SIM_DOMAIN_KEY_ID, None, dk.expose_secret()).await {
            Ok(_) => return Ok((dk, true)),
            Err(StoreError::Host(StorageError::Conflict)) => continue, // another instance won the race; read theirs
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal("could not establish the domain key".into()))
}

/// Runs the enclave until the host goes away or a shutdown signal arrives.
pub async fn run(
    nsm: Box<dyn Nsm>,
    storage: StorageTarget,
    listener: ClientListener,
    settings: Settings,
) -> Result<(), Error> {
    let stream =
        storage.connect().await.map_err(|e| Error::Internal(format!("cannot reach the host's storage: {e}")))?;
    let (channel, mut dead) = Channel::start(stream);

    let (domain_key, fresh) = if nsm.is_simulated() {
        tracing::warn!("SIMULATOR MODE: the domain key is sealed under a public key; nothing here is secure");
        sim_domain_key(&channel).await?
    } else {
        return Err(Error::Internal(
            "Nitro mode has no domain-key provisioning yet (peer enclave, operator shares or upstream KMS); refusing to start"
                .into(),
        ));
    };

    let records = Arc::new(Records::new(channel.clone(), domain_key));
    let label = if nsm.is_simulated() { "INSECURE simulator" } else { "Nitro" };
    let tls = crate::net::tls::load_or_create(&records, &settings.tls_names, label).await?;
    let binding = crate::service::TlsBinding {
        leaf_spki: tls.leaf_spki.clone(),
        ca_sha384: sha2::Sha384::digest(&tls.ca_der).to_vec(),
    };
    let clock = Arc::new(Clock::default());
    let anchor = nsm.trust_anchor().map_err(|e| Error::Internal(format!("trust anchor: {e}")))?;
    let svc = Arc::new(Service {
        nsm: Arc::from(nsm),
        binding,
        keys: Keyring::new(records.clone(), settings.scope.clone(), clock.clone(), settings.key_cache),
        aliases: Aliases::new(records.clone(), settings.key_cache),
        credentials: Credentials::new(records.clone()),
        principals: crate::access::principals::Principals::new(records.clone()),
        policies: crate::access::authz::PolicyCache::new(settings.key_cache),
        recipient_verifier: kms_attestation::Verifier::new(anchor),
        nonces: crate::crypto::recipient::nonce::NonceBook::new(
            records.derive_key(b"enclave-kms recipient nonce MAC v1"),
        ),
        records: records.clone(),
        scope: settings.scope,
        clock,
        keygen: crate::crypto::keygen::KeygenGate::per_vcpu(settings.limits.rsa_per_principal),
    });

    // The bootstrap admin exists only in the start that created the domain key, so a host that hides credential
    // records cannot make the enclave mint a new admin key.
    let bootstrap = if fresh {
        let arn = svc.scope.user_arn("admin");
        svc.principals.create(&arn, true, svc.clock.now_secs()).await?;
        let (akid, secret) = svc.credentials.create(&arn, svc.clock.now_secs()).await?;
        tracing::info!(access_key_id = %akid, principal = %arn, "bootstrap admin access key created");
        Some(BootstrapCredential { access_key_id: akid, secret_access_key: secret.expose_secret().to_owned() })
    } else {
        None
    };
    channel
        .call(StorageOp::Announce(Announcement { ca_pem: tls.ca_pem.clone(), bootstrap }))
        .await
        .map_err(Error::from)?;
    tracing::info!("enclave ready");

    // Keys nobody touches are destroyed on time too (touched ones are destroyed on first sight).
    let sweeper = svc.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tick.tick().await;
            match sweeper.keys.sweep_paced(SWEEP_PACE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(destroyed = n, "deletion sweep"),
                Err(e) => tracing::warn!(error = %e, "deletion sweep failed"),
            }
        }
    });

    let acceptor = TlsAcceptor::from(tls.config.clone());
    let gate = Arc::new(crate::net::limits::Gate::new(settings.limits));
    let limit = Arc::new(Semaphore::new(gate.limits.max_connections));
    // Connections over the limit are answered (ThrottlingException) by at most this many tasks, then dropped.
    let overflow = Arc::new(Semaphore::new(gate.limits.overflow_connections));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Internal(format!("signal handler: {e}")))?;
    loop {
        tokio::select! {
            _ = &mut dead => return Err(Error::Internal("the host closed the storage channel".into())),
            _ = term.recv() => { tracing::info!("shutting down"); return Ok(()) }
            _ = tokio::signal::ctrl_c() => { tracing::info!("shutting down"); return Ok(()) }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok(s) => s,
                    Err(e) => { tracing::warn!(error = %e, "accept failed"); continue }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    let Ok(spare) = overflow.clone().try_acquire_owned() else {
                        tracing::warn!("connection limit reached and no capacity to answer; dropping a connection");
                        continue;
                    };
                    tracing::warn!("connection limit reached; answering ThrottlingException");
                    let acceptor = acceptor.clone();
                    let error = Error::Throttling("Rate exceeded: too many connections; retry later".into());
                    tokio::spawn(async move {
                        crate::net::server::refuse_connection(stream, acceptor, error).await;
                        drop(spare);
                    });
                    continue;
                };
                let (acceptor, svc, gate) = (acceptor.clone(), svc.clone(), gate.clone());
                tokio::spawn(async move {
                    crate::net::server::connection(stream, acceptor, svc, gate).await;
                    drop(permit);
                });
            }
        }
    }
}
