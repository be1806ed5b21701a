//! The connection preface the host writes before the client's TLS bytes (shared/src/preface.rs).
//! Invariants: the header is accepted iff it starts with the magic; the length it announces is the length byte; a
//! peer address that decodes re-encodes to exactly the bytes it came from; `header` agrees with `peer_len` on client
//! prefaces and reads a drain request only from exactly `EKD1 0`.
#![no_main]
use kms_shared::preface::{self, DRAIN_MAGIC, HEADER_LEN, Header, MAGIC, PrefaceError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<HEADER_LEN>() else {
        return;
    };
    match preface::header(*head) {
        Ok(Header::Peer(n)) => assert_eq!(preface::peer_len(*head), Ok(n)),
        Ok(Header::Drain) => assert_eq!(*head, preface::encode_drain()),
        Err(e) => {
            assert_eq!(e, PrefaceError::BadMagic);
            assert!(head[..4] != MAGIC && (head[..4] != DRAIN_MAGIC || head[4] != 0));
        }
    }
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
