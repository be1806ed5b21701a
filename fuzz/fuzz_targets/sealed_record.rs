//! Sealed records as the host hands them back (enclave crypto/blob.rs `open_record`).
//! Input: a kind (2 bytes), a version (1 byte), an id length (1 byte), the id, then the bytes the host claims are the
//! record. Invariants: bytes the enclave did not seal never open; a record sealed from the same bytes opens to exactly
//! them under its own kind, id and version, and under no other; flipping any one byte or cutting it fails.
#![no_main]
use kms_enclave::crypto::blob::{open_record, seal_record};
use kms_enclave::crypto::secret::Key256;
use kms_shared::storage::RecordKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [k0, k1, ver, id_len, rest @ ..] = data else { return };
    let Ok(kind) = RecordKind::try_from(u16::from_be_bytes([*k0, *k1]) % 9) else { return };
    let version = u64::from(*ver);
    let Some((id, sealed)) = rest.split_at_checked(usize::from(*id_len)) else { return };
    let Ok(id) = std::str::from_utf8(id) else { return };
    let key = Key256::from_array([7u8; 32]);

    assert!(open_record(&key, kind, id, version, sealed).is_err(), "bytes the enclave never sealed opened");

    let body = sealed;
    let real = seal_record(&key, kind, id, version, body).expect("sealing works");
    assert_eq!(&open_record(&key, kind, id, version, &real).expect("a sealed record opens")[..], body);
    assert!(open_record(&key, kind, id, version.wrapping_add(1), &real).is_err(), "replayed as another version");
    assert!(open_record(&key, kind, &format!("{id}x"), version, &real).is_err(), "moved to another id");
    let other = if kind == RecordKind::Key { RecordKind::Alias } else { RecordKind::Key };
    assert!(open_record(&key, other, id, version, &real).is_err(), "moved to another kind");
    let at = usize::from(*id_len) % real.len();
    let mut flipped = real.clone();
    flipped[at] ^= 1 << (ver % 8);
    assert!(open_record(&key, kind, id, version, &flipped).is_err(), "a flipped byte {at} opened");
    assert!(open_record(&key, kind, id, version, &real[..real.len() - 1 - at % 16]).is_err(), "a cut record opened");
    assert!(open_record(&Key256::from_array([8u8; 32]), kind, id, version, &real).is_err(), "opened under another key");
});
