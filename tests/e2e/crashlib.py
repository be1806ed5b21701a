"""Crash cycles against `kms-host dev`: writers, a SIGKILL at a random moment, a restart, a check (issue 19, Crashes).

One cycle: WRITERS threads run CreateKey, Encrypt, UpdateKeyDescription and CreateAlias against the running server and
record every ACKNOWLEDGED result; at a random moment the host's process group (`host`: the host and its enclave child)
or the enclave alone (`enclave`: the host then exits on its own) gets SIGKILL; the server restarts on the same data
directory and every write acknowledged in that cycle (and a sample of the earlier ones; all of them after the last
cycle) is checked: the key exists with an acknowledged description, the alias names its acknowledged key, the
ciphertext decrypts to exactly its plaintext. A call that failed (an error, a cut connection) is AMBIGUOUS: its write
may or may not be there, and both are accepted (an ambiguous UpdateKeyDescription adds its description to the ones
the key may show; a later acknowledged one replaces them). Each writer owns its keys, so a key's updates are ordered.

The kill moments, operation choices and payloads come from one seed, printed first (`--seed` replays them; thread
interleaving is the operating system's, which the invariants do not depend on: they hold for every kill moment).

`first_start_cycles` is the variant that kills a fresh data directory during its first start, then requires that it
starts and that its admin credential works (or reports the line it refused with).

    python tests/e2e/crashlib.py N [--target host|enclave|both] [--seed S] [--writers W] [--first-start K]

(`scripts/crash-test` builds the debug binaries and runs this.) Prints `cycles: N, acknowledged: A, lost: L` per
target and exits 1 if any acknowledged write was lost.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kmstest import KmsServer, descendants, host_binary  # noqa: E402

# The longest a kill waits after the writers start (s), and the share of cycles whose kill comes at once.
MAX_KILL_DELAY = 2.0
# Earlier writes re-checked at each restart (all of them are checked after the last cycle).
SAMPLE_EARLIER = 30


@dataclass
class Ledger:
    """Everything acknowledged so far (and the ambiguous outcomes that are allowed)."""

    # key id -> descriptions it may show (the last acknowledged one, plus ambiguous updates after it)
    keys: dict = field(default_factory=dict)
    # key id -> the writer that owns it (only its owner updates it)
    owner: dict = field(default_factory=dict)
    # alias name -> key id
    aliases: dict = field(default_factory=dict)
    # (ciphertext, plaintext, context, key id)
    ciphertexts: list = field(default_factory=list)
    acknowledged: int = 0
    ambiguous: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def items(self):
        """Every acknowledged item as (kind, handle), for checking."""
        with self.lock:
            return ([("key", k) for k in self.keys] + [("alias", a) for a in self.aliases]
                    + [("ciphertext", i) for i in range(len(self.ciphertexts))])


def writer(kms, server: KmsServer, ledger: Ledger, index: int, rng: random.Random, stop: threading.Event,
           tag: str) -> None:
    """Writes with client `kms` until `stop` (or the server is gone), recording acknowledged and ambiguous results."""
    n = 0
    while not stop.is_set():
        n += 1
        with ledger.lock:
            mine = [k for k, w in ledger.owner.items() if w == index]
            every = list(ledger.keys)
        op = rng.choice(["create", "encrypt", "encrypt", "update", "alias"]) if mine else "create"
        try:
            if op == "create":
                desc = f"{tag}-w{index}-{n}"
                kid = kms.create_key(Description=desc)["KeyMetadata"]["KeyId"]
                with ledger.lock:
                    ledger.keys[kid] = {desc}
                    ledger.owner[kid] = index
                    ledger.acknowledged += 1
            elif op == "encrypt":
                kid = rng.choice(every)
                plaintext = rng.randbytes(rng.randint(1, 64))
                context = {"writer": str(index), "n": str(n)}
                blob = kms.encrypt(KeyId=kid, Plaintext=plaintext, EncryptionContext=context)["CiphertextBlob"]
                with ledger.lock:
                    ledger.ciphertexts.append((blob, plaintext, context, kid))
                    ledger.acknowledged += 1
            elif op == "update":
                kid = rng.choice(mine)
                desc = f"{tag}-w{index}-{n}-updated"
                try:
                    kms.update_key_description(KeyId=kid, Description=desc)
                except Exception:
                    with ledger.lock:
                        ledger.keys[kid].add(desc)
                    raise
                with ledger.lock:
                    ledger.keys[kid] = {desc}
                    ledger.acknowledged += 1
            else:
                kid = rng.choice(mine)
                alias = f"alias/{tag}-w{index}-{n}"
                kms.create_alias(AliasName=alias, TargetKeyId=kid)
                with ledger.lock:
                    ledger.aliases[alias] = kid
                    ledger.acknowledged += 1
        except Exception:
            with ledger.lock:
                ledger.ambiguous += 1
            if not server.running:
                return
            time.sleep(0.01)


def check(server: KmsServer, ledger: Ledger, items) -> list[str]:
    """The acknowledged writes among `items` that are missing or wrong (one line each)."""
    kms = server.client()
    lost = []
    for kind, handle in items:
        try:
            if kind == "key":
                meta = kms.describe_key(KeyId=handle)["KeyMetadata"]
                with ledger.lock:
                    allowed = set(ledger.keys[handle])
                if meta["Description"] not in allowed or meta["KeyState"] != "Enabled":
                    lost.append(f"key {handle}: {meta['Description']!r} {meta['KeyState']}, "
                                f"expected one of {sorted(allowed)}")
            elif kind == "alias":
                got = kms.describe_key(KeyId=handle)["KeyMetadata"]["KeyId"]
                if got != ledger.aliases[handle]:
                    lost.append(f"{handle} names {got}, acknowledged for {ledger.aliases[handle]}")
            else:
                blob, plaintext, context, kid = ledger.ciphertexts[handle]
                out = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
                if out["Plaintext"] != plaintext or not out["KeyId"].endswith(kid):
                    lost.append(f"ciphertext #{handle} under {kid} decrypts to something else")
        except Exception as exc:  # missing, refused, or a dead server: all are losses of an acknowledged write
            lost.append(f"{kind} {handle}: {type(exc).__name__}: {exc}")
    return lost


def kill(server: KmsServer, victim: str) -> None:
    """SIGKILL the host's process group, or the enclave alone (the host then exits by itself; if there is no enclave
    yet, as early in a first start, the group)."""
    proc = server.proc
    if proc is None:
        return
    if victim == "enclave":
        pids = [pid for pid, cmdline in descendants(proc.pid) if "kms-enclave" in cmdline]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        if pids:
            try:
                proc.wait(timeout=30)
            except Exception:
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group; a no-op for what is already gone
    except ProcessLookupError:
        pass
    proc.wait()


def new_server(data_dir: Path, binary: Path | None, extra_env: dict | None = None) -> KmsServer:
    """A server whose temporary files (its sockets' directory, left behind by a SIGKILL) go to a directory of its own
    (short: a socket path is limited to 108 bytes), removed by `discard`."""
    tmp = tempfile.mkdtemp(prefix="kms-crash-")
    server = KmsServer(data_dir, binary=binary, extra_env={"TMPDIR": tmp, **(extra_env or {})})
    server.crash_tmp = tmp
    return server


def discard(server: KmsServer) -> None:
    server.kill()
    shutil.rmtree(server.crash_tmp, ignore_errors=True)


def crash_cycles(cycles: int, target: str, seed: int, workdir: Path, binary: Path | None = None, writers: int = 4,
                 log=print, extra_env: dict | None = None, min_delay: float = 0.0) -> dict:
    """Runs `cycles` kill/restart cycles on one data directory; returns the figures and the lost writes. Each kill
    comes uniformly between `min_delay` and MAX_KILL_DELAY seconds after the writers start."""
    rng = random.Random(seed)
    ledger = Ledger()
    server = new_server(workdir / "data", binary, extra_env)
    server.start()
    lost: list[str] = []
    try:
        for cycle in range(cycles):
            victim = rng.choice(["host", "enclave"]) if target == "both" else target
            delay = rng.uniform(min_delay, MAX_KILL_DELAY)
            stop = threading.Event()
            threads = [threading.Thread(target=writer, daemon=True,
                                        args=(server.client(), server, ledger, w, random.Random(rng.getrandbits(64)),
                                              stop,
                                              f"c{seed % 100000}x{cycle}"))
                       for w in range(writers)]
            before = set(ledger.items())
            for t in threads:
                t.start()
            time.sleep(delay)
            kill(server, victim)
            server.kill()
            stop.set()
            for t in threads:
                t.join(timeout=60)
            server.start()
            fresh = [i for i in ledger.items() if i not in before]
            earlier = sorted(before)
            sample = rng.sample(earlier, min(SAMPLE_EARLIER, len(earlier)))
            bad = check(server, ledger, fresh + sample)
            lost += [f"cycle {cycle} ({victim}): {line}" for line in bad]
            log(f"cycle {cycle + 1}/{cycles}: killed {victim} after {delay:.2f}s; acknowledged {len(fresh)} "
                f"new, {ledger.ambiguous} ambiguous so far; lost {len(bad)}")
        final = check(server, ledger, ledger.items())
        lost += [f"final check: {line}" for line in final if not any(line in x for x in lost)]
    finally:
        discard(server)
    return {"target": target, "cycles": cycles, "acknowledged": ledger.acknowledged, "ambiguous": ledger.ambiguous,
            "lost": len(lost), "lost_lines": lost, "keys": len(ledger.keys), "aliases": len(ledger.aliases),
            "ciphertexts": len(ledger.ciphertexts)}


def first_start_cycles(cycles: int, target: str, seed: int, workdir: Path, binary: Path | None = None,
                       log=print) -> dict:
    """Kills fresh data directories during their first start; each must then start and serve its admin."""
    rng = random.Random(seed)
    started, refused = 0, []
    for cycle in range(cycles):
        victim = rng.choice(["host", "enclave"]) if target == "both" else target
        data = workdir / f"first-{cycle}" / "data"
        server = new_server(data, binary)
        delay = rng.uniform(0.0, 2.5)
        # Started by hand: start() waits for the ready line, and the kill must be able to come before it.
        server_thread = threading.Thread(target=_start_quietly, args=(server,), daemon=True)
        server_thread.start()
        time.sleep(delay)
        while server.proc is None and server_thread.is_alive():
            time.sleep(0.01)  # Popen has not returned yet
        kill(server, victim)
        server_thread.join(timeout=60)
        server.kill()
        try:
            server.start()
            kms = server.client()
            kid = kms.create_key(Description="after a killed first start")["KeyMetadata"]["KeyId"]
            assert any(k["KeyId"] == kid for k in kms.list_keys()["Keys"])
            started += 1
            log(f"first start {cycle + 1}/{cycles}: killed {victim} after {delay:.2f}s; restarted and served")
        except BaseException as exc:  # pytest.fail raises BaseException subclasses
            line = str(exc).strip().splitlines()
            refused.append(f"killed {victim} after {delay:.2f}s: {line[0] if line else type(exc).__name__}")
            log(f"first start {cycle + 1}/{cycles}: {refused[-1]}")
        finally:
            discard(server)
    return {"target": target, "cycles": cycles, "started": started, "refused": refused}


def _start_quietly(server: KmsServer) -> None:
    try:
        server.start(timeout=30)
    except BaseException:
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cycles", type=int)
    p.add_argument("--target", choices=["host", "enclave", "both"], default="both",
                   help="what is killed: host (its process group), enclave, or both (each reported)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--first-start", type=int, default=0, metavar="K",
                   help="also kill K fresh data directories during their first start")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args(argv)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"seed: {seed} (replay with --seed {seed})", flush=True)
    binary = host_binary()
    targets = ["host", "enclave"] if a.target == "both" else [a.target]
    work = Path(tempfile.mkdtemp(prefix="kms-crash-"))
    results, firsts = [], []
    try:
        for i, target in enumerate(targets):
            results.append(crash_cycles(a.cycles, target, seed + i, work / target, binary, a.writers,
                                        log=lambda s: print(s, flush=True)))
            if a.first_start:
                firsts.append(first_start_cycles(a.first_start, target, seed + i, work / f"{target}-first", binary,
                                                 log=lambda s: print(s, flush=True)))
    finally:
        if a.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    failed = False
    for r in results:
        for line in r["lost_lines"]:
            print(f"LOST ({r['target']}): {line}")
        print(f"{r['target']}: cycles: {r['cycles']}, acknowledged: {r['acknowledged']}, lost: {r['lost']} "
              f"(ambiguous: {r['ambiguous']}; keys {r['keys']}, aliases {r['aliases']}, "
              f"ciphertexts {r['ciphertexts']})")
        failed |= r["lost"] > 0
    for f in firsts:
        for line in f["refused"]:
            print(f"REFUSED ({f['target']}): {line}")
        print(f"{f['target']} first start: cycles: {f['cycles']}, started and served: {f['started']}")
        failed |= f["started"] != f["cycles"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
