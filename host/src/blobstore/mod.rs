//! Where sealed records live on the parent instance. The host cannot open them; it only keeps them durable and
//! answers compare-and-swap writes honestly (a dishonest host is detected by the enclave, not prevented here).

#[cfg(debug_assertions)]
pub mod hostile;

use kms_shared::storage::{RecordKind, SealedBlob, StorageError, StoredRecord};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One write of a group commit ([`BlobStore::write_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// [`BlobStore::put`].
    Put { kind: RecordKind, id: String, version: u64, expected: Option<u64>, blob: SealedBlob },
    /// [`BlobStore::delete`].
    Delete { kind: RecordKind, id: String, expected: u64 },
}

/// Storage of sealed records. Every write is durable when it returns `Ok`.
pub trait BlobStore: Send + Sync {
    /// Applies `writes` in order, each with its own compare-and-swap (a conflict fails only that write, and later
    /// writes see earlier ones), and makes them durable together: every result is known only after the one commit
    /// that holds them all. A store failure fails every write of the batch. The default applies them one by one.
    fn write_batch(&self, writes: &[Write]) -> Vec<Result<(), StorageError>> {
        writes
            .iter()
            .map(|w| match w {
                Write::Put { kind, id, version, expected, blob } => self.put(*kind, id, *version, *expected, blob),
                Write::Delete { kind, id, expected } => self.delete(*kind, id, *expected),
            })
            .collect()
    }
    /// One record.
    fn get(&self, kind: RecordKind, id: &str) -> Result<Option<StoredRecord>, StorageError>;
    /// Writes `version` of a record if its current version is `expected` (`None`: it must not exist).
    fn put(
        &self,
        kind: RecordKind,
        id: &str,
        version: u64,
        expected: Option<u64>,
        blob: &SealedBlob,
    ) -> Result<(), StorageError>;
    /// Deletes a record at version `expected`.
    fn delete(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError>;
    /// Up to `limit` records with id greater than `after`, in id order, and whether more follow.
    fn list(
        &self,
        kind: RecordKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<StoredRecord>, bool), StorageError>;
}

/// The embedded store: one SQLite file in WAL mode with synchronous commits.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn unavailable(path: &Path, what: &str, e: rusqlite::Error) -> StorageError {
    tracing::error!(path = %path.display(), error = %e, "sqlite {what} failed");
    StorageError::Unavailable
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, String> {
        let conn = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS records (
                 kind INTEGER NOT NULL,
                 id TEXT NOT NULL,
                 version INTEGER NOT NULL,
                 blob BLOB NOT NULL,
                 PRIMARY KEY (kind, id)
             ) WITHOUT ROWID;",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { conn: Mutex::new(conn), path: path.to_owned() })
    }

    /// Whether the store holds any record of a kind other than `kind` (the host's own view: kinds are plaintext index
    /// fields).
    pub fn holds_other_than(&self, kind: kms_shared::storage::RecordKind) -> Result<bool, String> {
        let conn = self.conn.lock().map_err(|_| format!("{}: store lock poisoned", self.path.display()))?;
        conn.query_row("SELECT EXISTS(SELECT 1 FROM records WHERE kind != ?1)", [i64::from(u16::from(kind))], |row| {
            row.get::<_, bool>(0)
        })
        .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StorageError>) -> Result<T, StorageError> {
        let mut conn = self.conn.lock().map_err(|_| StorageError::Unavailable)?;
        f(&mut conn)
    }
}

fn version_of(v: i64) -> Result<u64, StorageError> {
    u64::try_from(v).map_err(|_| StorageError::Unavailable)
}

fn sql_version(v: u64) -> Result<i64, StorageError> {
    i64::try_from(v).map_err(|_| StorageError::Invalid)
}

/// The write's own outcome (`Ok(Err(Conflict | Invalid))` fails only it), or a store failure (`Err`).
type Applied = Result<Result<(), StorageError>, StorageError>;

/// Compare-and-swap write of one record inside the caller's transaction.
fn apply_put(
    path: &Path,
    c: &Connection,
    kind: RecordKind,
    id: &str,
    version: u64,
    expected: Option<u64>,
    blob: &SealedBlob,
) -> Applied {
    let Ok(version) = sql_version(version) else { return Ok(Err(StorageError::Invalid)) };
    let current: Option<i64> = c
        .prepare_cached("SELECT version FROM records WHERE kind = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row(params![u16::from(kind), id], |r| r.get(0)).optional())
        .map_err(|e| unavailable(path, "read version", e))?;
    match (current, expected) {
        (None, None) => {
            c.prepare_cached("INSERT INTO records (kind, id, version, blob) VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| s.execute(params![u16::from(kind), id, version, blob.0]))
                .map_err(|e| unavailable(path, "insert", e))?;
        }
        (Some(cur), Some(exp)) if version_of(cur)? == exp => {
            c.prepare_cached("UPDATE records SET version = ?3, blob = ?4 WHERE kind = ?1 AND id = ?2")
                .and_then(|mut s| s.execute(params![u16::from(kind), id, version, blob.0]))
                .map_err(|e| unavailable(path, "update", e))?;
        }
        _ => return Ok(Err(StorageError::Conflict)),
    }
    Ok(Ok(()))
}

/// Compare-and-swap delete of one record (in the caller's transaction, or on its own in autocommit mode).
fn apply_delete(path: &Path, c: &Connection, kind: RecordKind, id: &str, expected: u64) -> Applied {
    let Ok(expected) = sql_version(expected) else { return Ok(Err(StorageError::Invalid)) };
    let n = c
        .prepare_cached("DELETE FROM records WHERE kind = ?1 AND id = ?2 AND version = ?3")
        .and_then(|mut s| s.execute(params![u16::from(kind), id, expected]))
        .map_err(|e| unavailable(path, "delete", e))?;
    Ok(if n == 1 { Ok(()) } else { Err(StorageError::Conflict) })
}

impl BlobStore for SqliteStore {
    fn get(&self, kind: RecordKind, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        self.with(|c| {
            // A cached statement: a read no longer parses its SQL (the hot path of every key-cache miss).
            let row = c
                .prepare_cached("SELECT version, blob FROM records WHERE kind = ?1 AND id = ?2")
                .and_then(|mut s| {
                    s.query_row(params![u16::from(kind), id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
                        .optional()
                })
                .map_err(|e| unavailable(&self.path, "get", e))?;
            row.map(|(v, blob)| {
                Ok(StoredRecord { id: id.to_owned(), version: version_of(v)?, sealed: SealedBlob(blob) })
            })
            .transpose()
        })
    }

    fn put(
        &self,
        kind: RecordKind,
        id: &str,
        version: u64,
        expected: Option<u64>,
        blob: &SealedBlob,
    ) -> Result<(), StorageError> {
        self.with(|c| {
            let tx = c.transaction().map_err(|e| unavailable(&self.path, "begin", e))?;
            apply_put(&self.path, &tx, kind, id, version, expected, blob)??;
            tx.commit().map_err(|e| unavailable(&self.path, "commit", e))
        })
    }

    fn delete(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        self.with(|c| apply_delete(&self.path, c, kind, id, expected)?)
    }

    fn write_batch(&self, writes: &[Write]) -> Vec<Result<(), StorageError>> {
        let all_fail = || writes.iter().map(|_| Err(StorageError::Unavailable)).collect();
        let outcome = self.with(|c| {
            let tx = c.transaction().map_err(|e| unavailable(&self.path, "begin", e))?;
            let mut results = Vec::with_capacity(writes.len());
            for w in writes {
                // The outer `?` is a store failure (the whole transaction is dropped, i.e. rolled back); the inner
                // result is this write's own compare-and-swap outcome.
                let r = match w {
                    Write::Put { kind, id, version, expected, blob } => {
                        apply_put(&self.path, &tx, *kind, id, *version, *expected, blob)?
                    }
                    Write::Delete { kind, id, expected } => apply_delete(&self.path, &tx, *kind, id, *expected)?,
                };
                results.push(r);
            }
            // Nobody hears of any result before this commit (and its fsync) has returned.
            tx.commit().map_err(|e| unavailable(&self.path, "commit", e))?;
            Ok(results)
        });
        outcome.unwrap_or_else(|_| all_fail())
    }

    fn list(
        &self,
        kind: RecordKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<StoredRecord>, bool), StorageError> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, version, blob FROM records WHERE kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )
                .map_err(|e| unavailable(&self.path, "prepare list", e))?;
            let rows = stmt
                .query_map(params![u16::from(kind), after.unwrap_or(""), i64::from(limit) + 1], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?))
                })
                .map_err(|e| unavailable(&self.path, "list", e))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, v, blob) = row.map_err(|e| unavailable(&self.path, "list row", e))?;
                out.push(StoredRecord { id, version: version_of(v)?, sealed: SealedBlob(blob) });
            }
            let more = out.len() > limit as usize;
            out.truncate(limit as usize);
            Ok((out, more))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.sqlite3")).unwrap();
        (dir, s)
    }
    fn blob(b: &[u8]) -> SealedBlob {
        SealedBlob(b.to_vec())
    }

    #[test]
    fn compare_and_swap() {
        let (_d, s) = store();
        s.put(RecordKind::Key, "a", 1, None, &blob(b"1")).unwrap();
        assert_eq!(s.put(RecordKind::Key, "a", 1, None, &blob(b"x")), Err(StorageError::Conflict));
        assert_eq!(s.put(RecordKind::Key, "a", 3, Some(2), &blob(b"x")), Err(StorageError::Conflict));
        s.put(RecordKind::Key, "a", 2, Some(1), &blob(b"2")).unwrap();
        let r = s.get(RecordKind::Key, "a").unwrap().unwrap();
        assert_eq!((r.version, r.sealed.0), (2, b"2".to_vec()));
        assert!(s.get(RecordKind::Alias, "a").unwrap().is_none());
        assert_eq!(s.delete(RecordKind::Key, "a", 1), Err(StorageError::Conflict));
        s.delete(RecordKind::Key, "a", 2).unwrap();
        assert!(s.get(RecordKind::Key, "a").unwrap().is_none());
        assert_eq!(s.put(RecordKind::Key, "b", 1, Some(0), &blob(b"x")), Err(StorageError::Conflict));
    }

    #[test]
    fn paging_in_id_order() {
        let (_d, s) = store();
        for id in ["c", "a", "e", "b", "d"] {
            s.put(RecordKind::Alias, id, 1, None, &blob(id.as_bytes())).unwrap();
        }
        s.put(RecordKind::Key, "zz", 1, None, &blob(b"k")).unwrap();
        let (p1, more) = s.list(RecordKind::Alias, None, 2).unwrap();
        assert_eq!(p1.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(more);
        let (p2, more) = s.list(RecordKind::Alias, Some("b"), 3).unwrap();
        assert_eq!(p2.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["c", "d", "e"]);
        assert!(!more);
    }

    #[test]
    fn a_batch_is_one_transaction_with_per_record_compare_and_swap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let s = SqliteStore::open(&path).unwrap();
        s.put(RecordKind::Key, "c", 3, None, &blob(b"c3")).unwrap();
        let put = |id: &str, version, expected, b: &[u8]| Write::Put {
            kind: RecordKind::Key,
            id: id.into(),
            version,
            expected,
            blob: blob(b),
        };
        let results = s.write_batch(&[
            put("a", 1, None, b"a1"),
            put("b", 1, None, b"b1"),
            put("a", 1, None, b"a-again"), // CAS conflict with the write just before it in the same batch
            put("a", 2, Some(1), b"a2"),   // sees the first write of the batch
            Write::Delete { kind: RecordKind::Key, id: "c".into(), expected: 2 }, // wrong version
            put("c", 4, Some(2), b"c4"),   // wrong version
            put("d", 1, Some(7), b"d"),    // does not exist
            Write::Delete { kind: RecordKind::Key, id: "b".into(), expected: 1 },
            put("e", u64::MAX, None, b"e"), // not storable: fails alone
        ]);
        use StorageError::{Conflict, Invalid};
        assert_eq!(
            results,
            vec![
                Ok(()),
                Ok(()),
                Err(Conflict),
                Ok(()),
                Err(Conflict),
                Err(Conflict),
                Err(Conflict),
                Ok(()),
                Err(Invalid)
            ]
        );
        drop(s);
        // Durable and exactly the successful writes, after a reopen.
        let s = SqliteStore::open(&path).unwrap();
        let a = s.get(RecordKind::Key, "a").unwrap().unwrap();
        assert_eq!((a.version, a.sealed.0.as_slice()), (2, b"a2".as_slice()));
        assert!(s.get(RecordKind::Key, "b").unwrap().is_none());
        assert_eq!(s.get(RecordKind::Key, "c").unwrap().unwrap().sealed.0, b"c3");
        assert!(s.get(RecordKind::Key, "d").unwrap().is_none());
        assert!(s.get(RecordKind::Key, "e").unwrap().is_none());
        assert!(s.write_batch(&[]).is_empty());
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        SqliteStore::open(&path).unwrap().put(RecordKind::Credential, "AKIA", 1, None, &blob(b"s")).unwrap();
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.get(RecordKind::Credential, "AKIA").unwrap().unwrap().sealed.0, b"s");
    }
}
