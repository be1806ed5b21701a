//! Custody: what the host tells the enclave at start ([`BootConfig`], answered to `StorageOp::BootConfig`), and the
//! initialisation settings an enclave binds into its attestation documents ([`InitSettings`]).
//!
//! Everything in a [`BootConfig`] comes from the untrusted host. The enclave uses it only as input it checks: the
//! upstream is authenticated by certificate, the domain key by a check record, and the settings that decide who may
//! administer the enclave are published (their digest is in every attestation document) so operators detect a host
//! that initialised the enclave with its own keys.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest PEM text accepted for one public key or CA bundle.
pub const MAX_PEM_LEN: usize = 64 * 1024;
/// Most operator keys (quorum).
pub const MAX_OPERATORS: usize = 32;
/// Longest upstream endpoint, key id, region or credential field.
pub const MAX_FIELD_LEN: usize = 2048;

/// Where the domain key comes from. Wire numbers are protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(into = "u8", try_from = "u8")]
#[repr(u8)]
#[non_exhaustive]
pub enum DomainKeySource {
    /// Simulator sealing under a public label (INSECURE; simulator builds only).
    Local = 1,
    /// A data key of an upstream AWS-KMS-compatible service, released only to this enclave image.
    Upstream = 2,
    /// M-of-N operator shares.
    Quorum = 3,
}

impl DomainKeySource {
    /// The name used on command lines and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Upstream => "upstream",
            Self::Quorum => "quorum",
        }
    }
}

impl From<DomainKeySource> for u8 {
    fn from(s: DomainKeySource) -> u8 {
        s as u8
    }
}

impl TryFrom<u8> for DomainKeySource {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        Ok(match v {
            1 => Self::Local,
            2 => Self::Upstream,
            3 => Self::Quorum,
            other => return Err(format!("unknown domain-key source {other}")),
        })
    }
}

/// The host's start-up instructions (untrusted input).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct BootConfig {
    /// The domain-key source.
    pub source: DomainKeySource,
    /// Whether this start may create a new domain key (explicit initialisation).
    pub init: bool,
    /// PEM SubjectPublicKeyInfo of the first admin's key (P-384); read only at initialisation.
    pub admin_public_key: Option<String>,
    /// The upstream service, for [`DomainKeySource::Upstream`].
    pub upstream: Option<UpstreamConfig>,
    /// PEM SubjectPublicKeyInfo of each operator's key, in order ([`DomainKeySource::Quorum`]).
    pub operators: Vec<String>,
    /// Shares needed to unseal ([`DomainKeySource::Quorum`]); 0 otherwise.
    pub threshold: u32,
}

impl fmt::Debug for BootConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootConfig")
            .field("source", &self.source)
            .field("init", &self.init)
            .field("admin_public_key", &self.admin_public_key.is_some())
            .field("upstream", &self.upstream)
            .field("operators", &self.operators.len())
            .field("threshold", &self.threshold)
            .finish()
    }
}

/// How to reach the upstream service. The credentials are not secret from the host (it supplied them): the upstream's
/// key policy, conditioned on the enclave's attested measurements, is the gate.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// `https://HOST[:PORT]`.
    pub endpoint: String,
    /// The upstream key (ARN, key id or alias).
    pub key_id: String,
    /// The upstream's region (SigV4 scope).
    pub region: String,
    /// SigV4 access key id.
    pub access_key_id: String,
    /// SigV4 secret access key (redacted from `Debug`).
    pub secret_access_key: String,
    /// Session token of temporary credentials (instance role), if any.
    pub session_token: Option<String>,
    /// PEM CA certificates to trust instead of the compiled-in roots (honoured by simulator builds only).
    pub ca_pem: Option<String>,
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("endpoint", &self.endpoint)
            .field("key_id", &self.key_id)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl BootConfig {
    /// Checks the limits a well-formed configuration respects.
    pub fn validate(&self) -> Result<(), String> {
        let pem_ok = |p: &String| p.len() <= MAX_PEM_LEN;
        if !self.admin_public_key.as_ref().is_none_or(pem_ok) {
            return Err("admin public key too long".into());
        }
        if self.operators.len() > MAX_OPERATORS || !self.operators.iter().all(pem_ok) {
            return Err(format!("at most {MAX_OPERATORS} operator keys of at most {MAX_PEM_LEN} bytes"));
        }
        if let Some(u) = &self.upstream {
            let fields = [&u.endpoint, &u.key_id, &u.region, &u.access_key_id, &u.secret_access_key];
            if fields.iter().any(|f| f.is_empty() || f.len() > MAX_FIELD_LEN)
                || u.session_token.as_ref().is_some_and(|t| t.len() > 4 * MAX_FIELD_LEN)
                || !u.ca_pem.as_ref().is_none_or(pem_ok)
            {
                return Err("upstream configuration field empty or too long".into());
            }
        }
        Ok(())
    }
}

/// The initialisation settings an operator checks: what decides who can obtain the domain key or administer the
/// enclave. Public keys are DER SubjectPublicKeyInfo, so the digest does not depend on PEM formatting.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InitSettings {
    /// The domain-key source.
    pub source: DomainKeySource,
    /// The upstream key, as named at initialisation ([`DomainKeySource::Upstream`]).
    pub upstream_key_id: Option<String>,
    /// The first admin's public key; `None` when the admin key was handed to the host (local mode only).
    #[serde(with = "opt_bytes")]
    pub admin_public_key: Option<Vec<u8>>,
    /// Operator public keys in order ([`DomainKeySource::Quorum`]).
    pub operator_public_keys: Vec<serde_bytes::ByteBuf>,
    /// Shares needed to unseal (0 unless quorum).
    pub threshold: u32,
}

mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(serde_bytes::Bytes::new(b)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<serde_bytes::ByteBuf>::deserialize(d)?.map(serde_bytes::ByteBuf::into_vec))
    }
}

/// Domain separation of [`InitSettings::canonical`].
pub const SETTINGS_TAG: &[u8] = b"enclave-kms init settings v1";

impl InitSettings {
    /// The unambiguous byte string the settings digest (SHA-384) is computed over: the tag, then each field as a
    /// 4-byte big-endian length and its bytes (absent = length 0xFFFFFFFF), operators as a count then each key.
    pub fn canonical(&self) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, v: Option<&[u8]>) {
            match v {
                Some(b) => {
                    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX - 1).to_be_bytes());
                    out.extend_from_slice(b);
                }
                None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
            }
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(SETTINGS_TAG);
        field(&mut out, Some(self.source.name().as_bytes()));
        field(&mut out, self.upstream_key_id.as_deref().map(str::as_bytes));
        field(&mut out, self.admin_public_key.as_deref());
        out.extend_from_slice(&u32::try_from(self.operator_public_keys.len()).unwrap_or(u32::MAX).to_be_bytes());
        for k in &self.operator_public_keys {
            field(&mut out, Some(k));
        }
        out.extend_from_slice(&self.threshold.to_be_bytes());
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings() -> InitSettings {
        InitSettings {
            source: DomainKeySource::Upstream,
            upstream_key_id: Some("arn:aws:kms:us-east-1:111122223333:key/k".into()),
            admin_public_key: Some(vec![1, 2, 3]),
            operator_public_keys: vec![],
            threshold: 0,
        }
    }

    #[test]
    fn canonical_changes_with_every_field() {
        let base = settings().canonical();
        let mut s = settings();
        s.source = DomainKeySource::Quorum;
        assert_ne!(s.canonical(), base);
        let mut s = settings();
        s.upstream_key_id = None;
        assert_ne!(s.canonical(), base);
        let mut s = settings();
        s.admin_public_key = Some(vec![1, 2, 4]);
        assert_ne!(s.canonical(), base);
        let mut s = settings();
        s.threshold = 1;
        assert_ne!(s.canonical(), base);
        let mut s = settings();
        s.operator_public_keys = vec![serde_bytes::ByteBuf::from(vec![9])];
        assert_ne!(s.canonical(), base);
        assert_eq!(settings().canonical(), base, "deterministic");
    }

    #[test]
    fn source_wire_numbers() {
        for s in [DomainKeySource::Local, DomainKeySource::Upstream, DomainKeySource::Quorum] {
            assert_eq!(DomainKeySource::try_from(u8::from(s)).unwrap(), s);
        }
        assert!(DomainKeySource::try_from(0).is_err());
    }

    #[test]
    fn debug_redacts_the_secret_and_limits_hold() {
        let u = UpstreamConfig {
            endpoint: "https://127.0.0.1:1".into(),
            key_id: "k".into(),
            region: "us-east-1".into(),
            access_key_id: "AKIAX".into(),
            secret_access_key: "very-secret-value".into(),
            session_token: None,
            ca_pem: None,
        };
        let c = BootConfig {
            source: DomainKeySource::Upstream,
            init: true,
            admin_public_key: None,
            upstream: Some(u),
            operators: vec![],
            threshold: 0,
        };
        assert!(!format!("{c:?}").contains("very-secret-value"));
        assert!(c.validate().is_ok());
        let mut big = c.clone();
        big.admin_public_key = Some("x".repeat(MAX_PEM_LEN + 1));
        assert!(big.validate().is_err());
        let mut empty = c;
        if let Some(u) = empty.upstream.as_mut() {
            u.key_id.clear();
        }
        assert!(empty.validate().is_err());
    }
}
