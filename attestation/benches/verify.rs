//! Verifier::verify on a real document at its own time: cold (a new Verifier each time, so the chain is verified:
//! four certificate signatures plus the COSE one) and warm (the chain comes from the cache: the COSE signature only).
//!
//! `cargo bench -p kms-attestation --bench verify -- --warm-up-time 1 --measurement-time 3`; documents/s = 1 / time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kms_attestation::{PcrPolicy, TimeRule, TrustAnchor, Verifier};
use std::hint::black_box;

const DOC: &[u8] = include_bytes!("../tests/vectors/blocky-nitrite-2024-09-07.cbor");

fn bench(c: &mut Criterion) {
    let anchor = TrustAnchor::aws_nitro().unwrap();
    let policy = PcrPolicy::new();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));

    group.bench_function("cold", |b| {
        b.iter(|| {
            let verifier = Verifier::new(anchor.clone());
            verifier.verify(black_box(DOC), &policy, None, TimeRule::DocumentTime).unwrap()
        })
    });

    let verifier = Verifier::new(anchor.clone());
    verifier.verify(DOC, &policy, None, TimeRule::DocumentTime).unwrap();
    group.bench_function("warm", |b| {
        b.iter(|| verifier.verify(black_box(DOC), &policy, None, TimeRule::DocumentTime).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
