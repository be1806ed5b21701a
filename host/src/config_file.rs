//! `kms-host dev|run --config FILE`: a TOML file whose keys are the subcommand's long flags without the dashes.
//!
//! The file is turned into command-line arguments before clap parses them, so the file and the flags go through one
//! parser with one set of checks: every key must name a long flag of that subcommand (an unknown key is an error that
//! names it), a flag given on the command line overrides the file's key, a boolean flag takes `true`/`false`, and a
//! repeatable flag (`tls-name`, `operator`, ...) takes an array. Nothing in the file is secret (credentials stay in
//! files the flags name), so the host reading it gives it nothing.

use clap::{ArgAction, Command};
use std::ffi::OsString;
use std::path::Path;

/// Largest configuration file read, in bytes.
const MAX_CONFIG_LEN: u64 = 64 * 1024;

/// Subcommands that take `--config`.
const CONFIGURABLE: &[&str] = &["dev", "run"];

/// Returns `argv` with the configuration file's keys added as flags, when the subcommand is `dev` or `run` and
/// `--config FILE` is given; otherwise `argv` unchanged.
pub fn expand(cli: &Command, argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(sub_name) = argv.get(1).and_then(|a| a.to_str()).filter(|a| CONFIGURABLE.contains(a)) else {
        return Ok(argv);
    };
    let rest = argv.get(2..).unwrap_or_default();
    let Some(path) = config_path(rest)? else {
        return Ok(argv);
    };
    let sub = cli.find_subcommand(sub_name).ok_or_else(|| format!("no subcommand {sub_name}"))?;
    let text = read_bounded(Path::new(&path))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| format!("{path}: {}", e.message().trim()))?;
    let given = given_flags(rest);
    let mut extra = Vec::new();
    for (key, value) in &table {
        let arg = sub
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !a.is_hide_set())
            .filter(|_| key != "config")
            .ok_or_else(|| format!("{path}: unknown key '{key}' (not a flag of `kms-host {sub_name}`)"))?;
        if given.iter().any(|g| g == key) {
            continue; // the command line wins
        }
        let flag = format!("--{key}");
        match (arg.get_action(), value) {
            (ArgAction::SetTrue, toml::Value::Boolean(true)) => extra.push(flag.into()),
            (ArgAction::SetTrue, toml::Value::Boolean(false)) => {}
            (ArgAction::SetTrue, _) => return Err(format!("{path}: '{key}' takes true or false")),
            (ArgAction::Append, toml::Value::Array(items)) => {
                for item in items {
                    extra.push(flag.clone().into());
                    extra.push(scalar(&path, key, item)?.into());
                }
            }
            (ArgAction::Set | ArgAction::Append, v) => {
                extra.push(flag.into());
                extra.push(scalar(&path, key, v)?.into());
            }
            _ => return Err(format!("{path}: '{key}' cannot be set in a configuration file")),
        }
    }
    let mut out = argv.clone();
    out.extend(extra);
    Ok(out)
}

/// The value of `--config` among the subcommand's arguments (`--config FILE` or `--config=FILE`).
fn config_path(args: &[OsString]) -> Result<Option<String>, String> {
    let mut found = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(a) = a.to_str() else { continue };
        if a == "--" {
            break;
        }
        let value = if a == "--config" {
            Some(it.next().and_then(|v| v.to_str()).ok_or("--config needs a file")?.to_owned())
        } else {
            a.strip_prefix("--config=").map(str::to_owned)
        };
        if let Some(v) = value
            && found.replace(v).is_some()
        {
            return Err("--config given more than once".into());
        }
    }
    Ok(found)
}

/// The long flags present on the command line (names without dashes).
fn given_flags(args: &[OsString]) -> Vec<String> {
    args.iter()
        .filter_map(|a| a.to_str())
        .take_while(|a| *a != "--")
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| a.split_once('=').map_or(a, |(name, _)| name).to_owned())
        .collect()
}

fn scalar(path: &str, key: &str, v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        _ => Err(format!("{path}: '{key}' takes a string or a number")),
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = String::new();
    f.take(MAX_CONFIG_LEN + 1).read_to_string(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_CONFIG_LEN {
        return Err(format!("{}: larger than {MAX_CONFIG_LEN} bytes", path.display()));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn cli() -> Command {
        Command::new("kms-host").subcommand(
            Command::new("dev")
                .arg(Arg::new("config").long("config"))
                .arg(Arg::new("data-dir").long("data-dir"))
                .arg(Arg::new("listen").long("listen"))
                .arg(Arg::new("init").long("init").action(ArgAction::SetTrue))
                .arg(Arg::new("tls-name").long("tls-name").action(ArgAction::Append)),
        )
    }

    fn run(file: &str, args: &[&str]) -> Result<Vec<String>, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("kms.toml");
        std::fs::write(&path, file).map_err(|e| e.to_string())?;
        let mut argv: Vec<OsString> = vec!["kms-host".into(), "dev".into(), "--config".into(), path.clone().into()];
        argv.extend(args.iter().map(OsString::from));
        let out = expand(&cli(), argv)?;
        Ok(out[4..].iter().map(|a| a.to_string_lossy().into_owned()).collect())
    }

    #[test]
    fn keys_become_flags() {
        let out = run("data-dir = \"/d\"\ninit = true\ntls-name = [\"a\", \"b\"]\n", &[]).unwrap();
        assert_eq!(out, ["--data-dir", "/d", "--init", "--tls-name", "a", "--tls-name", "b"]);
    }

    #[test]
    fn flags_override_the_file() {
        let out = run("data-dir = \"/d\"\nlisten = \"127.0.0.1:1\"\n", &["--listen=127.0.0.1:2"]).unwrap();
        assert_eq!(out, ["--listen=127.0.0.1:2", "--data-dir", "/d"]);
    }

    #[test]
    fn false_booleans_add_nothing() {
        assert_eq!(run("init = false\n", &[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = run("data-dir = \"/d\"\nlisten-on = \"x\"\n", &[]).unwrap_err();
        assert!(e.contains("unknown key 'listen-on'"), "{e}");
        let e = run("config = \"other.toml\"\n", &[]).unwrap_err();
        assert!(e.contains("unknown key 'config'"), "{e}");
    }

    #[test]
    fn wrong_shapes_are_refused() {
        assert!(run("init = \"yes\"\n", &[]).unwrap_err().contains("'init' takes true or false"));
        assert!(run("data-dir = [1]\n", &[]).unwrap_err().contains("'data-dir' takes a string or a number"));
        assert!(run("data-dir = ", &[]).is_err());
    }

    #[test]
    fn other_subcommands_and_no_config_are_untouched() {
        let argv: Vec<OsString> = vec!["kms-host".into(), "dev".into(), "--listen".into(), "x".into()];
        assert_eq!(expand(&cli(), argv.clone()).unwrap(), argv);
        let argv: Vec<OsString> = vec!["kms-host".into(), "admin".into(), "--config".into(), "x".into()];
        assert_eq!(expand(&cli(), argv.clone()).unwrap(), argv);
    }

    #[test]
    fn missing_file_and_oversized_file_fail() {
        let argv: Vec<OsString> = vec!["kms-host".into(), "dev".into(), "--config".into(), "/nonexistent.toml".into()];
        assert!(expand(&cli(), argv).unwrap_err().contains("/nonexistent.toml"));
        let big = format!("data-dir = \"{}\"\n", "x".repeat(70 * 1024));
        assert!(run(&big, &[]).unwrap_err().contains("larger than"));
    }
}
