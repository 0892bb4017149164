#!/usr/bin/env python3
"""Turn one VM run of the test job into pass/fail counts.

Reads the data channel (sections written by scripts/vm-lib.sh) and the VM
verdict, runs the kernel's own `kunit.py parse` on the KTAP output, and
prints one line per part and the closing `N passed, N failed`.
"""
import argparse
import json
import os
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


def parity(ours, theirs):
    """Problems with the upstream suite's results for our driver against the
    C driver's in the same boot: every case C passes must pass for us, and
    we must pass at least as many."""
    problems = [f"{n} passes for test_hmm.ko only" for n in theirs.passed
                if n not in ours.passed]
    if len(ours.passed) < len(theirs.passed):
        problems.append(f"{len(ours.passed)} passes against test_hmm.ko's "
                        f"{len(theirs.passed)}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--ksrc", required=True)
    ap.add_argument("--vm-ok", type=int, required=True)
    ap.add_argument("--xfail", help="hmm-tests cases our driver may fail")
    ap.add_argument("--host", nargs=2, type=int, default=(0, 0),
                    metavar=("PASSED", "FAILED"))
    a = ap.parse_args()
    data = open(a.data, errors="replace").read() if os.path.exists(a.data) else ""
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

    if "hmm-tests:rust" in secs and "info:hmm-tests:c" in secs:
        problems = parity(vmlog.harness_cases(secs["hmm-tests:rust"].text),
                          vmlog.harness_cases(secs["info:hmm-tests:c"].text))
        print("parity: hmm-tests, rust_hmm.ko against test_hmm.ko: " +
              ("; ".join(problems) if problems else "every C pass passes for us"))
        passed += not problems
        failed += bool(problems)
        failures += ["parity: " + p for p in problems]

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
