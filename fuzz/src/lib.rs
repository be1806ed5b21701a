//! What the fuzz targets share: an enclave [`Service`] over the in-memory fake host, started from one stored state
//! (keys of every kind, behind fixed aliases) that each input gets a private copy of, and the host's Recipient opener
//! compiled in from `host/src` (the host crate is a binary).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../../host/src/files.rs"]
#[allow(dead_code)]
mod files;
#[path = "../../host/src/open_recipient.rs"]
#[allow(dead_code)]
mod open_recipient;

/// A workload's private key as the host's opener reads it (PKCS#8, RSA or P-384).
pub struct OpenerKey(open_recipient::WorkloadKey);

/// The host's opener: parses a workload private key.
pub fn opener_key(pkcs8: &[u8]) -> Result<OpenerKey, String> {
    open_recipient::parse_private_key(pkcs8).map(OpenerKey)
}

/// The host's opener: CMS EnvelopedData (RSA keys only).
pub fn open_cms(key: &OpenerKey, input: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    match &key.0 {
        open_recipient::WorkloadKey::Rsa(k) => open_recipient::open_cms(k, input),
        open_recipient::WorkloadKey::P384(_) => Err("not an RSA key".into()),
    }
}

/// The host's opener: the HPKE extension (P-384 keys only), bound to the document whose SHA-384 is given and to
/// `aad` (the KeyId and CiphertextBlob of the request).
pub fn open_hpke(
    key: &OpenerKey,
    document_sha384: &[u8],
    aad: &[u8],
    input: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    match &key.0 {
        open_recipient::WorkloadKey::P384(k) => open_recipient::open_hpke(k, document_sha384, aad, input),
        open_recipient::WorkloadKey::Rsa(_) => Err("not a P-384 key".into()),
    }
}

use kms_attestation::{Nsm, SimNsm, SimPki, TrustAnchor};
use kms_enclave::access::principals::Caller;
use kms_enclave::cmd;
use kms_enclave::error::Error;
use kms_enclave::service::{Clock, Service, TlsBinding};
use kms_enclave::state::fake_host::FakeHost;
use kms_enclave::state::ids::Scope;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The simulator PKI every target uses (fixed, so seeds and crashes reproduce). INSECURE by design: test material,
/// written by `cargo run --bin gen_seeds`.
pub const SIM_PKI_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sim-pki.pem");

/// A fresh single-threaded runtime. One per input: dropping it ends every task the input started (the fake host's
/// channel tasks would otherwise pile up across millions of inputs). Its clock is paused and jumps ahead whenever
/// every task waits, so a timeout the input provokes (a host that never answers) costs no wall time and the result
/// does not depend on the machine's speed.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// The fixed simulator PKI.
pub fn sim_pki() -> SimPki {
    SimPki::from_pem_bundle(&std::fs::read_to_string(SIM_PKI_PATH).unwrap()).unwrap()
}

/// The stored state inputs start from.
pub struct World {
    template: FakeHost,
    nsm: Arc<dyn Nsm>,
    anchor: TrustAnchor,
    admin_arn: String,
    admin_akid: String,
    /// Secret of the admin access key (for the HTTP target's signed seeds).
    pub admin_secret: String,
    /// The key id behind `alias/external` (the import operations take a key id or key ARN only, as AWS's do).
    pub external_key_id: String,
    /// Import parameters of `alias/external`: the sealed token and the RSA public key (DER).
    pub import_token: Vec<u8>,
    /// The key id behind `alias/external-ecc` (an ECC_NIST_P256 signing key with Origin EXTERNAL).
    pub ecc_key_id: String,
    /// Its import token and wrapping public key (SPKI DER), for RSAES_OAEP_SHA_256: the target wraps fuzzed
    /// "PKCS#8" under it, so the bytes reach the material checks behind the unwrapping.
    pub ecc_import_token: Vec<u8>,
    pub ecc_import_public: Vec<u8>,
    /// Key material wrapped under the import public key with RSAES_OAEP_SHA_256.
    pub wrapped_material: Vec<u8>,
    /// The plaintext material of [`World::wrapped_material`].
    pub material: [u8; 32],
}

/// Region and account of every ARN.
pub fn scope() -> Scope {
    Scope { region: "us-east-1".into(), account_id: "111122223333".into() }
}

/// The keys the stored state holds, by alias, with their CreateKey request.
pub const KEYS: &[(&str, &str)] = &[
    ("alias/sym", r#"{"Description":"symmetric"}"#),
    ("alias/hmac", r#"{"KeySpec":"HMAC_256","KeyUsage":"GENERATE_VERIFY_MAC"}"#),
    ("alias/sign", r#"{"KeySpec":"ECC_NIST_P256","KeyUsage":"SIGN_VERIFY"}"#),
    ("alias/agree", r#"{"KeySpec":"ECC_NIST_P256","KeyUsage":"KEY_AGREEMENT"}"#),
    ("alias/rsa", r#"{"KeySpec":"RSA_2048","KeyUsage":"ENCRYPT_DECRYPT"}"#),
    ("alias/external", r#"{"Origin":"EXTERNAL"}"#),
    ("alias/external-ecc", r#"{"Origin":"EXTERNAL","KeySpec":"ECC_NIST_P256","KeyUsage":"SIGN_VERIFY"}"#),
    ("alias/disabled", r#"{"Description":"disabled"}"#),
];

fn service_over(host: &FakeHost, nsm: Arc<dyn Nsm>, anchor: TrustAnchor) -> Service {
    let records = host.records();
    let clock = Arc::new(Clock::default());
    Service {
        nsm,
        binding: TlsBinding { leaf_spki: vec![0x30, 0x00], ca_sha384: vec![0u8; 48], settings_digest: vec![0u8; 48] },
        keys: kms_enclave::state::keys::Keyring::new(records.clone(), scope(), clock.clone(), 64),
        aliases: kms_enclave::state::aliases::Aliases::new(records.clone(), 64),
        credentials: kms_enclave::access::credentials::Credentials::new(records.clone()),
        principals: kms_enclave::access::principals::Principals::new(records.clone()),
        policies: kms_enclave::access::authz::PolicyCache::new(64),
        recipient_verifier: kms_attestation::Verifier::new(anchor),
        nonces: kms_enclave::crypto::recipient::nonce::NonceBook::new(records.derive_key(b"fuzz nonce MAC")),
        records,
        scope: scope(),
        clock,
        keygen: kms_enclave::crypto::keygen::KeygenGate::new(2, 2),
    }
}

async fn must(svc: &Service, caller: &Caller, target: &str, body: Value) -> Value {
    let out = cmd::dispatch(svc, Some(caller), target, body.to_string().as_bytes())
        .await
        .unwrap_or_else(|e| panic!("setup {target}: {e:?}"));
    serde_json::from_slice(&out).unwrap()
}

fn b64(v: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()
}

impl World {
    /// The world, built on first use (the targets build it in their `init`, where no per-input timeout applies: its
    /// RSA key generation takes seconds on a loaded machine).
    pub fn get() -> &'static World {
        static WORLD: OnceLock<World> = OnceLock::new();
        WORLD.get_or_init(World::build)
    }

    fn build() -> World {
        let pki = sim_pki();
        let anchor = TrustAnchor::simulator(&pki.root_der()).unwrap();
        let nsm: Arc<dyn Nsm> = Arc::new(SimNsm::new(pki, kms_attestation::simulated_pcrs(b"fuzz", false)));
        let template = FakeHost::default();
        let rt = runtime();
        rt.block_on(async {
            let svc = service_over(&template, nsm.clone(), anchor.clone());
            let admin_arn = svc.scope.user_arn("admin");
            svc.principals.create(&admin_arn, true, 0.0).await.unwrap();
            let (admin_akid, secret) = svc.credentials.create(&admin_arn, 0.0).await.unwrap();
            let admin_secret = secret.expose_secret().to_owned();
            let caller = caller(&svc, &admin_arn, &admin_akid).await;
            let mut ids = BTreeMap::new();
            for (alias, req) in KEYS {
                let made = must(&svc, &caller, "TrentService.CreateKey", serde_json::from_str(req).unwrap()).await;
                let id = made["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
                must(&svc, &caller, "TrentService.CreateAlias", json!({"AliasName": alias, "TargetKeyId": id})).await;
                ids.insert(*alias, id);
            }
            must(&svc, &caller, "TrentService.DisableKey", json!({"KeyId": ids["alias/disabled"]})).await;
            let params = must(
                &svc,
                &caller,
                "TrentService.GetParametersForImport",
                json!({"KeyId": ids["alias/external"], "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}),
            )
            .await;
            let ecc_params = must(
                &svc,
                &caller,
                "TrentService.GetParametersForImport",
                json!({"KeyId": ids["alias/external-ecc"], "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}),
            )
            .await;
            let import_token = b64(&params["ImportToken"]);
            let public = b64(&params["PublicKey"]);
            let material = [0x5au8; 32];
            let wrapped_material = wrap_oaep_sha256(&public, &material);
            World {
                template: template.clone(),
                nsm: nsm.clone(),
                anchor: anchor.clone(),
                admin_arn,
                admin_akid,
                admin_secret,
                external_key_id: ids["alias/external"].clone(),
                import_token,
                ecc_key_id: ids["alias/external-ecc"].clone(),
                ecc_import_token: b64(&ecc_params["ImportToken"]),
                ecc_import_public: b64(&ecc_params["PublicKey"]),
                wrapped_material,
                material,
            }
        })
    }

    /// A private copy of the stored state and a service over it, with the admin as caller. Call inside the input's
    /// runtime.
    pub async fn fresh(&self) -> (Arc<Service>, Caller) {
        let svc = service_over(&self.template.fork(), self.nsm.clone(), self.anchor.clone());
        let caller = caller(&svc, &self.admin_arn, &self.admin_akid).await;
        (Arc::new(svc), caller)
    }

    /// The admin access key id.
    pub fn admin_akid(&self) -> &str {
        &self.admin_akid
    }
}

async fn caller(svc: &Service, arn: &str, akid: &str) -> Caller {
    let credential = svc.credentials.get(akid).await.unwrap().unwrap();
    let principal = svc.principals.get(arn).await.unwrap().unwrap();
    Caller { principal, credential }
}

/// RSAES-OAEP-SHA256 encryption to an RSA public key (SubjectPublicKeyInfo DER), as a KMS client wraps key material.
pub fn wrap_oaep_sha256(spki_der: &[u8], plaintext: &[u8]) -> Vec<u8> {
    use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
    let key = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(spki_der).unwrap()).unwrap();
    let mut out = vec![0u8; key.ciphertext_size()];
    let n = key.encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None).unwrap().len();
    out.truncate(n);
    out
}

/// The invariant every answer to bad input keeps: an AWS-shaped client error, never an internal one (the fake host
/// answers honestly, so nothing but the input can have failed).
pub fn assert_client_error(target: &str, e: &Error) {
    let code = e.code();
    assert!(code.status() < 500, "{target}: input answered with {} ({}): {e:?}", code.name(), code.status());
    assert!(!code.name().is_empty() && !e.public_message().is_empty());
}
