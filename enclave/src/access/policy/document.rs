//! The policy document: statements with Effect, Principal/NotPrincipal, Action/NotAction, Resource/NotResource and
//! Condition, read strictly from [`Json`].

use super::condition::{self, Condition};
use super::json::{self, Json, truncate};
use super::wildcard;
use super::{PolicyError, RequestContext, keys};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most statements in one policy (a 32 KiB document cannot hold many more anyway).
const MAX_STATEMENTS: usize = 1000;

/// The policy language version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `2012-10-17`.
    V2012_10_17,
    /// `2008-10-17`.
    V2008_10_17,
}

/// A parsed key policy (or identity policy, [`Policy::parse_identity`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    version: Option<Version>,
    id: Option<String>,
    statements: Vec<Statement>,
    /// Principal ARN → unique id of the principal that had that ARN when the policy was saved ([`Policy::bind`]).
    /// `None`: unbound (ARNs are compared alone).
    bindings: Option<Arc<Bindings>>,
}

/// Principal ARN → unique principal id, as resolved when a key policy was saved.
pub type Bindings = BTreeMap<String, String>;

/// Which kind of document [`Policy::parse`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A key (resource) policy: every statement names a Principal or NotPrincipal.
    Key,
    /// An identity policy: attached to one principal, so no statement may name a Principal.
    Identity,
}

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    principal: PrincipalBlock,
    action: ActionBlock,
    resource: ResourceBlock,
    conditions: Vec<Condition>,
}

/// `Principal` or `NotPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalBlock {
    /// Matches a caller that matches any entry.
    Principal(Vec<PrincipalEntry>),
    /// Matches a caller that matches no entry.
    NotPrincipal(Vec<PrincipalEntry>),
}

/// One principal named by a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`: everyone.
    Anyone,
    /// A 12-digit account id or `arn:…:iam::ACCOUNT:root`: every principal of that account.
    Account(String),
    /// An IAM or STS principal ARN, compared exactly.
    Arn(String),
    /// `Service`, `Federated` or `CanonicalUser` principals: kept, never match a caller of this service.
    Other { kind: String, value: String },
}

/// `Action` or `NotAction`: patterns matched case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionBlock {
    Action(Vec<String>),
    NotAction(Vec<String>),
}

/// `Resource` or `NotResource`: patterns matched case-sensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceBlock {
    Resource(Vec<String>),
    NotResource(Vec<String>),
}

fn malformed(msg: impl Into<String>) -> PolicyError {
    PolicyError::Malformed(msg.into())
}

impl Policy {
    /// Parses and validates a key policy document. Every refusal is a [`PolicyError`].
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        Self::parse_as(text, Kind::Key)?.checked()
    }

    /// Parses a key policy read back from the store: as [`Policy::parse`] without the checks added after policies
    /// were first stored (supported condition keys, pattern length), so an older policy keeps the meaning it had
    /// (a condition on a key never set stays false) and the key stays manageable until its policy is put again.
    pub fn parse_stored(text: &str) -> Result<Policy, PolicyError> {
        Self::parse_as(text, Kind::Key)
    }

    /// The checks of a policy being written: condition keys the service sets, bounded wildcard patterns.
    fn checked(self) -> Result<Policy, PolicyError> {
        for st in &self.statements {
            let patterns: &[String] = match &st.action {
                ActionBlock::Action(l) | ActionBlock::NotAction(l) => l,
            };
            for a in patterns {
                check_pattern_len(a, "Action")?;
            }
            let patterns: &[String] = match &st.resource {
                ResourceBlock::Resource(l) | ResourceBlock::NotResource(l) => l,
            };
            for r in patterns {
                check_pattern_len(r, "Resource")?;
            }
            for c in &st.conditions {
                c.check_new_rules()?;
            }
        }
        Ok(self)
    }

    /// Parses and validates an identity policy (IAM JSON attached to a principal): as a key policy, except that no
    /// statement may have a Principal or NotPrincipal (the principal is the one the policy is attached to).
    pub fn parse_identity(text: &str) -> Result<Policy, PolicyError> {
        Self::parse_as(text, Kind::Identity)?.checked()
    }

    /// Ties every principal ARN the policy names to the unique id in `bindings` (resolved when the policy was
    /// saved): an ARN entry then matches a caller with that ARN *and* that id, so a principal deleted and re-created
    /// under the same ARN is not the one the policy named. An ARN without a binding then matches no caller.
    pub fn bind(mut self, bindings: Option<Arc<Bindings>>) -> Self {
        self.bindings = bindings;
        self
    }

    /// The IAM/STS principal ARNs the statements name (Principal and NotPrincipal), each once.
    pub fn principal_arns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .statements
            .iter()
            .flat_map(|s| match &s.principal {
                PrincipalBlock::Principal(l) | PrincipalBlock::NotPrincipal(l) => l.iter(),
            })
            .filter_map(|e| match e {
                PrincipalEntry::Arn(a) => Some(a.as_str()),
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether some statement has a Condition (else a decision needs no condition keys).
    pub fn conditional(&self) -> bool {
        self.statements.iter().any(|s| !s.conditions.is_empty())
    }

    /// The binding of principal entry `arn`, if the policy is bound.
    pub(crate) fn bindings(&self) -> Option<&Bindings> {
        self.bindings.as_deref()
    }

    fn parse_as(text: &str, kind: Kind) -> Result<Policy, PolicyError> {
        let Json::Object(members) = json::parse(text)? else {
            return Err(malformed("The policy document must be a JSON object"));
        };
        let mut version = None;
        let mut id = None;
        let mut statements = None;
        for (name, value) in members {
            match name.as_str() {
                "Version" => {
                    version = Some(match value {
                        Json::String(s) if s == "2012-10-17" => Version::V2012_10_17,
                        Json::String(s) if s == "2008-10-17" => Version::V2008_10_17,
                        _ => return Err(malformed("Version must be \"2012-10-17\" or \"2008-10-17\"")),
                    })
                }
                "Id" => match value {
                    Json::String(s) => id = Some(s),
                    other => return Err(malformed(format!("Id must be a string, not {}", other.kind()))),
                },
                "Statement" => {
                    let list = match value {
                        Json::Array(items) => items,
                        obj @ Json::Object(_) => vec![obj],
                        other => {
                            return Err(malformed(format!(
                                "Statement must be an object or an array, not {}",
                                other.kind()
                            )));
                        }
                    };
                    if list.is_empty() {
                        return Err(malformed("The policy has no statements"));
                    }
                    if list.len() > MAX_STATEMENTS {
                        return Err(malformed(format!("The policy has more than {MAX_STATEMENTS} statements")));
                    }
                    statements =
                        Some(list.into_iter().map(|v| Statement::parse(v, kind)).collect::<Result<Vec<_>, _>>()?);
                }
                other => return Err(malformed(format!("Unknown policy element \"{}\"", truncate(other)))),
            }
        }
        let statements = statements.ok_or_else(|| malformed("The policy has no Statement"))?;
        Ok(Policy { version, id, statements, bindings: None })
    }

    /// The Version element, if present.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The Id element, if present.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

impl Statement {
    fn parse(value: Json, kind: Kind) -> Result<Statement, PolicyError> {
        let Json::Object(members) = value else {
            return Err(malformed(format!("A statement must be an object, not {}", value.kind())));
        };
        let mut sid = None;
        let mut effect = None;
        let mut principal = None;
        let mut action = None;
        let mut resource = None;
        let mut conditions = Vec::new();
        for (name, value) in members {
            match name.as_str() {
                "Sid" => match value {
                    Json::String(s) => sid = Some(s),
                    other => return Err(malformed(format!("Sid must be a string, not {}", other.kind()))),
                },
                "Effect" => {
                    effect = Some(match value {
                        Json::String(s) if s == "Allow" => Effect::Allow,
                        Json::String(s) if s == "Deny" => Effect::Deny,
                        _ => return Err(malformed("Effect must be \"Allow\" or \"Deny\"")),
                    })
                }
                "Principal" | "NotPrincipal" if kind == Kind::Identity => {
                    return Err(malformed(format!(
                        "An identity policy cannot have a {name}: it applies to the principal it is attached to"
                    )));
                }
                "Principal" | "NotPrincipal" => {
                    if principal.is_some() {
                        return Err(malformed("A statement must have exactly one of Principal and NotPrincipal"));
                    }
                    let entries = parse_principal(value)?;
                    principal = Some(if name == "Principal" {
                        PrincipalBlock::Principal(entries)
                    } else {
                        PrincipalBlock::NotPrincipal(entries)
                    });
                }
                "Action" | "NotAction" => {
                    if action.is_some() {
                        return Err(malformed("A statement must have exactly one of Action and NotAction"));
                    }
                    let list = string_list(value, &name)?;
                    for a in &list {
                        check_action(a)?;
                    }
                    action =
                        Some(if name == "Action" { ActionBlock::Action(list) } else { ActionBlock::NotAction(list) });
                }
                "Resource" | "NotResource" => {
                    if resource.is_some() {
                        return Err(malformed("A statement must have exactly one of Resource and NotResource"));
                    }
                    let list = string_list(value, &name)?;
                    for r in &list {
                        check_resource(r)?;
                    }
                    resource = Some(if name == "Resource" {
                        ResourceBlock::Resource(list)
                    } else {
                        ResourceBlock::NotResource(list)
                    });
                }
                "Condition" => conditions = condition::parse_block(value)?,
                other => return Err(malformed(format!("Unknown statement element \"{}\"", truncate(other)))),
            }
        }
        Ok(Statement {
            sid,
            effect: effect.ok_or_else(|| malformed("A statement has no Effect"))?,
            principal: match kind {
                Kind::Identity => PrincipalBlock::Principal(vec![PrincipalEntry::Anyone]),
                Kind::Key => principal
                    .ok_or_else(|| malformed("A statement in a key policy must have a Principal or NotPrincipal"))?,
            },
            action: action.ok_or_else(|| malformed("A statement must have an Action or NotAction"))?,
            resource: resource.ok_or_else(|| malformed("A statement must have a Resource or NotResource"))?,
            conditions,
        })
    }

    /// The Sid, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Allow or Deny.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The Principal or NotPrincipal element.
    pub fn principal(&self) -> &PrincipalBlock {
        &self.principal
    }

    /// The Action or NotAction element.
    pub fn action(&self) -> &ActionBlock {
        &self.action
    }

    /// The Resource or NotResource element.
    pub fn resource(&self) -> &ResourceBlock {
        &self.resource
    }

    /// The conditions (all must hold).
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    /// Whether this statement applies to `req`: principal, action, resource and every condition match.
    ///
    /// One rule beyond IAM's, as AWS KMS documents for attestation: an `Allow` whose conditions name a
    /// `kms:RecipientAttestation:*` key never matches a request without a verified Recipient document, whatever the
    /// operator (`…IfExists`, `Null`, a negated operator would otherwise be satisfied by the key's absence). `Deny`
    /// statements keep IAM's logic, so `StringNotEquals…` on such a key still denies requests without a document.
    pub fn matches(&self, req: &RequestContext) -> bool {
        self.matches_bound(req, None)
    }

    /// [`Statement::matches`] with the policy's principal bindings ([`Policy::bind`]).
    pub fn matches_bound(&self, req: &RequestContext, bindings: Option<&Bindings>) -> bool {
        self.principal.matches(req, bindings)
            && self.action.matches(req.action())
            && self.resource.matches(req.resource())
            && !(self.effect == Effect::Allow && self.names_recipient_attestation() && !req.has_recipient())
            && self.conditions.iter().all(|c| c.evaluate(req))
    }

    /// Whether a condition of this statement names a `kms:RecipientAttestation:*` key.
    pub fn names_recipient_attestation(&self) -> bool {
        self.conditions.iter().any(|c| keys::is_recipient_attestation(c.key()))
    }
}

impl PrincipalBlock {
    fn matches(&self, req: &RequestContext, bindings: Option<&Bindings>) -> bool {
        match self {
            PrincipalBlock::Principal(list) => list.iter().any(|p| p.matches_bound(req, bindings)),
            PrincipalBlock::NotPrincipal(list) => !list.iter().any(|p| p.matches_bound(req, bindings)),
        }
    }

    /// Whether the caller is named by something other than its account (its ARN, `*`, or a NotPrincipal that does
    /// not exclude it): such a key-policy Allow suffices without an identity-policy Allow (same account).
    pub fn names_directly(&self, req: &RequestContext, bindings: Option<&Bindings>) -> bool {
        match self {
            PrincipalBlock::Principal(list) => {
                list.iter().any(|p| !matches!(p, PrincipalEntry::Account(_)) && p.matches_bound(req, bindings))
            }
            PrincipalBlock::NotPrincipal(_) => self.matches(req, bindings),
        }
    }
}

impl PrincipalEntry {
    /// [`PrincipalEntry::matches`], and for an ARN of a bound policy, the caller's unique id is the one the ARN was
    /// bound to.
    pub fn matches_bound(&self, req: &RequestContext, bindings: Option<&Bindings>) -> bool {
        match (self, bindings) {
            (PrincipalEntry::Arn(arn), Some(b)) => {
                self.matches(req) && b.get(arn).is_some_and(|id| !id.is_empty() && id == req.principal_id())
            }
            _ => self.matches(req),
        }
    }

    /// Whether the caller in `req` is this principal (by ARN alone).
    pub fn matches(&self, req: &RequestContext) -> bool {
        match self {
            PrincipalEntry::Anyone => true,
            PrincipalEntry::Account(a) => !a.is_empty() && req.principal_account() == a,
            PrincipalEntry::Arn(arn) => arn == req.principal_arn() || role_session_matches(arn, req.principal_arn()),
            PrincipalEntry::Other { .. } => false,
        }
    }
}

/// Whether `caller` (`arn:P:sts::A:assumed-role/ROLE/SESSION`) is a session of the role `role`
/// (`arn:P:iam::A:role/[PATH/]ROLE`).
fn role_session_matches(role: &str, caller: &str) -> bool {
    let r: Vec<&str> = role.splitn(6, ':').collect();
    let c: Vec<&str> = caller.splitn(6, ':').collect();
    let (["arn", rp, "iam", "", ra, rres], ["arn", cp, "sts", "", ca, cres]) = (r.as_slice(), c.as_slice()) else {
        return false;
    };
    let (Some(role_path), Some(session)) = (rres.strip_prefix("role/"), cres.strip_prefix("assumed-role/")) else {
        return false;
    };
    let role_name = role_path.rsplit('/').next().unwrap_or(role_path);
    let Some((session_role, session_name)) = session.split_once('/') else {
        return false;
    };
    rp == cp && ra == ca && !role_name.is_empty() && role_name == session_role && !session_name.is_empty()
}

impl ActionBlock {
    /// Whether `action` is covered (Action) or not excluded (NotAction).
    pub fn matches(&self, action: &str) -> bool {
        let any = |list: &[String]| list.iter().any(|p| wildcard::matches_ignore_case(p, action));
        match self {
            ActionBlock::Action(list) => any(list),
            ActionBlock::NotAction(list) => !any(list),
        }
    }
}

impl ResourceBlock {
    /// Whether `resource` is covered (Resource) or not excluded (NotResource).
    pub fn matches(&self, resource: &str) -> bool {
        let any = |list: &[String]| list.iter().any(|p| wildcard::matches(p, resource));
        match self {
            ResourceBlock::Resource(list) => any(list),
            ResourceBlock::NotResource(list) => !any(list),
        }
    }
}

/// A string or a non-empty array of strings.
fn string_list(value: Json, element: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Json::String(s) => Ok(vec![s]),
        Json::Array(items) if !items.is_empty() => items
            .into_iter()
            .map(|v| match v {
                Json::String(s) => Ok(s),
                other => Err(malformed(format!("{element} must hold strings, not {}", other.kind()))),
            })
            .collect(),
        Json::Array(_) => Err(malformed(format!("{element} must not be empty"))),
        other => Err(malformed(format!("{element} must be a string or an array of strings, not {}", other.kind()))),
    }
}

fn check_action(a: &str) -> Result<(), PolicyError> {
    if a == "*" {
        return Ok(());
    }
    let ok = match a.split_once(':') {
        Some((service, name)) => {
            !service.is_empty()
                && service.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
        }
        None => false,
    };
    if ok { Ok(()) } else { Err(malformed(format!("Invalid action \"{}\"", truncate(a)))) }
}

fn check_resource(r: &str) -> Result<(), PolicyError> {
    if r == "*" || (r.starts_with("arn:") && r.len() > 4) {
        Ok(())
    } else {
        Err(malformed(format!("Invalid resource \"{}\": must be \"*\" or an ARN", truncate(r))))
    }
}

/// Refuses a wildcard pattern longer than [`wildcard::MAX_PATTERN_CHARS`] (matching cost grows with it).
pub(crate) fn check_pattern_len(p: &str, element: &str) -> Result<(), PolicyError> {
    if p.chars().count() > wildcard::MAX_PATTERN_CHARS {
        return Err(malformed(format!(
            "{element} pattern \"{}…\" is longer than {} characters",
            truncate(p),
            wildcard::MAX_PATTERN_CHARS
        )));
    }
    Ok(())
}

fn parse_principal(value: Json) -> Result<Vec<PrincipalEntry>, PolicyError> {
    match value {
        Json::String(s) if s == "*" => Ok(vec![PrincipalEntry::Anyone]),
        Json::Object(members) if !members.is_empty() => {
            let mut out = Vec::new();
            for (kind, v) in members {
                let list = string_list(v, &format!("Principal {}", truncate(&kind)))?;
                match kind.as_str() {
                    "AWS" => {
                        for p in list {
                            out.push(aws_principal(&p)?);
                        }
                    }
                    "Service" | "Federated" | "CanonicalUser" => {
                        for p in list {
                            if p.is_empty() {
                                return Err(malformed(format!("Empty {kind} principal")));
                            }
                            out.push(PrincipalEntry::Other { kind: kind.clone(), value: p });
                        }
                    }
                    other => return Err(malformed(format!("Unknown principal type \"{}\"", truncate(other)))),
                }
            }
            Ok(out)
        }
        _ => {
            Err(malformed("Principal must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::111122223333:root\"}"))
        }
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn aws_principal(p: &str) -> Result<PrincipalEntry, PolicyError> {
    if p == "*" {
        return Ok(PrincipalEntry::Anyone);
    }
    if is_account_id(p) {
        return Ok(PrincipalEntry::Account(p.to_owned()));
    }
    let bad = || malformed(format!("Invalid principal \"{}\"", truncate(p)));
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    let ["arn", partition, service, "", account, resource] = parts.as_slice() else {
        return Err(bad());
    };
    if partition.is_empty() || !matches!(*service, "iam" | "sts") || !is_account_id(account) || resource.is_empty() {
        return Err(bad());
    }
    if wildcard::has_wildcard(p) {
        return Err(malformed(format!("Wildcards are not allowed in principal ARNs: \"{}\"", truncate(p))));
    }
    if *service == "iam" && *resource == "root" {
        return Ok(PrincipalEntry::Account((*account).to_owned()));
    }
    Ok(PrincipalEntry::Arn(p.to_owned()))
}
