"""Host-side tests of results.py's parity check against test_hmm.ko's own
boot (all 78 hmm-tests cases, the coherent ones included) and of the
summary of that boot's splats, which are information only."""
import os
import subprocess
import sys
import tempfile
import unittest

import results
import vmlog

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(os.path.dirname(HERE), "results.py")

SKIP_COH = " # SKIP DEVICE_COHERENT not available"


def cases(text):
    return vmlog.harness_cases(text)


class Parity(unittest.TestCase):
    C = ("ok 1 hmm.hmm_device_private.a\nok 2 hmm.hmm_device_private.b\n"
         "ok 3 hmm.hmm_device_coherent.a\nnot ok 4 hmm.hmm_device_coherent.b\n")

    def test_coherent_skips_without_our_device_are_not_compared(self):
        ours = cases("ok 1 hmm.hmm_device_private.a\nok 2 hmm.hmm_device_private.b\n"
                     f"ok 3 hmm.hmm_device_coherent.a{SKIP_COH}\n"
                     f"ok 4 hmm.hmm_device_coherent.b{SKIP_COH}\n")
        theirs = cases(self.C)
        self.assertEqual(results.parity(ours, theirs), [])
        self.assertEqual(results.not_compared(ours, theirs),
                         ["hmm.hmm_device_coherent.a"])

    def test_coherent_case_only_c_passes_is_a_problem(self):
        # With coherent devices of ours, the cases run and are compared.
        ours = cases("ok 1 hmm.hmm_device_private.a\nok 2 hmm.hmm_device_private.b\n"
                     "not ok 3 hmm.hmm_device_coherent.a\nok 4 hmm.hmm_device_coherent.b\n")
        problems = results.parity(ours, cases(self.C))
        self.assertTrue(any("hmm.hmm_device_coherent.a passes for test_hmm.ko only" in p
                            for p in problems), problems)

    def test_other_skips_are_compared(self):
        ours = cases("ok 1 hmm.hmm_device_private.a # SKIP no huge pages\n"
                     "ok 2 hmm.hmm_device_private.b\n")
        problems = results.parity(ours, cases(self.C))
        self.assertTrue(any("hmm_device_private.a" in p for p in problems), problems)

    def test_a_c_failure_is_not_held_against_us(self):
        ours = cases("ok 1 hmm.hmm_device_private.a\nok 2 hmm.hmm_device_private.b\n"
                     "ok 3 hmm.hmm_device_coherent.a\nnot ok 4 hmm.hmm_device_coherent.b\n")
        self.assertEqual(results.parity(ours, cases(self.C)), [])


WARN = """\
[   32.696526] ------------[ cut here ]------------
[   32.696624] Conflicting mapping in same section
[   32.696699] WARNING: mm/memremap.c:158 at memremap_pages+0x451/0x610, CPU#1: hmm-tests/190
[   32.697106] Modules linked in: test_hmm
"""


class Splats(unittest.TestCase):
    def test_warns_are_told_by_their_message(self):
        kinds = vmlog.splat_kinds(WARN * 3 + "[ 40.0] BUG: KASAN: double-free in f+0x1/0x2\n")
        self.assertEqual(vmlog.splat_summary(kinds),
                         "3 WARNs (Conflicting mapping in same section), "
                         "1 x BUG: KASAN: double-free in f")

    def test_warn_without_message_is_told_by_its_place(self):
        kinds = vmlog.splat_kinds(
            "[ 1.0] WARNING: mm/hmm.c:10 at f+0x1/0x2, CPU#0: x/1\n")
        self.assertEqual(kinds, [("WARN", "mm/hmm.c:10")])
        self.assertEqual(vmlog.splat_summary([]), "no splat")

    def test_info_boot_splats_fail_nothing(self):
        log = "@@VM-READY@@\n" + WARN + "@@VM-EXIT-STATUS=0@@\n"
        self.assertFalse(vmlog.judge(log).ok)
        v = vmlog.judge(log, splats_fail=False)
        self.assertTrue(v.ok, v.problems)
        self.assertEqual(v.splats, 1)


def data(*secs):
    out = ""
    for name, text, rc in secs:
        out += f"@@BEGIN {name}@@\n{text}@@END {name} rc={rc}@@\n"
    return out


class TwoBoots(unittest.TestCase):
    """results.py over our boot and test_hmm.ko's: the C boot's failures
    and WARNs are reported and counted nowhere; parity is counted."""

    def run_results(self, ours, theirs, c_console=""):
        with tempfile.TemporaryDirectory() as d:
            a, c = os.path.join(d, "console.log.data"), os.path.join(d, "c.log.data")
            for path, text in ((a, ours), (c, theirs), (c[:-len(".data")], c_console)):
                with open(path, "w") as f:
                    f.write(text)
            p = subprocess.run([sys.executable, RESULTS, "--data", a, "--vm-ok", "1",
                                "--c-data", c, "--c-vm-ok", "1", "--ksrc", d],
                               capture_output=True, text=True)
        return p.returncode, p.stdout

    OURS = data(("hmm-tests:rust",
                 "ok 1 hmm.hmm_device_private.a\n"
                 f"ok 2 hmm.hmm_device_coherent.a{SKIP_COH}\n"
                 f"ok 3 hmm.hmm_device_coherent.b{SKIP_COH}\n"
                 "# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:2 error:0\n", 0),
                ("dmesg", "[ 1.0] nothing\n", 0))

    def test_c_failures_and_warns_are_information(self):
        theirs = data(("info:insmod:test_hmm", "", 0),
                      ("info:hmm-tests:c",
                       "ok 1 hmm.hmm_device_private.a\nok 2 hmm.hmm_device_coherent.a\n"
                       "not ok 3 hmm.hmm_device_coherent.b\n"
                       "# Totals: pass:2 fail:1 xfail:0 xpass:0 skip:0 error:0\n", 1),
                      ("dmesg", WARN * 2, 0))
        rc, out = self.run_results(self.OURS, theirs)
        self.assertEqual(rc, 0, out)
        self.assertIn("test_hmm: 2 WARNs (Conflicting mapping in same section)", out)
        self.assertIn("hmm.hmm_device_coherent.b: fails for test_hmm.ko", out)
        self.assertIn("every C pass passes for us (1 C passes compared; 1 more", out)
        # hmm-tests:rust's pass, parity and the VM (no module load, so no
        # KUnit): the C boot adds nothing to the counts.
        self.assertIn("3 passed, 0 failed", out)

    def test_no_c_results_fails_parity(self):
        rc, out = self.run_results(self.OURS, "")
        self.assertIn("FAILED: parity: no hmm-tests results from test_hmm.ko's boot", out)


if __name__ == "__main__":
    unittest.main()
