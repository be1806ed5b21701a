//! The protocol between the untrusted host and the enclave of enclave-kms.
//!
//! This crate holds wire types and pure codecs over byte slices: the length-prefixed, versioned CBOR frames of the
//! storage channel ([`frame`], [`storage`]) and the short preface that opens each relayed client connection
//! ([`preface`]).
//!
//! It never does I/O, never reads a clock, never holds a secret and never performs cryptography: the host and the
//! enclave both link it, and nothing in it may give either side more than the bytes it is handed. Every decoder is
//! bounded and fallible; limits are checked before anything is allocated.

pub mod custody;
pub mod frame;
pub mod metrics;
pub mod preface;
pub mod quorum;
pub mod storage;
