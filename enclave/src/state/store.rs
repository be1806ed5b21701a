//! The enclave's client for the host's record store.
//!
//! One stream carries many requests at once: each frame has an id and answers may come in any order. Everything the
//! host answers is untrusted: frames are size-checked before allocation, and [`Records`] opens every blob under the
//! domain key with its kind, id and version in the AAD, and keeps per-record version high-water marks so that a host
//! that replays an older version (or hides a record it had shown) is caught within this enclave's life.

use crate::crypto::blob;
use crate::crypto::secret::Key256;
use crate::state::highwater::{DELETION_MARK_CAP, HIGH_WATER_CAP, HighWater};
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
/// Times a read that raced this enclave's own write is sent again before its failed check stands (issue 19).
const RACED_READS: u32 = 8;

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
    /// A deletion that this enclave could not remember (the deletion-mark set is full) was refused.
    #[error("deletion-mark set full")]
    Full,
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

/// An opened record: its version and its plaintext body.
pub struct Opened {
    /// The record's version.
    pub version: u64,
    /// The plaintext body (zeroized on drop).
    pub body: Zeroizing<Vec<u8>>,
}

/// One page of a listing: the records that opened and passed their checks, the last id the host listed (to continue
/// after, even when that record was skipped) and whether more follow.
pub struct Listing {
    /// `(id, opened)` of every record that passed its checks, in id order.
    pub records: Vec<(String, Opened)>,
    /// The last id listed by the host (skipped or not).
    pub last: Option<String>,
    /// Whether more records follow.
    pub more: bool,
}

/// Sealed records over a [`Channel`]: seal on write, open and check on read.
pub struct Records {
    channel: Channel,
    domain_key: Key256,
    seen: Mutex<HighWater>,
    /// Records a listing skipped because they failed their integrity checks (a metric: see [`Records::skipped`]).
    skipped: AtomicU64,
    /// Storage reads (get) sent to the host.
    reads: AtomicU64,
    /// How many times a high-water mark was raised (by a write, a delete, or a read that saw a newer version); a read
    /// that fails its high-water check while this moved may have raced a write (see [`Records::get`]).
    writes: AtomicU64,
}

impl Records {
    /// Records sealed under `domain_key`.
    pub fn new(channel: Channel, domain_key: Key256) -> Self {
        Self::with_caps(channel, domain_key, HIGH_WATER_CAP, DELETION_MARK_CAP)
    }

    /// Records with other bounds on the high-water marks (tests).
    pub fn with_caps(channel: Channel, domain_key: Key256, cap: usize, deleted_cap: usize) -> Self {
        let naming_key = blob::derive_subkey(&domain_key, crate::state::highwater::NAMING_LABEL);
        Self {
            channel,
            domain_key,
            seen: Mutex::new(HighWater::new(cap, deleted_cap, &naming_key)),
            skipped: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
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

    /// How many records listings skipped since start because they failed their integrity checks.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// How many single-record reads were sent to the host since start.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Whether `version` of a record may go into a cache: not below the newest version this enclave has seen of it,
    /// and not a version that was deleted. Caches call this under their own lock, so that a reader that loaded a
    /// version before a concurrent write or delete cannot install it afterwards.
    pub fn admits(&self, kind: RecordKind, id: &str, version: u64) -> bool {
        self.seen.lock().is_ok_and(|s| s.floor(kind, id).admits(version))
    }

    /// Whether this enclave has seen the record present and not deleted since (a create over it must fail, whatever
    /// the host says).
    pub fn known_present(&self, kind: RecordKind, id: &str) -> bool {
        self.seen.lock().is_ok_and(|s| s.floor(kind, id).present.is_some())
    }

    fn check_seen(&self, kind: RecordKind, id: &str, found: Option<u64>) -> Result<(), StoreError> {
        let mut seen = self.seen.lock().map_err(|_| StoreError::Closed)?;
        let floor = seen.floor(kind, id);
        let fail = |why| Err(StoreError::Integrity { kind, id: id.to_owned(), why });
        match found {
            None if floor.present.is_some() => return fail("a record seen before is missing"),
            None => {}
            Some(f) if floor.deleted.is_some_and(|d| f <= d) => return fail("a deleted record came back"),
            Some(f) if floor.present.is_some_and(|p| f < p) => return fail("rollback to an older version"),
            Some(f) => {
                if floor.present.is_none_or(|p| f > p) {
                    self.writes.fetch_add(1, Ordering::SeqCst);
                }
                seen.note_present(kind, id, f);
            }
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
    ///
    /// An honest host can answer a read with the version before a write of this enclave that committed while the
    /// read was in flight; by the time the answer arrives the write (or another read that saw it) has raised the
    /// high-water mark, and the answer looks like a rollback. So an answer that fails its high-water check while a
    /// high-water mark was raised is not used and the record is read again (at most [`RACED_READS`] times); with no
    /// mark raised in between the failure stands. A stale answer is never used either way. (Found by the soak: PutKeyPolicy from several
    /// connections on one key answered KMSInternalException.)
    pub async fn get(&self, kind: RecordKind, id: &str) -> Result<Option<Opened>, StoreError> {
        let mut raced = 0;
        loop {
            let writes = self.writes.load(Ordering::SeqCst);
            match self.get_once(kind, id).await? {
                Ok(found) => return Ok(found),
                Err(e) if raced < RACED_READS && self.writes.load(Ordering::SeqCst) != writes => {
                    tracing::debug!(?kind, id, error = %e, "a read raced a write; reading again");
                    raced += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One read: the record, or (inner `Err`) the high-water check it failed.
    async fn get_once(&self, kind: RecordKind, id: &str) -> Result<Result<Option<Opened>, StoreError>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let reply = self.channel.call(StorageOp::Get { kind, id: id.to_owned() }).await?;
        let StorageReply::Record(rec) = reply else { return Err(StoreError::Protocol) };
        match rec {
            None => Ok(self.check_seen(kind, id, None).map(|()| None)),
            Some(rec) => {
                if rec.id != id {
                    return Err(StoreError::Protocol);
                }
                let opened = self.open(kind, &rec)?;
                Ok(self.check_seen(kind, id, Some(rec.version)).map(|()| Some(opened)))
            }
        }
    }

    /// Seals and writes a record. `expected` is the version being replaced (`None` for a new record). Returns the
    /// new version. Fails with [`StoreError::Host`]`(Conflict)` if another writer got there first, or, for a new
    /// record, if this enclave has seen the record present (whatever the host would answer).
    pub async fn put(&self, kind: RecordKind, id: &str, expected: Option<u64>, body: &[u8]) -> Result<u64, StoreError> {
        let version = match expected {
            Some(v) => v.checked_add(1).ok_or(StoreError::Protocol)?,
            None => {
                let floor = self.seen.lock().map_err(|_| StoreError::Closed)?.floor(kind, id);
                if floor.present.is_some() {
                    return Err(StoreError::Host(StorageError::Conflict));
                }
                // A record re-created after a delete continues the version sequence, so the old one cannot return.
                floor.deleted.map_or(1, |d| d.saturating_add(1))
            }
        };
        let sealed = blob::seal_record(&self.domain_key, kind, id, version, body)
            .map_err(|_| StoreError::Encode("seal".into()))?;
        let op = StorageOp::Put { kind, id: id.to_owned(), version, expected, sealed: SealedBlob(sealed) };
        match self.channel.call(op).await? {
            StorageReply::Done => {
                let mut seen = self.seen.lock().map_err(|_| StoreError::Closed)?;
                // Counted before the mark is raised, under its lock: a reader that sees the mark sees the count.
                self.writes.fetch_add(1, Ordering::SeqCst);
                seen.note_present(kind, id, version);
                Ok(version)
            }
            _ => Err(StoreError::Protocol),
        }
    }

    /// Deletes a record at `expected` version. Refused before the host is asked when no deletion mark can be kept for
    /// it (the deletion-mark set is full): a deletion this enclave could not remember would let the host bring the
    /// record back.
    pub async fn delete(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StoreError> {
        if !self.seen.lock().map_err(|_| StoreError::Closed)?.may_delete(kind, id) {
            tracing::error!(?kind, id, "deletion refused: the deletion-mark set is full");
            return Err(StoreError::Full);
        }
        match self.channel.call(StorageOp::Delete { kind, id: id.to_owned(), expected }).await? {
            StorageReply::Done => {
                let mut seen = self.seen.lock().map_err(|_| StoreError::Closed)?;
                self.writes.fetch_add(1, Ordering::SeqCst);
                seen.note_deleted(kind, id, expected);
                Ok(())
            }
            _ => Err(StoreError::Protocol),
        }
    }

    /// Lists and opens up to `limit` records after `after`, in id order. Every record is authenticated and checked
    /// against its high-water marks; one that fails is skipped (logged with its id and counted in
    /// [`Records::skipped`]), so that one bad record does not take a listing down for everyone. Ids out of order or
    /// outside the range, or more records than asked for, fail the whole page.
    pub async fn list(&self, kind: RecordKind, after: Option<&str>, limit: u32) -> Result<Listing, StoreError> {
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
            last = Some(rec.id.as_str());
            match self.open(kind, rec).and_then(|o| self.check_seen(kind, &rec.id, Some(rec.version)).map(|()| o)) {
                Ok(opened) => out.push((rec.id.clone(), opened)),
                Err(e) => self.skip(kind, &rec.id, &e),
            }
        }
        let last = records.last().map(|r| r.id.clone());
        Ok(Listing { records: out, last, more })
    }

    /// Logs and counts a listed record that its reader could not use (failed checks, or a body that does not decode).
    pub fn skip(&self, kind: RecordKind, id: &str, why: &dyn std::fmt::Display) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        tracing::error!(?kind, id, error = %why, "record skipped: it failed its integrity checks");
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

    #[tokio::test]
    async fn a_read_overtaken_by_our_own_write_is_read_again_not_called_a_rollback() {
        let host = crate::state::fake_host::FakeHost::default();
        let r = host.records();
        assert_eq!(r.put(RecordKind::Key, "k", None, b"one").await.unwrap(), 1);
        host.hold_next_get_past_put(RecordKind::Key, "k");
        // The get is sent first and read by the host as version 1; its answer arrives after the put of version 2.
        let (got, put) = tokio::join!(r.get(RecordKind::Key, "k"), r.put(RecordKind::Key, "k", Some(1), b"two"));
        assert_eq!(put.unwrap(), 2);
        let got = got.expect("an honest race is not a rollback").unwrap();
        assert_eq!((got.version, &got.body[..]), (2, &b"two"[..]), "the stale answer is not used");
        assert_eq!(host.gets(RecordKind::Key), 2, "read again once");
        // (Without a write in between, a stale answer is still a rollback: detects_rollback_and_hiding.)
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

    /// Issue 12 item 18: one record that fails its check used to fail the whole listing.
    #[tokio::test]
    async fn a_listing_skips_a_bad_record_and_counts_it() {
        let s = |id: &str| StoredRecord {
            id: id.into(),
            version: 1,
            sealed: SealedBlob(blob::seal_record(&dk(), RecordKind::Key, id, 1, b"x").unwrap()),
        };
        let mut bad = s("b");
        bad.sealed.0[40] ^= 1;
        let mut swapped = s("c");
        swapped.id = "d".into(); // sealed for "c", listed as "d"
        let page = vec![s("a"), bad, swapped];
        let ch = fake_host(move |_| Ok(StorageReply::Listed { records: page.clone(), more: true }));
        let r = Records::new(ch, dk());
        let listing = r.list(RecordKind::Key, None, 10).await.unwrap();
        let ids: Vec<&str> = listing.records.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a"]);
        assert_eq!((listing.last.as_deref(), listing.more, r.skipped()), (Some("d"), true, 2));
    }

    /// Issue 12 items 1 and 11: a create over a record this enclave knows is refused without asking the host, and a
    /// deletion it could not remember is refused before the host is asked.
    #[tokio::test]
    async fn creates_over_known_records_and_unrememberable_deletions_are_refused() {
        let asked = Arc::new(AtomicU64::new(0));
        let a = asked.clone();
        let ch = fake_host(move |_| {
            a.fetch_add(1, Ordering::SeqCst);
            Ok(StorageReply::Done)
        });
        let r = Records::with_caps(ch, dk(), 16, 2);
        assert_eq!(r.put(RecordKind::Alias, "alias/x", None, b"1").await.unwrap(), 1);
        // A host that acknowledges a second create of the same name is not even asked.
        assert!(matches!(
            r.put(RecordKind::Alias, "alias/x", None, b"2").await,
            Err(StoreError::Host(StorageError::Conflict))
        ));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        r.delete(RecordKind::Credential, "A", 1).await.unwrap();
        r.delete(RecordKind::Credential, "B", 1).await.unwrap();
        assert!(matches!(r.delete(RecordKind::Credential, "C", 1).await, Err(StoreError::Full)));
        assert_eq!(asked.load(Ordering::SeqCst), 3);
        assert!(!r.admits(RecordKind::Credential, "A", 1));
        assert!(r.admits(RecordKind::Alias, "alias/x", 1) && !r.admits(RecordKind::Alias, "alias/x", 0));
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
