//! PEM (RFC 7468) for certificates and keys: strict and bounded.
//!
//! Encoding writes 64-character lines straight into the output, so a private key is never copied into an
//! intermediate buffer. Decoding accepts LF or CRLF line ends, blank lines and `#` comment lines between blocks, and
//! nothing else outside them; base64 must be canonical (padding where due, no stray bits), so each byte string has
//! exactly one accepted encoding. Decoded contents are zeroized on drop.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Why a PEM text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PEM line {line}: {what}")]
pub struct PemError {
    /// 1-based line number (0: the text as a whole).
    pub line: usize,
    /// What is wrong.
    pub what: &'static str,
}

/// A decoded block: label and contents.
pub type Block = (String, Zeroizing<Vec<u8>>);

/// Bytes one encoded block of `der_len` bytes adds, label lines excluded.
pub fn encoded_len(der_len: usize) -> usize {
    let b64 = der_len.div_ceil(3) * 4;
    b64 + b64.div_ceil(64)
}

/// Appends one block to `out`.
pub fn encode_into(out: &mut String, label: &str, der: &[u8]) {
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // 48 input bytes are exactly one 64-character line.
    for chunk in der.chunks(48) {
        STANDARD.encode_string(chunk, out);
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

/// One block as a string (for public data such as certificates).
pub fn encode(label: &str, der: &[u8]) -> String {
    let mut out = String::with_capacity(encoded_len(der.len()) + 2 * label.len() + 32);
    encode_into(&mut out, label, der);
    out
}

/// Every block of `text`, in order. Refuses text outside blocks (other than blank and `#` lines), nested, duplicate,
/// mismatched or unterminated blocks, and non-canonical base64.
pub fn parse(text: &str, max_len: usize) -> Result<Vec<Block>, PemError> {
    if text.len() > max_len {
        return Err(PemError { line: 0, what: "too large" });
    }
    let mut blocks: Vec<Block> = Vec::new();
    let mut open: Option<(&str, Zeroizing<String>)> = None;
    for (number, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let bad = |what| PemError { line: number + 1, what };
        let begin = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----"));
        let end = line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----"));
        match (open.take(), begin, end) {
            (None, Some(label), _) => {
                if blocks.iter().any(|(l, _)| l == label) {
                    return Err(bad("duplicate block"));
                }
                open = Some((label, Zeroizing::new(String::new())));
            }
            (None, None, _) if line.is_empty() || line.starts_with('#') => {}
            (None, None, _) => return Err(bad("text outside a PEM block")),
            (Some((label, body)), _, Some(end_label)) => {
                if end_label != label {
                    return Err(bad("END label does not match BEGIN"));
                }
                if body.is_empty() {
                    return Err(bad("empty block"));
                }
                let der = Zeroizing::new(STANDARD.decode(body.as_bytes()).map_err(|_| bad("invalid base64"))?);
                blocks.push((label.to_owned(), der));
            }
            (Some(_), _, _) if line.starts_with('-') || line.is_empty() => return Err(bad("unterminated PEM block")),
            (Some((label, mut body)), _, None) => {
                body.push_str(line);
                open = Some((label, body));
            }
        }
    }
    if open.is_some() {
        return Err(PemError { line: 0, what: "unterminated PEM block at the end" });
    }
    Ok(blocks)
}

/// The contents of the one block of `text`, which must carry `label`.
pub fn decode_single(text: &str, label: &str, max_len: usize) -> Result<Vec<u8>, PemError> {
    let mut blocks = parse(text, max_len)?;
    match blocks.pop() {
        Some((l, der)) if blocks.is_empty() && l == label => Ok(der.to_vec()),
        Some(_) if !blocks.is_empty() => Err(PemError { line: 0, what: "more than one block" }),
        Some(_) => Err(PemError { line: 0, what: "unexpected block label" }),
        None => Err(PemError { line: 0, what: "no PEM block" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_line_length() {
        for len in [1usize, 2, 3, 47, 48, 49, 500] {
            let der: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let text = encode("CERTIFICATE", &der);
            assert!(text.lines().all(|l| l.len() <= 64));
            assert_eq!(decode_single(&text, "CERTIFICATE", 4096).unwrap(), der);
            assert_eq!(text.len() - "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".len(), encoded_len(len));
        }
    }

    #[test]
    fn canonical_base64_only() {
        let wrap = |b64: &str| format!("-----BEGIN X-----\n{b64}\n-----END X-----\n");
        assert_eq!(decode_single(&wrap("TWFu"), "X", 100).unwrap(), b"Man");
        assert_eq!(decode_single(&wrap("TQ=="), "X", 100).unwrap(), b"M");
        for bad in ["TWF", "TR==", "TWF=", "TQ==TWFu", "T===", "=TWF", "TW=u", "TWF-", "TWFu TWFu"] {
            assert!(decode_single(&wrap(bad), "X", 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn known_answers() {
        let b64 = |data: &[u8]| -> String { encode("X", data).lines().filter(|l| !l.starts_with("-----")).collect() };
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn bundle_structure() {
        let good = "# comment\n\n-----BEGIN A-----\nZm9v\n-----END A-----\n";
        assert_eq!(parse(good, 1000).unwrap().len(), 1);
        assert_eq!(parse(&good.replace('\n', "\r\n"), 1000).unwrap().len(), 1);
        for bad in [
            "hello\n-----BEGIN A-----\nZm9v\n-----END A-----\n",
            "-----BEGIN A-----\nZm9v\n-----END B-----\n",
            "-----BEGIN A-----\nZm9v\n",
            "-----BEGIN A-----\nZm9v\n\n-----END A-----\n",
            "-----BEGIN A-----\n-----BEGIN B-----\nZm9v\n-----END B-----\n-----END A-----\n",
            "-----BEGIN A-----\nZm9v\n-----END A-----\n-----BEGIN A-----\nZm9v\n-----END A-----\n",
            "-----END A-----\n",
            "-----BEGIN A-----\nZm 9v\n-----END A-----\n",
        ] {
            assert!(parse(bad, 1000).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn structure_is_strict() {
        let one = encode("CERTIFICATE", b"abc");
        assert!(decode_single(&format!("\n# comment\n{}", one.replace('\n', "\r\n")), "CERTIFICATE", 100).is_ok());
        assert!(decode_single(&format!("{one}{}", encode("KEY", b"k")), "CERTIFICATE", 100).is_err());
        assert!(decode_single(&format!("subject=foo\n{one}"), "CERTIFICATE", 100).is_err());
        assert!(decode_single(&one, "X509 CRL", 100).is_err());
        assert!(decode_single(&one.replace("END CERTIFICATE", "END KEY"), "CERTIFICATE", 100).is_err());
        assert!(decode_single("-----BEGIN X-----\n-----END X-----\n", "X", 100).is_err());
        assert!(decode_single(&one[..one.len() - 27], "CERTIFICATE", 100).is_err());
        assert!(decode_single("", "CERTIFICATE", 100).is_err());
        assert!(decode_single(&one, "CERTIFICATE", 10).is_err(), "size bound");
        assert!(parse(&format!("{one}{one}"), 1000).is_err(), "duplicate block");
    }
}
