"""Asymmetric and HMAC keys against kms-host dev, checked with an independent implementation (Python's
`cryptography`, OpenSSL underneath): Sign/Verify for every key spec and algorithm, RSA encryption, data key pairs,
ECDH, MACs, and every error path."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from kmstest import assert_client_error

RSA_SPECS = ["RSA_2048", "RSA_3072", "RSA_4096"]
RSA_SIGNING = [
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
]
ECC_SIGNING = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "ECC_NIST_P384": "ECDSA_SHA_384",
    "ECC_NIST_P521": "ECDSA_SHA_512",
    "ECC_SECG_P256K1": "ECDSA_SHA_256",
}
CURVES = {
    "ECC_NIST_P256": ec.SECP256R1(),
    "ECC_NIST_P384": ec.SECP384R1(),
    "ECC_NIST_P521": ec.SECP521R1(),
    "ECC_SECG_P256K1": ec.SECP256K1(),
}
HMAC_SPECS = {"HMAC_224": "HMAC_SHA_224", "HMAC_256": "HMAC_SHA_256", "HMAC_384": "HMAC_SHA_384",
              "HMAC_512": "HMAC_SHA_512"}
OAEP_MAX = {("RSA_2048", "RSAES_OAEP_SHA_1"): 214, ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
            ("RSA_3072", "RSAES_OAEP_SHA_1"): 342, ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
            ("RSA_4096", "RSAES_OAEP_SHA_1"): 470, ("RSA_4096", "RSAES_OAEP_SHA_256"): 446}


def hash_of(alg: str):
    return {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[-3:]]


def independent_verify(public_der: bytes, alg: str, message: bytes, signature: bytes, prehashed=False) -> None:
    """Raises InvalidSignature unless `signature` verifies with OpenSSL (through `cryptography`)."""
    pub = serialization.load_der_public_key(public_der)
    h = hash_of(alg)
    algo = utils.Prehashed(h) if prehashed else h
    if alg.startswith("ECDSA"):
        pub.verify(signature, message, ec.ECDSA(algo))
    elif alg.startswith("RSASSA_PSS"):
        pub.verify(signature, message, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), algo)
    else:
        pub.verify(signature, message, padding.PKCS1v15(), algo)


def independent_sign(private, alg: str, message: bytes) -> bytes:
    h = hash_of(alg)
    if alg.startswith("ECDSA"):
        return private.sign(message, ec.ECDSA(h))
    if alg.startswith("RSASSA_PSS"):
        return private.sign(message, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    return private.sign(message, padding.PKCS1v15(), h)


_keys: dict = {}


def make_key(kms, spec: str, usage: str) -> dict:
    """One key per (spec, usage) for the module (RSA-4096 generation is slow)."""
    if (spec, usage) not in _keys:
        _keys[(spec, usage)] = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    return _keys[(spec, usage)]


@pytest.fixture(scope="module", autouse=True)
def _fresh_key_cache():
    _keys.clear()
    yield
    _keys.clear()


# ---- CreateKey / DescribeKey / GetPublicKey -------------------------------------------------------------------


@pytest.mark.parametrize("spec", RSA_SPECS + list(ECC_SIGNING))
def test_sign_verify_every_spec_and_algorithm(kms, spec):
    meta = make_key(kms, spec, "SIGN_VERIFY")
    algs = RSA_SIGNING if spec.startswith("RSA") else [ECC_SIGNING[spec]]
    assert meta["KeySpec"] == spec and meta["KeyUsage"] == "SIGN_VERIFY"
    assert meta["SigningAlgorithms"] == algs
    assert "EncryptionAlgorithms" not in meta
    pub = kms.get_public_key(KeyId=meta["KeyId"])
    assert pub["KeySpec"] == spec and pub["KeyUsage"] == "SIGN_VERIFY" and pub["SigningAlgorithms"] == algs
    assert pub["KeyId"] == meta["Arn"]
    der = pub["PublicKey"]
    loaded = serialization.load_der_public_key(der)
    if spec.startswith("RSA"):
        assert loaded.key_size == int(spec[4:])
    else:
        assert loaded.curve.name == CURVES[spec].name
    for alg in algs:
        message = os.urandom(300)
        out = kms.sign(KeyId=meta["KeyId"], Message=message, SigningAlgorithm=alg)
        assert out["SigningAlgorithm"] == alg and out["KeyId"] == meta["Arn"]
        independent_verify(der, alg, message, out["Signature"])
        # DIGEST: the caller's hash; the signature is over the same message.
        digest = hashlib.new("sha" + alg[-3:], message).digest()
        out2 = kms.sign(KeyId=meta["KeyId"], Message=digest, MessageType="DIGEST", SigningAlgorithm=alg)
        independent_verify(der, alg, message, out2["Signature"])
        independent_verify(der, alg, digest, out2["Signature"], prehashed=True)
        # Verify accepts ours and the independent implementation's signatures.
        assert kms.verify(KeyId=meta["KeyId"], Message=message, Signature=out["Signature"],
                          SigningAlgorithm=alg)["SignatureValid"] is True
        assert kms.verify(KeyId=meta["KeyId"], Message=digest, MessageType="DIGEST", Signature=out["Signature"],
                          SigningAlgorithm=alg)["SignatureValid"] is True
        assert_client_error("KMSInvalidSignatureException", kms.verify, KeyId=meta["KeyId"],
                            Message=message + b"!", Signature=out["Signature"], SigningAlgorithm=alg)


def test_sign_through_the_cli_verifies_with_openssl(server, kms, tmp_path):
    meta = make_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    msg = tmp_path / "msg.bin"
    msg.write_bytes(b"signed by the CLI")
    out = server.aws_ok("sign", "--key-id", meta["KeyId"], "--message", f"fileb://{msg}",
                        "--signing-algorithm", "ECDSA_SHA_256")
    pub = server.aws_ok("get-public-key", "--key-id", meta["KeyId"])
    independent_verify(base64.b64decode(pub["PublicKey"]), "ECDSA_SHA_256", b"signed by the CLI",
                       base64.b64decode(out["Signature"]))


@pytest.mark.parametrize("spec", RSA_SPECS)
def test_rsa_encryption_from_outside_decrypts(kms, spec):
    meta = make_key(kms, spec, "ENCRYPT_DECRYPT")
    assert meta["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    assert "SigningAlgorithms" not in meta
    pub = serialization.load_der_public_key(kms.get_public_key(KeyId=meta["KeyId"])["PublicKey"])
    for alg, h in (("RSAES_OAEP_SHA_1", hashes.SHA1()), ("RSAES_OAEP_SHA_256", hashes.SHA256())):
        limit = OAEP_MAX[(spec, alg)]
        plaintext = os.urandom(limit)
        ct = pub.encrypt(plaintext, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
        out = kms.decrypt(KeyId=meta["KeyId"], CiphertextBlob=ct, EncryptionAlgorithm=alg)
        assert out["Plaintext"] == plaintext and out["EncryptionAlgorithm"] == alg and out["KeyId"] == meta["Arn"]
        # Encrypt through the service, decrypt through it and check the length is the modulus'.
        enc = kms.encrypt(KeyId=meta["KeyId"], Plaintext=plaintext, EncryptionAlgorithm=alg)
        assert len(enc["CiphertextBlob"]) == int(spec[4:]) // 8
        assert kms.decrypt(KeyId=meta["KeyId"], CiphertextBlob=enc["CiphertextBlob"],
                           EncryptionAlgorithm=alg)["Plaintext"] == plaintext
        assert_client_error("ValidationException", kms.encrypt, KeyId=meta["KeyId"],
                            Plaintext=os.urandom(limit + 1), EncryptionAlgorithm=alg)
    # The wrong algorithm, a tampered ciphertext: InvalidCiphertextException.
    ct = pub.encrypt(b"x", padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    assert_client_error("InvalidCiphertextException", kms.decrypt, KeyId=meta["KeyId"], CiphertextBlob=ct,
                        EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    bad = bytes([ct[0] ^ 1]) + ct[1:]
    assert_client_error("InvalidCiphertextException", kms.decrypt, KeyId=meta["KeyId"], CiphertextBlob=bad,
                        EncryptionAlgorithm="RSAES_OAEP_SHA_1")


def test_rsa_encryption_rules(kms):
    meta = make_key(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    ct = kms.encrypt(KeyId=meta["KeyId"], Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    # Decrypt of an asymmetric ciphertext needs the KeyId and the algorithm.
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=ct)
    assert_client_error("InvalidKeyUsageException", kms.decrypt, KeyId=meta["KeyId"], CiphertextBlob=ct)
    assert_client_error("ValidationException", kms.decrypt, CiphertextBlob=ct,
                        EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    # Encrypt needs an RSA algorithm; no encryption context with asymmetric keys.
    assert_client_error("InvalidKeyUsageException", kms.encrypt, KeyId=meta["KeyId"], Plaintext=b"p")
    assert_client_error("ValidationException", kms.encrypt, KeyId=meta["KeyId"], Plaintext=b"p",
                        EncryptionAlgorithm="RSAES_OAEP_SHA_256", EncryptionContext={"a": "b"})
    # RSA algorithms on a symmetric key, symmetric operations on an RSA key.
    sym = kms.create_key()["KeyMetadata"]
    assert_client_error("InvalidKeyUsageException", kms.encrypt, KeyId=sym["KeyId"], Plaintext=b"p",
                        EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert_client_error("InvalidKeyUsageException", kms.decrypt, KeyId=sym["KeyId"], CiphertextBlob=ct,
                        EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert_client_error("InvalidKeyUsageException", kms.generate_data_key, KeyId=meta["KeyId"], KeySpec="AES_256")
    assert_client_error("InvalidKeyUsageException", kms.sign, KeyId=meta["KeyId"], Message=b"m",
                        SigningAlgorithm="RSASSA_PSS_SHA_256")


@pytest.mark.parametrize("spec", ["RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
                                  "ECC_NIST_P521", "ECC_SECG_P256K1"])
def test_generate_data_key_pair(kms, spec):
    wrapping = make_key(kms, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    ctx = {"purpose": "pair"}
    out = kms.generate_data_key_pair(KeyId=wrapping["KeyId"], KeyPairSpec=spec, EncryptionContext=ctx)
    assert out["KeyPairSpec"] == spec and out["KeyId"] == wrapping["Arn"]
    private = serialization.load_der_private_key(out["PrivateKeyPlaintext"], password=None)
    public_der = out["PublicKey"]
    assert private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo) == public_der
    alg = "RSASSA_PSS_SHA_256" if spec.startswith("RSA") else ECC_SIGNING[spec]
    independent_verify(public_der, alg, b"made outside", independent_sign(private, alg, b"made outside"))
    # The wrapped private key decrypts through Decrypt (with the same context only).
    assert kms.decrypt(CiphertextBlob=out["PrivateKeyCiphertextBlob"],
                       EncryptionContext=ctx)["Plaintext"] == out["PrivateKeyPlaintext"]
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=out["PrivateKeyCiphertextBlob"])
    # WithoutPlaintext: no private key in the clear, the blob decrypts to a key matching the public key.
    wp = kms.generate_data_key_pair_without_plaintext(KeyId=wrapping["KeyId"], KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in wp
    der = kms.decrypt(CiphertextBlob=wp["PrivateKeyCiphertextBlob"])["Plaintext"]
    priv2 = serialization.load_der_private_key(der, password=None)
    assert priv2.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo) == wp["PublicKey"]


def test_generate_data_key_pair_errors(kms):
    wrapping = make_key(kms, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert_client_error("ValidationException", kms.generate_data_key_pair, KeyId=wrapping["KeyId"],
                        KeyPairSpec="RSA_1024")
    signing = make_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    assert_client_error("InvalidKeyUsageException", kms.generate_data_key_pair, KeyId=signing["KeyId"],
                        KeyPairSpec="ECC_NIST_P256")
    rsa_enc = make_key(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    assert_client_error("InvalidKeyUsageException", kms.generate_data_key_pair_without_plaintext,
                        KeyId=rsa_enc["KeyId"], KeyPairSpec="ECC_NIST_P256")


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"])
def test_derive_shared_secret_matches_independent_ecdh(kms, spec):
    meta = make_key(kms, spec, "KEY_AGREEMENT")
    assert meta["KeyAgreementAlgorithms"] == ["ECDH"]
    assert "SigningAlgorithms" not in meta and "EncryptionAlgorithms" not in meta
    pub = kms.get_public_key(KeyId=meta["KeyId"])
    assert pub["KeyAgreementAlgorithms"] == ["ECDH"] and pub["KeyUsage"] == "KEY_AGREEMENT"
    ours = serialization.load_der_public_key(pub["PublicKey"])
    peer = ec.generate_private_key(CURVES[spec])
    peer_der = peer.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    out = kms.derive_shared_secret(KeyId=meta["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=peer_der)
    assert out["SharedSecret"] == peer.exchange(ec.ECDH(), ours)
    assert out["KeyAgreementAlgorithm"] == "ECDH" and out["KeyOrigin"] == "AWS_KMS" and out["KeyId"] == meta["Arn"]
    # Another curve, a bare point, garbage: ValidationException.
    other = ec.generate_private_key(ec.SECP256K1() if spec != "ECC_NIST_P384" else ec.SECP256R1()).public_key()
    for bad in (other.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
                peer.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint),
                b"\x30\x03\x02\x01\x01"):
        assert_client_error("ValidationException", kms.derive_shared_secret, KeyId=meta["KeyId"],
                            KeyAgreementAlgorithm="ECDH", PublicKey=bad)


def test_derive_shared_secret_usage(kms):
    signing = make_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    peer = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert_client_error("InvalidKeyUsageException", kms.derive_shared_secret, KeyId=signing["KeyId"],
                        KeyAgreementAlgorithm="ECDH", PublicKey=peer)
    agreement = make_key(kms, "ECC_NIST_P256", "KEY_AGREEMENT")
    assert_client_error("InvalidKeyUsageException", kms.sign, KeyId=agreement["KeyId"], Message=b"m",
                        SigningAlgorithm="ECDSA_SHA_256")


@pytest.mark.parametrize("spec", list(HMAC_SPECS))
def test_hmac(kms, spec):
    meta = make_key(kms, spec, "GENERATE_VERIFY_MAC")
    alg = HMAC_SPECS[spec]
    assert meta["MacAlgorithms"] == [alg] and meta["KeyUsage"] == "GENERATE_VERIFY_MAC"
    assert "EncryptionAlgorithms" not in meta
    out = kms.generate_mac(KeyId=meta["KeyId"], Message=b"hello", MacAlgorithm=alg)
    assert out["MacAlgorithm"] == alg and out["KeyId"] == meta["Arn"]
    assert len(out["Mac"]) == int(alg[-3:]) // 8
    assert kms.generate_mac(KeyId=meta["KeyId"], Message=b"hello", MacAlgorithm=alg)["Mac"] == out["Mac"]
    assert kms.verify_mac(KeyId=meta["KeyId"], Message=b"hello", MacAlgorithm=alg, Mac=out["Mac"])["MacValid"]
    assert_client_error("KMSInvalidMacException", kms.verify_mac, KeyId=meta["KeyId"], Message=b"hellp",
                        MacAlgorithm=alg, Mac=out["Mac"])
    assert_client_error("KMSInvalidMacException", kms.verify_mac, KeyId=meta["KeyId"], Message=b"hello",
                        MacAlgorithm=alg, Mac=out["Mac"][:-1])
    other = "HMAC_SHA_256" if alg != "HMAC_SHA_256" else "HMAC_SHA_512"
    assert_client_error("InvalidKeyUsageException", kms.generate_mac, KeyId=meta["KeyId"], Message=b"m",
                        MacAlgorithm=other)
    assert_client_error("UnsupportedOperationException", kms.get_public_key, KeyId=meta["KeyId"])
    assert_client_error("InvalidKeyUsageException", kms.encrypt, KeyId=meta["KeyId"], Plaintext=b"p")
    assert_client_error("InvalidKeyUsageException", kms.sign, KeyId=meta["KeyId"], Message=b"m",
                        SigningAlgorithm="ECDSA_SHA_256")


def test_mac_with_other_keys_is_invalid_usage(kms):
    sym = make_key(kms, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert_client_error("InvalidKeyUsageException", kms.generate_mac, KeyId=sym["KeyId"], Message=b"m",
                        MacAlgorithm="HMAC_SHA_256")
    assert_client_error("UnsupportedOperationException", kms.get_public_key, KeyId=sym["KeyId"])


def test_sign_validation(kms):
    meta = make_key(kms, "ECC_NIST_P384", "SIGN_VERIFY")
    kid = meta["KeyId"]
    assert_client_error("ValidationException", kms.sign, KeyId=kid, Message=b"\x00" * 47, MessageType="DIGEST",
                        SigningAlgorithm="ECDSA_SHA_384")
    assert_client_error("ValidationException", kms.sign, KeyId=kid, Message=b"\x00" * 4097,
                        SigningAlgorithm="ECDSA_SHA_384")
    assert kms.sign(KeyId=kid, Message=b"\x00" * 4096, SigningAlgorithm="ECDSA_SHA_384")["Signature"]
    assert_client_error("InvalidKeyUsageException", kms.sign, KeyId=kid, Message=b"m",
                        SigningAlgorithm="ECDSA_SHA_256")
    assert_client_error("InvalidKeyUsageException", kms.encrypt, KeyId=kid, Plaintext=b"p",
                        EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert_client_error("InvalidKeyUsageException", kms.verify_mac, KeyId=kid, Message=b"m", Mac=b"x" * 32,
                        MacAlgorithm="HMAC_SHA_256")
    assert_client_error("KMSInvalidSignatureException", kms.verify, KeyId=kid, Message=b"m", Signature=b"\x30\x00",
                        SigningAlgorithm="ECDSA_SHA_384")


def test_create_key_pairs_aws_refuses(kms):
    for spec, usage in (("ECC_NIST_P256", "ENCRYPT_DECRYPT"), ("ECC_SECG_P256K1", "KEY_AGREEMENT"),
                        ("RSA_2048", "KEY_AGREEMENT"), ("HMAC_256", "SIGN_VERIFY"), ("RSA_2048", "GENERATE_VERIFY_MAC"),
                        ("SYMMETRIC_DEFAULT", "SIGN_VERIFY")):
        assert_client_error("ValidationException", kms.create_key, KeySpec=spec, KeyUsage=usage)
    # ECC and HMAC keys have no default usage that fits.
    assert_client_error("ValidationException", kms.create_key, KeySpec="ECC_NIST_P256")
    # RSA defaults to ENCRYPT_DECRYPT, as AWS does.
    assert kms.create_key(KeySpec="RSA_2048")["KeyMetadata"]["KeyUsage"] == "ENCRYPT_DECRYPT"


def test_no_rotation_of_asymmetric_or_hmac_keys(kms):
    for spec, usage in (("ECC_NIST_P256", "SIGN_VERIFY"), ("HMAC_256", "GENERATE_VERIFY_MAC")):
        meta = make_key(kms, spec, usage)
        assert_client_error("UnsupportedOperationException", kms.enable_key_rotation, KeyId=meta["KeyId"])
        assert_client_error("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=meta["KeyId"])


def test_disabled_keys_refuse(kms):
    for spec, usage in (("ECC_NIST_P256", "SIGN_VERIFY"), ("HMAC_256", "GENERATE_VERIFY_MAC")):
        meta = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        kms.disable_key(KeyId=meta["KeyId"])
        if usage == "SIGN_VERIFY":
            assert_client_error("DisabledException", kms.sign, KeyId=meta["KeyId"], Message=b"m",
                                SigningAlgorithm="ECDSA_SHA_256")
            assert_client_error("DisabledException", kms.get_public_key, KeyId=meta["KeyId"])
        else:
            assert_client_error("DisabledException", kms.generate_mac, KeyId=meta["KeyId"], Message=b"m",
                                MacAlgorithm="HMAC_SHA_256")
        kms.enable_key(KeyId=meta["KeyId"])
        if usage == "SIGN_VERIFY":
            assert kms.sign(KeyId=meta["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]


def test_keys_survive_restart(fresh_server):
    kms = fresh_server.client()
    sig_key = kms.create_key(KeySpec="ECC_SECG_P256K1", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    mac_key = kms.create_key(KeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    pub = kms.get_public_key(KeyId=sig_key["KeyId"])["PublicKey"]
    mac = kms.generate_mac(KeyId=mac_key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_384")["Mac"]
    fresh_server.restart()
    kms = fresh_server.client()
    assert kms.get_public_key(KeyId=sig_key["KeyId"])["PublicKey"] == pub
    sig = kms.sign(KeyId=sig_key["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    independent_verify(pub, "ECDSA_SHA_256", b"m", sig)
    assert kms.verify_mac(KeyId=mac_key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_384", Mac=mac)["MacValid"]


# ---- key policies: the condition keys of these operations --------------------------------------------------------


def test_condition_keys_of_asymmetric_operations(server, kms):
    from test_access import key_with, make_principal
    from test_protocol import RawClient
    from kmstest import unique

    account = kms.create_key(Description="probe")["KeyMetadata"]["AWSAccountId"]
    alice = make_principal(RawClient(server), server, f"arn:aws:iam::{account}:user/alice-{unique('a')}")

    def key_for(action, condition, **create):
        allow = {"Effect": "Allow", "Principal": {"AWS": alice.arn}, "Action": action, "Resource": "*",
                 "Condition": condition}
        return key_with(kms, account, allow, **create)

    def denied(call, **kwargs):
        assert_client_error("AccessDeniedException", call, **kwargs)

    # kms:MessageType and kms:SigningAlgorithm on Sign and Verify.
    kid = key_for(["kms:Sign", "kms:Verify"], {"StringEquals": {"kms:MessageType": "RAW",
                                                                 "kms:SigningAlgorithm": "RSASSA_PSS_SHA_256"}},
                  KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    sig = alice.kms.sign(KeyId=kid, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    assert alice.kms.verify(KeyId=kid, Message=b"m", Signature=sig,
                            SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"]
    denied(alice.kms.sign, KeyId=kid, Message=hashlib.sha256(b"m").digest(), MessageType="DIGEST",
           SigningAlgorithm="RSASSA_PSS_SHA_256")
    denied(alice.kms.sign, KeyId=kid, Message=b"m", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    denied(alice.kms.get_public_key, KeyId=kid)
    # kms:EncryptionAlgorithm on Encrypt and Decrypt with RSA keys.
    kid = key_for(["kms:Encrypt", "kms:Decrypt"], {"StringEquals": {"kms:EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}},
                  KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT")
    ct = alice.kms.encrypt(KeyId=kid, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256")["CiphertextBlob"]
    assert alice.kms.decrypt(KeyId=kid, CiphertextBlob=ct, EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"p"
    denied(alice.kms.encrypt, KeyId=kid, Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_1")
    # kms:MacAlgorithm on GenerateMac and VerifyMac.
    kid = key_for(["kms:GenerateMac", "kms:VerifyMac"], {"StringEquals": {"kms:MacAlgorithm": "HMAC_SHA_256"}},
                  KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    mac = alice.kms.generate_mac(KeyId=kid, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert alice.kms.verify_mac(KeyId=kid, Message=b"m", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"]
    denied(alice.kms.generate_mac, KeyId=kid, Message=b"m", MacAlgorithm="HMAC_SHA_512")
    # kms:DataKeyPairSpec on GenerateDataKeyPair (and its own action for WithoutPlaintext).
    kid = key_for("kms:GenerateDataKeyPair", {"StringEquals": {"kms:DataKeyPairSpec": "ECC_NIST_P256"}})
    assert alice.kms.generate_data_key_pair(KeyId=kid, KeyPairSpec="ECC_NIST_P256")["PrivateKeyPlaintext"]
    denied(alice.kms.generate_data_key_pair, KeyId=kid, KeyPairSpec="RSA_2048")
    denied(alice.kms.generate_data_key_pair_without_plaintext, KeyId=kid, KeyPairSpec="ECC_NIST_P256")
    # kms:KeyAgreementAlgorithm on DeriveSharedSecret; GetPublicKey is its own action.
    kid = key_for(["kms:DeriveSharedSecret", "kms:GetPublicKey"],
                  {"StringEquals": {"kms:KeyAgreementAlgorithm": "ECDH"}},
                  KeySpec="ECC_NIST_P384", KeyUsage="KEY_AGREEMENT")
    # GetPublicKey has no kms:KeyAgreementAlgorithm: a condition on it does not match there.
    denied(alice.kms.get_public_key, KeyId=kid)
    peer = ec.generate_private_key(ec.SECP384R1())
    ours = serialization.load_der_public_key(kms.get_public_key(KeyId=kid)["PublicKey"])
    out = alice.kms.derive_shared_secret(
        KeyId=kid, KeyAgreementAlgorithm="ECDH",
        PublicKey=peer.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    assert out["SharedSecret"] == peer.exchange(ec.ECDH(), ours)
    kid = key_for("kms:DeriveSharedSecret", {"StringEquals": {"kms:KeyAgreementAlgorithm": "SM2"}},
                  KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT")
    denied(alice.kms.derive_shared_secret, KeyId=kid, KeyAgreementAlgorithm="ECDH",
           PublicKey=ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
               serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def test_re_encrypt_with_rsa_keys(kms):
    rsa4096 = make_key(kms, "RSA_4096", "ENCRYPT_DECRYPT")["KeyId"]
    rsa2048 = make_key(kms, "RSA_2048", "ENCRYPT_DECRYPT")["KeyId"]
    sym = make_key(kms, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")["KeyId"]
    # RSA -> symmetric -> RSA -> RSA, the plaintext surviving every hop.
    ct = kms.encrypt(KeyId=rsa4096, Plaintext=b"hop", EncryptionAlgorithm="RSAES_OAEP_SHA_1")["CiphertextBlob"]
    out = kms.re_encrypt(CiphertextBlob=ct, SourceKeyId=rsa4096, SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1",
                         DestinationKeyId=sym, DestinationEncryptionContext={"hop": "1"})
    assert out["SourceEncryptionAlgorithm"] == "RSAES_OAEP_SHA_1"
    assert out["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"hop": "1"})["Plaintext"] == b"hop"
    out = kms.re_encrypt(CiphertextBlob=out["CiphertextBlob"], SourceEncryptionContext={"hop": "1"},
                         DestinationKeyId=rsa2048, DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert out["KeyId"].endswith(rsa2048) and out["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    out = kms.re_encrypt(CiphertextBlob=out["CiphertextBlob"], SourceKeyId=rsa2048,
                         SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256", DestinationKeyId=rsa4096,
                         DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert kms.decrypt(KeyId=rsa4096, CiphertextBlob=out["CiphertextBlob"],
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"hop"
    # Errors: no SourceKeyId for an RSA source, no algorithm for an RSA destination, a plaintext too long for the
    # destination, a signing key as destination, a tampered RSA ciphertext.
    assert_client_error("ValidationException", kms.re_encrypt, CiphertextBlob=ct,
                        SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1", DestinationKeyId=sym)
    blob = kms.encrypt(KeyId=sym, Plaintext=b"x" * 300)["CiphertextBlob"]
    assert_client_error("InvalidKeyUsageException", kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=rsa2048)
    assert_client_error("ValidationException", kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=rsa2048,
                        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")
    signing = make_key(kms, "ECC_NIST_P256", "SIGN_VERIFY")["KeyId"]
    assert_client_error("InvalidKeyUsageException", kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=signing)
    bad = bytes([ct[0] ^ 1]) + ct[1:]
    assert_client_error("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=bad, SourceKeyId=rsa4096,
                        SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1", DestinationKeyId=sym)
