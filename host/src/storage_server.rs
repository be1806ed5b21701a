//! The host's end of the storage channel: decode each frame (bounded), run it against the [`BlobStore`], answer.
//! Requests run concurrently; answers go back in completion order with the request's id.
//!
//! Writes (puts and deletes) go through a [`GroupCommit`]: the writes that arrive while one commit is in progress
//! are applied together in the next transaction, and each is answered only after that transaction has committed
//! (SQLite `synchronous=FULL`: after its fsync). Reads run beside them.

use crate::blobstore::{BlobStore, Write};
use kms_shared::custody::BootConfig;
use kms_shared::frame;
use kms_shared::storage::{Announcement, EnclaveMessage, HostMessage, StorageError, StorageOp, StorageReply};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// What the enclave tells the host besides storage requests.
pub enum Event {
    /// The enclave is up; answer on the sender once the operator files are written (the enclave then forgets the
    /// bootstrap secret, so it must not be acknowledged before it is on disk).
    Announce(Announcement, tokio::sync::oneshot::Sender<Result<(), StorageError>>),
    /// Initialisation is complete; the enclave serves.
    Serving,
    /// The enclave refuses to start, for this reason.
    Refuse(String),
    /// Quorum initialisation: write these share files; answer once they are durable.
    QuorumShares(Vec<Vec<u8>>, tokio::sync::oneshot::Sender<Result<(), StorageError>>),
    /// The enclave is sealed, waiting for `threshold` of `count` shares: start relaying clients.
    Sealed { threshold: u8, count: u8 },
}

/// Serves one storage connection until it closes. Announcements and refusals go to `events`; `BootConfig` requests
/// are answered with `boot`.
pub async fn serve<S>(
    stream: S,
    store: Arc<dyn BlobStore>,
    events: mpsc::Sender<Event>,
    boot: Arc<BootConfig>,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writes = Arc::new(GroupCommit::start(store.clone(), MAX_BATCH)?);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    let writer = tokio::spawn(async move {
        while let Some(buf) = rx.recv().await {
            if wr.write_all(&buf).await.is_err() {
                break;
            }
        }
    });
    let result = loop {
        let mut header = [0u8; frame::HEADER_LEN];
        match rd.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
            Err(e) => break Err(format!("read: {e}")),
        }
        let len = match frame::body_len(header) {
            Ok(n) => n,
            Err(e) => break Err(format!("bad frame from the enclave: {e}")),
        };
        let mut body = vec![0u8; len];
        if let Err(e) = rd.read_exact(&mut body).await {
            break Err(format!("connection ended mid-frame: {e}"));
        }
        let msg: EnclaveMessage = match frame::decode(&body) {
            Ok(m) => m,
            Err(e) => break Err(format!("bad frame from the enclave: {e}")),
        };
        let (store, tx, events, writes, boot) =
            (store.clone(), tx.clone(), events.clone(), writes.clone(), boot.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let kind = metrics_kind(&msg.op);
            let result = execute(store, &writes, msg.op, &events, &boot).await;
            crate::metrics::global().storage(kind, started.elapsed().as_secs_f64());
            match frame::encode(&HostMessage { id: msg.id, result }) {
                Ok(buf) => {
                    let _ = tx.send(buf).await;
                }
                Err(e) => tracing::error!(error = %e, "cannot encode an answer"),
            }
        });
    };
    drop(tx);
    let _ = writer.await;
    result
}

/// Most writes in one transaction.
pub const MAX_BATCH: usize = 1024;

type Pending = (Write, tokio::sync::oneshot::Sender<Result<(), StorageError>>);

/// Group commit: one writer thread takes every write that is waiting, applies them in one transaction
/// ([`BlobStore::write_batch`]) and only then answers each. While it commits, new writes queue up for the next batch,
/// so the batch size follows the load with no added delay when there is none.
pub struct GroupCommit {
    queue: std::sync::mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts the writer thread; it ends when the `GroupCommit` is dropped and the queue is drained.
    pub fn start(store: Arc<dyn BlobStore>, max_batch: usize) -> Result<Self, String> {
        let (queue, rx) = std::sync::mpsc::channel::<Pending>();
        let max_batch = max_batch.max(1);
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < max_batch {
                        match rx.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) => break,
                        }
                    }
                    crate::metrics::global().batch(batch.len());
                    let (writes, waiters): (Vec<Write>, Vec<_>) = batch.into_iter().unzip();
                    let mut results = store.write_batch(&writes).into_iter();
                    for w in waiters {
                        let _ = w.send(results.next().unwrap_or(Err(StorageError::Unavailable)));
                    }
                }
            })
            .map_err(|e| format!("cannot start the group-commit thread: {e}"))?;
        Ok(Self { queue })
    }

    /// Queues one write; returns its result once the transaction holding it has committed.
    pub async fn write(&self, w: Write) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue.send((w, tx)).map_err(|_| StorageError::Unavailable)?;
        rx.await.map_err(|_| StorageError::Unavailable)?
    }
}

fn metrics_kind(op: &StorageOp) -> crate::metrics::StorageKind {
    use crate::metrics::StorageKind;
    match op {
        StorageOp::Get { .. } => StorageKind::get,
        StorageOp::Put { .. } => StorageKind::put,
        StorageOp::Delete { .. } => StorageKind::delete,
        StorageOp::List { .. } => StorageKind::list,
        _ => StorageKind::control,
    }
}

async fn execute(
    store: Arc<dyn BlobStore>,
    writes: &GroupCommit,
    op: StorageOp,
    events: &mpsc::Sender<Event>,
    boot: &BootConfig,
) -> Result<StorageReply, StorageError> {
    op.validate()?;
    let op = match op {
        StorageOp::Announce(a) => {
            let (ack, done) = tokio::sync::oneshot::channel();
            events.send(Event::Announce(a, ack)).await.map_err(|_| StorageError::Unavailable)?;
            return done.await.map_err(|_| StorageError::Unavailable)?.map(|()| StorageReply::Done);
        }
        StorageOp::BootConfig => return Ok(StorageReply::BootConfig(Box::new(boot.clone()))),
        StorageOp::Serving => {
            let _ = events.send(Event::Serving).await;
            return Ok(StorageReply::Done);
        }
        StorageOp::Refuse { reason } => {
            let _ = events.send(Event::Refuse(reason)).await;
            return Ok(StorageReply::Done);
        }
        StorageOp::QuorumShares { files } => {
            let (ack, done) = tokio::sync::oneshot::channel();
            let files = files.into_iter().map(serde_bytes::ByteBuf::into_vec).collect();
            events.send(Event::QuorumShares(files, ack)).await.map_err(|_| StorageError::Unavailable)?;
            return done.await.map_err(|_| StorageError::Unavailable)?.map(|()| StorageReply::Done);
        }
        StorageOp::Sealed { threshold, count } => {
            events.send(Event::Sealed { threshold, count }).await.map_err(|_| StorageError::Unavailable)?;
            return Ok(StorageReply::Done);
        }
        StorageOp::Metrics(m) => {
            crate::metrics::global().enclave(m);
            return Ok(StorageReply::Done);
        }
        StorageOp::Put { kind, id, version, expected, sealed } => {
            let w = Write::Put { kind, id, version, expected, blob: sealed };
            return writes.write(w).await.map(|()| StorageReply::Done);
        }
        StorageOp::Delete { kind, id, expected } => {
            return writes.write(Write::Delete { kind, id, expected }).await.map(|()| StorageReply::Done);
        }
        other => other,
    };
    tokio::task::spawn_blocking(move || match op {
        StorageOp::Get { kind, id } => store.get(kind, &id).map(StorageReply::Record),
        StorageOp::List { kind, after, limit } => {
            store.list(kind, after.as_deref(), limit).map(|(records, more)| StorageReply::Listed { records, more })
        }
        _ => Err(StorageError::Invalid),
    })
    .await
    .map_err(|_| StorageError::Unavailable)?
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::blobstore::SqliteStore;
    use kms_shared::storage::{RecordKind, SealedBlob};
    use tokio::io::duplex;

    async fn call(io: &mut tokio::io::DuplexStream, id: u64, op: StorageOp) -> HostMessage {
        io.write_all(&frame::encode(&EnclaveMessage { id, op }).unwrap()).await.unwrap();
        let mut h = [0u8; frame::HEADER_LEN];
        io.read_exact(&mut h).await.unwrap();
        let mut body = vec![0u8; frame::body_len(h).unwrap()];
        io.read_exact(&mut body).await.unwrap();
        frame::decode(&body).unwrap()
    }

    /// A store that records the size of each batch and makes each commit slow, so writes pile up behind it.
    struct SlowCommits {
        inner: SqliteStore,
        batches: std::sync::Mutex<Vec<usize>>,
    }

    impl BlobStore for SlowCommits {
        fn get(&self, kind: RecordKind, id: &str) -> Result<Option<kms_shared::storage::StoredRecord>, StorageError> {
            self.inner.get(kind, id)
        }
        fn put(&self, k: RecordKind, id: &str, v: u64, e: Option<u64>, b: &SealedBlob) -> Result<(), StorageError> {
            self.inner.put(k, id, v, e, b)
        }
        fn delete(&self, kind: RecordKind, id: &str, expected: u64) -> Result<(), StorageError> {
            self.inner.delete(kind, id, expected)
        }
        fn list(
            &self,
            kind: RecordKind,
            after: Option<&str>,
            limit: u32,
        ) -> Result<(Vec<kms_shared::storage::StoredRecord>, bool), StorageError> {
            self.inner.list(kind, after, limit)
        }
        fn write_batch(&self, writes: &[Write]) -> Vec<Result<(), StorageError>> {
            std::thread::sleep(std::time::Duration::from_millis(30));
            self.batches.lock().unwrap().push(writes.len());
            self.inner.write_batch(writes)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_committed_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SlowCommits {
            inner: SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap(),
            batches: std::sync::Mutex::new(Vec::new()),
        });
        let gc = Arc::new(GroupCommit::start(store.clone(), MAX_BATCH).unwrap());
        let put = |id: String, expected| Write::Put {
            kind: RecordKind::Key,
            id,
            version: 1,
            expected,
            blob: SealedBlob(vec![1]),
        };
        // 50 new records and one write with a wrong expected version, all at once.
        let mut tasks = Vec::new();
        for i in 0..50 {
            let gc = gc.clone();
            tasks.push(tokio::spawn(async move { gc.write(put(format!("k{i}"), None)).await }));
        }
        let bad = {
            let gc = gc.clone();
            tokio::spawn(async move { gc.write(put("k7".into(), Some(5))).await })
        };
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        assert_eq!(bad.await.unwrap(), Err(StorageError::Conflict), "a CAS failure fails only its own write");
        let batches = store.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 51);
        assert!(batches.len() < 51 && batches.iter().any(|&n| n > 1), "writes were batched: {batches:?}");
        // Every acknowledged write is in the store.
        for i in 0..50 {
            assert!(store.get(RecordKind::Key, &format!("k{i}")).unwrap().is_some());
        }
    }

    /// A store whose commits fail: every write of the batch fails, none is acknowledged as done.
    struct FailingCommits;

    impl BlobStore for FailingCommits {
        fn get(&self, _: RecordKind, _: &str) -> Result<Option<kms_shared::storage::StoredRecord>, StorageError> {
            Ok(None)
        }
        fn put(&self, _: RecordKind, _: &str, _: u64, _: Option<u64>, _: &SealedBlob) -> Result<(), StorageError> {
            Err(StorageError::Unavailable)
        }
        fn delete(&self, _: RecordKind, _: &str, _: u64) -> Result<(), StorageError> {
            Err(StorageError::Unavailable)
        }
        fn list(
            &self,
            _: RecordKind,
            _: Option<&str>,
            _: u32,
        ) -> Result<(Vec<kms_shared::storage::StoredRecord>, bool), StorageError> {
            Ok((Vec::new(), false))
        }
    }

    #[tokio::test]
    async fn a_failed_commit_acknowledges_nothing() {
        let gc = GroupCommit::start(Arc::new(FailingCommits), 4).unwrap();
        let w = Write::Delete { kind: RecordKind::Key, id: "k".into(), expected: 1 };
        assert_eq!(gc.write(w).await, Err(StorageError::Unavailable));
    }

    #[tokio::test]
    async fn serves_requests_and_refuses_bad_frames() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap());
        let (mut client, server) = duplex(1 << 16);
        let (atx, mut arx) = mpsc::channel(1);
        let boot = Arc::new(BootConfig {
            source: kms_shared::custody::DomainKeySource::Local,
            init: true,
            admin_public_key: None,
            upstream: None,
            operators: vec![],
            threshold: 0,
        });
        let task = tokio::spawn(serve(server, store, atx, boot.clone()));

        let put = StorageOp::Put {
            kind: RecordKind::Key,
            id: "k".into(),
            version: 1,
            expected: None,
            sealed: SealedBlob(vec![1]),
        };
        assert_eq!(call(&mut client, 1, put).await, HostMessage { id: 1, result: Ok(StorageReply::Done) });
        let bad = StorageOp::Put {
            kind: RecordKind::Key,
            id: "k2".into(),
            version: 0,
            expected: None,
            sealed: SealedBlob(vec![]),
        };
        assert_eq!(call(&mut client, 2, bad).await.result, Err(StorageError::Invalid));
        let taken = StorageOp::Put {
            kind: RecordKind::Key,
            id: "k".into(),
            version: 1,
            expected: None,
            sealed: SealedBlob(vec![]),
        };
        assert_eq!(call(&mut client, 5, taken).await.result, Err(StorageError::Conflict));
        let got = call(&mut client, 3, StorageOp::Get { kind: RecordKind::Key, id: "k".into() }).await;
        assert!(matches!(got.result, Ok(StorageReply::Record(Some(_)))));
        let got = call(&mut client, 6, StorageOp::BootConfig).await;
        assert_eq!(got.result, Ok(StorageReply::BootConfig(Box::new((*boot).clone()))));
        let ann = StorageOp::Announce(Announcement {
            ca_pem: "pem".into(),
            bootstrap: None,
            bootstrap_sealed: None,
            settings_digest: vec![0; 48],
        });
        // The announcement is answered only once the host acknowledges it (operator files written).
        let answer = tokio::spawn(async move { call(&mut client, 4, ann).await.result.map(|_| client) });
        let Some(Event::Announce(a, ack)) = arx.recv().await else { panic!("no announcement") };
        assert_eq!(a.ca_pem, "pem");
        assert!(!answer.is_finished());
        ack.send(Ok(())).unwrap();
        let mut client = answer.await.unwrap().unwrap();

        // An oversize frame header ends the connection with an error, before any allocation of that size.
        client.write_all(&[0xff, 0xff, 0xff, 0xff, 1]).await.unwrap();
        assert!(task.await.unwrap().is_err());
    }
}
