//! Ciphertext blobs and Decrypt's crypto (enclave crypto/blob.rs `parse_blob_header`, `decrypt_blob`).
//! Input: a context (first byte: number of pairs; then NUL-separated keys and values), then the blob.
//! Invariants: the header parser accepts only a complete v1 blob and reads the key id and version at fixed offsets;
//! bytes that `encrypt_blob` did not produce never decrypt; an encryption of the same bytes decrypts to exactly them
//! under its own context and header, and not under another context; every one-byte flip and every cut fails.
#![no_main]
use kms_enclave::crypto::blob::{
    BLOB_FORMAT_V1, BLOB_OVERHEAD, BlobHeader, decrypt_blob, encrypt_blob, parse_blob_header,
};
use kms_enclave::crypto::secret::Key256;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fn context(data: &[u8]) -> (Option<BTreeMap<String, String>>, &[u8]) {
    let Some((&n, mut rest)) = data.split_first() else { return (None, data) };
    if n == 0 {
        return (None, rest);
    }
    let mut ctx = BTreeMap::new();
    for _ in 0..(n % 4) {
        let mut field = || {
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let s = String::from_utf8_lossy(&rest[..end]).into_owned();
            rest = rest.get(end + 1..).unwrap_or(&[]);
            s
        };
        let k = field();
        let v = field();
        ctx.insert(k, v);
    }
    (Some(ctx), rest)
}

fuzz_target!(|data: &[u8]| {
    let (ctx, blob) = context(data);
    let key = Key256::from_array([7u8; 32]);
    match parse_blob_header(blob) {
        Ok(h) => {
            assert!(blob.len() >= BLOB_OVERHEAD && blob[0] == BLOB_FORMAT_V1);
            assert_eq!(&h.key_id[..], &blob[1..17]);
            assert_eq!(h.key_version.to_be_bytes(), blob[17..21]);
        }
        Err(_) => assert!(blob.len() < BLOB_OVERHEAD || blob[0] != BLOB_FORMAT_V1),
    }
    assert!(decrypt_blob(&key, blob, ctx.as_ref()).is_err(), "bytes encrypt_blob never produced decrypted");

    let header = BlobHeader { key_id: [data.len() as u8; 16], key_version: data.len() as u32 };
    let real = encrypt_blob(&key, header, ctx.as_ref(), blob).expect("encryption works");
    assert_eq!(real.len(), blob.len() + BLOB_OVERHEAD);
    assert_eq!(parse_blob_header(&real), Ok(header));
    assert_eq!(&decrypt_blob(&key, &real, ctx.as_ref()).expect("a real blob decrypts")[..], blob);
    let mut other = ctx.clone().unwrap_or_default();
    let absent: String = other.keys().map(String::as_str).chain(["x"]).collect(); // longer than every key in it
    other.insert(absent, String::new());
    assert!(decrypt_blob(&key, &real, Some(&other)).is_err(), "decrypted under another context");
    let at = data.first().map_or(0, |&b| usize::from(b)) * 7 % real.len();
    let mut flipped = real.clone();
    flipped[at] ^= 0x80;
    assert!(decrypt_blob(&key, &flipped, ctx.as_ref()).is_err(), "a flipped byte {at} decrypted");
    assert!(decrypt_blob(&key, &real[..real.len() - 1], ctx.as_ref()).is_err(), "a cut blob decrypted");
});
