//! Per-record version high-water marks: what this enclave life has seen of each record, so that a host that replays
//! an older version, hides a record it has shown, or brings a deleted record back is caught.

use crate::crypto::secret::Key256;
use hmac::{KeyInit, Mac};
use kms_shared::storage::RecordKind;
use std::collections::HashMap;

/// HKDF label of the key that names records in the marks (see [`HighWater::new`]).
pub const NAMING_LABEL: &[u8] = b"enclave-kms high-water names v1";

/// Most present-version marks: a table of 2^20 buckets of 16 bytes (about 17 MiB) at most.
pub const HIGH_WATER_CAP: usize = 917_504;

/// Most deletion marks: a table of 2^19 buckets (about 8.5 MiB) at most. Deletion marks are never evicted; once the
/// set is full, deletions are refused (fail closed) until the enclave restarts.
pub const DELETION_MARK_CAP: usize = 458_752;

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

type Marks = HashMap<u64, u64, std::hash::BuildHasherDefault<PassThrough>>;

/// What the marks require of a record read from the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Floor {
    /// The newest version seen present (the record must exist at this version or later).
    pub present: Option<u64>,
    /// The version it was last deleted at (a record that exists must be newer).
    pub deleted: Option<u64>,
}

impl Floor {
    /// Whether `version` of the record may be believed (and cached): not older than the newest version seen, and not
    /// a version that was deleted.
    pub fn admits(&self, version: u64) -> bool {
        self.present.is_none_or(|p| version >= p) && self.deleted.is_none_or(|d| version > d)
    }
}

/// Kinds whose records are tracked from version 1: few, and what they name is decided by their existence (an alias
/// that exists cannot be created over; an access key or principal that is gone must stay gone; a tombstone proves a
/// key destroyed).
fn tracked_from_first_version(kind: RecordKind) -> bool {
    matches!(kind, RecordKind::Alias | RecordKind::Principal | RecordKind::Credential | RecordKind::KeyTombstone)
}

/// Per-record version high-water marks, compact and bounded.
///
/// - A record is named by 64 bits of HMAC-SHA256 of (kind, id) under a key derived from the domain key
///   ([`NAMING_LABEL`]), not by its id: 16 bytes per mark. Every instance of one fleet (one domain key) names a record
///   the same way, so marks can be handed from one instance to another (issue 13); the host, which lacks the domain
///   key, can neither compute names nor aim collisions at a chosen record. Two records sharing a hash (about 2^-25 likely at the cap) share a mark: a false alarm or a
///   missed check for them, never a wrong answer served.
/// - A key record seen only at version 1 is not tracked: nothing older than version 1 exists to roll back to.
///   Aliases, principals, access keys and tombstones are tracked from version 1 (see
///   [`tracked_from_first_version`]).
/// - Present-version marks: at most `cap`; past it one is forgotten for each new one, and that record's rollback
///   check starts afresh from the next version seen (the AEAD still binds kind, id and version).
/// - Deletion marks live in their own set and are never evicted: a revoked access key, a deleted alias or a destroyed
///   key's record cannot come back within this life. When that set is full, [`HighWater::may_delete`] refuses.
pub struct HighWater {
    namer: hmac::Hmac<sha2::Sha256>,
    present: Marks,
    deleted: Marks,
    cap: usize,
    deleted_cap: usize,
}

impl HighWater {
    /// Marks bounded by `cap` present-version marks and `deleted_cap` deletion marks, naming records under
    /// `naming_key` (derived from the domain key with [`NAMING_LABEL`]).
    pub fn new(cap: usize, deleted_cap: usize, naming_key: &Key256) -> Self {
        // HMAC zero-pads a key shorter than the block: the padded 64-byte block is the same key, and infallible.
        let mut block = zeroize::Zeroizing::new([0u8; 64]);
        for (b, k) in block.iter_mut().zip(naming_key.expose_secret()) {
            *b = *k;
        }
        let namer = <hmac::Hmac<sha2::Sha256> as KeyInit>::new(&(*block).into());
        Self {
            namer,
            present: Marks::default(),
            deleted: Marks::default(),
            cap: cap.max(1),
            deleted_cap: deleted_cap.max(1),
        }
    }

    /// The record's fleet-wide name: the first 64 bits of HMAC(kind || id length || id).
    fn slot(&self, kind: RecordKind, id: &str) -> u64 {
        let mut mac = self.namer.clone();
        mac.update(&(kind as u16).to_be_bytes());
        mac.update(&(id.len() as u64).to_be_bytes());
        mac.update(id.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(tag.get(..8).unwrap_or(&[0u8; 8]));
        u64::from_be_bytes(first)
    }

    /// What is known of the record.
    pub fn floor(&self, kind: RecordKind, id: &str) -> Floor {
        let slot = self.slot(kind, id);
        Floor { present: self.present.get(&slot).copied(), deleted: self.deleted.get(&slot).copied() }
    }

    /// Notes that `version` of the record was seen (read or written).
    pub fn note_present(&mut self, kind: RecordKind, id: &str, version: u64) {
        let slot = self.slot(kind, id);
        if version <= 1
            && !tracked_from_first_version(kind)
            && !self.present.contains_key(&slot)
            && !self.deleted.contains_key(&slot)
        {
            return;
        }
        if self.present.get(&slot).is_some_and(|p| *p >= version) {
            return;
        }
        if self.present.len() >= self.cap && !self.present.contains_key(&slot) {
            // HashMap iteration order is randomized per start: an arbitrary mark.
            let victim = self.present.keys().next().copied();
            if let Some(victim) = victim {
                self.present.remove(&victim);
            }
        }
        self.present.insert(slot, version);
    }

    /// Whether a deletion of the record can be marked: the deletion set has room, or already holds the record.
    pub fn may_delete(&self, kind: RecordKind, id: &str) -> bool {
        self.deleted.len() < self.deleted_cap || self.deleted.contains_key(&self.slot(kind, id))
    }

    /// Notes that the record was deleted at `version`. Never evicted; may exceed the cap by the deletions that were
    /// admitted by [`HighWater::may_delete`] and in flight together.
    pub fn note_deleted(&mut self, kind: RecordKind, id: &str, version: u64) {
        let slot = self.slot(kind, id);
        self.present.remove(&slot);
        let v = self.deleted.entry(slot).or_insert(0);
        *v = (*v).max(version);
    }

    /// Number of present-version and deletion marks.
    #[cfg(test)]
    pub fn len(&self) -> (usize, usize) {
        (self.present.len(), self.deleted.len())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key256 {
        Key256::from_array([byte; 32])
    }

    /// Issue 13: two instances of one fleet (one domain key) name a record alike, so marks can move between them;
    /// another domain key names it otherwise (the host cannot compute names).
    #[test]
    fn names_are_fleet_wide_and_keyed() {
        let (a, b, other) =
            (HighWater::new(4, 4, &key(7)), HighWater::new(4, 4, &key(7)), HighWater::new(4, 4, &key(8)));
        assert_eq!(a.slot(RecordKind::Key, "k1"), b.slot(RecordKind::Key, "k1"));
        assert_ne!(a.slot(RecordKind::Key, "k1"), other.slot(RecordKind::Key, "k1"));
        assert_ne!(a.slot(RecordKind::Key, "k1"), a.slot(RecordKind::Alias, "k1"), "kind is part of the name");
        assert_ne!(a.slot(RecordKind::Key, "k1"), a.slot(RecordKind::Key, "k2"));
    }

    #[test]
    fn high_water_marks_are_compact_and_bounded() {
        let mut hw = HighWater::new(4, 4, &key(1));
        hw.note_present(RecordKind::Key, "a", 1);
        assert_eq!((hw.len(), hw.floor(RecordKind::Key, "a")), ((0, 0), Floor::default()), "key v1: untracked");
        hw.note_present(RecordKind::Key, "a", 3);
        assert_eq!(hw.floor(RecordKind::Key, "a").present, Some(3));
        assert_eq!(hw.floor(RecordKind::Alias, "a"), Floor::default(), "kind is part of the name");
        hw.note_present(RecordKind::Key, "a", 2);
        assert_eq!(hw.floor(RecordKind::Key, "a").present, Some(3), "marks never go down");
        hw.note_deleted(RecordKind::Key, "a", 3);
        assert_eq!(hw.floor(RecordKind::Key, "a"), Floor { present: None, deleted: Some(3) });
        assert!(!hw.floor(RecordKind::Key, "a").admits(3));
        assert!(hw.floor(RecordKind::Key, "a").admits(4));
        hw.note_present(RecordKind::Key, "a", 4);
        assert_eq!(hw.floor(RecordKind::Key, "a"), Floor { present: Some(4), deleted: Some(3) }, "floor stays");
        for i in 0..100 {
            hw.note_present(RecordKind::Key, &format!("c{i}"), 2);
            assert!(hw.len().0 <= 4);
        }
        assert_eq!(hw.floor(RecordKind::Key, "c99").present, Some(2), "the newest mark is kept");
    }

    #[test]
    fn aliases_principals_credentials_and_tombstones_are_tracked_from_version_one() {
        let mut hw = HighWater::new(16, 16, &key(1));
        for kind in [RecordKind::Alias, RecordKind::Principal, RecordKind::Credential, RecordKind::KeyTombstone] {
            hw.note_present(kind, "x", 1);
            assert_eq!(hw.floor(kind, "x").present, Some(1), "{kind:?}");
        }
        hw.note_present(RecordKind::Key, "x", 1);
        assert_eq!(hw.floor(RecordKind::Key, "x").present, None);
    }

    /// Issue 12 item 11: at the cap, deletion marks used to share one table with present marks and one could be
    /// evicted when no present mark was among the first few looked at.
    #[test]
    fn deletion_marks_are_never_evicted_and_refuse_when_full() {
        let mut hw = HighWater::new(8, 8, &key(1));
        for i in 0..8 {
            let id = format!("revoked{i}");
            assert!(hw.may_delete(RecordKind::Credential, &id));
            hw.note_deleted(RecordKind::Credential, &id, 1);
        }
        for i in 0..1000 {
            hw.note_present(RecordKind::Key, &format!("k{i}"), 2);
            assert!(hw.len().0 <= 8);
        }
        for i in 0..8 {
            assert_eq!(hw.floor(RecordKind::Credential, &format!("revoked{i}")).deleted, Some(1));
        }
        assert!(!hw.may_delete(RecordKind::Credential, "one-more"), "full: refuse rather than forget one");
        assert!(hw.may_delete(RecordKind::Credential, "revoked3"), "a record already marked can be deleted again");
    }
}
