//! docs/clients.md's Rust snippet: the AWS SDK for Rust against enclave-kms, trusting DIR/ca.pem.

use aws_sdk_kms::primitives::Blob;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // aws-config does not read AWS_CA_BUNDLE: trust the service's CA explicitly (endpoint, region and credentials
    // still come from the env file).
    let ca = std::fs::read(std::env::var("AWS_CA_BUNDLE")?)?;
    let trust = TrustStore::empty().with_native_roots(false).with_pem_certificate(ca.as_slice());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(TlsContext::builder().with_trust_store(trust).build()?)
        .build_https();
    let config = aws_config::from_env().http_client(http).load().await;
    let kms = aws_sdk_kms::Client::new(&config);

    let key = kms.create_key().description("from Rust").send().await?;
    let key_id = key.key_metadata().map(|m| m.key_id().to_owned()).ok_or("no KeyMetadata")?;
    let sealed = kms.encrypt().key_id(&key_id).plaintext(Blob::new("hello from rust")).send().await?;
    let blob = sealed.ciphertext_blob().ok_or("no CiphertextBlob")?.clone();
    let opened = kms.decrypt().ciphertext_blob(blob).send().await?;
    let plain = opened.plaintext().ok_or("no Plaintext")?;
    println!("{}", String::from_utf8_lossy(plain.as_ref()));
    Ok(())
}
