//! Attestation gates (beyond AWS): a key policy that makes one plaintext-releasing operation depend on a verified
//! Recipient document (`kms:RecipientAttestation:*`) must not leave another one open.
//!
//! Two rules, both here so that CreateKey, PutKeyPolicy and authorization agree on what a gate is:
//! - [`release_gaps`] (CreateKey, PutKeyPolicy): a policy that gates any of [`RELEASING`] on attestation, but has an
//!   `Allow` for another of them without an attestation condition and no `Deny` that closes it for requests without
//!   a Recipient, is refused (`MalformedPolicyDocumentException`) unless that `Allow`'s Sid starts with
//!   [`UNGATED_SID_PREFIX`] (the author's explicit "I mean it").
//! - [`Policy::gates_decrypt`] (every ReEncrypt): on a key whose policy gates `kms:Decrypt`, `kms:ReEncryptFrom` is
//!   allowed only by an `Allow` that names an attestation key itself. ReEncrypt carries no Recipient, so in practice
//!   a gated key's ciphertexts cannot be re-wrapped to another key at all: the plaintext would leave the gate.

use super::document::{Effect, Policy, PrincipalBlock, PrincipalEntry, Statement};
use super::{Decision, RequestContext};

/// Operations that put a key's protected plaintext (or a fresh secret the key will protect) in someone's hands, or
/// re-wrap it under another key.
pub const RELEASING: [&str; 5] =
    ["kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:GenerateDataKeyPair", "kms:DeriveSharedSecret"];

/// An `Allow` whose Sid starts with this is exempt from [`release_gaps`] (our extension; AWS has no such check).
pub const UNGATED_SID_PREFIX: &str = "EnclaveKmsUngated";

/// A principal no policy names: what any caller without a Recipient looks like to a `Deny` for everyone.
const PROBE_ARN: &str = "arn:aws:iam::000000000000:user/enclavekms-gate-probe";

impl Policy {
    /// Whether some statement makes `action` depend on a `kms:RecipientAttestation:*` key.
    pub fn gates(&self, action: &str) -> bool {
        self.statements().iter().any(|s| s.names_recipient_attestation() && s.action().matches(action))
    }

    /// Whether the policy gates `kms:Decrypt` on attestation (then ReEncryptFrom needs a gated Allow of its own).
    pub fn gates_decrypt(&self) -> bool {
        self.gates("kms:Decrypt")
    }
}

/// The operations of [`RELEASING`] that `policy` leaves open although it gates another one on attestation; empty
/// when the policy gates none, or closes all. `key_arn` is the key the policy is for.
pub fn release_gaps(policy: &Policy, key_arn: &str) -> Vec<&'static str> {
    if !RELEASING.iter().any(|a| policy.gates(a)) {
        return Vec::new();
    }
    RELEASING.into_iter().filter(|a| is_open(policy, a, key_arn)).collect()
}

/// Whether an `Allow` grants `action` without attestation and no `Deny` for everyone refuses it without a Recipient.
fn is_open(policy: &Policy, action: &str, key_arn: &str) -> bool {
    let ungated_allow = policy.statements().iter().any(|s| {
        s.effect() == Effect::Allow
            && !s.names_recipient_attestation()
            && !s.sid().is_some_and(|sid| sid.starts_with(UNGATED_SID_PREFIX))
            && s.action().matches(action)
            && s.resource().matches(key_arn)
    });
    ungated_allow && !policy.statements().iter().any(|s| closes(s, action, key_arn))
}

/// A `Deny` for everyone, conditioned on attestation keys only, that applies to a request without a Recipient.
fn closes(s: &Statement, action: &str, key_arn: &str) -> bool {
    let everyone = matches!(s.principal(), PrincipalBlock::Principal(list) if list.contains(&PrincipalEntry::Anyone));
    let probe = RequestContext::new(PROBE_ARN, "000000000000", action, key_arn);
    s.effect() == Effect::Deny
        && everyone
        && !s.conditions().is_empty()
        && s.names_recipient_attestation()
        && s.conditions().iter().all(|c| super::keys::is_recipient_attestation(c.key()))
        && s.matches(&probe)
}

/// [`super::evaluate`] for `kms:ReEncryptFrom` on a key whose policy gates Decrypt: only `Allow`s that name an
/// attestation key count (a `Deny` counts as ever).
pub fn evaluate_gated(policy: &Policy, request: &RequestContext) -> Decision {
    let mut allowed = false;
    for st in policy.statements() {
        if !st.matches_bound(request, policy.bindings()) {
            continue;
        }
        match st.effect() {
            Effect::Deny => return Decision::Deny,
            Effect::Allow if st.names_recipient_attestation() => allowed = true,
            Effect::Allow => {}
        }
    }
    if allowed { Decision::Allow } else { Decision::NotAllowed }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const KEY: &str = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const PCR0: &str = "ab";

    fn parse(v: Value) -> Policy {
        Policy::parse(&v.to_string()).unwrap()
    }

    fn enclave(actions: &[&str]) -> Value {
        json!({"Sid": "Enclave", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:role/workload"},
            "Action": actions, "Resource": "*",
            "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": PCR0}}})
    }

    fn deny(actions: &[&str]) -> Value {
        json!({"Sid": "OnlyThatImage", "Effect": "Deny", "Principal": "*", "Action": actions, "Resource": "*",
            "Condition": {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": PCR0}}})
    }

    fn admin_not(actions: &[&str]) -> Value {
        json!({"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/admin"},
            "NotAction": actions, "Resource": "*"})
    }

    #[test]
    fn the_old_readme_policy_leaves_reencrypt_open() {
        let old = parse(json!({"Statement": [admin_not(&["kms:Decrypt", "kms:GenerateDataKey"]),
            enclave(&["kms:Decrypt", "kms:GenerateDataKey"]), deny(&["kms:Decrypt", "kms:GenerateDataKey"])]}));
        assert_eq!(release_gaps(&old, KEY), ["kms:ReEncryptFrom", "kms:GenerateDataKeyPair", "kms:DeriveSharedSecret"]);
        assert!(old.gates_decrypt());
    }

    #[test]
    fn a_deny_for_every_releasing_operation_closes_the_gaps() {
        let fixed = parse(json!({"Statement": [admin_not(&["kms:Decrypt", "kms:GenerateDataKey"]),
            enclave(&["kms:Decrypt", "kms:GenerateDataKey"]),
            deny(&["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"])]}));
        assert_eq!(release_gaps(&fixed, KEY), ["kms:DeriveSharedSecret"]);
        let fixed = parse(json!({"Statement": [admin_not(&["kms:Decrypt", "kms:GenerateDataKey"]),
            enclave(&["kms:Decrypt", "kms:GenerateDataKey"]),
            deny(&["kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DeriveSharedSecret"])]}));
        assert!(release_gaps(&fixed, KEY).is_empty());
        // An explicit admin list without the releasing operations needs no Deny to be gap-free.
        let listed = parse(
            json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/admin"},
            "Action": ["kms:Describe*", "kms:Encrypt"], "Resource": "*"}, enclave(&["kms:Decrypt"])]}),
        );
        assert!(release_gaps(&listed, KEY).is_empty());
    }

    #[test]
    fn a_deny_that_does_not_fire_without_a_recipient_does_not_close() {
        // StringEquals on an absent key is false: this Deny never fires for a request without a Recipient.
        let weak = json!({"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
            "Condition": {"StringEquals": {"kms:RecipientAttestation:ImageSha384": "00"}}});
        let p = parse(json!({"Statement": [admin_not(&["kms:Decrypt"]), enclave(&["kms:Decrypt"]), weak]}));
        assert_eq!(release_gaps(&p, KEY).len(), 4);
        // A Deny for one principal only does not close the operation for the others.
        let one = json!({"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::000000000000:user/admin"},
            "Action": "kms:*", "Resource": "*",
            "Condition": {"StringNotEquals": {"kms:RecipientAttestation:ImageSha384": PCR0}}});
        let p = parse(json!({"Statement": [admin_not(&["kms:Decrypt"]), enclave(&["kms:Decrypt"]), one]}));
        assert_eq!(release_gaps(&p, KEY).len(), 4);
        // A Deny that also depends on something else (here the encryption context) does not close it either.
        let mixed = json!({"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
            "Condition": {"StringNotEquals": {"kms:RecipientAttestation:ImageSha384": PCR0,
                "kms:EncryptionContext:app": "x"}}});
        let p = parse(json!({"Statement": [admin_not(&["kms:Decrypt"]), enclave(&["kms:Decrypt"]), mixed]}));
        assert_eq!(release_gaps(&p, KEY).len(), 4);
    }

    #[test]
    fn ungated_policies_and_the_explicit_sid() {
        let root =
            parse(json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
            "Action": "kms:*", "Resource": "*"}]}));
        assert!(release_gaps(&root, KEY).is_empty() && !root.gates_decrypt());
        let mut admin = admin_not(&["kms:Decrypt"]);
        admin["Sid"] = json!("EnclaveKmsUngatedAdmin");
        let p = parse(json!({"Statement": [admin, enclave(&["kms:Decrypt"])]}));
        assert!(release_gaps(&p, KEY).is_empty());
    }

    #[test]
    fn reencrypt_from_a_gated_key_needs_a_gated_allow() {
        let p = parse(json!({"Statement": [admin_not(&["kms:Decrypt"]), enclave(&["kms:Decrypt"])]}));
        let admin =
            RequestContext::new("arn:aws:iam::000000000000:user/admin", "000000000000", "kms:ReEncryptFrom", KEY);
        assert_eq!(super::super::evaluate(&p, &admin), Decision::Allow, "plain IAM logic allows it");
        assert_eq!(evaluate_gated(&p, &admin), Decision::NotAllowed);
    }
}
