//! Files the host writes into the data directory for the operator: atomically (temporary file in the same
//! directory, fsync, rename, fsync of the directory), with errors that name the path.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `contents` to `path` atomically with file mode `mode`.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    // A bare file name ("ca.pem") has the empty path as its parent: that is the current directory.
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => return Err(format!("{}: no parent directory", path.display())),
    };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| format!("{}: bad file name", path.display()))?;
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let err = |what: &str, p: &Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| err("cannot create", &tmp, e))?;
    f.write_all(contents).map_err(|e| err("cannot write", &tmp, e))?;
    f.sync_all().map_err(|e| err("cannot sync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| err("cannot rename into", path, e))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| err("cannot sync directory", dir, e))
}

/// Quotes a value for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-:".contains(&b)) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_atomically_with_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("credentials");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1, "no temporary file left behind");
        assert!(write_atomic(&d.path().join("missing/x"), b"", 0o600).unwrap_err().contains("missing"));
    }

    #[test]
    fn bare_file_names_are_written_in_the_current_directory() {
        let name = format!(".write-atomic-test-{}", std::process::id());
        assert_eq!(Path::new(&name).parent(), Some(Path::new("")), "the case being tested");
        write_atomic(Path::new(&name), b"x", 0o644).unwrap();
        let written = std::env::current_dir().unwrap().join(&name);
        assert_eq!(fs::read(&written).unwrap(), b"x");
        fs::remove_file(written).unwrap();
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/tmp/a-b/ca.pem"), "/tmp/a-b/ca.pem");
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
