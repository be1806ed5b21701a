"""A faulty store (issue 19, Crashes: fault injection): I/O errors, a full disk, a slow fsync, a host that dies inside
a batch. The service answers KMSInternalException (HTTP 500, AWS's JSON shape), keeps serving, and never
acknowledges a write it did not commit: a refused write is absent afterwards (in the running service and after a
restart), an acknowledged one is present.

The faults are played by the debug build's scripted store wrapper (host/src/blobstore/hostile.rs, KMS_HOSTILE_STORE)."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from crashlib import Ledger, check, writer
from kmstest import KmsServer, unique
from test_protocol import RawClient

KEY, ALIAS = 2, 3  # kms_shared::storage::RecordKind
DIE_EXIT_CODE = 86  # host/src/blobstore/hostile.rs


@pytest.fixture
def faulty(tmp_path, host_bin):
    control = tmp_path / "hostile.json"
    control.write_text('{"rules": []}')
    srv = KmsServer(tmp_path / "data", binary=host_bin, extra_env={"KMS_HOSTILE_STORE": str(control)})
    srv.start()

    def script(*rules):
        control.write_text(json.dumps({"rules": list(rules)}))

    srv.script = script
    yield srv
    srv.kill()


def internal_error(result) -> None:
    """HTTP 500 KMSInternalException in AWS's shape, with a message that says nothing about the host."""
    status, parsed, raw = result
    assert status == 500, f"expected HTTP 500, got {status}: {raw[:500]!r}"
    assert isinstance(parsed, dict) and parsed.get("__type") == "KMSInternalException", raw[:500]
    assert isinstance(parsed.get("message"), str) and parsed["message"], parsed
    assert "sqlite" not in parsed["message"].lower() and "injected" not in parsed["message"], parsed


def descriptions(kms) -> set[str]:
    return {kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["Description"] for k in kms.list_keys()["Keys"]}


@pytest.mark.parametrize("action", ["io_error", "full"])
def test_a_failing_commit_is_answered_500_and_nothing_of_it_is_acknowledged_or_kept(faulty, action):
    kms, raw = faulty.client(), RawClient(faulty)
    kid = kms.create_key(Description="before")["KeyMetadata"]["KeyId"]
    faulty.script({"op": "put", "action": action})  # every write, any kind
    refused = unique("refused")
    internal_error(raw.call("CreateKey", {"Description": refused}))
    internal_error(raw.call("UpdateKeyDescription", {"KeyId": kid, "Description": refused}))
    internal_error(raw.call("CreateAlias", {"AliasName": f"alias/{refused}", "TargetKeyId": kid}))
    # Reads and cached keys are still served during the fault.
    assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=kid, Plaintext=b"x")["CiphertextBlob"])["Plaintext"] == b"x"
    faulty.script()
    for _ in range(2):  # in the running service (no cached trace of the refused writes), then after a restart
        assert kms.describe_key(KeyId=kid)["KeyMetadata"]["Description"] == "before"
        assert refused not in descriptions(kms)
        assert f"alias/{refused}" not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
        faulty.restart()
        kms = faulty.client()
    # And the same writes succeed once the store is well.
    kms.create_alias(AliasName=f"alias/{refused}", TargetKeyId=kid)
    kms.update_key_description(KeyId=kid, Description="after")
    assert kms.describe_key(KeyId=f"alias/{refused}")["KeyMetadata"]["Description"] == "after"


def test_a_failing_read_is_answered_500_and_the_service_recovers(faulty):
    kms = faulty.client()
    kid = kms.create_key(Description="read me")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=kid, Plaintext=b"secret")["CiphertextBlob"]
    faulty.restart()  # an empty key cache: Decrypt must read the key record
    faulty.script({"op": "get", "kind": KEY, "action": "io_error"})
    import base64

    internal_error(RawClient(faulty).call("Decrypt", {"CiphertextBlob": base64.b64encode(blob).decode()}))
    faulty.script({"op": "list", "action": "io_error"})
    internal_error(RawClient(faulty).call("ListAliases", {}))
    faulty.script()
    assert faulty.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"


def test_a_slow_commit_is_acknowledged_only_after_it_and_kept(faulty):
    kms = faulty.client()
    kid = kms.create_key(Description="slow")["KeyMetadata"]["KeyId"]
    faulty.script({"op": "put", "kind": KEY, "action": "slow", "delay_ms": 1500})
    started = time.monotonic()
    kms.update_key_description(KeyId=kid, Description="slowly")
    assert time.monotonic() - started >= 1.5, "acknowledged before the commit finished"
    faulty.script()
    faulty.restart()
    assert faulty.client().describe_key(KeyId=kid)["KeyMetadata"]["Description"] == "slowly"


def test_a_host_dying_inside_a_batch_acknowledges_nothing_of_it(faulty):
    kms = faulty.client()
    kid = kms.create_key(Description="kept")["KeyMetadata"]["KeyId"]
    faulty.script({"op": "put", "kind": KEY, "action": "die"})
    refused = unique("refused")
    status = None
    try:
        status = RawClient(faulty).call("CreateKey", {"Description": refused})[0]
    except OSError:
        pass  # the connection was cut: not acknowledged
    assert status is None or status >= 500, f"a write the host died committing was answered {status}"
    assert faulty.proc.wait(timeout=30) == DIE_EXIT_CODE, faulty.stderr_text[-2000:]
    faulty.kill()
    faulty.script()
    faulty.start()
    kms = faulty.client()
    assert kms.describe_key(KeyId=kid)["KeyMetadata"]["Description"] == "kept"
    assert refused not in descriptions(kms)


def test_writers_racing_a_host_that_dies_mid_batch_lose_no_acknowledged_write(faulty):
    """Several writers; the host dies inside a batch (any kind of record) while they write."""
    ledger, stop = Ledger(), threading.Event()
    seed = random.SystemRandom().randrange(2**32)
    print(f"seed: {seed}")
    rng = random.Random(seed)
    threads = [threading.Thread(target=writer, daemon=True,
                                args=(faulty.client(), faulty, ledger, w, random.Random(rng.getrandbits(64)), stop,
                                      f"die{w}"))
               for w in range(4)]
    for t in threads:
        t.start()
    assert wait_for(lambda: ledger.acknowledged >= 20, 60), "the writers got nothing acknowledged"
    faulty.script({"op": "put", "action": "die"})
    assert faulty.proc.wait(timeout=30) == DIE_EXIT_CODE, faulty.stderr_text[-2000:]
    faulty.kill()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    faulty.script()
    faulty.start()
    lost = check(faulty, ledger, ledger.items())
    assert not lost, f"seed {seed}: " + "\n".join(lost)


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
