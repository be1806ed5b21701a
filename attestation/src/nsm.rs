//! The NSM interface.

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver;
use std::path::Path;

/// Path of the Nitro Secure Module device inside an enclave.
pub const NSM_DEVICE: &str = "/dev/nsm";

/// Why the NSM could not serve a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NsmError {
    /// There is no NSM device: this is not a Nitro Enclave.
    #[error("{NSM_DEVICE} not found: not running inside a Nitro Enclave")]
    NoDevice,
    /// The device exists but could not be opened.
    #[error("cannot open {NSM_DEVICE}")]
    Open,
    /// The NSM answered with an error or an unexpected response.
    #[error("NSM request failed: {0}")]
    Request(String),
    /// The operating system's random source failed (simulator).
    #[error("random source failed")]
    Random,
}

/// What the enclave asks of the NSM.
pub trait Nsm: Send + Sync {
    /// Fills `out` with random bytes from the NSM's entropy source.
    fn fill_random(&self, out: &mut [u8]) -> Result<(), NsmError>;
    /// Whether this is the simulator (insecure).
    fn is_simulated(&self) -> bool;
}

/// The hardware NSM, over `/dev/nsm`.
pub struct NitroNsm {
    fd: i32,
}

impl NitroNsm {
    /// Opens `/dev/nsm`; fails where there is none, so production mode cannot start outside an enclave.
    pub fn open() -> Result<Self, NsmError> {
        if !Path::new(NSM_DEVICE).exists() {
            return Err(NsmError::NoDevice);
        }
        let fd = driver::nsm_init();
        if fd < 0 {
            return Err(NsmError::Open);
        }
        Ok(Self { fd })
    }
}

impl Drop for NitroNsm {
    fn drop(&mut self) {
        driver::nsm_exit(self.fd);
    }
}

impl Nsm for NitroNsm {
    fn fill_random(&self, out: &mut [u8]) -> Result<(), NsmError> {
        let mut filled = 0;
        while filled < out.len() {
            match driver::nsm_process_request(self.fd, Request::GetRandom) {
                Response::GetRandom { random } if !random.is_empty() => {
                    let rest = out.get_mut(filled..).ok_or_else(|| NsmError::Request("bounds".into()))?;
                    let n = rest.len().min(random.len());
                    if let (Some(dst), Some(src)) = (rest.get_mut(..n), random.get(..n)) {
                        dst.copy_from_slice(src);
                    }
                    filled += n;
                }
                Response::Error(code) => return Err(NsmError::Request(format!("{code:?}"))),
                _ => return Err(NsmError::Request("unexpected response to GetRandom".into())),
            }
        }
        Ok(())
    }

    fn is_simulated(&self) -> bool {
        false
    }
}

/// The simulated NSM. INSECURE: for development and tests only.
#[derive(Default)]
pub struct SimNsm;

impl Nsm for SimNsm {
    fn fill_random(&self, out: &mut [u8]) -> Result<(), NsmError> {
        getrandom::fill(out).map_err(|_| NsmError::Random)
    }

    fn is_simulated(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nitro_refuses_without_device() {
        if Path::new(NSM_DEVICE).exists() {
            return; // inside a real enclave the device is there; nothing to check
        }
        assert!(matches!(NitroNsm::open(), Err(NsmError::NoDevice)));
    }

    #[test]
    fn sim_random_fills_and_differs() {
        let nsm = SimNsm;
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        nsm.fill_random(&mut a).unwrap();
        nsm.fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        assert!(nsm.is_simulated());
    }
}
