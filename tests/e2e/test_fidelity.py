"""AWS's exact answers: every error's HTTP status checked against botocore's KMS model, each operation's documented
errors walked (conformance), error precedence as AWS orders it, id-only operations refusing aliases, the messages AWS
sends (and does not send), multi-Region requests and `mrk-` ids."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import botocore.session
import pytest

from kmstest import unique
from test_protocol import MESSAGELESS, raw  # noqa: F401  (raw is a fixture)

ROOT = Path(__file__).resolve().parents[2]

# Errors every AWS JSON service may send besides the ones an operation's model lists (AWS's "Common Errors").
COMMON = frozenset({
    "ValidationException", "AccessDeniedException", "SerializationException", "UnknownOperationException",
    "MissingAuthenticationTokenException", "IncompleteSignatureException", "InvalidSignatureException",
    "UnrecognizedClientException", "ThrottlingException",
    # Sent by AWS KMS for the reserved `alias/aws/` names though botocore's model does not list it.
    "NotAuthorizedException",
})


@pytest.fixture(scope="module")
def model():
    return botocore.session.get_session().get_service_model("kms")


@pytest.fixture(scope="module")
def shapes():
    """botocore's raw KMS shapes (the parsed model drops the `fault` flag)."""
    loader = botocore.session.get_session().get_component("data_loader")
    return loader.load_service_model("kms", "service-2")["shapes"]


def expected_status(shapes, code: str) -> int:
    """The status botocore's model implies: 5xx for a `fault`, 400 for every other KMS exception and common error."""
    if code in shapes:
        shape = shapes[code]
        assert shape.get("exception"), f"{code} is not an exception in botocore's model"
        return 500 if shape.get("fault") else 400
    assert code in COMMON, f"{code} is neither in botocore's KMS model nor a common AWS error"
    return 400


def test_every_error_code_status_matches_botocore(shapes):
    """Table-driven over the enclave's ErrorCode enum (read from error.rs) and its one status mapping."""
    source = (ROOT / "enclave/src/error.rs").read_text()
    names = re.findall(r'ErrorCode::(\w+) => "(\w+)"', source)
    assert len(names) >= 29, names
    status_fn = source.split("pub fn status(self) -> u16")[1].split("\n    }\n")[0]
    explicit = {name: int(code) for name, code in re.findall(r"ErrorCode::(\w+) => (\d{3})", status_fn)}
    default = int(re.search(r"_ => (\d{3})", status_fn).group(1))
    checked = 0
    for variant, wire in names:
        assert variant == wire, f"{variant} is sent as {wire}"
        assert explicit.get(variant, default) == expected_status(shapes, wire), f"{wire}: status differs from AWS's"
        checked += 1
    assert checked == len(names) and "DryRunOperationException" in dict(names)


@pytest.fixture(scope="module")
def keys(kms):
    def key(**kw):
        return kms.create_key(Description="fidelity", **kw)["KeyMetadata"]["KeyId"]

    k = {
        "sym": key(),
        "disabled": key(),
        "other": key(),
        "rsa_enc": key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT"),
        "ecc_sign": key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"),
        "ecc_sign_disabled": key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"),
        "hmac": key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC"),
        "pending": key(),
    }
    kms.disable_key(KeyId=k["disabled"])
    kms.disable_key(KeyId=k["ecc_sign_disabled"])
    kms.schedule_key_deletion(KeyId=k["pending"], PendingWindowInDays=7)
    k["alias"] = "alias/" + unique("fidelity")
    kms.create_alias(AliasName=k["alias"], TargetKeyId=k["sym"])
    k["blob"] = b64(kms.encrypt(KeyId=k["sym"], Plaintext=b"fidelity")["CiphertextBlob"])
    return k


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


X = b64(b"x")
MRK = "mrk-1234abcd12ab34cd56ef1234567890ab"

# (operation, request body built from the keys, the error AWS answers). Each row is checked against the operation's
# documented errors in botocore's model and against the status the model implies.
CASES = [
    ("Encrypt", lambda k: {"KeyId": k["sym"], "Plaintext": X, "DryRun": True}, "DryRunOperationException"),
    ("Encrypt", lambda k: {"KeyId": "alias/none-" + unique("x"), "Plaintext": X}, "NotFoundException"),
    ("Encrypt", lambda k: {"KeyId": k["disabled"], "Plaintext": X}, "DisabledException"),
    ("Encrypt", lambda k: {"KeyId": k["pending"], "Plaintext": X}, "KMSInvalidStateException"),
    ("Encrypt", lambda k: {"KeyId": k["ecc_sign"], "Plaintext": X}, "InvalidKeyUsageException"),
    ("Encrypt", lambda k: {"KeyId": k["sym"], "Plaintext": ""}, "ValidationException"),
    ("Decrypt", lambda k: {"CiphertextBlob": b64(b"\x01" * 80)}, "InvalidCiphertextException"),
    ("Decrypt", lambda k: {"CiphertextBlob": k["blob"], "KeyId": k["other"]}, "IncorrectKeyException"),
    # IncorrectKeyException before InvalidKeyUsageException: the named RSA key did not make this blob.
    ("Decrypt", lambda k: {"CiphertextBlob": k["blob"], "KeyId": k["rsa_enc"]}, "IncorrectKeyException"),
    ("Decrypt", lambda k: {"CiphertextBlob": k["blob"], "DryRun": True}, "DryRunOperationException"),
    ("ReEncrypt", lambda k: {"CiphertextBlob": k["blob"], "DestinationKeyId": k["disabled"]}, "DisabledException"),
    ("ReEncrypt", lambda k: {"CiphertextBlob": b64(b"\x02" * 80), "DestinationKeyId": k["sym"]},
     "InvalidCiphertextException"),
    ("GenerateDataKey", lambda k: {"KeyId": k["hmac"], "KeySpec": "AES_256"}, "InvalidKeyUsageException"),
    ("GenerateDataKeyWithoutPlaintext", lambda k: {"KeyId": k["disabled"], "KeySpec": "AES_256"},
     "DisabledException"),
    ("GenerateDataKeyPair", lambda k: {"KeyId": k["sym"], "KeyPairSpec": "RSA_2048", "DryRun": True},
     "DryRunOperationException"),
    ("Sign", lambda k: {"KeyId": k["ecc_sign_disabled"], "Message": X, "SigningAlgorithm": "ECDSA_SHA_256"},
     "DisabledException"),
    ("Verify", lambda k: {"KeyId": k["ecc_sign"], "Message": X, "Signature": b64(b"\x30\x06\x02\x01\x01\x02\x01\x01"),
                          "SigningAlgorithm": "ECDSA_SHA_256"}, "KMSInvalidSignatureException"),
    ("GenerateMac", lambda k: {"KeyId": k["sym"], "Message": X, "MacAlgorithm": "HMAC_SHA_256"},
     "InvalidKeyUsageException"),
    ("VerifyMac", lambda k: {"KeyId": k["hmac"], "Message": X, "Mac": b64(b"\0" * 32), "MacAlgorithm": "HMAC_SHA_256"},
     "KMSInvalidMacException"),
    ("GetPublicKey", lambda k: {"KeyId": k["sym"]}, "UnsupportedOperationException"),
    ("DescribeKey", lambda k: {"KeyId": MRK}, "NotFoundException"),
    ("DescribeKey", lambda k: {"KeyId": "arn:aws:kms:us-east-1:000000000000:key/" + MRK}, "NotFoundException"),
    ("ListKeys", lambda k: {"Marker": "bm90LW91cnM"}, "InvalidMarkerException"),
    ("ListAliases", lambda k: {"Marker": "bm90LW91cnM"}, "InvalidMarkerException"),
    ("CreateAlias", lambda k: {"AliasName": k["alias"], "TargetKeyId": k["sym"]}, "AlreadyExistsException"),
    ("CreateKey", lambda k: {"MultiRegion": True}, "UnsupportedOperationException"),
    ("CreateKey", lambda k: {"Tags": [{"TagKey": "aws:x", "TagValue": "y"}]}, "TagException"),
    ("CreateKey", lambda k: {"Policy": "{not json"}, "MalformedPolicyDocumentException"),
    ("PutKeyPolicy", lambda k: {"KeyId": k["sym"], "PolicyName": "default", "Policy": "{}"},
     "MalformedPolicyDocumentException"),
    ("TagResource", lambda k: {"KeyId": k["sym"], "Tags": [{"TagKey": "aws:x", "TagValue": "y"}]}, "TagException"),
    ("ScheduleKeyDeletion", lambda k: {"KeyId": k["pending"]}, "KMSInvalidStateException"),
    ("CancelKeyDeletion", lambda k: {"KeyId": k["sym"]}, "KMSInvalidStateException"),
    # Key state before key spec (AWS): a disabled asymmetric key answers DisabledException.
    ("RotateKeyOnDemand", lambda k: {"KeyId": k["ecc_sign_disabled"]}, "DisabledException"),
    ("RotateKeyOnDemand", lambda k: {"KeyId": k["ecc_sign"]}, "UnsupportedOperationException"),
    ("EnableKeyRotation", lambda k: {"KeyId": k["disabled"]}, "DisabledException"),
    ("GetParametersForImport", lambda k: {"KeyId": k["sym"], "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                          "WrappingKeySpec": "RSA_2048"}, "UnsupportedOperationException"),
    ("DeleteImportedKeyMaterial", lambda k: {"KeyId": k["sym"]}, "UnsupportedOperationException"),
]


@pytest.mark.parametrize("operation,body,code", CASES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_documented_errors_conform(raw, keys, model, shapes, operation, body, code):
    status, parsed, raw_body = raw.call(operation, body(keys))
    assert isinstance(parsed, dict) and parsed.get("__type") == code, raw_body[:400]
    documented = {s.name for s in model.operation_model(operation).error_shapes}
    assert code in documented or code in COMMON, f"{operation} does not document {code}: {sorted(documented)}"
    assert status == expected_status(shapes, code), f"{code}: HTTP {status}"
    if code in MESSAGELESS:
        assert set(parsed) == {"__type"}, parsed
    else:
        assert isinstance(parsed.get("message"), str) and parsed["message"], parsed


# The operations whose KeyId AWS documents as "key ID or key ARN" only.
ID_ONLY = [
    ("EnableKey", {}), ("DisableKey", {}), ("ScheduleKeyDeletion", {}), ("CancelKeyDeletion", {}),
    ("UpdateKeyDescription", {"Description": "d"}), ("GetKeyPolicy", {}),
    ("PutKeyPolicy", {"Policy": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]})}), ("ListKeyPolicies", {}),
    ("EnableKeyRotation", {}), ("DisableKeyRotation", {}), ("GetKeyRotationStatus", {}), ("RotateKeyOnDemand", {}),
    ("ListKeyRotations", {}), ("TagResource", {"Tags": [{"TagKey": "k", "TagValue": "v"}]}),
    ("UntagResource", {"TagKeys": ["k"]}), ("ListResourceTags", {}),
    ("GetParametersForImport", {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}),
    ("ImportKeyMaterial", {"ImportToken": X, "EncryptedKeyMaterial": X, "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}),
    ("DeleteImportedKeyMaterial", {}),
]


@pytest.mark.parametrize("operation,extra", ID_ONLY, ids=[o for o, _ in ID_ONLY])
def test_id_only_operations_refuse_aliases(raw, kms, keys, model, operation, extra):
    """An existing alias (name or ARN) names no key where AWS takes only a key id or ARN: NotFoundException, and the
    key behind it is untouched."""
    region, account = raw.region, kms.describe_key(KeyId=keys["sym"])["KeyMetadata"]["AWSAccountId"]
    for ref in (keys["alias"], f"arn:aws:kms:{region}:{account}:{keys['alias']}"):
        status, parsed, raw_body = raw.call(operation, {"KeyId": ref, **extra})
        assert (status, parsed.get("__type")) == (400, "NotFoundException"), raw_body[:400]
        assert "NotFoundException" in {s.name for s in model.operation_model(operation).error_shapes}
    meta = kms.describe_key(KeyId=keys["alias"])["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and meta["KeyId"] == keys["sym"]


@pytest.mark.parametrize("operation", ["DescribeKey", "Encrypt", "GenerateDataKey"])
def test_alias_operations_keep_taking_aliases(kms, keys, operation):
    if operation == "DescribeKey":
        assert kms.describe_key(KeyId=keys["alias"])["KeyMetadata"]["KeyId"] == keys["sym"]
    elif operation == "Encrypt":
        assert keys["sym"] in kms.encrypt(KeyId=keys["alias"], Plaintext=b"x")["KeyId"]
    else:
        assert len(kms.generate_data_key(KeyId=keys["alias"], KeySpec="AES_128")["Plaintext"]) == 16


def test_verification_failures_have_no_message_through_boto3(kms, keys):
    """boto3 sees AWS's empty message for these three (the body has no `message` member)."""
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=b"\x01" * 80)
    assert exc.value.response["Error"]["Code"] == "InvalidCiphertextException"
    assert exc.value.response["Error"].get("Message", "") == ""


def test_dry_run_status_through_boto3(kms, keys):
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId=keys["sym"], Plaintext=b"x", DryRun=True)
    assert exc.value.response["Error"]["Code"] == "DryRunOperationException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    json.dumps(exc.value.response["Error"])  # plain data, no secret-bearing objects


# ---- AWS managed keys ----------------------------------------------------------------------------------------------

def test_aws_managed_key_is_created_on_first_use(kms):
    from kmstest import assert_client_error
    first = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert first["KeyManager"] == "AWS" and first["KeyState"] == "Enabled" and first["Origin"] == "AWS_KMS"
    assert first["KeySpec"] == "SYMMETRIC_DEFAULT" and "S3" in first["Description"]
    again = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert again["KeyId"] == first["KeyId"], "one managed key per alias"
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases(KeyId=first["KeyId"])["Aliases"]}
    assert aliases == {"alias/aws/s3": first["KeyId"]}
    # A customer key stays CUSTOMER; an undefined alias/aws/ name names nothing.
    assert kms.describe_key(KeyId=kms.create_key()["KeyMetadata"]["KeyId"])["KeyMetadata"]["KeyManager"] == "CUSTOMER"
    assert_client_error("NotFoundException", kms.describe_key, KeyId="alias/aws/nonesuch")
    # AWS rotates managed keys yearly; the caller reads that, but cannot change it.
    status = kms.get_key_rotation_status(KeyId=first["KeyId"])
    assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 365
    policy = json.loads(kms.get_key_policy(KeyId=first["KeyId"], PolicyName="default")["Policy"])
    assert policy["Id"] == "auto-s3-1" and [s["Sid"] for s in policy["Statement"]] == [
        "Allow direct access to key metadata to the account"]


MANAGED_REFUSED = [
    ("schedule_key_deletion", {"PendingWindowInDays": 7}), ("disable_key", {}), ("enable_key_rotation", {}),
    ("disable_key_rotation", {}), ("rotate_key_on_demand", {}), ("update_key_description", {"Description": "mine"}),
    ("put_key_policy", {"PolicyName": "default", "Policy": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]}),
        "BypassPolicyLockoutSafetyCheck": True}),
    ("tag_resource", {"Tags": [{"TagKey": "k", "TagValue": "v"}]}),
]


@pytest.mark.parametrize("operation,extra", MANAGED_REFUSED, ids=[o for o, _ in MANAGED_REFUSED])
def test_callers_cannot_manage_aws_managed_keys(kms, operation, extra):
    """AWS's managed-key policy allows callers nothing but the metadata: AccessDeniedException, and nothing changes."""
    from kmstest import assert_client_error
    key_id = kms.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]["KeyId"]
    before = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    r = assert_client_error("AccessDeniedException", getattr(kms, operation), KeyId=key_id, **extra)
    assert "no resource-based policy allows" in r["Error"]["Message"] or "not authorized" in r["Error"]["Message"]
    after = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert after == before


def test_aws_managed_key_is_usable_only_through_its_service_and_its_alias_is_reserved(kms):
    from kmstest import assert_client_error
    key_id = kms.describe_key(KeyId="alias/aws/lambda")["KeyMetadata"]["KeyId"]
    # A direct call is not through Lambda: AWS denies it too.
    assert_client_error("AccessDeniedException", kms.encrypt, KeyId="alias/aws/lambda", Plaintext=b"x")
    assert_client_error("NotAuthorizedException", kms.delete_alias, AliasName="alias/aws/lambda")
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    assert_client_error("NotAuthorizedException", kms.update_alias, AliasName="alias/aws/lambda", TargetKeyId=other)
    assert kms.describe_key(KeyId="alias/aws/lambda")["KeyMetadata"]["KeyId"] == key_id


# ---- Key materials (AWS, 2025) -------------------------------------------------------------------------------------

def is_material_id(value) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def test_key_material_ids_follow_rotation(kms):
    from kmstest import assert_client_error
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    first = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert is_material_id(first)
    old_blob = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert old_blob["KeyMaterialId"] == first
    kms.rotate_key_on_demand(KeyId=key_id)
    second = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert is_material_id(second) and second != first
    # Decrypt names the material the ciphertext was made under, old or new.
    assert kms.decrypt(CiphertextBlob=old_blob["CiphertextBlob"])["KeyMaterialId"] == first
    new_blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == second
    r = kms.re_encrypt(CiphertextBlob=old_blob["CiphertextBlob"], DestinationKeyId=key_id)
    assert (r["SourceKeyMaterialId"], r["DestinationKeyMaterialId"]) == (first, second)
    pair = kms.generate_data_key_pair_without_plaintext(KeyId=key_id, KeyPairSpec="ECC_NIST_P256")
    assert pair["KeyMaterialId"] == second
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [e["KeyMaterialId"] for e in rotations] == [second] and "KeyMaterialState" not in rotations[0]
    everything = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    assert [(e["KeyMaterialId"], e["KeyMaterialState"]) for e in everything] == [(second, "CURRENT")]
    assert_client_error("ValidationException", kms.list_key_rotations, KeyId=key_id, IncludeKeyMaterial="SOME")
    # Only symmetric encryption keys have one.
    sign = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert "CurrentKeyMaterialId" not in sign
    # Another key's material id differs (ids derive from the key, not only the version).
    other = kms.create_key()["KeyMetadata"]["CurrentKeyMaterialId"]
    assert other not in (first, second)


def test_import_defaults_to_key_material_expires(kms):
    """AWS's default ExpirationModel is KEY_MATERIAL_EXPIRES: naming neither it nor ValidTo is a ValidationException."""
    from kmstest import assert_client_error
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    junk = b"\x01" * 256
    r = assert_client_error("ValidationException", kms.import_key_material, KeyId=key_id,
                            ImportToken=params["ImportToken"], EncryptedKeyMaterial=junk)
    assert "ValidTo" in r["Error"]["Message"]
    # With the model named, the same request gets as far as unwrapping the (junk) material.
    r = assert_client_error("InvalidCiphertextException", kms.import_key_material, KeyId=key_id,
                            ImportToken=params["ImportToken"], EncryptedKeyMaterial=junk,
                            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")


MESSAGES = [
    ("Encrypt", lambda k: {"KeyId": k["sym"], "Plaintext": ""}, "ValidationException",
     "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
     "Member must have length greater than or equal to 1"),
    ("Encrypt", lambda k: {"KeyId": k["sym"], "Plaintext": b64(b"x" * 4097)}, "ValidationException",
     "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
     "Member must have length less than or equal to 4096"),
    ("CreateKey", lambda k: {"Tags": [{"TagKey": "aws:x", "TagValue": "y"}]}, "TagException",
     "Tags beginning with aws: are reserved"),
    ("ListKeyRotations", lambda k: {"KeyId": k["sym"], "IncludeKeyMaterial": "SOME"}, "ValidationException",
     "1 validation error detected: Value 'SOME' at 'includeKeyMaterial' failed to satisfy constraint: "
     "Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]"),
]


@pytest.mark.parametrize("operation,body,code,message", MESSAGES, ids=[f"{m[0]}-{i}" for i, m in enumerate(MESSAGES)])
def test_validation_messages_use_aws_wording(raw, keys, operation, body, code, message):
    status, parsed, raw_body = raw.call(operation, body(keys))
    assert (status, parsed.get("__type"), parsed.get("message")) == (400, code, message), raw_body[:400]


# ---- Importing asymmetric and HMAC material ------------------------------------------------------------------------

def _external(kms, spec, usage):
    meta = kms.create_key(Origin="EXTERNAL", KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    assert meta["KeyState"] == "PendingImport" and meta["Origin"] == "EXTERNAL", meta
    return meta["KeyId"]


def _import(kms, tmp_path, key_id, material, algorithm="RSA_AES_KEY_WRAP_SHA_256"):
    from test_import import wrap
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec="RSA_2048")
    enc = wrap(tmp_path, params["PublicKey"], material, algorithm)
    return kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc,
                                   ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE")


def _pkcs8(private_key) -> bytes:
    from cryptography.hazmat.primitives import serialization
    return private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def test_imported_ecc_signing_key_signs_as_its_material(kms, tmp_path):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from kmstest import assert_client_error
    key_id = _external(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    assert_client_error("KMSInvalidStateException", kms.sign, KeyId=key_id, Message=b"m",
                        SigningAlgorithm="ECDSA_SHA_256")
    private = ec.generate_private_key(ec.SECP256R1())
    # Material of another curve does not fit the key spec.
    wrong = _pkcs8(ec.generate_private_key(ec.SECP384R1()))
    assert_client_error("IncorrectKeyMaterialException", _import, kms, tmp_path, key_id, wrong)
    r = _import(kms, tmp_path, key_id, _pkcs8(private))
    assert len(r["KeyMaterialId"]) == 64
    spki = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert kms.get_public_key(KeyId=key_id)["PublicKey"] == spki
    sig = kms.sign(KeyId=key_id, Message=b"imported", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    private.public_key().verify(sig, b"imported", ec.ECDSA(hashes.SHA256()))  # raises if not ours
    # Deleting the material makes the key pending import again; a different key cannot come back in.
    kms.delete_imported_key_material(KeyId=key_id)
    assert_client_error("KMSInvalidStateException", kms.sign, KeyId=key_id, Message=b"m",
                        SigningAlgorithm="ECDSA_SHA_256")
    other = _pkcs8(ec.generate_private_key(ec.SECP256R1()))
    assert_client_error("IncorrectKeyMaterialException", _import, kms, tmp_path, key_id, other)
    _import(kms, tmp_path, key_id, _pkcs8(private), "RSA_AES_KEY_WRAP_SHA_1")
    assert kms.verify(KeyId=key_id, Message=b"imported", Signature=sig, SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]


def test_imported_rsa_encryption_key_works_with_its_material(kms, tmp_path):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from kmstest import assert_client_error
    key_id = _external(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    # An RSA private key is too long for RSAES_OAEP_*: AWS allows only RSA_AES_KEY_WRAP_* for it.
    for alg in ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"):
        assert_client_error("ValidationException", kms.get_parameters_for_import, KeyId=key_id,
                            WrappingAlgorithm=alg, WrappingKeySpec="RSA_2048")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_client_error("IncorrectKeyMaterialException", _import, kms, tmp_path, key_id,
                        _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=3072)))
    _import(kms, tmp_path, key_id, _pkcs8(private))
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    theirs = private.public_key().encrypt(b"from cryptography", oaep)
    assert kms.decrypt(KeyId=key_id, CiphertextBlob=theirs,
                       EncryptionAlgorithm="RSAES_OAEP_SHA_256")["Plaintext"] == b"from cryptography"
    ours = kms.encrypt(KeyId=key_id, Plaintext=b"from kms", EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert private.decrypt(ours["CiphertextBlob"], oaep) == b"from kms"


def test_imported_hmac_key_macs_as_its_material(kms, tmp_path):
    import hashlib
    import hmac as std_hmac
    import os
    from kmstest import assert_client_error
    key_id = _external(kms, "HMAC_256", "GENERATE_VERIFY_MAC")
    assert_client_error("IncorrectKeyMaterialException", _import, kms, tmp_path, key_id, os.urandom(16),
                        "RSAES_OAEP_SHA_256")
    material = os.urandom(48)  # AWS takes 32 to 64 bytes for HMAC_256
    _import(kms, tmp_path, key_id, material, "RSAES_OAEP_SHA_256")
    mac = kms.generate_mac(KeyId=key_id, Message=b"msg", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == std_hmac.new(material, b"msg", hashlib.sha256).digest()


def test_p521_material_is_not_oaep_wrapped_under_rsa_2048(kms):
    from kmstest import assert_client_error
    key_id = _external(kms, "ECC_NIST_P521", "SIGN_VERIFY")
    assert_client_error("ValidationException", kms.get_parameters_for_import, KeyId=key_id,
                        WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")
    kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSA_AES_KEY_WRAP_SHA_256",
                                  WrappingKeySpec="RSA_2048")


def test_imported_hmac_material_expires(fresh_server, tmp_path):
    """KEY_MATERIAL_EXPIRES applies to HMAC and asymmetric material too: past ValidTo the key is pending import."""
    import os
    import time
    from kmstest import assert_client_error
    from test_import import wrap
    from test_lifecycle_states import advance
    from test_protocol import RawClient
    kms = fresh_server.client()
    key_id = _external(kms, "HMAC_384", "GENERATE_VERIFY_MAC")
    params = kms.get_parameters_for_import(KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                           WrappingKeySpec="RSA_2048")
    enc = wrap(tmp_path, params["PublicKey"], os.urandom(48), "RSAES_OAEP_SHA_256")
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc,
                            ValidTo=int(time.time()) + 3600)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_384")
    advance(RawClient(fresh_server), 2 * 3600)
    assert_client_error("KMSInvalidStateException", kms.generate_mac, KeyId=key_id, Message=b"m",
                        MacAlgorithm="HMAC_SHA_384")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
