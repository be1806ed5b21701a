//! `kms-loadgen`: drives an AWS-KMS-compatible endpoint (enclave-kms over TLS, or moto over plain HTTP) with
//! SigV4-signed requests over N keep-alive connections, checks every answer, and reports requests/s and latency
//! percentiles as text or JSON.
//!
//! ```text
//! kms-loadgen --endpoint URL [--ca FILE] --connections N --duration SECONDS
//!             (--op encrypt|decrypt|generate-data-key|create-key|generate-random|sign|verify|generate-mac
//!                   |put-key-policy
//!              | --mix OP=WEIGHT[,OP=WEIGHT...])
//!             [--context KEY=VALUE]... [--json] [--warmup SECONDS] [--key-id ID] [--payload-bytes N]
//!             [--region REGION] [--keys N [--keys-file FILE] [--setup-connections N]]
//! ```
//!
//! `--mix` draws each request's operation by weight (per-connection generator seeded by the connection's index) and
//! adds per-operation figures (`ops`) to the report; `--context` sets the EncryptionContext of Encrypt, Decrypt and
//! GenerateDataKey. Sign answers are verified on the client with the key's public key (GetPublicKey at set-up).
//!
//! With `--keys N` each request names a key drawn uniformly from N keys (reused from `--keys-file`, the missing ones
//! created first over `--setup-connections` connections and appended to it); a decrypt run then pre-encrypts under
//! 256 drawn keys per connection. `--op create-key` measures CreateKey itself (each answer must carry a KeyId);
//! `--op put-key-policy` puts the key's own policy back (read once with GetKeyPolicy; with `--keys`, on drawn keys).
//!
//! Exit status: 0 with a report (errors are counted in it), 1 when set-up fails (connection, CreateKey, the
//! pre-encryption of a decrypt run), 2 for usage errors.

mod config;
mod stats;
mod work;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser as _;

use config::{Args, KeyKind, Op};
use kms_client::{CallError, Client, Connector, Endpoint, Signer};
use stats::{OpReport, Report};
use work::{Keys, Plan, Shared, Work};

/// What one connection measured, per operation of the plan (one entry without a mix).
struct Outcome {
    latencies_us: Vec<Vec<u64>>,
    errors: Vec<u64>,
    first_error: Option<String>,
    last_done: Instant,
}

/// The plaintext of connection `index`: distinct per connection, so a server cannot answer one from another's.
fn payload(index: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (index.wrapping_mul(131).wrapping_add(j.wrapping_mul(7)) % 251) as u8).collect()
}

async fn measure(mut client: Client, mut plan: Plan, n_ops: usize, warm_end: Instant, end: Instant) -> Outcome {
    let mut out = Outcome {
        latencies_us: (0..n_ops).map(|_| Vec::with_capacity(65_536 / n_ops.max(1))).collect(),
        errors: vec![0; n_ops],
        first_error: None,
        last_done: warm_end,
    };
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let index = plan.pick();
        let result = plan.run(index, &mut client).await;
        let t1 = Instant::now();
        if t0 < warm_end {
            continue;
        }
        out.last_done = t1;
        match result {
            Ok(()) => {
                let us = u64::try_from(t1.duration_since(t0).as_micros()).unwrap_or(u64::MAX);
                if let Some(l) = out.latencies_us.get_mut(index) {
                    l.push(us);
                }
            }
            Err(e) => {
                if let Some(n) = out.errors.get_mut(index) {
                    *n += 1;
                }
                if out.first_error.is_none() {
                    out.first_error = Some(e.to_string());
                }
            }
        }
    }
    out
}

async fn run(args: Args) -> Result<Report, String> {
    let endpoint = Endpoint::parse(&args.endpoint).map_err(|e| e.to_string())?;
    let env = |k: &str| std::env::var(k).ok();
    let region = kms_client::config::region(args.region.as_deref(), &env);
    let credentials = kms_client::config::credentials(&env).map_err(|e| e.to_string())?;
    let connector = Arc::new(Connector::new(&endpoint, args.ca.as_deref()).map_err(|e| e.to_string())?);
    let signer = Signer::new(credentials, &region, "kms");
    let connections = usize::try_from(args.connections).map_err(|e| e.to_string())?;
    let payload_len = usize::try_from(args.payload_bytes).map_err(|e| e.to_string())?;
    let ops = args.ops();
    if ops.iter().any(|(op, _)| *op == Op::GenerateRandom) && payload_len > 1024 {
        return Err("generate-random: --payload-bytes is NumberOfBytes, at most 1024".into());
    }
    let needs = |kind: KeyKind| ops.iter().any(|(op, _)| op.key_kind() == kind);

    // Set-up, not measured: connections, the key(s), per-connection requests (a decrypt run encrypts once each).
    let mut first = Client::new(connector.clone(), signer.clone(), &endpoint.authority);
    let mut keys: Option<Keys> = None;
    let key_id = match (&args.key_id, args.keys) {
        (Some(k), _) => k.clone(),
        (None, Some(n)) => {
            let set = key_set(&args, &connector, &signer, &endpoint.authority, n).await?;
            let first_key = set.first().cloned().unwrap_or_default();
            keys = Some(Arc::new(set));
            first_key
        }
        (None, None) if !needs(KeyKind::Symmetric) => String::new(),
        (None, None) => {
            let id = first.create_key().await.map_err(|e| format!("CreateKey failed: {e}"))?;
            eprintln!("kms-loadgen: created key {id}");
            id
        }
    };
    // Sign/Verify and GenerateMac keys: --key-id, else created here.
    let mut other_key = async |kind: KeyKind, spec: &str, usage: &str| -> Result<String, String> {
        if !needs(kind) {
            return Ok(String::new());
        }
        if let Some(k) = &args.key_id {
            return Ok(k.clone());
        }
        let id =
            work::create_key(&mut first, spec, usage).await.map_err(|e| format!("CreateKey {spec} failed: {e}"))?;
        eprintln!("kms-loadgen: created {spec} key {id}");
        Ok(id)
    };
    let sign_key = other_key(KeyKind::EccSign, "ECC_NIST_P256", "SIGN_VERIFY").await?;
    let mac_key = other_key(KeyKind::Hmac, "HMAC_256", "GENERATE_VERIFY_MAC").await?;
    let mut shared = Shared { context: args.context.clone(), ..Shared::default() };
    if ops.iter().any(|(op, _)| *op == Op::Sign) {
        shared.public_key =
            Arc::new(work::public_key(&mut first, &sign_key).await.map_err(|e| format!("GetPublicKey failed: {e}"))?);
    }
    let shared = Arc::new(shared);
    let key_for = {
        let (sym, sign_key, mac_key) = (Arc::new(key_id), Arc::new(sign_key), Arc::new(mac_key));
        move |op: Op| match op.key_kind() {
            KeyKind::EccSign => sign_key.clone(),
            KeyKind::Hmac => mac_key.clone(),
            KeyKind::Symmetric | KeyKind::None => sym.clone(),
        }
    };
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let mut setups = Vec::with_capacity(connections);
    let mut first = Some(first);
    for index in 0..connections {
        let mut client =
            first.take().unwrap_or_else(|| Client::new(connector.clone(), signer.clone(), &endpoint.authority));
        let keys = keys.clone();
        let plan_ops: Vec<(Op, Arc<String>)> = ops.iter().map(|(op, _)| (*op, key_for(*op))).collect();
        let weights: Vec<u32> = ops.iter().map(|(_, w)| *w).collect();
        let shared = shared.clone();
        let seed = seed ^ (index as u64).wrapping_mul(0x1000_0000_01B3);
        setups.push(tokio::spawn(async move {
            client.connect().await?;
            let mut works = Vec::with_capacity(plan_ops.len());
            for (op, key_id) in plan_ops {
                let payload = payload(index, payload_len);
                works.push(Work::prepare(&mut client, op, &key_id, keys.clone(), &payload, seed, &shared).await?);
            }
            // The operation sequence is deterministic per connection (seeded by its index alone).
            let plan = Plan::new(works, &weights, (index as u64).wrapping_add(1).wrapping_mul(0x1000_0000_01B3));
            Ok::<_, CallError>((client, plan))
        }));
    }
    let mut ready = Vec::with_capacity(connections);
    for s in setups {
        let (client, work) = s
            .await
            .map_err(|e| format!("set-up task: {e}"))?
            .map_err(|e| format!("set-up of a connection failed: {e}"))?;
        ready.push((client, work));
    }

    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let warm_end = start + warmup;
    let end = warm_end + duration;
    let n_ops = ops.len();
    let tasks: Vec<_> = ready.into_iter().map(|(c, p)| tokio::spawn(measure(c, p, n_ops, warm_end, end))).collect();
    let mut per_op: Vec<(Vec<u64>, u64)> = vec![(Vec::new(), 0); n_ops];
    let mut first_error = None;
    let mut last_done = warm_end;
    for t in tasks {
        let o = t.await.map_err(|e| format!("measurement task: {e}"))?;
        for ((lat, err), (l, e)) in per_op.iter_mut().zip(o.latencies_us.iter().zip(&o.errors)) {
            lat.extend_from_slice(l);
            *err += e;
        }
        if first_error.is_none() {
            first_error = o.first_error;
        }
        last_done = last_done.max(o.last_done);
    }
    let measured = last_done.saturating_duration_since(warm_end).as_secs_f64().max(args.duration);
    let latencies: Vec<u64> = per_op.iter().flat_map(|(l, _)| l.iter().copied()).collect();
    let errors = per_op.iter().map(|(_, e)| e).sum();
    let mut report = Report::new(
        args.run_name(),
        &args.endpoint,
        connections,
        measured,
        args.warmup,
        payload_len,
        latencies,
        errors,
        first_error,
    );
    if let Some(mix) = &args.mix {
        report.mix = Some(mix.spec());
        report.ops = Some(
            ops.iter()
                .zip(per_op)
                .map(|((op, _), (lat, err))| (op.name().to_owned(), OpReport::new(lat, err)))
                .collect(),
        );
    }
    Ok(report)
}

/// Whether `id` can be pasted into a JSON string as it is (key ids, ARNs and alias names can).
fn plain_key_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 2048 && id.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// The key set of `--keys N`: ids from `--keys-file` (when it lists enough), the rest created over
/// `--setup-connections` connections and appended to the file.
async fn key_set(
    args: &Args,
    connector: &Arc<Connector>,
    signer: &Signer,
    authority: &str,
    count: u64,
) -> Result<Vec<String>, String> {
    let want = usize::try_from(count).map_err(|e| e.to_string())?;
    let mut ids: Vec<String> = match &args.keys_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        },
        None => Vec::new(),
    };
    if let Some(bad) = ids.iter().find(|id| !plain_key_id(id)) {
        return Err(format!("--keys-file: {bad:?} is not a key id"));
    }
    ids.truncate(want);
    let missing = want - ids.len();
    if ids.len() == want {
        eprintln!("kms-loadgen: reusing {want} keys");
        return Ok(ids);
    }
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(missing));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.setup_connections.min(u32::try_from(missing).unwrap_or(u32::MAX)) {
        let mut client = Client::new(connector.clone(), signer.clone(), authority);
        let remaining = remaining.clone();
        tasks.push(tokio::spawn(async move {
            let mut made = Vec::new();
            while remaining
                .fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |n| {
                    n.checked_sub(1)
                })
                .is_ok()
            {
                made.push(client.create_key().await.map_err(|e| format!("CreateKey failed: {e}"))?);
            }
            Ok::<_, String>(made)
        }));
    }
    let mut created = Vec::with_capacity(missing);
    for t in tasks {
        created.extend(t.await.map_err(|e| format!("key creation task: {e}"))??);
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "kms-loadgen: created {} keys in {secs:.1} s ({:.0}/s) over {} connections",
        created.len(),
        created.len() as f64 / secs.max(1e-9),
        args.setup_connections
    );
    if let Some(path) = &args.keys_file {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut text = String::with_capacity(created.len() * 37);
        for id in &created {
            text.push_str(id);
            text.push('\n');
        }
        f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    ids.extend(created);
    Ok(ids)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let json = args.json;
    match run(args).await {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("kms-loadgen: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kms-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_differ_per_connection() {
        assert_eq!(payload(0, 32).len(), 32);
        assert_ne!(payload(0, 32), payload(1, 32));
        assert_eq!(payload(5, 4096), payload(5, 4096));
    }

    #[test]
    fn key_ids_that_can_be_pasted_into_json() {
        assert!(plain_key_id("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(plain_key_id("arn:aws:kms:us-east-1:000000000000:alias/x_y"));
        for bad in ["", "a\"b", "a\\b", "a b", "\u{e9}"] {
            assert!(!plain_key_id(bad), "{bad:?}");
        }
    }
}
