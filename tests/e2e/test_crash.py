"""Crash cycles (issue 19, Crashes): SIGKILL of the host or the enclave at random moments under concurrent writers
loses no acknowledged write, and a data directory killed during its first start starts and serves its admin.

The short form of `scripts/crash-test` (tests/e2e/crashlib.py). The seed is printed (shown with the failure);
CRASH_SEED=S replays one."""

from __future__ import annotations

import json
import os
import random

import pytest

from crashlib import crash_cycles, first_start_cycles

KEY = 2  # kms_shared::storage::RecordKind::Key


def seed() -> int:
    s = int(os.environ["CRASH_SEED"]) if os.environ.get("CRASH_SEED") else random.SystemRandom().randrange(2**32)
    print(f"crash seed: {s}")
    return s


@pytest.mark.parametrize("target", ["host", "enclave"])
def test_no_acknowledged_write_is_lost_when_killed_at_random_moments(tmp_path, host_bin, target):
    s = seed()
    r = crash_cycles(3, target, s, tmp_path, host_bin)
    assert r["lost"] == 0, f"seed {s}: lost acknowledged writes:\n" + "\n".join(r["lost_lines"])
    assert r["acknowledged"] > 0, f"seed {s}: nothing was acknowledged, so nothing was tested: {r}"


def test_a_first_start_killed_at_any_moment_then_starts_and_serves_its_admin(tmp_path, host_bin):
    s = seed()
    r = first_start_cycles(4, "both", s, tmp_path, host_bin)
    assert r["started"] == r["cycles"], f"seed {s}: " + "\n".join(r["refused"])


def test_the_check_finds_an_acknowledged_write_that_is_not_there(tmp_path, host_bin):
    """The harness itself: a store that acknowledges key writes without writing them must show up as lost."""
    control = tmp_path / "hostile.json"
    control.write_text(json.dumps({"rules": [{"op": "put", "kind": KEY, "action": "ack_without_write"}]}))
    s = seed()
    r = crash_cycles(1, "host", s, tmp_path / "run", host_bin, extra_env={"KMS_HOSTILE_STORE": str(control)},
                     min_delay=1.0)
    assert r["acknowledged"] > 0 and r["lost"] > 0, f"seed {s}: {r}"
