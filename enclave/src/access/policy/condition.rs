//! The Condition element: operators, their typed values, and their evaluation against a request's condition keys.

use super::json::{Json, truncate};
use super::wildcard;
use super::{PolicyError, RequestContext};
use crate::calendar;

/// `ForAnyValue:` / `ForAllValues:` or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    /// A single-valued operator (a multi-valued key matches when any value does; negated: when none does).
    None,
    /// True when at least one request value satisfies the operator; false for an absent key.
    ForAnyValue,
    /// True when every request value satisfies the operator; true for an absent key.
    ForAllValues,
}

/// The comparison an operator makes, before negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    /// `ArnEquals` and `ArnLike` (IAM treats them alike): the six colon-separated parts are matched one by one.
    ArnLike,
    Null,
}

/// The policy's values, typed at parse time so that a bad number or date is a malformed policy.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    /// Nanoseconds since the Unix epoch.
    Dates(Vec<i128>),
    Bools(Vec<bool>),
}

/// One condition: operator, one key, its values (ORed).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    qualifier: SetQualifier,
    operator: Operator,
    negated: bool,
    if_exists: bool,
    /// As written in the policy (lookups are case-insensitive).
    key: String,
    values: Values,
}

fn malformed(msg: impl Into<String>) -> PolicyError {
    PolicyError::Malformed(msg.into())
}

/// Splits an operator name into qualifier, operator, negation and IfExists. `None` for an unknown operator.
fn parse_operator(name: &str) -> Option<(SetQualifier, Operator, bool, bool)> {
    let (qualifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (SetQualifier::ForAnyValue, r)
    } else if let Some(r) = name.strip_prefix("ForAllValues:") {
        (SetQualifier::ForAllValues, r)
    } else {
        (SetQualifier::None, name)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (rest, false),
    };
    use Operator::*;
    let (op, negated) = match base {
        "StringEquals" => (StringEquals, false),
        "StringNotEquals" => (StringEquals, true),
        "StringEqualsIgnoreCase" => (StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (StringEqualsIgnoreCase, true),
        "StringLike" => (StringLike, false),
        "StringNotLike" => (StringLike, true),
        "NumericEquals" => (NumericEquals, false),
        "NumericNotEquals" => (NumericEquals, true),
        "NumericLessThan" => (NumericLessThan, false),
        "NumericLessThanEquals" => (NumericLessThanEquals, false),
        "NumericGreaterThan" => (NumericGreaterThan, false),
        "NumericGreaterThanEquals" => (NumericGreaterThanEquals, false),
        "DateEquals" => (DateEquals, false),
        "DateNotEquals" => (DateEquals, true),
        "DateLessThan" => (DateLessThan, false),
        "DateLessThanEquals" => (DateLessThanEquals, false),
        "DateGreaterThan" => (DateGreaterThan, false),
        "DateGreaterThanEquals" => (DateGreaterThanEquals, false),
        "Bool" => (Bool, false),
        "ArnEquals" | "ArnLike" => (ArnLike, false),
        "ArnNotEquals" | "ArnNotLike" => (ArnLike, true),
        "Null" => (Null, false),
        _ => return None,
    };
    Some((qualifier, op, negated, if_exists))
}

/// Reads a Condition element: `{operator: {key: value | [values]}}`.
pub(crate) fn parse_block(value: Json) -> Result<Vec<Condition>, PolicyError> {
    let Json::Object(ops) = value else {
        return Err(malformed(format!("Condition must be an object, not {}", value.kind())));
    };
    let mut out = Vec::new();
    for (op_name, block) in ops {
        let Some((qualifier, operator, negated, if_exists)) = parse_operator(&op_name) else {
            return Err(malformed(format!("Unknown condition operator \"{}\"", truncate(&op_name))));
        };
        if operator == Operator::Null && (if_exists || qualifier != SetQualifier::None) {
            return Err(malformed(format!("Invalid condition operator \"{}\"", truncate(&op_name))));
        }
        let Json::Object(keys) = block else {
            return Err(malformed(format!("Condition operator {} must map keys to values", truncate(&op_name))));
        };
        if keys.is_empty() {
            return Err(malformed(format!("Condition operator {} has no keys", truncate(&op_name))));
        }
        for (key, v) in keys {
            if key.is_empty() {
                return Err(malformed("Empty condition key"));
            }
            let raw = scalar_list(v, &key)?;
            let values = typed_values(operator, raw, &key)?;
            out.push(Condition { qualifier, operator, negated, if_exists, key, values });
        }
    }
    Ok(out)
}

/// A scalar or a non-empty array of scalars, as strings (numbers as written, booleans as `true`/`false`).
fn scalar_list(v: Json, key: &str) -> Result<Vec<String>, PolicyError> {
    let scalar = |v: Json| match v {
        Json::String(s) | Json::Number(s) => Ok(s),
        Json::Bool(b) => Ok(b.to_string()),
        other => Err(malformed(format!("Condition key {} has {} as a value", truncate(key), other.kind()))),
    };
    match v {
        Json::Array(items) if items.is_empty() => {
            Err(malformed(format!("Condition key {} has an empty list of values", truncate(key))))
        }
        Json::Array(items) => items.into_iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

fn typed_values(op: Operator, raw: Vec<String>, key: &str) -> Result<Values, PolicyError> {
    use Operator::*;
    let bad = |what: &str| malformed(format!("Condition key {} needs {what} values", truncate(key)));
    Ok(match op {
        StringEquals | StringEqualsIgnoreCase | StringLike | ArnLike => Values::Strings(raw),
        NumericEquals | NumericLessThan | NumericLessThanEquals | NumericGreaterThan | NumericGreaterThanEquals => {
            Values::Numbers(raw.iter().map(|s| parse_number(s)).collect::<Option<_>>().ok_or_else(|| bad("numeric"))?)
        }
        DateEquals | DateLessThan | DateLessThanEquals | DateGreaterThan | DateGreaterThanEquals => {
            Values::Dates(raw.iter().map(|s| parse_date(s)).collect::<Option<_>>().ok_or_else(|| bad("date"))?)
        }
        Bool | Null => Values::Bools(
            raw.iter().map(|s| parse_bool(s)).collect::<Option<_>>().ok_or_else(|| bad("\"true\" or \"false\""))?,
        ),
    })
}

impl Condition {
    /// The checks a policy being written must also pass (stored policies are read without them, so that a policy
    /// accepted before they existed keeps its meaning and can still be replaced): the key is one this service sets,
    /// and wildcard values are bounded.
    pub(crate) fn check_new_rules(&self) -> Result<(), PolicyError> {
        if !super::keys::is_supported(&self.key) {
            return Err(malformed(format!(
                "Condition key {} is not supported by this key service: it is never set, so a condition on it would \
                 never apply as written",
                truncate(&self.key)
            )));
        }
        if let (Values::Strings(vs), Operator::StringLike | Operator::ArnLike) = (&self.values, self.operator) {
            for v in vs {
                super::document::check_pattern_len(v, &format!("Condition key {}", truncate(&self.key)))?;
            }
        }
        Ok(())
    }

    /// The operator (before negation).
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// Whether this is a negated operator (`StringNotEquals`, `NumericNotEquals`, `ArnNotLike`, …).
    pub fn negated(&self) -> bool {
        self.negated
    }

    /// Whether the operator has the `IfExists` suffix.
    pub fn if_exists(&self) -> bool {
        self.if_exists
    }

    /// `ForAnyValue:`, `ForAllValues:` or neither.
    pub fn qualifier(&self) -> SetQualifier {
        self.qualifier
    }

    /// The condition key as the policy spells it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the condition holds for `req`.
    pub fn evaluate(&self, req: &RequestContext) -> bool {
        let present = req.values(&self.key);
        if self.operator == Operator::Null {
            // "true": the key must be absent; "false": present. Several values are ORed.
            let Values::Bools(want) = &self.values else { return false };
            return want.iter().any(|absent| *absent == present.is_none());
        }
        match (self.qualifier, present) {
            (SetQualifier::None, None) => self.if_exists || self.negated,
            (SetQualifier::None, Some(vals)) => {
                if self.negated {
                    vals.iter().all(|v| self.value_ok(v))
                } else {
                    vals.iter().any(|v| self.value_ok(v))
                }
            }
            (SetQualifier::ForAnyValue, None) => self.if_exists,
            (SetQualifier::ForAnyValue, Some(vals)) => vals.iter().any(|v| self.value_ok(v)),
            (SetQualifier::ForAllValues, None) => true,
            (SetQualifier::ForAllValues, Some(vals)) => vals.iter().all(|v| self.value_ok(v)),
        }
    }

    /// Whether one request value satisfies the operator: it matches one of the policy's values, or for a negated
    /// operator, none of them.
    fn value_ok(&self, v: &str) -> bool {
        self.matches_any(v) != self.negated
    }

    fn matches_any(&self, v: &str) -> bool {
        use Operator::*;
        match (&self.values, self.operator) {
            (Values::Strings(ps), StringEquals) => ps.iter().any(|p| p == v),
            (Values::Strings(ps), StringEqualsIgnoreCase) => {
                let v = v.to_lowercase();
                ps.iter().any(|p| p.to_lowercase() == v)
            }
            (Values::Strings(ps), StringLike) => ps.iter().any(|p| wildcard::matches(p, v)),
            (Values::Strings(ps), ArnLike) => ps.iter().any(|p| arn_like(p, v)),
            (Values::Numbers(ps), op) => {
                let Some(x) = parse_number(v) else { return false };
                ps.iter().any(|p| compare(op, x.partial_cmp(p)))
            }
            (Values::Dates(ps), op) => {
                let Some(x) = parse_date(v) else { return false };
                ps.iter().any(|p| compare(op, Some(x.cmp(p))))
            }
            (Values::Bools(ps), Bool) => {
                let Some(x) = parse_bool(v) else { return false };
                ps.contains(&x)
            }
            _ => false,
        }
    }
}

/// Applies a numeric or date operator to `request.cmp(policy)`.
fn compare(op: Operator, ord: Option<std::cmp::Ordering>) -> bool {
    use Operator::*;
    use std::cmp::Ordering::*;
    let Some(ord) = ord else { return false };
    match op {
        NumericEquals | DateEquals => ord == Equal,
        NumericLessThan | DateLessThan => ord == Less,
        NumericLessThanEquals | DateLessThanEquals => ord != Greater,
        NumericGreaterThan | DateGreaterThan => ord == Greater,
        NumericGreaterThanEquals | DateGreaterThanEquals => ord != Less,
        _ => false,
    }
}

/// `ArnLike`: both sides must have six colon-separated parts (the last may hold colons); each part is matched with
/// wildcards on its own, so a `*` never spans a colon of the first five.
fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(a.iter()).all(|(pp, aa)| wildcard::matches(pp, aa))
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A decimal number: optional sign, digits, optional fraction and exponent. No `inf`, `NaN` or hex.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty()
        || s.len() > 64
        || !s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    if !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A date as nanoseconds since the Unix epoch: integer epoch seconds, or ISO 8601
/// `YYYY-MM-DD[Thh:mm[:ss[.fraction]]][Z|±hh[:mm]]` (no offset means UTC).
pub(crate) fn parse_date(s: &str) -> Option<i128> {
    const NS: i128 = 1_000_000_000;
    let s = s.trim();
    if s.len() > 64 {
        return None;
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().map(|secs| i128::from(secs) * NS);
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    let at = |i: usize| b.get(i).copied();
    let year = num(0, 4)?;
    if at(4)? != b'-' || at(7)? != b'-' {
        return None;
    }
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > calendar::days_in_month(year, month) {
        return None;
    }
    let mut secs = calendar::days_from_civil(year, month, day) * 86_400;
    let mut nanos: i128 = 0;
    let mut i = 10;
    if matches!(at(i), Some(b'T' | b't')) {
        let hour = num(i + 1, 2)?;
        if at(i + 3)? != b':' {
            return None;
        }
        let minute = num(i + 4, 2)?;
        i += 6;
        let mut second = 0;
        if at(i) == Some(b':') {
            second = num(i + 1, 2)?;
            i += 3;
            if at(i) == Some(b'.') {
                i += 1;
                let start = i;
                while at(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                let frac = s.get(start..i)?;
                if frac.is_empty() {
                    return None;
                }
                let mut padded: String = frac.chars().take(9).collect();
                while padded.len() < 9 {
                    padded.push('0');
                }
                nanos = padded.parse::<i128>().ok()?;
            }
        }
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        secs += hour * 3600 + minute * 60 + second;
        match at(i) {
            None => {}
            Some(b'Z' | b'z') => i += 1,
            Some(sign @ (b'+' | b'-')) => {
                let oh = num(i + 1, 2)?;
                i += 3;
                let mut om = 0;
                if at(i) == Some(b':') {
                    om = num(i + 1, 2)?;
                    i += 3;
                } else if at(i).is_some_and(|c| c.is_ascii_digit()) {
                    om = num(i, 2)?;
                    i += 2;
                }
                if oh > 23 || om > 59 {
                    return None;
                }
                let offset = oh * 3600 + om * 60;
                // Local time = UTC + offset, so UTC = local - offset.
                secs += if sign == b'+' { -offset } else { offset };
            }
            Some(_) => return None,
        }
    }
    if i != b.len() {
        return None;
    }
    Some(i128::from(secs) * NS + nanos)
}
