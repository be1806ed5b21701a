//! Where sealed records live on the parent instance. The host cannot open them; it only keeps them durable and
//! answers compare-and-swap writes honestly (a dishonest host is detected by the enclave, not prevented here).

use kms_shared::storage::{RecordKind, SealedBlob, StorageError, StoredRecord};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Storage of sealed records. Every write is durable when it returns `Ok`.
pub trait BlobStore: Send + Sync {
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

impl BlobStore for SqliteStore {
    fn get(&self, kind: RecordKind, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        self.with(|c| {
            let row = c
                .query_row(
                    "SELECT version, blob FROM records WHERE kind = ?1 AND id = ?2",
                    params![u16::from(kind), id],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
                )
                .optional()
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
        let version = sql_version(version)?;
        self.with(|c| {
            let tx = c.transaction().map_err(|e| unavailable(&self.path, "begin", e))?;
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM records WHERE kind = ?1 AND id = ?2",
                    params![u16::from(kind), id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| unavailable(&self.path, "read version", e))?;
            match (current, expected) {
                (None, None) => {
                    tx.execute(
                        "INSERT INTO records (kind, id, version, blob) VALUES (?1, ?2, ?3, ?4)",
                        params![u16::from(kind), id, version, blob.0],
                    )
                    .map_err(|e| unavailable(&self.path, "insert", e))?;
                }
                (Some(cur), Some(exp)) if version_of(cur)? == exp => {
                    tx.execute(
                        "UPDATE records SET version = ?3, blob = ?4 WHERE kind = ?1 AND id = ?2",
                        params![u16::from(kind), id, version, blob.0],
                    )
                    .map_err(|e| unavailable(&self.path, "update", e))?;
                }
                _ => return Err(StorageError::Conflict),
            }
            tx.commit().map_err(|e| unavailable(&self.path, "commit", e))
        })
    }

    fn delete(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
        let expected = sql_version(expected)?;
        self.with(|c| {
            let n = c
                .execute(
                    "DELETE FROM records WHERE kind = ?1 AND id = ?2 AND version = ?3",
                    params![u16::from(kind), id, expected],
                )
                .map_err(|e| unavailable(&self.path, "delete", e))?;
            if n == 1 { Ok(()) } else { Err(StorageError::Conflict) }
        })
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
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        SqliteStore::open(&path).unwrap().put(RecordKind::Credential, "AKIA", 1, None, &blob(b"s")).unwrap();
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.get(RecordKind::Credential, "AKIA").unwrap().unwrap().sealed.0, b"s");
    }
}
