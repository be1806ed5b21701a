//! AWS managed keys: the predefined `alias/aws/SERVICE` aliases, each with its key created on first use.
//!
//! As AWS KMS does, naming a predefined alias (DescribeKey, Encrypt, ... through an alias) creates the AWS managed
//! key for it when there is none yet: a symmetric key with KeyManager AWS, AWS's managed-key policy (its metadata
//! statement: see [`policy`]) and yearly automatic rotation. Callers cannot delete, disable, re-policy, tag or rotate it: the policy allows none of those, so they get
//! AWS's AccessDeniedException ("no resource-based policy allows ..."), and `alias/aws/` names cannot be created,
//! retargeted or deleted (NotAuthorizedException, state/aliases.rs).

use crate::error::Error;
use crate::service::Service;
use crate::state::keys::{Key, KeyMeta, KeySpec, KeyState, KeyUsage, Origin};
use std::sync::Arc;

/// The predefined AWS managed key aliases served: (alias suffix, what the key protects).
/// Other `alias/aws/...` names name nothing (NotFoundException), as an undefined one does in AWS.
const SERVICES: &[(&str, &str)] = &[
    ("acm", "ACM private keys"),
    ("backup", "backups"),
    ("dynamodb", "DynamoDB tables"),
    ("ebs", "EBS volumes"),
    ("ecr", "ECR repositories"),
    ("elasticfilesystem", "EFS file systems"),
    ("es", "OpenSearch domains"),
    ("glue", "Glue data"),
    ("kinesis", "Kinesis data"),
    ("lambda", "Lambda functions"),
    ("rds", "RDS databases"),
    ("redshift", "Redshift clusters"),
    ("s3", "S3 objects"),
    ("secretsmanager", "secrets"),
    ("sns", "SNS data"),
    ("sqs", "SQS messages"),
    ("ssm", "SSM parameters"),
];

/// AWS rotates AWS managed keys every year.
const ROTATION_DAYS: u32 = 365;

/// One managed key is created at a time, so two first uses of an alias do not make two keys.
static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the key of a predefined AWS managed key alias protects (for its description).
pub fn predefined(alias: &str) -> Option<&'static str> {
    let service = alias.strip_prefix("alias/aws/")?;
    SERVICES.iter().find(|(s, _)| *s == service).map(|(_, what)| *what)
}

/// The key policy of an AWS managed key: AWS's statement that gives the account the key's metadata
/// (Describe*, Get*, List*). AWS's other statement allows use only through the service (`kms:ViaService`); no request
/// reaches this service through an AWS service, and its policy engine refuses a condition key that is never set, so
/// that statement is left out: the effect is AWS's for a direct caller (no cryptographic use, no management).
pub fn policy(account: &str, service: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": format!("auto-{service}-1"),
        "Statement": [
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                "Resource": "*"
            }
        ]
    })
    .to_string()
}

/// The AWS managed key of predefined alias `alias`, created now if it has none. `None` when `alias` is not a
/// predefined one. Created keys are authorized afterwards like any other, by their own policy.
pub async fn get_or_create(svc: &Service, alias: &str) -> Result<Option<Arc<Key>>, Error> {
    let Some(what) = predefined(alias) else { return Ok(None) };
    let _one = CREATING.lock().await;
    if let Some(existing) = svc.aliases.get(alias).await? {
        // Created by a concurrent first use while this one waited.
        return svc.keys.get(&existing.target_key_id).await;
    }
    let service = alias.trim_start_matches("alias/aws/");
    let text = policy(&svc.scope.account_id, service);
    let parsed = crate::access::policy::Policy::parse(&text)?;
    let bindings = svc.principals.bindings(&parsed).await?;
    let (key_id, _) = crate::state::ids::new_key_id()?;
    let now = svc.clock.now_secs();
    let meta = KeyMeta {
        key_id,
        creation_date: now,
        description: format!("Default key that protects my {what} when no other key is defined"),
        key_usage: KeyUsage::EncryptDecrypt,
        key_spec: KeySpec::SymmetricDefault,
        key_state: KeyState::Enabled,
        origin: Origin::AwsKms,
        tags: Vec::new(),
        policy: crate::state::keys::shared_policy(&text),
        deletion_date: None,
        pending_window_days: None,
        rotation_period_days: Some(ROTATION_DAYS),
        next_rotation_date: Some(now + f64::from(ROTATION_DAYS) * 86_400.0),
        rotations: Vec::new(),
        imported: None,
        policy_principals: Some(bindings),
        aws_managed: true,
    };
    let key = svc.keys.create(meta).await?;
    svc.aliases.create(alias, &key.meta.key_id, now).await?;
    tracing::info!(alias, key_id = %key.meta.key_id, "AWS managed key created on first use");
    Ok(Some(key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_predefined_aliases_are_managed() {
        assert_eq!(predefined("alias/aws/s3"), Some("S3 objects"));
        assert_eq!(predefined("alias/aws/ebs"), Some("EBS volumes"));
        assert_eq!(predefined("alias/aws/nonesuch"), None);
        assert_eq!(predefined("alias/s3"), None);
        assert_eq!(predefined("alias/aws/"), None);
    }

    #[test]
    fn managed_policy_parses_and_names_the_account() {
        let text = policy("111122223333", "s3");
        crate::access::policy::Policy::parse(&text).unwrap();
        assert!(text.contains("auto-s3-1") && text.contains("arn:aws:iam::111122223333:root"));
        assert!(!text.contains("kms:*") && !text.contains("ScheduleKeyDeletion") && !text.contains("PutKeyPolicy"));
    }
}
