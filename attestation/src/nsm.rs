//! The NSM interface: what the enclave asks of the Nitro Secure Module, and the hardware implementation over
//! `/dev/nsm`. The simulated NSM lives in `sim.rs` (feature `simulator`).

use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver;
use serde_bytes::ByteBuf;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// Path of the Nitro Secure Module device inside an enclave.
pub const NSM_DEVICE: &str = "/dev/nsm";

/// Largest `user_data` the NSM accepts in an attestation request, in bytes (AWS's documented limit).
pub(crate) const MAX_REQUEST_USER_DATA_LEN: usize = 512;
/// Largest `nonce` the NSM accepts in an attestation request, in bytes (AWS's documented limit).
pub(crate) const MAX_REQUEST_NONCE_LEN: usize = 512;
/// Largest `public_key` the NSM accepts in an attestation request, in bytes; it must not be empty.
pub(crate) const MAX_REQUEST_PUBLIC_KEY_LEN: usize = 1024;

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
    /// An attestation request field is outside the NSM's limits (`user_data` and `nonce` at most 512 bytes,
    /// `public_key` 1 to 1024 bytes); refused before reaching the NSM.
    #[error("attestation request field {field} has {len} bytes, outside the NSM's limits")]
    RequestLimit {
        /// `user_data`, `nonce` or `public_key`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
}

/// What the enclave asks of the NSM.
pub trait Nsm: Send + Sync {
    /// Fills `out` with random bytes from the NSM's entropy source.
    fn fill_random(&self, out: &mut [u8]) -> Result<(), NsmError>;
    /// Whether this is the simulator (insecure).
    fn is_simulated(&self) -> bool;
    /// A COSE_Sign1 attestation document (untagged, as the NSM emits it) binding the given fields. `user_data` and
    /// `nonce` may hold at most 512 bytes, `public_key` 1 to 1024 bytes ([`NsmError::RequestLimit`] otherwise).
    fn attestation(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError>;
    /// The value of PCR `index`.
    fn describe_pcr(&self, index: u16) -> Result<Vec<u8>, NsmError>;
    /// The trust anchor that documents of this world chain to: the AWS Nitro root on Nitro, the simulator's root in
    /// simulator mode. The enclave verifies its callers' documents (the Recipient parameter) against it, so that a
    /// production enclave never accepts a simulated document and a simulator only its own PKI's.
    fn trust_anchor(&self) -> Result<crate::TrustAnchor, crate::AttestError>;
}

/// Refuses attestation request fields outside the NSM's limits, so the simulator refuses exactly what the hardware
/// refuses.
pub(crate) fn check_request_limits(
    user_data: Option<&[u8]>,
    nonce: Option<&[u8]>,
    public_key: Option<&[u8]>,
) -> Result<(), NsmError> {
    if let Some(u) = user_data
        && u.len() > MAX_REQUEST_USER_DATA_LEN
    {
        return Err(NsmError::RequestLimit { field: "user_data", len: u.len() });
    }
    if let Some(n) = nonce
        && n.len() > MAX_REQUEST_NONCE_LEN
    {
        return Err(NsmError::RequestLimit { field: "nonce", len: n.len() });
    }
    if let Some(k) = public_key
        && (k.is_empty() || k.len() > MAX_REQUEST_PUBLIC_KEY_LEN)
    {
        return Err(NsmError::RequestLimit { field: "public_key", len: k.len() });
    }
    Ok(())
}

/// The hardware NSM, over `/dev/nsm`. Requests are serialized: one at a time on the device.
pub struct NitroNsm {
    fd: i32,
    device: Mutex<()>,
}

impl std::fmt::Debug for NitroNsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NitroNsm").field("fd", &self.fd).finish()
    }
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
        Ok(Self { fd, device: Mutex::new(()) })
    }

    /// One request to the device, under the device lock.
    fn process(&self, request: Request) -> Response {
        let _device = self.device.lock().unwrap_or_else(PoisonError::into_inner);
        driver::nsm_process_request(self.fd, request)
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
            match self.process(Request::GetRandom) {
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

    fn attestation(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        check_request_limits(user_data, nonce, public_key)?;
        let request = Request::Attestation {
            user_data: user_data.map(ByteBuf::from),
            nonce: nonce.map(ByteBuf::from),
            public_key: public_key.map(ByteBuf::from),
        };
        match self.process(request) {
            Response::Attestation { document } if !document.is_empty() => Ok(document),
            Response::Error(code) => Err(NsmError::Request(format!("{code:?}"))),
            _ => Err(NsmError::Request("unexpected response to Attestation".into())),
        }
    }

    fn trust_anchor(&self) -> Result<crate::TrustAnchor, crate::AttestError> {
        crate::TrustAnchor::aws_nitro()
    }

    fn describe_pcr(&self, index: u16) -> Result<Vec<u8>, NsmError> {
        match self.process(Request::DescribePCR { index }) {
            Response::DescribePCR { lock: _, data } => Ok(data),
            Response::Error(code) => Err(NsmError::Request(format!("{code:?}"))),
            _ => Err(NsmError::Request("unexpected response to DescribePCR".into())),
        }
    }
}

#[cfg(test)]
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
    fn request_limits() {
        let big = vec![0u8; 513];
        let ok = vec![0u8; 512];
        let key = vec![1u8; 1024];
        assert!(check_request_limits(None, None, None).is_ok());
        assert!(check_request_limits(Some(&ok), Some(&ok), Some(&key)).is_ok());
        assert!(check_request_limits(Some(&[]), Some(&[]), Some(&[1])).is_ok());
        assert!(matches!(
            check_request_limits(Some(&big), None, None),
            Err(NsmError::RequestLimit { field: "user_data", len: 513 })
        ));
        assert!(matches!(
            check_request_limits(None, Some(&big), None),
            Err(NsmError::RequestLimit { field: "nonce", len: 513 })
        ));
        assert!(matches!(
            check_request_limits(None, None, Some(&[])),
            Err(NsmError::RequestLimit { field: "public_key", len: 0 })
        ));
        assert!(matches!(
            check_request_limits(None, None, Some(&[0u8; 1025])),
            Err(NsmError::RequestLimit { field: "public_key", len: 1025 })
        ));
    }
}
