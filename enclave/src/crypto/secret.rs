//! Secret types: zeroized on drop, no `Clone`, no `Serialize`, a `Debug` that shows only the type name, and access
//! through a greppable `expose_secret()`.

use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A 256-bit symmetric secret: the domain key or a backing key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Key256([u8; 32]);

impl Key256 {
    /// Fresh random key from the OS random source (seeded by the NSM inside an enclave).
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k)?;
        Ok(Self(k))
    }

    /// Takes ownership of an array (moved, not copied, into the zeroizing wrapper).
    pub fn from_array(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Copies bytes; the caller's copy should be a `Zeroizing` buffer.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// The raw key. Every use is a place where key material is handled.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Key256 {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Key256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key256(..)")
    }
}

/// A secret string (a secret access key).
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a string.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The secret. Every use is a place where the secret is handled.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(..)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let k = Key256::from_slice(&[0x41; 32]).unwrap();
        assert_eq!(format!("{k:?}"), "Key256(..)");
        let s = SecretString::new("hunter2hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn generate_differs_and_compares_in_constant_time() {
        let a = Key256::generate().unwrap();
        let b = Key256::generate().unwrap();
        assert!(a != b);
        assert!(a == Key256::from_slice(a.expose_secret()).unwrap());
        assert!(Key256::from_slice(&[0; 31]).is_none());
    }
}
