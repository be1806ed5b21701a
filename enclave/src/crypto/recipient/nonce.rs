//! Server-issued nonces for fresh attestation documents (our extension).
//!
//! A client asks for a nonce, puts it in the `nonce` field of a new attestation document, and sends the document back
//! as `Recipient`; redeeming the nonce proves the document is fresh and used once. Format (44 bytes):
//! `"EKN1"` || 16 random bytes || expiry (u64 big-endian Unix seconds, issue time + [`NONCE_TTL_SECS`]) ||
//! HMAC-SHA256(mac key, all of the above) truncated to 16 bytes. Nonces are stateless until redeemed; redeemed ones
//! are remembered until they expire, in a set bounded by [`MAX_REDEEMED`]. Issuing is bounded per principal: at most
//! [`MAX_OUTSTANDING_PER_PRINCIPAL`] unexpired nonces (their expiries are kept, 8 bytes each). The book lives in
//! enclave memory only, so a restart forgets it: a nonce issued before a restart could be redeemed once more after it,
//! within its TTL.

use crate::crypto::secret::Key256;
use aws_lc_rs::hmac;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use subtle::ConstantTimeEq;

/// Magic prefix of our nonces.
pub const MAGIC: &[u8; 4] = b"EKN1";
/// Length of the random part.
const ID_LEN: usize = 16;
/// Length of the truncated HMAC-SHA256 tag.
const TAG_LEN: usize = 16;
/// Offsets of the nonce's parts.
const ID_END: usize = MAGIC.len() + ID_LEN;
const EXPIRY_END: usize = ID_END + 8;
/// Length of a nonce: magic, id, expiry, tag.
pub const NONCE_LEN: usize = EXPIRY_END + TAG_LEN;
/// Lifetime of a nonce, in seconds.
pub const NONCE_TTL_SECS: u64 = 300;
/// Most redeemed, unexpired nonces remembered; beyond it `redeem` answers [`NonceError::Busy`].
pub const MAX_REDEEMED: usize = 1_000_000;
/// Most unexpired nonces issued to one principal (about 33 a second sustained over the TTL); beyond it `issue`
/// answers [`NonceError::Busy`].
pub const MAX_OUTSTANDING_PER_PRINCIPAL: usize = 10_000;

/// Why a nonce was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    /// Not one of ours: wrong format or a bad tag.
    #[error("the attestation document's nonce was not issued by this service")]
    Forged,
    /// Ours, but past its expiry.
    #[error("the attestation document's nonce has expired")]
    Expired,
    /// Ours and unexpired, but already redeemed once.
    #[error("the attestation document's nonce has already been used")]
    Replayed,
    /// Too many redeemed nonces are remembered; try again later.
    #[error("too many outstanding nonces; retry later")]
    Busy,
}

#[derive(Default)]
struct Redeemed {
    ids: HashSet<[u8; ID_LEN]>,
    by_expiry: BTreeSet<(u64, [u8; ID_LEN])>,
}

impl Redeemed {
    /// Forgets every nonce whose expiry has passed.
    fn prune(&mut self, now_unix: u64) {
        while let Some(&(expiry, id)) = self.by_expiry.first() {
            if expiry >= now_unix {
                break;
            }
            self.by_expiry.pop_first();
            self.ids.remove(&id);
        }
    }
}

/// Issues and redeems nonces. Thread-safe, bounded, no I/O; time is a parameter.
pub struct NonceBook {
    mac: hmac::Key,
    counter: AtomicU64,
    redeemed: Mutex<Redeemed>,
    /// Per principal ARN: expiries of the unexpired nonces issued to it, oldest first.
    issued: Mutex<HashMap<String, VecDeque<u64>>>,
}

impl std::fmt::Debug for NonceBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceBook")
    }
}

impl NonceBook {
    /// A book whose tags are keyed by `mac_key`.
    pub fn new(mac_key: Key256) -> Self {
        Self {
            mac: hmac::Key::new(hmac::HMAC_SHA256, mac_key.expose_secret()),
            counter: AtomicU64::new(0),
            redeemed: Mutex::new(Redeemed::default()),
            issued: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let full = hmac::sign(&self.mac, body);
        let mut tag = [0u8; TAG_LEN];
        for (t, f) in tag.iter_mut().zip(full.as_ref()) {
            *t = *f;
        }
        tag
    }

    /// A fresh nonce for `principal`, valid until `now_unix` + [`NONCE_TTL_SECS`]; [`NonceError::Busy`] when the
    /// principal already holds [`MAX_OUTSTANDING_PER_PRINCIPAL`] unexpired ones.
    pub fn issue(&self, principal: &str, now_unix: u64) -> Result<Vec<u8>, NonceError> {
        let expiry = now_unix.saturating_add(NONCE_TTL_SECS);
        {
            // Nothing in the critical section panics, so a poisoned lock still holds a consistent map.
            let mut issued = self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mine = issued.entry(principal.to_owned()).or_default();
            while mine.front().is_some_and(|e| *e < now_unix) {
                mine.pop_front();
            }
            if mine.len() >= MAX_OUTSTANDING_PER_PRINCIPAL {
                return Err(NonceError::Busy);
            }
            mine.push_back(expiry);
            // Drop principals whose nonces all expired, so the map holds only principals with live nonces.
            if issued.len() > 1024 {
                issued.retain(|_, q| q.back().is_some_and(|e| *e >= now_unix));
            }
        }
        Ok(self.mint(now_unix))
    }

    fn mint(&self, now_unix: u64) -> Vec<u8> {
        // The id is a keyed hash of OS randomness and a per-book counter: unique within the book's life even if the
        // RNG failed (AWS-LC aborts rather than return an error, so that case is theoretical), never a panic here.
        let mut random = [0u8; ID_LEN];
        let _ = aws_lc_rs::rand::fill(&mut random);
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut seed = Vec::with_capacity(8 + ID_LEN + 8);
        seed.extend_from_slice(b"EKN1 id\0");
        seed.extend_from_slice(&random);
        seed.extend_from_slice(&count.to_be_bytes());
        let id = self.tag(&seed);

        let mut nonce = Vec::with_capacity(NONCE_LEN);
        nonce.extend_from_slice(MAGIC);
        nonce.extend_from_slice(&id);
        nonce.extend_from_slice(&now_unix.saturating_add(NONCE_TTL_SECS).to_be_bytes());
        let tag = self.tag(&nonce);
        nonce.extend_from_slice(&tag);
        nonce
    }

    /// Whether `nonce` has the shape of one of ours (magic and length); says nothing of its tag.
    pub fn is_ours(nonce: &[u8]) -> bool {
        nonce.len() == NONCE_LEN && nonce.starts_with(MAGIC)
    }

    /// Whether `nonce` would redeem now (ours, unexpired, not redeemed), without redeeming it.
    pub fn check(&self, nonce: &[u8], now_unix: u64) -> Result<(), NonceError> {
        let (id, _) = self.open(nonce, now_unix)?;
        let redeemed = self.redeemed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if redeemed.ids.contains(&id) { Err(NonceError::Replayed) } else { Ok(()) }
    }

    /// Redeems `nonce` once: it must carry our tag, be unexpired at `now_unix` and not have been redeemed before.
    pub fn redeem(&self, nonce: &[u8], now_unix: u64) -> Result<(), NonceError> {
        let (id, expiry) = self.open(nonce, now_unix)?;
        // Nothing in the critical section panics, so a poisoned lock still holds a consistent set.
        let mut redeemed = self.redeemed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        redeemed.prune(now_unix);
        if redeemed.ids.contains(&id) {
            return Err(NonceError::Replayed);
        }
        if redeemed.ids.len() >= MAX_REDEEMED {
            return Err(NonceError::Busy);
        }
        redeemed.ids.insert(id);
        redeemed.by_expiry.insert((expiry, id));
        Ok(())
    }

    /// The id and expiry of one of our unexpired nonces.
    fn open(&self, nonce: &[u8], now_unix: u64) -> Result<([u8; ID_LEN], u64), NonceError> {
        if !Self::is_ours(nonce) {
            return Err(NonceError::Forged);
        }
        let (body, tag) = nonce.split_at_checked(EXPIRY_END).ok_or(NonceError::Forged)?;
        if !bool::from(self.tag(body).ct_eq(tag)) {
            return Err(NonceError::Forged);
        }
        let id: [u8; ID_LEN] =
            body.get(MAGIC.len()..ID_END).and_then(|s| s.try_into().ok()).ok_or(NonceError::Forged)?;
        let expiry = body
            .get(ID_END..EXPIRY_END)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_be_bytes)
            .ok_or(NonceError::Forged)?;
        if expiry < now_unix {
            return Err(NonceError::Expired);
        }
        Ok((id, expiry))
    }

    /// How many redeemed nonces are remembered (for metrics and tests).
    pub fn redeemed_len(&self) -> usize {
        self.redeemed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "arn:aws:iam::000000000000:user/p";

    fn book() -> NonceBook {
        NonceBook::new(Key256::from_array([7u8; 32]))
    }

    #[test]
    fn issued_nonce_redeems_once() {
        let b = book();
        let n = b.issue(P, 1000).unwrap();
        assert_eq!(n.len(), NONCE_LEN);
        assert!(NonceBook::is_ours(&n));
        assert_eq!(b.redeem(&n, 1000), Ok(()));
        assert_eq!(b.redeem(&n, 1001), Err(NonceError::Replayed));
        assert_eq!(u64::from_be_bytes(n[20..28].try_into().unwrap()), 1000 + NONCE_TTL_SECS);
    }

    #[test]
    fn nonces_are_distinct() {
        let b = book();
        let a = b.issue(P, 1000).unwrap();
        let c = b.issue(P, 1000).unwrap();
        assert_ne!(a, c);
        assert_eq!(b.redeem(&a, 1000), Ok(()));
        assert_eq!(b.redeem(&c, 1000), Ok(()));
    }

    #[test]
    fn expired_nonce_is_refused() {
        let b = book();
        let n = b.issue(P, 1000).unwrap();
        assert_eq!(b.redeem(&n, 1000 + NONCE_TTL_SECS + 1), Err(NonceError::Expired));
        // Still fine at the last second of its life.
        assert_eq!(b.redeem(&n, 1000 + NONCE_TTL_SECS), Ok(()));
    }

    #[test]
    fn forged_nonces_are_refused() {
        let b = book();
        let n = b.issue(P, 1000).unwrap();
        for i in 0..n.len() {
            let mut t = n.clone();
            t[i] ^= 1;
            assert_eq!(b.redeem(&t, 1000), Err(NonceError::Forged), "byte {i}");
        }
        assert_eq!(b.redeem(&n[..NONCE_LEN - 1], 1000), Err(NonceError::Forged));
        assert_eq!(b.redeem(&[n.as_slice(), b"x"].concat(), 1000), Err(NonceError::Forged));
        assert_eq!(b.redeem(b"", 1000), Err(NonceError::Forged));
        assert!(!NonceBook::is_ours(b"client nonce"));
        // Another book's key.
        let other = NonceBook::new(Key256::from_array([8u8; 32]));
        assert_eq!(other.redeem(&n, 1000), Err(NonceError::Forged));
        // A longer life cannot be forged: the expiry is under the tag.
        let mut longer = n.clone();
        longer[20..28].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(b.redeem(&longer, 1000), Err(NonceError::Forged));
    }

    #[test]
    fn redeemed_set_is_pruned_and_bounded() {
        let b = book();
        let n1 = b.issue(P, 1000).unwrap();
        b.redeem(&n1, 1000).unwrap();
        assert_eq!(b.redeemed_len(), 1);
        let n2 = b.issue(P, 2000).unwrap();
        b.redeem(&n2, 2000).unwrap();
        assert_eq!(b.redeemed_len(), 1, "n1 expired and was pruned");

        // Fill the set to its bound directly (a million HMACs would slow the suite for nothing).
        {
            let mut r = b.redeemed.lock().unwrap();
            for i in 0..(MAX_REDEEMED as u64 - 1) {
                let mut id = [0u8; ID_LEN];
                id[..8].copy_from_slice(&i.to_be_bytes());
                id[8] = 0xff;
                r.ids.insert(id);
                r.by_expiry.insert((5000, id));
            }
        }
        assert_eq!(b.redeemed_len(), MAX_REDEEMED);
        let n3 = b.issue(P, 2000).unwrap();
        assert_eq!(b.redeem(&n3, 2000), Err(NonceError::Busy));
        // Once they expire there is room again.
        let n4 = b.issue(P, 5001).unwrap();
        assert_eq!(b.redeem(&n4, 5001), Ok(()));
        assert_eq!(b.redeemed_len(), 1);
    }

    #[test]
    fn check_does_not_redeem() {
        let b = book();
        let n = b.issue(P, 1000).unwrap();
        assert_eq!(b.check(&n, 1000), Ok(()));
        assert_eq!(b.check(&n, 1000), Ok(()), "checking twice spends nothing");
        assert_eq!(b.redeemed_len(), 0);
        assert_eq!(b.redeem(&n, 1000), Ok(()));
        assert_eq!(b.check(&n, 1000), Err(NonceError::Replayed));
        assert_eq!(b.check(&n, 1000 + NONCE_TTL_SECS + 1), Err(NonceError::Expired));
        let mut forged = n.clone();
        forged[5] ^= 1;
        assert_eq!(b.check(&forged, 1000), Err(NonceError::Forged));
    }

    #[test]
    fn outstanding_nonces_are_bounded_per_principal() {
        let b = book();
        for _ in 0..MAX_OUTSTANDING_PER_PRINCIPAL {
            b.issue(P, 1000).unwrap();
        }
        assert_eq!(b.issue(P, 1000), Err(NonceError::Busy));
        assert_eq!(b.issue(P, 1000 + NONCE_TTL_SECS), Err(NonceError::Busy), "still unexpired at the last second");
        // Another principal is not affected; the first gets room as its nonces expire.
        assert!(b.issue("arn:aws:iam::000000000000:user/q", 1000).is_ok());
        assert!(b.issue(P, 1000 + NONCE_TTL_SECS + 1).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_redeem(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            proptest::prop_assert!(book().redeem(&bytes, 1000).is_err());
        }
    }
}
