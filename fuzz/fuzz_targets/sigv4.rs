//! SigV4: the `Authorization` header parser and the canonical request (enclave net/sigv4.rs).
//! Input: a raw HTTP/1.1 request (request line, headers, body). Invariants: parsing and canonicalizing never panic;
//! an `Authorization` that parses re-parses to the same fields from its canonical spelling; a request re-signed
//! with the right key over `canonical_request` verifies (or fails only for a reason other than its signature); and a
//! request that verifies fails with a single flipped signature bit or with another secret.
#![no_main]
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use kms_enclave::net::sigv4::{self, AuthError, Expected};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Seconds since the epoch of `YYYYMMDDTHHMMSSZ` (no range checks beyond the digits).
fn amz_unix(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

fuzz_target!(|data: &[u8]| {
    let mut raw = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut raw);
    let Ok(httparse::Status::Complete(head_len)) = req.parse(data) else { return };
    let body = &data[head_len..];
    let Some(Ok(method)) = req.method.map(|m| Method::from_bytes(m.as_bytes())) else { return };
    let Some(Ok(uri)) = req.path.map(|p| p.parse::<Uri>()) else { return };
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        let (Ok(n), Ok(v)) = (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_bytes(h.value)) else {
            return;
        };
        headers.append(n, v);
    }

    let Ok(auth) = sigv4::parse_authorization(&headers) else { return };
    let Ok(canonical) = sigv4::canonical_request(&auth, &method, &uri, &headers, body) else { return };
    let signed: Vec<String> = auth.signed_headers().map(str::to_owned).collect();
    let (akid, date, region, service) =
        (auth.access_key_id.to_owned(), auth.date.to_owned(), auth.region.to_owned(), auth.service.to_owned());

    // The canonical spelling of the same header, with the right signature, parses to the same fields.
    let dates: Vec<_> = headers.get_all("x-amz-date").iter().collect();
    let amz = match dates.as_slice() {
        [one] => one.to_str().ok().map(str::to_owned),
        _ => None,
    };
    let Some(amz) = amz else { return };
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz}\n{date}/{region}/{service}/aws4_request\n{}",
        hex::encode(Sha256::digest(&canonical))
    );
    let key = sigv4::signing_key(SECRET, &date, &region, &service);
    let good = hmac(&key, string_to_sign.as_bytes());
    let header = |sig: &[u8; 32]| {
        format!(
            "AWS4-HMAC-SHA256 Credential={akid}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={}",
            signed.join(";"),
            hex::encode(sig)
        )
    };
    if signed.iter().any(|h| h == "authorization") {
        return; // signing the Authorization header itself cannot verify once the signature is in it
    }
    let mut resigned = headers.clone();
    resigned.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&header(&good)).unwrap());
    let again = sigv4::parse_authorization(&resigned).expect("the canonical spelling of a parsed header parses");
    assert_eq!(
        (again.access_key_id, again.date, again.region, again.service),
        (akid.as_str(), date.as_str(), region.as_str(), service.as_str())
    );
    assert!(again.signed_headers().eq(signed.iter().map(String::as_str)));

    let Some(now) = amz_unix(&amz) else { return };
    let expected = Expected { region: &region, service: &service, max_skew_secs: 300 };
    let verified = sigv4::verify(&again, SECRET, &method, &uri, &resigned, body, &expected, now);
    if signed.iter().all(|h| h != "x-amz-content-sha256") {
        assert!(
            !matches!(verified, Err(AuthError::BadSignature)),
            "a request signed over its own canonical request failed its signature check"
        );
    }
    if verified.is_ok() {
        let mut bad = good;
        bad[usize::from(data[0]) % 32] ^= 1 << (data.len() % 8);
        let mut tampered = headers.clone();
        tampered.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&header(&bad)).unwrap());
        let t = sigv4::parse_authorization(&tampered).unwrap();
        assert!(matches!(
            sigv4::verify(&t, SECRET, &method, &uri, &tampered, body, &expected, now),
            Err(AuthError::BadSignature)
        ));
        assert!(sigv4::verify(&again, b"another secret", &method, &uri, &resigned, body, &expected, now).is_err());
    }
});
