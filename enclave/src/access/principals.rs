//! Principals: the IAM-style users and roles that sign requests, sealed in the store and cached in the enclave.
//!
//! A principal is named by its ARN (`arn:aws:iam::ACCOUNT:user/NAME` or `…:role/NAME`, with an optional path), has a
//! unique id (`AIDA…` for users, `AROA…` for roles, 21 characters, as IAM) that a re-created principal of the same
//! ARN does not share, may be an *admin*, who manages principals and access keys, and may have an *identity policy*
//! (IAM JSON without Principal), evaluated with key policies as AWS does (see [`crate::access::authz`]).

use crate::access::policy::Policy;
use crate::error::Error;
use crate::state::store::Records;
use kms_shared::storage::{MAX_ID_LEN, RecordKind};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Longest name or path segment of a principal, as IAM bounds user and role names.
const MAX_NAME: usize = 64;

/// A principal as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Principal {
    /// The principal's ARN.
    pub arn: String,
    /// Whether it manages principals and access keys.
    pub admin: bool,
    /// Epoch seconds.
    pub creation_date: f64,
    /// The unique id (`AIDA…`/`AROA…`). Records written before ids existed have none stored; [`Principal::loaded`]
    /// derives one from the ARN and creation date.
    #[serde(default)]
    pub id: String,
    /// The identity policy (IAM JSON), if any.
    #[serde(default)]
    pub policy: Option<String>,
    /// The identity policy, parsed (filled when the record is read; `None` also when the text no longer parses,
    /// which then allows nothing).
    #[serde(skip)]
    pub identity: Option<Arc<Policy>>,
}

/// Most distinct principal ARNs one key policy may name (each is looked up when the policy is saved).
pub const MAX_POLICY_PRINCIPALS: usize = 100;

/// Longest identity policy, in bytes (IAM's limit for a role's inline policies).
pub const MAX_IDENTITY_POLICY: usize = 10_240;

/// Characters of a unique id after its four-letter prefix (IAM's ids are 21 characters).
const ID_TAIL: usize = 17;
const ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A fresh unique id for a principal of `kind` (`user` or `role`).
fn new_id(kind: &str) -> Result<String, Error> {
    let mut bytes = [0u8; ID_TAIL];
    getrandom::fill(&mut bytes).map_err(|_| Error::Internal("random source failed".into()))?;
    Ok(id_from(kind, &bytes))
}

fn id_from(kind: &str, bytes: &[u8]) -> String {
    let mut id = String::with_capacity(4 + ID_TAIL);
    id.push_str(if kind == "role" { "AROA" } else { "AIDA" });
    id.extend(
        bytes.iter().take(ID_TAIL).map(|b| char::from(ID_ALPHABET.get(usize::from(b % 32)).copied().unwrap_or(b'A'))),
    );
    id
}

impl Principal {
    /// Completes a principal read from the store: a record from before unique ids gets one derived from its ARN and
    /// creation date (stable across restarts; a principal re-created later gets a random one), and the identity
    /// policy is parsed.
    fn loaded(mut self) -> Self {
        if self.id.is_empty() {
            use sha2::Digest;
            let digest = sha2::Sha256::new()
                .chain_update(b"enclave-kms legacy principal id\0")
                .chain_update(self.arn.as_bytes())
                .chain_update(self.creation_date.to_bits().to_be_bytes())
                .finalize();
            self.id = id_from(parse_arn(&self.arn).map_or("user", |p| p.kind), &digest);
        }
        self.identity = self.policy.as_deref().and_then(|text| match Policy::parse_identity(text) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                tracing::error!(principal = %self.arn, error = %e, "stored identity policy does not parse; it allows nothing");
                None
            }
        });
        self
    }

    /// The 12-digit account of the principal's ARN.
    pub fn account(&self) -> &str {
        parse_arn(&self.arn).map_or("", |p| p.account)
    }
}

/// Who made an authenticated request: the principal and the access key it signed with (both shared with the caches,
/// so identifying a caller allocates nothing).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal.
    pub principal: Arc<Principal>,
    /// The access key the request was signed with.
    pub credential: Arc<crate::access::credentials::Credential>,
}

impl Caller {
    /// The principal's ARN.
    pub fn arn(&self) -> &str {
        &self.principal.arn
    }

    /// The principal's account.
    pub fn account(&self) -> &str {
        self.principal.account()
    }

    /// Whether the principal manages principals and access keys.
    pub fn admin(&self) -> bool {
        self.principal.admin
    }

    /// The principal's unique id.
    pub fn id(&self) -> &str {
        &self.principal.id
    }

    /// The principal's identity policy, parsed (`None`: none, or one that no longer parses).
    pub fn identity(&self) -> Option<&Policy> {
        self.principal.identity.as_deref()
    }

    /// The access key id the request was signed with.
    pub fn access_key_id(&self) -> &str {
        &self.credential.access_key_id
    }
}

/// The parts of a principal ARN.
#[derive(Debug, PartialEq, Eq)]
pub struct PrincipalArn<'a> {
    /// The account.
    pub account: &'a str,
    /// `user` or `role`.
    pub kind: &'a str,
    /// The last path segment.
    pub name: &'a str,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// Parses `arn:aws:iam::ACCOUNT:user/[PATH/]NAME` (or `role/`). Names and path segments use IAM's characters.
pub fn parse_arn(arn: &str) -> Option<PrincipalArn<'_>> {
    if arn.len() > MAX_ID_LEN {
        return None;
    }
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (kind, path) = resource.split_once('/')?;
    if kind != "user" && kind != "role" {
        return None;
    }
    let mut segments = path.split('/').peekable();
    let mut name = "";
    while let Some(seg) = segments.next() {
        if !name_ok(seg) {
            return None;
        }
        if segments.peek().is_none() {
            name = seg;
        }
    }
    Some(PrincipalArn { account, kind, name })
}

/// All principals.
pub struct Principals {
    records: Arc<Records>,
    cache: Mutex<HashMap<String, (u64, Arc<Principal>)>>,
}

impl Principals {
    /// Principals over `records`.
    pub fn new(records: Arc<Records>) -> Self {
        Self { records, cache: Mutex::new(HashMap::new()) }
    }

    /// The principal `arn` and its record version, if it exists.
    pub async fn get(&self, arn: &str) -> Result<Option<Arc<Principal>>, Error> {
        Ok(self.get_versioned(arn).await?.map(|(_, p)| p))
    }

    async fn get_versioned(&self, arn: &str) -> Result<Option<(u64, Arc<Principal>)>, Error> {
        if parse_arn(arn).is_none() {
            return Ok(None);
        }
        let cached = self.cache.lock().ok().and_then(|c| c.get(arn).cloned());
        crate::telemetry::global().cache(crate::telemetry::Cache::Principals, cached.is_some());
        if let Some(hit) = cached {
            return Ok(Some(hit));
        }
        let Some(entry) = self.load(arn).await? else { return Ok(None) };
        let _ = self.install(entry.clone());
        Ok(Some(entry))
    }

    /// Reads and decodes a principal record: its version and the principal.
    async fn load(&self, arn: &str) -> Result<Option<(u64, Arc<Principal>)>, Error> {
        let Some(opened) = self.records.get(RecordKind::Principal, arn).await? else { return Ok(None) };
        let p: Principal = ciborium::from_reader(&opened.body[..])
            .map_err(|_| Error::Internal(format!("undecodable principal record {arn}")))?;
        if p.arn != arn {
            return Err(Error::Internal(format!("principal record {arn} names another principal")));
        }
        Ok(Some((opened.version, Arc::new(p.loaded()))))
    }

    /// Caches a loaded principal unless a newer version is cached or the store's marks know a newer version or its
    /// deletion (checked under the cache lock: a lookup that raced a delete cannot revive it in the cache).
    fn install(&self, entry: (u64, Arc<Principal>)) -> bool {
        let Ok(mut c) = self.cache.lock() else { return false };
        let arn = entry.1.arn.as_str();
        if c.get(arn).is_some_and(|(v, _)| *v > entry.0) || !self.records.admits(RecordKind::Principal, arn, entry.0) {
            return false;
        }
        c.insert(arn.to_owned(), entry);
        true
    }

    /// Replaces (`Some`) or removes (`None`) the identity policy of principal `arn` (already checked by
    /// [`check_identity_policy`]); `NotFoundException` if there is no such principal.
    pub async fn set_policy(&self, arn: &str, policy: Option<String>) -> Result<(), Error> {
        for _ in 0..3 {
            let Some((version, current)) = self.get_versioned(arn).await? else { return Err(principal_not_found(arn)) };
            let mut next = Principal { policy: policy.clone(), identity: None, ..(*current).clone() };
            let mut body = Vec::with_capacity(256);
            ciborium::into_writer(&next, &mut body).map_err(|e| Error::Internal(e.to_string()))?;
            match self.records.put(RecordKind::Principal, arn, Some(version), &body).await {
                Ok(v) => {
                    next = next.loaded();
                    let _ = self.install((v, Arc::new(next)));
                    return Ok(());
                }
                Err(crate::state::store::StoreError::Host(kms_shared::storage::StorageError::Conflict)) => {
                    if let Ok(mut c) = self.cache.lock() {
                        c.remove(arn);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal(format!("principal {arn}: too many concurrent updates")))
    }

    /// Resolves the principal ARNs `policy` names to the unique ids of the principals that have them now, for
    /// [`Policy::bind`]: what AWS does when a key policy is saved. An IAM user or role ARN naming no principal makes
    /// the policy malformed (AWS: "invalid principals"); other ARNs (STS sessions) stay unbound and match no caller.
    pub async fn bindings(&self, policy: &Policy) -> Result<crate::access::policy::Bindings, Error> {
        let arns = policy.principal_arns();
        if arns.len() > MAX_POLICY_PRINCIPALS {
            return Err(Error::MalformedPolicyDocument(format!(
                "The policy names {} principal ARNs; the limit is {MAX_POLICY_PRINCIPALS}",
                arns.len()
            )));
        }
        let mut out = crate::access::policy::Bindings::new();
        for arn in arns {
            if parse_arn(arn).is_none() {
                continue;
            }
            match self.get(arn).await? {
                Some(p) => {
                    out.insert(arn.to_owned(), p.id.clone());
                }
                None => {
                    let shown: String = arn.chars().take(128).collect();
                    return Err(Error::MalformedPolicyDocument(format!(
                        "Policy contains a statement with one or more invalid principals: {shown} does not exist"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Creates a principal; `AlreadyExistsException` if it exists.
    pub async fn create(&self, arn: &str, admin: bool, now: f64) -> Result<Principal, Error> {
        if parse_arn(arn).is_none() {
            return Err(invalid_arn(arn));
        }
        let kind = parse_arn(arn).map_or("user", |p| p.kind);
        let p = Principal {
            arn: arn.to_owned(),
            admin,
            creation_date: now,
            id: new_id(kind)?,
            policy: None,
            identity: None,
        };
        let mut body = Vec::with_capacity(128);
        ciborium::into_writer(&p, &mut body).map_err(|e| Error::Internal(e.to_string()))?;
        // A record that exists (or existed and comes back) makes the CAS fail: the principal exists.
        if self.get(arn).await?.is_some() {
            return Err(Error::AlreadyExists(format!("Principal {arn} already exists")));
        }
        match self.records.put(RecordKind::Principal, arn, None, &body).await {
            Ok(_) => Ok(p),
            Err(crate::state::store::StoreError::Host(kms_shared::storage::StorageError::Conflict)) => {
                Err(Error::AlreadyExists(format!("Principal {arn} already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a principal's record; `NotFoundException` if there is none.
    pub async fn delete(&self, arn: &str) -> Result<(), Error> {
        let Some((version, _)) = self.get_versioned(arn).await? else { return Err(principal_not_found(arn)) };
        self.records.delete(RecordKind::Principal, arn, version).await?;
        if let Ok(mut c) = self.cache.lock() {
            c.remove(arn);
        }
        Ok(())
    }

    /// Every principal, in ARN order.
    pub async fn list(&self) -> Result<Vec<Principal>, Error> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.records.list(RecordKind::Principal, after.as_deref(), 1000).await?;
            for (id, opened) in &page.records {
                match ciborium::from_reader::<Principal, _>(&opened.body[..]) {
                    Ok(p) if p.arn == *id => out.push(p.loaded()),
                    _ => self.records.skip(RecordKind::Principal, id, &"undecodable or names another principal"),
                }
            }
            after = page.last;
            if !page.more || after.is_none() {
                return Ok(out);
            }
        }
    }
}

/// Checks an identity policy: IAM JSON without Principal, at most [`MAX_IDENTITY_POLICY`] bytes, with the same
/// grammar and condition keys as key policies. `MalformedPolicyDocumentException` otherwise.
pub fn check_identity_policy(text: &str) -> Result<Policy, Error> {
    if text.is_empty() || text.len() > MAX_IDENTITY_POLICY {
        return Err(Error::MalformedPolicyDocument(format!(
            "An identity policy must be between 1 and {MAX_IDENTITY_POLICY} bytes long"
        )));
    }
    Ok(Policy::parse_identity(text)?)
}

/// ValidationException for a principal ARN of the wrong shape.
pub fn invalid_arn(arn: &str) -> Error {
    let shown: String = arn.chars().take(128).collect();
    Error::Validation(format!(
        "Invalid principal ARN '{shown}': expected arn:aws:iam::<12-digit account>:user/<name> or :role/<name>"
    ))
}

/// NotFoundException for an unknown principal.
pub fn principal_not_found(arn: &str) -> Error {
    let shown: String = arn.chars().take(128).collect();
    Error::NotFound(format!("Principal {shown} does not exist"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Issue 12 item 5: a lookup that read a principal before DeletePrincipal finished used to cache it afterwards.
    #[tokio::test]
    async fn a_lookup_that_raced_a_delete_cannot_revive_the_principal() {
        let host = crate::state::fake_host::FakeHost::default();
        let principals = Principals::new(host.records());
        let arn = "arn:aws:iam::111122223333:user/alice";
        principals.create(arn, false, 0.0).await.unwrap();
        let stale = principals.load(arn).await.unwrap().unwrap();
        principals.delete(arn).await.unwrap();
        assert!(!principals.install(stale));
        assert!(principals.get(arn).await.unwrap().is_none());
    }

    #[test]
    fn arns() {
        let p = parse_arn("arn:aws:iam::111122223333:user/alice");
        assert_eq!(p, Some(PrincipalArn { account: "111122223333", kind: "user", name: "alice" }));
        let p = parse_arn("arn:aws:iam::111122223333:role/ops/team/Deployer");
        assert_eq!(p, Some(PrincipalArn { account: "111122223333", kind: "role", name: "Deployer" }));
        for bad in [
            "",
            "arn:aws:iam::111122223333:user/",
            "arn:aws:iam::11112222333:user/a",
            "arn:aws:iam::111122223333:group/a",
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/a//b",
            "arn:aws:iam::111122223333:user/a b",
            "arn:aws:iam::111122223333:user/a*",
            "arn:aws:kms::111122223333:user/a",
            "arn:aws:iam:us-east-1:111122223333:user/a",
        ] {
            assert!(parse_arn(bad).is_none(), "{bad}");
        }
        let long = format!("arn:aws:iam::111122223333:user/{}", "a".repeat(65));
        assert!(parse_arn(&long).is_none());
    }

    #[test]
    fn unique_ids_look_like_iam_ids() {
        let user = new_id("user").unwrap();
        let role = new_id("role").unwrap();
        assert!(user.starts_with("AIDA") && role.starts_with("AROA"));
        for id in [&user, &role] {
            assert_eq!(id.len(), 21);
            assert!(id.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
        }
        assert_ne!(new_id("user").unwrap(), user, "random");
    }

    #[test]
    fn records_from_before_ids_get_a_stable_derived_id() {
        // A record as written before ids and identity policies existed: three fields.
        #[derive(Serialize)]
        struct Old<'a> {
            arn: &'a str,
            admin: bool,
            creation_date: f64,
        }
        let decode = |arn: &str, creation_date: f64| {
            let mut body = Vec::new();
            ciborium::into_writer(&Old { arn, admin: false, creation_date }, &mut body).unwrap();
            ciborium::from_reader::<Principal, _>(&body[..]).unwrap().loaded()
        };
        let a = decode("arn:aws:iam::111122223333:role/app", 1.0);
        assert!(a.id.starts_with("AROA") && a.id.len() == 21 && a.policy.is_none() && a.identity.is_none());
        assert_eq!(decode("arn:aws:iam::111122223333:role/app", 1.0).id, a.id, "stable across reads");
        assert_ne!(decode("arn:aws:iam::111122223333:role/app", 2.0).id, a.id, "a re-created one differs");
    }

    #[test]
    fn identity_policies_are_parsed_on_load_and_checked_on_write() {
        let text = r#"{"Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]}"#;
        let p = Principal {
            arn: "arn:aws:iam::111122223333:user/a".into(),
            admin: false,
            creation_date: 1.0,
            id: "AIDAAAAAAAAAAAAAAAAAA".into(),
            policy: Some(text.into()),
            identity: None,
        }
        .loaded();
        assert!(p.identity.is_some() && p.id == "AIDAAAAAAAAAAAAAAAAAA");
        assert!(check_identity_policy(text).is_ok());
        for bad in [
            "",
            r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}"#,
            r#"{"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"}]}"#,
        ] {
            assert!(matches!(check_identity_policy(bad), Err(Error::MalformedPolicyDocument(_))), "{bad}");
        }
        let long = format!(
            r#"{{"Statement": [{{"Sid": "{}", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}}]}}"#,
            "a".repeat(MAX_IDENTITY_POLICY)
        );
        assert!(matches!(check_identity_policy(&long), Err(Error::MalformedPolicyDocument(_))));
    }
}
