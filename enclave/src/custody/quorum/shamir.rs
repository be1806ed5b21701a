//! Shamir secret sharing of a 32-byte secret over GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1).
//!
//! Each byte of the secret is the constant term of its own random polynomial of degree `threshold - 1`; share `i`
//! (1..=n) holds the 32 polynomial values at x = i. Any `threshold` shares give the secret back by Lagrange
//! interpolation at 0; fewer give every secret value with equal probability. Field arithmetic is table-free and
//! branch-free on secret data (no lookups indexed by a secret byte), so timing does not depend on shares or secret.
//! The share indices are public; only they steer control flow.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of the shared secret and of each share's value.
pub const SECRET_LEN: usize = 32;
/// Most shares (operators) in one split.
pub const MAX_SHARES: u8 = 16;

/// One share: its public index (x, 1..=16) and its secret value (the 32 polynomial values at x).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Share {
    #[zeroize(skip)]
    index: u8,
    value: [u8; SECRET_LEN],
}

impl Share {
    /// A share from its index and value (e.g. decrypted from a submission).
    pub fn new(index: u8, value: [u8; SECRET_LEN]) -> Self {
        Self { index, value }
    }

    /// The public x coordinate.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The secret value. Every use is a place where share material is handled.
    pub fn expose_secret(&self) -> &[u8; SECRET_LEN] {
        &self.value
    }
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share({}, ..)", self.index)
    }
}

/// Why a split or a combination was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// threshold < 1, n < threshold, or n > [`MAX_SHARES`].
    #[error("a {threshold}-of-{n} split is not possible (1 <= threshold <= n <= {MAX_SHARES})")]
    BadParameters { threshold: u8, n: u8 },
    /// Two shares with one index, or an index 0 (that would be the secret itself).
    #[error("share indices must be distinct and non-zero")]
    BadIndex,
    /// No shares at all.
    #[error("no shares")]
    Empty,
    /// The random source failed.
    #[error("random source failed")]
    Random,
}

/// a * b in GF(2^8), constant time: eight fixed rounds, masks instead of branches.
pub(crate) fn mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut p) = (a, b, 0u8);
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    p
}

/// a^-1 in GF(2^8) as a^254 (0 maps to 0), constant time.
pub(crate) fn inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: square-and-multiply with a fixed sequence.
    let a2 = mul(a, a);
    let a3 = mul(a2, a);
    let a6 = mul(a3, a3);
    let a7 = mul(a6, a);
    let a14 = mul(a7, a7);
    let a15 = mul(a14, a);
    let a30 = mul(a15, a15);
    let a31 = mul(a30, a);
    let a62 = mul(a31, a31);
    let a63 = mul(a62, a);
    let a126 = mul(a63, a63);
    let a127 = mul(a126, a);
    mul(a127, a127)
}

/// Splits `secret` into `n` shares, any `threshold` of which recombine it. Indices are 1..=n.
pub fn split(secret: &[u8; SECRET_LEN], threshold: u8, n: u8) -> Result<Vec<Share>, ShamirError> {
    if threshold < 1 || n < threshold || n > MAX_SHARES {
        return Err(ShamirError::BadParameters { threshold, n });
    }
    // coefficients[k][b]: coefficient of x^(k+1) of byte b's polynomial.
    let mut coefficients = vec![[0u8; SECRET_LEN]; usize::from(threshold - 1)];
    for c in &mut coefficients {
        getrandom::fill(c).map_err(|_| ShamirError::Random)?;
    }
    let shares = split_with(secret, &coefficients, n);
    coefficients.zeroize();
    Ok(shares)
}

/// The split with given higher coefficients (Horner's rule at x = 1..=n).
fn split_with(secret: &[u8; SECRET_LEN], coefficients: &[[u8; SECRET_LEN]], n: u8) -> Vec<Share> {
    (1..=n)
        .map(|x| {
            let mut value = [0u8; SECRET_LEN];
            for (b, out) in value.iter_mut().enumerate() {
                let mut acc = 0u8;
                for c in coefficients.iter().rev() {
                    acc = mul(acc, x) ^ c.get(b).copied().unwrap_or(0);
                }
                *out = mul(acc, x) ^ secret.get(b).copied().unwrap_or(0);
            }
            Share { index: x, value }
        })
        .collect()
}

/// Recombines the secret from shares with distinct non-zero indices (Lagrange interpolation at 0). With fewer than
/// the threshold, or with a wrong share, the result is some other value: callers check each share against its
/// commitment first and the result against the domain-key check after.
pub fn combine(shares: &[&Share]) -> Result<zeroize::Zeroizing<[u8; SECRET_LEN]>, ShamirError> {
    if shares.is_empty() {
        return Err(ShamirError::Empty);
    }
    for (i, s) in shares.iter().enumerate() {
        if s.index == 0 || shares.iter().skip(i + 1).any(|t| t.index == s.index) {
            return Err(ShamirError::BadIndex);
        }
    }
    let mut secret = zeroize::Zeroizing::new([0u8; SECRET_LEN]);
    for s in shares {
        // L_j(0) = prod_{k != j} x_k / (x_j + x_k)   (addition is xor in GF(2^8))
        let mut num = 1u8;
        let mut den = 1u8;
        for t in shares.iter().filter(|t| t.index != s.index) {
            num = mul(num, t.index);
            den = mul(den, s.index ^ t.index);
        }
        let lagrange = mul(num, inv(den));
        for (out, y) in secret.iter_mut().zip(s.value.iter()) {
            *out ^= mul(*y, lagrange);
        }
    }
    Ok(secret)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference multiply by log/exp tables with generator 0x03: an independent implementation.
    fn tables() -> ([u8; 256], [u8; 256]) {
        let (mut exp, mut log) = ([0u8; 256], [0u8; 256]);
        let mut x = 1u8;
        for i in 0..255u8 {
            exp[usize::from(i)] = x;
            log[usize::from(x)] = i;
            // x *= 3: x ^ xtime(x)
            let xt = (x << 1) ^ if x & 0x80 != 0 { 0x1b } else { 0 };
            x ^= xt;
        }
        (exp, log)
    }

    #[test]
    fn mul_known_vectors() {
        // FIPS-197 §4.2: {57} * {83} = {c1}, {57} * {13} = {fe}; {53} and {ca} are inverses (§5.1.1 example).
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
        assert_eq!(mul(0x53, 0xca), 0x01);
        assert_eq!(inv(0x53), 0xca);
        assert_eq!(inv(0), 0);
    }

    #[test]
    fn mul_and_inv_match_the_table_implementation_everywhere() {
        let (exp, log) = tables();
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let want = if a == 0 || b == 0 {
                    0
                } else {
                    exp[(usize::from(log[usize::from(a)]) + usize::from(log[usize::from(b)])) % 255]
                };
                assert_eq!(mul(a, b), want, "{a:#x} * {b:#x}");
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a)), 1, "inverse of {a:#x}");
            }
        }
    }

    #[test]
    fn known_split_vector() {
        // f(x) = 0x2a + 0x07 x + 0x03 x^2 for every byte; f(1) = 0x2e, f(2) = 0x2a^0x0e^0x0c = 0x28,
        // f(3) = 0x2a ^ mul(7,3)=0x09 ^ mul(3,5)=0x0f = 0x2c.
        let secret = [0x2a; 32];
        let shares = split_with(&secret, &[[0x07; 32], [0x03; 32]], 3);
        assert_eq!(shares[0].value, [0x2e; 32]);
        assert_eq!(shares[1].value, [0x28; 32]);
        assert_eq!(shares[2].value, [0x2c; 32]);
        // Two shares of a 3-threshold split interpolate a line, not the secret.
        assert_ne!(*combine(&[&shares[2], &shares[0]]).unwrap(), secret);
        assert_eq!(*combine(&[&shares[2], &shares[0], &shares[1]]).unwrap(), secret);
        assert_eq!(*combine(&[&shares[0], &shares[1], &shares[2]]).unwrap(), secret);
    }

    #[test]
    fn bad_parameters_and_indices_are_refused() {
        let s = [1u8; 32];
        assert_eq!(split(&s, 0, 3).unwrap_err(), ShamirError::BadParameters { threshold: 0, n: 3 });
        assert_eq!(split(&s, 4, 3).unwrap_err(), ShamirError::BadParameters { threshold: 4, n: 3 });
        assert_eq!(split(&s, 2, 17).unwrap_err(), ShamirError::BadParameters { threshold: 2, n: 17 });
        let shares = split(&s, 2, 3).unwrap();
        assert_eq!(combine(&[]).unwrap_err(), ShamirError::Empty);
        assert_eq!(combine(&[&shares[0], &shares[0]]).unwrap_err(), ShamirError::BadIndex);
        let zero = Share::new(0, [0; 32]);
        assert_eq!(combine(&[&zero, &shares[1]]).unwrap_err(), ShamirError::BadIndex);
        assert_eq!(format!("{:?}", shares[0]), "Share(1, ..)");
    }

    #[test]
    fn one_of_n_is_the_secret_itself() {
        let s = [9u8; 32];
        for share in split(&s, 1, 4).unwrap() {
            assert_eq!(share.value, s);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any `threshold` of `n` shares (in any order) give the secret back; a corrupted share changes the result.
        #[test]
        fn any_threshold_subset_reconstructs(secret in any::<[u8; 32]>(), n in 1u8..=16, t_seed in any::<u8>(),
                                             pick in any::<u64>(), flip in 0usize..32) {
            let threshold = 1 + t_seed % n;
            let shares = split(&secret, threshold, n).unwrap();
            // A pseudo-random subset of exactly `threshold` shares, from `pick`.
            let mut order: Vec<usize> = (0..usize::from(n)).collect();
            let mut p = pick;
            for i in (1..order.len()).rev() {
                order.swap(i, (p % (i as u64 + 1)) as usize);
                p = p.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
            }
            let subset: Vec<&Share> = order[..usize::from(threshold)].iter().map(|&i| &shares[i]).collect();
            prop_assert_eq!(*combine(&subset).unwrap(), secret);

            let mut bad = Share::new(subset[0].index, *subset[0].expose_secret());
            bad.value[flip] ^= 1;
            let mut with_bad = subset.clone();
            with_bad[0] = &bad;
            prop_assert_ne!(*combine(&with_bad).unwrap(), secret);
        }

        /// With threshold - 1 shares, every candidate secret is consistent: for any target secret there is a
        /// polynomial through those shares with that constant term (so they reveal nothing about it).
        #[test]
        fn fewer_than_threshold_fit_any_secret(secret in any::<[u8; 32]>(), target in any::<[u8; 32]>(),
                                                n in 2u8..=16, t_seed in any::<u8>()) {
            let threshold = 2 + t_seed % (n - 1);
            let shares = split(&secret, threshold, n).unwrap();
            let known: Vec<&Share> = shares[..usize::from(threshold - 1)].iter().collect();
            // A share at a fresh index exists that, with the known ones, yields `target`: solve for it
            // (the combination is linear in that share's value).
            let fresh = n + 1;
            let mut fake = [0u8; 32];
            // combine(known + (fresh, y)) = base + y * L_fresh(0).
            let base = combine(&[known.as_slice(), &[&Share::new(fresh, [0; 32])]].concat()).unwrap();
            let mut num = 1u8;
            let mut den = 1u8;
            for s in &known {
                num = mul(num, s.index());
                den = mul(den, fresh ^ s.index());
            }
            let l = mul(num, inv(den));
            for b in 0..32 {
                fake[b] = mul(target[b] ^ base[b], inv(l));
            }
            let fake_share = Share::new(fresh, fake);
            prop_assert_eq!(*combine(&[known.as_slice(), &[&fake_share]].concat()).unwrap(), target);
        }
    }
}
