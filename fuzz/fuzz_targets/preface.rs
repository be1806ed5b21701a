//! The connection preface the host writes before the client's TLS bytes (shared/src/preface.rs).
//! Invariants: the header is accepted iff it starts with the magic; the length it announces is the length byte; a
//! peer address that decodes re-encodes to exactly the bytes it came from.
#![no_main]
use kms_shared::preface::{self, HEADER_LEN, MAGIC, PrefaceError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<HEADER_LEN>() else {
        return;
    };
    match preface::peer_len(*head) {
        Ok(n) => {
            assert_eq!(head[..4], MAGIC);
            assert_eq!(n, usize::from(head[4]));
            let Some(addr) = rest.get(..n) else { return };
            match preface::peer(addr) {
                Ok(peer) => {
                    let again = preface::encode(peer).expect("a decoded peer re-encodes");
                    assert_eq!(&again[..HEADER_LEN], &head[..]);
                    assert_eq!(&again[HEADER_LEN..], addr);
                }
                Err(e) => {
                    assert_eq!(e, PrefaceError::NotUtf8);
                    assert!(std::str::from_utf8(addr).is_err());
                }
            }
        }
        Err(e) => {
            assert_eq!(e, PrefaceError::BadMagic);
            assert_ne!(head[..4], MAGIC);
        }
    }
});
