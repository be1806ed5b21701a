//! IAM wildcard matching: `*` matches any run of characters (also none), `?` exactly one character, everything else
//! itself. No escapes, no character classes. Linear in practice, O(pattern × text) at worst, never recursive.

/// Case-sensitive match of `text` against `pattern` (resource ARNs, `StringLike`).
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob(&p, &t)
}

/// Case-insensitive match (actions): both sides are lower-cased first.
pub fn matches_ignore_case(pattern: &str, text: &str) -> bool {
    matches(&pattern.to_lowercase(), &text.to_lowercase())
}

fn glob(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // The last `*` seen, and the text position it is currently taken to stop at.
    let mut star: Option<(usize, usize)> = None;
    loop {
        match (p.get(pi), t.get(ti)) {
            (Some('*'), _) => {
                star = Some((pi, ti));
                pi += 1;
            }
            (Some(pc), Some(tc)) if *pc == '?' || pc == tc => {
                pi += 1;
                ti += 1;
            }
            (_, Some(_)) => match star {
                // Let the last `*` swallow one more character and retry from just after it.
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
            (Some(_), None) => return false,
            (None, None) => return true,
        }
    }
}

/// Whether `s` contains a wildcard character.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?'])
}
