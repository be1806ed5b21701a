"""The real AWS CLI (v1) against kms-host dev, configured only by the data dir's files."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

from kmstest import CLI_TIMEOUT, UUID_RE, aws_cli, key_arn, unique


def decode_b64(value: str) -> bytes:
    return base64.b64decode(value.strip(), validate=True)


@pytest.fixture(scope="module")
def cli_key(server):
    out = server.aws_ok(
        "create-key",
        "--description", "e2e cli key",
        "--tags", "TagKey=env,TagValue=e2e", "TagKey=owner,TagValue=cli",
    )
    return out["KeyMetadata"]


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return f"fileb://{path}"


def cli_encrypt(server, tmp_path, key_id, plaintext: bytes, context=None) -> tuple[str, dict]:
    args = ["encrypt", "--key-id", key_id, "--plaintext", write(tmp_path, "pt.bin", plaintext)]
    if context is not None:
        args += ["--encryption-context", json.dumps(context)]
    out = server.aws_ok(*args)
    blob = decode_b64(out["CiphertextBlob"])
    return write(tmp_path, "ct.bin", blob), out


def cli_decrypt_plaintext(server, ciphertext_arg, context=None, key_id=None) -> bytes:
    args = ["decrypt", "--ciphertext-blob", ciphertext_arg]
    if context is not None:
        args += ["--encryption-context", json.dumps(context)]
    if key_id is not None:
        args += ["--key-id", key_id]
    text = server.aws_ok(*args, "--query", "Plaintext", output="text")
    return decode_b64(text)


def test_create_key_with_description_and_tags(server, cli_key):
    assert UUID_RE.match(cli_key["KeyId"]), cli_key
    assert cli_key["Arn"] == key_arn(server.region, "000000000000", cli_key["KeyId"])
    assert cli_key["Description"] == "e2e cli key"
    assert cli_key["Enabled"] is True
    assert cli_key["KeyState"] == "Enabled"
    assert cli_key["KeyUsage"] == "ENCRYPT_DECRYPT"


def test_describe_key(server, cli_key):
    out = server.aws_ok("describe-key", "--key-id", cli_key["KeyId"])
    meta = out["KeyMetadata"]
    assert meta["KeyId"] == cli_key["KeyId"]
    assert meta["Arn"] == cli_key["Arn"]
    assert meta["Description"] == "e2e cli key"
    by_arn = server.aws_ok("describe-key", "--key-id", cli_key["Arn"])
    assert by_arn["KeyMetadata"]["KeyId"] == cli_key["KeyId"]


def test_list_keys(server, cli_key):
    out = server.aws_ok("list-keys")
    entries = {k["KeyId"]: k["KeyArn"] for k in out["Keys"]}
    assert entries.get(cli_key["KeyId"]) == cli_key["Arn"], out


@pytest.mark.parametrize("context", [None, {"purpose": "e2e", "tenant": "cli"}],
                         ids=["no-context", "with-context"])
def test_encrypt_decrypt_round_trip(server, cli_key, tmp_path, context):
    plaintext = os.urandom(200) + b"\x00binary\xff"
    ct_arg, enc = cli_encrypt(server, tmp_path, cli_key["KeyId"], plaintext, context)
    assert enc["KeyId"] == cli_key["Arn"]
    assert cli_decrypt_plaintext(server, ct_arg, context) == plaintext
    # Decrypt's full JSON names the key.
    args = ["decrypt", "--ciphertext-blob", ct_arg]
    if context is not None:
        args += ["--encryption-context", json.dumps(context)]
    out = server.aws_ok(*args)
    assert out["KeyId"] == cli_key["Arn"]
    assert decode_b64(out["Plaintext"]) == plaintext


def test_decrypt_with_wrong_context_fails(server, cli_key, tmp_path):
    ct_arg, _ = cli_encrypt(server, tmp_path, cli_key["KeyId"], b"secret", {"a": "1"})
    code, _, err = server.aws("decrypt", "--ciphertext-blob", ct_arg,
                              "--encryption-context", json.dumps({"a": "2"}))
    assert code != 0
    assert "InvalidCiphertextException" in err, err
    code, _, err = server.aws("decrypt", "--ciphertext-blob", ct_arg)
    assert code != 0
    assert "InvalidCiphertextException" in err, err


def test_decrypt_with_key_id(server, cli_key, tmp_path):
    ct_arg, _ = cli_encrypt(server, tmp_path, cli_key["KeyId"], b"with key id")
    assert cli_decrypt_plaintext(server, ct_arg, key_id=cli_key["KeyId"]) == b"with key id"


@pytest.mark.parametrize("context", [None, {"bucket": "b1"}], ids=["no-context", "with-context"])
def test_generate_data_key_aes_256(server, cli_key, tmp_path, context):
    args = ["generate-data-key", "--key-id", cli_key["KeyId"], "--key-spec", "AES_256"]
    if context is not None:
        args += ["--encryption-context", json.dumps(context)]
    out = server.aws_ok(*args)
    plaintext = decode_b64(out["Plaintext"])
    assert len(plaintext) == 32
    assert out["KeyId"] == cli_key["Arn"]
    ct_arg = write(tmp_path, "dk.bin", decode_b64(out["CiphertextBlob"]))
    assert cli_decrypt_plaintext(server, ct_arg, context) == plaintext


def test_generate_data_key_number_of_bytes(server, cli_key, tmp_path):
    out = server.aws_ok("generate-data-key", "--key-id", cli_key["KeyId"], "--number-of-bytes", "64")
    plaintext = decode_b64(out["Plaintext"])
    assert len(plaintext) == 64
    ct_arg = write(tmp_path, "dk64.bin", decode_b64(out["CiphertextBlob"]))
    assert cli_decrypt_plaintext(server, ct_arg) == plaintext


def test_generate_data_key_without_plaintext(server, cli_key, tmp_path):
    out = server.aws_ok("generate-data-key-without-plaintext", "--key-id", cli_key["KeyId"],
                        "--key-spec", "AES_256", "--encryption-context", '{"k":"v"}')
    assert "Plaintext" not in out, out
    assert out["KeyId"] == cli_key["Arn"]
    ct_arg = write(tmp_path, "dkwp.bin", decode_b64(out["CiphertextBlob"]))
    assert len(cli_decrypt_plaintext(server, ct_arg, {"k": "v"})) == 32


def test_generate_random(server):
    out = server.aws_ok("generate-random", "--number-of-bytes", "48")
    assert len(decode_b64(out["Plaintext"])) == 48
    text = server.aws_ok("generate-random", "--number-of-bytes", "16", "--query", "Plaintext",
                         output="text")
    assert len(decode_b64(text)) == 16


def test_alias_lifecycle(server, cli_key, tmp_path):
    name = unique("alias/cli")
    code, out, err = server.aws("create-alias", "--alias-name", name,
                                "--target-key-id", cli_key["KeyId"])
    assert code == 0, err
    assert out is None, f"create-alias should print nothing, got {out!r}"

    aliases = server.aws_ok("list-aliases")["Aliases"]
    mine = [a for a in aliases if a["AliasName"] == name]
    assert len(mine) == 1, aliases
    assert mine[0]["TargetKeyId"] == cli_key["KeyId"]
    assert mine[0]["AliasArn"] == f"arn:aws:kms:{server.region}:000000000000:{name}"

    filtered = server.aws_ok("list-aliases", "--key-id", cli_key["KeyId"])["Aliases"]
    assert name in {a["AliasName"] for a in filtered}
    assert all(a.get("TargetKeyId") == cli_key["KeyId"] for a in filtered), filtered

    # The alias works as a KeyId.
    ct_arg, enc = cli_encrypt(server, tmp_path, name, b"via alias")
    assert enc["KeyId"] == cli_key["Arn"]
    assert cli_decrypt_plaintext(server, ct_arg) == b"via alias"
    assert server.aws_ok("describe-key", "--key-id", name)["KeyMetadata"]["KeyId"] == cli_key["KeyId"]

    code, out, err = server.aws("delete-alias", "--alias-name", name)
    assert code == 0, err
    aliases = server.aws_ok("list-aliases")["Aliases"]
    assert name not in {a["AliasName"] for a in aliases}
    code, _, err = server.aws("describe-key", "--key-id", name)
    assert code != 0 and "NotFoundException" in err, err


def test_not_found_error(server):
    code, out, err = server.aws("describe-key", "--key-id", str(uuid.uuid4()))
    assert code != 0, f"expected failure, got {out!r}"
    assert out is None
    assert "NotFoundException" in err, err


def test_env_file_alone_configures_the_cli(server, tmp_path):
    """`. DIR/env; aws kms create-key` in an otherwise empty environment."""
    home = tmp_path / "home"
    home.mkdir()
    venv_bin = aws_cli().parent
    env_file = server.data_dir / "env"
    script = (
        f". {shlex.quote(str(env_file))} && "
        f"aws kms create-key --description from-env-file --output json && "
        f"aws kms list-keys --output json"
    )
    cmd = ["env", "-i", f"PATH={venv_bin}:/usr/local/bin:/usr/bin:/bin", f"HOME={home}",
           "bash", "-c", script]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    decoder = json.JSONDecoder()
    created, end = decoder.raw_decode(proc.stdout.lstrip())
    listed, _ = decoder.raw_decode(proc.stdout.lstrip()[end:].lstrip())
    key_id = created["KeyMetadata"]["KeyId"]
    assert created["KeyMetadata"]["Description"] == "from-env-file"
    assert key_id in {k["KeyId"] for k in listed["Keys"]}
