//! Key ids, ARNs and the KeyId forms AWS accepts.

use crate::error::Error;

/// Longest KeyId AWS accepts.
pub const MAX_KEY_ID_LEN: usize = 2048;

/// Region and account that ARNs are minted in.
#[derive(Debug, Clone)]
pub struct Scope {
    /// e.g. `us-east-1`.
    pub region: String,
    /// 12 digits.
    pub account_id: String,
}

impl Scope {
    /// `arn:aws:kms:REGION:ACCOUNT:key/UUID`.
    pub fn key_arn(&self, key_id: &str) -> String {
        format!("arn:aws:kms:{}:{}:key/{}", self.region, self.account_id, key_id)
    }

    /// `arn:aws:kms:REGION:ACCOUNT:alias/NAME` for `alias/NAME`.
    pub fn alias_arn(&self, alias_name: &str) -> String {
        format!("arn:aws:kms:{}:{}:{}", self.region, self.account_id, alias_name)
    }

    /// The principal ARN of a user in this account.
    pub fn user_arn(&self, user: &str) -> String {
        format!("arn:aws:iam::{}:user/{}", self.account_id, user)
    }
}

/// What a KeyId names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A key, by its UUID string.
    Id(String),
    /// An alias, `alias/NAME`.
    Alias(String),
}

/// Formats 16 bytes as a lowercase canonical UUID.
pub fn format_uuid(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or_default();
    format!("{}-{}-{}-{}-{}", part(0..8), part(8..12), part(12..16), part(16..20), part(20..32))
}

/// Parses a canonical UUID (lowercase or uppercase hex, with dashes) into bytes.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    for (i, c) in b.iter().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash != (*c == b'-') {
            return None;
        }
    }
    let compact: String = s.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    hex::decode_to_slice(compact, &mut out).ok()?;
    Some(out)
}

/// A new random key id (UUID version 4).
pub fn new_key_id() -> Result<(String, [u8; 16]), Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| Error::Internal("random source failed".into()))?;
    if let Some(x) = b.get_mut(6) {
        *x = (*x & 0x0f) | 0x40;
    }
    if let Some(x) = b.get_mut(8) {
        *x = (*x & 0x3f) | 0x80;
    }
    Ok((format_uuid(&b), b))
}

/// NotFoundException for a KeyId that names no key, worded as AWS words it.
pub fn not_found(s: &str) -> Error {
    Error::NotFound(format!("Invalid keyId '{s}'"))
}

/// Parses any KeyId form: key id, key ARN, `alias/NAME`, alias ARN. ARNs of another region, account or partition
/// name nothing here and are `NotFoundException`, as AWS answers for a key it does not have.
pub fn parse_key_ref(s: &str, scope: &Scope) -> Result<KeyRef, Error> {
    if s.is_empty() || s.len() > MAX_KEY_ID_LEN {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value at 'keyId' failed to satisfy constraint: Member must have length between 1 and {MAX_KEY_ID_LEN}"
        )));
    }
    if s.starts_with("alias/") {
        return Ok(KeyRef::Alias(s.to_owned()));
    }
    if let Some(rest) = s.strip_prefix("arn:") {
        let mut parts = rest.splitn(5, ':');
        let (partition, service, region, account, resource) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next());
        let (Some("aws"), Some("kms"), Some(region), Some(account), Some(resource)) =
            (partition, service, region, account, resource)
        else {
            return Err(not_found(s));
        };
        if region != scope.region || account != scope.account_id {
            return Err(not_found(s));
        }
        if let Some(id) = resource.strip_prefix("key/") {
            return direct_id(id).ok_or_else(|| not_found(s));
        }
        if resource.starts_with("alias/") {
            return Ok(KeyRef::Alias(resource.to_owned()));
        }
        return Err(not_found(s));
    }
    direct_id(s).ok_or_else(|| not_found(s))
}

/// A key id: a UUID, or a multi-Region key id (`mrk-` and 32 hex digits), as AWS parses them. This service creates
/// no multi-Region keys, so an `mrk-` id parses and then names no key (NotFoundException, as AWS answers for one
/// it does not have).
fn direct_id(s: &str) -> Option<KeyRef> {
    if parse_uuid(s).is_some() || is_mrk_id(s) { Some(KeyRef::Id(s.to_ascii_lowercase())) } else { None }
}

/// Whether `s` is a multi-Region key id: `mrk-` then 32 hex digits.
pub fn is_mrk_id(s: &str) -> bool {
    s.strip_prefix("mrk-").is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Parses a KeyId that must name a key directly (key id or key ARN), as CreateAlias's TargetKeyId and ListAliases'
/// KeyId must.
pub fn parse_direct_key_ref(s: &str, scope: &Scope) -> Result<String, Error> {
    match parse_key_ref(s, scope)? {
        KeyRef::Id(id) => Ok(id),
        KeyRef::Alias(_) => {
            Err(Error::Validation(format!("Aliases are not allowed here; specify a key id or key ARN, not '{s}'")))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope { region: "us-east-1".into(), account_id: "000000000000".into() }
    }
    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn uuid_round_trip_and_v4_bits() {
        let (s, b) = new_key_id().unwrap();
        assert_eq!(parse_uuid(&s).unwrap(), b);
        assert_eq!(s.as_bytes()[14], b'4');
        assert!(parse_uuid("1234abcd12ab-34cd-56ef-1234567890ab-").is_none());
        assert!(parse_uuid("zzzzzzzz-12ab-34cd-56ef-1234567890ab").is_none());
        assert!(parse_uuid("").is_none());
    }

    #[test]
    fn every_key_id_form() {
        let sc = scope();
        assert_eq!(parse_key_ref(ID, &sc).unwrap(), KeyRef::Id(ID.into()));
        assert_eq!(parse_key_ref(&sc.key_arn(ID), &sc).unwrap(), KeyRef::Id(ID.into()));
        assert_eq!(parse_key_ref("alias/x", &sc).unwrap(), KeyRef::Alias("alias/x".into()));
        assert_eq!(parse_key_ref(&sc.alias_arn("alias/x"), &sc).unwrap(), KeyRef::Alias("alias/x".into()));
    }

    #[test]
    fn multi_region_key_ids_parse_as_aws_parses_them() {
        let sc = scope();
        let mrk = "mrk-1234abcd12ab34cd56ef1234567890ab";
        assert_eq!(parse_key_ref(mrk, &sc).unwrap(), KeyRef::Id(mrk.into()));
        assert_eq!(parse_key_ref(&sc.key_arn(mrk), &sc).unwrap(), KeyRef::Id(mrk.into()));
        for bad in ["mrk-1234", "mrk-1234abcd12ab34cd56ef1234567890az", "mrk-1234abcd12ab34cd56ef1234567890ab0", "mrk-"]
        {
            assert!(matches!(parse_key_ref(bad, &sc), Err(Error::NotFound(_))), "{bad}");
        }
    }

    #[test]
    fn foreign_and_malformed_refs() {
        let sc = scope();
        let other = Scope { region: "eu-west-1".into(), account_id: "000000000000".into() };
        assert!(matches!(parse_key_ref(&other.key_arn(ID), &sc), Err(Error::NotFound(_))));
        assert!(matches!(parse_key_ref("arn:aws:s3:::bucket", &sc), Err(Error::NotFound(_))));
        assert!(matches!(parse_key_ref("arn:aws:kms:us-east-1:000000000000:key/nope", &sc), Err(Error::NotFound(_))));
        assert!(matches!(parse_key_ref("not-a-key", &sc), Err(Error::NotFound(_))));
        assert!(matches!(parse_key_ref("", &sc), Err(Error::Validation(_))));
        assert!(matches!(parse_key_ref(&"a".repeat(2049), &sc), Err(Error::Validation(_))));
        assert!(matches!(parse_direct_key_ref("alias/x", &sc), Err(Error::Validation(_))));
    }
}
