//! Attestation documents (attestation crate `verify`): what a caller sends as a Recipient, and what a client checks.
//! Seeds: real Nitro documents (/work/shared/vectors/nitro) and simulator documents from the fixed PKI.
//! Invariants: verification never panics; a document verifies only if it carries exactly the attested content of a
//! known genuine document (module, time, PCRs, public key, user data, nonce), since the fuzzer cannot sign; a
//! verified document is refused when another nonce is required, and when its PCR0 is required to be different.
#![no_main]
use kms_attestation::{PcrPolicy, TimeRule, TrustAnchor, VerifiedAttestation, verify};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

type Content = (String, u64, Vec<(u32, Vec<u8>)>, Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

fn content(v: &VerifiedAttestation) -> Content {
    (
        v.module_id().to_owned(),
        v.timestamp_ms(),
        v.pcrs().iter().map(|(i, p)| (*i, p.clone())).collect(),
        v.public_key().map(<[u8]>::to_vec),
        v.user_data().map(<[u8]>::to_vec),
        v.nonce().map(<[u8]>::to_vec),
    )
}

struct Setup {
    anchors: Vec<TrustAnchor>,
    genuine: Vec<Content>,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let anchors =
            vec![TrustAnchor::aws_nitro().unwrap(), TrustAnchor::simulator(&kms_fuzz::sim_pki().root_der()).unwrap()];
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/attestation-genuine");
        let mut genuine = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let doc = std::fs::read(entry.unwrap().path()).unwrap();
            let v = anchors
                .iter()
                .find_map(|a| verify(&doc, a, &PcrPolicy::new().allow_debug(), None, TimeRule::DocumentTime).ok())
                .expect("every genuine document verifies");
            genuine.push(content(&v));
        }
        assert!(genuine.len() >= 3);
        Setup { anchors, genuine }
    })
}

fuzz_target!(init: { setup(); }, |data: &[u8]| {
    let s = setup();
    for anchor in &s.anchors {
        let policy = PcrPolicy::new().allow_debug();
        let Ok(v) = verify(data, anchor, &policy, None, TimeRule::DocumentTime) else { continue };
        assert!(s.genuine.contains(&content(&v)), "a document with forged content verified: {v:?}");
        let other_nonce = [v.nonce().unwrap_or_default(), &b"x"[..]].concat();
        assert!(verify(data, anchor, &policy, Some(&other_nonce), TimeRule::DocumentTime).is_err());
        let pcr0 = v.pcr(0).map(|p| p.iter().map(|b| b ^ 1).collect()).unwrap_or_else(|| vec![1u8; 48]);
        assert!(verify(data, anchor, &policy.clone().expect(0, pcr0), None, TimeRule::DocumentTime).is_err());
        if v.is_debug() {
            assert!(verify(data, anchor, &PcrPolicy::new(), None, TimeRule::DocumentTime).is_err());
        }
    }
});
