//! Storage frames and messages as the host sends them (shared/src/frame.rs, storage.rs).
//! Invariants: the header is accepted only within the limit and for version 1, and then announces `length - 1`;
//! a body that decodes re-encodes into a frame whose header announces its body and which decodes to the same value
//! (for the host's answers and, since the host decodes them, the enclave's requests); `validate` never panics.
#![no_main]
use kms_shared::frame::{self, FrameError, HEADER_LEN, MAX_FRAME_LEN, PROTOCOL_VERSION};
use kms_shared::storage::{EnclaveMessage, HostMessage, StorageReply};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(body: &[u8]) -> Option<T> {
    let value: T = frame::decode(body).ok()?;
    let encoded = frame::encode(&value).expect("a decoded message re-encodes");
    let head: [u8; HEADER_LEN] = encoded[..HEADER_LEN].try_into().unwrap();
    assert_eq!(frame::body_len(head), Ok(encoded.len() - HEADER_LEN));
    let again: T = frame::decode(&encoded[HEADER_LEN..]).expect("a re-encoded message decodes");
    assert_eq!(again, value);
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    if let Some((head, _)) = data.split_first_chunk::<HEADER_LEN>() {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match frame::body_len(*head) {
            Ok(n) => {
                assert!(len >= 1 && len <= MAX_FRAME_LEN && head[4] == PROTOCOL_VERSION);
                assert_eq!(n, len - 1);
            }
            Err(FrameError::Empty) => assert_eq!(len, 0),
            Err(FrameError::TooLarge(n)) => assert!(n == len && len > MAX_FRAME_LEN),
            Err(FrameError::UnsupportedVersion(v)) => assert!(v == head[4] && v != PROTOCOL_VERSION),
            Err(e) => panic!("unexpected header error {e:?}"),
        }
    }
    if let Some(msg) = round_trip::<HostMessage>(data) {
        if let Ok(StorageReply::Listed { records, .. }) = &msg.result {
            let _ = records.len();
        }
    }
    if let Some(msg) = round_trip::<EnclaveMessage>(data) {
        let _ = msg.op.validate();
    }
});
