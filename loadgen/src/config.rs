//! Command line of the load generator.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// The operation every connection repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Op {
    Encrypt,
    Decrypt,
    GenerateDataKey,
    CreateKey,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::GenerateDataKey => "generate-data-key",
            Op::CreateKey => "create-key",
        }
    }
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 86_400.0 { Ok(v) } else { Err("must be > 0 and at most 86400".into()) }
}

fn non_negative_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && (0.0..=3600.0).contains(&v) { Ok(v) } else { Err("must be between 0 and 3600".into()) }
}

/// Drives an AWS-KMS-compatible endpoint with SigV4-signed requests over N keep-alive connections and reports
/// requests/s and latency percentiles. Every response is checked; wrong answers count as errors.
#[derive(Debug, Clone, Parser)]
#[command(name = "kms-loadgen", version)]
pub struct Args {
    /// Endpoint URL: https://HOST:PORT (TLS) or http://HOST:PORT (plain, e.g. moto).
    #[arg(long)]
    pub endpoint: String,
    /// PEM file of the CA(s) to trust for https (e.g. the service's ca.pem). Without it: AWS_CA_BUNDLE, SSL_CERT_FILE
    /// or the system bundle.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Number of keep-alive connections, each sending requests back to back.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: u32,
    /// Measured time in seconds, after the warm-up.
    #[arg(long, value_parser = positive_seconds)]
    pub duration: f64,
    /// Operation to repeat.
    #[arg(long, value_enum)]
    pub op: Op,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Warm-up in seconds (requests sent but not counted).
    #[arg(long, default_value = "1", value_parser = non_negative_seconds)]
    pub warmup: f64,
    /// KMS key to use (id, ARN or alias/NAME); without it the tool creates a key with CreateKey.
    #[arg(long)]
    pub key_id: Option<String>,
    /// Plaintext size for encrypt and decrypt (1..=4096).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub payload_bytes: u32,
    /// Signing region (default: AWS_DEFAULT_REGION, AWS_REGION, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Spread requests uniformly over N keys (encrypt, decrypt, generate-data-key): reused from --keys-file when
    /// it lists enough, the rest created first (not measured) and appended to it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000), conflicts_with = "key_id")]
    pub keys: Option<u64>,
    /// File of key ids (one a line) that --keys reuses and extends.
    #[arg(long, requires = "keys")]
    pub keys_file: Option<PathBuf>,
    /// Connections used to create the keys of --keys.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub setup_connections: u32,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("kms-loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn the_script_interface_parses() {
        let a = parse(&[
            "--endpoint",
            "https://127.0.0.1:8443",
            "--ca",
            "/tmp/ca.pem",
            "--connections",
            "32",
            "--duration",
            "10",
            "--op",
            "generate-data-key",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.endpoint, "https://127.0.0.1:8443");
        assert_eq!(a.ca.as_deref(), Some(Path::new("/tmp/ca.pem")));
        assert_eq!(a.connections, 32);
        assert!((a.duration - 10.0).abs() < 1e-9);
        assert_eq!(a.op, Op::GenerateDataKey);
        assert!(a.json);
        assert!((a.warmup - 1.0).abs() < 1e-9);
        assert_eq!(a.payload_bytes, 32);
        assert_eq!(a.key_id, None);
        assert_eq!(a.region, None);
    }

    #[test]
    fn optional_arguments() {
        let a = parse(&[
            "--endpoint=http://localhost:5000",
            "--connections=1",
            "--duration=0.5",
            "--op=decrypt",
            "--warmup=0",
            "--key-id=alias/x",
            "--payload-bytes=4096",
            "--region=eu-west-1",
        ])
        .unwrap();
        assert_eq!(a.op, Op::Decrypt);
        assert!(!a.json);
        assert_eq!(a.warmup, 0.0);
        assert_eq!(a.key_id.as_deref(), Some("alias/x"));
        assert_eq!(a.payload_bytes, 4096);
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
        let a = parse(&["--endpoint=x", "--connections=1", "--duration=1", "--op=create-key"]).unwrap();
        assert_eq!((a.op, a.keys, a.setup_connections), (Op::CreateKey, None, 64));
        let a = parse(&[
            "--endpoint=x",
            "--connections=1",
            "--duration=1",
            "--op=encrypt",
            "--keys=1000000",
            "--keys-file=/k",
        ])
        .unwrap();
        assert_eq!((a.keys, a.keys_file.as_deref()), (Some(1_000_000), Some(Path::new("/k"))));
        assert_eq!(
            parse(&["--endpoint=x", "--connections=1", "--duration=1", "--op=encrypt"]).unwrap().op,
            Op::Encrypt
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        let base = ["--endpoint=https://h:1", "--connections=1", "--duration=1", "--op=encrypt"];
        assert!(parse(&base).is_ok());
        for (i, bad) in [
            (1, "--connections=0"),
            (2, "--duration=0"),
            (2, "--duration=-1"),
            (2, "--duration=abc"),
            (3, "--op=sign"),
            (3, "--op=create_key"),
            (3, "--op=Encrypt"),
        ] {
            let mut v = base.to_vec();
            v[i] = bad;
            assert!(parse(&v).is_err(), "{bad}");
        }
        let mut v = base.to_vec();
        v.push("--payload-bytes=0");
        assert!(parse(&v).is_err());
        let mut v = base.to_vec();
        v.push("--payload-bytes=4097");
        assert!(parse(&v).is_err());
        let mut v = base.to_vec();
        v.push("--keys=0");
        assert!(parse(&v).is_err());
        let mut v = base.to_vec();
        v.extend(["--keys=5", "--key-id=k"]);
        assert!(parse(&v).is_err(), "--keys and --key-id exclude each other");
        let mut v = base.to_vec();
        v.push("--keys-file=f");
        assert!(parse(&v).is_err(), "--keys-file needs --keys");
        assert!(parse(&base[1..]).is_err(), "--endpoint is required");
        assert!(parse(&base[..3]).is_err(), "--op is required");
    }
}
