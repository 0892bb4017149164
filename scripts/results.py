#!/usr/bin/env python3
"""Turn one VM run of the test job into pass/fail counts.

Reads the data channel (sections written by scripts/vm-lib.sh) and the VM
verdict, runs the kernel's own `kunit.py parse` on the KTAP output, and
prints one line per part and the closing `N passed, N failed`. With
--c-data, also test_hmm.ko's own boot: its parts and splats are printed as
information, and its hmm-tests cases are compared with ours case by case.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmlog  # noqa: E402


def load_xfail(path):
    if not path or not os.path.exists(path):
        return {}
    out = {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            out[line] = True
    return out


def kunit(ksrc, dmesg_text):
    """Counts from `kunit.py parse` over our suites' KTAP in the kernel log."""
    docs = vmlog.ktap_documents(dmesg_text, "rust_hmm")
    if not docs:
        return 0, 1, ["no KTAP output of rust_hmm suites found"]
    # The suites run at every module load; a case counts once, and fails
    # if it failed in any of the runs.
    status = {}
    errors = []

    def walk(group, prefix):
        for c in group.get("test_cases", []):
            name = prefix + c["name"]
            if c["status"] == "PASS":
                status.setdefault(name, True)
            elif c["status"] not in ("SKIP", "SKIPPED"):
                status[name] = False
        for g in group.get("sub_groups", []):
            walk(g, prefix + g["name"] + ".")

    if len(docs) > 1:
        print(f"kunit: {len(docs)} module loads ran the suites")
    for doc in docs:
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "ktap.log")
            js = os.path.join(d, "kunit.json")
            with open(src, "w") as f:
                f.write("\n".join(doc) + "\n")
            p = subprocess.run(
                [sys.executable,
                 os.path.join(ksrc, "tools/testing/kunit/kunit.py"),
                 "parse", "--json=" + js, src],
                capture_output=True, text=True)
            if doc is docs[0] or p.returncode != 0:
                print(p.stdout, end="")
            if not os.path.exists(js):
                print(p.stderr, end="")
                errors.append("kunit.py parse failed")
                continue
            bad_before = sum(1 for ok in status.values() if not ok)
            walk(json.load(open(js)), "")
            if p.returncode != 0 and bad_before == sum(1 for ok in status.values() if not ok):
                errors.append("kunit.py parse reported a failure")
    names = sorted(n for n, ok in status.items() if not ok) + errors
    passed = sum(1 for ok in status.values() if ok)
    return passed, len(names), names


# What hmm-tests says when /dev/hmm_dmirror2 cannot be opened.
NO_COHERENT = "DEVICE_COHERENT not available"


def not_compared(ours, theirs):
    """Cases the C driver passes that ours skipped for want of a coherent
    device (no /dev/hmm_dmirror2): not held against us while rust_hmm.ko
    has none, but listed."""
    return [n for n in theirs.passed
            if NO_COHERENT in ours.skip_reason.get(n, "")]


def parity(ours, theirs):
    """Problems with the upstream suite's results for our driver against the
    C driver's (its own boot): every case C passes must pass for us, and
    we must pass at least as many, leaving out the coherent cases we skip
    without a coherent device. Cases that fail or time out for C are not
    held against us."""
    skip = set(not_compared(ours, theirs))
    compared = [n for n in theirs.passed if n not in skip]
    problems = [f"{n} passes for test_hmm.ko only" for n in compared
                if n not in ours.passed]
    if len(ours.passed) < len(compared):
        problems.append(f"{len(ours.passed)} passes against test_hmm.ko's "
                        f"{len(compared)}")
    return problems


EXPECTED = re.compile(r"^\S*?([^/\s]+\.c:\d+):[^:\s]*:(Expected .*)$")


def c_boot(secs, console, vm_ok):
    """Prints what test_hmm.ko's own boot gave: information, never counted.
    Its coherent devices take the soft-reserved ranges, and it WARNs
    ("Conflicting mapping in same section") whenever one asks for a second
    chunk, so it runs apart from our driver and its splats are only
    reported. Returns its hmm-tests cases, or None if it has none."""
    for name, s in secs.items():
        if name == "dmesg":
            continue
        if "insmod:" in name or "rmmod:" in name:
            print(f"{name}: " + ("ok" if s.rc == 0 else f"rc={s.rc}"))
            continue
        tot = vmlog.TOTALS.search(s.text)
        print(f"{name}: " + (tot.group(0) if tot else "no Totals line"))
        c = vmlog.harness_cases(s.text)
        for n in c.failed:
            # The failed expectation, without the source's path.
            why = [EXPECTED.sub(r"\1: \2", l.lstrip("# "))
                   for l in vmlog.case_log(s.text, n, 40)
                   if "Expected" in l or "terminated by timeout" in l]
            print(f"  {n}: fails for test_hmm.ko" + (f" ({why[-1]})" if why else ""))
        reasons = {}
        for n in c.skipped:
            reasons.setdefault(c.skip_reason.get(n, ""), []).append(n)
        for why, names in reasons.items():
            print(f"  {names[0]}: skips for test_hmm.ko ({why})" if len(names) == 1
                  else f"  {len(names)} cases skip for test_hmm.ko ({why})")
    dmesg = secs.get("dmesg")
    kinds = max(vmlog.splat_kinds(console),
                vmlog.splat_kinds(dmesg.text if dmesg else ""), key=len)
    print(f"test_hmm: {vmlog.splat_summary(kinds)} (its own boot: information only)")
    if not vm_ok:
        print("test_hmm: its boot did not end cleanly (timeout, panic or job "
              "status: see its vm: lines); information only")
    if "info:hmm-tests:c" not in secs:
        return None
    return vmlog.harness_cases(secs["info:hmm-tests:c"].text)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", help="the data channel of our driver's boot")
    ap.add_argument("--ksrc", required=True)
    ap.add_argument("--vm-ok", type=int, default=1)
    ap.add_argument("--c-data", help="the data channel of test_hmm.ko's own "
                    "boot (information, and the other side of the parity check)")
    ap.add_argument("--c-vm-ok", type=int, default=1)
    ap.add_argument("--xfail", help="hmm-tests cases our driver may fail")
    ap.add_argument("--host", nargs=2, type=int, default=(0, 0),
                    metavar=("PASSED", "FAILED"))
    a = ap.parse_args()
    data = (open(a.data, errors="replace").read()
            if a.data and os.path.exists(a.data) else "")
    secs = vmlog.sections(data)
    xfail = load_xfail(a.xfail)
    passed, failed = a.host
    failures = []
    print(f"host: {a.host[0]} passed, {a.host[1]} failed")

    for name, s in secs.items():
        if name == "dmesg":
            continue
        if name.startswith(("insmod:", "rmmod:", "step:")):
            ok = s.rc == 0
            passed += ok
            failed += not ok
            if not ok:
                failures.append(f"{name} (rc={s.rc})")
            continue
        c = vmlog.harness_cases(s.text)
        tot = vmlog.TOTALS.search(s.text)
        last = s.text.strip().splitlines()[-1:] or ["(no output)"]
        totals = tot.group(0) if tot else ("no Totals line" if name.startswith(("user:", "hmm-tests:")) else last[0])
        counted = not name.startswith("info:")
        xf = [n for n in c.failed if n in xfail] if name.endswith(":rust") else []
        real_fail = [n for n in c.failed if n not in xf]
        print(f"{name}: {totals}" + (f" ({len(xf)} expected failures)" if xf else ""))
        if not counted:
            continue
        passed += len(c.passed)
        failed += len(real_fail)
        failures += [f"{name}: {n}" for n in real_fail]
        # What the failed cases said, so that a CI log alone shows why.
        for n in real_fail:
            for line in vmlog.case_log(s.text, n):
                print(f"  {n}: {line}")
        if s.rc != 0 and not real_fail and not xf:
            failed += 1
            failures.append(f"{name}: exited {s.rc}")
        if not tot:
            failed += 1
            failures.append(f"{name}: never finished")
        fixed = [n for n in c.passed if n in xfail] if name.endswith(":rust") else []
        for n in fixed:
            print(f"{name}: {n} passes now: drop it from the xfail list")

    theirs = None
    if a.c_data:
        c_text = (open(a.c_data, errors="replace").read()
                  if os.path.exists(a.c_data) else "")
        console = a.c_data[:-len(".data")] if a.c_data.endswith(".data") else ""
        console = (open(console, errors="replace").read()
                   if console and os.path.exists(console) else "")
        theirs = c_boot(vmlog.sections(c_text), console, a.c_vm_ok)
        if not a.data:
            # make hmm-tests DRIVER=c: only whether its boot ran counts.
            passed += a.c_vm_ok
            failed += not a.c_vm_ok
            if not a.c_vm_ok:
                failures.append("test_hmm.ko's boot did not end cleanly")

    if "hmm-tests:rust" in secs and a.c_data:
        ours = vmlog.harness_cases(secs["hmm-tests:rust"].text)
        if theirs is None:
            problems = ["no hmm-tests results from test_hmm.ko's boot"]
            skipped = []
        else:
            problems = parity(ours, theirs)
            skipped = not_compared(ours, theirs)
        n = len(theirs.passed) - len(skipped) if theirs else 0
        note = f" ({n} C passes compared" + (
            f"; {len(skipped)} more, hmm_device_coherent, not compared: "
            "rust_hmm.ko has no coherent devices, so they skip for it)"
            if skipped else ")")
        print("parity: hmm-tests, rust_hmm.ko against test_hmm.ko: " +
              ("; ".join(problems) if problems else
               "every C pass passes for us" + note))
        passed += not problems
        failed += bool(problems)
        failures += ["parity: " + p for p in problems]

    if a.data:
        if "dmesg" in secs and "insmod:rust_hmm" not in secs:
            print("kunit: not run (the job did not load rust_hmm)")
        elif "dmesg" in secs:
            kp, kf, kn = kunit(a.ksrc, secs["dmesg"].text)
            print(f"kunit: {kp} passed, {kf} failed")
            passed += kp
            failed += kf
            failures += ["kunit: " + n for n in kn]
        else:
            failed += 1
            failures.append("the job never dumped its kernel log")
        passed += a.vm_ok
        failed += not a.vm_ok
        if not a.vm_ok:
            failures.append("vm: timeout, splat or failed job (see above)")
    for f in failures:
        print("FAILED: " + f)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
