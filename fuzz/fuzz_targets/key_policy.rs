//! Key policies (enclave access/policy): the policy's own JSON parser, the document model and evaluation.
//! Input: the policy text. Invariants: parsing never panics; a policy that parses is valid JSON to an independent
//! parser (serde_json), and the same document re-serialized by serde_json parses again with the same statements
//! and the same decision for every request of a fixed set (so what the enclave stores and what it enforces are the
//! same policy); an explicit Deny statement that matches wins over any Allow.
#![no_main]
use kms_enclave::access::policy::{Decision, Effect, Policy, RequestContext, evaluate};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn requests() -> Vec<RequestContext> {
    let mut out = Vec::new();
    for (arn, account) in [
        ("arn:aws:iam::111122223333:root", "111122223333"),
        ("arn:aws:iam::111122223333:user/alice", "111122223333"),
        ("arn:aws:iam::444455556666:role/Other", "444455556666"),
    ] {
        for action in ["kms:Decrypt", "kms:Encrypt", "kms:PutKeyPolicy", "kms:CreateGrant"] {
            let ctx: BTreeMap<String, String> = [("Tenant".to_owned(), "blue".to_owned())].into();
            out.push(RequestContext::new(arn, account, action, KEY));
            out.push(
                RequestContext::new(arn, account, action, KEY)
                    .with_encryption_context(&ctx)
                    .with("kms:RequestAlias", ["alias/app"])
                    .with("aws:CurrentTime", ["2026-01-01T00:00:00Z"]),
            );
        }
    }
    out
}

fn decisions(p: &Policy, reqs: &[RequestContext]) -> Vec<Decision> {
    reqs.iter().map(|r| evaluate(p, r)).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(policy) = Policy::parse(text) else { return };
    let reqs = requests();
    let first = decisions(&policy, &reqs);
    for (r, d) in reqs.iter().zip(&first) {
        let deny = policy.statements().iter().any(|s| s.effect() == Effect::Deny && s.matches(r));
        let allow = policy.statements().iter().any(|s| s.effect() == Effect::Allow && s.matches(r));
        let want = if deny {
            Decision::Deny
        } else if allow {
            Decision::Allow
        } else {
            Decision::NotAllowed
        };
        assert_eq!(*d, want);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).expect("a policy the enclave accepts is JSON to serde_json too");
    let again = Policy::parse(&value.to_string()).expect("the same document, re-serialized, parses");
    assert_eq!(again.statements().len(), policy.statements().len());
    assert_eq!(decisions(&again, &reqs), first, "the same document decides differently once re-serialized");
});
