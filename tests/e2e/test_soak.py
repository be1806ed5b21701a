"""scripts/soak's short form (issue 19, Load and soak): 30 s of the soak mix against a debug build at 16 connections,
no request error, no descriptor growth, RSS growth after warm-up within the script's 5%. The long form (60 minutes,
release build) is reported in RELIABILITY.md."""

from __future__ import annotations

import subprocess

from kmstest import REPO_ROOT


def test_a_short_soak_passes(tmp_path):
    out = tmp_path / "soak"
    proc = subprocess.run(
        [str(REPO_ROOT / "scripts" / "soak"), "0.5", "--debug", "--interval", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-3000:]}"
    summary = [line for line in proc.stdout.splitlines() if line.startswith("soak: ")]
    assert summary and summary[0].endswith("PASS"), proc.stdout
    assert " errors 0," in summary[0], summary[0]
    assert (out / "samples.tsv").read_text().count("\n") > 20, "too few samples"
