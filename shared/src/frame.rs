//! Frames of the storage channel: `u32 length (big endian) ‖ u8 version ‖ CBOR body`.
//!
//! `length` counts the version byte and the body. It is checked against [`MAX_FRAME_LEN`] before any buffer for the
//! body is allocated, and an unknown version is refused (default deny).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The only protocol version this build speaks. Wire constant: changing it is a protocol change.
pub const PROTOCOL_VERSION: u8 = 1;

/// Largest accepted `length` field (version byte plus body), in bytes.
pub const MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Bytes before the body: the 4-byte length and the version byte.
pub const HEADER_LEN: usize = 5;

/// Deepest CBOR nesting a frame body may have.
const MAX_CBOR_DEPTH: usize = 32;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The length field is larger than [`MAX_FRAME_LEN`] (or the body to encode would be).
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(usize),
    /// The length field is zero: not even a version byte follows.
    #[error("empty frame")]
    Empty,
    /// The version byte names a protocol this build does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The body is not valid CBOR for the expected message, or has trailing bytes.
    #[error("malformed frame body: {0}")]
    Malformed(String),
    /// The message could not be serialized.
    #[error("cannot encode frame: {0}")]
    Encode(String),
}

/// Reads a frame header and returns the length of the body that follows it.
///
/// The caller reads exactly that many bytes next; it may allocate them, since the limit was already checked.
pub fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let [a, b, c, d, version] = header;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    Ok(len - 1)
}

/// Encodes `message` as one complete frame, header included.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&[0, 0, 0, 0, PROTOCOL_VERSION]);
    ciborium::into_writer(message, &mut out).map_err(|e| FrameError::Encode(e.to_string()))?;
    let len = out.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    let len_bytes = u32::try_from(len).map_err(|_| FrameError::TooLarge(len))?.to_be_bytes();
    if let Some(head) = out.get_mut(..4) {
        head.copy_from_slice(&len_bytes);
    }
    Ok(out)
}

/// Decodes a frame body (the bytes after the header) into a message. Trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let mut reader = body;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_CBOR_DEPTH)
        .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !reader.is_empty() {
        return Err(FrameError::Malformed(format!("{} trailing bytes", reader.len())));
    }
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::storage::{EnclaveMessage, RecordKind, SealedBlob, StorageOp};
    use proptest::prelude::*;

    fn split(frame: &[u8]) -> ([u8; HEADER_LEN], &[u8]) {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&frame[..HEADER_LEN]);
        (h, &frame[HEADER_LEN..])
    }

    #[test]
    fn round_trip() {
        let msg = EnclaveMessage {
            id: 7,
            op: StorageOp::Put {
                kind: RecordKind::Key,
                id: "abc".into(),
                version: 2,
                expected: Some(1),
                sealed: SealedBlob(vec![1, 2, 3]),
            },
        };
        let frame = encode(&msg).unwrap();
        let (h, body) = split(&frame);
        assert_eq!(body_len(h).unwrap(), body.len());
        let back: EnclaveMessage = decode(body).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn golden_header() {
        let frame = encode(&0u8).unwrap();
        // length 2 (version + one CBOR byte), version 1, CBOR 0.
        assert_eq!(frame, vec![0, 0, 0, 2, 1, 0]);
    }

    #[test]
    fn rejects_oversize_empty_and_unknown_version() {
        let big = u32::try_from(MAX_FRAME_LEN + 1).unwrap().to_be_bytes();
        assert_eq!(
            body_len([big[0], big[1], big[2], big[3], PROTOCOL_VERSION]),
            Err(FrameError::TooLarge(MAX_FRAME_LEN + 1))
        );
        assert_eq!(body_len([0, 0, 0, 0, PROTOCOL_VERSION]), Err(FrameError::Empty));
        assert_eq!(body_len([0, 0, 0, 5, 9]), Err(FrameError::UnsupportedVersion(9)));
    }

    #[test]
    fn rejects_trailing_bytes_and_garbage() {
        let frame = encode(&5u32).unwrap();
        let mut body = frame[HEADER_LEN..].to_vec();
        body.push(0);
        assert!(matches!(decode::<u32>(&body), Err(FrameError::Malformed(_))));
        assert!(decode::<EnclaveMessage>(&[0xff, 0xff, 0x00]).is_err());
        assert!(decode::<EnclaveMessage>(&[]).is_err());
    }

    #[test]
    fn rejects_deep_nesting() {
        // 1000 nested one-element arrays.
        let mut body = vec![0x81u8; 1000];
        body.push(0);
        assert!(decode::<ciborium::Value>(&body).is_err());
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<EnclaveMessage>(&bytes);
            let _ = decode::<crate::storage::HostMessage>(&bytes);
        }

        #[test]
        fn truncations_fail(cut in 0usize..40) {
            let msg = EnclaveMessage { id: 1, op: StorageOp::Get { kind: RecordKind::Alias, id: "alias/x".into() } };
            let frame = encode(&msg).unwrap();
            let body = &frame[HEADER_LEN..];
            prop_assume!(cut < body.len());
            prop_assert!(decode::<EnclaveMessage>(&body[..cut]).is_err());
        }
    }
}
