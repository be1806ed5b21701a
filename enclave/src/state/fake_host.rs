//! Tests and fuzz targets only (feature `fuzzing`): an in-process host that keeps records in memory and answers honestly unless told to lie (hide a record
//! for some reads, acknowledge a create without writing it), and counts reads.

use crate::crypto::secret::Key256;
use crate::state::store::{Channel, Records};
use kms_shared::frame;
use kms_shared::storage::{
    EnclaveMessage, HostMessage, RecordKind, SealedBlob, StorageError, StorageOp, StorageReply, StoredRecord,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

type Id = (u16, String);

#[derive(Default, Clone)]
struct State {
    records: BTreeMap<Id, (u64, Vec<u8>)>,
    gets: HashMap<u16, u64>,
    hide: HashMap<Id, u32>,
    ack_without_write: HashSet<Id>,
    /// Gets of this record are answered (as of their arrival) only after the next put of it has been answered.
    hold_get_past_put: Option<Id>,
}

/// The host's side: what it stores and how it lies.
#[derive(Clone, Default)]
pub struct FakeHost(Arc<Mutex<State>>);

#[allow(clippy::unwrap_used)]
impl FakeHost {
    /// Answers "absent" to the next `reads` gets of the record (it stays stored).
    pub fn hide(&self, kind: RecordKind, id: &str, reads: u32) {
        self.0.lock().unwrap().hide.insert((kind.into(), id.to_owned()), reads);
    }

    /// Acknowledges creates (`expected` None) of the record without writing them.
    pub fn ack_creates_without_writing(&self, kind: RecordKind, id: &str) {
        self.0.lock().unwrap().ack_without_write.insert((kind.into(), id.to_owned()));
    }

    /// Answers the next get of the record as the record is when the get arrives, but sends that answer only after
    /// answering the next put of it: an honest host whose read was overtaken by a concurrent write's commit.
    pub fn hold_next_get_past_put(&self, kind: RecordKind, id: &str) {
        self.0.lock().unwrap().hold_get_past_put = Some((kind.into(), id.to_owned()));
    }

    /// An independent copy of this host and everything it stores (the fuzz targets start each input from the same
    /// stored state).
    pub fn fork(&self) -> FakeHost {
        FakeHost(Arc::new(Mutex::new(self.0.lock().unwrap().clone())))
    }

    /// Gets of `kind` answered so far.
    pub fn gets(&self, kind: RecordKind) -> u64 {
        self.0.lock().unwrap().gets.get(&kind.into()).copied().unwrap_or(0)
    }

    fn answer(&self, op: StorageOp) -> Result<StorageReply, StorageError> {
        let mut s = self.0.lock().unwrap();
        match op {
            StorageOp::Get { kind, id } => {
                *s.gets.entry(kind.into()).or_default() += 1;
                let key = (kind.into(), id.clone());
                if let Some(n) = s.hide.get_mut(&key)
                    && *n > 0
                {
                    *n -= 1;
                    return Ok(StorageReply::Record(None));
                }
                Ok(StorageReply::Record(s.records.get(&key).map(|(v, b)| StoredRecord {
                    id,
                    version: *v,
                    sealed: SealedBlob(b.clone()),
                })))
            }
            StorageOp::Put { kind, id, version, expected, sealed } => {
                let key = (kind.into(), id);
                if expected.is_none() && s.ack_without_write.contains(&key) {
                    return Ok(StorageReply::Done);
                }
                match (s.records.get(&key).map(|(v, _)| *v), expected) {
                    (None, None) => {}
                    (Some(cur), Some(exp)) if cur == exp => {}
                    _ => return Err(StorageError::Conflict),
                }
                s.records.insert(key, (version, sealed.0));
                Ok(StorageReply::Done)
            }
            StorageOp::Delete { kind, id, expected } => {
                let key = (kind.into(), id);
                if s.records.get(&key).map(|(v, _)| *v) != Some(expected) {
                    return Err(StorageError::Conflict);
                }
                s.records.remove(&key);
                Ok(StorageReply::Done)
            }
            StorageOp::List { kind, after, limit } => {
                let k: u16 = kind.into();
                let after = after.unwrap_or_default();
                let mut records: Vec<StoredRecord> = s
                    .records
                    .iter()
                    .filter(|((rk, id), _)| *rk == k && *id > after)
                    .map(|((_, id), (v, b))| StoredRecord {
                        id: id.clone(),
                        version: *v,
                        sealed: SealedBlob(b.clone()),
                    })
                    .take(limit as usize + 1)
                    .collect();
                let more = records.len() > limit as usize;
                records.truncate(limit as usize);
                Ok(StorageReply::Listed { records, more })
            }
            _ => Err(StorageError::Invalid),
        }
    }

    /// Starts serving: the enclave's [`Records`] over this host, sealed under a fixed test domain key.
    pub fn records(&self) -> Arc<Records> {
        let (a, mut b) = duplex(1 << 20);
        let host = self.clone();
        tokio::spawn(async move {
            let mut held: Option<Vec<u8>> = None;
            loop {
                let mut h = [0u8; frame::HEADER_LEN];
                if b.read_exact(&mut h).await.is_err() {
                    return;
                }
                let Ok(len) = frame::body_len(h) else { return };
                let mut body = vec![0u8; len];
                if b.read_exact(&mut body).await.is_err() {
                    return;
                }
                let Ok(msg) = frame::decode::<EnclaveMessage>(&body) else { return };
                let target = match &msg.op {
                    StorageOp::Get { kind, id } | StorageOp::Put { kind, id, .. } => {
                        Some((u16::from(*kind), id.clone()))
                    }
                    _ => None,
                };
                let is_get = matches!(msg.op, StorageOp::Get { .. });
                let reply = HostMessage { id: msg.id, result: host.answer(msg.op) };
                let Ok(out) = frame::encode(&reply) else { return };
                let hold = host.0.lock().map(|mut s| {
                    let armed = target.is_some() && s.hold_get_past_put == target;
                    if armed && is_get {
                        held = Some(out.clone());
                        return true;
                    }
                    if armed && !is_get && held.is_some() {
                        s.hold_get_past_put = None;
                    }
                    false
                });
                if hold.unwrap_or(false) {
                    continue;
                }
                if b.write_all(&out).await.is_err() {
                    return;
                }
                if host.0.lock().is_ok_and(|s| s.hold_get_past_put.is_none())
                    && let Some(late) = held.take()
                    && b.write_all(&late).await.is_err()
                {
                    return;
                }
            }
        });
        let key = Key256::from_array([7u8; 32]);
        Arc::new(Records::new(Channel::start(a).0, key))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fork_starts_from_the_stored_state_and_diverges_alone() {
        let host = FakeHost::default();
        let records = host.records();
        records.put(RecordKind::Alias, "alias/a", None, b"one").await.unwrap();
        let fork = host.fork();
        let forked = fork.records();
        assert_eq!(&forked.get(RecordKind::Alias, "alias/a").await.unwrap().unwrap().body[..], b"one");
        forked.put(RecordKind::Alias, "alias/b", None, b"two").await.unwrap();
        assert!(records.get(RecordKind::Alias, "alias/b").await.unwrap().is_none(), "the original does not see it");
        assert!(forked.get(RecordKind::Alias, "alias/b").await.unwrap().is_some());
    }
}
