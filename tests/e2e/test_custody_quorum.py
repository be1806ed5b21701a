"""The `quorum` domain-key source end to end: 2-of-3 initialisation, sealed restart, unsealing by two operators
with bad, foreign, replayed and wrong-PCR submissions refused in between, data surviving the restart, bad input, and
a secret scan that reconstructs the domain key from the operators' shares (as only operators can) and looks for it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import base64
import json
import os
import signal
import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kmstest import KmsServer, b64, read_credentials, scrub_aws_environment
from test_secrets import read_tree, scan

SEALED_LINE = b"sealed: waiting for 2 of 3 shares"
ENDPOINT_PREFIX = b"unseal endpoint: "


def run(host_bin, *args, timeout=60):
    return subprocess.run([str(host_bin), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=scrub_aws_environment(os.environ))


def keygen(host_bin, d: Path) -> Path:
    proc = run(host_bin, "quorum", "keygen", "--out-dir", d)
    assert proc.returncode == 0, proc.stderr
    return d


# ---- what an operator can compute on its own: open its share (RFC 9180), recombine (Shamir over GF(2^8)) --------

def cbor(data: bytes):
    """A minimal CBOR decoder for the share file (maps, text, bytes, unsigned ints)."""
    def item(i):
        major, info = data[i] >> 5, data[i] & 31
        i += 1
        if info < 24:
            n = info
        else:
            size = {24: 1, 25: 2, 26: 4, 27: 8}[info]
            n = int.from_bytes(data[i:i + size], "big")
            i += size
        if major == 0:
            return n, i
        if major == 1:
            return -1 - n, i
        if major == 6:
            return item(i)
        if major == 7:
            return {20: False, 21: True, 22: None}.get(info), i
        if major in (2, 3):
            raw = data[i:i + n]
            return (raw if major == 2 else raw.decode()), i + n
        if major == 4:
            out = []
            for _ in range(n):
                v, i = item(i)
                out.append(v)
            return out, i
        if major == 5:
            out = {}
            for _ in range(n):
                k, i = item(i)
                out[k], i = item(i)
            return out, i
        raise ValueError(f"unexpected CBOR major type {major}")
    value, end = item(0)
    assert end == len(data)
    return value


def labeled_extract(suite, salt, label, ikm):
    return hmac.new(salt or b"\0" * 48, b"HPKE-v1" + suite + label + ikm, hashlib.sha384).digest()


def labeled_expand(suite, prk, label, info, n):
    return hmac.new(prk, n.to_bytes(2, "big") + b"HPKE-v1" + suite + label + info + b"\x01", hashlib.sha384).digest()[:n]


def hpke_open(private_pem: bytes, info: bytes, sealed: bytes) -> bytes:
    kem, suite = b"KEM\x00\x11", b"HPKE\x00\x11\x00\x02\x00\x02"
    sk = serialization.load_pem_private_key(private_pem, None)
    enc, ct = sealed[:97], sealed[97:]
    dh = sk.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), enc))
    pk_r = sk.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    shared = labeled_expand(kem, labeled_extract(kem, b"", b"eae_prk", dh), b"shared_secret", enc + pk_r, 48)
    context = b"\0" + labeled_extract(suite, b"", b"psk_id_hash", b"") + labeled_extract(suite, b"", b"info_hash", info)
    secret = labeled_extract(suite, shared, b"secret", b"")
    key = labeled_expand(suite, secret, b"key", context, 32)
    nonce = labeled_expand(suite, secret, b"base_nonce", context, 12)
    return AESGCM(key).decrypt(nonce, ct, b"")


def hpke_seal(recipient_point: bytes, info: bytes, plaintext: bytes) -> bytes:
    kem, suite = b"KEM\x00\x11", b"HPKE\x00\x11\x00\x02\x00\x02"
    eph = ec.generate_private_key(ec.SECP384R1())
    enc = eph.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    dh = eph.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), recipient_point))
    shared = labeled_expand(kem, labeled_extract(kem, b"", b"eae_prk", dh), b"shared_secret", enc + recipient_point, 48)
    context = b"\0" + labeled_extract(suite, b"", b"psk_id_hash", b"") + labeled_extract(suite, b"", b"info_hash", info)
    secret = labeled_extract(suite, shared, b"secret", b"")
    key = labeled_expand(suite, secret, b"key", context, 32)
    nonce = labeled_expand(suite, secret, b"base_nonce", context, 12)
    return enc + AESGCM(key).encrypt(nonce, plaintext, b"")


def open_share(path: Path, private_pem: bytes) -> tuple[int, bytes]:
    f = cbor(path.read_bytes())
    info = (b"enclave-kms quorum share v1" + f["deployment_id"] + f["settings_digest"]
            + bytes([f["index"], f["threshold"], f["count"]]))
    return f["index"], hpke_open(private_pem, info, f["ciphertext"])


def gf_mul(a, b):
    p = 0
    for _ in range(8):
        if b & 1:
            p ^= a
        a = ((a << 1) ^ (0x1B if a & 0x80 else 0)) & 0xFF
        b >>= 1
    return p


def gf_inv(a):
    r = 1
    for _ in range(254):
        r = gf_mul(r, a)
    return r


def combine(shares: dict[int, bytes]) -> bytes:
    out = bytearray(32)
    for j, y in shares.items():
        num = den = 1
        for k in shares:
            if k != j:
                num, den = gf_mul(num, k), gf_mul(den, j ^ k)
        lag = gf_mul(num, gf_inv(den))
        for b in range(32):
            out[b] ^= gf_mul(y[b], lag)
    return bytes(out)


# ---- the deployment ---------------------------------------------------------------------------------------------

class Deployment:
    def __init__(self, root: Path, host_bin, ops, admin, name, threshold=2):
        self.host_bin = host_bin
        self.ops = ops
        self.admin = admin
        self.dir = root / name
        args = ["--domain-key", "quorum"]
        for op in ops:
            args += ["--operator", op / "public.pem"]
        self.init_args = args + ["--threshold", str(threshold), "--admin-public-key", admin / "public.pem", "--init"]
        self.server = KmsServer(self.dir, extra_args=self.init_args, binary=host_bin, extra_env={"RUST_LOG": "debug"})

    def share(self, i: int) -> Path:
        return self.dir / "quorum" / f"share-{i}.enc"

    def pcr0(self) -> str:
        return json.loads((self.dir / "pcrs.json").read_text())["0"]

    def client(self, creds: Path):
        access, secret = read_credentials(creds)
        return boto3.client(
            "kms", region_name="us-east-1", endpoint_url=self.server.env_file["AWS_ENDPOINT_URL_KMS"],
            aws_access_key_id=access, aws_secret_access_key=secret, verify=str(self.dir / "ca.pem"),
            config=Config(retries={"total_max_attempts": 1}))

    def start_sealed(self):
        """Starts without --init in a thread (its start() returns at `ready:`); returns (thread, unseal endpoint)."""
        self.server.extra_args = ["--domain-key", "quorum"]
        errors = []

        def start():
            try:
                self.server.start(timeout=300)
            except BaseException as exc:  # pytest.fail in the thread: report it in the test
                errors.append(exc)
        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = bytes(self.server._stdout)
            if SEALED_LINE in out and ENDPOINT_PREFIX in out:
                line = out[out.index(ENDPOINT_PREFIX):].split(b"\n")[0]
                return thread, errors, line[len(ENDPOINT_PREFIX):].decode().strip()
            assert not errors, errors
            time.sleep(0.05)
        pytest.fail(f"no sealed line; stdout: {bytes(self.server._stdout)!r}")

    def unseal(self, endpoint, share: Path, op: Path, pcr0: str | None = None):
        return run(self.host_bin, "quorum", "unseal", "--endpoint", endpoint, "--share", share,
                   "--private-key", op / "private.pem", "--expected-pcr", f"0={pcr0 or self.pcr0()}",
                   "--sim-root", self.dir / "sim-root.pem")


def raw_call(endpoint: str, target: str, body: dict) -> tuple[int, dict]:
    """A JSON call without certificate checks (the sealed endpoint's certificate is ephemeral)."""
    host, port = endpoint.removeprefix("https://").rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=ssl._create_unverified_context(), timeout=30)
    conn.request("POST", "/", json.dumps(body), {"X-Amz-Target": target,
                                                 "Content-Type": "application/x-amz-json-1.1"})
    resp = conn.getresponse()
    data = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, data


@pytest.fixture(scope="module")
def world(tmp_path_factory, host_bin):
    root = tmp_path_factory.mktemp("quorum")
    ops = [keygen(host_bin, root / f"op{i}") for i in (1, 2, 3)]
    admin = keygen(host_bin, root / "admin")
    main = Deployment(root, host_bin, ops, admin, "main")
    other = Deployment(root, host_bin, ops, admin, "other")
    # Same operators and admin, another threshold: another settings digest.
    third = Deployment(root, host_bin, ops, admin, "third", threshold=3)
    try:
        for dep in (main, other, third):
            dep.server.start()
            out = dep.server.stdout_text
            assert "settings digest: " in out
            assert not (dep.dir / "credentials").exists(), "quorum mode must not write DIR/credentials"
            assert [p.name for p in sorted((dep.dir / "quorum").iterdir())] == \
                ["share-1.enc", "share-2.enc", "share-3.enc"]
        creds = root / "admin-credentials"
        proc = run(host_bin, "admin", "open-bootstrap", "--data-dir", main.dir, "--private-key",
                   admin / "private.pem", "--credentials-out", creds)
        assert proc.returncode == 0, proc.stderr
        kms = main.client(creds)
        key_id = kms.create_key(Description="before the restart")["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept across the seal")["CiphertextBlob"]
        data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
        for dep in (main, other, third):
            dep.server.stop()
        yield {"root": root, "main": main, "other": other, "third": third, "ops": ops, "admin": admin, "creds": creds,
               "key_id": key_id, "blob": blob, "data_key": data_key}
    finally:
        for dep in (main, other, third):
            dep.server.close()


def test_quorum_unseal_refuses_bad_submissions_and_then_unseals(world, host_bin):
    main, other, ops = world["main"], world["other"], world["ops"]
    thread, errors, endpoint = main.start_sealed()

    # While sealed: the normal API answers a clear error; the status is readable.
    status, body = raw_call(endpoint, "TrentService.ListKeys", {})
    assert status == 400 and body["__type"] == "KMSInvalidStateException", body
    assert "sealed" in body["message"]
    status, body = raw_call(endpoint, "EnclaveKms.GetUnsealStatus", {})
    assert status == 200 and body["Sealed"] and body["Threshold"] == 2 and body["Shares"] == 3, body
    assert body["SharesAccepted"] == []

    # Wrong enclave PCR: the CLI refuses before sending anything.
    proc = main.unseal(endpoint, main.share(1), ops[0], pcr0="00" * 48)
    assert proc.returncode != 0 and "pcr" in proc.stderr.lower(), proc.stderr
    assert proc.stderr.strip().count("\n") == 0, "one line"
    assert raw_call(endpoint, "EnclaveKms.GetUnsealStatus", {})[1]["SharesAccepted"] == []

    # A share with flipped bytes is refused.
    bad = world["root"] / "flipped.enc"
    raw = bytearray(main.share(1).read_bytes())
    raw[-20] ^= 0xFF
    bad.write_bytes(bytes(raw))
    proc = main.unseal(endpoint, bad, ops[0])
    assert proc.returncode != 0 and "cannot open share 1" in proc.stderr, proc.stderr

    # Another deployment's share (same operators, same settings): refused by the enclave.
    proc = main.unseal(endpoint, other.share(1), ops[0])
    assert proc.returncode != 0 and "another deployment" in proc.stderr, proc.stderr

    # A share made under other settings (threshold 3): the CLI refuses before sending (the digests differ).
    proc = main.unseal(endpoint, world["third"].share(1), ops[0])
    assert proc.returncode != 0 and "settings digest" in proc.stderr and "not sent" in proc.stderr, proc.stderr
    assert raw_call(endpoint, "EnclaveKms.GetUnsealStatus", {})[1]["SharesAccepted"] == []

    # Someone else's share with my key: refused.
    proc = main.unseal(endpoint, main.share(2), ops[0])
    assert proc.returncode != 0 and "cannot open share 2" in proc.stderr, proc.stderr

    # Operator 1: accepted, one more needed. Again: refused as a replay, not counted twice.
    proc = main.unseal(endpoint, main.share(1), ops[0])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "accepted: 1 more share needed"
    proc = main.unseal(endpoint, main.share(1), ops[0])
    assert proc.returncode != 0 and "already accepted" in proc.stderr, proc.stderr
    assert raw_call(endpoint, "EnclaveKms.GetUnsealStatus", {})[1]["SharesAccepted"] == [1]

    # Operator 3 completes it; the host then prints its ready line.
    proc = main.unseal(endpoint, main.share(3), ops[2])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "accepted: unsealed"
    thread.join(60)
    assert not errors, errors
    assert main.server.endpoint, "no ready line after unsealing"

    # The admin key from open-bootstrap works, and data from before the restart decrypts.
    kms = main.client(world["creds"])
    assert kms.decrypt(CiphertextBlob=world["blob"])["Plaintext"] == b"kept across the seal"
    assert kms.decrypt(CiphertextBlob=world["data_key"]["CiphertextBlob"])["Plaintext"] == \
        world["data_key"]["Plaintext"]
    assert world["key_id"] in [k["KeyId"] for k in kms.list_keys()["Keys"]]
    main.server.stop()


def test_no_domain_key_or_share_in_clear(world, host_bin):
    """Operators 1 and 2 recombine the domain key from their shares (only they can); it, each share value, the data
    keys and the admin secret appear nowhere in the store, the share files or the logs."""
    main = world["main"]
    shares = dict(open_share(main.share(i), (op / "private.pem").read_bytes())
                  for i, op in zip((1, 2), world["ops"]))
    domain_key = combine(shares)
    assert combine({3: open_share(main.share(3), (world["ops"][2] / "private.pem").read_bytes())[1],
                    1: shares[1]}) == domain_key, "any 2 of 3 shares give the same key"
    _, secret = read_credentials(world["creds"])
    secrets = [("domain key", domain_key), ("data key", world["data_key"]["Plaintext"]),
               ("admin secret", secret.encode())]
    secrets += [(f"share {i}", v) for i, v in shares.items()]
    files = read_tree(main.dir)
    assert "kms.sqlite3" in files and "quorum/share-1.enc" in files and "bootstrap.enc" in files
    hits = scan(files, secrets) + scan({"host log": main.server.log_bytes}, secrets)
    assert not hits, hits
    # Positive control: the scan finds the key where it is planted.
    assert scan({"planted": b"xx" + domain_key.hex().encode()}, secrets)


def test_bad_quorum_input_gets_a_clear_error(world, host_bin, tmp_path):
    ops, admin = world["ops"], world["admin"]

    def init(*extra):
        args = ["dev", "--data-dir", tmp_path / "d", "--listen", "127.0.0.1:0", "--domain-key", "quorum",
                "--admin-public-key", admin / "public.pem", "--init", *extra]
        return run(host_bin, *args)

    three = [a for op in ops for a in ("--operator", op / "public.pem")]
    cases = [
        (three + ["--threshold", "4"], "larger than the number of operators"),
        (three + ["--threshold", "0"], "at least 1"),
        (three, "--threshold"),
        (["--threshold", "1"], "--operator"),
        ([a for i in range(17) for a in ("--operator", ops[i % 3] / "public.pem")] + ["--threshold", "2"],
         "more than 16"),
        (["--operator", tmp_path / "missing.pem", "--threshold", "1"], "missing.pem"),
    ]
    bad_pem = tmp_path / "bad.pem"
    bad_pem.write_text("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n")
    cases.append((["--operator", bad_pem, "--threshold", "1"], "bad.pem"))
    for extra, expected in cases:
        proc = init(*extra)
        assert proc.returncode != 0, (extra, proc.stdout)
        assert expected in proc.stderr, (extra, proc.stderr)
        assert "ready:" not in proc.stdout

    # The unseal CLI: missing files, a bad share file, a bad key, no --expected-pcr.
    main = world["main"]
    ep = "https://127.0.0.1:1"
    for share, key, pcr, expected in [
        (tmp_path / "nope.enc", ops[0] / "private.pem", "0=" + "00" * 48, "nope.enc"),
        (bad_pem, ops[0] / "private.pem", "0=" + "00" * 48, "not an enclave-kms share file"),
        (main.share(1), bad_pem, "0=" + "00" * 48, "not a PKCS#8"),
    ]:
        proc = run(host_bin, "quorum", "unseal", "--endpoint", ep, "--share", share, "--private-key", key,
                   "--expected-pcr", pcr)
        assert proc.returncode != 0 and expected in proc.stderr, proc.stderr
    proc = run(host_bin, "quorum", "unseal", "--endpoint", ep, "--share", main.share(1), "--private-key",
               ops[0] / "private.pem")
    assert proc.returncode != 0 and "--expected-pcr" in proc.stderr, proc.stderr

    # A restart of an initialised quorum directory with no descriptor record cannot start afresh without --init.
    empty = tmp_path / "empty"
    shutil.rmtree(empty, ignore_errors=True)
    proc = run(host_bin, "dev", "--data-dir", empty, "--listen", "127.0.0.1:0", "--domain-key", "quorum")
    assert proc.returncode != 0 and "--init" in proc.stderr, proc.stderr


class SealedProcess:
    """A sealed `kms-host dev` start, run directly (no ready line is expected while the test holds it)."""

    def __init__(self, host_bin, data_dir: Path):
        self.proc = subprocess.Popen([str(host_bin), "dev", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
                                      "--domain-key", "quorum"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, env=scrub_aws_environment(os.environ))
        self.endpoint = None
        deadline = time.monotonic() + 60
        for line in iter(self.proc.stdout.readline, b""):
            if line.startswith(ENDPOINT_PREFIX):
                self.endpoint = line[len(ENDPOINT_PREFIX):].decode().strip()
                break
            assert time.monotonic() < deadline
        assert self.endpoint, "no unseal endpoint line"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0, "a sealed host stops cleanly on SIGTERM"


def python_submission(endpoint: str, share: Path, op: Path, signer: Path | None = None) -> dict:
    """What `quorum unseal` sends, built here: a fresh document's unseal key, the share sealed to it, the signature.
    (No verification of the document: this plays a host that captured a genuine operator submission.)"""
    f = cbor(share.read_bytes())
    _, value = open_share(share, (op / "private.pem").read_bytes())
    status, body = raw_call(endpoint, "EnclaveKms.GetAttestationDocument", {"Nonce": b64(os.urandom(16))})
    assert status == 200, body
    doc = base64.b64decode(body["AttestationDocument"])
    payload = cbor(cbor(doc)[2])
    point = payload["public_key"][-97:]
    doc_hash = hashlib.sha384(doc).digest()
    info = b"enclave-kms quorum submission v1" + doc_hash + f["deployment_id"] + bytes([f["index"]])
    ct = hpke_seal(point, info, value)
    message = (b"enclave-kms quorum submission signature v1" + doc_hash + f["deployment_id"] + bytes([f["index"]])
               + ct)
    sk = serialization.load_pem_private_key(((signer or op) / "private.pem").read_bytes(), None)
    sig = sk.sign(message, ec.ECDSA(hashes.SHA384()))
    return {"DeploymentId": b64(f["deployment_id"]), "ShareIndex": f["index"], "DocumentSha384": b64(doc_hash),
            "Ciphertext": b64(ct), "Signature": b64(sig)}


def test_replayed_submissions_are_refused(world, host_bin):
    """A submission captured in an earlier sealed start is refused in the next one; within one start a share counts
    once; a good share still goes in after both."""
    main, ops = world["main"], world["ops"]
    first = SealedProcess(host_bin, main.dir)
    try:
        captured = python_submission(first.endpoint, main.share(2), ops[1])
    finally:
        first.stop()
    second = SealedProcess(host_bin, main.dir)
    try:
        status, body = raw_call(second.endpoint, "EnclaveKms.SubmitShare", captured)
        assert status == 400 and body["__type"] == "ValidationException", body
        assert "did not issue since it started" in body["message"], body
        # The same share, freshly submitted, is accepted once; its replay is refused; the state holds one share.
        fresh = python_submission(second.endpoint, main.share(2), ops[1])
        status, body = raw_call(second.endpoint, "EnclaveKms.SubmitShare", fresh)
        assert status == 200 and body["SharesNeeded"] == 1, body
        status, body = raw_call(second.endpoint, "EnclaveKms.SubmitShare", fresh)
        assert status == 400 and "already accepted" in body["message"], body
        # Share 1 signed by operator 2: refused as not operator 1's.
        forged = python_submission(second.endpoint, main.share(1), ops[0], signer=ops[1])
        status, body = raw_call(second.endpoint, "EnclaveKms.SubmitShare", forged)
        assert status == 400 and body["__type"] == "AccessDeniedException", body
        status, body = raw_call(second.endpoint, "EnclaveKms.GetUnsealStatus", {})
        assert body["SharesAccepted"] == [2] and body["Sealed"], body
    finally:
        second.stop()
