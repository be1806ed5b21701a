//! The enclave's storage channel and sealed-record store (enclave state/store.rs) reading whatever the host answers.
//! The input is the host's byte stream, in up to three segments separated by `FRAG`: after the enclave's k-th
//! request the host writes segment k, and closes the stream after the last. Invariants: every call returns (a
//! malformed, missing or late answer fails the call: no hang, no panic), and no Get or List ever hands over a record
//! the enclave did not seal itself (the fuzzer holds no domain key, so nothing may open).
#![no_main]
use kms_enclave::crypto::secret::Key256;
use kms_enclave::state::store::{Channel, Records};
use kms_shared::frame;
use kms_shared::storage::RecordKind;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn segments(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < 2 {
        match rest.windows(4).position(|w| w == b"FRAG") {
            Some(i) => {
                out.push(rest[..i].to_vec());
                rest = &rest[i + 4..];
            }
            None => break,
        }
    }
    out.push(rest.to_vec());
    out
}

fuzz_target!(|data: &[u8]| {
    let rt = kms_fuzz::runtime();
    rt.block_on(async {
        let (enclave, mut host) = tokio::io::duplex(1 << 16);
        let (channel, _dead) = Channel::start(enclave);
        let records = Records::new(channel, Key256::from_array([7u8; 32]));
        let answers = segments(data);
        tokio::spawn(async move {
            for segment in answers {
                let mut h = [0u8; frame::HEADER_LEN];
                if host.read_exact(&mut h).await.is_err() {
                    return;
                }
                let Ok(len) = frame::body_len(h) else { return };
                let mut body = vec![0u8; len];
                if host.read_exact(&mut body).await.is_err() {
                    return;
                }
                if host.write_all(&segment).await.is_err() {
                    return;
                }
            }
            let _ = host.shutdown().await;
        });
        let got = records.get(RecordKind::Key, "1234abcd-12ab-34cd-56ef-1234567890ab").await;
        assert!(!matches!(got, Ok(Some(_))), "a record the enclave never sealed was accepted");
        if let Ok(l) = records.list(RecordKind::Alias, None, 10).await {
            assert!(l.records.is_empty(), "a listed record the enclave never sealed was accepted");
        }
        let _ = records.put(RecordKind::Alias, "alias/x", None, b"body").await;
    });
});
