//! The preface the host writes at the start of every relayed client connection, before the raw TLS bytes:
//! `b"EKP1" ‖ u8 length ‖ peer address (UTF-8, at most 255 bytes)`.
//!
//! The host may also open a connection whose whole content is the drain preface, `b"EKD1" ‖ 0`: it asks the enclave to
//! drain (answer `/healthz` with 503, close idle keep-alive connections, finish the requests in flight). The host can
//! stop relaying at any moment anyway, so a drain it asks for gives it nothing it lacks.
//!
//! The peer address is informational (logging, a future source-address condition); the enclave never trusts it for
//! authentication, since the host writes it.

/// Magic and version of the preface. Wire constant.
pub const MAGIC: [u8; 4] = *b"EKP1";

/// Magic of the drain preface (followed by a zero length byte and nothing else). Wire constant.
pub const DRAIN_MAGIC: [u8; 4] = *b"EKD1";

/// What a preface header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A relayed client connection: the peer address of this many bytes follows, then TLS.
    Peer(usize),
    /// The host asks the enclave to drain; nothing follows.
    Drain,
}

/// The drain preface.
pub fn encode_drain() -> [u8; HEADER_LEN] {
    let [a, b, c, d] = DRAIN_MAGIC;
    [a, b, c, d, 0]
}

/// Decodes a preface header: a relayed connection or a drain request.
pub fn header(header: [u8; HEADER_LEN]) -> Result<Header, PrefaceError> {
    let [a, b, c, d, len] = header;
    match [a, b, c, d] {
        MAGIC => Ok(Header::Peer(usize::from(len))),
        DRAIN_MAGIC if len == 0 => Ok(Header::Drain),
        _ => Err(PrefaceError::BadMagic),
    }
}

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
    fn drain_header() {
        assert_eq!(header(encode_drain()), Ok(Header::Drain));
        assert_eq!(&encode_drain(), b"EKD1\x00");
        assert_eq!(header(*b"EKD1\x01"), Err(PrefaceError::BadMagic));
        assert_eq!(header(*b"EKP1\x07"), Ok(Header::Peer(7)));
        // The plain peer decoder never mistakes a drain for a connection.
        assert_eq!(peer_len(encode_drain()), Err(PrefaceError::BadMagic));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(peer_len(*b"\x16\x03\x01\x02\x00"), Err(PrefaceError::BadMagic));
        assert_eq!(peer(&[0xff, 0xfe]), Err(PrefaceError::NotUtf8));
        assert_eq!(encode(&"x".repeat(256)), Err(PrefaceError::TooLong));
    }
}
