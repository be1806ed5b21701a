//! Authorization: every operation on a key is decided by that key's policy and the caller's identity policy,
//! evaluated here with IAM's logic ([`crate::access::policy`]), with the caller from SigV4 and the condition keys AWS
//! KMS documents for the operation. AWS's rule for combining them:
//! - an explicit `Deny` in either policy wins;
//! - a key-policy `Allow` that names the caller directly (its ARN, bound to its unique id, or `*`) suffices for a
//!   caller of the key's account;
//! - a key-policy `Allow` that reaches the caller only through its account (`arn:aws:iam::ACCOUNT:root`, the default
//!   policy) delegates to the identity policy, which must `Allow` too (also for callers of other accounts);
//! - admins have an implicit identity-policy `Allow` for everything (an explicit `Deny` in their own still counts);
//! - key-less operations (CreateKey, ListKeys, ListAliases, GenerateRandom) need an identity-policy `Allow` on `*`
//!   ([`authorize_account`]).
//!
//! Each key's policy is parsed once per record version and cached. A policy without any Condition is decided from
//! principal, action and resource alone, so the common case builds no condition keys at all.

use crate::access::policy::{Bindings, Decision, Policy, RequestContext, evaluate, evaluate_key_policy, keys};
use crate::access::principals::Caller;
use crate::error::Error;
use crate::state::ids::{KeyRef, Scope, parse_key_ref};
use crate::state::keys::Key;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A parsed policy and whether any statement has a Condition.
#[derive(Clone)]
struct Parsed {
    record_version: u64,
    policy: Option<Arc<Policy>>,
    conditional: bool,
}

/// A policy text, its principal bindings, its parse (`None`: it does not parse) and whether it has conditions.
type LastParsed = (Arc<str>, Option<Bindings>, Option<Arc<Policy>>, bool);

/// Parsed key policies by key id, for the record version they were parsed from. Bounded like the key cache.
pub struct PolicyCache {
    entries: Mutex<HashMap<String, Parsed>>,
    capacity: usize,
    /// The last policy text parsed and its parse: keys with the same policy (most keep the default one) share one
    /// parsed copy, so the cache's memory grows by a pointer per key rather than a parsed document.
    last: Mutex<Option<LastParsed>>,
}

impl PolicyCache {
    /// A cache of at most `capacity` parsed policies.
    pub fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity: capacity.max(1), last: Mutex::new(None) }
    }

    fn parsed(&self, key: &Key) -> Parsed {
        if let Some(hit) = self.entries.lock().ok().and_then(|e| e.get(&key.meta.key_id).cloned())
            && hit.record_version == key.record_version
        {
            return hit;
        }
        let shared = self.last.lock().ok().and_then(|last| match last.as_ref() {
            Some((text, bindings, policy, conditional))
                if (Arc::ptr_eq(text, &key.meta.policy) || *text == key.meta.policy)
                    && *bindings == key.meta.policy_principals =>
            {
                Some((policy.clone(), *conditional))
            }
            _ => None,
        });
        let (policy, conditional) = match shared {
            Some(hit) => hit,
            None => {
                let policy = match Policy::parse_stored(&key.meta.policy) {
                    Ok(p) => Some(Arc::new(p.bind(key.meta.policy_principals.clone().map(Arc::new)))),
                    Err(e) => {
                        // Stored policies were checked when they were written; one that no longer parses allows
                        // nothing.
                        tracing::error!(key_id = %key.meta.key_id, error = %e, "stored key policy does not parse; denying");
                        None
                    }
                };
                let conditional =
                    policy.as_ref().is_some_and(|p| p.statements().iter().any(|s| !s.conditions().is_empty()));
                if let Ok(mut last) = self.last.lock() {
                    *last = Some((
                        key.meta.policy.clone(),
                        key.meta.policy_principals.clone(),
                        policy.clone(),
                        conditional,
                    ));
                }
                (policy, conditional)
            }
        };
        let parsed = Parsed { record_version: key.record_version, policy, conditional };
        if let Ok(mut e) = self.entries.lock() {
            if e.len() >= self.capacity
                && !e.contains_key(&key.meta.key_id)
                && let Some(victim) = e.keys().next().cloned()
            {
                e.remove(&victim);
            }
            e.insert(key.meta.key_id.clone(), parsed.clone());
        }
        parsed
    }
}

/// The condition keys of one request beyond principal, action and resource. Built only when the key's policy has
/// conditions.
pub struct Conditions<'a> {
    ctx: &'a mut RequestContext,
}

impl Conditions<'_> {
    /// `kms:EncryptionContext:KEY` and `kms:EncryptionContextKeys`.
    pub fn encryption_context(&mut self, ec: &Option<std::collections::BTreeMap<String, String>>) -> &mut Self {
        if let Some(ec) = ec {
            self.ctx.set_encryption_context(ec);
        }
        self
    }

    /// `kms:RequestAlias` when the request named the key through an alias.
    pub fn request_alias(&mut self, key_id: &str, scope: &Scope) -> &mut Self {
        if let Ok(KeyRef::Alias(name)) = parse_key_ref(key_id, scope) {
            self.ctx.set(keys::REQUEST_ALIAS, [name]);
        }
        self
    }

    /// The `kms:RecipientAttestation:*` keys of a verified Recipient document.
    pub fn recipient(&mut self, pcrs: Option<&std::collections::BTreeMap<u32, Vec<u8>>>) -> &mut Self {
        if let Some(pcrs) = pcrs {
            self.ctx.set_recipient_pcrs(pcrs);
        }
        self
    }

    /// Any other condition key, single-valued.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.ctx.set(key, [value.into()]);
        self
    }

    /// Any other condition key, multi-valued.
    pub fn set_all<I: IntoIterator<Item = String>>(&mut self, key: &str, values: I) -> &mut Self {
        self.ctx.set(key, values);
        self
    }
}

/// The AWS name an enum serializes to (`AWS_KMS`, `SYMMETRIC_DEFAULT`, ...).
fn wire_name(v: &impl serde::Serialize) -> Option<String> {
    serde_json::to_value(v).ok().and_then(|j| j.as_str().map(str::to_owned))
}

/// Condition keys of the caller and the connection, on every request.
fn caller_keys(ctx: &mut RequestContext, caller: &Caller, now_unix: u64) {
    ctx.set("aws:SecureTransport", ["true"]);
    ctx.set(keys::USER_ID, [caller.id()]);
    ctx.set("aws:EpochTime", [now_unix.to_string()]);
    ctx.set("aws:CurrentTime", [crate::calendar::iso8601(now_unix)]);
    ctx.set("aws:PrincipalType", [if caller.arn().contains(":role/") { "AssumedRole" } else { "User" }]);
    if let Some(name) = caller.arn().rsplit('/').next().filter(|_| caller.arn().contains(":user/")) {
        ctx.set("aws:username", [name]);
    }
}

/// Condition keys every key operation carries.
fn common(ctx: &mut RequestContext, caller: &Caller, key: &Key, now_unix: u64) {
    let m = &key.meta;
    caller_keys(ctx, caller, now_unix);
    ctx.set("kms:KeyOrigin", wire_name(&m.origin));
    ctx.set("kms:KeySpec", wire_name(&m.key_spec));
    ctx.set("kms:KeyUsage", wire_name(&m.key_usage));
    ctx.set("kms:MultiRegion", ["false"]);
    for (k, v) in &m.tags {
        ctx.set(&format!("aws:ResourceTag/{k}"), [v.clone()]);
    }
}

/// Decides `action` (e.g. `kms:Decrypt`) by `caller` on `key` with its key policy and the caller's identity policy
/// (the rule is in the module documentation). `extra` adds the operation's condition keys; it runs only when one of
/// the policies has conditions. `AccessDeniedException` unless allowed.
pub fn authorize(
    svc: &crate::service::Service,
    caller: &Caller,
    key: &Key,
    action: &'static str,
    extra: impl FnOnce(&mut Conditions<'_>),
) -> Result<(), Error> {
    let parsed = svc.policies.parsed(key);
    let Some(policy) = parsed.policy else { return Err(denied(caller, action, &key.arn, Decision::NotAllowed)) };
    let mut ctx = RequestContext::new(caller.arn(), caller.account(), action, key.arn.as_str());
    ctx.set_principal_id(caller.id());
    if parsed.conditional || caller.identity().is_some_and(Policy::conditional) {
        common(&mut ctx, caller, key, svc.clock.now_unix());
        extra(&mut Conditions { ctx: &mut ctx });
    }
    let (key_decision, direct) = evaluate_key_policy(&policy, &ctx);
    let identity_decision = identity(caller, &ctx);
    let same_account = caller.account() == svc.scope.account_id;
    let decision = match (key_decision, identity_decision) {
        (Decision::Deny, _) | (_, Decision::Deny) => Decision::Deny,
        (Decision::Allow, Decision::Allow) => Decision::Allow,
        (Decision::Allow, _) if direct && same_account => Decision::Allow,
        (Decision::Allow, _) => return Err(no_identity_allow(caller, action, Some(&key.arn))),
        _ => Decision::NotAllowed,
    };
    match decision {
        Decision::Allow if action == "kms:ReEncryptFrom" && policy.gates_decrypt() => {
            // Beyond AWS: re-wrapping a gated key's ciphertext would take the plaintext past the gate.
            match crate::access::policy::evaluate_gated(&policy, &ctx) {
                Decision::Allow => Ok(()),
                _ => Err(Error::AccessDenied(format!(
                    "User: {} is not authorized to perform: kms:ReEncryptFrom on resource: {} because the key policy \
                     gates kms:Decrypt on kms:RecipientAttestation and no statement allows kms:ReEncryptFrom with an \
                     attestation condition",
                    caller.arn(),
                    key.arn
                ))),
            }
        }
        Decision::Allow => Ok(()),
        other => Err(denied(caller, action, &key.arn, other)),
    }
}

/// Beyond AWS (CreateKey, PutKeyPolicy): a policy that gates one plaintext-releasing operation on attestation must
/// not leave another open ([`crate::access::policy::release_gaps`]). `BypassPolicyLockoutSafetyCheck` does not
/// skip this; an `Allow` whose Sid starts with `EnclaveKmsUngated` is exempt.
pub fn check_attestation_gate(policy: &Policy, key_arn: &str) -> Result<(), Error> {
    let gaps = crate::access::policy::release_gaps(policy, key_arn);
    if gaps.is_empty() {
        return Ok(());
    }
    Err(Error::MalformedPolicyDocument(format!(
        "The policy gates a plaintext-releasing operation on kms:RecipientAttestation but leaves {} open without it: \
         deny {} to requests without the attested image (e.g. a Deny for Principal \"*\" with \
         StringNotEqualsIgnoreCase on kms:RecipientAttestation:ImageSha384 covering kms:Decrypt, kms:ReEncrypt* and \
         kms:GenerateDataKey*), or start the Sid of the Allow that is meant to stay open with \"{}\"",
        gaps.join(", "),
        if gaps.len() == 1 { "it" } else { "them" },
        crate::access::policy::UNGATED_SID_PREFIX
    )))
}

/// The policy-lockout safety check of CreateKey and PutKeyPolicy: the new policy must allow the caller to change
/// the policy again (`kms:PutKeyPolicy`), unless the caller bypasses the check. `policy` is bound to the principal ids it will be saved with; the caller must stay able to put the policy by the
/// key policy (and, when the key policy reaches it only through its account, by its identity policy).
pub fn check_lockout(caller: &Caller, policy: &Policy, key_arn: &str) -> Result<(), Error> {
    let mut ctx = RequestContext::new(caller.arn(), caller.account(), "kms:PutKeyPolicy", key_arn)
        .with("aws:SecureTransport", ["true"])
        .with("kms:BypassPolicyLockoutSafetyCheck", ["false"]);
    ctx.set_principal_id(caller.id());
    let (decision, direct) = evaluate_key_policy(policy, &ctx);
    let identity = identity(caller, &ctx);
    if decision.is_allowed() && identity != Decision::Deny && (direct || identity.is_allowed()) {
        Ok(())
    } else {
        Err(Error::MalformedPolicyDocument(
            "The new key policy will not allow you to update the key policy in the future.".into(),
        ))
    }
}

/// The identity-policy decision for `ctx`: admins have an implicit Allow (an explicit Deny of their own still
/// counts); a principal without an identity policy has no Allow.
fn identity(caller: &Caller, ctx: &RequestContext) -> Decision {
    match (caller.identity().map(|p| evaluate(p, ctx)), caller.admin()) {
        (Some(Decision::Deny), _) => Decision::Deny,
        (_, true) => Decision::Allow,
        (Some(d), false) => d,
        (None, false) => Decision::NotAllowed,
    }
}

/// Operations AWS governs with IAM identity policies only (no key is involved: CreateKey, ListKeys, ListAliases,
/// GenerateRandom), on resource `*`: principals of the service's own account whose identity policy allows the action
/// (admins: unless it denies it).
pub fn authorize_account(svc: &crate::service::Service, caller: &Caller, action: &'static str) -> Result<(), Error> {
    if caller.account() != svc.scope.account_id {
        return Err(no_identity_allow(caller, action, None));
    }
    let mut ctx = RequestContext::new(caller.arn(), caller.account(), action, "*");
    ctx.set_principal_id(caller.id());
    if caller.identity().is_some_and(Policy::conditional) {
        caller_keys(&mut ctx, caller, svc.clock.now_unix());
    }
    match identity(caller, &ctx) {
        Decision::Allow => Ok(()),
        Decision::Deny => Err(Error::AccessDenied(format!(
            "User: {} is not authorized to perform: {action} with an explicit deny in an identity-based policy",
            caller.arn()
        ))),
        Decision::NotAllowed => Err(no_identity_allow(caller, action, None)),
    }
}

fn no_identity_allow(caller: &Caller, action: &str, resource: Option<&str>) -> Error {
    let on = resource.map(|r| format!(" on resource: {r}")).unwrap_or_default();
    Error::AccessDenied(format!(
        "User: {} is not authorized to perform: {action}{on} because no identity-based policy allows the {action} action",
        caller.arn()
    ))
}

/// Admin operations (principals, access keys, the simulator clock).
pub fn authorize_admin(caller: &Caller, action: &str) -> Result<(), Error> {
    if caller.admin() {
        return Ok(());
    }
    Err(Error::AccessDenied(format!(
        "User: {} is not authorized to perform: {action} because it is not an admin principal",
        caller.arn()
    )))
}

fn denied(caller: &Caller, action: &str, resource: &str, decision: Decision) -> Error {
    let why = match decision {
        Decision::Deny => "with an explicit deny in a resource-based or identity-based policy".to_owned(),
        _ => format!("because no resource-based policy allows the {action} action"),
    };
    Error::AccessDenied(format!(
        "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
        caller.arn()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::access::principals::Principal;

    fn caller(arn: &str, admin: bool) -> Caller {
        Caller {
            principal: Arc::new(Principal {
                arn: arn.to_owned(),
                admin,
                creation_date: 0.0,
                id: "AIDATESTTESTTESTTEST1".into(),
                policy: None,
                identity: None,
            }),
            credential: Arc::new(crate::access::credentials::Credential::for_tests("AKIATESTTESTTESTTEST", arn)),
        }
    }

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000";

    #[test]
    fn lockout_check_follows_the_new_policy() {
        let alice = caller("arn:aws:iam::111122223333:user/alice", false);
        let root = Policy::parse(&crate::cmd::default_policy("111122223333")).unwrap();
        // The default policy delegates to identity policies: alice has none, an admin has an implicit one.
        assert!(check_lockout(&alice, &root, KEY).is_err());
        assert!(check_lockout(&caller("arn:aws:iam::111122223333:user/root-ish", true), &root, KEY).is_ok());
        let with_identity = |text: &str| {
            let mut c = caller("arn:aws:iam::111122223333:user/alice", false);
            let mut p = (*c.principal).clone();
            p.identity = Some(Arc::new(Policy::parse_identity(text).unwrap()));
            c.principal = Arc::new(p);
            c
        };
        let alice_iam = with_identity(r#"{"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}"#);
        assert!(check_lockout(&alice_iam, &root, KEY).is_ok());
        let alice_denied = with_identity(
            r#"{"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "kms:PutKeyPolicy", "Resource": "*"}]}"#,
        );
        assert!(check_lockout(&alice_denied, &root, KEY).is_err());
        let other = Policy::parse(&crate::cmd::default_policy("999988887777")).unwrap();
        assert!(matches!(check_lockout(&alice, &other, KEY), Err(Error::MalformedPolicyDocument(_))));
        let bob_only = Policy::parse(
            r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/bob"},
                "Action": "kms:*", "Resource": "*"}]}"#,
        )
        .unwrap();
        assert!(check_lockout(&alice, &bob_only, KEY).is_err());
        let put_only = Policy::parse(
            r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
                "Action": "kms:PutKeyPolicy", "Resource": "*"}]}"#,
        )
        .unwrap();
        assert!(check_lockout(&alice, &put_only, KEY).is_ok());
        // Bound to another principal's id (alice deleted and re-created since the policy was saved): not alice.
        let bound = |id: &str| {
            put_only
                .clone()
                .bind(Some(Arc::new([("arn:aws:iam::111122223333:user/alice".to_owned(), id.to_owned())].into())))
        };
        assert!(check_lockout(&alice, &bound("AIDATESTTESTTESTTEST1"), KEY).is_ok());
        assert!(check_lockout(&alice, &bound("AIDAOLDOLDOLDOLDOLD01"), KEY).is_err());
    }

    #[test]
    fn admin_only_and_denial_wording() {
        assert!(authorize_admin(&caller("arn:aws:iam::111122223333:user/root-ish", true), "x").is_ok());
        let e = authorize_admin(&caller("arn:aws:iam::111122223333:user/alice", false), "EnclaveKms:ListPrincipals");
        assert!(matches!(e, Err(Error::AccessDenied(ref m)) if m.contains("user/alice")));
        let alice = caller("arn:aws:iam::111122223333:user/alice", false);
        let Error::AccessDenied(m) = denied(&alice, "kms:Decrypt", KEY, Decision::Deny) else { panic!() };
        assert!(m.contains("explicit deny") && m.contains("kms:Decrypt") && m.contains(KEY));
        let Error::AccessDenied(m) = denied(&alice, "kms:Decrypt", KEY, Decision::NotAllowed) else { panic!() };
        assert!(m.contains("no resource-based policy allows the kms:Decrypt action"));
    }
}
