//! Test builds only: a store wrapper that plays a dishonest host on a script, for tests of what the enclave detects.
//!
//! `kms-host dev` built with debug assertions wraps its store in [`Hostile`] when `KMS_HOSTILE_STORE` names a control
//! file; release builds ignore the variable (this module is not compiled into them). The control file is JSON, read
//! again whenever it changes (which resets the rules' counters and stale snapshots):
//!
//! ```json
//! {"rules": [
//!   {"op": "get", "kind": 3, "id": "alias/payroll", "action": "hide", "times": 1},
//!   {"op": "put", "kind": 3, "id": "alias/payroll", "action": "ack_without_write"},
//!   {"op": "get", "kind": 2, "id": "KEY-ID", "action": "stale", "times": 1}
//! ]}
//! ```
//!
//! - `hide`: a get answers "absent", a listing leaves the record out.
//! - `ack_without_write`: a put (in a batch or alone) is acknowledged and not written.
//! - `stale`: a get answers with the record as it was when the rules were loaded (a read delayed past later writes).
//!
//! Faults (issue 19; tests/e2e/test_faults.py):
//!
//! - `io_error`: the operation fails as a failing disk makes SQLite fail (`StorageError::Unavailable`); on a write,
//!   the whole batch it is in fails and none of it is written (as a failed commit).
//! - `full`: the same for a write, logged as a full disk (SQLite's `SQLITE_FULL` maps to the same error).
//! - `slow`: the operation waits `delay_ms` first (inside the batch commit for a write: a slow fsync), then is honest.
//! - `die`: the host process exits at once inside the batch (or the read), before anything of it is committed.
//!
//! `kind` is the record kind's number (`kms_shared::storage::RecordKind`; optional for the faults: any kind when
//! absent), `id` is optional (any id when absent; a `list` rule takes none), `times` is optional (every time when absent). After every operation the counts of operations by kind are written
//! (atomically) to the control file's path with `.stats` appended: `{"get": {"4": 1}, "put": {...}, "list": {...},
//! "delete": {...}}`.

use super::{BlobStore, Write};
use kms_shared::storage::{RecordKind, SealedBlob, StorageError, StoredRecord};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The environment variable naming the control file.
pub const ENV: &str = "KMS_HOSTILE_STORE";

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Op {
    Get,
    Put,
    List,
    Delete,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Action {
    Hide,
    AckWithoutWrite,
    Stale,
    IoError,
    Full,
    Slow,
    Die,
}

#[derive(Deserialize, Clone, Debug)]
struct Rule {
    op: Op,
    #[serde(default)]
    kind: Option<u16>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    delay_ms: u64,
    action: Action,
    #[serde(default)]
    times: Option<u64>,
}

#[derive(Deserialize, Default)]
struct Script {
    rules: Vec<Rule>,
}

/// A rule with its remaining uses and, for `stale`, the record as it was at load.
struct Armed {
    rule: Rule,
    left: Option<u64>,
    snapshot: Option<StoredRecord>,
}

#[derive(Default)]
struct State {
    stamp: Option<(SystemTime, u64)>,
    armed: Vec<Armed>,
    counts: BTreeMap<&'static str, BTreeMap<u16, u64>>,
}

/// An injected failure, logged as the real store logs its failures.
fn injected(op: &str, what: &str) -> StorageError {
    tracing::error!(op, error = what, "sqlite {op} failed (injected by the hostile store)");
    StorageError::Unavailable
}

/// A [`BlobStore`] that lies as its control file says.
pub struct Hostile {
    inner: Arc<dyn BlobStore>,
    control: PathBuf,
    stats: PathBuf,
    state: Mutex<State>,
}

/// Wraps `store` when [`ENV`] is set; the store itself otherwise.
pub fn wrap_from_env(store: Arc<dyn BlobStore>) -> Arc<dyn BlobStore> {
    match std::env::var_os(ENV) {
        Some(path) if !path.is_empty() => {
            eprintln!(
                "kms-host: TEST BUILD: the record store follows the hostile script {}",
                Path::new(&path).display()
            );
            Arc::new(Hostile::new(store, PathBuf::from(path)))
        }
        _ => store,
    }
}

impl Hostile {
    /// Wraps `inner`, following the script at `control`.
    pub fn new(inner: Arc<dyn BlobStore>, control: PathBuf) -> Self {
        let mut stats = control.clone().into_os_string();
        stats.push(".stats");
        Self { inner, control, stats: PathBuf::from(stats), state: Mutex::new(State::default()) }
    }

    /// Re-reads the script if it changed; returns the locked state.
    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, StorageError> {
        let mut st = self.state.lock().map_err(|_| StorageError::Unavailable)?;
        let stamp = std::fs::metadata(&self.control).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp != st.stamp {
            st.stamp = stamp;
            let script: Script = std::fs::read(&self.control)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| eprintln!("hostile script: {e}")).ok())
                .unwrap_or_default();
            st.armed = script
                .rules
                .into_iter()
                .map(|rule| {
                    let kind = rule.kind.map(RecordKind::try_from);
                    let snapshot = match (rule.action, kind, rule.id.as_deref()) {
                        (Action::Stale, Some(Ok(kind)), Some(id)) => self.inner.get(kind, id).ok().flatten(),
                        _ => None,
                    };
                    Armed { left: rule.times, rule, snapshot }
                })
                .collect();
        }
        Ok(st)
    }

    fn count(&self, st: &mut State, op: &'static str, kind: RecordKind) {
        *st.counts.entry(op).or_default().entry(kind.into()).or_default() += 1;
        if let Ok(text) = serde_json::to_vec(&st.counts) {
            let mut tmp = self.stats.clone().into_os_string();
            tmp.push(".tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &self.stats);
            }
        }
    }
}

/// What a rule that fired does.
struct Fired {
    action: Action,
    snapshot: Option<StoredRecord>,
    delay: Duration,
}

/// The first armed rule for (`op`, `kind`, `id`) with uses left; uses one.
fn fire(st: &mut State, op: Op, kind: RecordKind, id: &str) -> Option<Fired> {
    let k: u16 = kind.into();
    let armed = st.armed.iter_mut().find(|a| {
        a.rule.op == op
            && a.rule.kind.is_none_or(|r| r == k)
            && a.rule.id.as_deref().is_none_or(|r| r == id)
            && a.left != Some(0)
    })?;
    if let Some(n) = armed.left.as_mut() {
        *n -= 1;
    }
    Some(Fired {
        action: armed.rule.action,
        snapshot: armed.snapshot.clone(),
        delay: Duration::from_millis(armed.rule.delay_ms),
    })
}

/// `die`: the host stops here, as a crash or a power cut would stop it (no clean-up, nothing more committed).
fn die(where_: &str) -> ! {
    eprintln!("kms-host: TEST BUILD: the hostile store dies inside {where_}");
    std::process::exit(DIE_EXIT_CODE)
}

/// The exit code of `die`.
pub const DIE_EXIT_CODE: i32 = 86;

impl BlobStore for Hostile {
    fn get(&self, kind: RecordKind, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        let mut st = self.state()?;
        self.count(&mut st, "get", kind);
        let fired = fire(&mut st, Op::Get, kind, id);
        drop(st);
        match fired {
            Some(Fired { action: Action::Hide, .. }) => Ok(None),
            Some(Fired { action: Action::Stale, snapshot, .. }) => Ok(snapshot),
            Some(Fired { action: Action::IoError, .. }) => Err(injected("get", "I/O error")),
            Some(Fired { action: Action::Die, .. }) => die("get"),
            Some(Fired { action: Action::Slow, delay, .. }) => {
                std::thread::sleep(delay);
                self.inner.get(kind, id)
            }
            _ => self.inner.get(kind, id),
        }
    }

    fn put(
        &self,
        kind: RecordKind,
        id: &str,
        version: u64,
        expected: Option<u64>,
        blob: &SealedBlob,
    ) -> Result<(), StorageError> {
        self.write_batch(&[Write::Put { kind, id: id.to_owned(), version, expected, blob: blob.clone() }])
            .pop()
            .unwrap_or(Err(StorageError::Unavailable))
    }

    fn delete(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        self.write_batch(&[Write::Delete { kind, id: id.to_owned(), expected }])
            .pop()
            .unwrap_or(Err(StorageError::Unavailable))
    }

    fn write_batch(&self, writes: &[Write]) -> Vec<Result<(), StorageError>> {
        let Ok(mut st) = self.state() else { return writes.iter().map(|_| Err(StorageError::Unavailable)).collect() };
        let mut passed = Vec::with_capacity(writes.len());
        let mut faked = Vec::with_capacity(writes.len());
        let (mut failure, mut dying, mut delay) = (None, false, Duration::ZERO);
        for w in writes {
            let (op, kind, id, name) = match w {
                Write::Put { kind, id, .. } => (Op::Put, *kind, id, "put"),
                Write::Delete { kind, id, .. } => (Op::Delete, *kind, id, "delete"),
            };
            self.count(&mut st, name, kind);
            let fired = fire(&mut st, op, kind, id);
            match fired.as_ref().map(|f| f.action) {
                Some(Action::IoError) => failure = failure.or(Some("I/O error")),
                Some(Action::Full) => failure = failure.or(Some("database or disk is full")),
                Some(Action::Die) => dying = true,
                Some(Action::Slow) => delay += fired.as_ref().map(|f| f.delay).unwrap_or_default(),
                _ => {}
            }
            let lie = matches!(fired, Some(Fired { action: Action::AckWithoutWrite, .. }));
            faked.push(lie);
            if !lie {
                passed.push(w.clone());
            }
        }
        drop(st);
        std::thread::sleep(delay);
        if dying {
            die("write_batch, before its commit");
        }
        if let Some(what) = failure {
            // A failed commit writes nothing: every write of the batch fails.
            return writes.iter().map(|_| Err(injected("write_batch", what))).collect();
        }
        let mut real = self.inner.write_batch(&passed).into_iter();
        faked
            .into_iter()
            .map(|lie| if lie { Ok(()) } else { real.next().unwrap_or(Err(StorageError::Unavailable)) })
            .collect()
    }

    fn list(
        &self,
        kind: RecordKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<StoredRecord>, bool), StorageError> {
        let mut st = self.state()?;
        self.count(&mut st, "list", kind);
        match fire(&mut st, Op::List, kind, "").map(|f| (f.action, f.delay)) {
            Some((Action::IoError, _)) => return Err(injected("list", "I/O error")),
            Some((Action::Die, _)) => die("list"),
            Some((Action::Slow, delay)) => std::thread::sleep(delay),
            _ => {}
        }
        drop(st);
        let (mut records, more) = self.inner.list(kind, after, limit)?;
        let mut st = self.state()?;
        records.retain(|r| !matches!(fire(&mut st, Op::Get, kind, &r.id), Some(Fired { action: Action::Hide, .. })));
        Ok((records, more))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::blobstore::SqliteStore;

    #[test]
    fn follows_its_script_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn BlobStore> = Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap());
        let control = dir.path().join("script.json");
        let h = Hostile::new(inner.clone(), control.clone());
        let blob = |b: &[u8]| SealedBlob(b.to_vec());
        h.put(RecordKind::Alias, "a", 1, None, &blob(b"one")).unwrap();
        std::fs::write(
            &control,
            r#"{"rules":[{"op":"get","kind":3,"id":"a","action":"hide","times":1},
                         {"op":"put","kind":3,"id":"b","action":"ack_without_write"},
                         {"op":"get","kind":3,"id":"a","action":"stale","times":1}]}"#,
        )
        .unwrap();
        assert!(h.get(RecordKind::Alias, "a").unwrap().is_none(), "hidden once");
        h.put(RecordKind::Alias, "a", 2, Some(1), &blob(b"two")).unwrap();
        assert_eq!(h.get(RecordKind::Alias, "a").unwrap().unwrap().version, 1, "then stale once");
        assert_eq!(h.get(RecordKind::Alias, "a").unwrap().unwrap().version, 2, "then honest");
        h.put(RecordKind::Alias, "b", 1, None, &blob(b"b")).unwrap();
        assert!(inner.get(RecordKind::Alias, "b").unwrap().is_none(), "acknowledged, not written");
        let stats: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("script.json.stats")).unwrap()).unwrap();
        assert_eq!(stats["get"]["3"], 3);
        assert_eq!(stats["put"]["3"], 3);
    }

    #[test]
    fn injects_faults() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn BlobStore> = Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap());
        let control = dir.path().join("script.json");
        let h = Hostile::new(inner.clone(), control.clone());
        let blob = |b: &[u8]| SealedBlob(b.to_vec());
        h.put(RecordKind::Alias, "a", 1, None, &blob(b"one")).unwrap();
        std::fs::write(
            &control,
            r#"{"rules":[{"op":"get","kind":3,"action":"io_error","times":1},
                         {"op":"list","action":"io_error","times":1},
                         {"op":"put","id":"full","action":"full"},
                         {"op":"delete","kind":3,"action":"io_error","times":1},
                         {"op":"put","id":"slow","action":"slow","delay_ms":150}]}"#,
        )
        .unwrap();
        assert_eq!(h.get(RecordKind::Alias, "a").unwrap_err(), StorageError::Unavailable);
        assert_eq!(h.get(RecordKind::Alias, "a").unwrap().unwrap().version, 1, "once");
        assert_eq!(h.list(RecordKind::Alias, None, 10).unwrap_err(), StorageError::Unavailable);
        assert_eq!(h.list(RecordKind::Alias, None, 10).unwrap().0.len(), 1, "once");
        // A full disk fails the whole batch (any kind), and nothing of it is written.
        let batch = [
            Write::Put { kind: RecordKind::Alias, id: "b".into(), version: 1, expected: None, blob: blob(b"b") },
            Write::Put { kind: RecordKind::Key, id: "full".into(), version: 1, expected: None, blob: blob(b"f") },
        ];
        assert_eq!(h.write_batch(&batch), vec![Err(StorageError::Unavailable), Err(StorageError::Unavailable)]);
        assert!(inner.get(RecordKind::Alias, "b").unwrap().is_none(), "a failed commit writes nothing");
        assert_eq!(h.delete(RecordKind::Alias, "a", 1).unwrap_err(), StorageError::Unavailable);
        assert!(inner.get(RecordKind::Alias, "a").unwrap().is_some());
        let t = std::time::Instant::now();
        h.put(RecordKind::Alias, "slow", 1, None, &blob(b"s")).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(150), "the commit waited");
        assert!(inner.get(RecordKind::Alias, "slow").unwrap().is_some(), "then wrote");
    }
}
