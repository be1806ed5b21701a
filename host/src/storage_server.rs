//! The host's end of the storage channel: decode each frame (bounded), run it against the [`BlobStore`], answer.
//! Requests run concurrently; answers go back in completion order with the request's id.

use crate::blobstore::BlobStore;
use kms_shared::frame;
use kms_shared::storage::{Announcement, EnclaveMessage, HostMessage, StorageError, StorageOp, StorageReply};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Serves one storage connection until it closes. Announcements go to `announce`.
pub async fn serve<S>(stream: S, store: Arc<dyn BlobStore>, announce: mpsc::Sender<Announcement>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
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
        let (store, tx, announce) = (store.clone(), tx.clone(), announce.clone());
        tokio::spawn(async move {
            let result = execute(store, msg.op, &announce).await;
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

async fn execute(
    store: Arc<dyn BlobStore>,
    op: StorageOp,
    announce: &mpsc::Sender<Announcement>,
) -> Result<StorageReply, StorageError> {
    op.validate()?;
    if let StorageOp::Announce(a) = op {
        return announce.send(a).await.map(|_| StorageReply::Done).map_err(|_| StorageError::Unavailable);
    }
    tokio::task::spawn_blocking(move || match op {
        StorageOp::Get { kind, id } => store.get(kind, &id).map(StorageReply::Record),
        StorageOp::Put { kind, id, version, expected, sealed } => {
            store.put(kind, &id, version, expected, &sealed).map(|_| StorageReply::Done)
        }
        StorageOp::Delete { kind, id, expected } => store.delete(kind, &id, expected).map(|_| StorageReply::Done),
        StorageOp::List { kind, after, limit } => {
            store.list(kind, after.as_deref(), limit).map(|(records, more)| StorageReply::Listed { records, more })
        }
        _ => Err(StorageError::Invalid),
    })
    .await
    .map_err(|_| StorageError::Unavailable)?
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
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

    #[tokio::test]
    async fn serves_requests_and_refuses_bad_frames() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(SqliteStore::open(&dir.path().join("s.sqlite3")).unwrap());
        let (mut client, server) = duplex(1 << 16);
        let (atx, mut arx) = mpsc::channel(1);
        let task = tokio::spawn(serve(server, store, atx));

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
        let ann = StorageOp::Announce(Announcement { ca_pem: "pem".into(), bootstrap: None });
        assert_eq!(call(&mut client, 4, ann).await.result, Ok(StorageReply::Done));
        assert_eq!(arx.recv().await.unwrap().ca_pem, "pem");

        // An oversize frame header ends the connection with an error, before any allocation of that size.
        client.write_all(&[0xff, 0xff, 0xff, 0xff, 1]).await.unwrap();
        assert!(task.await.unwrap().is_err());
    }
}
