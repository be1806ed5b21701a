"""Key material import (docs: notes/LIFECYCLE.md, "Third slice: key material import"): CreateKey Origin=EXTERNAL,
GetParametersForImport, ImportKeyMaterial with material wrapped by the real `openssl` exactly as AWS's import guide
does it (all four wrapping algorithms, the three wrapping key specs), DeleteImportedKeyMaterial, expiry of material
under the dev clock (EnclaveKms.AdvanceClock), import tokens that expire, and the errors of each step -- through boto3
and the AWS CLI."""

from __future__ import annotations

import base64
import datetime
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from kmstest import assert_client_error, unique
from test_lifecycle_states import DAY, advance, cli_fails_with, describe, new_key, state_of
from test_protocol import RawClient

HOUR = 3600
TOLERANCE = 120  # seconds of slack around dates the server computes from "now"
OAEP = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
KEY_WRAP = ("RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256")
ALGORITHMS = OAEP + KEY_WRAP
MODULUS_BITS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
DOES_NOT_EXPIRE = "KEY_MATERIAL_DOES_NOT_EXPIRE"
EXPIRES = "KEY_MATERIAL_EXPIRES"


# ---- openssl, exactly as the contract (AWS's import guide) spells it -------------------------------------------------


def _tool(name: str) -> str | None:
    return shutil.which(name)


def run(*cmd, cwd: Path) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"`{' '.join(map(str, cmd))}` exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def openssl(*args, cwd: Path) -> str:
    path = _tool("openssl")
    if path is None:
        pytest.fail("openssl is not on PATH", pytrace=False)
    return run(path, *args, cwd=cwd)


def workdir(base: Path) -> Path:
    d = base / unique("wrap")
    d.mkdir(parents=True)
    return d


def rand_material(base: Path, size: int = 32) -> bytes:
    """`openssl rand -out material.bin SIZE`."""
    d = workdir(base)
    openssl("rand", "-out", "material.bin", str(size), cwd=d)
    data = (d / "material.bin").read_bytes()
    assert len(data) == size
    return data


def _md(algorithm: str) -> str:
    assert algorithm in ALGORITHMS, algorithm
    return "sha256" if algorithm.endswith("SHA_256") else "sha1"


def _pkeyutl(d: Path, infile: str, outfile: str, md: str) -> bytes:
    openssl("pkeyutl", "-encrypt", "-in", infile, "-out", outfile, "-inkey", "public.der", "-keyform", "DER",
            "-pubin", "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{md}",
            "-pkeyopt", f"rsa_mgf1_md:{md}", cwd=d)
    return (d / outfile).read_bytes()


def _hex(path: Path) -> str:
    if _tool("xxd"):
        return run(_tool("xxd"), "-p", "-c", "64", path.name, cwd=path.parent).strip()
    return path.read_bytes().hex()


def wrap(base: Path, public_der: bytes, material: bytes, algorithm: str, oaep_md: str | None = None) -> bytes:
    """EncryptedKeyMaterial for `algorithm` made with openssl under `public_der` (oaep_md overrides the hash)."""
    d = workdir(base)
    (d / "public.der").write_bytes(public_der)
    (d / "material.bin").write_bytes(material)
    md = oaep_md or _md(algorithm)
    if algorithm in OAEP:
        return _pkeyutl(d, "material.bin", "enc.bin", md)
    openssl("rand", "-out", "aes.bin", "32", cwd=d)
    openssl("enc", "-id-aes256-wrap-pad", "-K", _hex(d / "aes.bin"), "-iv", "A65959A6", "-in", "material.bin",
            "-out", "wrapped.bin", cwd=d)
    wrapped = (d / "wrapped.bin").read_bytes()
    assert len(wrapped) == ((len(material) + 7) // 8) * 8 + 8, "openssl did not produce an RFC 5649 wrapping"
    return _pkeyutl(d, "aes.bin", "enc.bin", md) + wrapped


def public_key_bits(base: Path, public_der: bytes) -> int:
    """Parses PublicKey as a DER SubjectPublicKeyInfo with openssl; returns the RSA modulus size."""
    d = workdir(base)
    (d / "public.der").write_bytes(public_der)
    text = openssl("pkey", "-pubin", "-inform", "DER", "-in", "public.der", "-noout", "-text", cwd=d)
    first = text.splitlines()[0] if text else ""
    assert first.startswith("Public-Key: (") and first.endswith(" bit)"), f"not an RSA public key: {text[:300]!r}"
    return int(first[len("Public-Key: ("):-len(" bit)")])


# ---- KMS helpers ------------------------------------------------------------------------------------------------------


def new_external_key(kms, **kwargs) -> dict:
    kwargs.setdefault("Description", "import test key")
    meta = new_key(kms, Origin="EXTERNAL", **kwargs)
    assert meta["Origin"] == "EXTERNAL" and meta["KeyState"] == "PendingImport" and meta["Enabled"] is False, meta
    return meta


def epoch(value) -> float:
    assert isinstance(value, datetime.datetime), f"expected a timestamp, got {value!r}"
    return value.timestamp()


def assert_near(actual: float, expected: float, what: str, tolerance: float = TOLERANCE) -> None:
    assert abs(actual - expected) <= tolerance, f"{what}: {actual} is not within {tolerance}s of {expected}"


def get_params(kms, meta: dict, algorithm: str = "RSAES_OAEP_SHA_256", spec: str = "RSA_2048",
               clock_offset: int = 0) -> dict:
    """GetParametersForImport, with the contract's checks on the answer."""
    before = time.time()
    r = kms.get_parameters_for_import(KeyId=meta["KeyId"], WrappingAlgorithm=algorithm, WrappingKeySpec=spec)
    r.pop("ResponseMetadata", None)
    assert set(r) == {"KeyId", "ImportToken", "PublicKey", "ParametersValidTo"}, r
    assert r["KeyId"] == meta["Arn"], r
    assert isinstance(r["ImportToken"], bytes) and r["ImportToken"], r
    assert isinstance(r["PublicKey"], bytes) and r["PublicKey"], r
    assert_near(epoch(r["ParametersValidTo"]), before + clock_offset + DAY, "ParametersValidTo")
    return r


def import_material(kms, base: Path, meta: dict, material: bytes, algorithm: str = "RSAES_OAEP_SHA_256",
                    spec: str = "RSA_2048", params: dict | None = None, **kwargs) -> tuple[dict, bytes]:
    """Parameters (unless given), openssl wrapping and ImportKeyMaterial; returns (params, EncryptedKeyMaterial)."""
    params = params or get_params(kms, meta, algorithm, spec)
    if "ExpirationModel" not in kwargs and "ValidTo" not in kwargs:
        kwargs["ExpirationModel"] = DOES_NOT_EXPIRE  # AWS's default is KEY_MATERIAL_EXPIRES, which needs a ValidTo
    enc = wrap(base, params["PublicKey"], material, algorithm)
    r = kms.import_key_material(KeyId=meta["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc,
                                **kwargs)
    r.pop("ResponseMetadata", None)
    assert set(r) == {"KeyId", "KeyMaterialId"} and r["KeyId"] == meta["Arn"], r
    assert len(r["KeyMaterialId"]) == 64 and int(r["KeyMaterialId"], 16) >= 0, r
    return params, enc


def pending_import_message(meta: dict) -> str:
    return f"{meta['Arn']} is pending import."


def assert_pending_import(kms, meta: dict, blobs=()) -> None:
    """The key is PendingImport: DescribeKey says so, every cryptographic operation is KMSInvalidStateException."""
    m = describe(kms, meta["KeyId"])
    assert m["KeyState"] == "PendingImport" and m["Enabled"] is False and m["Origin"] == "EXTERNAL", m
    msg = pending_import_message(meta)
    calls = [
        (kms.encrypt, {"KeyId": meta["KeyId"], "Plaintext": b"x"}),
        (kms.generate_data_key, {"KeyId": meta["KeyId"], "KeySpec": "AES_256"}),
        (kms.generate_data_key_without_plaintext, {"KeyId": meta["KeyId"], "NumberOfBytes": 32}),
    ]
    for blob in blobs:
        calls.append((kms.decrypt, {"CiphertextBlob": blob}))
        calls.append((kms.decrypt, {"CiphertextBlob": blob, "KeyId": meta["Arn"]}))
    for call, kwargs in calls:
        r = assert_client_error("KMSInvalidStateException", call, **kwargs)
        assert r["Error"].get("Message") == msg, (call.__name__, r["Error"])


def assert_usable(kms, meta: dict, expiration_model: str = DOES_NOT_EXPIRE, valid_to: int | None = None) -> bytes:
    """The key is Enabled with imported material: DescribeKey fields, Encrypt/Decrypt, GenerateDataKey(*).
    Returns a fresh ciphertext of b"imported" under it."""
    m = describe(kms, meta["KeyId"])
    assert m["Origin"] == "EXTERNAL" and m["KeyState"] == "Enabled" and m["Enabled"] is True, m
    assert m.get("ExpirationModel") == expiration_model, m
    if valid_to is None:
        assert "ValidTo" not in m, m
    else:
        assert epoch(m.get("ValidTo")) == valid_to, (m.get("ValidTo"), valid_to)
    kid, arn = meta["KeyId"], meta["Arn"]
    blob = kms.encrypt(KeyId=kid, Plaintext=b"imported")["CiphertextBlob"]
    r = kms.decrypt(CiphertextBlob=blob)
    assert r["Plaintext"] == b"imported" and r["KeyId"] == arn, r
    r = kms.decrypt(CiphertextBlob=blob, KeyId=arn)
    assert r["Plaintext"] == b"imported", r
    ctx = {"purpose": "import-test"}
    dk = kms.generate_data_key(KeyId=kid, KeySpec="AES_256", EncryptionContext=ctx)
    assert dk["KeyId"] == arn and len(dk["Plaintext"]) == 32, dk
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=dk["CiphertextBlob"])
    wp = kms.generate_data_key_without_plaintext(KeyId=kid, NumberOfBytes=24)
    assert "Plaintext" not in wp and wp["KeyId"] == arn, wp
    assert len(kms.decrypt(CiphertextBlob=wp["CiphertextBlob"])["Plaintext"]) == 24
    return blob


def key_id_of_blob(blob: bytes) -> str:
    """The key id a ciphertext blob names (bytes 1..17: the key's UUID)."""
    assert len(blob) > 21, blob
    return str(uuid.UUID(bytes=blob[1:17]))


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


# ---- fixtures -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("openssl")


@pytest.fixture(scope="module")
def pending(kms, scratch):
    """pending(algorithm) -> (meta, params, material, enc): a PendingImport key of this module, its parameters for
    `algorithm` (RSA_2048) and correctly wrapped 32-byte material. Only for calls that must fail (the key never
    gets material)."""
    cache = {}

    def get(algorithm: str = "RSAES_OAEP_SHA_256"):
        if algorithm not in cache:
            meta = new_external_key(kms, Description=f"never imported ({algorithm})")
            params = get_params(kms, meta, algorithm)
            material = rand_material(scratch)
            cache[algorithm] = (meta, params, material, wrap(scratch, params["PublicKey"], material, algorithm))
        meta = cache[algorithm][0]
        assert state_of(kms, meta["KeyId"]) == "PendingImport", "a rejected import changed the key's state"
        return cache[algorithm]

    return get


# ---- PendingImport -------------------------------------------------------------------------------------------------------


def test_external_key_is_pending_import_until_material_arrives(kms):
    meta = new_external_key(kms)
    m = describe(kms, meta["KeyId"])
    assert m["Origin"] == "EXTERNAL" and m["KeyState"] == "PendingImport" and m["Enabled"] is False, m
    assert "ExpirationModel" not in m and "ValidTo" not in m, m
    assert "ExpirationModel" not in meta and "ValidTo" not in meta, meta
    assert_pending_import(kms, meta)
    for call in (kms.enable_key, kms.disable_key):
        assert_client_error("KMSInvalidStateException", call, KeyId=meta["KeyId"])
    assert state_of(kms, meta["KeyId"]) == "PendingImport"
    # a normal key is not EXTERNAL and has no ExpirationModel
    normal = new_key(kms)
    assert normal["Origin"] == "AWS_KMS" and "ExpirationModel" not in normal, normal


# ---- the openssl round trip ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm,spec", [
    ("RSAES_OAEP_SHA_1", "RSA_2048"),
    ("RSAES_OAEP_SHA_256", "RSA_2048"),
    ("RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"),
    ("RSA_AES_KEY_WRAP_SHA_256", "RSA_2048"),
    ("RSAES_OAEP_SHA_256", "RSA_3072"),
    ("RSA_AES_KEY_WRAP_SHA_1", "RSA_3072"),
    ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096"),  # the only RSA_4096 key generation of the suite
])
def test_openssl_round_trip(kms, scratch, algorithm, spec):
    meta = new_external_key(kms)
    params = get_params(kms, meta, algorithm, spec)
    assert public_key_bits(scratch, params["PublicKey"]) == MODULUS_BITS[spec]
    material = rand_material(scratch)
    _, enc = import_material(kms, scratch, meta, material, algorithm, spec, params=params)
    expected_len = MODULUS_BITS[spec] // 8 + (40 if algorithm in KEY_WRAP else 0)
    assert len(enc) == expected_len
    assert_usable(kms, meta)


def test_parameters_are_fresh_each_time(kms, scratch):
    meta = new_external_key(kms)
    first = get_params(kms, meta, "RSAES_OAEP_SHA_256", "RSA_2048")
    second = get_params(kms, meta, "RSAES_OAEP_SHA_256", "RSA_2048")
    assert first["PublicKey"] != second["PublicKey"], "GetParametersForImport must make a fresh RSA key each time"
    assert first["ImportToken"] != second["ImportToken"]
    # KeyId as the key ARN, for both calls
    r = kms.get_parameters_for_import(KeyId=meta["Arn"], WrappingAlgorithm="RSAES_OAEP_SHA_1",
                                      WrappingKeySpec="RSA_2048")
    assert r["KeyId"] == meta["Arn"] and r["PublicKey"] not in (first["PublicKey"], second["PublicKey"])
    import_material(kms, scratch, {**meta, "KeyId": meta["Arn"]}, rand_material(scratch), "RSAES_OAEP_SHA_1",
                    params=r)
    assert_usable(kms, meta)


def test_import_with_explicit_expiration_models(kms, scratch):
    never = new_external_key(kms)
    import_material(kms, scratch, never, rand_material(scratch), ExpirationModel=DOES_NOT_EXPIRE)
    assert_usable(kms, never, DOES_NOT_EXPIRE)

    expiring = new_external_key(kms)
    valid_to = int(time.time()) + 30 * DAY
    import_material(kms, scratch, expiring, rand_material(scratch), "RSA_AES_KEY_WRAP_SHA_256",
                    ExpirationModel=EXPIRES, ValidTo=valid_to)
    assert_usable(kms, expiring, EXPIRES, valid_to)

    # ValidTo alone means KEY_MATERIAL_EXPIRES
    implied = new_external_key(kms)
    valid_to = int(time.time()) + 364 * DAY
    import_material(kms, scratch, implied, rand_material(scratch), ValidTo=valid_to)
    assert_usable(kms, implied, EXPIRES, valid_to)


# ---- ImportKeyMaterial errors ------------------------------------------------------------------------------------------


def test_token_made_for_another_key(kms, scratch, pending):
    a_meta, a_params, _, a_enc = pending("RSAES_OAEP_SHA_256")
    b_meta = new_external_key(kms)
    # A's token with material wrapped under A's public key, imported into B
    assert_client_error("InvalidImportTokenException", kms.import_key_material, KeyId=b_meta["KeyId"],
                        ImportToken=a_params["ImportToken"], EncryptedKeyMaterial=a_enc, ExpirationModel=DOES_NOT_EXPIRE)
    assert state_of(kms, b_meta["KeyId"]) == "PendingImport"
    assert state_of(kms, a_meta["KeyId"]) == "PendingImport"


@pytest.mark.parametrize("where", ["first", "middle", "last", "truncated", "extended"])
def test_altered_token(kms, pending, where):
    meta, params, _, enc = pending("RSAES_OAEP_SHA_256")
    token = params["ImportToken"]
    altered = {
        "first": lambda t: flip(t, 0),
        "middle": lambda t: flip(t, len(t) // 2),
        "last": lambda t: flip(t, len(t) - 1),
        "truncated": lambda t: t[:-1],
        "extended": lambda t: t + b"\x00",
    }[where](token)
    assert altered != token
    assert_client_error("InvalidImportTokenException", kms.import_key_material, KeyId=meta["KeyId"],
                        ImportToken=altered, EncryptedKeyMaterial=enc, ExpirationModel=DOES_NOT_EXPIRE)


def test_material_wrapped_under_another_public_key(kms, scratch, pending):
    meta, params, material, _ = pending("RSAES_OAEP_SHA_256")
    other = new_external_key(kms)
    other_params = get_params(kms, other, "RSAES_OAEP_SHA_256")
    assert other_params["PublicKey"] != params["PublicKey"]
    enc = wrap(scratch, other_params["PublicKey"], material, "RSAES_OAEP_SHA_256")
    assert_client_error("InvalidCiphertextException", kms.import_key_material, KeyId=meta["KeyId"],
                        ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc, ExpirationModel=DOES_NOT_EXPIRE)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_garbage_material(kms, scratch, pending, algorithm):
    meta, params, material, enc = pending(algorithm)
    garbage = [bytes(len(enc)), rand_material(scratch, len(enc)), flip(enc, 5), enc[:-8], b"\x01" * 16]
    if algorithm in KEY_WRAP:
        rsa_len = len(enc) - 40
        garbage.append(flip(enc, rsa_len + 3))  # RSA part intact, AES-KWP part altered
        garbage.append(flip(enc, len(enc) - 1))
        garbage.append(enc[:rsa_len])  # RSA part alone
    else:
        # the right public key, the other OAEP hash
        other_md = "sha1" if _md(algorithm) == "sha256" else "sha256"
        garbage.append(wrap(scratch, params["PublicKey"], material, algorithm, oaep_md=other_md))
    for i, bad in enumerate(garbage):
        try:
            assert_client_error("InvalidCiphertextException", kms.import_key_material, KeyId=meta["KeyId"],
                                ImportToken=params["ImportToken"], EncryptedKeyMaterial=bad, ExpirationModel=DOES_NOT_EXPIRE)
        except AssertionError as exc:
            raise AssertionError(f"garbage variant #{i} ({len(bad)} bytes): {exc}") from None
    assert state_of(kms, meta["KeyId"]) == "PendingImport"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("size", [16, 31, 33, 64])
def test_material_not_32_bytes(kms, scratch, pending, algorithm, size):
    meta, params, _, _ = pending(algorithm)
    enc = wrap(scratch, params["PublicKey"], rand_material(scratch, size), algorithm)
    assert_client_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=meta["KeyId"],
                        ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc, ExpirationModel=DOES_NOT_EXPIRE)


def test_correct_import_after_rejected_ones(kms, scratch):
    """Rejected attempts leave the key PendingImport and the token usable: the right material then goes in."""
    meta = new_external_key(kms)
    params = get_params(kms, meta, "RSA_AES_KEY_WRAP_SHA_256")
    material = rand_material(scratch)
    enc = wrap(scratch, params["PublicKey"], rand_material(scratch, 16), "RSA_AES_KEY_WRAP_SHA_256")
    assert_client_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=meta["KeyId"],
                        ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc, ExpirationModel=DOES_NOT_EXPIRE)
    assert_client_error("InvalidCiphertextException", kms.import_key_material, KeyId=meta["KeyId"],
                        ImportToken=params["ImportToken"], EncryptedKeyMaterial=b"\x07" * 296, ExpirationModel=DOES_NOT_EXPIRE)
    import_material(kms, scratch, meta, material, "RSA_AES_KEY_WRAP_SHA_256", params=params)
    assert_usable(kms, meta)


def _expiration_cases():
    now = int(time.time())
    return {
        "expires-without-valid-to": {"ExpirationModel": EXPIRES},
        "does-not-expire-with-valid-to": {"ExpirationModel": DOES_NOT_EXPIRE, "ValidTo": now + DAY},
        "valid-to-in-the-past": {"ValidTo": now - HOUR},
        "valid-to-in-the-past-expires": {"ExpirationModel": EXPIRES, "ValidTo": now - 60},
        "valid-to-over-365-days": {"ValidTo": now + 365 * DAY + 600},
        "valid-to-over-365-days-expires": {"ExpirationModel": EXPIRES, "ValidTo": now + 400 * DAY},
        "unknown-expiration-model": {"ExpirationModel": "KEY_MATERIAL_NEVER"},
    }


@pytest.mark.parametrize("case", list(_expiration_cases()))
def test_expiration_rule_violations(kms_raw, kms, pending, case):
    kwargs = _expiration_cases()[case]  # computed now, not at collection time
    meta, params, _, enc = pending("RSAES_OAEP_SHA_1")
    assert_client_error("ValidationException", kms_raw.import_key_material, KeyId=meta["KeyId"],
                        ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc, **kwargs)
    assert "ExpirationModel" not in describe(kms, meta["KeyId"])


def test_reimport_of_different_material(kms, scratch):
    meta = new_external_key(kms)
    material = rand_material(scratch)
    params, _ = import_material(kms, scratch, meta, material, "RSAES_OAEP_SHA_256")
    blob = assert_usable(kms, meta)
    kms.delete_imported_key_material(KeyId=meta["KeyId"])
    other = rand_material(scratch)
    for algorithm in ("RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1"):
        p = params if algorithm == "RSAES_OAEP_SHA_256" else get_params(kms, meta, algorithm)
        enc = wrap(scratch, p["PublicKey"], other, algorithm)
        assert_client_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=meta["KeyId"],
                            ImportToken=p["ImportToken"], EncryptedKeyMaterial=enc, ExpirationModel=DOES_NOT_EXPIRE)
        assert_pending_import(kms, meta, [blob])
    # the original material, wrapped the other way, is accepted and the old ciphertext decrypts again
    import_material(kms, scratch, meta, material, "RSA_AES_KEY_WRAP_SHA_1", params=p)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"
    assert_usable(kms, meta)


# ---- DeleteImportedKeyMaterial ------------------------------------------------------------------------------------------


def test_delete_imported_key_material_and_reimport(kms, scratch):
    meta = new_external_key(kms)
    material = rand_material(scratch)
    params, enc = import_material(kms, scratch, meta, material, "RSA_AES_KEY_WRAP_SHA_256")
    blob = assert_usable(kms, meta)
    ctx = {"k": "v"}
    dk = kms.generate_data_key(KeyId=meta["KeyId"], NumberOfBytes=48, EncryptionContext=ctx)

    # A KeyMaterialId that is not the key's names no material (the key keeps it).
    assert_client_error("NotFoundException", kms.delete_imported_key_material, KeyId=meta["KeyId"],
                        KeyMaterialId="0" * 64)
    current = describe(kms, meta["KeyId"])["CurrentKeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=blob)["KeyMaterialId"] == current
    r = kms.delete_imported_key_material(KeyId=meta["KeyId"], KeyMaterialId=current)
    r.pop("ResponseMetadata", None)
    assert r["KeyMaterialId"] == current, r
    assert set(r) == {"KeyId", "KeyMaterialId"} and r["KeyId"] == meta["Arn"], r
    assert_pending_import(kms, meta, [blob, dk["CiphertextBlob"]])
    for call in (kms.enable_key, kms.disable_key):
        assert_client_error("KMSInvalidStateException", call, KeyId=meta["KeyId"])
    assert_client_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=dk["CiphertextBlob"],
                        EncryptionContext=ctx)

    # the same token and the same EncryptedKeyMaterial once more (a token can be used more than once)
    r = kms.import_key_material(KeyId=meta["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc,
                                ExpirationModel=DOES_NOT_EXPIRE)
    assert r["KeyId"] == meta["Arn"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
    assert_usable(kms, meta)

    # once more, with the same material freshly wrapped under new parameters, now with an expiration date
    kms.delete_imported_key_material(KeyId=meta["KeyId"])
    assert_pending_import(kms, meta, [blob])
    valid_to = int(time.time()) + 10 * DAY
    import_material(kms, scratch, meta, material, "RSAES_OAEP_SHA_1", "RSA_3072", ValidTo=valid_to)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"
    assert_usable(kms, meta, EXPIRES, valid_to)


def test_delete_imported_key_material_of_an_aws_kms_key(kms):
    normal = new_key(kms)
    assert_client_error("UnsupportedOperationException", kms.delete_imported_key_material, KeyId=normal["KeyId"])
    assert state_of(kms, normal["KeyId"]) == "Enabled"


# ---- GetParametersForImport errors --------------------------------------------------------------------------------------


def test_get_parameters_for_an_aws_kms_key(kms):
    normal = new_key(kms)
    assert_client_error("UnsupportedOperationException", kms.get_parameters_for_import, KeyId=normal["KeyId"],
                        WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")


@pytest.mark.parametrize("algorithm,spec", [
    ("RSAES_PKCS1_V1_5", "RSA_2048"),
    ("RSAES_OAEP_SHA_384", "RSA_2048"),
    ("SM2PKE", "RSA_2048"),
    ("rsaes_oaep_sha_256", "RSA_2048"),
    ("", "RSA_2048"),
    ("RSAES_OAEP_SHA_256", "RSA_1024"),
    ("RSAES_OAEP_SHA_256", "RSA_8192"),
    ("RSAES_OAEP_SHA_256", "SM2"),
    ("RSA_AES_KEY_WRAP_SHA_256", "rsa_2048"),
    ("RSAES_OAEP_SHA_256", ""),
])
def test_get_parameters_bad_algorithm_or_spec(kms_raw, pending, algorithm, spec):
    meta = pending("RSAES_OAEP_SHA_256")[0]
    assert_client_error("ValidationException", kms_raw.get_parameters_for_import, KeyId=meta["KeyId"],
                        WrappingAlgorithm=algorithm, WrappingKeySpec=spec)


def test_get_parameters_for_a_key_pending_deletion(kms, scratch):
    meta = new_external_key(kms)
    import_material(kms, scratch, meta, rand_material(scratch))
    kms.schedule_key_deletion(KeyId=meta["KeyId"], PendingWindowInDays=7)
    assert_client_error("KMSInvalidStateException", kms.get_parameters_for_import, KeyId=meta["KeyId"],
                        WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")


def test_get_parameters_for_an_unknown_key(kms):
    assert_client_error("NotFoundException", kms.get_parameters_for_import, KeyId=str(uuid.uuid4()),
                        WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048")


# ---- rotation ---------------------------------------------------------------------------------------------------------------


def test_rotation_of_an_external_key_is_unsupported(kms, scratch):
    meta = new_external_key(kms)
    import_material(kms, scratch, meta, rand_material(scratch))
    assert_client_error("UnsupportedOperationException", kms.enable_key_rotation, KeyId=meta["KeyId"])
    assert_client_error("UnsupportedOperationException", kms.enable_key_rotation, KeyId=meta["KeyId"],
                        RotationPeriodInDays=90)
    assert_client_error("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=meta["KeyId"])
    blob = kms.encrypt(KeyId=meta["KeyId"], Plaintext=b"v1")["CiphertextBlob"]
    assert int.from_bytes(blob[17:21], "big") == 1, blob[:21]


# ---- two keys, the same material ------------------------------------------------------------------------------------


def test_same_material_in_two_keys(kms, scratch):
    material = rand_material(scratch)
    a = new_external_key(kms, Description="same material A")
    b = new_external_key(kms, Description="same material B")
    import_material(kms, scratch, a, material, "RSAES_OAEP_SHA_256")
    import_material(kms, scratch, b, material, "RSA_AES_KEY_WRAP_SHA_1")
    blob_a = kms.encrypt(KeyId=a["KeyId"], Plaintext=b"same material")["CiphertextBlob"]
    blob_b = kms.encrypt(KeyId=b["KeyId"], Plaintext=b"same material")["CiphertextBlob"]
    dk_a = kms.generate_data_key(KeyId=a["KeyId"], KeySpec="AES_256")
    for blob, own, other in [(blob_a, a, b), (blob_b, b, a), (dk_a["CiphertextBlob"], a, b)]:
        assert key_id_of_blob(blob) == own["KeyId"]
        # without KeyId the blob names its own key
        r = kms.decrypt(CiphertextBlob=blob)
        assert r["KeyId"] == own["Arn"], r
        assert kms.decrypt(CiphertextBlob=blob, KeyId=own["Arn"])["KeyId"] == own["Arn"]
        # the other key, though it holds the very same material, does not take it
        assert_client_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, KeyId=other["KeyId"])
        assert_client_error("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, KeyId=other["Arn"])
        # nor does relabelling the blob as the other key's (the key id is authenticated)
        relabelled = blob[:1] + uuid.UUID(other["KeyId"]).bytes + blob[17:]
        assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=relabelled)
        assert_client_error("InvalidCiphertextException", kms.decrypt, CiphertextBlob=relabelled,
                            KeyId=other["KeyId"])
    assert kms.decrypt(CiphertextBlob=dk_a["CiphertextBlob"])["Plaintext"] == dk_a["Plaintext"]
    # A's material gone: A's blobs don't decrypt, even though B holds the same material
    kms.delete_imported_key_material(KeyId=a["KeyId"])
    assert_client_error("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob_a)
    assert kms.decrypt(CiphertextBlob=blob_b)["Plaintext"] == b"same material"


# ---- the dev clock: token age and ValidTo (own servers) ----------------------------------------------------------------


def test_import_token_expires_after_24_hours(fresh_server, tmp_path):
    kms, rc = fresh_server.client(), RawClient(fresh_server)
    young, old = new_external_key(kms), new_external_key(kms)
    material_young, material_old = rand_material(tmp_path), rand_material(tmp_path)
    p_young = get_params(kms, young, "RSAES_OAEP_SHA_256")
    p_old = get_params(kms, old, "RSA_AES_KEY_WRAP_SHA_256")
    enc_young = wrap(tmp_path, p_young["PublicKey"], material_young, "RSAES_OAEP_SHA_256")
    enc_old = wrap(tmp_path, p_old["PublicKey"], material_old, "RSA_AES_KEY_WRAP_SHA_256")

    offset = advance(rc, 23 * HOUR)
    r = kms.import_key_material(KeyId=young["KeyId"], ImportToken=p_young["ImportToken"],
                                EncryptedKeyMaterial=enc_young, ExpirationModel=DOES_NOT_EXPIRE)
    assert r["KeyId"] == young["Arn"], "a 23-hour-old token must still work"
    blob = assert_usable(kms, young)

    offset = advance(rc, 2 * HOUR)
    assert_client_error("ExpiredImportTokenException", kms.import_key_material, KeyId=old["KeyId"],
                        ImportToken=p_old["ImportToken"], EncryptedKeyMaterial=enc_old, ExpirationModel=DOES_NOT_EXPIRE)
    assert state_of(kms, old["KeyId"]) == "PendingImport"
    # the token that worked before is too old now as well
    kms.delete_imported_key_material(KeyId=young["KeyId"])
    assert_client_error("ExpiredImportTokenException", kms.import_key_material, KeyId=young["KeyId"],
                        ImportToken=p_young["ImportToken"], EncryptedKeyMaterial=enc_young, ExpirationModel=DOES_NOT_EXPIRE)
    # new parameters are valid for 24 h from the moved clock and work
    fresh = get_params(kms, old, "RSA_AES_KEY_WRAP_SHA_256", clock_offset=offset)
    import_material(kms, tmp_path, old, material_old, "RSA_AES_KEY_WRAP_SHA_256", params=fresh)
    assert_usable(kms, old)
    fresh = get_params(kms, young, "RSAES_OAEP_SHA_1", clock_offset=offset)
    import_material(kms, tmp_path, young, material_young, "RSAES_OAEP_SHA_1", params=fresh)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"


def test_material_expires_at_valid_to(fresh_server, tmp_path):
    kms, rc = fresh_server.client(), RawClient(fresh_server)
    offset = 0
    now = int(time.time())
    soon, later, never = (new_external_key(kms, Description=d) for d in ("expires in 2 days", "expires in 3 days",
                                                                          "never expires"))
    material = rand_material(tmp_path)
    soon_valid_to, later_valid_to = now + 2 * DAY, now + 3 * DAY
    import_material(kms, tmp_path, soon, material, ExpirationModel=EXPIRES, ValidTo=soon_valid_to)
    import_material(kms, tmp_path, later, rand_material(tmp_path), "RSA_AES_KEY_WRAP_SHA_1", ValidTo=later_valid_to)
    import_material(kms, tmp_path, never, rand_material(tmp_path))
    blob_soon = assert_usable(kms, soon, EXPIRES, soon_valid_to)
    blob_later = assert_usable(kms, later, EXPIRES, later_valid_to)
    blob_never = assert_usable(kms, never)

    offset = advance(rc, DAY)
    assert kms.decrypt(CiphertextBlob=blob_soon)["Plaintext"] == b"imported", "material expired a day early"
    assert state_of(kms, soon["KeyId"]) == "Enabled"

    offset = advance(rc, DAY + 120)  # past soon's ValidTo
    assert_pending_import(kms, soon, [blob_soon])
    assert kms.decrypt(CiphertextBlob=blob_later)["Plaintext"] == b"imported"
    assert kms.decrypt(CiphertextBlob=blob_never)["Plaintext"] == b"imported"
    assert state_of(kms, later["KeyId"]) == state_of(kms, never["KeyId"]) == "Enabled"

    # re-import: the old token is 2 days old now, so new parameters; ValidTo is judged by the moved clock
    params = get_params(kms, soon, clock_offset=offset)
    enc_other = wrap(tmp_path, params["PublicKey"], rand_material(tmp_path), "RSAES_OAEP_SHA_256")
    assert_client_error("IncorrectKeyMaterialException", kms.import_key_material, KeyId=soon["KeyId"],
                        ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc_other, ExpirationModel=DOES_NOT_EXPIRE)
    enc = wrap(tmp_path, params["PublicKey"], material, "RSAES_OAEP_SHA_256")
    real_now = int(time.time())
    assert_client_error("ValidationException", kms.import_key_material, KeyId=soon["KeyId"],
                        ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc,
                        ValidTo=real_now + DAY)  # in the future by the real clock, in the past by the service's
    new_valid_to = real_now + offset + 10 * DAY
    kms.import_key_material(KeyId=soon["KeyId"], ImportToken=params["ImportToken"], EncryptedKeyMaterial=enc,
                            ValidTo=new_valid_to)
    assert kms.decrypt(CiphertextBlob=blob_soon)["Plaintext"] == b"imported", "old ciphertext after re-import"
    assert_usable(kms, soon, EXPIRES, new_valid_to)

    advance(rc, DAY)  # past later's ValidTo (3 days)
    assert_pending_import(kms, later, [blob_later])
    assert state_of(kms, soon["KeyId"]) == state_of(kms, never["KeyId"]) == "Enabled"

    # a restart (the clock offset is gone) keeps imported material, its ValidTo, and expired material deleted
    fresh_server.restart()
    kms = fresh_server.client()
    assert_pending_import(kms, later, [blob_later])
    assert kms.decrypt(CiphertextBlob=blob_soon)["Plaintext"] == b"imported"
    assert kms.decrypt(CiphertextBlob=blob_never)["Plaintext"] == b"imported"
    assert_usable(kms, soon, EXPIRES, new_valid_to)
    assert_usable(kms, never)


# ---- the AWS CLI ---------------------------------------------------------------------------------------------------------


def test_cli_import_round_trip(server, kms, tmp_path):
    created = server.aws_ok("create-key", "--origin", "EXTERNAL", "--description", "cli import")["KeyMetadata"]
    assert created["Origin"] == "EXTERNAL" and created["KeyState"] == "PendingImport", created
    key_id, arn = created["KeyId"], created["Arn"]
    cli_fails_with(server, "KMSInvalidStateException", "encrypt", "--key-id", key_id, "--plaintext",
                   base64.b64encode(b"x").decode())

    out = server.aws_ok("get-parameters-for-import", "--key-id", key_id, "--wrapping-algorithm",
                        "RSA_AES_KEY_WRAP_SHA_256", "--wrapping-key-spec", "RSA_2048")
    assert out["KeyId"] == arn, out
    d = tmp_path / "cli"
    d.mkdir()
    public = base64.b64decode(out["PublicKey"], validate=True)
    token = base64.b64decode(out["ImportToken"], validate=True)
    (d / "token.bin").write_bytes(token)
    assert public_key_bits(tmp_path, public) == 2048
    material = rand_material(tmp_path)
    (d / "enc.bin").write_bytes(wrap(tmp_path, public, material, "RSA_AES_KEY_WRAP_SHA_256"))

    valid_to = int(time.time()) + 30 * DAY
    iso = datetime.datetime.fromtimestamp(valid_to, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rc, res, err = server.aws("import-key-material", "--key-id", key_id, "--encrypted-key-material",
                              f"fileb://{d / 'enc.bin'}", "--import-token", f"fileb://{d / 'token.bin'}",
                              "--expiration-model", EXPIRES, "--valid-to", iso)
    assert rc == 0, err
    assert res["KeyId"] == arn and len(res["KeyMaterialId"]) == 64, res
    meta = server.aws_ok("describe-key", "--key-id", key_id)["KeyMetadata"]
    assert meta["Origin"] == "EXTERNAL" and meta["KeyState"] == "Enabled" and meta["Enabled"] is True, meta
    assert meta["ExpirationModel"] == EXPIRES, meta
    v = meta["ValidTo"]
    v = float(v) if isinstance(v, (int, float)) else datetime.datetime.fromisoformat(
        v.replace("Z", "+00:00")).timestamp()
    assert v == valid_to, (meta["ValidTo"], valid_to)
    blob = assert_usable(kms, {"KeyId": key_id, "Arn": arn}, EXPIRES, valid_to)

    out = server.aws_ok("delete-imported-key-material", "--key-id", key_id)
    assert out["KeyId"] == arn and out["KeyMaterialId"] == res["KeyMaterialId"], out
    assert_pending_import(kms, {"KeyId": key_id, "Arn": arn}, [blob])
    # different material through the CLI is refused
    (d / "other.bin").write_bytes(wrap(tmp_path, public, rand_material(tmp_path), "RSA_AES_KEY_WRAP_SHA_256"))
    cli_fails_with(server, "IncorrectKeyMaterialException", "import-key-material", "--key-id", key_id,
                   "--encrypted-key-material", f"fileb://{d / 'other.bin'}", "--import-token",
                   f"fileb://{d / 'token.bin'}", "--expiration-model", DOES_NOT_EXPIRE)
    # same material, same token, no expiry this time
    assert server.aws("import-key-material", "--key-id", key_id, "--encrypted-key-material",
                      f"fileb://{d / 'enc.bin'}", "--import-token", f"fileb://{d / 'token.bin'}",
                      "--expiration-model", DOES_NOT_EXPIRE)[0] == 0
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"imported"
    assert describe(kms, key_id)["ExpirationModel"] == DOES_NOT_EXPIRE
    cli_fails_with(server, "UnsupportedOperationException", "rotate-key-on-demand", "--key-id", key_id)
