//! The `quorum` domain-key source: the domain key split M-of-N among operators (Shamir), sealed start and unsealing.

pub mod descriptor;
pub mod hpke;
pub mod sealed;
pub mod shamir;
pub mod unseal;
