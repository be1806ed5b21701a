//! Nitro attestation for enclave-kms: the interface to the Nitro Secure Module (NSM), on hardware and simulated.
//!
//! The enclave asks the NSM for what only the NSM can give. [`NitroNsm`] talks to `/dev/nsm` through
//! `aws-nitro-enclaves-nsm-api`; [`SimNsm`] stands in for it in simulator mode, which is insecure by design and is
//! never accepted in production mode.
//!
//! This crate never holds KMS key material and never performs I/O beyond the NSM device.

mod nsm;

pub use nsm::{NitroNsm, Nsm, NsmError, SimNsm};
