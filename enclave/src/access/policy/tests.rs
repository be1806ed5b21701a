//! Unit tests of key-policy parsing and evaluation.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::condition::{parse_date, parse_number};
use super::wildcard::{matches, matches_ignore_case};
use super::*;

const ACCT: &str = "111122223333";
const OTHER: &str = "444455556666";
const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const OTHER_KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/0000abcd-12ab-34cd-56ef-1234567890ab";

fn user(acct: &str, name: &str) -> String {
    format!("arn:aws:iam::{acct}:user/{name}")
}

fn alice() -> String {
    user(ACCT, "alice")
}

/// A request by alice (account ACCT) for `action` on KEY.
fn req(action: &str) -> RequestContext {
    RequestContext::new(alice(), ACCT, action, KEY)
}

fn req_by(arn: &str, acct: &str, action: &str) -> RequestContext {
    RequestContext::new(arn, acct, action, KEY)
}

fn parse(v: &Value) -> Policy {
    match Policy::parse(&v.to_string()) {
        Ok(p) => p,
        Err(e) => panic!("policy refused: {e}\n{v}"),
    }
}

fn doc(statements: Value) -> Policy {
    parse(&json!({"Version": "2012-10-17", "Statement": statements}))
}

fn eval(p: &Policy, r: &RequestContext) -> Decision {
    evaluate(p, r)
}

fn default_policy(acct: &str) -> Policy {
    parse(&json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{acct}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    }))
}

fn allow_all() -> Value {
    json!({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"})
}

/// A policy whose only statement allows everything under `cond`.
fn allow_if(cond: &Value) -> Policy {
    doc(json!([{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Condition": cond}]))
}

fn ctx_with(pairs: &[(&str, &[&str])]) -> RequestContext {
    let mut r = req("kms:Decrypt");
    for (k, vs) in pairs {
        r.set(k, vs.iter().copied());
    }
    r
}

fn holds(cond: &Value, pairs: &[(&str, &[&str])]) -> bool {
    eval(&allow_if(cond), &ctx_with(pairs)) == Decision::Allow
}

fn refused(text: &str) -> PolicyError {
    match Policy::parse(text) {
        Ok(p) => panic!("accepted: {text}\n{p:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- wildcards

#[test]
fn wildcard_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("", "", true),
        ("", "a", false),
        ("a", "", false),
        ("*", "", true),
        ("*", "anything at all", true),
        ("**", "x", true),
        ("?", "", false),
        ("?", "a", true),
        ("?", "ab", false),
        ("??", "ab", true),
        ("*?", "", false),
        ("*?", "a", true),
        ("a*", "a", true),
        ("a*", "ba", false),
        ("*a", "ba", true),
        ("*a", "ab", false),
        ("a*b", "ab", true),
        ("a*b", "axxb", true),
        ("a*b", "axxc", false),
        ("a*b*c", "abbbc", true),
        ("a*b*c", "acb", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        // Everything else is literal: no regex, no character classes, no escapes.
        ("a.c", "abc", false),
        ("a.c", "a.c", true),
        ("[ab]", "a", false),
        ("[ab]", "[ab]", true),
        ("a+", "aa", false),
        ("a\\*", "a\\xyz", true),
        ("a\\*", "a*", false),
        ("$", "$", true),
        // Characters, not bytes.
        ("?", "é", true),
        ("é?", "éa", true),
        ("?", "\u{1F600}", true),
        // Case-sensitive.
        ("Finance", "finance", false),
        ("fin*", "FINANCE", false),
    ];
    for (p, t, want) in cases {
        assert_eq!(matches(p, t), *want, "pattern {p:?} text {t:?}");
    }
}

#[test]
fn wildcard_ignore_case() {
    assert!(matches_ignore_case("kms:decrypt", "kms:Decrypt"));
    assert!(matches_ignore_case("KMS:GENERATE*", "kms:GenerateDataKey"));
    assert!(matches_ignore_case("kms:?ncrypt", "kms:Encrypt"));
    assert!(!matches_ignore_case("kms:?ncrypt", "kms:ReEncrypt"));
    assert!(!matches_ignore_case("kms:Decrypt", "kms:Decrypt2"));
}

#[test]
fn wildcard_pathological_pattern_is_fast() {
    let text = "a".repeat(5000);
    let pattern = format!("{}b", "*a".repeat(50));
    let t = std::time::Instant::now();
    assert!(!matches(&pattern, &text));
    assert!(matches(&format!("{}a", "*a".repeat(50)), &text));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

// ---------------------------------------------------------------- parsing: accepted

#[test]
fn parse_accepts() {
    let base = |extra: Value| {
        let mut st = json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"});
        if let (Some(o), Value::Object(e)) = (st.as_object_mut(), extra) {
            for (k, v) in e {
                o.insert(k, v);
            }
        }
        st
    };
    let docs: Vec<Value> = vec![
        json!({"Version": "2012-10-17", "Statement": [base(json!({}))]}),
        json!({"Version": "2008-10-17", "Statement": [base(json!({}))]}),
        json!({"Statement": base(json!({}))}),
        json!({"Id": "key-consolepolicy-3", "Statement": [base(json!({"Sid": "Allow use of the key"}))]}),
        json!({"Statement": [base(json!({"Principal": {"AWS": "*"}}))]}),
        json!({"Statement": [base(json!({"Principal": {"AWS": ["*"]}}))]}),
        json!({"Statement": [base(json!({"Principal": {"AWS": ACCT}}))]}),
        json!({"Statement": [base(json!({"Principal": {"AWS": "arn:aws:iam::111122223333:root"}}))]}),
        json!({"Statement": [base(json!({"Principal": {"AWS": ["arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:role/path/Admin", "arn:aws:sts::111122223333:assumed-role/Admin/s1"]}}))]}),
        json!({"Statement": [base(json!({"Principal": {"Service": "logs.amazonaws.com", "AWS": ACCT}}))]}),
        json!({"Statement": [base(json!({"Principal": {"Federated": "cognito-identity.amazonaws.com"}}))]}),
        json!({"Statement": [{"Effect": "Deny", "NotPrincipal": {"AWS": ACCT}, "Action": "*", "Resource": "*"}]}),
        json!({"Statement": [{"Effect": "Deny", "Principal": "*", "NotAction": ["kms:Decrypt"], "Resource": "*"}]}),
        json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "*", "NotResource": KEY}]}),
        json!({"Statement": [base(json!({"Action": ["kms:Encrypt", "kms:Decrypt", "kms:Gen*", "kms:?ncrypt"]}))]}),
        json!({"Statement": [base(json!({"Action": "*"}))]}),
        json!({"Statement": [base(json!({"Resource": ["arn:aws:kms:*:111122223333:key/*", KEY]}))]}),
        json!({"Statement": [base(json!({"Condition": {}}))]}),
        json!({"Statement": [base(json!({"Condition": {
            "StringEquals": {"kms:CallerAccount": ACCT, "kms:RequestAlias": ["alias/x"]},
            "StringNotEquals": {"kms:EncryptionContext:ab": "c"},
            "StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": "AB"},
            "StringNotEqualsIgnoreCase": {"kms:EncryptionContext:ab": "c"},
            "StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"},
            "StringNotLike": {"kms:EncryptionContext:ab": "c*"},
            "StringEqualsIfExists": {"kms:EncryptionContext:ab": "c"},
            "NumericEquals": {"kms:EncryptionContext:n": 5},
            "NumericNotEquals": {"kms:EncryptionContext:n": "5"},
            "NumericLessThan": {"kms:EncryptionContext:n": 5.5},
            "NumericLessThanEquals": {"kms:EncryptionContext:n": -1},
            "NumericGreaterThan": {"kms:EncryptionContext:n": "1e3"},
            "NumericGreaterThanEquals": {"kms:EncryptionContext:n": [1, 2]},
            "DateEquals": {"kms:EncryptionContext:d": "2026-01-01T00:00:00Z"},
            "DateNotEquals": {"kms:EncryptionContext:d": 1767225600},
            "DateLessThan": {"kms:EncryptionContext:d": "2026-01-01"},
            "DateLessThanEquals": {"kms:EncryptionContext:d": "2026-01-01T00:00:00.123+01:00"},
            "DateGreaterThan": {"kms:EncryptionContext:d": "1767225600"},
            "DateGreaterThanEquals": {"kms:EncryptionContext:d": "2026-01-01T00:00Z"},
            "Bool": {"aws:SecureTransport": true},
            "BoolIfExists": {"aws:SecureTransport": "false"},
            "Null": {"kms:EncryptionContextKeys": "true"},
            "ArnLike": {"aws:RequestTag/src": "arn:aws:s3:::bucket/*"},
            "ArnEquals": {"aws:RequestTag/src": "arn:aws:s3:::bucket"},
            "ArnNotLike": {"aws:RequestTag/src": "arn:aws:s3:::bucket/*"},
            "ArnNotEquals": {"aws:RequestTag/src": "arn:aws:s3:::bucket"},
            "ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["a", "b"]},
            "ForAllValues:StringLike": {"kms:EncryptionContextKeys": "x*"},
            "ForAnyValue:StringEqualsIfExists": {"kms:EncryptionContextKeys": "a"},
            "ForAllValues:NumericLessThan": {"kms:EncryptionContext:n": 3},
        }}))]}),
    ];
    for d in &docs {
        let p = parse(d);
        assert!(!p.statements().is_empty(), "{d}");
    }
}

#[test]
fn parse_reads_fields() {
    let p = parse(&json!({
        "Version": "2008-10-17",
        "Id": "my-id",
        "Statement": {
            "Sid": "S 1",
            "Effect": "Deny",
            "NotPrincipal": {"AWS": [
                "111122223333", "arn:aws:iam::444455556666:root", "arn:aws:iam::111122223333:user/bob"
            ]},
            "NotAction": "kms:Decrypt",
            "NotResource": [KEY],
            "Condition": {"ForAllValues:StringNotLikeIfExists": {"kms:EncryptionContext:x": ["a", "b"]}}
        }
    }));
    assert_eq!(p.version(), Some(Version::V2008_10_17));
    assert_eq!(p.id(), Some("my-id"));
    let [st] = p.statements() else { panic!("one statement") };
    assert_eq!(st.sid(), Some("S 1"));
    assert_eq!(st.effect(), Effect::Deny);
    assert_eq!(
        st.principal(),
        &PrincipalBlock::NotPrincipal(vec![
            PrincipalEntry::Account(ACCT.into()),
            PrincipalEntry::Account(OTHER.into()),
            PrincipalEntry::Arn(user(ACCT, "bob")),
        ])
    );
    assert_eq!(st.action(), &ActionBlock::NotAction(vec!["kms:Decrypt".into()]));
    assert_eq!(st.resource(), &ResourceBlock::NotResource(vec![KEY.into()]));
    let [c] = st.conditions() else { panic!("one condition") };
    assert_eq!(c.qualifier(), SetQualifier::ForAllValues);
    assert_eq!(c.operator(), Operator::StringLike);
    assert!(c.negated());
    assert!(c.if_exists());
    assert_eq!(c.key(), "kms:EncryptionContext:x");

    let p = parse(&json!({"Statement": [allow_all()]}));
    assert_eq!(p.version(), None);
    assert_eq!(p.id(), None);
    assert_eq!(
        p.statements().first().map(Statement::principal),
        Some(&PrincipalBlock::Principal(vec![PrincipalEntry::Anyone]))
    );
}

// ---------------------------------------------------------------- parsing: refused

#[test]
fn parse_refuses() {
    let st = |extra: Value, remove: &[&str]| {
        let mut s = json!({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"});
        if let Some(o) = s.as_object_mut() {
            for r in remove {
                o.remove(*r);
            }
            if let Value::Object(e) = extra {
                for (k, v) in e {
                    o.insert(k, v);
                }
            }
        }
        json!({"Version": "2012-10-17", "Statement": [s]}).to_string()
    };
    let cond = |c: Value| st(json!({"Condition": c}), &[]);
    let mut cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        ("   ".into(), "blank"),
        ("not json".into(), "not JSON"),
        ("{\"Statement\": [".into(), "truncated"),
        ("[]".into(), "array document"),
        ("null".into(), "null document"),
        ("\"x\"".into(), "string document"),
        ("{}".into(), "no Statement"),
        (json!({"Version": "2012-10-17"}).to_string(), "no Statement"),
        (json!({"Statement": []}).to_string(), "empty Statement"),
        (json!({"Statement": "x"}).to_string(), "string Statement"),
        (json!({"Statement": [1]}).to_string(), "number statement"),
        (json!({"Statement": [allow_all()], "Foo": 1}).to_string(), "unknown top-level"),
        (json!({"statement": [allow_all()]}).to_string(), "lower-case Statement"),
        (json!({"Version": "2020-01-01", "Statement": [allow_all()]}).to_string(), "bad Version"),
        (json!({"Version": 2012, "Statement": [allow_all()]}).to_string(), "number Version"),
        (json!({"Id": 5, "Statement": [allow_all()]}).to_string(), "number Id"),
        (st(json!({}), &["Effect"]), "no Effect"),
        (st(json!({"Effect": "allow"}), &[]), "lower-case Effect"),
        (st(json!({"Effect": "Permit"}), &[]), "bad Effect"),
        (st(json!({"Effect": true}), &[]), "bool Effect"),
        (st(json!({"Sid": 1}), &[]), "number Sid"),
        (st(json!({}), &["Principal"]), "no Principal"),
        (st(json!({"NotPrincipal": {"AWS": ACCT}}), &[]), "Principal and NotPrincipal"),
        (st(json!({"Principal": "alice"}), &[]), "string Principal"),
        (st(json!({"Principal": {}}), &[]), "empty Principal"),
        (st(json!({"Principal": {"AWS": []}}), &[]), "empty AWS list"),
        (st(json!({"Principal": {"AWS": 111122223333u64}}), &[]), "number account"),
        (st(json!({"Principal": {"AWS": "12345"}}), &[]), "short account"),
        (st(json!({"Principal": {"AWS": "arn:aws:iam::12345:root"}}), &[]), "bad account in ARN"),
        (st(json!({"Principal": {"AWS": "arn:aws:iam::111122223333:user/*"}}), &[]), "wildcard principal"),
        (st(json!({"Principal": {"AWS": "arn:aws:iam::*:root"}}), &[]), "wildcard account"),
        (st(json!({"Principal": {"AWS": "arn:aws:s3:::bucket"}}), &[]), "non-IAM principal ARN"),
        (st(json!({"Principal": {"AWS": "arn:aws:iam::111122223333:"}}), &[]), "empty principal resource"),
        (st(json!({"Principal": {"AWS": "alice"}}), &[]), "bare name"),
        (st(json!({"Principal": {"Foo": "x"}}), &[]), "unknown principal type"),
        (st(json!({"Principal": {"Service": ""}}), &[]), "empty service"),
        (st(json!({}), &["Action"]), "no Action"),
        (st(json!({"NotAction": "kms:Decrypt"}), &[]), "Action and NotAction"),
        (st(json!({"Action": "Decrypt"}), &[]), "action without service"),
        (st(json!({"Action": ":Decrypt"}), &[]), "empty service prefix"),
        (st(json!({"Action": "kms:"}), &[]), "empty action name"),
        (st(json!({"Action": ""}), &[]), "empty action"),
        (st(json!({"Action": []}), &[]), "empty Action list"),
        (st(json!({"Action": 5}), &[]), "number Action"),
        (st(json!({"Action": ["kms:Decrypt", 5]}), &[]), "number in Action list"),
        (st(json!({"Action": {"kms": "Decrypt"}}), &[]), "object Action"),
        (st(json!({}), &["Resource"]), "no Resource"),
        (st(json!({"NotResource": "*"}), &[]), "Resource and NotResource"),
        (st(json!({"Resource": "key/1234"}), &[]), "resource not an ARN"),
        (st(json!({"Resource": "arn:"}), &[]), "bare arn:"),
        (st(json!({"Resource": []}), &[]), "empty Resource list"),
        (st(json!({"Principals": "*"}), &[]), "unknown statement element"),
        (st(json!({"effect": "Allow"}), &[]), "lower-case element"),
        (cond(json!("x")), "string Condition"),
        (cond(json!([])), "array Condition"),
        (cond(json!({"StringEqual": {"kms:EncryptionContext:ab": "c"}})), "unknown operator"),
        (cond(json!({"stringequals": {"kms:EncryptionContext:ab": "c"}})), "operator case"),
        (cond(json!({"ForSomeValues:StringEquals": {"kms:EncryptionContext:ab": "c"}})), "unknown set qualifier"),
        (cond(json!({"ForAnyValue:": {"kms:EncryptionContext:ab": "c"}})), "qualifier alone"),
        (cond(json!({"IfExists": {"kms:EncryptionContext:ab": "c"}})), "IfExists alone"),
        (cond(json!({"NullIfExists": {"kms:EncryptionContext:ab": "true"}})), "NullIfExists"),
        (cond(json!({"ForAnyValue:Null": {"kms:EncryptionContext:ab": "true"}})), "ForAnyValue:Null"),
        (cond(json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})), "unsupported operator"),
        (cond(json!({"StringEquals": "a"})), "operator block not an object"),
        (cond(json!({"StringEquals": {}})), "operator without keys"),
        (cond(json!({"StringEquals": {"": "c"}})), "empty key"),
        (cond(json!({"StringEquals": {"kms:EncryptionContext:ab": null}})), "null value"),
        (cond(json!({"StringEquals": {"kms:EncryptionContext:ab": []}})), "empty value list"),
        (cond(json!({"StringEquals": {"kms:EncryptionContext:ab": {"x": "y"}}})), "object value"),
        (cond(json!({"StringEquals": {"kms:EncryptionContext:ab": [["x"]]}})), "nested array value"),
        (cond(json!({"NumericEquals": {"kms:EncryptionContext:n": "abc"}})), "non-numeric"),
        (cond(json!({"NumericEquals": {"kms:EncryptionContext:n": "inf"}})), "inf"),
        (cond(json!({"NumericEquals": {"kms:EncryptionContext:n": "NaN"}})), "NaN"),
        (cond(json!({"NumericEquals": {"kms:EncryptionContext:n": true}})), "bool as number"),
        (cond(json!({"DateEquals": {"kms:EncryptionContext:d": "tomorrow"}})), "bad date"),
        (cond(json!({"DateEquals": {"kms:EncryptionContext:d": "2026-02-30"}})), "no such day"),
        (cond(json!({"DateEquals": {"kms:EncryptionContext:d": "2026-13-01"}})), "no such month"),
        (cond(json!({"DateEquals": {"kms:EncryptionContext:d": "2026-01-01T24:00:00Z"}})), "hour 24"),
        (cond(json!({"DateEquals": {"kms:EncryptionContext:d": "2026-01-01T00:00:00Zjunk"}})), "trailing junk"),
        (cond(json!({"Bool": {"kms:EncryptionContext:ab": "yes"}})), "bad bool"),
        (cond(json!({"Bool": {"kms:EncryptionContext:ab": 1}})), "number bool"),
        (cond(json!({"Null": {"kms:EncryptionContext:ab": "maybe"}})), "bad Null"),
    ];
    // Duplicate member names cannot be written with json!, so they are spelled out.
    cases.push((
        r#"{"Statement":[{"Effect":"Allow","Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}"#.into(),
        "duplicate Effect",
    ));
    cases.push((
        concat!(
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","#,
            r#""Condition":{"Null":{"kms:EncryptionContext:ab":"true"},"Null":{"kms:EncryptionContext:c":"true"}}}]}"#
        )
        .into(),
        "duplicate operator",
    ));
    cases.push((
        concat!(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","#,
            r#""Condition":{"StringEquals":{"kms:EncryptionContext:ab":"1","kms:EncryptionContext:ab":"2"}}}]}"#
        )
        .into(),
        "duplicate condition key",
    ));
    cases.push((
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}],"Statement":[]}"#.into(),
        "duplicate Statement",
    ));
    cases.push((
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]} x"#.into(),
        "trailing data",
    ));
    for (text, why) in &cases {
        match Policy::parse(text) {
            Ok(p) => panic!("{why}: accepted {text}\n{p:?}"),
            Err(PolicyError::Malformed(msg)) => assert!(!msg.is_empty(), "{why}"),
            Err(e) => panic!("{why}: unexpected {e:?}"),
        }
    }
}

#[test]
fn errors_map_to_malformed_policy_document() {
    let e: crate::error::Error = refused("nope").into();
    assert!(matches!(e, crate::error::Error::MalformedPolicyDocument(_)), "{e:?}");
    let e: crate::error::Error = refused(&" ".repeat(MAX_POLICY_BYTES + 1)).into();
    assert!(matches!(e, crate::error::Error::MalformedPolicyDocument(_)), "{e:?}");
}

#[test]
fn error_messages_do_not_echo_long_values() {
    let long = "x".repeat(5000);
    let e = refused(
        &json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": long, "Resource": "*"}]}).to_string(),
    );
    assert!(e.to_string().len() < 300, "{e}");
}

// ---------------------------------------------------------------- bounds

#[test]
fn size_limit_is_exact() {
    let body = json!({"Statement": [allow_all()]}).to_string();
    let at_limit = format!("{body}{}", " ".repeat(MAX_POLICY_BYTES - body.len()));
    assert_eq!(at_limit.len(), MAX_POLICY_BYTES);
    assert!(Policy::parse(&at_limit).is_ok());
    let over = format!("{at_limit} ");
    assert_eq!(refused(&over), PolicyError::TooLarge { len: MAX_POLICY_BYTES + 1, max: MAX_POLICY_BYTES });
}

#[test]
fn megabyte_documents_are_refused() {
    let statements: Vec<Value> = (0..20_000).map(|_| allow_all()).collect();
    let big = json!({"Statement": statements}).to_string();
    assert!(big.len() > 1_000_000);
    assert!(matches!(refused(&big), PolicyError::TooLarge { .. }));
    assert!(matches!(refused(&"[".repeat(1 << 20)), PolicyError::TooLarge { .. }));
    assert!(matches!(refused(&"\u{0}".repeat(1 << 20)), PolicyError::TooLarge { .. }));
}

#[test]
fn deep_nesting_is_refused() {
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(refused(&nest(MAX_DEPTH + 1)), PolicyError::TooDeep { max: MAX_DEPTH });
    // At the limit the depth check passes and the document is refused for its shape.
    assert!(matches!(refused(&nest(MAX_DEPTH)), PolicyError::Malformed(_)));
    // Far too deep, unbalanced, still under the size limit: refused without recursion.
    assert_eq!(refused(&"[".repeat(30_000)), PolicyError::TooDeep { max: MAX_DEPTH });
    assert_eq!(refused(&"{\"a\":".repeat(5_000)), PolicyError::TooDeep { max: MAX_DEPTH });
    // Deep nesting inside a real policy (a condition value).
    let deep = format!(
        concat!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*","#,
            r#""Condition":{{"StringEquals":{{"kms:EncryptionContext:ab":{}"x"{}}}}}}}]}}"#
        ),
        "[".repeat(40),
        "]".repeat(40)
    );
    assert_eq!(refused(&deep), PolicyError::TooDeep { max: MAX_DEPTH });
}

#[test]
fn brackets_inside_strings_do_not_count_as_nesting() {
    let sid = format!("{}\\\"{}", "[".repeat(100), "{".repeat(100));
    let text =
        format!(r#"{{"Statement":[{{"Sid":"{sid}","Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}]}}"#);
    let p = Policy::parse(&text).unwrap();
    assert_eq!(p.statements().first().and_then(Statement::sid).map(str::len), Some(201));
}

// ---------------------------------------------------------------- principals

#[test]
fn default_policy_allows_the_account_only() {
    let p = default_policy(ACCT);
    for action in ["kms:Decrypt", "kms:Encrypt", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "KMS:decrypt"] {
        assert_eq!(eval(&p, &req(action)), Decision::Allow, "{action}");
    }
    assert_eq!(eval(&p, &req_by(&format!("arn:aws:iam::{ACCT}:role/Admin"), ACCT, "kms:Decrypt")), Decision::Allow);
    assert_eq!(
        eval(&p, &req_by(&format!("arn:aws:sts::{ACCT}:assumed-role/Admin/s"), ACCT, "kms:Decrypt")),
        Decision::Allow
    );
    assert_eq!(eval(&p, &req_by(&format!("arn:aws:iam::{ACCT}:root"), ACCT, "kms:Decrypt")), Decision::Allow);
    assert_eq!(eval(&p, &req_by(&user(OTHER, "alice"), OTHER, "kms:Decrypt")), Decision::NotAllowed);
    assert_eq!(eval(&p, &req_by(&format!("arn:aws:iam::{OTHER}:root"), OTHER, "kms:Decrypt")), Decision::NotAllowed);
    // The account is taken from the request's account, not guessed from the ARN.
    assert_eq!(eval(&p, &req_by(&user(ACCT, "alice"), OTHER, "kms:Decrypt")), Decision::NotAllowed);
    // Not a KMS action.
    assert_eq!(eval(&p, &req("s3:GetObject")), Decision::NotAllowed);
}

#[test]
fn account_id_principal_equals_root() {
    let p = doc(json!([{"Effect": "Allow", "Principal": {"AWS": ACCT}, "Action": "kms:*", "Resource": "*"}]));
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::Allow);
    assert_eq!(eval(&p, &req_by(&user(OTHER, "x"), OTHER, "kms:Decrypt")), Decision::NotAllowed);
}

#[test]
fn specific_principals() {
    let p = doc(
        json!([{"Effect": "Allow", "Principal": {"AWS": [alice(), format!("arn:aws:iam::{ACCT}:role/team/Deployer")]},
        "Action": "kms:Decrypt", "Resource": "*"}]),
    );
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::Allow);
    assert_eq!(eval(&p, &req_by(&user(ACCT, "bob"), ACCT, "kms:Decrypt")), Decision::NotAllowed);
    assert_eq!(eval(&p, &req_by(&user(ACCT, "Alice"), ACCT, "kms:Decrypt")), Decision::NotAllowed);
    assert_eq!(eval(&p, &req_by(&user(OTHER, "alice"), OTHER, "kms:Decrypt")), Decision::NotAllowed);
    // A role matches its sessions (the path is not part of the session ARN), in its own account only.
    assert_eq!(
        eval(&p, &req_by(&format!("arn:aws:sts::{ACCT}:assumed-role/Deployer/ci-42"), ACCT, "kms:Decrypt")),
        Decision::Allow
    );
    for caller in [
        format!("arn:aws:sts::{OTHER}:assumed-role/Deployer/ci-42"),
        format!("arn:aws:sts::{ACCT}:assumed-role/Deployer2/ci-42"),
        format!("arn:aws:sts::{ACCT}:assumed-role/Deployer/"),
        format!("arn:aws:sts::{ACCT}:assumed-role/Deployer"),
        format!("arn:aws:sts::{ACCT}:federated-user/Deployer"),
        format!("arn:aws-cn:sts::{ACCT}:assumed-role/Deployer/s"),
        format!("arn:aws:iam::{ACCT}:role/Deployer"),
    ] {
        let acct = if caller.contains(OTHER) { OTHER } else { ACCT };
        assert_eq!(eval(&p, &req_by(&caller, acct, "kms:Decrypt")), Decision::NotAllowed, "{caller}");
    }
    // An exact session ARN as principal.
    let s = format!("arn:aws:sts::{ACCT}:assumed-role/R/s1");
    let p = doc(json!([{"Effect": "Allow", "Principal": {"AWS": s}, "Action": "*", "Resource": "*"}]));
    assert_eq!(eval(&p, &req_by(&s, ACCT, "kms:Decrypt")), Decision::Allow);
    assert_eq!(
        eval(&p, &req_by(&format!("arn:aws:sts::{ACCT}:assumed-role/R/s2"), ACCT, "kms:Decrypt")),
        Decision::NotAllowed
    );
}

#[test]
fn everyone_principals() {
    for principal in [json!("*"), json!({"AWS": "*"}), json!({"AWS": ["*"]})] {
        let p = doc(json!([{"Effect": "Allow", "Principal": principal, "Action": "kms:Encrypt", "Resource": "*"}]));
        assert_eq!(eval(&p, &req("kms:Encrypt")), Decision::Allow, "{principal}");
        assert_eq!(eval(&p, &req_by(&user(OTHER, "eve"), OTHER, "kms:Encrypt")), Decision::Allow, "{principal}");
        assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::NotAllowed, "{principal}");
    }
}

#[test]
fn service_principals_never_match_callers() {
    let p = doc(json!([{
        "Effect": "Allow", "Principal": {"Service": ["kms.amazonaws.com", "*"]}, "Action": "*", "Resource": "*"
    }]));
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::NotAllowed);
    assert_eq!(eval(&p, &req_by("kms.amazonaws.com", ACCT, "kms:Decrypt")), Decision::NotAllowed);
}

#[test]
fn not_principal() {
    let p = doc(json!([
        allow_all(),
        {
            "Effect": "Deny",
            "NotPrincipal": {"AWS": [alice(), format!("arn:aws:iam::{OTHER}:root")]},
            "Action": "kms:Decrypt",
            "Resource": "*"
        }
    ]));
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::Allow);
    assert_eq!(eval(&p, &req_by(&user(ACCT, "bob"), ACCT, "kms:Decrypt")), Decision::Deny);
    assert_eq!(eval(&p, &req_by(&user(OTHER, "carol"), OTHER, "kms:Decrypt")), Decision::Allow);
    assert_eq!(eval(&p, &req_by(&user(ACCT, "bob"), ACCT, "kms:Encrypt")), Decision::Allow);
    // NotPrincipal on an Allow: everyone but the listed.
    let p = doc(json!([{"Effect": "Allow", "NotPrincipal": {"AWS": alice()}, "Action": "*", "Resource": "*"}]));
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::NotAllowed);
    assert_eq!(eval(&p, &req_by(&user(ACCT, "bob"), ACCT, "kms:Decrypt")), Decision::Allow);
}

// ---------------------------------------------------------------- actions and resources

#[test]
fn actions() {
    let allows = |pattern: Value, action: &str| {
        let p = doc(json!([{"Effect": "Allow", "Principal": "*", "Action": pattern, "Resource": "*"}]));
        eval(&p, &req(action)) == Decision::Allow
    };
    let cases: &[(Value, &str, bool)] = &[
        (json!("kms:*"), "kms:Decrypt", true),
        (json!("kms:*"), "s3:GetObject", false),
        (json!("*"), "s3:GetObject", true),
        (json!("kms:Decrypt"), "kms:Decrypt", true),
        (json!("kms:Decrypt"), "kms:decrypt", true),
        (json!("KMS:DECRYPT"), "kms:Decrypt", true),
        (json!("kms:Decrypt"), "kms:Encrypt", false),
        (json!("kms:Decrypt"), "kms:DecryptX", false),
        (json!("kms:Generate*"), "kms:GenerateDataKey", true),
        (json!("kms:Generate*"), "kms:GenerateDataKeyPairWithoutPlaintext", true),
        (json!("kms:Generate*"), "kms:Decrypt", false),
        (json!("kms:generate*"), "kms:GenerateRandom", true),
        (json!("kms:?ncrypt"), "kms:Encrypt", true),
        (json!("kms:?ncrypt"), "kms:ReEncrypt", false),
        (json!("kms:*crypt"), "kms:ReEncrypt", true),
        (json!(["kms:Encrypt", "kms:Decrypt"]), "kms:Decrypt", true),
        (json!(["kms:Encrypt", "kms:Decrypt"]), "kms:ReEncryptFrom", false),
        (json!("kms:Describe*"), "kms:DescribeKey", true),
    ];
    for (pattern, action, want) in cases {
        assert_eq!(allows(pattern.clone(), action), *want, "{pattern} vs {action}");
    }
}

#[test]
fn not_action() {
    let p = doc(
        json!([{"Effect": "Allow", "Principal": "*", "NotAction": ["kms:Decrypt", "kms:Schedule*"], "Resource": "*"}]),
    );
    assert_eq!(eval(&p, &req("kms:Encrypt")), Decision::Allow);
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::NotAllowed);
    assert_eq!(eval(&p, &req("kms:DECRYPT")), Decision::NotAllowed);
    assert_eq!(eval(&p, &req("kms:ScheduleKeyDeletion")), Decision::NotAllowed);
    let p =
        doc(json!([allow_all(), {"Effect": "Deny", "Principal": "*", "NotAction": "kms:Describe*", "Resource": "*"}]));
    assert_eq!(eval(&p, &req("kms:DescribeKey")), Decision::Allow);
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::Deny);
}

#[test]
fn resources() {
    let allows = |pattern: Value, resource: &str| {
        let p = doc(json!([{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": pattern}]));
        eval(&p, &RequestContext::new(alice(), ACCT, "kms:Decrypt", resource)) == Decision::Allow
    };
    let cases: &[(Value, &str, bool)] = &[
        (json!("*"), KEY, true),
        (json!(KEY), KEY, true),
        (json!(KEY), OTHER_KEY, false),
        (json!(KEY.replace("1234abcd", "1234ABCD")), KEY, false),
        (json!("arn:aws:kms:*:111122223333:key/*"), KEY, true),
        (json!("arn:aws:kms:*:444455556666:key/*"), KEY, false),
        (json!("arn:aws:kms:us-east-1:111122223333:key/1234abcd-????-34cd-56ef-1234567890ab"), KEY, true),
        (json!("arn:aws:kms:us-east-1:111122223333:alias/*"), KEY, false),
        (json!([OTHER_KEY, KEY]), KEY, true),
    ];
    for (pattern, resource, want) in cases {
        assert_eq!(allows(pattern.clone(), resource), *want, "{pattern} vs {resource}");
    }
    let p = doc(json!([allow_all(), {"Effect": "Deny", "Principal": "*", "Action": "*", "NotResource": KEY}]));
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::Allow);
    assert_eq!(eval(&p, &RequestContext::new(alice(), ACCT, "kms:Decrypt", OTHER_KEY)), Decision::Deny);
}

// ---------------------------------------------------------------- Deny and Allow

#[test]
fn explicit_deny_overrides_allow_in_any_order() {
    let deny = json!({"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"});
    for statements in [json!([allow_all(), deny.clone()]), json!([deny.clone(), allow_all()])] {
        let p = doc(statements);
        assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::Deny);
        assert_eq!(eval(&p, &req("kms:Encrypt")), Decision::Allow);
    }
    // A Deny alone is Deny, not NotAllowed.
    assert_eq!(eval(&doc(json!([deny])), &req("kms:Decrypt")), Decision::Deny);
    assert!(!Decision::Deny.is_allowed());
    assert!(!Decision::NotAllowed.is_allowed());
    assert!(Decision::Allow.is_allowed());
}

#[test]
fn a_deny_whose_condition_fails_does_not_apply() {
    let p = doc(json!([allow_all(), {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
        "Condition": {"StringEquals": {"kms:CallerAccount": OTHER}}}]));
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::Allow);
    assert_eq!(eval(&p, &req_by(&user(OTHER, "eve"), OTHER, "kms:Decrypt")), Decision::Deny);
}

#[test]
fn an_allow_needs_every_part_to_match() {
    let p = doc(json!([{"Effect": "Allow", "Principal": {"AWS": alice()}, "Action": "kms:Decrypt", "Resource": KEY,
        "Condition": {"StringEquals": {"kms:EncryptionContext:app": "x"}}}]));
    let ok = req("kms:Decrypt").with("kms:EncryptionContext:app", ["x"]);
    assert_eq!(eval(&p, &ok), Decision::Allow);
    assert_eq!(
        eval(&p, &req_by(&user(ACCT, "bob"), ACCT, "kms:Decrypt").with("kms:EncryptionContext:app", ["x"])),
        Decision::NotAllowed
    );
    assert_eq!(eval(&p, &req("kms:Encrypt").with("kms:EncryptionContext:app", ["x"])), Decision::NotAllowed);
    assert_eq!(
        eval(
            &p,
            &RequestContext::new(alice(), ACCT, "kms:Decrypt", OTHER_KEY).with("kms:EncryptionContext:app", ["x"])
        ),
        Decision::NotAllowed
    );
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::NotAllowed);
}

// ---------------------------------------------------------------- condition operators

/// Name, Condition element, request condition keys, whether the Allow applies.
type Case<'a> = (&'a str, Value, Vec<(&'a str, &'a [&'a str])>, bool);

#[test]
fn condition_operator_table() {
    const EC: &str = "kms:EncryptionContext:dept";
    const N: &str = "kms:EncryptionContext:n";
    const D: &str = "kms:EncryptionContext:date";
    const B: &str = "aws:SecureTransport";
    const ARN: &str = "aws:RequestTag/src";
    const KEYS: &str = "kms:EncryptionContextKeys";
    const ROLE_X: &str = "arn:aws:iam::111122223333:role/x";
    let cases: Vec<Case<'_>> = vec![
        // StringEquals
        ("StringEquals match", json!({"StringEquals": {EC: "finance"}}), vec![(EC, &["finance"])], true),
        ("StringEquals case", json!({"StringEquals": {EC: "finance"}}), vec![(EC, &["Finance"])], false),
        ("StringEquals other", json!({"StringEquals": {EC: "finance"}}), vec![(EC, &["hr"])], false),
        ("StringEquals absent", json!({"StringEquals": {EC: "finance"}}), vec![], false),
        ("StringEquals empty value", json!({"StringEquals": {EC: ""}}), vec![(EC, &[""])], true),
        ("StringEquals no wildcard", json!({"StringEquals": {EC: "fin*"}}), vec![(EC, &["finance"])], false),
        ("StringEquals OR values", json!({"StringEquals": {EC: ["hr", "finance"]}}), vec![(EC, &["finance"])], true),
        (
            "StringEquals key case",
            json!({"StringEquals": {"KMS:ENCRYPTIONCONTEXT:DEPT": "finance"}}),
            vec![(EC, &["finance"])],
            true,
        ),
        ("StringEquals number", json!({"StringEquals": {N: 5}}), vec![(N, &["5"])], true),
        ("StringEquals bool", json!({"StringEquals": {N: true}}), vec![(N, &["true"])], true),
        ("StringEqualsIfExists absent", json!({"StringEqualsIfExists": {EC: "finance"}}), vec![], true),
        (
            "StringEqualsIfExists match",
            json!({"StringEqualsIfExists": {EC: "finance"}}),
            vec![(EC, &["finance"])],
            true,
        ),
        ("StringEqualsIfExists other", json!({"StringEqualsIfExists": {EC: "finance"}}), vec![(EC, &["hr"])], false),
        // StringNotEquals
        ("StringNotEquals match", json!({"StringNotEquals": {EC: "finance"}}), vec![(EC, &["finance"])], false),
        ("StringNotEquals other", json!({"StringNotEquals": {EC: "finance"}}), vec![(EC, &["hr"])], true),
        ("StringNotEquals case", json!({"StringNotEquals": {EC: "finance"}}), vec![(EC, &["FINANCE"])], true),
        ("StringNotEquals absent", json!({"StringNotEquals": {EC: "finance"}}), vec![], true),
        (
            "StringNotEquals any of",
            json!({"StringNotEquals": {EC: ["hr", "finance"]}}),
            vec![(EC, &["finance"])],
            false,
        ),
        ("StringNotEquals none of", json!({"StringNotEquals": {EC: ["hr", "finance"]}}), vec![(EC, &["ops"])], true),
        ("StringNotEqualsIfExists absent", json!({"StringNotEqualsIfExists": {EC: "x"}}), vec![], true),
        ("StringNotEqualsIfExists match", json!({"StringNotEqualsIfExists": {EC: "x"}}), vec![(EC, &["x"])], false),
        // StringEqualsIgnoreCase
        ("IgnoreCase match", json!({"StringEqualsIgnoreCase": {EC: "FINANCE"}}), vec![(EC, &["finance"])], true),
        ("IgnoreCase mixed", json!({"StringEqualsIgnoreCase": {EC: "FiNaNcE"}}), vec![(EC, &["fInAnCe"])], true),
        ("IgnoreCase other", json!({"StringEqualsIgnoreCase": {EC: "finance"}}), vec![(EC, &["finances"])], false),
        ("IgnoreCase no wildcard", json!({"StringEqualsIgnoreCase": {EC: "fin*"}}), vec![(EC, &["finance"])], false),
        ("IgnoreCase absent", json!({"StringEqualsIgnoreCase": {EC: "finance"}}), vec![], false),
        ("IgnoreCaseIfExists absent", json!({"StringEqualsIgnoreCaseIfExists": {EC: "finance"}}), vec![], true),
        // StringNotEqualsIgnoreCase
        ("NotIgnoreCase match", json!({"StringNotEqualsIgnoreCase": {EC: "FINANCE"}}), vec![(EC, &["finance"])], false),
        ("NotIgnoreCase other", json!({"StringNotEqualsIgnoreCase": {EC: "FINANCE"}}), vec![(EC, &["hr"])], true),
        ("NotIgnoreCase absent", json!({"StringNotEqualsIgnoreCase": {EC: "FINANCE"}}), vec![], true),
        // StringLike
        ("StringLike star", json!({"StringLike": {EC: "fin*"}}), vec![(EC, &["finance"])], true),
        ("StringLike question", json!({"StringLike": {EC: "f?nance"}}), vec![(EC, &["finance"])], true),
        ("StringLike exact", json!({"StringLike": {EC: "finance"}}), vec![(EC, &["finance"])], true),
        ("StringLike prefix only", json!({"StringLike": {EC: "fin"}}), vec![(EC, &["finance"])], false),
        ("StringLike case", json!({"StringLike": {EC: "Fin*"}}), vec![(EC, &["finance"])], false),
        ("StringLike star empty", json!({"StringLike": {EC: "*"}}), vec![(EC, &[""])], true),
        ("StringLike absent", json!({"StringLike": {EC: "*"}}), vec![], false),
        ("StringLikeIfExists absent", json!({"StringLikeIfExists": {EC: "fin*"}}), vec![], true),
        ("StringLikeIfExists other", json!({"StringLikeIfExists": {EC: "fin*"}}), vec![(EC, &["hr"])], false),
        // StringNotLike
        ("StringNotLike match", json!({"StringNotLike": {EC: "fin*"}}), vec![(EC, &["finance"])], false),
        ("StringNotLike other", json!({"StringNotLike": {EC: "fin*"}}), vec![(EC, &["hr"])], true),
        ("StringNotLike absent", json!({"StringNotLike": {EC: "fin*"}}), vec![], true),
        ("StringNotLike any", json!({"StringNotLike": {EC: ["h*", "f*"]}}), vec![(EC, &["finance"])], false),
        // Numeric
        ("NumericEquals", json!({"NumericEquals": {N: 5}}), vec![(N, &["5"])], true),
        ("NumericEquals string policy", json!({"NumericEquals": {N: "5"}}), vec![(N, &["5"])], true),
        ("NumericEquals 5.0", json!({"NumericEquals": {N: 5}}), vec![(N, &["5.0"])], true),
        ("NumericEquals other", json!({"NumericEquals": {N: 5}}), vec![(N, &["6"])], false),
        ("NumericEquals not a number", json!({"NumericEquals": {N: 5}}), vec![(N, &["five"])], false),
        ("NumericEquals absent", json!({"NumericEquals": {N: 5}}), vec![], false),
        ("NumericEquals OR", json!({"NumericEquals": {N: [1, 5]}}), vec![(N, &["5"])], true),
        ("NumericNotEquals other", json!({"NumericNotEquals": {N: 5}}), vec![(N, &["6"])], true),
        ("NumericNotEquals same", json!({"NumericNotEquals": {N: 5}}), vec![(N, &["5"])], false),
        ("NumericNotEquals absent", json!({"NumericNotEquals": {N: 5}}), vec![], true),
        ("NumericLessThan less", json!({"NumericLessThan": {N: 10}}), vec![(N, &["9"])], true),
        ("NumericLessThan equal", json!({"NumericLessThan": {N: 10}}), vec![(N, &["10"])], false),
        ("NumericLessThan more", json!({"NumericLessThan": {N: 10}}), vec![(N, &["11"])], false),
        ("NumericLessThan negative", json!({"NumericLessThan": {N: 0}}), vec![(N, &["-0.5"])], true),
        ("NumericLessThan absent", json!({"NumericLessThan": {N: 10}}), vec![], false),
        ("NumericLessThanIfExists absent", json!({"NumericLessThanIfExists": {N: 10}}), vec![], true),
        ("NumericLessThanIfExists more", json!({"NumericLessThanIfExists": {N: 10}}), vec![(N, &["11"])], false),
        ("NumericLessThanEquals equal", json!({"NumericLessThanEquals": {N: 10}}), vec![(N, &["10"])], true),
        ("NumericLessThanEquals more", json!({"NumericLessThanEquals": {N: 10}}), vec![(N, &["10.01"])], false),
        ("NumericGreaterThan more", json!({"NumericGreaterThan": {N: 10}}), vec![(N, &["11"])], true),
        ("NumericGreaterThan equal", json!({"NumericGreaterThan": {N: 10}}), vec![(N, &["10"])], false),
        ("NumericGreaterThan exponent", json!({"NumericGreaterThan": {N: "1e3"}}), vec![(N, &["1001"])], true),
        ("NumericGreaterThanEquals equal", json!({"NumericGreaterThanEquals": {N: 10}}), vec![(N, &["10"])], true),
        ("NumericGreaterThanEquals less", json!({"NumericGreaterThanEquals": {N: 10}}), vec![(N, &["9"])], false),
        ("NumericGreaterThanEquals absent", json!({"NumericGreaterThanEquals": {N: 10}}), vec![], false),
        // Date
        (
            "DateEquals iso",
            json!({"DateEquals": {D: "2026-01-01T00:00:00Z"}}),
            vec![(D, &["2026-01-01T00:00:00Z"])],
            true,
        ),
        ("DateEquals epoch", json!({"DateEquals": {D: "2026-01-01T00:00:00Z"}}), vec![(D, &["1767225600"])], true),
        ("DateEquals epoch policy", json!({"DateEquals": {D: 1767225600}}), vec![(D, &["2026-01-01T00:00:00Z"])], true),
        ("DateEquals date only", json!({"DateEquals": {D: "2026-01-01"}}), vec![(D, &["2026-01-01T00:00:00Z"])], true),
        (
            "DateEquals offset",
            json!({"DateEquals": {D: "2026-01-01T01:00:00+01:00"}}),
            vec![(D, &["2026-01-01T00:00:00Z"])],
            true,
        ),
        (
            "DateEquals negative offset",
            json!({"DateEquals": {D: "2025-12-31T19:00:00-05:00"}}),
            vec![(D, &["2026-01-01T00:00:00Z"])],
            true,
        ),
        (
            "DateEquals fraction",
            json!({"DateEquals": {D: "2026-01-01T00:00:00.5Z"}}),
            vec![(D, &["2026-01-01T00:00:00.500Z"])],
            true,
        ),
        (
            "DateEquals fraction differs",
            json!({"DateEquals": {D: "2026-01-01T00:00:00.5Z"}}),
            vec![(D, &["2026-01-01T00:00:00Z"])],
            false,
        ),
        ("DateEquals other", json!({"DateEquals": {D: "2026-01-01"}}), vec![(D, &["2026-01-02"])], false),
        ("DateEquals garbage", json!({"DateEquals": {D: "2026-01-01"}}), vec![(D, &["yesterday"])], false),
        ("DateEquals absent", json!({"DateEquals": {D: "2026-01-01"}}), vec![], false),
        ("DateNotEquals other", json!({"DateNotEquals": {D: "2026-01-01"}}), vec![(D, &["2026-01-02"])], true),
        ("DateNotEquals same", json!({"DateNotEquals": {D: "2026-01-01"}}), vec![(D, &["1767225600"])], false),
        ("DateNotEquals absent", json!({"DateNotEquals": {D: "2026-01-01"}}), vec![], true),
        (
            "DateLessThan before",
            json!({"DateLessThan": {D: "2026-01-01T00:00:00Z"}}),
            vec![(D, &["2025-12-31T23:59:59Z"])],
            true,
        ),
        (
            "DateLessThan equal",
            json!({"DateLessThan": {D: "2026-01-01T00:00:00Z"}}),
            vec![(D, &["2026-01-01T00:00:00Z"])],
            false,
        ),
        (
            "DateLessThan after",
            json!({"DateLessThan": {D: "2026-01-01T00:00:00Z"}}),
            vec![(D, &["2026-01-01T00:00:01Z"])],
            false,
        ),
        ("DateLessThanIfExists absent", json!({"DateLessThanIfExists": {D: "2026-01-01"}}), vec![], true),
        (
            "DateLessThanEquals equal",
            json!({"DateLessThanEquals": {D: "2026-01-01"}}),
            vec![(D, &["2026-01-01T00:00Z"])],
            true,
        ),
        (
            "DateLessThanEquals after",
            json!({"DateLessThanEquals": {D: "2026-01-01"}}),
            vec![(D, &["2026-01-01T00:00:00.001Z"])],
            false,
        ),
        (
            "DateGreaterThan after",
            json!({"DateGreaterThan": {D: "2026-01-01"}}),
            vec![(D, &["2026-06-01T12:00:00Z"])],
            true,
        ),
        ("DateGreaterThan equal", json!({"DateGreaterThan": {D: "2026-01-01"}}), vec![(D, &["2026-01-01"])], false),
        ("DateGreaterThan absent", json!({"DateGreaterThan": {D: "2026-01-01"}}), vec![], false),
        (
            "DateGreaterThanEquals equal",
            json!({"DateGreaterThanEquals": {D: "2026-01-01"}}),
            vec![(D, &["2026-01-01"])],
            true,
        ),
        (
            "DateGreaterThanEquals before",
            json!({"DateGreaterThanEquals": {D: "2026-01-01"}}),
            vec![(D, &["2025-12-31"])],
            false,
        ),
        // Bool
        ("Bool true", json!({"Bool": {B: "true"}}), vec![(B, &["true"])], true),
        ("Bool json true", json!({"Bool": {B: true}}), vec![(B, &["true"])], true),
        ("Bool case", json!({"Bool": {B: "True"}}), vec![(B, &["TRUE"])], true),
        ("Bool false value", json!({"Bool": {B: true}}), vec![(B, &["false"])], false),
        ("Bool garbage value", json!({"Bool": {B: true}}), vec![(B, &["yes"])], false),
        ("Bool false", json!({"Bool": {B: false}}), vec![(B, &["false"])], true),
        ("Bool absent", json!({"Bool": {B: false}}), vec![], false),
        ("BoolIfExists absent", json!({"BoolIfExists": {B: true}}), vec![], true),
        ("BoolIfExists false", json!({"BoolIfExists": {B: true}}), vec![(B, &["false"])], false),
        // Null
        ("Null true absent", json!({"Null": {EC: "true"}}), vec![], true),
        ("Null true present", json!({"Null": {EC: "true"}}), vec![(EC, &["x"])], false),
        ("Null true present empty string", json!({"Null": {EC: true}}), vec![(EC, &[""])], false),
        ("Null false present", json!({"Null": {EC: "false"}}), vec![(EC, &["x"])], true),
        ("Null false absent", json!({"Null": {EC: false}}), vec![], false),
        ("Null either", json!({"Null": {EC: [true, false]}}), vec![], true),
        // Arn
        ("ArnLike match", json!({"ArnLike": {ARN: "arn:aws:iam::111122223333:role/*"}}), vec![(ARN, &[ROLE_X])], true),
        (
            "ArnLike account",
            json!({"ArnLike": {ARN: "arn:aws:iam::444455556666:role/*"}}),
            vec![(ARN, &[ROLE_X])],
            false,
        ),
        ("ArnLike star spans no colon", json!({"ArnLike": {ARN: "arn:aws:*:role/x"}}), vec![(ARN, &[ROLE_X])], false),
        ("ArnLike per part", json!({"ArnLike": {ARN: "arn:*:iam::*:role/?"}}), vec![(ARN, &[ROLE_X])], true),
        ("ArnLike not an arn", json!({"ArnLike": {ARN: "*"}}), vec![(ARN, &["x"])], false),
        (
            "ArnLike resource colons",
            json!({"ArnLike": {ARN: "arn:aws:logs:*:*:log-group:*"}}),
            vec![(ARN, &["arn:aws:logs:us-east-1:1:log-group:a:b"])],
            true,
        ),
        ("ArnEquals", json!({"ArnEquals": {ARN: ROLE_X}}), vec![(ARN, &[ROLE_X])], true),
        ("ArnLike absent", json!({"ArnLike": {ARN: "arn:*:*:*:*:*"}}), vec![], false),
        ("ArnNotLike match", json!({"ArnNotLike": {ARN: "arn:aws:iam::*:role/*"}}), vec![(ARN, &[ROLE_X])], false),
        ("ArnNotLike other", json!({"ArnNotLike": {ARN: "arn:aws:iam::*:user/*"}}), vec![(ARN, &[ROLE_X])], true),
        ("ArnNotEquals absent", json!({"ArnNotEquals": {ARN: ROLE_X}}), vec![], true),
        ("ArnLikeIfExists absent", json!({"ArnLikeIfExists": {ARN: ROLE_X}}), vec![], true),
        // Single-valued operators on a multi-valued key
        ("StringEquals multi any", json!({"StringEquals": {KEYS: "dept"}}), vec![(KEYS, &["dept", "x"])], true),
        ("StringNotEquals multi any", json!({"StringNotEquals": {KEYS: "dept"}}), vec![(KEYS, &["dept", "x"])], false),
        ("StringNotEquals multi none", json!({"StringNotEquals": {KEYS: "dept"}}), vec![(KEYS, &["a", "b"])], true),
        // ForAnyValue
        (
            "ForAnyValue one",
            json!({"ForAnyValue:StringEquals": {KEYS: "dept"}}),
            vec![(KEYS, &["dept", "project"])],
            true,
        ),
        ("ForAnyValue none", json!({"ForAnyValue:StringEquals": {KEYS: "dept"}}), vec![(KEYS, &["project"])], false),
        (
            "ForAnyValue OR",
            json!({"ForAnyValue:StringEquals": {KEYS: ["a", "project"]}}),
            vec![(KEYS, &["project"])],
            true,
        ),
        ("ForAnyValue absent", json!({"ForAnyValue:StringEquals": {KEYS: "dept"}}), vec![], false),
        ("ForAnyValue IfExists absent", json!({"ForAnyValue:StringEqualsIfExists": {KEYS: "dept"}}), vec![], true),
        (
            "ForAnyValue IfExists none",
            json!({"ForAnyValue:StringEqualsIfExists": {KEYS: "dept"}}),
            vec![(KEYS, &["x"])],
            false,
        ),
        (
            "ForAnyValue NotEquals some other",
            json!({"ForAnyValue:StringNotEquals": {KEYS: "dept"}}),
            vec![(KEYS, &["dept", "x"])],
            true,
        ),
        (
            "ForAnyValue NotEquals only",
            json!({"ForAnyValue:StringNotEquals": {KEYS: "dept"}}),
            vec![(KEYS, &["dept"])],
            false,
        ),
        ("ForAnyValue NotEquals absent", json!({"ForAnyValue:StringNotEquals": {KEYS: "dept"}}), vec![], false),
        (
            "ForAnyValue Like",
            json!({"ForAnyValue:StringLike": {KEYS: "pro*"}}),
            vec![(KEYS, &["dept", "project"])],
            true,
        ),
        (
            "ForAnyValue IgnoreCase",
            json!({"ForAnyValue:StringEqualsIgnoreCase": {KEYS: "DEPT"}}),
            vec![(KEYS, &["dept"])],
            true,
        ),
        ("ForAnyValue Numeric", json!({"ForAnyValue:NumericGreaterThan": {N: 10}}), vec![(N, &["1", "20"])], true),
        // ForAllValues
        (
            "ForAllValues subset",
            json!({"ForAllValues:StringEquals": {KEYS: ["dept", "project"]}}),
            vec![(KEYS, &["dept"])],
            true,
        ),
        (
            "ForAllValues all",
            json!({"ForAllValues:StringEquals": {KEYS: ["dept", "project"]}}),
            vec![(KEYS, &["project", "dept"])],
            true,
        ),
        (
            "ForAllValues extra",
            json!({"ForAllValues:StringEquals": {KEYS: ["dept", "project"]}}),
            vec![(KEYS, &["dept", "x"])],
            false,
        ),
        ("ForAllValues absent", json!({"ForAllValues:StringEquals": {KEYS: "dept"}}), vec![], true),
        ("ForAllValues IfExists absent", json!({"ForAllValues:StringEqualsIfExists": {KEYS: "dept"}}), vec![], true),
        ("ForAllValues Like", json!({"ForAllValues:StringLike": {KEYS: "d*"}}), vec![(KEYS, &["dept", "dog"])], true),
        (
            "ForAllValues Like one off",
            json!({"ForAllValues:StringLike": {KEYS: "d*"}}),
            vec![(KEYS, &["dept", "cat"])],
            false,
        ),
        (
            "ForAllValues NotEquals clean",
            json!({"ForAllValues:StringNotEquals": {KEYS: "secret"}}),
            vec![(KEYS, &["a", "b"])],
            true,
        ),
        (
            "ForAllValues NotEquals hit",
            json!({"ForAllValues:StringNotEquals": {KEYS: "secret"}}),
            vec![(KEYS, &["a", "secret"])],
            false,
        ),
        ("ForAllValues NotEquals absent", json!({"ForAllValues:StringNotEquals": {KEYS: "secret"}}), vec![], true),
        ("ForAllValues Numeric", json!({"ForAllValues:NumericLessThan": {N: 10}}), vec![(N, &["1", "2"])], true),
        (
            "ForAllValues Numeric one off",
            json!({"ForAllValues:NumericLessThan": {N: 10}}),
            vec![(N, &["1", "20"])],
            false,
        ),
        (
            "ForAllValues Date",
            json!({"ForAllValues:DateLessThan": {D: "2026-01-01"}}),
            vec![(D, &["2020-01-01", "1000"])],
            true,
        ),
        ("ForAllValues Bool", json!({"ForAllValues:Bool": {B: true}}), vec![(B, &["true", "false"])], false),
        (
            "ForAllValues Arn",
            json!({"ForAllValues:ArnLike": {ARN: "arn:aws:iam::*:role/*"}}),
            vec![(ARN, &[ROLE_X])],
            true,
        ),
    ];
    assert!(cases.len() >= 150, "{}", cases.len());
    let mut failures = Vec::new();
    for (name, cond, pairs, want) in &cases {
        if holds(cond, pairs) != *want {
            failures.push(format!("{name}: {cond} with {pairs:?} should be {want}"));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn multiple_keys_and_operators_are_anded() {
    let cond = json!({
        "StringEquals": {"kms:EncryptionContext:a": "1", "kms:EncryptionContext:b": "2"},
        "StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}
    });
    assert!(holds(&cond, &[("kms:EncryptionContext:a", &["1"]), ("kms:EncryptionContext:b", &["2"])]));
    assert!(!holds(&cond, &[("kms:EncryptionContext:a", &["1"])]));
    assert!(!holds(&cond, &[("kms:EncryptionContext:b", &["2"])]));
    assert!(!holds(&cond, &[("kms:EncryptionContext:a", &["1"]), ("kms:EncryptionContext:b", &["3"])]));
    // The third condition is on the caller.
    let p = allow_if(&cond);
    let role = RequestContext::new(format!("arn:aws:iam::{ACCT}:role/r"), ACCT, "kms:Decrypt", KEY)
        .with("kms:EncryptionContext:a", ["1"])
        .with("kms:EncryptionContext:b", ["2"]);
    assert_eq!(eval(&p, &role), Decision::NotAllowed);
}

#[test]
fn automatic_keys_from_the_caller() {
    let p = allow_if(&json!({"StringEquals": {
        "kms:CallerAccount": ACCT, "aws:PrincipalArn": alice(), "aws:PrincipalAccount": ACCT
    }}));
    assert_eq!(eval(&p, &req("kms:Decrypt")), Decision::Allow);
    assert_eq!(eval(&p, &req_by(&user(ACCT, "bob"), ACCT, "kms:Decrypt")), Decision::NotAllowed);
    let r = req("kms:Decrypt");
    assert_eq!(r.values("KMS:CALLERACCOUNT"), Some(&[ACCT.to_owned()][..]));
    assert_eq!(r.principal_arn(), alice());
    assert_eq!(r.principal_account(), ACCT);
    assert_eq!(r.action(), "kms:Decrypt");
    assert_eq!(r.resource(), KEY);
}

#[test]
fn request_context_set_add_and_empty() {
    let mut r = req("kms:Decrypt");
    assert_eq!(r.values("kms:ViaService"), None);
    r.set("kms:ViaService", ["s3.us-east-1.amazonaws.com"]);
    assert_eq!(r.values("KMS:VIASERVICE").map(<[String]>::len), Some(1));
    r.add("kms:viaservice", "ec2.us-east-1.amazonaws.com");
    assert_eq!(r.values("kms:ViaService").map(<[String]>::len), Some(2));
    r.set("kms:ViaService", Vec::<String>::new());
    assert_eq!(r.values("kms:ViaService"), None);
    // An empty list is absent, for Null and for ForAllValues alike.
    let r = req("kms:Decrypt").with("kms:EncryptionContextKeys", Vec::<String>::new());
    assert_eq!(eval(&allow_if(&json!({"Null": {"kms:EncryptionContextKeys": "true"}})), &r), Decision::Allow);
    assert_eq!(
        eval(&allow_if(&json!({"ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "*"}})), &r),
        Decision::NotAllowed
    );
}

#[test]
fn encryption_context_keys_are_case_insensitive_values_are_not() {
    let mut ctx = BTreeMap::new();
    ctx.insert("Department".to_owned(), "Finance".to_owned());
    ctx.insert("project".to_owned(), "x".to_owned());
    let r = req("kms:Decrypt").with_encryption_context(&ctx);
    let p = allow_if(&json!({"StringEquals": {"kms:EncryptionContext:department": "Finance"}}));
    assert_eq!(eval(&p, &r), Decision::Allow);
    let p = allow_if(&json!({"StringEquals": {"kms:EncryptionContext:DEPARTMENT": "finance"}}));
    assert_eq!(eval(&p, &r), Decision::NotAllowed);
    let p = allow_if(&json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["Department", "project"]}}));
    assert_eq!(eval(&p, &r), Decision::Allow);
    let p = allow_if(&json!({"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["department", "project"]}}));
    assert_eq!(eval(&p, &r), Decision::NotAllowed, "key names as values are compared case-sensitively");
    let p = allow_if(&json!({"Null": {"kms:EncryptionContextKeys": "false"}}));
    assert_eq!(eval(&p, &r), Decision::Allow);
    assert_eq!(eval(&p, &req("kms:Decrypt").with_encryption_context(&BTreeMap::new())), Decision::NotAllowed);
    // Two context keys that differ only in case share one condition key.
    let mut ctx = BTreeMap::new();
    ctx.insert("Dept".to_owned(), "a".to_owned());
    ctx.insert("dept".to_owned(), "b".to_owned());
    let r = req("kms:Decrypt").with_encryption_context(&ctx);
    assert_eq!(r.values("kms:EncryptionContext:DEPT").map(<[String]>::len), Some(2));
}

// ---------------------------------------------------------------- attestation-gated keys

/// A production image hash (48 bytes), and the value a debug-mode enclave reports (all zeros).
fn prod_pcr0() -> Vec<u8> {
    (0..48u8).map(|i| i.wrapping_mul(37).wrapping_add(0xa1)).collect()
}

fn recipient(pcr0: &[u8]) -> BTreeMap<u32, Vec<u8>> {
    let mut pcrs = BTreeMap::new();
    pcrs.insert(0, pcr0.to_vec());
    pcrs.insert(1, vec![0x11; 48]);
    pcrs.insert(8, vec![0x88; 48]);
    pcrs
}

fn gated_statement() -> Value {
    json!({
        "Sid": "Enable enclave data processing",
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCT}:role/data-processing")},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*",
        "Condition": {"StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:ImageSha384": hex::encode_upper(prod_pcr0())
        }}
    })
}

fn workload(action: &str) -> RequestContext {
    RequestContext::new(format!("arn:aws:iam::{ACCT}:role/data-processing"), ACCT, action, KEY)
}

#[test]
fn attestation_gate_needs_the_recipient_document() {
    let p = doc(json!([gated_statement()]));
    assert_eq!(eval(&p, &workload("kms:Decrypt")), Decision::NotAllowed, "no Recipient");
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&prod_pcr0()))), Decision::Allow);
    assert_eq!(
        eval(&p, &workload("kms:GenerateDataKey").with_recipient_pcrs(&recipient(&prod_pcr0()))),
        Decision::Allow
    );
    assert_eq!(eval(&p, &workload("kms:Encrypt").with_recipient_pcrs(&recipient(&prod_pcr0()))), Decision::NotAllowed);
    let debug = vec![0u8; 48];
    assert_eq!(hex::encode(&debug), "0".repeat(96));
    assert_eq!(
        eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&debug))),
        Decision::NotAllowed,
        "debug"
    );
    let mut wrong = prod_pcr0();
    if let Some(b) = wrong.last_mut() {
        *b ^= 1;
    }
    assert_eq!(
        eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&wrong))),
        Decision::NotAllowed,
        "wrong"
    );
    assert_eq!(
        eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&BTreeMap::new())),
        Decision::NotAllowed,
        "no PCRs"
    );
    // A document whose PCR0 is missing but other PCRs are present.
    let mut no0 = recipient(&prod_pcr0());
    no0.remove(&0);
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&no0)), Decision::NotAllowed, "no PCR0");
}

#[test]
fn debug_document_never_matches_a_production_pcr_with_any_string_operator() {
    let zeros = "0".repeat(96);
    let prod = hex::encode(prod_pcr0());
    for op in [
        "StringEquals",
        "StringEqualsIgnoreCase",
        "StringLike",
        "ForAnyValue:StringEquals",
        "ForAnyValue:StringEqualsIgnoreCase",
    ] {
        for key in ["kms:RecipientAttestation:PCR0", "kms:RecipientAttestation:ImageSha384"] {
            let p = allow_if(&json!({op: {key: prod}}));
            let debug = workload("kms:Decrypt").with_recipient_pcrs(&recipient(&[0u8; 48]));
            assert_eq!(debug.values(key), Some(&[zeros.clone()][..]));
            assert_eq!(eval(&p, &debug), Decision::NotAllowed, "{op} {key}");
            assert_eq!(
                eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&prod_pcr0()))),
                Decision::Allow,
                "{op} {key}"
            );
        }
    }
}

#[test]
fn several_pcrs_are_all_required() {
    let p = allow_if(&json!({"StringEqualsIgnoreCase": {
        "kms:RecipientAttestation:PCR0": hex::encode(prod_pcr0()),
        "kms:RecipientAttestation:PCR8": "88".repeat(48),
    }}));
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&prod_pcr0()))), Decision::Allow);
    let mut other_signer = recipient(&prod_pcr0());
    other_signer.insert(8, vec![0x89; 48]);
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&other_signer)), Decision::NotAllowed);
}

#[test]
fn recipient_pcrs_are_lower_hex_and_bounded_to_pcr31() {
    let mut pcrs = BTreeMap::new();
    pcrs.insert(0, vec![0xAB; 48]);
    pcrs.insert(31, vec![0xCD; 48]);
    pcrs.insert(32, vec![0xEF; 48]);
    let r = workload("kms:Decrypt").with_recipient_pcrs(&pcrs);
    assert_eq!(r.values("kms:RecipientAttestation:ImageSha384"), Some(&["ab".repeat(48)][..]));
    assert_eq!(r.values("kms:recipientattestation:pcr0"), Some(&["ab".repeat(48)][..]));
    assert_eq!(r.values("kms:RecipientAttestation:PCR31"), Some(&["cd".repeat(48)][..]));
    assert_eq!(r.values("kms:RecipientAttestation:PCR32"), None);
    // Only PCR0 is the image hash.
    let mut pcrs = BTreeMap::new();
    pcrs.insert(1, vec![0x01; 48]);
    assert_eq!(workload("kms:Decrypt").with_recipient_pcrs(&pcrs).values("kms:RecipientAttestation:ImageSha384"), None);
}

#[test]
fn if_exists_on_an_attestation_key_does_not_open_the_gate() {
    // Under plain IAM semantics IfExists would make the condition true without a Recipient (the policy author's
    // mistake); an Allow that names attestation keys never matches without a document.
    let p = allow_if(
        &json!({"StringEqualsIgnoreCaseIfExists": {"kms:RecipientAttestation:ImageSha384": hex::encode(prod_pcr0())}}),
    );
    assert_eq!(eval(&p, &workload("kms:Decrypt")), Decision::NotAllowed);
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&[0u8; 48]))), Decision::NotAllowed);
}

#[test]
fn a_second_unconditional_allow_defeats_the_gate_and_a_deny_closes_it() {
    let unconditional = json!({
        "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCT}:root")}, "Action": "kms:*", "Resource": "*"
    });
    let p = doc(json!([unconditional.clone(), gated_statement()]));
    // The evaluator does what the policy says: the unconditional Allow matches.
    assert_eq!(eval(&p, &workload("kms:Decrypt")), Decision::Allow, "the classic mistake");
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&[0u8; 48]))), Decision::Allow);

    // Deny when there is no Recipient at all.
    let deny_missing = json!({
        "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
        "Condition": {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}}
    });
    let p = doc(json!([unconditional.clone(), gated_statement(), deny_missing]));
    assert_eq!(eval(&p, &workload("kms:Decrypt")), Decision::Deny);
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&prod_pcr0()))), Decision::Allow);
    assert_eq!(eval(&p, &workload("kms:Encrypt")), Decision::Allow, "other actions untouched");
    // Null closes only the missing document: a wrong (debug) document still gets in through the unconditional Allow.
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&[0u8; 48]))), Decision::Allow);

    // A negated Deny closes both: StringNotEquals is true for an absent key and for a wrong value.
    let deny_unless = json!({
        "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
        "Condition": {"StringNotEqualsIgnoreCase": {
            "kms:RecipientAttestation:ImageSha384": hex::encode(prod_pcr0())
        }}
    });
    let p = doc(json!([unconditional, gated_statement(), deny_unless]));
    assert_eq!(eval(&p, &workload("kms:Decrypt")), Decision::Deny);
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&[0u8; 48]))), Decision::Deny);
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&prod_pcr0()))), Decision::Allow);
}

// ---------------------------------------------------------------- numbers and dates

#[test]
fn number_parsing() {
    for (s, want) in
        [("5", Some(5.0)), ("-1.5", Some(-1.5)), ("1e3", Some(1000.0)), (" 7 ", Some(7.0)), ("+2", Some(2.0))]
    {
        assert_eq!(parse_number(s), want, "{s}");
    }
    for s in ["", "abc", "inf", "-inf", "NaN", "infinity", "0x10", "1e999", "--1", ".", "e", "1_000"] {
        assert_eq!(parse_number(s), None, "{s}");
    }
}

#[test]
fn date_parsing() {
    const NS: i128 = 1_000_000_000;
    let cases: &[(&str, Option<i128>)] = &[
        ("0", Some(0)),
        ("1767225600", Some(1_767_225_600 * NS)),
        ("-86400", Some(-86_400 * NS)),
        ("1970-01-01", Some(0)),
        ("1970-01-01T00:00:00Z", Some(0)),
        ("1969-12-31T23:59:59Z", Some(-NS)),
        ("2000-02-29", Some(951_782_400 * NS)),
        ("2026-01-01T00:00:00Z", Some(1_767_225_600 * NS)),
        ("2026-01-01t00:00:00z", Some(1_767_225_600 * NS)),
        ("2026-01-01T00:00Z", Some(1_767_225_600 * NS)),
        ("2026-01-01T00:00:00", Some(1_767_225_600 * NS)),
        ("2026-01-01T02:30:00+0230", Some(1_767_225_600 * NS)),
        ("2026-01-01T02:00:00+02", Some(1_767_225_600 * NS)),
        ("2026-01-01T00:00:00.123456789Z", Some(1_767_225_600 * NS + 123_456_789)),
        ("2026-01-01T00:00:00.1234567891Z", Some(1_767_225_600 * NS + 123_456_789)),
        ("1900-02-29", None),
        ("2100-02-29", None),
        ("2026-00-10", None),
        ("2026-01-00", None),
        ("2026-04-31", None),
        ("2026-1-01", None),
        ("26-01-01", None),
        ("2026/01/01", None),
        ("2026-01-01T", None),
        ("2026-01-01T00", None),
        ("2026-01-01T00:60:00Z", None),
        ("2026-01-01T00:00:60Z", None),
        ("2026-01-01T00:00:00.Z", None),
        ("2026-01-01T00:00:00+24:00", None),
        ("2026-01-01 00:00:00", None),
        ("", None),
        ("-", None),
        ("99999999999999999999999", None),
        ("now", None),
    ];
    for (s, want) in cases {
        assert_eq!(parse_date(s), *want, "{s}");
    }
}

// ---------------------------------------------------------------- properties

proptest! {
    #[test]
    fn prop_parse_never_panics(s in "\\PC{0,400}") {
        let _ = Policy::parse(&s);
    }

    #[test]
    fn prop_parse_never_panics_on_jsonish(s in "[\\[\\]{}\":, a-zA-Z0-9*?\\\\]{0,2000}") {
        let _ = Policy::parse(&s);
    }

    #[test]
    fn prop_literal_matches_itself(s in "[^*?]{0,40}") {
        prop_assert!(matches(&s, &s));
        prop_assert!(matches_ignore_case(&s.to_ascii_uppercase(), &s));
        prop_assert!(matches("*", &s));
        let with_x = format!("{s}x");
        prop_assert!(!matches(&s, &with_x));
    }

    #[test]
    fn prop_star_infix(pre in "[a-z]{0,10}", mid in "[a-z]{0,10}", post in "[a-z]{0,10}") {
        let pattern = format!("*{mid}*");
        let text = format!("{pre}{mid}{post}");
        prop_assert!(matches(&pattern, &text));
    }

    #[test]
    fn prop_question_replaces_one_char(s in "[a-z0-9:/-]{1,30}", i in 0usize..30) {
        let chars: Vec<char> = s.chars().collect();
        let i = i % chars.len();
        let pattern: String = chars.iter().enumerate().map(|(j, c)| if j == i { '?' } else { *c }).collect();
        prop_assert!(matches(&pattern, &s));
        let shorter: String = chars.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, c)| *c).collect();
        prop_assert!(!matches(&pattern, &shorter));
    }

    #[test]
    fn prop_deny_wins(action in "kms:[A-Za-z]{1,20}", allow_first in any::<bool>()) {
        let deny = json!({"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"});
        let statements = if allow_first { json!([allow_all(), deny]) } else { json!([deny, allow_all()]) };
        prop_assert_eq!(eval(&doc(statements), &req(&action)), Decision::Deny);
    }

    #[test]
    fn prop_negation_is_complement(value in "[a-c]{0,3}", policy in "[a-c*?]{0,3}", present in any::<bool>()) {
        let vs = [value.as_str()];
        let pairs: Vec<(&str, &[&str])> = if present { vec![("kms:EncryptionContext:x", &vs[..])] } else { vec![] };
        for (pos, neg) in [("StringEquals", "StringNotEquals"), ("StringLike", "StringNotLike"),
                           ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase")] {
            let p = holds(&json!({pos: {"kms:EncryptionContext:x": policy}}), &pairs);
            let n = holds(&json!({neg: {"kms:EncryptionContext:x": policy}}), &pairs);
            prop_assert_eq!(p, !n, "{} / {} with {:?} present={}", pos, neg, value, present);
        }
    }

    #[test]
    fn prop_epoch_and_iso_agree(secs in -5_000_000_000i64..10_000_000_000i64) {
        let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
        let (date, clock) = (format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
                             format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()));
        let iso = format!("{date}T{clock}Z");
        prop_assert_eq!(parse_date(&iso), parse_date(&secs.to_string()));
        prop_assert_eq!(parse_date(&iso), Some(i128::from(secs) * 1_000_000_000));
    }
}

#[test]
fn attestation_allows_never_match_without_a_recipient_whatever_the_operator() {
    let prod = hex::encode(prod_pcr0());
    // Each of these would be satisfied by the key's absence under plain IAM logic.
    for cond in [
        json!({"StringEqualsIfExists": {"kms:RecipientAttestation:ImageSha384": prod}}),
        json!({"StringNotEquals": {"kms:RecipientAttestation:ImageSha384": "00"}}),
        json!({"Null": {"kms:RecipientAttestation:PCR0": "true"}}),
        json!({"ForAllValues:StringEquals": {"kms:recipientattestation:pcr1": prod}}),
    ] {
        let p = doc(json!([{"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                            "Condition": cond.clone()}]));
        assert_eq!(eval(&p, &workload("kms:Decrypt")), Decision::NotAllowed, "{cond}");
    }
    // With a document, the operators work as IAM defines them.
    let p = doc(json!([{"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
                        "Condition": {"StringEqualsIfExists": {"kms:RecipientAttestation:ImageSha384": prod}}}]));
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&prod_pcr0()))), Decision::Allow);
    // Deny keeps IAM's logic: a negated operator denies requests without a document.
    let p = doc(json!([
        {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": prod}}}
    ]));
    assert_eq!(eval(&p, &workload("kms:Decrypt")), Decision::Deny);
    assert_eq!(eval(&p, &workload("kms:Decrypt").with_recipient_pcrs(&recipient(&prod_pcr0()))), Decision::Allow);
    // Statements without attestation conditions are untouched.
    let p = doc(json!([allow_all()]));
    assert_eq!(eval(&p, &workload("kms:Decrypt")), Decision::Allow);
}

/// Review item 14: a condition on a key this service never sets would silently never apply; such policies are refused,
/// naming the key. The keys the service does set are accepted.
#[test]
fn condition_keys_the_service_never_sets_are_refused() {
    let with_key = |op: &str, key: &str| {
        json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
            "Condition": {op: {key: "x"}}}]})
    };
    for key in [
        "aws:PrincipalTag/team",
        "aws:SourceVpce",
        "aws:SourceVpc",
        "aws:SourceIp",
        "aws:SourceArn",
        "aws:MultiFactorAuthPresent",
        "aws:RequestedRegion",
        "kms:ViaService",
        "kms:GrantIsForAWSResource",
        "kms:GrantOperations",
        "kms:ResourceAliases",
        "kms:RecipientAttestation:PCR32",
        "kms:RecipientAttestation:PCR01",
        "kms:RecipientAttestation:Other",
        "kms:EncryptionContext:",
        "aws:ResourceTag/",
        "a:b",
    ] {
        let Err(PolicyError::Malformed(m)) = Policy::parse(&with_key("StringEquals", key).to_string()) else {
            panic!("{key} accepted")
        };
        assert!(m.contains(key) && m.contains("not supported"), "{key}: {m}");
    }
    // A stored policy from before the check still reads (its condition on a key never set stays false).
    let old = with_key("StringEquals", "aws:SourceVpce");
    let stored = Policy::parse_stored(&old.to_string()).unwrap();
    assert_eq!(eval(&stored, &req("kms:Decrypt")), Decision::NotAllowed);
    for key in [
        "aws:PrincipalArn",
        "AWS:PRINCIPALARN",
        "aws:PrincipalAccount",
        "kms:CallerAccount",
        "aws:SecureTransport",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:PrincipalType",
        "aws:username",
        "aws:ResourceTag/team",
        "aws:RequestTag/team",
        "aws:TagKeys",
        "kms:EncryptionContext:tenant",
        "kms:EncryptionContextKeys",
        "kms:RequestAlias",
        "kms:EncryptionAlgorithm",
        "kms:ReEncryptOnSameKey",
        "kms:KeySpec",
        "kms:KeyUsage",
        "kms:KeyOrigin",
        "kms:MultiRegion",
        "kms:SigningAlgorithm",
        "kms:MessageType",
        "kms:MacAlgorithm",
        "kms:DataKeyPairSpec",
        "kms:KeyAgreementAlgorithm",
        "kms:WrappingAlgorithm",
        "kms:WrappingKeySpec",
        "kms:ExpirationModel",
        "kms:ValidTo",
        "kms:RotationPeriodInDays",
        "kms:ScheduleKeyDeletionPendingWindowInDays",
        "kms:BypassPolicyLockoutSafetyCheck",
        "kms:RecipientAttestation:ImageSha384",
        "kms:RecipientAttestation:PCR0",
        "kms:RecipientAttestation:PCR31",
        "enclavekms:RecipientServerNonce",
    ] {
        assert!(Policy::parse(&with_key("StringEquals", key).to_string()).is_ok(), "{key} refused");
    }
}

/// Review item 8: wildcard patterns in a policy are bounded (the matcher is linear, the bound keeps its constant).
#[test]
fn wildcard_patterns_are_bounded() {
    let long = format!("arn:aws:kms:*:{}", "a".repeat(wildcard::MAX_PATTERN_CHARS));
    let resource = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": long}]});
    assert!(matches!(Policy::parse(&resource.to_string()), Err(PolicyError::Malformed(m)) if m.contains("longer")));
    assert!(Policy::parse_stored(&resource.to_string()).is_ok(), "stored policies keep working");
    let like = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
        "Condition": {"StringLike": {"kms:EncryptionContext:a": "*".repeat(wildcard::MAX_PATTERN_CHARS + 1)}}}]});
    assert!(matches!(Policy::parse(&like.to_string()), Err(PolicyError::Malformed(m)) if m.contains("longer")));
    let ok = json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*",
        "Condition": {"StringLike": {"kms:EncryptionContext:a": "*".repeat(wildcard::MAX_PATTERN_CHARS)}}}]});
    assert!(Policy::parse(&ok.to_string()).is_ok());
}

/// Review item 15: a bound policy's ARN entries match only the principal with the id they were bound to.
#[test]
fn bound_arn_entries_need_the_same_unique_id() {
    let doc = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": alice()}, "Action": "kms:*",
        "Resource": "*"}]});
    let bound = parse(&doc).bind(Some(std::sync::Arc::new([(alice(), "AIDAFIRSTFIRSTFIRST01".to_owned())].into())));
    let mut first = req("kms:Decrypt");
    first.set_principal_id("AIDAFIRSTFIRSTFIRST01");
    let mut reborn = req("kms:Decrypt");
    reborn.set_principal_id("AIDASECONDSECONDSEC02");
    assert_eq!(eval(&bound, &first), Decision::Allow);
    assert_eq!(eval(&bound, &reborn), Decision::NotAllowed);
    assert_eq!(eval(&bound, &req("kms:Decrypt")), Decision::NotAllowed, "no id at all");
    assert_eq!(eval(&parse(&doc), &reborn), Decision::Allow, "unbound (legacy) policies compare ARNs alone");
    // NotPrincipal: the re-created principal is not the excluded one.
    let deny = json!({"Statement": [{"Effect": "Deny", "NotPrincipal": {"AWS": alice()}, "Action": "*",
        "Resource": "*"}]});
    let deny = parse(&deny).bind(Some(std::sync::Arc::new([(alice(), "AIDAFIRSTFIRSTFIRST01".to_owned())].into())));
    assert_eq!(eval(&deny, &first), Decision::NotAllowed);
    assert_eq!(eval(&deny, &reborn), Decision::Deny);
}

/// Review item 6: whether a key-policy Allow names the caller directly or only through its account.
#[test]
fn key_policy_allows_directly_or_through_the_account() {
    let by_account =
        parse(&json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCT}:root")},
        "Action": "kms:*", "Resource": "*"}]}));
    assert_eq!(evaluate_key_policy(&by_account, &req("kms:Encrypt")), (Decision::Allow, false));
    let by_arn = parse(&json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": alice()}, "Action": "kms:*",
        "Resource": "*"}]}));
    assert_eq!(evaluate_key_policy(&by_arn, &req("kms:Encrypt")), (Decision::Allow, true));
    let anyone =
        parse(&json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}));
    assert_eq!(evaluate_key_policy(&anyone, &req("kms:Encrypt")), (Decision::Allow, true));
    let both = parse(&json!({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ACCT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": alice()}, "Action": "kms:Decrypt", "Resource": "*"}]}));
    assert_eq!(evaluate_key_policy(&both, &req("kms:Encrypt")), (Decision::Allow, false));
    assert_eq!(evaluate_key_policy(&both, &req("kms:Decrypt")), (Decision::Allow, true));
    // Identity policies name no principal: every statement applies to the principal they are attached to.
    let identity =
        Policy::parse_identity(r#"{"Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]}"#)
            .unwrap();
    assert_eq!(eval(&identity, &req("kms:Encrypt")), Decision::Allow);
    assert_eq!(eval(&identity, &req("kms:Decrypt")), Decision::NotAllowed);
    assert!(
        Policy::parse_identity(
            &json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*",
        "Resource": "*"}]})
            .to_string()
        )
        .is_err()
    );
}
