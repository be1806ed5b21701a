//! Key policies: parsing and evaluation with IAM's logic, as AWS KMS applies key policies.
//!
//! Pure and self-contained: [`Policy::parse`] reads a key policy document (bounded: 32 KiB, nesting depth 32, no
//! duplicate member names, unknown elements refused) into typed statements, and [`evaluate`] decides one request,
//! described by a [`RequestContext`], against it:
//!
//! 1. an explicit `Deny` whose Principal, Action, Resource and Condition all match wins ([`Decision::Deny`]);
//! 2. otherwise an `Allow` that matches the same way allows ([`Decision::Allow`]);
//! 3. otherwise the request is implicitly denied ([`Decision::NotAllowed`]).
//!
//! Both denials map to `AccessDeniedException`; the distinction is for logs and tests.
//!
//! Matching rules (IAM's where IAM documents them):
//! - Principal `"*"`, `{"AWS": "*"}`, a 12-digit account id or `arn:PARTITION:iam::ACCOUNT:root` (every principal of
//!   that account), or an IAM/STS ARN compared exactly (a role ARN also matches that role's `assumed-role` sessions).
//!   `Service`, `Federated` and `CanonicalUser` principals are accepted and never match a caller of this service.
//!   Wildcards inside a principal ARN are refused, as IAM refuses them.
//! - Actions: `*` and `?` wildcards, case-insensitive. Resources: `*` and `?` wildcards, case-sensitive.
//! - Condition keys are case-insensitive (also the KEY of `kms:EncryptionContext:KEY`); values are compared as the
//!   operator says. Values of one key are ORed, keys in one operator block and operator blocks are ANDed.
//! - Policy variables (`${aws:username}`) are not expanded: they are matched literally.

mod condition;
mod document;
mod gate;
mod json;
pub mod wildcard;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use condition::{Condition, Operator, SetQualifier};
pub use document::{
    ActionBlock, Bindings, Effect, Policy, PrincipalBlock, PrincipalEntry, ResourceBlock, Statement, Version,
};
pub use gate::{RELEASING, UNGATED_SID_PREFIX, evaluate_gated, release_gaps};
pub use json::{MAX_DEPTH, MAX_POLICY_BYTES};

/// Why a policy document was refused. Every variant is `MalformedPolicyDocumentException` to the caller; messages
/// name the offending element but never echo long values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The document is longer than [`MAX_POLICY_BYTES`].
    #[error("The policy document is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    /// Arrays and objects are nested deeper than [`MAX_DEPTH`].
    #[error("The policy document is nested deeper than {max} levels")]
    TooDeep { max: usize },
    /// Not JSON, or JSON that is not a valid key policy.
    #[error("{0}")]
    Malformed(String),
}

impl From<PolicyError> for crate::error::Error {
    fn from(e: PolicyError) -> Self {
        crate::error::Error::MalformedPolicyDocument(e.to_string())
    }
}

/// The outcome of evaluating a request against a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// A matching Allow statement and no matching Deny statement.
    Allow,
    /// A matching Deny statement (explicit deny; overrides every Allow).
    Deny,
    /// No statement matched (implicit deny).
    NotAllowed,
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Condition-key names this module fills in or documents (lower-cased lookups make the spelling irrelevant).
pub mod keys {
    /// The caller's account (`RequestContext::new` sets it).
    pub const CALLER_ACCOUNT: &str = "kms:CallerAccount";
    /// The caller's ARN (`RequestContext::new` sets it).
    pub const PRINCIPAL_ARN: &str = "aws:PrincipalArn";
    /// The caller's account (`RequestContext::new` sets it).
    pub const PRINCIPAL_ACCOUNT: &str = "aws:PrincipalAccount";
    /// Prefix of one encryption-context pair: `kms:EncryptionContext:KEY` = value.
    pub const ENCRYPTION_CONTEXT_PREFIX: &str = "kms:EncryptionContext:";
    /// The encryption context's keys (multi-valued).
    pub const ENCRYPTION_CONTEXT_KEYS: &str = "kms:EncryptionContextKeys";
    /// Prefix of every condition key a verified Recipient document sets.
    pub const RECIPIENT_ATTESTATION_PREFIX: &str = "kms:RecipientAttestation:";
    /// The Recipient document's image hash (PCR0), lower-case hex.
    pub const RECIPIENT_IMAGE_SHA384: &str = "kms:RecipientAttestation:ImageSha384";
    /// Prefix of `kms:RecipientAttestation:PCR0` .. `PCR31`, lower-case hex.
    pub const RECIPIENT_PCR_PREFIX: &str = "kms:RecipientAttestation:PCR";
    /// The alias the request named the key by.
    pub const REQUEST_ALIAS: &str = "kms:RequestAlias";
    /// The caller's unique principal id (`AIDA…` for users, `AROA…` for roles).
    pub const USER_ID: &str = "aws:userid";

    /// Condition keys this service sets on some request, lower-case. A policy may name only these (and the
    /// [`SUPPORTED_PREFIXES`]): a condition on a key that is never set would silently never apply as written (a
    /// `Deny` on `aws:SourceVpce` would never fire), so such a policy is refused.
    pub const SUPPORTED: &[&str] = &[
        // Every request (RequestContext::new and authz::common).
        "aws:principalarn",
        "aws:principalaccount",
        "kms:calleraccount",
        "aws:securetransport",
        "aws:epochtime",
        "aws:currenttime",
        "aws:principaltype",
        "aws:username",
        "aws:userid",
        "kms:keyorigin",
        "kms:keyspec",
        "kms:keyusage",
        "kms:multiregion",
        // Per operation.
        "kms:requestalias",
        "kms:encryptioncontextkeys",
        "aws:tagkeys",
        "kms:encryptionalgorithm",
        "kms:reencryptonsamekey",
        "kms:bypasspolicylockoutsafetycheck",
        "kms:datakeypairspec",
        "kms:expirationmodel",
        "kms:keyagreementalgorithm",
        "kms:macalgorithm",
        "kms:messagetype",
        "kms:rotationperiodindays",
        "kms:schedulekeydeletionpendingwindowindays",
        "kms:signingalgorithm",
        "kms:validto",
        "kms:wrappingalgorithm",
        "kms:wrappingkeyspec",
        "kms:recipientattestation:imagesha384",
        "enclavekms:recipientservernonce",
    ];

    /// Prefixes of condition-key families this service sets, lower-case (`kms:RecipientAttestation:PCRn` is
    /// checked on its own: n ≤ 31).
    pub const SUPPORTED_PREFIXES: &[&str] = &["kms:encryptioncontext:", "aws:resourcetag/", "aws:requesttag/"];

    /// Whether `key` (any spelling) is one of the `kms:RecipientAttestation:*` keys.
    pub fn is_recipient_attestation(key: &str) -> bool {
        key.get(..RECIPIENT_ATTESTATION_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(RECIPIENT_ATTESTATION_PREFIX))
    }

    /// Whether the service ever sets condition key `key` (any spelling).
    pub fn is_supported(key: &str) -> bool {
        let k = key.to_lowercase();
        if SUPPORTED.contains(&k.as_str()) {
            return true;
        }
        if let Some(rest) = SUPPORTED_PREFIXES.iter().find_map(|p| k.strip_prefix(p)) {
            return !rest.is_empty();
        }
        k.strip_prefix("kms:recipientattestation:pcr").is_some_and(|n| {
            !n.is_empty()
                && n.len() <= 2
                && n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<u32>().is_ok_and(|n| n <= super::MAX_RECIPIENT_PCR)
                && (n == "0" || !n.starts_with('0'))
        })
    }
}

/// Highest PCR index a `kms:RecipientAttestation:PCRn` key names.
pub const MAX_RECIPIENT_PCR: u32 = 31;

/// Everything a policy decision may depend on: who asks, for what, on which key, and the condition keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    principal_arn: String,
    /// The caller's unique id (empty when unknown: then no bound ARN entry matches it).
    principal_id: String,
    principal_account: String,
    action: String,
    resource: String,
    /// Lower-cased condition-key name → values (an empty list is never stored: absent and empty are the same).
    conditions: BTreeMap<String, Vec<String>>,
}

impl RequestContext {
    /// A request by `principal_arn` (of account `principal_account`) for `action` (e.g. `kms:Decrypt`) on the key
    /// `resource` (its ARN). Sets `aws:PrincipalArn`, `aws:PrincipalAccount` and `kms:CallerAccount`.
    pub fn new(
        principal_arn: impl Into<String>,
        principal_account: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        let mut ctx = RequestContext {
            principal_arn: principal_arn.into(),
            principal_id: String::new(),
            principal_account: principal_account.into(),
            action: action.into(),
            resource: resource.into(),
            conditions: BTreeMap::new(),
        };
        let (arn, account) = (ctx.principal_arn.clone(), ctx.principal_account.clone());
        ctx.set(keys::PRINCIPAL_ARN, [arn]);
        ctx.set(keys::PRINCIPAL_ACCOUNT, [account.clone()]);
        ctx.set(keys::CALLER_ACCOUNT, [account]);
        ctx
    }

    /// Replaces the values of condition key `key` (any spelling). An empty list removes the key.
    pub fn set<I, S>(&mut self, key: &str, values: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        let k = key.to_lowercase();
        if values.is_empty() {
            self.conditions.remove(&k);
        } else {
            self.conditions.insert(k, values);
        }
        self
    }

    /// Adds one value to condition key `key` (any spelling), keeping the values it has.
    pub fn add(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.conditions.entry(key.to_lowercase()).or_default().push(value.into());
        self
    }

    /// Builder form of [`RequestContext::set`].
    pub fn with<I, S>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set(key, values);
        self
    }

    /// Sets `kms:EncryptionContext:KEY` for every pair and `kms:EncryptionContextKeys` to the keys. Two context keys
    /// that differ only in case land on the same condition key, which then has both values.
    pub fn with_encryption_context(mut self, ctx: &BTreeMap<String, String>) -> Self {
        self.set_encryption_context(ctx);
        self
    }

    /// In-place form of [`RequestContext::with_encryption_context`].
    pub fn set_encryption_context(&mut self, ctx: &BTreeMap<String, String>) -> &mut Self {
        for (k, v) in ctx {
            self.add(&format!("{}{k}", keys::ENCRYPTION_CONTEXT_PREFIX), v.clone());
        }
        self.set(keys::ENCRYPTION_CONTEXT_KEYS, ctx.keys().cloned());
        self
    }

    /// Sets the `kms:RecipientAttestation:*` keys from a *verified* Recipient document's PCRs: `ImageSha384` from
    /// PCR0 and `PCRn` for n ≤ 31, as lower-case hex. Call it only after the document has been verified; a request
    /// without a Recipient simply has none of these keys.
    pub fn with_recipient_pcrs(mut self, pcrs: &BTreeMap<u32, Vec<u8>>) -> Self {
        self.set_recipient_pcrs(pcrs);
        self
    }

    /// In-place form of [`RequestContext::with_recipient_pcrs`].
    pub fn set_recipient_pcrs(&mut self, pcrs: &BTreeMap<u32, Vec<u8>>) -> &mut Self {
        for (i, v) in pcrs.range(..=MAX_RECIPIENT_PCR) {
            let h = hex::encode(v);
            if *i == 0 {
                self.set(keys::RECIPIENT_IMAGE_SHA384, [h.clone()]);
            }
            self.set(&format!("{}{i}", keys::RECIPIENT_PCR_PREFIX), [h]);
        }
        self
    }

    /// Whether the request carries a verified Recipient document (its PCR0 is always set).
    pub fn has_recipient(&self) -> bool {
        self.values(keys::RECIPIENT_IMAGE_SHA384).is_some()
    }

    /// Sets the caller's unique id (`AIDA…`/`AROA…`): what a bound policy's ARN entries are checked against. The
    /// condition key `aws:userid` is set apart (only when a policy has conditions).
    pub fn set_principal_id(&mut self, id: &str) -> &mut Self {
        id.clone_into(&mut self.principal_id);
        self
    }

    /// The caller's unique id (empty if not set).
    pub fn principal_id(&self) -> &str {
        &self.principal_id
    }

    /// The caller's ARN.
    pub fn principal_arn(&self) -> &str {
        &self.principal_arn
    }

    /// The caller's account.
    pub fn principal_account(&self) -> &str {
        &self.principal_account
    }

    /// The action, e.g. `kms:Decrypt`.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The key's ARN.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The values of condition key `key` (any spelling); `None` when the key is absent.
    pub fn values(&self, key: &str) -> Option<&[String]> {
        self.conditions.get(&key.to_lowercase()).map(Vec::as_slice).filter(|v| !v.is_empty())
    }
}

/// Decides `request` against `policy`: explicit Deny, else Allow, else NotAllowed.
pub fn evaluate(policy: &Policy, request: &RequestContext) -> Decision {
    evaluate_key_policy(policy, request).0
}

/// [`evaluate`], and whether an Allow names the caller directly (by ARN or `*`, not only through its account): for
/// a caller of the key's account that suffices without an identity-policy Allow, as in AWS.
pub fn evaluate_key_policy(policy: &Policy, request: &RequestContext) -> (Decision, bool) {
    let bindings = policy.bindings();
    let (mut allowed, mut direct) = (false, false);
    for st in policy.statements() {
        if !st.matches_bound(request, bindings) {
            continue;
        }
        match st.effect() {
            Effect::Deny => return (Decision::Deny, false),
            Effect::Allow => {
                allowed = true;
                direct = direct || st.principal().names_directly(request, bindings);
            }
        }
    }
    (if allowed { Decision::Allow } else { Decision::NotAllowed }, direct)
}
