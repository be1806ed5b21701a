//! Command line of the load generator.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

impl Args {
    /// The operations of the run with their weights: `--op` alone (weight 1), or the `--mix`.
    pub fn ops(&self) -> Vec<(Op, u32)> {
        match (&self.mix, self.op) {
            (Some(m), _) => m.entries.clone(),
            (None, Some(op)) => vec![(op, 1)],
            (None, None) => Vec::new(),
        }
    }

    /// The name in the report: the op, or `mix`.
    pub fn run_name(&self) -> &'static str {
        match (self.op, &self.mix) {
            (Some(op), None) => op.name(),
            _ => "mix",
        }
    }
}

/// The operation every connection repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Op {
    Encrypt,
    Decrypt,
    GenerateDataKey,
    CreateKey,
    GenerateRandom,
    Sign,
    Verify,
    GenerateMac,
    /// PutKeyPolicy of the key's own policy (read once with GetKeyPolicy): a write that changes nothing else.
    PutKeyPolicy,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::GenerateDataKey => "generate-data-key",
            Op::CreateKey => "create-key",
            Op::GenerateRandom => "generate-random",
            Op::Sign => "sign",
            Op::Verify => "verify",
            Op::GenerateMac => "generate-mac",
            Op::PutKeyPolicy => "put-key-policy",
        }
    }

    /// The kind of key the operation needs (created by the tool unless `--key-id`).
    pub fn key_kind(self) -> KeyKind {
        match self {
            Op::Encrypt | Op::Decrypt | Op::GenerateDataKey | Op::PutKeyPolicy => KeyKind::Symmetric,
            Op::Sign | Op::Verify => KeyKind::EccSign,
            Op::GenerateMac => KeyKind::Hmac,
            Op::CreateKey | Op::GenerateRandom => KeyKind::None,
        }
    }
}

/// Key types a run may create at set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyKind {
    /// No key needed (CreateKey, GenerateRandom).
    None,
    /// SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT.
    Symmetric,
    /// ECC_NIST_P256, SIGN_VERIFY.
    EccSign,
    /// HMAC_256, GENERATE_VERIFY_MAC.
    Hmac,
}

/// `--mix`: operations with integer weights, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    pub entries: Vec<(Op, u32)>,
}

impl Mix {
    /// The spec in canonical form (`encrypt=50,decrypt=30`).
    pub fn spec(&self) -> String {
        self.entries.iter().map(|(op, w)| format!("{}={w}", op.name())).collect::<Vec<_>>().join(",")
    }
}

/// Parses `OP=WEIGHT[,OP=WEIGHT...]`: known operations, each at most once, weights 1..=1000000.
pub fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut entries: Vec<(Op, u32)> = Vec::new();
    if s.trim().is_empty() {
        return Err("empty mix; expected OP=WEIGHT[,OP=WEIGHT...], e.g. encrypt=50,decrypt=50".into());
    }
    for part in s.split(',') {
        let part = part.trim();
        let (name, weight) =
            part.split_once('=').ok_or_else(|| format!("{part:?}: expected OP=WEIGHT, e.g. encrypt=50"))?;
        let op = Op::from_str(name.trim(), false).map_err(|_| {
            let known: Vec<&str> = Op::value_variants().iter().map(|o| o.name()).collect();
            format!("{name:?} is not an operation (one of {})", known.join(", "))
        })?;
        let weight: u32 =
            weight.trim().parse().map_err(|_| format!("{part:?}: the weight {weight:?} is not a whole number"))?;
        if !(1..=1_000_000).contains(&weight) {
            return Err(format!("{part:?}: the weight must be between 1 and 1000000"));
        }
        if entries.iter().any(|(o, _)| *o == op) {
            return Err(format!("{} appears twice in the mix", op.name()));
        }
        entries.push((op, weight));
    }
    Ok(Mix { entries })
}

/// Parses `--context K=V` (K non-empty; V may be empty and may contain `=`).
pub fn parse_context(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
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
    #[arg(long, value_enum, required_unless_present = "mix", conflicts_with = "mix")]
    pub op: Option<Op>,
    /// Operation mix instead of --op: OP=WEIGHT[,OP=WEIGHT...], e.g. encrypt=50,decrypt=30,generate-data-key=20;
    /// each request draws its operation by weight. The report adds per-operation figures.
    #[arg(long, value_parser = parse_mix)]
    pub mix: Option<Mix>,
    /// Encryption context pair KEY=VALUE (repeatable) for Encrypt, Decrypt and GenerateDataKey.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context)]
    pub context: Vec<(String, String)>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Warm-up in seconds (requests sent but not counted).
    #[arg(long, default_value = "1", value_parser = non_negative_seconds)]
    pub warmup: f64,
    /// KMS key to use (id, ARN or alias/NAME); without it the tool creates a key with CreateKey.
    #[arg(long)]
    pub key_id: Option<String>,
    /// Plaintext size for encrypt and decrypt, message size for sign, verify and generate-mac, NumberOfBytes for
    /// generate-random (1..=4096; generate-random at most 1024).
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
        assert_eq!(a.op, Some(Op::GenerateDataKey));
        assert_eq!((a.mix.as_ref(), a.context.len()), (None, 0));
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
        assert_eq!(a.op, Some(Op::Decrypt));
        assert!(!a.json);
        assert_eq!(a.warmup, 0.0);
        assert_eq!(a.key_id.as_deref(), Some("alias/x"));
        assert_eq!(a.payload_bytes, 4096);
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
        let a = parse(&["--endpoint=x", "--connections=1", "--duration=1", "--op=create-key"]).unwrap();
        assert_eq!((a.op, a.keys, a.setup_connections), (Some(Op::CreateKey), None, 64));
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
            Some(Op::Encrypt)
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
            (3, "--op=sign-verify"),
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

    #[test]
    fn new_operations_and_context_parse() {
        for (name, op) in [
            ("generate-random", Op::GenerateRandom),
            ("sign", Op::Sign),
            ("verify", Op::Verify),
            ("generate-mac", Op::GenerateMac),
        ] {
            let a = parse(&["--endpoint=x", "--connections=1", "--duration=1", "--op", name]).unwrap();
            assert_eq!(a.op, Some(op));
            assert_eq!(op.name(), name);
            assert_eq!((a.ops(), a.run_name()), (vec![(op, 1)], name));
        }
        let a = parse(&[
            "--endpoint=x",
            "--connections=1",
            "--duration=1",
            "--op=encrypt",
            "--context",
            "purpose=test",
            "--context=tenant=a=b",
            "--context",
            "empty=",
        ])
        .unwrap();
        assert_eq!(
            a.context,
            vec![
                ("purpose".to_owned(), "test".to_owned()),
                ("tenant".to_owned(), "a=b".to_owned()),
                ("empty".to_owned(), String::new())
            ]
        );
        for bad in ["novalue", "=v", ""] {
            let e = parse(&["--endpoint=x", "--connections=1", "--duration=1", "--op=encrypt", "--context", bad])
                .unwrap_err();
            assert!(e.to_string().contains("expected KEY=VALUE"), "{bad}: {e}");
        }
    }

    #[test]
    fn mix_weights_parse() {
        let m = parse_mix("encrypt=50,decrypt=30,generate-data-key=20").unwrap();
        assert_eq!(m.entries, vec![(Op::Encrypt, 50), (Op::Decrypt, 30), (Op::GenerateDataKey, 20)]);
        assert_eq!(m.spec(), "encrypt=50,decrypt=30,generate-data-key=20");
        let m = parse_mix(" sign = 1 , verify=2,generate-mac=3,generate-random=4,create-key=5").unwrap();
        assert_eq!(m.spec(), "sign=1,verify=2,generate-mac=3,generate-random=4,create-key=5");
        assert_eq!(parse_mix("encrypt=1").unwrap().entries, vec![(Op::Encrypt, 1)]);

        let a = parse(&["--endpoint=x", "--connections=1", "--duration=1", "--mix=encrypt=40,decrypt=60"]).unwrap();
        assert_eq!((a.op, a.run_name()), (None, "mix"));
        assert_eq!(a.ops(), vec![(Op::Encrypt, 40), (Op::Decrypt, 60)]);
    }

    #[test]
    fn bad_mix_specs_are_refused_with_clear_errors() {
        for (spec, expected) in [
            ("", "empty mix"),
            ("encrypt", "expected OP=WEIGHT"),
            ("encrypt=50,decrypt", "expected OP=WEIGHT"),
            ("encrypt=50,", "expected OP=WEIGHT"),
            ("encrypt=0", "between 1 and 1000000"),
            ("encrypt=1000001", "between 1 and 1000000"),
            ("encrypt=-1", "not a whole number"),
            ("encrypt=1.5", "not a whole number"),
            ("encrypt=x", "not a whole number"),
            ("encrypt=1,encrypt=2", "encrypt appears twice"),
            ("sign-verify=1", "is not an operation (one of encrypt, decrypt"),
            ("Encrypt=1", "is not an operation"),
        ] {
            let e = parse_mix(spec).unwrap_err();
            assert!(e.contains(expected), "{spec:?}: {e}");
        }
        let base = ["--endpoint=x", "--connections=1", "--duration=1"];
        let mut v = base.to_vec();
        v.extend(["--op=encrypt", "--mix=encrypt=1"]);
        let e = parse(&v).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "--op and --mix exclude each other: {e}");
        let e = parse(&base).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{e}");
        let mut v = base.to_vec();
        v.push("--mix=encrypt=50,bogus=1");
        let e = parse(&v).unwrap_err().to_string();
        assert!(e.contains("\"bogus\" is not an operation"), "{e}");
    }
}
