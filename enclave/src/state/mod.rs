//! State and storage: the records behind the API (keys, aliases, ids), their bounded caches, and the one door to the
//! host's storage, where every byte is authenticated before use.

pub mod aliases;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fake_host;
pub mod highwater;
pub mod ids;
pub mod keys;
pub mod store;
