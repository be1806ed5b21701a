//! SigV4 signing of the enclave's own requests (to the upstream KMS of `custody`), on the canonical-request code of
//! [`super::sigv4`]'s verification, so signing and verifying cannot disagree on canonicalisation.

use super::sigv4::{ALGORITHM, AuthError, canonical_request, hmac_sha256, parse_authorization, signing_key};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Credentials to sign with.
pub struct SigningCredentials<'a> {
    /// Access key id.
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Session token of temporary credentials (sent and signed as `x-amz-security-token`).
    pub session_token: Option<&'a str>,
}

/// `YYYYMMDDTHHMMSSZ` for Unix time `unix`.
pub fn amz_date(unix: u64) -> String {
    crate::calendar::iso8601(unix).chars().filter(|c| *c != '-' && *c != ':').collect()
}

fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), AuthError> {
    let v = HeaderValue::from_str(value).map_err(|_| AuthError::MissingAuthentication)?;
    Ok((HeaderName::from_static(name), v))
}

/// Signs a request: adds `x-amz-date` (and `x-amz-security-token`), then `authorization` over every header present.
/// `headers` must already hold `host` and whatever else is to be signed.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &Method,
    uri: &Uri,
    headers: &mut HeaderMap,
    body: &[u8],
    creds: &SigningCredentials<'_>,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Result<(), AuthError> {
    let date = amz_date.get(..8).ok_or(AuthError::MissingAuthentication)?;
    let (n, v) = header("x-amz-date", amz_date)?;
    headers.insert(n, v);
    if let Some(token) = creds.session_token {
        let (n, v) = header("x-amz-security-token", token)?;
        headers.insert(n, v);
    }
    headers.remove(http::header::AUTHORIZATION);
    let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let signed = names.join(";");
    let scope = format!("{date}/{region}/{service}/aws4_request");
    // The canonical request comes from the verifier's code, through an Authorization with a placeholder signature.
    let placeholder = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed}, Signature={}",
        creds.access_key_id,
        "0".repeat(64)
    );
    let mut probe = headers.clone();
    probe.insert(http::header::AUTHORIZATION, header("authorization", &placeholder)?.1);
    let canonical = {
        let auth = parse_authorization(&probe)?;
        canonical_request(&auth, method, uri, &probe, body)?
    };
    let string_to_sign = format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(&canonical)));
    let key = Zeroizing::new(signing_key(creds.secret_access_key.as_bytes(), date, region, service));
    let signature = hex::encode(hmac_sha256(&[&key[..]], string_to_sign.as_bytes()));
    let value = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key_id
    );
    headers.insert(http::header::AUTHORIZATION, header("authorization", &value)?.1);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::net::sigv4::{Expected, verify};

    #[test]
    fn aws_worked_example() {
        // AWS's documented example (IAM ListUsers, 2015-08-30T12:36:00Z).
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"));
        h.insert("host", HeaderValue::from_static("iam.amazonaws.com"));
        let creds = SigningCredentials {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token: None,
        };
        let uri: Uri = "/?Action=ListUsers&Version=2010-05-08".parse().unwrap();
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        sign(&Method::GET, &uri, &mut h, b"", &creds, "us-east-1", "iam", "20150830T123600Z").unwrap();
        assert_eq!(
            h.get("authorization").unwrap().to_str().unwrap(),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn a_signed_kms_call_verifies_and_a_changed_body_does_not() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8443"));
        h.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
        h.insert("x-amz-target", HeaderValue::from_static("TrentService.Decrypt"));
        let creds =
            SigningCredentials { access_key_id: "AKIAX", secret_access_key: "s3cret", session_token: Some("tok") };
        let uri: Uri = "/".parse().unwrap();
        let now = 1_700_000_000;
        sign(&Method::POST, &uri, &mut h, b"{}", &creds, "eu-west-1", "kms", &amz_date(now)).unwrap();
        assert!(h.get("x-amz-security-token").is_some());
        let auth = parse_authorization(&h).unwrap();
        let signed: Vec<&str> = auth.signed_headers().collect();
        assert!(signed.contains(&"x-amz-target") && signed.contains(&"x-amz-security-token"), "{signed:?}");
        let exp = Expected { region: "eu-west-1", service: "kms", max_skew_secs: 300 };
        assert!(verify(&auth, b"s3cret", &Method::POST, &uri, &h, b"{}", &exp, now).is_ok());
        assert!(verify(&auth, b"s3cret", &Method::POST, &uri, &h, b"{ }", &exp, now).is_err());
    }
}
