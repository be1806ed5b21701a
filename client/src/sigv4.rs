//! A small AWS Signature Version 4 (`AWS4-HMAC-SHA256`) signer for the client side.
//!
//! The caller passes the canonical pieces it sends on the wire (path already in canonical form, query already
//! canonical, header names in lower case); the signer sorts the headers, builds the canonical request and the string to
//! sign, and caches the derived signing key for the day it was derived for.

use core::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An access key pair. `Debug` does not print the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// Signs requests for one access key, region and service. Cheap to clone; each connection keeps its own copy so the
/// signing-key cache needs no lock.
#[derive(Clone)]
pub struct Signer {
    credentials: Credentials,
    region: String,
    service: String,
    /// `(YYYYMMDD, signing key)` of the last day signed for.
    cached: Option<(String, [u8; 32])>,
}

/// One request to sign.
pub struct Request<'a> {
    pub method: &'a str,
    /// Canonical URI (e.g. `/`).
    pub path: &'a str,
    /// Canonical query string (empty for none).
    pub query: &'a str,
    /// `(lower-case name, value)`; the signer sorts them. Every header passed is signed.
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: &'a [u8],
    /// `YYYYMMDDTHHMMSSZ`, as sent in `x-amz-date`.
    pub amz_date: &'a str,
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl Signer {
    pub fn new(credentials: Credentials, region: &str, service: &str) -> Self {
        Self { credentials, region: region.to_owned(), service: service.to_owned(), cached: None }
    }

    fn signing_key(&mut self, date: &str) -> [u8; 32] {
        if let Some((day, key)) = &self.cached
            && day == date
        {
            return *key;
        }
        let k_secret = format!("AWS4{}", self.credentials.secret_access_key);
        let k_date = hmac(k_secret.as_bytes(), date.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        let key = hmac(&k_service, b"aws4_request");
        self.cached = Some((date.to_owned(), key));
        key
    }

    /// Returns the value of the `Authorization` header for `req`.
    pub fn authorization(&mut self, req: &Request<'_>) -> String {
        let date = req.amz_date.get(..8).unwrap_or(req.amz_date);
        let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
        headers.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut canonical = String::with_capacity(256 + req.payload.len() / 8);
        let _ = write!(canonical, "{}\n{}\n{}\n", req.method, req.path, req.query);
        for (name, value) in &headers {
            let _ = writeln!(canonical, "{name}:{}", value.trim());
        }
        canonical.push('\n');
        let signed: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        let signed = signed.join(";");
        canonical.push_str(&signed);
        canonical.push('\n');
        canonical.push_str(&sha256_hex(req.payload));

        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!("{ALGORITHM}\n{}\n{scope}\n{}", req.amz_date, sha256_hex(canonical.as_bytes()));
        let key = self.signing_key(date);
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            self.credentials.access_key_id
        )
    }
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds (UTC).
pub fn amz_date(unix: u64) -> String {
    let t = i64::try_from(unix)
        .ok()
        .and_then(|u| time::OffsetDateTime::from_unix_timestamp(u).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_signer() -> Signer {
        Signer::new(
            Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            },
            "us-east-1",
            "iam",
        )
    }

    /// AWS's worked example ("Create a signed AWS API request", IAM ListUsers).
    #[test]
    fn aws_documented_example() {
        let mut signer = example_signer();
        let req = Request {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &[
                ("x-amz-date", "20150830T123600Z"),
                ("host", "iam.amazonaws.com"),
                ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
            ],
            payload: b"",
            amz_date: "20150830T123600Z",
        };
        let auth = signer.authorization(&req);
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
        // The cached key gives the same answer; AWS's documented signing key for that day.
        assert_eq!(signer.authorization(&req), auth);
        assert_eq!(
            hex::encode(signer.signing_key("20150830")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn signing_key_is_rederived_for_another_day() {
        let mut signer = example_signer();
        let a = signer.signing_key("20150830");
        let b = signer.signing_key("20150831");
        assert_ne!(a, b);
        assert_eq!(signer.signing_key("20150830"), a);
    }

    #[test]
    fn amz_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date(4_102_444_799), "20991231T235959Z");
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = Credentials { access_key_id: "AK".into(), secret_access_key: "SECRET".into() };
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
