//! Endpoint URLs, region and credential discovery, as the AWS CLI and SDKs do it.

use std::path::{Path, PathBuf};

use crate::sigv4::Credentials;

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("bad endpoint {0:?}: {1}")]
    Endpoint(String, &'static str),
    #[error("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or provide {0} with profile [{1}]")]
    NoCredentials(String, String),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
}

/// A parsed endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    /// Host name or IP address (without IPv6 brackets), for connecting and for TLS server name checks.
    pub host: String,
    pub port: u16,
    /// The `Host` header value: `host[:port]`, port left out when it is the scheme's default.
    pub authority: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let bad = |why| ConfigError::Endpoint(url.to_owned(), why);
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("must start with https:// or http://"));
        };
        let authority = match rest.find('/') {
            Some(i) => {
                let (a, path) = rest.split_at(i);
                if path != "/" {
                    return Err(bad("only the root path / is supported"));
                }
                a
            }
            None => rest,
        };
        if authority.is_empty() || authority.contains('@') || authority.contains('?') || authority.contains('#') {
            return Err(bad("needs HOST[:PORT] and nothing else"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed [ in IPv6 address"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("junk after IPv6 address")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad("bad port"))?,
            None => default_port,
        };
        let host_part = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
        let authority = if port == default_port { host_part } else { format!("{host_part}:{port}") };
        Ok(Self { tls, host: host.to_owned(), port, authority })
    }
}

/// Looks up environment variables through `env` (so tests need not touch the process environment).
pub fn region(arg: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
    arg.map(str::to_owned)
        .or_else(|| env("AWS_DEFAULT_REGION").filter(|s| !s.is_empty()))
        .or_else(|| env("AWS_REGION").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "us-east-1".to_owned())
}

/// Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else the shared-credentials file
/// (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials), profile AWS_PROFILE or `default`.
pub fn credentials(env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, ConfigError> {
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        && !id.is_empty()
        && !secret.is_empty()
    {
        return Ok(Credentials { access_key_id: id, secret_access_key: secret });
    }
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws").join("credentials")))
        .unwrap_or_else(|| PathBuf::from(".aws/credentials"));
    let profile = env("AWS_PROFILE").filter(|s| !s.is_empty()).unwrap_or_else(|| "default".to_owned());
    let missing = || ConfigError::NoCredentials(file.display().to_string(), profile.clone());
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(ConfigError::Read(file.display().to_string(), e)),
    };
    parse_shared_credentials(&text, &profile).ok_or_else(missing)
}

/// Reads one profile of an INI-style shared-credentials file.
pub fn parse_shared_credentials(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut id, mut secret) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            in_profile = section == profile || section.strip_prefix("profile ").map(str::trim) == Some(profile);
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_owned()),
                "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    Some(Credentials { access_key_id: id.filter(|s| !s.is_empty())?, secret_access_key: secret? })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!(e, Endpoint { tls: true, host: "127.0.0.1".into(), port: 8443, authority: "127.0.0.1:8443".into() });
        let e = Endpoint::parse("http://localhost:5000/").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.authority.as_str()),
            (false, "localhost", 5000, "localhost:5000")
        );
        let e = Endpoint::parse("https://kms.example.com").unwrap();
        assert_eq!((e.port, e.authority.as_str()), (443, "kms.example.com"));
        let e = Endpoint::parse("https://kms.example.com:443").unwrap();
        assert_eq!(e.authority, "kms.example.com");
        let e = Endpoint::parse("https://[::1]:9443").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.authority.as_str()), ("::1", 9443, "[::1]:9443"));
        for bad in ["ftp://x", "127.0.0.1:1", "https://", "https://h:0", "https://h:x", "https://h/path", "https://u@h"]
        {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn regions() {
        assert_eq!(region(Some("eu-west-3"), &env_of(&[("AWS_DEFAULT_REGION", "x")])), "eu-west-3");
        assert_eq!(region(None, &env_of(&[("AWS_DEFAULT_REGION", "a"), ("AWS_REGION", "b")])), "a");
        assert_eq!(region(None, &env_of(&[("AWS_REGION", "b")])), "b");
        assert_eq!(region(None, &env_of(&[])), "us-east-1");
    }

    #[test]
    fn credentials_from_env_then_file() {
        let c = credentials(&env_of(&[("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "S")])).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str()), ("AK", "S"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "# comment\n[default]\naws_access_key_id = D\naws_secret_access_key = DS\n\n\
             [bench]\naws_access_key_id=B\naws_secret_access_key=B/S+x=\nregion = x\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let c = credentials(&env_of(&[("AWS_SHARED_CREDENTIALS_FILE", f)])).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str()), ("D", "DS"));
        let c = credentials(&env_of(&[("AWS_SHARED_CREDENTIALS_FILE", f), ("AWS_PROFILE", "bench")])).unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str()), ("B", "B/S+x="));
        assert!(matches!(
            credentials(&env_of(&[("AWS_SHARED_CREDENTIALS_FILE", f), ("AWS_PROFILE", "none")])),
            Err(ConfigError::NoCredentials(..))
        ));
        let home = dir.path().to_str().unwrap();
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::copy(&file, dir.path().join(".aws/credentials")).unwrap();
        let c = credentials(&env_of(&[("HOME", home)])).unwrap();
        assert_eq!(c.access_key_id, "D");
        assert!(credentials(&env_of(&[("HOME", "/nonexistent")])).is_err());
    }
}
