//! IAM wildcard matching: `*` matches any run of characters (also none), `?` exactly one character, everything else
//! itself. No escapes, no character classes.
//!
//! Linear time: the pattern is split at its `*`s into segments; the first must match the start of the text, the last
//! its end, and each one between is found at its leftmost place after the previous one (leftmost is always safe, as a
//! later `*` can absorb whatever lies between). A segment is searched with shift-and (a bit-parallel automaton that
//! handles `?`), so every character of the text is looked at once per segment search, and the searches do not
//! overlap: at most `text + pattern` character steps, each costing `ceil(segment / 64)` word operations. Policies
//! bound patterns to [`MAX_PATTERN_CHARS`] (so at most 64 words); the matcher stays correct for longer ones.

use std::collections::HashMap;

/// Longest wildcard pattern a policy may hold (Action, Resource, `StringLike`/`ArnLike` values), in characters.
pub const MAX_PATTERN_CHARS: usize = 4096;

/// Case-sensitive match of `text` against `pattern` (resource ARNs, `StringLike`).
pub fn matches(pattern: &str, text: &str) -> bool {
    if !has_wildcard(pattern) {
        return pattern == text;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(&p, &t, &mut 0)
}

/// Case-insensitive match (actions): both sides are lower-cased first.
pub fn matches_ignore_case(pattern: &str, text: &str) -> bool {
    matches(&pattern.to_lowercase(), &text.to_lowercase())
}

/// Whether `s` contains a wildcard character.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// The match; `steps` counts word operations and character comparisons (for the linearity test).
fn glob(p: &[char], t: &[char], steps: &mut u64) -> bool {
    let stars = p.iter().filter(|c| **c == '*').count();
    if stars == 0 {
        return p.len() == t.len() && same(p, t, steps);
    }
    let mut segments = p.split(|c| *c == '*');
    let first = segments.next().unwrap_or_default();
    let last = p.rsplit(|c| *c == '*').next().unwrap_or_default();
    if first.len() + last.len() > t.len() {
        return false;
    }
    let (Some(head), Some(tail)) = (t.get(..first.len()), t.get(t.len() - last.len()..)) else { return false };
    if !same(first, head, steps) || !same(last, tail, steps) {
        return false;
    }
    let Some(mut window) = t.get(first.len()..t.len() - last.len()) else { return false };
    // The segments strictly between the first and the last `*`.
    for segment in segments.take(stars - 1) {
        if segment.is_empty() {
            continue;
        }
        match find(segment, window, steps).and_then(|end| window.get(end..)) {
            Some(rest) => window = rest,
            None => return false,
        }
    }
    true
}

/// Whether `segment` (which may hold `?`) matches `text` of the same length.
fn same(segment: &[char], text: &[char], steps: &mut u64) -> bool {
    *steps += segment.len() as u64;
    segment.len() == text.len() && segment.iter().zip(text).all(|(p, c)| *p == '?' || p == c)
}

/// Shift-and search: the end (exclusive) of the leftmost occurrence of `segment` (non-empty, may hold `?`) in `text`.
fn find(segment: &[char], text: &[char], steps: &mut u64) -> Option<usize> {
    let words = segment.len().div_ceil(64);
    if words == 0 || segment.len() > text.len() {
        return None;
    }
    // Bit j of a character's mask: segment position j accepts that character.
    let mut any = vec![0u64; words];
    let mut masks: HashMap<char, Vec<u64>> = HashMap::new();
    for (j, c) in segment.iter().enumerate() {
        let (w, bit) = (j / 64, 1u64 << (j % 64));
        let mask = if *c == '?' { &mut any } else { masks.entry(*c).or_insert_with(|| vec![0u64; words]) };
        if let Some(m) = mask.get_mut(w) {
            *m |= bit;
        }
    }
    for m in masks.values_mut() {
        for (m, a) in m.iter_mut().zip(&any) {
            *m |= a;
        }
    }
    let (last_word, last_bit) = ((segment.len() - 1) / 64, 1u64 << ((segment.len() - 1) % 64));
    // Bit j of the state: the last j + 1 characters read match the segment's first j + 1.
    let mut state = vec![0u64; words];
    for (i, c) in text.iter().enumerate() {
        let mask = masks.get(c).unwrap_or(&any);
        let mut carry = 1u64;
        for (s, m) in state.iter_mut().zip(mask) {
            let out = *s >> 63;
            *s = ((*s << 1) | carry) & m;
            carry = out;
        }
        *steps += words as u64;
        if state.get(last_word).is_some_and(|s| s & last_bit != 0) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook dynamic-programming matcher, as the reference.
    fn reference(p: &[char], t: &[char]) -> bool {
        let mut row = vec![false; t.len() + 1];
        row[0] = true;
        for pc in p {
            let mut next = vec![false; t.len() + 1];
            if *pc == '*' {
                let mut seen = false;
                for j in 0..=t.len() {
                    seen |= row[j];
                    next[j] = seen;
                }
            } else {
                for j in 1..=t.len() {
                    next[j] = row[j - 1] && (*pc == '?' || *pc == t[j - 1]);
                }
            }
            row = next;
        }
        row[t.len()]
    }

    /// Every string over `alphabet` of length up to `max`.
    fn all(alphabet: &[char], max: usize) -> Vec<Vec<char>> {
        let mut out = vec![vec![]];
        let mut layer = vec![vec![]];
        for _ in 0..max {
            let mut next = Vec::new();
            for s in &layer {
                for c in alphabet {
                    let mut s = s.clone();
                    s.push(*c);
                    next.push(s);
                }
            }
            out.extend(next.iter().cloned());
            layer = next;
        }
        out
    }

    #[test]
    fn agrees_with_the_reference_on_every_small_case() {
        let patterns = all(&['a', 'b', '*', '?'], 5);
        let texts = all(&['a', 'b'], 6);
        for p in &patterns {
            for t in &texts {
                assert_eq!(glob(p, t, &mut 0), reference(p, t), "{:?} vs {:?}", p, t);
            }
        }
    }

    #[test]
    fn examples() {
        assert!(matches("arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:us-east-1:111122223333:key/abc"));
        assert!(!matches("arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:us-east-1:999988887777:key/abc"));
        assert!(matches("kms:*", "kms:Decrypt") && matches("*", "") && matches("a?c", "abc"));
        assert!(!matches("a?c", "ac") && !matches("abc", "abd"));
        assert!(matches_ignore_case("KMS:decrypt", "kms:Decrypt"));
        assert!(matches("é*ü", "éxyzü") && matches("?", "é"));
        let long: String = "ab?".repeat(100);
        let text: String = "abc".repeat(100);
        assert!(matches(&format!("*{long}*"), &format!("zz{text}zz")));
    }

    /// The review's case (a 4,000-character pattern against 8 KiB took 15 ms, O(pattern × text)), and the classic
    /// worst cases of backtracking matchers: the step count stays within `(text + pattern) × words`.
    #[test]
    fn long_patterns_cost_linear_steps() {
        let text: Vec<char> = "a".repeat(8192).chars().collect();
        let cases: Vec<String> = vec![
            format!("*{}b", "a".repeat(3998)),
            format!("*{}b*", "a".repeat(3997)),
            "*a".repeat(2000),
            format!("{}b", "*a?".repeat(1333)),
            format!("*{}*b", "?".repeat(3997)),
        ];
        for pattern in cases {
            let p: Vec<char> = pattern.chars().collect();
            assert!(p.len() <= MAX_PATTERN_CHARS);
            let mut steps = 0u64;
            let expected = reference(&p, &text);
            assert_eq!(glob(&p, &text, &mut steps), expected);
            let longest = p.split(|c| *c == '*').map(<[char]>::len).max().unwrap_or(0);
            let bound = (text.len() + p.len()) as u64 * longest.div_ceil(64).max(1) as u64;
            assert!(steps <= bound, "{steps} steps > {bound} for a {}-char pattern", p.len());
            // O(pattern × text) would be ~32 million steps here.
            assert!(steps < 1_000_000, "{steps} steps");
        }
    }
}
