//! Start-up: boot configuration and domain key (`custody`), TLS identity, bootstrap credential, announcement to the host, then the accept loop.

use crate::access::credentials::Credentials;
use crate::custody;
use crate::error::Error;
use crate::net::transport::{ClientListener, StorageTarget};
use crate::service::{Clock, Service};
use crate::state::aliases::Aliases;
use crate::state::ids::Scope;
use crate::state::keys::Keyring;
use crate::state::store::Channel;
use kms_attestation::Nsm;
use kms_shared::storage::{Announcement, StorageOp};
use sha2::Digest;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// How often keys past their deletion date are looked for.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);
/// Pause of the background sweep after each page of 500 keys: at 1,000,000 keys a sweep opens every record (about
/// 10 ms of CPU per page) and would otherwise hold a runtime worker for seconds at a time.
const SWEEP_PACE: std::time::Duration = std::time::Duration::from_millis(20);

/// How this enclave runs.
pub struct Settings {
    /// Region and account of ARNs.
    pub scope: Scope,
    /// Names (DNS or IP) the TLS certificate is issued for.
    pub tls_names: Vec<String>,
    /// Most unwrapped keys cached.
    pub key_cache: usize,
    /// The host-relayed stream to the upstream service (custody `upstream`).
    pub upstream: Option<StorageTarget>,
    /// Connection, time and memory bounds of the client side.
    pub limits: crate::net::limits::Limits,
}

/// The boot configuration, then the domain key from its source.
async fn establish(
    channel: &Channel,
    nsm: &Arc<dyn Nsm>,
    settings: &Settings,
    listener: &ClientListener,
) -> Result<custody::Established, Error> {
    let config = custody::boot_config(channel).await?;
    tracing::info!(source = config.source.name(), init = config.init, "boot configuration received");
    // A `quorum` enclave serves its sealed endpoint on the client listener until its operators unseal it.
    let sealed = custody::SealedIo { listener, nsm: nsm.clone(), tls_names: &settings.tls_names };
    let cx = custody::Context {
        channel,
        nsm: nsm.as_ref(),
        config: &config,
        upstream: settings.upstream.as_ref(),
        sealed: Some(sealed),
    };
    custody::establish(&cx, &settings.scope.user_arn(custody::ADMIN_NAME)).await
}

/// Everything before serving: the domain key, the TLS identity, the service, the first admin, the announcement. A
/// failure here is reported to the host as a refusal.
async fn start(
    channel: &Channel,
    nsm: Box<dyn Nsm>,
    settings: &Settings,
    listener: &ClientListener,
) -> Result<(Arc<Service>, crate::net::tls::TlsIdentity, custody::Established), Error> {
    let nsm: Arc<dyn Nsm> = Arc::from(nsm);
    let est = establish(channel, &nsm, settings, listener).await?;
    let records = est.records.clone();
    #[cfg(feature = "simulator")]
    let label = if nsm.is_simulated() { "INSECURE simulator" } else { "Nitro" };
    #[cfg(not(feature = "simulator"))]
    let label = "Nitro";
    let initialising = est.pending.is_some();
    let tls = crate::net::tls::load_or_create(&records, &settings.tls_names, label, initialising).await?;
    let binding = crate::service::TlsBinding {
        leaf_spki: tls.leaf_spki.clone(),
        ca_sha384: sha2::Sha384::digest(&tls.ca_der).to_vec(),
        settings_digest: est.settings_digest.to_vec(),
    };
    let clock = Arc::new(Clock::default());
    let anchor = nsm.trust_anchor().map_err(|e| Error::Internal(format!("trust anchor: {e}")))?;
    let svc = Arc::new(Service {
        nsm: nsm.clone(),
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
        scope: settings.scope.clone(),
        clock,
        keygen: crate::crypto::keygen::KeygenGate::per_vcpu(settings.limits.rsa_per_principal),
    });

    // The bootstrap admin is created only while the custody record says "initialising" (custody/mod.rs), with the
    // access key prepared before the domain key was committed: a host that hides records gets no new admin.
    let bootstrap = if initialising {
        custody::complete_init(&est, &svc).await?
    } else {
        custody::require_admin(&svc).await?;
        custody::Bootstrap { plain: None, sealed: None }
    };
    channel
        .call(StorageOp::Announce(Announcement {
            ca_pem: tls.ca_pem.clone(),
            bootstrap: bootstrap.plain,
            bootstrap_sealed: bootstrap.sealed,
            settings_digest: est.settings_digest.to_vec(),
        }))
        .await
        .map_err(Error::from)?;
    Ok((svc, tls, est))
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

    let started = start(&channel, nsm, &settings, &listener).await;
    let (svc, tls, mut est) = match started {
        Ok(s) => s,
        Err(e) => {
            let reason = match &e {
                Error::Internal(d) => d.clone(),
                other => other.to_string(),
            };
            // Tell the host why (in Nitro mode the enclave's own output is not visible to it); best effort.
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                channel.call(StorageOp::Refuse { reason: reason.chars().take(2000).collect() }),
            )
            .await;
            return Err(e);
        }
    };
    custody::mark_ready(&mut est).await?;
    channel.call(StorageOp::Serving).await.map_err(Error::from)?;
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

    // The counters for the host's metrics endpoint (counts only; see `telemetry`).
    let pusher = channel.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::telemetry::PUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            if let Err(e) = pusher.call(StorageOp::Metrics(crate::telemetry::global().snapshot())).await {
                tracing::debug!(error = %e, "metrics not delivered");
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
