"""boto3 against kms-host dev: every operation, every KeyId form, every contract error."""

from __future__ import annotations

import datetime
import os
import uuid

import boto3
import pytest

from kmstest import (
    DEFAULT_ACCOUNT,
    UUID_RE,
    KmsServer,
    alias_arn,
    assert_client_error,
    key_arn,
    unique,
)

KEY_FORMS = ["key-id", "key-arn", "alias-name", "alias-arn"]
CONTEXTS = {
    "no-context": None,
    "one-pair": {"purpose": "e2e"},
    "several-pairs": {"tenant": "t-42", "bucket": "b", "path": "/a/b c", "unicode": "h\u00e9llo \u2713"},
}


def ec(context) -> dict:
    """EncryptionContext kwarg, or nothing."""
    return {} if context is None else {"EncryptionContext": context}


# ---- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key(kms):
    return kms.create_key(Description="e2e boto3 key")["KeyMetadata"]


@pytest.fixture(scope="module")
def other_key(kms):
    return kms.create_key(Description="e2e boto3 other key")["KeyMetadata"]


@pytest.fixture(scope="module")
def key_alias(kms, key):
    name = unique("alias/e2e-boto3")
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    return name


@pytest.fixture(scope="module")
def key_refs(server, key, key_alias):
    return {
        "key-id": key["KeyId"],
        "key-arn": key["Arn"],
        "alias-name": key_alias,
        "alias-arn": alias_arn(server.region, DEFAULT_ACCOUNT, key_alias),
    }


@pytest.fixture(scope="module")
def regional(tmp_path_factory, host_bin):
    srv = KmsServer(
        tmp_path_factory.mktemp("kms-regional"),
        extra_args=["--region", "eu-west-2", "--account-id", "111122223333"],
        binary=host_bin,
    )
    srv.start()
    yield srv
    srv.close()


# ---- CreateKey / DescribeKey --------------------------------------------------------------


def check_key_metadata(meta: dict, region: str, account: str, description: str) -> None:
    assert UUID_RE.match(meta["KeyId"]), f"KeyId is not a UUID: {meta['KeyId']!r}"
    expected = {
        "Arn": key_arn(region, account, meta["KeyId"]),
        "AWSAccountId": account,
        "Enabled": True,
        "KeyState": "Enabled",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "Description": description,
    }
    for field, value in expected.items():
        assert meta.get(field) == value, f"KeyMetadata.{field} = {meta.get(field)!r}, expected {value!r}"
    created = meta.get("CreationDate")
    assert isinstance(created, datetime.datetime), f"CreationDate: {created!r}"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - created).total_seconds()) < 600, f"CreationDate {created} is not about now ({now})"


def test_create_and_describe_key_metadata(server, kms):
    created = kms.create_key(
        Description="metadata check",
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
        Tags=[{"TagKey": "env", "TagValue": "e2e"}, {"TagKey": "team", "TagValue": "kms"}],
    )["KeyMetadata"]
    check_key_metadata(created, server.region, DEFAULT_ACCOUNT, "metadata check")
    described = kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]
    check_key_metadata(described, server.region, DEFAULT_ACCOUNT, "metadata check")
    assert described["CreationDate"] == created["CreationDate"]


def test_create_key_without_arguments(server, kms):
    meta = kms.create_key()["KeyMetadata"]
    assert UUID_RE.match(meta["KeyId"])
    assert meta["Arn"] == key_arn(server.region, DEFAULT_ACCOUNT, meta["KeyId"])
    assert meta["KeyState"] == "Enabled"


def test_created_keys_are_distinct(kms):
    ids = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(3)}
    assert len(ids) == 3


# ---- every KeyId form ---------------------------------------------------------------------


@pytest.mark.parametrize("form", KEY_FORMS)
def test_describe_key_accepts(kms, key, key_refs, form):
    meta = kms.describe_key(KeyId=key_refs[form])["KeyMetadata"]
    assert meta["KeyId"] == key["KeyId"]
    assert meta["Arn"] == key["Arn"]


@pytest.mark.parametrize("form", KEY_FORMS)
def test_encrypt_accepts(kms, key, key_refs, form):
    resp = kms.encrypt(KeyId=key_refs[form], Plaintext=b"form " + form.encode())
    assert resp["KeyId"] == key["Arn"], "Encrypt must answer with the key ARN"
    assert resp.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    assert kms.decrypt(CiphertextBlob=resp["CiphertextBlob"])["Plaintext"] == b"form " + form.encode()


@pytest.mark.parametrize("form", KEY_FORMS)
def test_decrypt_key_id_accepts(kms, key, key_refs, form):
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"decrypt with KeyId")["CiphertextBlob"]
    resp = kms.decrypt(CiphertextBlob=blob, KeyId=key_refs[form])
    assert resp["Plaintext"] == b"decrypt with KeyId"
    assert resp["KeyId"] == key["Arn"]


@pytest.mark.parametrize("form", KEY_FORMS)
def test_generate_data_key_accepts(kms, key, key_refs, form):
    resp = kms.generate_data_key(KeyId=key_refs[form], KeySpec="AES_256")
    assert resp["KeyId"] == key["Arn"]
    assert kms.decrypt(CiphertextBlob=resp["CiphertextBlob"])["Plaintext"] == resp["Plaintext"]


@pytest.mark.parametrize("form", KEY_FORMS)
def test_generate_data_key_without_plaintext_accepts(kms, key, key_refs, form):
    resp = kms.generate_data_key_without_plaintext(KeyId=key_refs[form], KeySpec="AES_128")
    assert resp["KeyId"] == key["Arn"]
    assert "Plaintext" not in resp
    assert len(kms.decrypt(CiphertextBlob=resp["CiphertextBlob"])["Plaintext"]) == 16


# ---- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("context", CONTEXTS.values(), ids=CONTEXTS.keys())
def test_encrypt_decrypt_round_trip(kms, key, context):
    for plaintext in (b"x", os.urandom(100), bytes(range(256)) * 16):  # 1, 100, 4096 bytes
        blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext, **ec(context))["CiphertextBlob"]
        if len(plaintext) >= 16:
            assert plaintext not in blob, "ciphertext contains the plaintext"
        resp = kms.decrypt(CiphertextBlob=blob, **ec(context))
        assert resp["Plaintext"] == plaintext
        assert resp["KeyId"] == key["Arn"]
        assert resp.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"


def test_encryption_is_randomized(kms, key):
    one = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"same")["CiphertextBlob"]
    two = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"same")["CiphertextBlob"]
    assert one != two, "two encryptions of the same plaintext gave the same ciphertext"


def test_encryption_context_order_does_not_matter(kms, key):
    context = {"a": "1", "b": "2", "c": "3"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"ordered", EncryptionContext=context)["CiphertextBlob"]
    reordered = dict(reversed(list(context.items())))
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=reordered)["Plaintext"] == b"ordered"


@pytest.mark.parametrize("context", CONTEXTS.values(), ids=CONTEXTS.keys())
def test_generate_data_key_round_trip(kms, key, context):
    resp = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", **ec(context))
    assert len(resp["Plaintext"]) == 32
    assert resp["Plaintext"] not in resp["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=resp["CiphertextBlob"], **ec(context))["Plaintext"] == resp["Plaintext"]


@pytest.mark.parametrize("context", CONTEXTS.values(), ids=CONTEXTS.keys())
def test_generate_data_key_without_plaintext_round_trip(kms, key, context):
    resp = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], NumberOfBytes=48, **ec(context))
    assert "Plaintext" not in resp
    decrypted = kms.decrypt(CiphertextBlob=resp["CiphertextBlob"], **ec(context))
    assert len(decrypted["Plaintext"]) == 48
    assert decrypted["KeyId"] == key["Arn"]


def test_decrypt_without_key_id(kms, key, other_key):
    for k in (key, other_key):
        blob = kms.encrypt(KeyId=k["KeyId"], Plaintext=b"which key?")["CiphertextBlob"]
        resp = kms.decrypt(CiphertextBlob=blob)
        assert resp["KeyId"] == k["Arn"], "Decrypt must find the key from the ciphertext"
        assert resp["Plaintext"] == b"which key?"


@pytest.mark.parametrize(
    "spec,expected",
    [({"KeySpec": "AES_128"}, 16), ({"KeySpec": "AES_256"}, 32), ({"NumberOfBytes": 1}, 1),
     ({"NumberOfBytes": 7}, 7), ({"NumberOfBytes": 64}, 64), ({"NumberOfBytes": 1024}, 1024)],
    ids=["AES_128", "AES_256", "n1", "n7", "n64", "n1024"],
)
def test_data_key_lengths(kms, key, spec, expected):
    resp = kms.generate_data_key(KeyId=key["KeyId"], **spec)
    assert len(resp["Plaintext"]) == expected
    assert kms.decrypt(CiphertextBlob=resp["CiphertextBlob"])["Plaintext"] == resp["Plaintext"]
    wp = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], **spec)
    assert len(kms.decrypt(CiphertextBlob=wp["CiphertextBlob"])["Plaintext"]) == expected


def test_data_keys_differ(kms, key):
    keys = {kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["Plaintext"] for _ in range(5)}
    assert len(keys) == 5


@pytest.mark.parametrize("n", [1, 32, 1024])
def test_generate_random_length(kms, n):
    assert len(kms.generate_random(NumberOfBytes=n)["Plaintext"]) == n


def test_generate_random_differs(kms):
    one = kms.generate_random(NumberOfBytes=32)["Plaintext"]
    two = kms.generate_random(NumberOfBytes=32)["Plaintext"]
    assert one != two
    assert one != bytes(32)


# ---- ListKeys / ListAliases paging ----------------------------------------------------------


def walk(call, item_key: str, **kwargs) -> tuple[list, int]:
    """Follow NextMarker by hand; returns (items, page count)."""
    items, marker, pages = [], None, 0
    while True:
        page = call(**kwargs, **({"Marker": marker} if marker else {}))
        pages += 1
        assert pages <= 1000, "paging does not end"
        limit = kwargs.get("Limit")
        if limit is not None:
            assert len(page[item_key]) <= limit, f"page larger than Limit={limit}: {page[item_key]}"
        items.extend(page[item_key])
        if page.get("Truncated"):
            assert page.get("NextMarker"), f"Truncated page without NextMarker: {page}"
            marker = page["NextMarker"]
        else:
            assert not page.get("NextMarker"), f"NextMarker on the last page: {page}"
            return items, pages


def test_list_keys_paging(server, kms):
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(5)}
    items, pages = walk(kms.list_keys, "Keys", Limit=2)
    ids = [k["KeyId"] for k in items]
    assert len(ids) == len(set(ids)), f"duplicate keys across pages: {ids}"
    assert created <= set(ids), f"missing keys: {created - set(ids)}"
    assert pages >= 3
    for entry in items:
        assert entry["KeyArn"] == key_arn(server.region, DEFAULT_ACCOUNT, entry["KeyId"])
    everything, _ = walk(kms.list_keys, "Keys", Limit=1000)
    assert {k["KeyId"] for k in everything} == set(ids)


def test_list_keys_paginator(kms):
    created = {kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(5)}
    pages = list(kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2}))
    ids = [k["KeyId"] for p in pages for k in p["Keys"]]
    assert len(pages) >= 3
    assert all(len(p["Keys"]) <= 2 for p in pages)
    assert len(ids) == len(set(ids))
    assert created <= set(ids)


def test_list_aliases_paging_and_filter(server, kms):
    key_a = kms.create_key()["KeyMetadata"]
    key_b = kms.create_key()["KeyMetadata"]
    names_a = {unique("alias/page-a") for _ in range(3)}
    names_b = {unique("alias/page-b") for _ in range(2)}
    for name in names_a:
        kms.create_alias(AliasName=name, TargetKeyId=key_a["KeyId"])
    for name in names_b:
        kms.create_alias(AliasName=name, TargetKeyId=key_b["Arn"])  # TargetKeyId as ARN

    items, pages = walk(kms.list_aliases, "Aliases", Limit=2)
    names = [a["AliasName"] for a in items]
    assert len(names) == len(set(names)), f"duplicate aliases across pages: {names}"
    assert names_a | names_b <= set(names)
    assert pages >= 3
    by_name = {a["AliasName"]: a for a in items}
    for name in names_a | names_b:
        entry = by_name[name]
        assert entry["AliasArn"] == alias_arn(server.region, DEFAULT_ACCOUNT, name)
        assert entry["TargetKeyId"] == (key_a if name in names_a else key_b)["KeyId"]

    for ref in (key_a["KeyId"], key_a["Arn"]):
        filtered, _ = walk(kms.list_aliases, "Aliases", KeyId=ref, Limit=1)
        assert {a["AliasName"] for a in filtered} == names_a, f"KeyId filter {ref}"
    filtered, _ = walk(kms.list_aliases, "Aliases", KeyId=key_b["KeyId"])
    assert {a["AliasName"] for a in filtered} == names_b

    paginated = kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 2})
    assert names_a | names_b <= {a["AliasName"] for p in paginated for a in p["Aliases"]}


def test_alias_delete_and_reuse(kms, key, other_key):
    name = unique("alias/reuse")
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key["KeyId"]
    kms.delete_alias(AliasName=name)
    assert_client_error("NotFoundException", kms.describe_key, KeyId=name)
    assert_client_error("NotFoundException", kms.encrypt, KeyId=name, Plaintext=b"x")
    kms.create_alias(AliasName=name, TargetKeyId=other_key["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == other_key["KeyId"]


def test_create_alias_twice_already_exists(kms, key, other_key):
    name = unique("alias/dup")
    kms.create_alias(AliasName=name, TargetKeyId=key["KeyId"])
    assert_client_error("AlreadyExistsException", kms.create_alias, AliasName=name, TargetKeyId=key["KeyId"])
    assert_client_error("AlreadyExistsException", kms.create_alias, AliasName=name,
                        TargetKeyId=other_key["KeyId"])
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key["KeyId"]


# ---- region / account -------------------------------------------------------------------


def test_region_and_account_in_env_file(regional):
    assert regional.env_file.get("AWS_DEFAULT_REGION") == "eu-west-2", regional.env_file


def test_region_and_account_in_arns(regional):
    kms = regional.client(region="eu-west-2")
    meta = kms.create_key(Description="regional")["KeyMetadata"]
    check_key_metadata(meta, "eu-west-2", "111122223333", "regional")
    check_key_metadata(kms.describe_key(KeyId=meta["Arn"])["KeyMetadata"], "eu-west-2", "111122223333",
                       "regional")
    name = unique("alias/regional")
    kms.create_alias(AliasName=name, TargetKeyId=meta["KeyId"])
    aliases = {a["AliasName"]: a for a in kms.list_aliases(KeyId=meta["KeyId"])["Aliases"]}
    assert aliases[name]["AliasArn"] == f"arn:aws:kms:eu-west-2:111122223333:{name}"
    listed = {k["KeyId"]: k["KeyArn"] for k in kms.list_keys(Limit=1000)["Keys"]}
    assert listed[meta["KeyId"]] == meta["Arn"]
    resp = kms.encrypt(KeyId=f"arn:aws:kms:eu-west-2:111122223333:{name}", Plaintext=b"r")
    assert resp["KeyId"] == meta["Arn"]
    # The default region/account's ARN of the same key is another key: not found here.
    assert_client_error("NotFoundException", kms.describe_key,
                        KeyId=key_arn("us-east-1", DEFAULT_ACCOUNT, meta["KeyId"]))


def test_boto3_configured_by_environment_only(server, monkeypatch):
    """boto3.Session() with nothing but DIR/env's variables reaches the server."""
    for name, value in server.env_file.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", server.env["AWS_CONFIG_FILE"])
    client = boto3.Session().client("kms")
    assert client.meta.endpoint_url.rstrip("/") == server.env_file["AWS_ENDPOINT_URL_KMS"].rstrip("/")
    assert "Keys" in client.list_keys(Limit=1)


# ---- contract errors -------------------------------------------------------------------------

# Placeholders resolved per test run: KEY (key id), KEY_ARN, ALIAS, FOREIGN_* (other account /
# region ARNs of an existing key), UNKNOWN (random UUID).


def resolve(value, refs):
    if isinstance(value, str) and value in refs:
        return refs[value]
    if isinstance(value, dict):
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, refs) for v in value]
    return value


def case(case_id, code, op, **kwargs):
    return pytest.param(code, op, kwargs, id=f"{code}-{case_id}")


ERROR_CASES = [
    # ValidationException
    case("encrypt-empty-plaintext", "ValidationException", "encrypt", KeyId="KEY", Plaintext=b""),
    case("encrypt-plaintext-4097", "ValidationException", "encrypt", KeyId="KEY", Plaintext=b"a" * 4097),
    case("decrypt-ciphertext-6145", "ValidationException", "decrypt", CiphertextBlob=b"a" * 6145),
    case("decrypt-empty-ciphertext", "ValidationException", "decrypt", CiphertextBlob=b""),
    case("random-0", "ValidationException", "generate_random", NumberOfBytes=0),
    case("random-1025", "ValidationException", "generate_random", NumberOfBytes=1025),
    case("gdk-bytes-0", "ValidationException", "generate_data_key", KeyId="KEY", NumberOfBytes=0),
    case("gdk-bytes-1025", "ValidationException", "generate_data_key", KeyId="KEY", NumberOfBytes=1025),
    case("gdkwp-bytes-0", "ValidationException", "generate_data_key_without_plaintext", KeyId="KEY",
         NumberOfBytes=0),
    case("gdkwp-bytes-1025", "ValidationException", "generate_data_key_without_plaintext", KeyId="KEY",
         NumberOfBytes=1025),
    case("gdk-neither-spec-nor-bytes", "ValidationException", "generate_data_key", KeyId="KEY"),
    case("gdk-both-spec-and-bytes", "ValidationException", "generate_data_key", KeyId="KEY",
         KeySpec="AES_256", NumberOfBytes=32),
    case("gdk-keyspec-AES_512", "ValidationException", "generate_data_key", KeyId="KEY", KeySpec="AES_512"),
    case("gdkwp-keyspec-bogus", "ValidationException", "generate_data_key_without_plaintext", KeyId="KEY",
         KeySpec="BOGUS"),
    case("create-key-usage-sign-verify", "ValidationException", "create_key", KeyUsage="SIGN_VERIFY"),
    case("create-key-usage-mac", "ValidationException", "create_key", KeySpec="SYMMETRIC_DEFAULT",
         KeyUsage="GENERATE_VERIFY_MAC"),
    case("create-key-unknown-keyspec", "ValidationException", "create_key", KeySpec="NOT_A_KEY_SPEC"),
    case("create-key-description-8193", "ValidationException", "create_key", Description="d" * 8193),
    case("list-keys-limit-0", "ValidationException", "list_keys", Limit=0),
    case("list-keys-limit-1001", "ValidationException", "list_keys", Limit=1001),
    case("list-aliases-limit-0", "ValidationException", "list_aliases", Limit=0),
    case("list-aliases-limit-101", "ValidationException", "list_aliases", Limit=101),
    case("encrypt-missing-keyid", "ValidationException", "encrypt", Plaintext=b"x"),
    case("encrypt-missing-plaintext", "ValidationException", "encrypt", KeyId="KEY"),
    case("decrypt-missing-ciphertext", "ValidationException", "decrypt"),
    case("describe-key-missing-keyid", "ValidationException", "describe_key"),
    case("gdk-missing-keyid", "ValidationException", "generate_data_key", KeySpec="AES_256"),
    case("create-alias-missing-target", "ValidationException", "create_alias", AliasName="NEW_ALIAS"),
    case("create-alias-missing-name", "ValidationException", "create_alias", TargetKeyId="KEY"),
    case("delete-alias-missing-name", "ValidationException", "delete_alias"),
    case("alias-without-prefix", "ValidationException", "create_alias", AliasName="no-prefix",
         TargetKeyId="KEY"),
    case("alias-with-space", "ValidationException", "create_alias", AliasName="alias/has space",
         TargetKeyId="KEY"),
    case("alias-with-bang", "ValidationException", "create_alias", AliasName="alias/bad!char",
         TargetKeyId="KEY"),
    # UnsupportedOperationException
    case("sm2", "UnsupportedOperationException", "create_key", KeySpec="SM2", KeyUsage="SIGN_VERIFY"),
    case("ml-dsa-44", "UnsupportedOperationException", "create_key", KeySpec="ML_DSA_44",
         KeyUsage="SIGN_VERIFY"),
    case("ed25519", "UnsupportedOperationException", "create_key", KeySpec="ECC_NIST_EDWARDS25519",
         KeyUsage="SIGN_VERIFY"),
    case("ml-kem-768", "UnsupportedOperationException", "create_key", KeySpec="ML_KEM_768",
         KeyUsage="ENCAPSULATE_DECAPSULATE"),
    case("encapsulate-usage-symmetric", "ValidationException", "create_key", KeyUsage="ENCAPSULATE_DECAPSULATE"),
    case("gdkp-ml-kem-512", "UnsupportedOperationException", "generate_data_key_pair", KeyId="KEY",
         KeyPairSpec="ML_KEM_512"),
    # NotFoundException
    case("describe-unknown-id", "NotFoundException", "describe_key", KeyId="UNKNOWN"),
    case("describe-unknown-arn", "NotFoundException", "describe_key", KeyId="UNKNOWN_ARN"),
    case("describe-unknown-alias", "NotFoundException", "describe_key", KeyId="UNKNOWN_ALIAS"),
    case("describe-unknown-alias-arn", "NotFoundException", "describe_key", KeyId="UNKNOWN_ALIAS_ARN"),
    case("describe-other-account-arn", "NotFoundException", "describe_key", KeyId="FOREIGN_ACCOUNT_ARN"),
    case("describe-other-region-arn", "NotFoundException", "describe_key", KeyId="FOREIGN_REGION_ARN"),
    case("encrypt-unknown-id", "NotFoundException", "encrypt", KeyId="UNKNOWN", Plaintext=b"x"),
    case("encrypt-other-region-arn", "NotFoundException", "encrypt", KeyId="FOREIGN_REGION_ARN",
         Plaintext=b"x"),
    case("gdk-unknown-alias", "NotFoundException", "generate_data_key", KeyId="UNKNOWN_ALIAS",
         KeySpec="AES_256"),
    case("gdkwp-unknown-id", "NotFoundException", "generate_data_key_without_plaintext", KeyId="UNKNOWN",
         KeySpec="AES_256"),
    case("delete-unknown-alias", "NotFoundException", "delete_alias", AliasName="UNKNOWN_ALIAS"),
    case("create-alias-unknown-target", "NotFoundException", "create_alias", AliasName="NEW_ALIAS",
         TargetKeyId="UNKNOWN"),
    # NotAuthorizedException
    case("reserved-aws-alias", "NotAuthorizedException", "create_alias", AliasName="alias/aws/e2e",
         TargetKeyId="KEY"),
    # InvalidMarkerException
    case("list-keys-bogus-marker", "InvalidMarkerException", "list_keys", Marker="bogus-marker"),
    case("list-aliases-bogus-marker", "InvalidMarkerException", "list_aliases", Marker="bogus-marker"),
    # TagException
    case("duplicate-tag-keys", "TagException", "create_key",
         Tags=[{"TagKey": "dup", "TagValue": "1"}, {"TagKey": "dup", "TagValue": "2"}]),
    case("aws-prefixed-tag", "TagException", "create_key", Tags=[{"TagKey": "aws:owner", "TagValue": "x"}]),
]


@pytest.fixture
def error_refs(server, key):
    unknown = str(uuid.uuid4())
    return {
        "KEY": key["KeyId"],
        "KEY_ARN": key["Arn"],
        "UNKNOWN": unknown,
        "UNKNOWN_ARN": key_arn(server.region, DEFAULT_ACCOUNT, unknown),
        "UNKNOWN_ALIAS": unique("alias/missing"),
        "UNKNOWN_ALIAS_ARN": alias_arn(server.region, DEFAULT_ACCOUNT, unique("alias/missing")),
        "FOREIGN_ACCOUNT_ARN": key_arn(server.region, "999999999999", key["KeyId"]),
        "FOREIGN_REGION_ARN": key_arn("ap-south-1" if server.region != "ap-south-1" else "us-west-2",
                                      DEFAULT_ACCOUNT, key["KeyId"]),
        "NEW_ALIAS": unique("alias/new"),
    }


@pytest.mark.parametrize("code,op,kwargs", ERROR_CASES)
def test_contract_error(kms_raw, error_refs, code, op, kwargs):
    assert_client_error(code, getattr(kms_raw, op), **resolve(kwargs, error_refs))


def test_bad_requests_create_nothing(kms, kms_raw, key):
    """Rejected CreateKey/CreateAlias calls must not leave keys or aliases behind."""

    def state():
        keys, _ = walk(kms.list_keys, "Keys", Limit=1000)
        aliases, _ = walk(kms.list_aliases, "Aliases", Limit=100)
        return {k["KeyId"] for k in keys}, {a["AliasName"] for a in aliases}

    before = state()
    assert_client_error("UnsupportedOperationException", kms_raw.create_key, KeySpec="SM2",
                        KeyUsage="SIGN_VERIFY")
    assert_client_error("ValidationException", kms_raw.create_key, KeySpec="ECC_NIST_P256",
                        KeyUsage="ENCRYPT_DECRYPT")
    assert_client_error("TagException", kms_raw.create_key, Tags=[{"TagKey": "aws:x", "TagValue": "y"}])
    assert_client_error("ValidationException", kms_raw.create_key, Description="d" * 8193)
    assert_client_error("NotAuthorizedException", kms_raw.create_alias, AliasName="alias/aws/nope",
                        TargetKeyId=key["KeyId"])
    assert_client_error("ValidationException", kms_raw.create_alias, AliasName="alias/bad!char",
                        TargetKeyId=key["KeyId"])
    assert state() == before


# ---- decrypt failures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed(kms, key):
    """A ciphertext under `key` with an encryption context."""
    context = {"purpose": "tamper-test", "user": "alice"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"tamper me", EncryptionContext=context)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"tamper me"
    return blob, context


WRONG_CONTEXTS = {
    "missing": None,
    "subset": {"purpose": "tamper-test"},
    "extra-pair": {"purpose": "tamper-test", "user": "alice", "extra": "x"},
    "different-value": {"purpose": "tamper-test", "user": "bob"},
    "different-key-case": {"Purpose": "tamper-test", "user": "alice"},
    "different-value-case": {"purpose": "tamper-test", "user": "Alice"},
    "empty-value": {"purpose": "tamper-test", "user": ""},
}


@pytest.mark.parametrize("context", WRONG_CONTEXTS.values(), ids=WRONG_CONTEXTS.keys())
def test_wrong_encryption_context(kms, sealed, context):
    blob, _ = sealed
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob, **ec(context))


def test_context_given_but_none_used(kms, key):
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"no context")["CiphertextBlob"]
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob,
                        EncryptionContext={"a": "b"})


def test_truncated_ciphertext(kms, sealed):
    blob, context = sealed
    cuts = sorted({1, 2, 4, 8, 16, 20, len(blob) // 2, len(blob) - 17, len(blob) - 16, len(blob) - 1})
    for cut in cuts:
        if not 0 < cut < len(blob):
            continue
        assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob[:cut],
                            EncryptionContext=context)
    # The tail alone (header dropped) is not a ciphertext either.
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob[1:],
                        EncryptionContext=context)


def test_flipped_bits(kms, sealed):
    blob, context = sealed
    for pos in range(0, len(blob), 7):
        tampered = bytearray(blob)
        tampered[pos] ^= 1 << (pos % 8)
        try:
            assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(tampered),
                                EncryptionContext=context)
        except AssertionError as exc:
            raise AssertionError(f"bit flip at byte {pos} of {len(blob)}: {exc}") from None
    tampered = bytearray(blob)
    tampered[-1] ^= 0x80  # the last byte (tag) too
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(tampered),
                        EncryptionContext=context)


def test_appended_bytes(kms, sealed):
    blob, context = sealed
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob + b"\x00",
                        EncryptionContext=context)


@pytest.mark.parametrize("size", [1, 16, 64, 200, 1000, 6144])
def test_garbage_ciphertext(kms, size):
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=os.urandom(size))
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(size))


def test_decrypt_with_other_keys_id(server, kms, key, other_key):
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"mine")["CiphertextBlob"]
    assert_client_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, KeyId=other_key["KeyId"])
    assert_client_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, KeyId=other_key["Arn"])
    name = unique("alias/other")
    kms.create_alias(AliasName=name, TargetKeyId=other_key["KeyId"])
    assert_client_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, KeyId=name)
    # ... and the right key still works.
    assert kms.decrypt(CiphertextBlob=blob, KeyId=key["Arn"])["Plaintext"] == b"mine"
