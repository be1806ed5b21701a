//! The enclave's client for the host's record store.
//!
//! One stream carries many requests at once: each frame has an id and answers may come in any order. Everything the
//! host answers is untrusted: frames are size-checked before allocation, and [`Records`] opens every blob under the
//! domain key with its kind, id and version in the AAD, and keeps per-record version high-water marks so that a host
//! that replays an older version (or hides a record it had shown) is caught within this enclave's life.

use crate::crypto::blob;
use crate::crypto::secret::Key256;
use kms_shared::frame;
use kms_shared::storage::{
    EnclaveMessage, HostMessage, RecordKind, SealedBlob, StorageError, StorageOp, StorageReply, StoredRecord,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

/// How long one storage request may take before it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Storage failures as the enclave sees them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The channel to the host is gone.
    #[error("storage channel closed")]
    Closed,
    /// The host did not answer in time.
    #[error("storage request timed out")]
    Timeout,
    /// The host reported an error.
    #[error("host storage error: {0}")]
    Host(StorageError),
    /// The host answered with something that is not a valid answer to the request.
    #[error("unexpected answer from the host")]
    Protocol,
    /// A record failed authentication, or an older version came back than one already seen.
    #[error("record {kind:?}/{id} failed integrity checks ({why})")]
    Integrity {
        /// Kind of the record.
        kind: RecordKind,
        /// Id of the record.
        id: String,
        /// What failed.
        why: &'static str,
    },
    /// Encoding failed.
    #[error("encoding: {0}")]
    Encode(String),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<StorageReply, StorageError>>>>>;

/// Raw request/answer channel to the host.
#[derive(Clone)]
pub struct Channel {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
}

impl Channel {
    /// Starts the reader and writer tasks over `stream`. The returned receiver fires when the channel dies.
    pub fn start<S>(stream: S) -> (Channel, oneshot::Receiver<()>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (dead_tx, dead_rx) = oneshot::channel();

        tokio::spawn(async move {
            while let Some(buf) = rx.recv().await {
                if wr.write_all(&buf).await.is_err() {
                    break;
                }
            }
        });

        let reader_pending = pending.clone();
        let closed = Arc::new(AtomicBool::new(false));
        let reader_closed = closed.clone();
        tokio::spawn(async move {
            let why = read_loop(&mut rd, &reader_pending).await;
            tracing::error!(error = %why, "storage channel to the host ended");
            // Set before clearing, so a caller that registers after the clear sees the flag.
            reader_closed.store(true, Ordering::SeqCst);
            if let Ok(mut p) = reader_pending.lock() {
                p.clear(); // dropping the senders fails every waiter with Closed
            }
            let _ = dead_tx.send(());
        });

        (Channel { tx, pending, next_id: Arc::new(AtomicU64::new(1)), closed }, dead_rx)
    }

    /// Sends one request and waits for its answer.
    pub async fn call(&self, op: StorageOp) -> Result<StorageReply, StoreError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let buf = frame::encode(&EnclaveMessage { id, op }).map_err(|e| StoreError::Encode(e.to_string()))?;
        let (otx, orx) = oneshot::channel();
        self.pending.lock().map_err(|_| StoreError::Closed)?.insert(id, otx);
        if self.closed.load(Ordering::SeqCst) {
            self.forget(id);
            return Err(StoreError::Closed);
        }
        if self.tx.send(buf).await.is_err() {
            self.forget(id);
            return Err(StoreError::Closed);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, orx).await {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(e))) => Err(StoreError::Host(e)),
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => {
                self.forget(id);
                Err(StoreError::Timeout)
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(rd: &mut R, pending: &Pending) -> String {
    loop {
        let mut header = [0u8; frame::HEADER_LEN];
        if let Err(e) = rd.read_exact(&mut header).await {
            return format!("read: {e}");
        }
        let len = match frame::body_len(header) {
            Ok(n) => n,
            Err(e) => return format!("bad frame: {e}"),
        };
        let mut body = vec![0u8; len];
        if let Err(e) = rd.read_exact(&mut body).await {
            return format!("read (mid-frame): {e}");
        }
        let msg: HostMessage = match frame::decode(&body) {
            Ok(m) => m,
            Err(e) => return format!("bad frame body: {e}"),
        };
        let waiter = match pending.lock() {
            Ok(mut p) => p.remove(&msg.id),
            Err(_) => return "poisoned".into(),
        };
        match waiter {
            Some(w) => {
                let _ = w.send(msg.result);
            }
            None => tracing::warn!(id = msg.id, "answer for no pending request; ignored"),
        }
    }
}

/// What the high-water map knows of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Present(u64),
    Deleted(u64),
}

/// Most records [`HighWater`] tracks: a table of 2^20 buckets of 16 bytes (about 17 MiB) at most.
pub const HIGH_WATER_CAP: usize = 917_504;

/// How many marks eviction looks at for one that is not a deletion.
const EVICTION_SCAN: usize = 64;

/// Top bit of a mark: the record was deleted at the version in the other bits.
const DELETED: u64 = 1 << 63;

/// Hashes a `u64` that is already a keyed hash: the identity.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Per-record version high-water marks, compact and bounded.
///
/// - A record is named by a 64-bit SipHash of (kind, id) under a key drawn at start (`RandomState`), not by its id:
///   16 bytes per tracked record. Two records sharing a hash (about 2^-25 likely at the cap) share a mark: a false
///   alarm or a missed check for them, never a wrong answer served.
/// - A record seen only at version 1 is not tracked: nothing older than version 1 exists to roll back to (a record
///   re-created after a delete continues at the deleted version + 1, so it is tracked). What is given up is noticing
///   that the host hides such a record after showing it, which a host can do anyway by not answering.
/// - At most [`HIGH_WATER_CAP`] marks: past it, one mark is forgotten for each new one (a present-version mark
///   rather than a deletion mark when one is among the first few looked at), and that record's
///   rollback check starts afresh from the next version seen (the AEAD still binds kind, id and version).
struct HighWater {
    hasher: std::hash::RandomState,
    marks: HashMap<u64, u64, std::hash::BuildHasherDefault<PassThrough>>,
    cap: usize,
}

impl HighWater {
    fn new(cap: usize) -> Self {
        Self { hasher: std::hash::RandomState::new(), marks: HashMap::default(), cap: cap.max(1) }
    }

    fn slot(&self, kind: RecordKind, id: &str) -> u64 {
        use std::hash::BuildHasher as _;
        self.hasher.hash_one((kind, id))
    }

    fn get(&self, kind: RecordKind, id: &str) -> Option<Seen> {
        let mark = *self.marks.get(&self.slot(kind, id))?;
        Some(if mark & DELETED != 0 { Seen::Deleted(mark & !DELETED) } else { Seen::Present(mark) })
    }

    fn note(&mut self, kind: RecordKind, id: &str, seen: Seen) {
        let slot = self.slot(kind, id);
        let mark = match seen {
            Seen::Present(v) if v <= 1 && !self.marks.contains_key(&slot) => return,
            Seen::Present(v) => v & !DELETED,
            Seen::Deleted(v) => (v & !DELETED) | DELETED,
        };
        if self.marks.len() >= self.cap && !self.marks.contains_key(&slot) {
            // Deletion marks are what keep a revoked access key, a deleted alias or a destroyed key's record from
            // coming back: forget a present-version mark if one is near at hand.
            let victim = self
                .marks
                .iter()
                .take(EVICTION_SCAN)
                .find(|(_, m)| **m & DELETED == 0)
                .or_else(|| self.marks.iter().next())
                .map(|(k, _)| *k);
            if let Some(victim) = victim {
                self.marks.remove(&victim);
            }
        }
        self.marks.insert(slot, mark);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.marks.len()
    }
}

/// An opened record: its version and its plaintext body.
pub struct Opened {
    /// The record's version.
    pub version: u64,
    /// The plaintext body (zeroized on drop).
    pub body: Zeroizing<Vec<u8>>,
}

/// Sealed records over a [`Channel`]: seal on write, open and check on read.
pub struct Records {
    channel: Channel,
    domain_key: Key256,
    seen: Mutex<HighWater>,
}

impl Records {
    /// Records sealed under `domain_key`.
    pub fn new(channel: Channel, domain_key: Key256) -> Self {
        Self { channel, domain_key, seen: Mutex::new(HighWater::new(HIGH_WATER_CAP)) }
    }

    /// A key for another purpose derived from the domain key (HKDF-SHA256, `label` as info): it changes with the
    /// domain key and nothing but this enclave can compute it.
    pub fn derive_key(&self, label: &[u8]) -> Key256 {
        blob::derive_subkey(&self.domain_key, label)
    }

    /// The raw channel (for operations that carry no record).
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    fn check_seen(&self, kind: RecordKind, id: &str, found: Option<u64>) -> Result<(), StoreError> {
        let mut seen = self.seen.lock().map_err(|_| StoreError::Closed)?;
        let prior = seen.get(kind, id);
        let fail = |why| Err(StoreError::Integrity { kind, id: id.to_owned(), why });
        match (prior, found) {
            (Some(Seen::Present(v)), Some(f)) if f < v => return fail("rollback to an older version"),
            (Some(Seen::Present(_)), None) => return fail("a record seen before is missing"),
            (Some(Seen::Deleted(v)), Some(f)) if f <= v => return fail("a deleted record came back"),
            _ => {}
        }
        if let Some(f) = found {
            seen.note(kind, id, Seen::Present(f));
        }
        Ok(())
    }

    fn open(&self, kind: RecordKind, rec: &StoredRecord) -> Result<Opened, StoreError> {
        let body = blob::open_record(&self.domain_key, kind, &rec.id, rec.version, &rec.sealed.0)
            .map_err(|_| StoreError::Integrity { kind, id: rec.id.clone(), why: "authentication failed" })?;
        Ok(Opened { version: rec.version, body })
    }

    /// Seals bytes that leave the enclave without being stored (an import token), bound to `kind` and `id`.
    pub fn seal_transient(&self, kind: RecordKind, id: &str, body: &[u8]) -> Result<Vec<u8>, StoreError> {
        blob::seal_record(&self.domain_key, kind, id, 0, body).map_err(|_| StoreError::Encode("seal".into()))
    }

    /// Opens what [`Records::seal_transient`] sealed for this `kind` and `id`; `None` if it is not that.
    pub fn open_transient(&self, kind: RecordKind, id: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        blob::open_record(&self.domain_key, kind, id, 0, sealed).ok()
    }

    /// Reads and opens one record.
    pub async fn get(&self, kind: RecordKind, id: &str) -> Result<Option<Opened>, StoreError> {
        let reply = self.channel.call(StorageOp::Get { kind, id: id.to_owned() }).await?;
        let StorageReply::Record(rec) = reply else { return Err(StoreError::Protocol) };
        match rec {
            None => {
                self.check_seen(kind, id, None)?;
                Ok(None)
            }
            Some(rec) => {
                if rec.id != id {
                    return Err(StoreError::Protocol);
                }
                let opened = self.open(kind, &rec)?;
                self.check_seen(kind, id, Some(rec.version))?;
                Ok(Some(opened))
            }
        }
    }

    /// Seals and writes a record. `expected` is the version being replaced (`None` for a new record). Returns the
    /// new version. Fails with [`StoreError::Host`]`(Conflict)` if another writer got there first.
    pub async fn put(&self, kind: RecordKind, id: &str, expected: Option<u64>, body: &[u8]) -> Result<u64, StoreError> {
        let version = match expected {
            Some(v) => v.checked_add(1).ok_or(StoreError::Protocol)?,
            None => match self.seen.lock().map_err(|_| StoreError::Closed)?.get(kind, id) {
                // A record re-created after a delete continues the version sequence, so the old one cannot return.
                Some(Seen::Deleted(v)) => v.saturating_add(1),
                _ => 1,
            },
        };
        let sealed = blob::seal_record(&self.domain_key, kind, id, version, body)
            .map_err(|_| StoreError::Encode("seal".into()))?;
        let op = StorageOp::Put { kind, id: id.to_owned(), version, expected, sealed: SealedBlob(sealed) };
        match self.channel.call(op).await? {
            StorageReply::Done => {
                self.seen.lock().map_err(|_| StoreError::Closed)?.note(kind, id, Seen::Present(version));
                Ok(version)
            }
            _ => Err(StoreError::Protocol),
        }
    }

    /// Deletes a record at `expected` version.
    pub async fn delete(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StoreError> {
        match self.channel.call(StorageOp::Delete { kind, id: id.to_owned(), expected }).await? {
            StorageReply::Done => {
                self.seen.lock().map_err(|_| StoreError::Closed)?.note(kind, id, Seen::Deleted(expected));
                Ok(())
            }
            _ => Err(StoreError::Protocol),
        }
    }

    /// Lists and opens up to `limit` records after `after`, in id order. Returns `(id, opened)` pairs and whether
    /// more follow. Every record is authenticated; ids out of order or outside the range are refused.
    pub async fn list(
        &self,
        kind: RecordKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<(String, Opened)>, bool), StoreError> {
        let op = StorageOp::List { kind, after: after.map(str::to_owned), limit };
        let StorageReply::Listed { records, more } = self.channel.call(op).await? else {
            return Err(StoreError::Protocol);
        };
        if records.len() > limit as usize {
            return Err(StoreError::Protocol);
        }
        let mut out = Vec::with_capacity(records.len());
        let mut last: Option<&str> = after;
        for rec in &records {
            if last.is_some_and(|l| rec.id.as_str() <= l) {
                return Err(StoreError::Protocol);
            }
            let opened = self.open(kind, rec)?;
            self.check_seen(kind, &rec.id, Some(rec.version))?;
            out.push((rec.id.clone(), opened));
            last = Some(rec.id.as_str());
        }
        Ok((out, more))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// A scripted host on the other end of a duplex pipe: answers each request with `answer(op)`.
    fn fake_host(answer: impl Fn(&StorageOp) -> Result<StorageReply, StorageError> + Send + 'static) -> Channel {
        let (a, mut b) = duplex(1 << 20);
        tokio::spawn(async move {
            loop {
                let mut h = [0u8; frame::HEADER_LEN];
                if b.read_exact(&mut h).await.is_err() {
                    return;
                }
                let mut body = vec![0u8; frame::body_len(h).unwrap()];
                b.read_exact(&mut body).await.unwrap();
                let msg: EnclaveMessage = frame::decode(&body).unwrap();
                let reply = HostMessage { id: msg.id, result: answer(&msg.op) };
                b.write_all(&frame::encode(&reply).unwrap()).await.unwrap();
            }
        });
        Channel::start(a).0
    }

    fn dk() -> Key256 {
        Key256::from_slice(&[3u8; 32]).unwrap()
    }

    #[tokio::test]
    async fn detects_swapped_record() {
        let sealed = blob::seal_record(&dk(), RecordKind::Key, "other", 1, b"x").unwrap();
        let ch = fake_host(move |_| {
            Ok(StorageReply::Record(Some(StoredRecord {
                id: "mine".into(),
                version: 1,
                sealed: SealedBlob(sealed.clone()),
            })))
        });
        let r = Records::new(ch, dk());
        assert!(matches!(r.get(RecordKind::Key, "mine").await, Err(StoreError::Integrity { .. })));
    }

    #[tokio::test]
    async fn detects_rollback_and_hiding() {
        let v1 = blob::seal_record(&dk(), RecordKind::Alias, "a", 1, b"one").unwrap();
        let v2 = blob::seal_record(&dk(), RecordKind::Alias, "a", 2, b"two").unwrap();
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let ch = fake_host(move |_| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            Ok(StorageReply::Record(match n {
                0 => Some(StoredRecord { id: "a".into(), version: 2, sealed: SealedBlob(v2.clone()) }),
                1 => Some(StoredRecord { id: "a".into(), version: 1, sealed: SealedBlob(v1.clone()) }),
                _ => None,
            }))
        });
        let r = Records::new(ch, dk());
        assert_eq!(&r.get(RecordKind::Alias, "a").await.unwrap().unwrap().body[..], b"two");
        assert!(matches!(r.get(RecordKind::Alias, "a").await, Err(StoreError::Integrity { .. })));
        assert!(matches!(r.get(RecordKind::Alias, "a").await, Err(StoreError::Integrity { .. })));
    }

    #[test]
    fn high_water_marks_are_compact_and_bounded() {
        let mut hw = HighWater::new(4);
        hw.note(RecordKind::Key, "a", Seen::Present(1));
        assert_eq!((hw.len(), hw.get(RecordKind::Key, "a")), (0, None), "version 1 has nothing older: untracked");
        hw.note(RecordKind::Key, "a", Seen::Present(3));
        assert_eq!(hw.get(RecordKind::Key, "a"), Some(Seen::Present(3)));
        assert_eq!(hw.get(RecordKind::Alias, "a"), None, "kind is part of the name");
        hw.note(RecordKind::Key, "a", Seen::Deleted(3));
        assert_eq!(hw.get(RecordKind::Key, "a"), Some(Seen::Deleted(3)));
        hw.note(RecordKind::Key, "b", Seen::Deleted(1));
        assert_eq!(hw.get(RecordKind::Key, "b"), Some(Seen::Deleted(1)), "deletions are always tracked");
        hw.note(RecordKind::Key, "b", Seen::Present(1));
        assert_eq!(hw.get(RecordKind::Key, "b"), Some(Seen::Present(1)), "a tracked record stays tracked");
        for i in 0..100 {
            hw.note(RecordKind::Credential, &format!("c{i}"), Seen::Present(2));
            assert!(hw.len() <= 4);
        }
        assert_eq!(hw.get(RecordKind::Credential, "c99"), Some(Seen::Present(2)), "the newest mark is kept");
    }

    #[test]
    fn eviction_spares_deletion_marks() {
        let mut hw = HighWater::new(8);
        for i in 0..4 {
            hw.note(RecordKind::Credential, &format!("revoked{i}"), Seen::Deleted(1));
        }
        for i in 0..1000 {
            hw.note(RecordKind::Key, &format!("k{i}"), Seen::Present(2));
            assert!(hw.len() <= 8);
        }
        for i in 0..4 {
            assert_eq!(hw.get(RecordKind::Credential, &format!("revoked{i}")), Some(Seen::Deleted(1)));
        }
    }

    #[tokio::test]
    async fn a_deleted_record_cannot_come_back_and_recreation_continues_its_versions() {
        let v1 = blob::seal_record(&dk(), RecordKind::Alias, "a", 1, b"one").unwrap();
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let ch = fake_host(move |op| match op {
            StorageOp::Get { .. } => {
                c.fetch_add(1, Ordering::SeqCst);
                Ok(StorageReply::Record(Some(StoredRecord {
                    id: "a".into(),
                    version: 1,
                    sealed: SealedBlob(v1.clone()),
                })))
            }
            StorageOp::Put { version, .. } if *version == 2 => Ok(StorageReply::Done),
            _ => Ok(StorageReply::Done),
        });
        let r = Records::new(ch, dk());
        assert!(r.get(RecordKind::Alias, "a").await.unwrap().is_some());
        r.delete(RecordKind::Alias, "a", 1).await.unwrap();
        assert!(matches!(r.get(RecordKind::Alias, "a").await, Err(StoreError::Integrity { .. })));
        assert_eq!(r.put(RecordKind::Alias, "a", None, b"again").await.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refuses_wrong_reply_kind_and_host_errors() {
        let ch = fake_host(|op| match op {
            StorageOp::Get { .. } => Ok(StorageReply::Done),
            _ => Err(StorageError::Conflict),
        });
        let r = Records::new(ch, dk());
        assert!(matches!(r.get(RecordKind::Key, "k").await, Err(StoreError::Protocol)));
        assert!(matches!(r.put(RecordKind::Key, "k", None, b"b").await, Err(StoreError::Host(StorageError::Conflict))));
    }

    #[tokio::test]
    async fn refuses_unordered_listing() {
        let s = |id: &str| StoredRecord {
            id: id.into(),
            version: 1,
            sealed: SealedBlob(blob::seal_record(&dk(), RecordKind::Key, id, 1, b"x").unwrap()),
        };
        let (b, a) = (s("b"), s("a"));
        let ch = fake_host(move |_| Ok(StorageReply::Listed { records: vec![b.clone(), a.clone()], more: false }));
        let r = Records::new(ch, dk());
        assert!(matches!(r.list(RecordKind::Key, None, 10).await, Err(StoreError::Protocol)));
    }

    #[tokio::test]
    async fn closed_channel_fails_calls() {
        let (a, b) = duplex(64);
        drop(b);
        let (ch, dead) = Channel::start(a);
        let _ = dead.await;
        assert!(ch.call(StorageOp::Get { kind: RecordKind::Key, id: "k".into() }).await.is_err());
    }
}
