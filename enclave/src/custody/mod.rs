//! Where the domain key comes from: the host's boot configuration, the domain-key sources (`local`, `upstream`,
//! `quorum`), explicit and resumable initialisation, and the records required once a data directory is initialised.
//!
//! Initialisation order (each step durable before the next), so a start killed at any point leaves either nothing
//! usable or something the next start completes:
//! 1. the source makes a key (nothing stored yet);
//! 2. the custody record (kind `Custody`, sealed under the new key) is written in phase *initialising*, holding the
//!    settings and the first admin's prepared access key;
//! 3. the source commits what finds the key again (the sealed simulator key, or the upstream envelope);
//! 4. the TLS issuer, the admin principal and its access key are created (from the prepared values);
//! 5. the host is told (announcement), then the custody record moves to phase *ready* and forgets the secret.
//!
//! A start that finds a domain key but no custody record refuses: the custody record precedes the key, so its absence
//! means the host hid it. A start that finds phase *initialising* repeats steps 4-5 with the prepared values: a host
//! that hides the admin records gets back the same admin key, sealed to the same admin public key; never a new one.
//! Once *ready*, the TLS issuer and an admin principal are required: a start without them refuses, naming the record.

#[cfg(feature = "simulator")]
mod local;
pub mod quorum;
pub mod upstream;

use crate::crypto::secret::{Key256, SecretString};
use crate::error::Error;
use crate::service::Service;
use crate::state::store::{Channel, Records, StoreError};
use kms_attestation::Nsm;
use kms_shared::custody::{BootConfig, DomainKeySource, InitSettings};
use kms_shared::storage::{BootstrapCredential, RecordKind, StorageOp, StorageReply};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};
use std::sync::Arc;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Id of the custody record.
pub const CUSTODY_ID: &str = "custody";
/// Name of the first admin principal.
pub const ADMIN_NAME: &str = "admin";
/// HPKE `info` prefix of the sealed admin bootstrap; the settings digest follows it.
pub const BOOTSTRAP_INFO: &[u8] = b"enclave-kms admin bootstrap v1";
/// Largest PEM public key accepted.
const MAX_PEM: usize = kms_shared::custody::MAX_PEM_LEN;

const PHASE_INITIALISING: u8 = 1;
const PHASE_READY: u8 = 2;

/// The custody record's body.
#[derive(Serialize, Deserialize)]
struct CustodyBody {
    settings: InitSettings,
    phase: u8,
    pending_admin: Option<PendingAdminBody>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct PendingAdminBody {
    principal_arn: String,
    access_key_id: String,
    secret: String,
}

/// The first admin's access key, prepared before it is stored, so a resumed initialisation recreates the same one.
pub struct PendingAdmin {
    /// The admin principal.
    pub principal_arn: String,
    /// Its first access key id.
    pub access_key_id: String,
    /// Its secret.
    pub secret: SecretString,
}

/// A domain key in hand, with what the enclave knows about its initialisation.
pub struct Established {
    /// Records sealed under the domain key.
    pub records: Arc<Records>,
    /// The initialisation settings, as sealed at initialisation (not as the host says now).
    pub settings: InitSettings,
    /// SHA-384 of [`InitSettings::canonical`]: bound into every attestation document.
    pub settings_digest: [u8; 48],
    /// `Some` while initialisation is unfinished: [`complete_init`] must run before serving.
    pub pending: Option<PendingAdmin>,
    custody_version: u64,
}

/// What a source hands back when asked for a new domain key: the key and the bytes its `commit` stores.
pub struct Fresh {
    /// The new domain key.
    pub key: Key256,
    /// What the source's `commit` stores.
    pub commit: Zeroizing<Vec<u8>>,
}

/// What the sources may use.
pub struct Context<'a> {
    /// The storage channel.
    pub channel: &'a Channel,
    /// The NSM (attestation documents and randomness).
    pub nsm: &'a dyn Nsm,
    /// The host's instructions.
    pub config: &'a BootConfig,
    /// The host-relayed byte stream to the upstream service, when this enclave has one.
    pub upstream: Option<&'a crate::net::transport::StorageTarget>,
    /// What a source that waits for its operators serves with (`quorum`); `None` in tests.
    pub sealed: Option<SealedIo<'a>>,
}

/// The client side a sealed enclave serves on while it waits for its key.
pub struct SealedIo<'a> {
    /// The client listener (the normal service takes it over once unsealed).
    pub listener: &'a crate::net::transport::ClientListener,
    /// The NSM, shareable with blocking tasks.
    pub nsm: Arc<dyn Nsm>,
    /// Names for the sealed endpoint's ephemeral certificate.
    pub tls_names: &'a [String],
}

/// A domain-key source, chosen by the host's boot configuration.
enum Source {
    #[cfg(feature = "simulator")]
    Local,
    Upstream,
    Quorum,
}

impl Source {
    fn of(config: &BootConfig, nsm: &dyn Nsm) -> Result<Self, Error> {
        match config.source {
            #[cfg(feature = "simulator")]
            DomainKeySource::Local if nsm.is_simulated() => Ok(Self::Local),
            DomainKeySource::Local => {
                let _ = nsm;
                Err(Error::Internal("the local domain-key source exists only in simulator mode".into()))
            }
            DomainKeySource::Upstream => Ok(Self::Upstream),
            DomainKeySource::Quorum => Ok(Self::Quorum),
            #[allow(unreachable_patterns)]
            other => Err(Error::Internal(format!("unsupported domain-key source {other:?}"))),
        }
    }

    /// The record whose presence means "a domain key exists" (named in errors).
    fn record_name(&self) -> &'static str {
        match self {
            #[cfg(feature = "simulator")]
            Self::Local => "SimDomainKey",
            Self::Upstream => "UpstreamEnvelope",
            Self::Quorum => "QuorumDescriptor",
        }
    }

    /// The existing domain key, or `None` when the data directory has none.
    async fn load(&self, cx: &Context<'_>) -> Result<Option<Key256>, Error> {
        match self {
            #[cfg(feature = "simulator")]
            Self::Local => local::load(cx).await,
            Self::Quorum => quorum::load(cx).await,
            Self::Upstream => upstream::load(cx).await,
        }
    }

    /// A new domain key (nothing stored yet).
    async fn create(&self, cx: &Context<'_>) -> Result<Fresh, Error> {
        match self {
            #[cfg(feature = "simulator")]
            Self::Local => local::create(cx),
            Self::Quorum => quorum::create(cx),
            Self::Upstream => upstream::create(cx).await,
        }
    }

    /// Stores what finds `fresh` again at the next start.
    async fn commit(&self, cx: &Context<'_>, commit: &[u8]) -> Result<(), Error> {
        match self {
            #[cfg(feature = "simulator")]
            Self::Local => local::commit(cx, commit).await,
            Self::Quorum => quorum::commit(cx, commit).await,
            Self::Upstream => upstream::commit(cx, commit).await,
        }
    }
}

/// Asks the host for its boot configuration.
pub async fn boot_config(channel: &Channel) -> Result<BootConfig, Error> {
    let reply = channel.call(StorageOp::BootConfig).await.map_err(Error::from)?;
    let StorageReply::BootConfig(config) = reply else {
        return Err(Error::Internal("the host answered the boot-configuration request with something else".into()));
    };
    config.validate().map_err(|e| Error::Internal(format!("boot configuration: {e}")))?;
    Ok(*config)
}

/// SHA-384 of the canonical settings.
pub fn settings_digest(settings: &InitSettings) -> [u8; 48] {
    Sha384::digest(settings.canonical()).into()
}

/// Parses a PEM P-384 public key (SubjectPublicKeyInfo) named by the host, for `what`.
pub fn p384_spki(pem: &str, what: &str) -> Result<Vec<u8>, Error> {
    let der = kms_attestation::pem::decode_single(pem, "PUBLIC KEY", MAX_PEM)
        .map_err(|e| Error::Internal(format!("{what}: not a PEM public key: {e}")))?;
    crate::crypto::recipient::hpke_p384::p384_recipient(&der)
        .map_err(|_| Error::Internal(format!("{what}: not a P-384 public key")))?;
    Ok(der)
}

/// The settings of a new initialisation, from the host's configuration.
fn new_settings(config: &BootConfig) -> Result<InitSettings, Error> {
    let admin_public_key = config.admin_public_key.as_deref().map(|p| p384_spki(p, "admin public key")).transpose()?;
    if admin_public_key.is_none() && config.source != DomainKeySource::Local {
        return Err(Error::Internal(format!(
            "--admin-public-key is required to initialise with --domain-key {}: the first admin key is handed out \
             only sealed to it",
            config.source.name()
        )));
    }
    let upstream_key_id = match config.source {
        DomainKeySource::Upstream => Some(
            config
                .upstream
                .as_ref()
                .map(|u| u.key_id.clone())
                .ok_or_else(|| Error::Internal("--domain-key upstream needs the upstream settings".into()))?,
        ),
        _ => None,
    };
    let operator_public_keys = config
        .operators
        .iter()
        .enumerate()
        .map(|(i, p)| p384_spki(p, &format!("operator key {}", i + 1)).map(serde_bytes::ByteBuf::from))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InitSettings {
        source: config.source,
        upstream_key_id,
        admin_public_key,
        operator_public_keys,
        threshold: config.threshold,
    })
}

fn encode(body: &CustodyBody) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(Vec::with_capacity(512));
    ciborium::into_writer(body, &mut *out).map_err(|e| Error::Internal(format!("custody record: {e}")))?;
    Ok(out)
}

/// Test stop points (simulator builds only): `KMS_ENCLAVE_TEST_STOP=after-domain-key|after-admin` makes the start
/// fail right after that step is durable, as a kill -9 there would, so tests reach each state deterministically.
fn test_stop(point: &str) -> Result<(), Error> {
    #[cfg(feature = "simulator")]
    if std::env::var("KMS_ENCLAVE_TEST_STOP").is_ok_and(|v| v == point) {
        return Err(Error::Internal(format!("test stop point {point} reached")));
    }
    let _ = point;
    Ok(())
}

/// Gets the domain key from the configured source, initialising only when the host said `--init` and no key exists.
pub async fn establish(cx: &Context<'_>, admin_arn: &str) -> Result<Established, Error> {
    let source = Source::of(cx.config, cx.nsm)?;
    if let Some(key) = source.load(cx).await? {
        return reopen(cx, &source, key).await;
    }
    if !cx.config.init {
        return Err(Error::Internal(format!(
            "this data directory has no domain key (no {} record) and --init was not given; refusing to create one",
            source.record_name()
        )));
    }
    let settings = new_settings(cx.config)?;
    let Fresh { key, commit } = source.create(cx).await?;
    let records = Arc::new(Records::new(cx.channel.clone(), key));
    let (access_key_id, secret) = crate::access::credentials::generate()?;
    let body = CustodyBody {
        settings,
        phase: PHASE_INITIALISING,
        pending_admin: Some(PendingAdminBody {
            principal_arn: admin_arn.to_owned(),
            access_key_id: access_key_id.clone(),
            secret: secret.expose_secret().to_owned(),
        }),
    };
    // A custody record left by an initialisation that never committed its key is replaced (it opens under no key).
    let prior = match cx.channel.call(StorageOp::Get { kind: RecordKind::Custody, id: CUSTODY_ID.into() }).await? {
        StorageReply::Record(r) => r.map(|r| r.version),
        _ => return Err(StoreError::Protocol.into()),
    };
    if prior.is_some() {
        tracing::warn!("replacing the custody record of an initialisation that did not finish");
    }
    let custody_version = records.put(RecordKind::Custody, CUSTODY_ID, prior, &encode(&body)?).await?;
    source.commit(cx, &commit).await?;
    tracing::info!(source = cx.config.source.name(), %access_key_id, "domain key created; initialising");
    test_stop("after-domain-key")?;
    let settings_digest = settings_digest(&body.settings);
    Ok(Established {
        records,
        settings: body.settings.clone(),
        settings_digest,
        pending: Some(PendingAdmin { principal_arn: admin_arn.to_owned(), access_key_id, secret }),
        custody_version,
    })
}

/// An existing domain key: the custody record must open under it (the domain-key check).
async fn reopen(cx: &Context<'_>, source: &Source, key: Key256) -> Result<Established, Error> {
    let records = Arc::new(Records::new(cx.channel.clone(), key));
    let opened = match records.get(RecordKind::Custody, CUSTODY_ID).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            return Err(Error::Internal(format!(
                "required record Custody/{CUSTODY_ID} is missing although a domain key exists ({}); refusing to start",
                source.record_name()
            )));
        }
        Err(StoreError::Integrity { .. }) => {
            return Err(Error::Internal(format!(
                "domain-key check failed: the custody record does not open under the domain key from {} (a foreign \
                 or replayed key envelope?); refusing to start",
                source.record_name()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let mut body: CustodyBody =
        ciborium::from_reader(&opened.body[..]).map_err(|_| Error::Internal("undecodable custody record".into()))?;
    if body.settings.source != cx.config.source {
        return Err(Error::Internal(format!(
            "this data directory was initialised with --domain-key {}, not {}",
            body.settings.source.name(),
            cx.config.source.name()
        )));
    }
    let named = cx.config.upstream.as_ref().map(|u| u.key_id.as_str());
    if body.settings.source == DomainKeySource::Upstream && body.settings.upstream_key_id.as_deref() != named {
        return Err(Error::Internal(format!(
            "this data directory was initialised with upstream key {}, not {}",
            body.settings.upstream_key_id.as_deref().unwrap_or("?"),
            named.unwrap_or("?")
        )));
    }
    let pending = match (body.phase, body.pending_admin.take()) {
        (PHASE_READY, None) => None,
        (PHASE_INITIALISING, Some(p)) => {
            tracing::warn!(access_key_id = %p.access_key_id, "resuming an unfinished initialisation");
            Some(PendingAdmin {
                principal_arn: p.principal_arn.clone(),
                access_key_id: p.access_key_id.clone(),
                secret: SecretString::new(p.secret.clone()),
            })
        }
        _ => return Err(Error::Internal("custody record in an impossible state".into())),
    };
    let settings_digest = settings_digest(&body.settings);
    Ok(Established { records, settings: body.settings, settings_digest, pending, custody_version: opened.version })
}

/// What the first start tells the operator about the admin key.
pub struct Bootstrap {
    /// In the clear (local mode without an admin public key).
    pub plain: Option<BootstrapCredential>,
    /// Sealed to the admin public key.
    pub sealed: Option<Vec<u8>>,
}

/// Finishes an initialisation: the admin principal and its prepared access key (idempotent), returned for the
/// announcement. Runs only while the custody record says *initialising*.
pub async fn complete_init(est: &Established, svc: &Service) -> Result<Bootstrap, Error> {
    let Some(p) = &est.pending else { return Ok(Bootstrap { plain: None, sealed: None }) };
    let now = svc.clock.now_secs();
    if svc.principals.get(&p.principal_arn).await?.is_none() {
        match svc.principals.create(&p.principal_arn, true, now).await {
            Ok(_) | Err(Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if svc.credentials.get(&p.access_key_id).await?.is_none() {
        svc.credentials.insert(&p.access_key_id, &p.secret, &p.principal_arn, now).await?;
    }
    tracing::info!(access_key_id = %p.access_key_id, principal = %p.principal_arn, "bootstrap admin access key ready");
    test_stop("after-admin")?;
    match &est.settings.admin_public_key {
        None => Ok(Bootstrap {
            plain: Some(BootstrapCredential {
                access_key_id: p.access_key_id.clone(),
                secret_access_key: p.secret.expose_secret().to_owned(),
            }),
            sealed: None,
        }),
        Some(spki) => {
            let plain = Zeroizing::new(
                serde_json::json!({
                    "AccessKeyId": p.access_key_id,
                    "SecretAccessKey": p.secret.expose_secret(),
                    "PrincipalArn": p.principal_arn,
                })
                .to_string(),
            );
            let info = [BOOTSTRAP_INFO, &est.settings_digest[..]].concat();
            let sealed = crate::crypto::recipient::hpke_p384::seal_with_info(spki, &info, b"", plain.as_bytes())
                .map_err(|_| Error::Internal("cannot seal the admin bootstrap to the admin public key".into()))?;
            Ok(Bootstrap { plain: None, sealed: Some(sealed) })
        }
    }
}

/// After the host acknowledged the announcement: initialisation is complete; the prepared secret is forgotten.
pub async fn mark_ready(est: &mut Established) -> Result<(), Error> {
    if est.pending.is_none() {
        return Ok(());
    }
    let body = CustodyBody { settings: est.settings.clone(), phase: PHASE_READY, pending_admin: None };
    est.custody_version =
        est.records.put(RecordKind::Custody, CUSTODY_ID, Some(est.custody_version), &encode(&body)?).await?;
    est.pending = None;
    tracing::info!("initialisation complete");
    Ok(())
}

/// Once initialised, an admin principal must exist (the last one cannot be deleted): refuse otherwise.
pub async fn require_admin(svc: &Service) -> Result<(), Error> {
    if svc.principals.list().await?.iter().any(|p| p.admin) {
        return Ok(());
    }
    Err(Error::Internal(
        "required record Principal (an admin principal) is missing from an initialised data directory; refusing to \
         start"
            .into(),
    ))
}

#[cfg(test)]
mod tests;
