//! The preface the host writes at the start of every relayed client connection, before the raw TLS bytes:
//! `b"EKP1" ‖ u8 length ‖ peer address (UTF-8, at most 255 bytes)`.
//!
//! The peer address is informational (logging, a future source-address condition); the enclave never trusts it for
//! authentication, since the host writes it.

/// Magic and version of the preface. Wire constant.
pub const MAGIC: [u8; 4] = *b"EKP1";

/// Bytes before the peer address: magic and the length byte.
pub const HEADER_LEN: usize = 5;

/// Why a preface was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrefaceError {
    /// The stream does not start with [`MAGIC`].
    #[error("bad preface magic")]
    BadMagic,
    /// The peer address is not UTF-8.
    #[error("peer address is not UTF-8")]
    NotUtf8,
    /// The peer address is longer than 255 bytes.
    #[error("peer address too long")]
    TooLong,
}

/// Encodes the preface for `peer`.
pub fn encode(peer: &str) -> Result<Vec<u8>, PrefaceError> {
    let len = u8::try_from(peer.len()).map_err(|_| PrefaceError::TooLong)?;
    let mut out = Vec::with_capacity(HEADER_LEN + peer.len());
    out.extend_from_slice(&MAGIC);
    out.push(len);
    out.extend_from_slice(peer.as_bytes());
    Ok(out)
}

/// Checks the header and returns the length of the peer address that follows.
pub fn peer_len(header: [u8; HEADER_LEN]) -> Result<usize, PrefaceError> {
    let [a, b, c, d, len] = header;
    if [a, b, c, d] != MAGIC {
        return Err(PrefaceError::BadMagic);
    }
    Ok(usize::from(len))
}

/// Decodes the peer address bytes.
pub fn peer(bytes: &[u8]) -> Result<&str, PrefaceError> {
    std::str::from_utf8(bytes).map_err(|_| PrefaceError::NotUtf8)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_golden() {
        let p = encode("127.0.0.1:5").unwrap();
        assert_eq!(&p[..5], b"EKP1\x0b");
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&p[..HEADER_LEN]);
        let n = peer_len(h).unwrap();
        assert_eq!(peer(&p[HEADER_LEN..HEADER_LEN + n]).unwrap(), "127.0.0.1:5");
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(peer_len(*b"\x16\x03\x01\x02\x00"), Err(PrefaceError::BadMagic));
        assert_eq!(peer(&[0xff, 0xfe]), Err(PrefaceError::NotUtf8));
        assert_eq!(encode(&"x".repeat(256)), Err(PrefaceError::TooLong));
    }
}
