//! The enclave's error type and its one mapping to AWS KMS error names and HTTP statuses.

use crate::net::sigv4::AuthError;

/// Everything a request can fail with. Messages are safe to show to the caller: they never carry key material,
/// plaintext or secrets. [`Error::Internal`] details go to the log only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is out of range or malformed.
    #[error("{0}")]
    Validation(String),
    /// The named key or alias does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The alias exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller may not do this (reserved alias names).
    #[error("{0}")]
    NotAuthorized(String),
    /// A paging marker we did not issue.
    #[error("Invalid marker")]
    InvalidMarker,
    /// Decrypt named a key other than the ciphertext's.
    #[error("The key ID in the request does not identify the KMS key used to encrypt the ciphertext.")]
    IncorrectKey,
    /// Ciphertext that does not open: tampered, truncated, wrong encryption context or not ours.
    #[error("The ciphertext is invalid or was not produced by this key service with this encryption context.")]
    InvalidCiphertext,
    /// Tags that break AWS's tag rules.
    #[error("{0}")]
    Tag(String),
    /// A valid AWS request this service does not support (yet).
    #[error("{0}")]
    UnsupportedOperation(String),
    /// The key is disabled.
    #[error("{0}")]
    Disabled(String),
    /// The key's state does not allow the operation.
    #[error("{0}")]
    KmsInvalidState(String),
    /// An import token that is not one we issued for this key.
    #[error("{0}")]
    InvalidImportToken(String),
    /// An import token past its 24 hours.
    #[error("{0}")]
    ExpiredImportToken(String),
    /// Key material that does not fit the key.
    #[error("{0}")]
    IncorrectKeyMaterial(String),
    /// A quota is exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// Too many requests at once (connections, body bytes in memory, RSA key generations): retry later.
    #[error("{0}")]
    Throttling(String),
    /// The key cannot be used this way.
    #[error("{0}")]
    InvalidKeyUsage(String),
    /// Verify: the signature does not verify.
    #[error("The signature is not valid for this message, key and signing algorithm.")]
    KmsInvalidSignature,
    /// VerifyMac: the MAC does not verify.
    #[error("The MAC is not valid for this message, key and MAC algorithm.")]
    KmsInvalidMac,
    /// A key policy that is not a valid policy document.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// DryRun: the call would have succeeded.
    #[error("The request would have succeeded, but the DryRun flag is set.")]
    DryRunOperation,
    /// The body is not JSON of the expected shape.
    #[error("{0}")]
    Serialization(String),
    /// The X-Amz-Target names no operation.
    #[error("{0}")]
    UnknownOperation(String),
    /// SigV4 failed.
    #[error("{}", .0.message())]
    Auth(AuthError),
    /// The key policy (or, for admin operations, the caller's role) does not allow the request.
    #[error("{0}")]
    AccessDenied(String),
    /// The access key id is unknown.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// A failure inside the service. The string is for the log, never for the caller.
    #[error("internal error")]
    Internal(String),
}

/// AWS error names this service emits. The `__type` on the wire is the variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    ValidationException,
    NotFoundException,
    AlreadyExistsException,
    NotAuthorizedException,
    InvalidMarkerException,
    IncorrectKeyException,
    InvalidCiphertextException,
    TagException,
    UnsupportedOperationException,
    DisabledException,
    KMSInvalidStateException,
    LimitExceededException,
    ThrottlingException,
    InvalidImportTokenException,
    ExpiredImportTokenException,
    IncorrectKeyMaterialException,
    InvalidKeyUsageException,
    KMSInvalidSignatureException,
    KMSInvalidMacException,
    MalformedPolicyDocumentException,
    DryRunOperationException,
    SerializationException,
    UnknownOperationException,
    MissingAuthenticationTokenException,
    IncompleteSignatureException,
    InvalidSignatureException,
    UnrecognizedClientException,
    AccessDeniedException,
    KMSInternalException,
}

impl ErrorCode {
    /// The `__type` string.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::ValidationException => "ValidationException",
            ErrorCode::NotFoundException => "NotFoundException",
            ErrorCode::AlreadyExistsException => "AlreadyExistsException",
            ErrorCode::NotAuthorizedException => "NotAuthorizedException",
            ErrorCode::InvalidMarkerException => "InvalidMarkerException",
            ErrorCode::IncorrectKeyException => "IncorrectKeyException",
            ErrorCode::InvalidCiphertextException => "InvalidCiphertextException",
            ErrorCode::TagException => "TagException",
            ErrorCode::UnsupportedOperationException => "UnsupportedOperationException",
            ErrorCode::DisabledException => "DisabledException",
            ErrorCode::KMSInvalidStateException => "KMSInvalidStateException",
            ErrorCode::LimitExceededException => "LimitExceededException",
            ErrorCode::ThrottlingException => "ThrottlingException",
            ErrorCode::InvalidImportTokenException => "InvalidImportTokenException",
            ErrorCode::ExpiredImportTokenException => "ExpiredImportTokenException",
            ErrorCode::IncorrectKeyMaterialException => "IncorrectKeyMaterialException",
            ErrorCode::InvalidKeyUsageException => "InvalidKeyUsageException",
            ErrorCode::KMSInvalidSignatureException => "KMSInvalidSignatureException",
            ErrorCode::KMSInvalidMacException => "KMSInvalidMacException",
            ErrorCode::MalformedPolicyDocumentException => "MalformedPolicyDocumentException",
            ErrorCode::DryRunOperationException => "DryRunOperationException",
            ErrorCode::SerializationException => "SerializationException",
            ErrorCode::UnknownOperationException => "UnknownOperationException",
            ErrorCode::MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            ErrorCode::IncompleteSignatureException => "IncompleteSignatureException",
            ErrorCode::InvalidSignatureException => "InvalidSignatureException",
            ErrorCode::UnrecognizedClientException => "UnrecognizedClientException",
            ErrorCode::AccessDeniedException => "AccessDeniedException",
            ErrorCode::KMSInternalException => "KMSInternalException",
        }
    }

    /// The HTTP status AWS KMS answers with.
    pub fn status(self) -> u16 {
        match self {
            // AWS's API reference once listed 412 for DryRunOperationException; the service sends 400, as botocore's
            // model (no `fault`) and every SDK expect. Only faults are 5xx.
            ErrorCode::KMSInternalException => 500,
            _ => 400,
        }
    }
}

impl Error {
    /// The one mapping from error to wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Validation(_) => ErrorCode::ValidationException,
            Error::NotFound(_) => ErrorCode::NotFoundException,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExistsException,
            Error::NotAuthorized(_) => ErrorCode::NotAuthorizedException,
            Error::InvalidMarker => ErrorCode::InvalidMarkerException,
            Error::IncorrectKey => ErrorCode::IncorrectKeyException,
            Error::InvalidCiphertext => ErrorCode::InvalidCiphertextException,
            Error::Tag(_) => ErrorCode::TagException,
            Error::UnsupportedOperation(_) => ErrorCode::UnsupportedOperationException,
            Error::Disabled(_) => ErrorCode::DisabledException,
            Error::KmsInvalidState(_) => ErrorCode::KMSInvalidStateException,
            Error::LimitExceeded(_) => ErrorCode::LimitExceededException,
            Error::Throttling(_) => ErrorCode::ThrottlingException,
            Error::InvalidImportToken(_) => ErrorCode::InvalidImportTokenException,
            Error::ExpiredImportToken(_) => ErrorCode::ExpiredImportTokenException,
            Error::IncorrectKeyMaterial(_) => ErrorCode::IncorrectKeyMaterialException,
            Error::InvalidKeyUsage(_) => ErrorCode::InvalidKeyUsageException,
            Error::KmsInvalidSignature => ErrorCode::KMSInvalidSignatureException,
            Error::KmsInvalidMac => ErrorCode::KMSInvalidMacException,
            Error::MalformedPolicyDocument(_) => ErrorCode::MalformedPolicyDocumentException,
            Error::DryRunOperation => ErrorCode::DryRunOperationException,
            Error::Serialization(_) => ErrorCode::SerializationException,
            Error::UnknownOperation(_) => ErrorCode::UnknownOperationException,
            Error::Auth(a) => match a.aws_code() {
                "MissingAuthenticationTokenException" => ErrorCode::MissingAuthenticationTokenException,
                "IncompleteSignatureException" => ErrorCode::IncompleteSignatureException,
                _ => ErrorCode::InvalidSignatureException,
            },
            Error::UnrecognizedClient => ErrorCode::UnrecognizedClientException,
            Error::AccessDenied(_) => ErrorCode::AccessDeniedException,
            Error::Internal(_) => ErrorCode::KMSInternalException,
        }
    }

    /// The message shown to the caller. 5xx bodies are generic.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "An internal error occurred. Try again later.".to_owned(),
            other => other.to_string(),
        }
    }

    /// The JSON error body. AWS sends InvalidCiphertextException, KMSInvalidSignatureException and
    /// KMSInvalidMacException with no message at all (`{"__type":"InvalidCiphertextException"}`), so they carry none.
    pub fn body(&self) -> serde_json::Value {
        let code = self.code();
        match self {
            Error::InvalidCiphertext | Error::KmsInvalidSignature | Error::KmsInvalidMac => {
                serde_json::json!({"__type": code.name()})
            }
            _ => serde_json::json!({"__type": code.name(), "message": self.public_message()}),
        }
    }

    /// Shorthand for a missing required member, worded as AWS words it.
    pub fn missing(member: &str) -> Error {
        Error::Validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    }
}

impl From<crate::state::store::StoreError> for Error {
    fn from(e: crate::state::store::StoreError) -> Error {
        match e {
            crate::state::store::StoreError::Full => Error::LimitExceeded(
                "This service cannot record more deletions until it restarts; the deletion was not made.".into(),
            ),
            e => Error::Internal(format!("storage: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_private() {
        let e = Error::Internal("path /secret/thing failed".into());
        assert_eq!(e.code().status(), 500);
        assert!(!e.public_message().contains("/secret/thing"));
    }

    #[test]
    fn verification_failures_carry_no_message_as_aws() {
        for e in [Error::InvalidCiphertext, Error::KmsInvalidSignature, Error::KmsInvalidMac] {
            let body = e.body();
            assert_eq!(body.get("__type").and_then(|v| v.as_str()), Some(e.code().name()));
            assert!(body.get("message").is_none(), "{body}");
        }
        let body = Error::IncorrectKey.body();
        assert!(body.get("message").and_then(|v| v.as_str()).is_some_and(|m| !m.is_empty()));
    }

    #[test]
    fn client_errors_are_400() {
        for e in [
            Error::Validation("x".into()),
            Error::NotFound("x".into()),
            Error::InvalidCiphertext,
            Error::IncorrectKey,
            Error::UnrecognizedClient,
            Error::Throttling("x".into()),
            Error::Auth(AuthError::MissingAuthentication),
        ] {
            assert_eq!(e.code().status(), 400, "{e:?}");
        }
        // AWS answers a DryRun with 400, not the 412 its reference once listed.
        assert_eq!(Error::DryRunOperation.code().status(), 400);
        assert_eq!(Error::Auth(AuthError::BadSignature).code(), ErrorCode::InvalidSignatureException);
        assert_eq!(
            Error::Auth(AuthError::MissingAuthentication).code(),
            ErrorCode::MissingAuthenticationTokenException
        );
    }
}
