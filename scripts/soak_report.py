#!/usr/bin/env python3
"""Summarise a `make soak` run: rounds, per-part results, hangs, splats.

Reads the data channel (sections `soak:ROUND:PART` written by the job),
the hang markers the guest's watchdog wrote, and the VM runner's verdict.
Exits non-zero on any failed part, hang, splat or VM failure.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmlog  # noqa: E402

NAME = re.compile(r"^soak:(\d+):(\S+)$")
HANG = re.compile(r"^@@HANG (\S+) after (\d+) s@@", re.M)


def summarise(data, vm_text, vm_ok, minutes, seed):
    """The report's lines and whether the soak passed."""
    secs = vmlog.sections(data)
    parts, rounds, failures = {}, {}, []
    for name, s in secs.items():
        m = NAME.match(name)
        if not m:
            continue
        rnd, part = int(m.group(1)), m.group(2)
        tot = vmlog.TOTALS.search(s.text)
        ok = s.rc == 0 and tot is not None and tot.group(2) == "0"
        p = parts.setdefault(part, [0, 0])
        p[0] += ok
        p[1] += 1
        rounds.setdefault(rnd, []).append(ok)
        if not ok:
            cases = vmlog.harness_cases(s.text).failed
            why = ", ".join(cases) if cases else (
                "never finished" if s.rc < 0 else f"rc={s.rc}")
            extra = f" (fuzz seed {seed + rnd})" if part == "ioctl-fuzz" else ""
            failures.append(f"round {rnd} {part}{extra}: {why}")
    # A round is done when every part ran in it (a part added later only
    # raises the count of parts, it does not stop rounds counting).
    done = sum(1 for r in rounds.values() if len(r) == len(parts))
    hangs = HANG.findall(data)
    timed_out = "VM timed out" in vm_text
    m = re.search(r"^splats: (\d+)", vm_text, re.M)
    splats = int(m.group(1)) if m else -1
    cpus = re.search(r"(\d+) CPUs, (\d+) NUMA nodes", vm_text)
    lines = [f"soak: {done} rounds in {minutes} min"
             + (f" on {cpus.group(1)} CPUs, {cpus.group(2)} NUMA nodes" if cpus else "")
             + f", fuzz seeds {seed + 1}..{seed + max(rounds or [0])}"]
    for part, (ok, n) in sorted(parts.items()):
        lines.append(f"soak: {part}: {ok} of {n} passed")
    lines += [f"FAILED: {f}" for f in failures]
    lines += [f"FAILED: hang in {n} after {s} s (CPU and task stacks in the "
              "kernel log)" for n, s in hangs]
    if timed_out:
        lines.append("FAILED: the VM timed out (vCPUs sampled with gdb, "
                     "console.log.hang-gdb)")
    nhangs = len(hangs) + timed_out
    lines.append(f"hangs: {nhangs}")
    lines.append(f"splats: {splats if splats >= 0 else 'unknown'}")
    ok = (vm_ok and not failures and not nhangs and splats == 0 and done > 0)
    lines.append("soak: " + ("PASSED" if ok else "FAILED"))
    return lines, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--vm", required=True, help="the VM runner's output")
    ap.add_argument("--vm-ok", type=int, required=True)
    ap.add_argument("--minutes", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    a = ap.parse_args()
    data = open(a.data, errors="replace").read() if os.path.exists(a.data) else ""
    vm_text = open(a.vm, errors="replace").read() if os.path.exists(a.vm) else ""
    lines, ok = summarise(data, vm_text, a.vm_ok, a.minutes, a.seed)
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
