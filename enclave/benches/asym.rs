//! Sign, verify and decrypt per key spec, through `kms_enclave::crypto::asym` (aws-lc-rs).
//!
//! `cargo bench -p kms-enclave --bench asym -- --warm-up-time 1 --measurement-time 3`; operations/s = 1 / time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kms_enclave::crypto::asym::{self, EncryptionAlgorithm, MessageType, PAIR_SPECS, PrivateKey};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let msg = [0x5au8; 256];
    for spec in PAIR_SPECS {
        let g = asym::generate_pair(spec).unwrap();
        let key = PrivateKey::from_pkcs8(spec, &g.private_pkcs8).unwrap();
        let alg = spec.signing_algorithms()[0];
        let mut group = c.benchmark_group(spec.name());
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("sign {}", alg.name()), |b| {
            b.iter(|| key.sign(alg, MessageType::Raw, black_box(&msg)).unwrap())
        });
        let sig = key.sign(alg, MessageType::Raw, &msg).unwrap();
        group.bench_function(format!("verify {}", alg.name()), |b| {
            b.iter(|| assert!(key.verify(alg, MessageType::Raw, black_box(&msg), &sig).unwrap()))
        });
        if spec.is_rsa() {
            let enc = EncryptionAlgorithm::RsaesOaepSha256;
            let ct = asym::encrypt(key.public_key_der(), enc, &msg[..32]).unwrap();
            group
                .bench_function("decrypt RSAES_OAEP_SHA_256", |b| b.iter(|| key.decrypt(enc, black_box(&ct)).unwrap()));
        }
        if spec.supports_key_agreement() {
            let peer = asym::generate_pair(spec).unwrap();
            group.bench_function("derive shared secret", |b| {
                b.iter(|| key.derive_shared_secret(black_box(&peer.public_spki)).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
