//! `kms-host admin`: the principals admin API (`EnclaveKms.*`, /work/notes/ADMIN_API.md) from the command line, over
//! kms-client (SigV4 over TLS, like any other client: the host gets no special path into the enclave).
//!
//! ```text
//! kms-host admin [--data-dir DIR] [--endpoint URL] [--ca FILE] [--region R] <COMMAND>
//!   create-principal ARN [--admin] | delete-principal ARN | list-principals
//!   create-access-key ARN [--credentials-out FILE] | delete-access-key ACCESS_KEY_ID | whoami
//!   put-principal-policy ARN --policy-file FILE | get-principal-policy ARN | delete-principal-policy ARN
//! ```
//!
//! Resolution order: endpoint `--endpoint`, `AWS_ENDPOINT_URL_KMS`, the URL in `DIR/env`; CA `--ca`,
//! `AWS_CA_BUNDLE`, `DIR/ca.pem`; credentials `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, the shared-credentials
//! file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile `AWS_PROFILE` or `default`),
//! `DIR/credentials`; region `--region`, `AWS_DEFAULT_REGION`, `AWS_REGION`, us-east-1.
//! Output: the answer as pretty JSON on stdout (exit 0); an error answer as `error: TYPE: MESSAGE` on stderr (exit 1).

use crate::files::write_atomic;
use crate::supervise::{CA_FILE, CREDENTIALS_FILE, ENV_FILE};
use clap::{Args, Subcommand};
use kms_client::config::{ConfigError, parse_shared_credentials};
use kms_client::{Client, Connector, Credentials, Endpoint, Signer};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Global options of `kms-host admin`.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Data directory of a `kms-host dev`/`run` service: its env, ca.pem and credentials are the last fallbacks.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The service's URL (default: AWS_ENDPOINT_URL_KMS, else the URL in DIR/env).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// CA bundle to trust (default: AWS_CA_BUNDLE, else DIR/ca.pem).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Signing region (default: AWS_DEFAULT_REGION, AWS_REGION, else us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// The admin operations.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Create a principal (arn:aws:iam::ACCOUNT:user/NAME or role/NAME).
    CreatePrincipal {
        /// The principal's ARN.
        arn: String,
        /// Make it an admin principal.
        #[arg(long)]
        admin: bool,
    },
    /// Delete a principal and its access keys.
    DeletePrincipal {
        /// The principal's ARN.
        arn: String,
    },
    /// List principals with their access key ids.
    ListPrincipals,
    /// Create an access key for a principal (the secret is shown only once).
    CreateAccessKey {
        /// The principal's ARN.
        arn: String,
        /// Also write an AWS shared-credentials file (mode 0600, profile [default]); the secret is then not printed.
        #[arg(long)]
        credentials_out: Option<PathBuf>,
    },
    /// Delete an access key.
    DeleteAccessKey {
        /// The access key id.
        access_key_id: String,
    },
    /// Show the caller's identity (GetCallerIdentity).
    Whoami,
    /// Attach an identity policy (IAM JSON without Principal) to a principal, replacing any it has.
    PutPrincipalPolicy {
        /// The principal's ARN.
        arn: String,
        /// The policy document (JSON).
        #[arg(long)]
        policy_file: PathBuf,
    },
    /// Show a principal's identity policy.
    GetPrincipalPolicy {
        /// The principal's ARN.
        arn: String,
    },
    /// Remove a principal's identity policy.
    DeletePrincipalPolicy {
        /// The principal's ARN.
        arn: String,
    },
}

impl AdminCommand {
    /// The `X-Amz-Target` and JSON body of the request.
    pub fn request(&self) -> (&'static str, Value) {
        match self {
            Self::CreatePrincipal { arn, admin } => {
                ("EnclaveKms.CreatePrincipal", json!({ "PrincipalArn": arn, "Admin": admin }))
            }
            Self::DeletePrincipal { arn } => ("EnclaveKms.DeletePrincipal", json!({ "PrincipalArn": arn })),
            Self::ListPrincipals => ("EnclaveKms.ListPrincipals", json!({})),
            Self::CreateAccessKey { arn, .. } => ("EnclaveKms.CreateAccessKey", json!({ "PrincipalArn": arn })),
            Self::DeleteAccessKey { access_key_id } => {
                ("EnclaveKms.DeleteAccessKey", json!({ "AccessKeyId": access_key_id }))
            }
            Self::Whoami => ("EnclaveKms.GetCallerIdentity", json!({})),
            Self::PutPrincipalPolicy { arn, .. } => ("EnclaveKms.PutPrincipalPolicy", json!({ "PrincipalArn": arn })),
            Self::GetPrincipalPolicy { arn } => ("EnclaveKms.GetPrincipalPolicy", json!({ "PrincipalArn": arn })),
            Self::DeletePrincipalPolicy { arn } => ("EnclaveKms.DeletePrincipalPolicy", json!({ "PrincipalArn": arn })),
        }
    }

    /// The request body with the files the command names read in (`--policy-file`).
    pub fn body_with_files(&self, read: &dyn Fn(&Path) -> std::io::Result<String>) -> Result<Value, String> {
        let mut body = self.request().1;
        if let Self::PutPrincipalPolicy { policy_file, .. } = self {
            let text = read(policy_file).map_err(|e| format!("cannot read {}: {e}", policy_file.display()))?;
            if let Some(o) = body.as_object_mut() {
                o.insert("PolicyDocument".into(), Value::String(text));
            }
        }
        Ok(body)
    }
}

/// Everything a call needs, resolved from arguments, environment and data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub endpoint: String,
    pub ca: Option<PathBuf>,
    pub region: String,
    pub credentials: Credentials,
}

/// How the command ended: printed output or an error line, and the exit status.
#[derive(Debug)]
pub enum Failure {
    /// An error answer from the service: `error: TYPE: MESSAGE`.
    Service(String, String),
    /// Anything else (configuration, connection, a malformed answer, writing the credentials file).
    Local(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Service(kind, message) => write!(f, "error: {kind}: {message}"),
            Self::Local(message) => write!(f, "error: {message}"),
        }
    }
}

/// The value of `export NAME=VALUE` in an env file written by `kms-host` (single-quoted values unquoted).
pub fn env_file_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let rest = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let value = rest.strip_prefix(name)?.strip_prefix('=')?;
        Some(shell_unquote(value))
    })
}

/// Undoes `files::shell_quote`: `'...'` with `'\''` for a quote inside; bare words as they are.
fn shell_unquote(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('\'') {
            match after.find('\'') {
                Some(end) => {
                    out.push_str(after.get(..end).unwrap_or_default());
                    rest = after.get(end + 1..).unwrap_or_default();
                }
                None => {
                    out.push_str(after);
                    rest = "";
                }
            }
        } else if let Some(after) = rest.strip_prefix('\\') {
            let mut chars = after.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        } else {
            let end = rest.find(['\'', '\\']).unwrap_or(rest.len());
            out.push_str(rest.get(..end).unwrap_or_default());
            rest = rest.get(end..).unwrap_or_default();
        }
    }
    out
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// Resolves endpoint, CA, region and credentials (see the module documentation for the order).
pub fn resolve(args: &AdminArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, String> {
    let dir = args.data_dir.as_deref();
    let endpoint = match args.endpoint.clone().or_else(|| non_empty(env("AWS_ENDPOINT_URL_KMS"))) {
        Some(e) => e,
        None => {
            let Some(dir) = dir else {
                return Err("no endpoint: give --endpoint URL, set AWS_ENDPOINT_URL_KMS, or give --data-dir DIR".into());
            };
            let path = dir.join(ENV_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            non_empty(env_file_value(&text, "AWS_ENDPOINT_URL_KMS"))
                .ok_or_else(|| format!("{} names no AWS_ENDPOINT_URL_KMS", path.display()))?
        }
    };
    Endpoint::parse(&endpoint).map_err(|e| e.to_string())?;
    let ca = args
        .ca
        .clone()
        .or_else(|| non_empty(env("AWS_CA_BUNDLE")).map(PathBuf::from))
        .or_else(|| dir.map(|d| d.join(CA_FILE)));
    let region = kms_client::config::region(args.region.as_deref(), env);
    let credentials = match kms_client::config::credentials(env) {
        Ok(c) => c,
        Err(ConfigError::NoCredentials(file, profile)) => match dir {
            Some(d) => {
                let path = d.join(CREDENTIALS_FILE);
                let text =
                    std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                parse_shared_credentials(&text, "default")
                    .ok_or_else(|| format!("{} has no [default] access key", path.display()))?
            }
            None => {
                return Err(format!(
                    "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, provide {file} with profile \
                     [{profile}], or give --data-dir DIR"
                ));
            }
        },
        Err(e) => return Err(e.to_string()),
    };
    Ok(Resolved { endpoint, ca, region, credentials })
}

/// `(type, message)` of an AWS JSON error answer (`__type` without any `namespace#` prefix).
pub fn error_of(status: u16, body: &[u8]) -> (String, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = v.get("__type").and_then(Value::as_str).map(|t| t.rsplit('#').next().unwrap_or(t).to_owned());
    let message = v.get("message").or_else(|| v.get("Message")).and_then(Value::as_str).map(str::to_owned);
    match (kind, message) {
        (Some(k), m) => (k, m.unwrap_or_default()),
        (None, _) => {
            let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
            (format!("HTTP {status}"), text)
        }
    }
}

/// The shared-credentials file `--credentials-out` writes.
pub fn credentials_file(access_key_id: &str, secret: &str) -> String {
    format!("[default]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret}\n")
}

/// What to print for a successful answer (and the credentials file to write first, if asked for).
pub fn output(command: &AdminCommand, mut answer: Value) -> Result<(Option<(PathBuf, String)>, String), Failure> {
    let mut write = None;
    if let AdminCommand::CreateAccessKey { credentials_out: Some(path), .. } = command {
        let key = answer.get_mut("AccessKey").and_then(Value::as_object_mut);
        let Some(key) = key else { return Err(Failure::Local("the answer has no AccessKey".into())) };
        let id = key.get("AccessKeyId").and_then(Value::as_str).map(str::to_owned);
        let secret = key.remove("SecretAccessKey");
        match (id, secret.as_ref().and_then(Value::as_str)) {
            (Some(id), Some(secret)) => write = Some((path.clone(), credentials_file(&id, secret))),
            _ => return Err(Failure::Local("the answer has no AccessKeyId and SecretAccessKey".into())),
        }
    }
    let text = serde_json::to_string_pretty(&answer).map_err(|e| Failure::Local(e.to_string()))?;
    Ok((write, text))
}

async fn call(resolved: &Resolved, target: &str, body: &[u8]) -> Result<Value, Failure> {
    let endpoint = Endpoint::parse(&resolved.endpoint).map_err(|e| Failure::Local(e.to_string()))?;
    let connector = Connector::new(&endpoint, resolved.ca.as_deref()).map_err(|e| Failure::Local(e.to_string()))?;
    let signer = Signer::new(resolved.credentials.clone(), &resolved.region, "kms");
    let mut client = Client::new(Arc::new(connector), signer, &endpoint.authority);
    let response =
        client.call_raw(target, body).await.map_err(|e| Failure::Local(format!("{}: {e}", resolved.endpoint)))?;
    if response.status != 200 {
        let (kind, message) = error_of(response.status, &response.body);
        return Err(Failure::Service(kind, message));
    }
    if response.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&response.body).map_err(|e| Failure::Local(format!("the answer is not JSON: {e}")))
}

/// Runs one admin command; prints its output. Returns the process's exit status.
pub fn run(args: AdminArgs) -> std::process::ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let result = resolve(&args, &env).map_err(Failure::Local).and_then(|resolved| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Local(format!("runtime: {e}")))?;
        let target = args.command.request().0;
        let body = args.command.body_with_files(&|p| std::fs::read_to_string(p)).map_err(Failure::Local)?;
        let answer = runtime.block_on(call(&resolved, target, body.to_string().as_bytes()))?;
        let (write, text) = output(&args.command, answer)?;
        if let Some((path, contents)) = write {
            write_credentials(&path, &contents).map_err(Failure::Local)?;
        }
        Ok(text)
    });
    match result {
        Ok(text) => {
            println!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("{f}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_credentials(path: &Path, contents: &str) -> Result<(), String> {
    write_atomic(path, contents.as_bytes(), 0o600)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        admin: AdminArgs,
    }

    fn parse(args: &[&str]) -> Result<AdminArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("admin").chain(args.iter().copied())).map(|c| c.admin)
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_cli_parses_exactly() {
        let a =
            parse(&["--data-dir", "/d", "--endpoint", "https://h:1", "--ca", "/c", "--region", "r", "whoami"]).unwrap();
        assert_eq!(a.data_dir.as_deref(), Some(Path::new("/d")));
        assert_eq!((a.endpoint.as_deref(), a.region.as_deref()), (Some("https://h:1"), Some("r")));
        assert!(matches!(a.command, AdminCommand::Whoami));
        let a = parse(&["create-principal", "arn:aws:iam::1:user/x", "--admin"]).unwrap();
        assert_eq!(
            a.command.request(),
            ("EnclaveKms.CreatePrincipal", json!({"PrincipalArn": "arn:aws:iam::1:user/x", "Admin": true}))
        );
        let a = parse(&["create-principal", "arn:aws:iam::1:role/r"]).unwrap();
        assert_eq!(a.command.request().1["Admin"], false);
        let a = parse(&["delete-principal", "A"]).unwrap();
        assert_eq!(a.command.request(), ("EnclaveKms.DeletePrincipal", json!({"PrincipalArn": "A"})));
        assert_eq!(parse(&["list-principals"]).unwrap().command.request(), ("EnclaveKms.ListPrincipals", json!({})));
        let a = parse(&["create-access-key", "A", "--credentials-out", "/tmp/c"]).unwrap();
        assert_eq!(a.command.request(), ("EnclaveKms.CreateAccessKey", json!({"PrincipalArn": "A"})));
        let a = parse(&["delete-access-key", "AKIA1"]).unwrap();
        assert_eq!(a.command.request(), ("EnclaveKms.DeleteAccessKey", json!({"AccessKeyId": "AKIA1"})));
        assert_eq!(parse(&["whoami"]).unwrap().command.request().0, "EnclaveKms.GetCallerIdentity");
        let a = parse(&["get-principal-policy", "A"]).unwrap();
        assert_eq!(a.command.request(), ("EnclaveKms.GetPrincipalPolicy", json!({"PrincipalArn": "A"})));
        let a = parse(&["delete-principal-policy", "A"]).unwrap();
        assert_eq!(a.command.request(), ("EnclaveKms.DeletePrincipalPolicy", json!({"PrincipalArn": "A"})));
        assert!(parse(&["put-principal-policy", "A"]).is_err(), "--policy-file is required");
        let a = parse(&["put-principal-policy", "A", "--policy-file", "/p.json"]).unwrap();
        assert_eq!(a.command.request().0, "EnclaveKms.PutPrincipalPolicy");
        let read = |p: &Path| {
            if p == Path::new("/p.json") {
                Ok("{\"Statement\": []}".to_owned())
            } else {
                Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
            }
        };
        assert_eq!(
            a.command.body_with_files(&read).unwrap(),
            json!({"PrincipalArn": "A", "PolicyDocument": "{\"Statement\": []}"})
        );
        let a = parse(&["put-principal-policy", "A", "--policy-file", "/missing.json"]).unwrap();
        assert!(a.command.body_with_files(&read).unwrap_err().contains("/missing.json"));
        for bad in [&["create-principal"][..], &["delete-access-key"], &["frobnicate"], &[], &["whoami", "extra"]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    fn data_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join(ENV_FILE),
            "export AWS_ENDPOINT_URL_KMS=https://127.0.0.1:9443\nexport AWS_CA_BUNDLE='/a b/ca.pem'\n",
        )
        .unwrap();
        std::fs::write(d.path().join(CREDENTIALS_FILE), credentials_file("AKDIR", "dirsecret")).unwrap();
        d
    }

    #[test]
    fn endpoint_resolution_order() {
        let d = data_dir();
        let dir = d.path().to_str().unwrap();
        let with_env = env_of(&[
            ("AWS_ENDPOINT_URL_KMS", "https://env:1"),
            ("AWS_ACCESS_KEY_ID", "A"),
            ("AWS_SECRET_ACCESS_KEY", "S"),
        ]);
        let r =
            resolve(&parse(&["--data-dir", dir, "--endpoint", "https://arg:1", "whoami"]).unwrap(), &with_env).unwrap();
        assert_eq!(r.endpoint, "https://arg:1");
        let r = resolve(&parse(&["--data-dir", dir, "whoami"]).unwrap(), &with_env).unwrap();
        assert_eq!(r.endpoint, "https://env:1");
        let r = resolve(&parse(&["--data-dir", dir, "whoami"]).unwrap(), &env_of(&[("HOME", "/nonexistent")])).unwrap();
        assert_eq!(r.endpoint, "https://127.0.0.1:9443");
        let e = resolve(
            &parse(&["whoami"]).unwrap(),
            &env_of(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S")]),
        )
        .unwrap_err();
        assert!(e.contains("no endpoint"), "{e}");
        let e = resolve(&parse(&["--endpoint", "ftp://x", "whoami"]).unwrap(), &with_env).unwrap_err();
        assert!(e.contains("ftp://x"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = resolve(&parse(&["--data-dir", empty.path().to_str().unwrap(), "whoami"]).unwrap(), &with_env);
        assert_eq!(e.unwrap().endpoint, "https://env:1", "the env file is needed only as a fallback");
        let e = resolve(&parse(&["--data-dir", empty.path().to_str().unwrap(), "whoami"]).unwrap(), &env_of(&[]))
            .unwrap_err();
        assert!(e.contains("env"), "{e}");
    }

    #[test]
    fn ca_and_region_resolution_order() {
        let d = data_dir();
        let dir = d.path().to_str().unwrap();
        let env = env_of(&[("AWS_CA_BUNDLE", "/env/ca.pem"), ("AWS_REGION", "eu-west-1"), ("HOME", "/nonexistent")]);
        let r = resolve(
            &parse(&["--data-dir", dir, "--ca", "/arg.pem", "--region", "ap-south-1", "whoami"]).unwrap(),
            &env,
        )
        .unwrap();
        assert_eq!((r.ca.as_deref(), r.region.as_str()), (Some(Path::new("/arg.pem")), "ap-south-1"));
        let r = resolve(&parse(&["--data-dir", dir, "whoami"]).unwrap(), &env).unwrap();
        assert_eq!((r.ca.as_deref(), r.region.as_str()), (Some(Path::new("/env/ca.pem")), "eu-west-1"));
        let r = resolve(&parse(&["--data-dir", dir, "whoami"]).unwrap(), &env_of(&[("HOME", "/nonexistent")])).unwrap();
        assert_eq!((r.ca, r.region.as_str()), (Some(d.path().join(CA_FILE)), "us-east-1"));
        let r = resolve(
            &parse(&["--endpoint", "http://h:1", "whoami"]).unwrap(),
            &env_of(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S"), ("AWS_DEFAULT_REGION", "x-1")]),
        )
        .unwrap();
        assert_eq!((r.ca, r.region.as_str()), (None, "x-1"));
    }

    #[test]
    fn credential_resolution_order() {
        let d = data_dir();
        let dir = d.path().to_str().unwrap();
        let shared = d.path().join("shared");
        std::fs::write(&shared, "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=f\n[p]\naws_access_key_id=AKP\naws_secret_access_key=p\n").unwrap();
        let shared = shared.to_str().unwrap();
        let args = parse(&["--data-dir", dir, "whoami"]).unwrap();
        let id = |env: &[(&str, &str)]| resolve(&args, &env_of(env)).map(|r| r.credentials.access_key_id);
        assert_eq!(
            id(&[
                ("AWS_ACCESS_KEY_ID", "AKENV"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_SHARED_CREDENTIALS_FILE", shared)
            ])
            .unwrap(),
            "AKENV"
        );
        assert_eq!(id(&[("AWS_SHARED_CREDENTIALS_FILE", shared)]).unwrap(), "AKFILE");
        assert_eq!(id(&[("AWS_SHARED_CREDENTIALS_FILE", shared), ("AWS_PROFILE", "p")]).unwrap(), "AKP");
        assert_eq!(id(&[("AWS_SHARED_CREDENTIALS_FILE", shared), ("AWS_PROFILE", "missing")]).unwrap(), "AKDIR");
        assert_eq!(id(&[("HOME", "/nonexistent")]).unwrap(), "AKDIR");
        let no_dir = parse(&["--endpoint", "https://h:1", "whoami"]).unwrap();
        let e = resolve(&no_dir, &env_of(&[("HOME", "/nonexistent")])).unwrap_err();
        assert!(e.contains("no credentials"), "{e}");
    }

    #[test]
    fn env_file_values() {
        let text = "export AWS_ENDPOINT_URL_KMS=https://h:1\nexport AWS_CA_BUNDLE='/it'\\''s/ca.pem'\n";
        assert_eq!(env_file_value(text, "AWS_ENDPOINT_URL_KMS").as_deref(), Some("https://h:1"));
        assert_eq!(env_file_value(text, "AWS_CA_BUNDLE").as_deref(), Some("/it's/ca.pem"));
        assert_eq!(env_file_value(text, "AWS_ENDPOINT"), None);
        assert_eq!(shell_unquote(&crate::files::shell_quote("/tmp/a 'b'/c")), "/tmp/a 'b'/c", "undoes shell_quote");
    }

    #[test]
    fn errors_and_output() {
        let (k, m) = error_of(400, br#"{"__type":"AccessDeniedException","message":"not an admin"}"#);
        assert_eq!(Failure::Service(k, m).to_string(), "error: AccessDeniedException: not an admin");
        assert_eq!(
            error_of(400, br#"{"__type":"ns#NotFoundException","Message":"m"}"#),
            ("NotFoundException".into(), "m".into())
        );
        assert_eq!(error_of(502, b"bad gateway").0, "HTTP 502");

        let answer = json!({"AccessKey": {"AccessKeyId": "AKX", "SecretAccessKey": "sec", "PrincipalArn": "p"}});
        let plain = AdminCommand::CreateAccessKey { arn: "p".into(), credentials_out: None };
        let (write, text) = output(&plain, answer.clone()).unwrap();
        assert!(write.is_none() && text.contains("sec"));
        let to_file = AdminCommand::CreateAccessKey { arn: "p".into(), credentials_out: Some("/x/c".into()) };
        let (write, text) = output(&to_file, answer).unwrap();
        assert!(!text.contains("sec") && text.contains("AKX"), "{text}");
        let (path, contents) = write.unwrap();
        assert_eq!(path, PathBuf::from("/x/c"));
        assert_eq!(parse_shared_credentials(&contents, "default").unwrap().secret_access_key, "sec");
        assert!(output(&to_file, json!({})).is_err());
        let (_, text) = output(&AdminCommand::Whoami, json!({"Arn": "a"})).unwrap();
        assert_eq!(text, "{\n  \"Arn\": \"a\"\n}");
    }

    #[test]
    fn credentials_out_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("creds");
        write_credentials(&p, &credentials_file("A", "S")).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
