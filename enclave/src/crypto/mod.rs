//! Cryptography: the ciphertext blob and sealed-record formats, asymmetric and HMAC key material, secret types, and
//! encryption to an attested recipient.

pub mod asym;
pub mod blob;
pub mod keygen;
pub mod recipient;
pub mod secret;
