"""Host-side tests of the VM log judge: a splat or a missing exit status
must fail a run even when every test printed ok."""
import unittest

import vmlog

OK_RUN = """\
[    0.000000] Linux version 7.3.4
@@VM-READY@@
ok 1 hmm.hmm_device_private.open_close
# WARNING: user space may print this, it is no splat
@@VM-EXIT-STATUS=0@@
"""


class Judge(unittest.TestCase):
    def test_clean_run_passes(self):
        v = vmlog.judge(OK_RUN)
        self.assertTrue(v.ok, v.problems)
        self.assertEqual(v.splats, 0)

    def test_warn_fails_even_if_tests_pass(self):
        log = OK_RUN.replace(
            "@@VM-READY@@",
            "@@VM-READY@@\n[   12.5] WARNING: CPU: 1 PID: 80 at mm/hmm.c:10 f+0x1/0x2")
        v = vmlog.judge(log)
        self.assertFalse(v.ok)
        self.assertEqual(v.splats, 1)

    def test_each_splat_kind_is_caught(self):
        for line in ("BUG: KASAN: slab-use-after-free in f+0x10/0x20",
                     "BUG: sleeping function called from invalid context",
                     "kernel BUG at mm/rmap.c:1000!",
                     "Oops: general protection fault, probably for non-canonical",
                     "general protection fault, probably for non-canonical",
                     "WARNING: possible circular locking dependency detected",
                     "UBSAN: shift-out-of-bounds in lib/foo.c:3:4",
                     "INFO: task hmm-tests:99 blocked for more than 120 seconds.",
                     "watchdog: BUG: soft lockup - CPU#0 stuck for 22s!",
                     "kmemleak: 3 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
                     "DMAR: [DMA Read NO_PASID] Request device [0000:00:05.0] fault addr "
                     "0xfffff000 [fault reason 0x06] PTE Read access is not set",
                     "DMAR: [DMA Write NO_PASID] Request device [0000:00:05.0] fault addr "
                     "0xffffe000 [fault reason 0x05] PTE Write access is not set",
                     "virtio_iommu virtio0: page fault from EP 40 at 0xfffff000 []",
                     "unreferenced object 0xffff888003a4c000 (size 64):"):
            with self.subTest(line=line):
                self.assertEqual(vmlog.splat_lines(f"[    3.141592] {line}\n"), [line])

    def test_timeout_and_missing_status_fail(self):
        v = vmlog.judge(OK_RUN, timed_out=True, timeout=5)
        self.assertFalse(v.ok)
        v = vmlog.judge(OK_RUN.replace("@@VM-EXIT-STATUS=0@@", ""))
        self.assertFalse(v.ok)
        v = vmlog.judge(OK_RUN.replace("STATUS=0", "STATUS=3"))
        self.assertFalse(v.ok)

    def test_dmesg_dump_counts_when_console_missed_it(self):
        v = vmlog.judge(OK_RUN, dmesg="[ 1.0] BUG: KASAN: double-free\n")
        self.assertEqual(v.splats, 1)
        self.assertFalse(v.ok)


class Parse(unittest.TestCase):
    def test_sections(self):
        s = vmlog.sections("x\n@@BEGIN a@@\none\ntwo\n@@END a rc=3@@\n@@BEGIN b@@\nz\n")
        self.assertEqual(s["a"].text, "one\ntwo")
        self.assertEqual(s["a"].rc, 3)
        self.assertEqual(s["b"].rc, -1)

    def test_harness_cases(self):
        c = vmlog.harness_cases(
            "ok 1 hmm.a\nnot ok 2 hmm.b\nok 3 hmm.c # SKIP no huge pages\n"
            "  ok 9 nested.is.ignored\n# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0\n")
        self.assertEqual(c.passed, ["hmm.a"])
        self.assertEqual(c.failed, ["hmm.b"])
        self.assertEqual(c.skipped, ["hmm.c"])

    def test_case_log_is_what_the_failed_case_printed(self):
        text = ("#  RUN           excl.a ...\n# x.c:1:a:Expected 1 (1) == 2 (2)\n"
                "#          FAIL  excl.a\nnot ok 1 excl.a\n#  RUN           excl.ab ...\n"
                "# other\nok 2 excl.ab\n")
        self.assertEqual(vmlog.case_log(text, "excl.a"),
                         ["# x.c:1:a:Expected 1 (1) == 2 (2)", "#          FAIL  excl.a"])
        self.assertEqual(vmlog.case_log(text, "excl.none"), [])

    def test_ktap_strips_timestamps_and_noise(self):
        k = vmlog.ktap("[ 1.0] KTAP version 1\n[ 1.1] 1..1\n[ 1.2] rust_hmm: ready\n"
                       "[ 1.3]     ok 1 insert_lookup\n[ 1.4] ok 1 rust_hmm_device_pt\n")
        self.assertEqual(k, ["KTAP version 1", "1..1", "    ok 1 insert_lookup",
                             "ok 1 rust_hmm_device_pt"])


    def test_ktap_documents_pick_our_suites(self):
        log = ("[ 0.1] KTAP version 1\n[ 0.1] 1..1\n[ 0.1]     # Subtest: rust_kernel_fmt\n"
               "[ 0.1] ok 1 rust_kernel_fmt\n"
               "[ 2.0] KTAP version 1\n[ 2.0] 1..1\n[ 2.0]     # Subtest: rust_hmm_device_pt\n"
               "[ 2.0]     not ok 1 insert_lookup\n[ 2.0] not ok 1 rust_hmm_device_pt\n")
        docs = vmlog.ktap_documents(log, "rust_hmm")
        self.assertEqual(len(docs), 1)
        self.assertEqual(docs[0][-1], "not ok 1 rust_hmm_device_pt")


if __name__ == "__main__":
    unittest.main()


class Parity(unittest.TestCase):
    def _cases(self, text):
        return vmlog.harness_cases(text)

    def test_a_case_only_c_passes_is_a_problem(self):
        import results
        c = self._cases("ok 1 hmm.a\nok 2 hmm.b\nok 3 hmm.c # SKIP x\n")
        ours = self._cases("ok 1 hmm.a\nnot ok 2 hmm.b\nok 3 hmm.c # SKIP x\n")
        problems = results.parity(ours, c)
        self.assertTrue(any("hmm.b" in p for p in problems), problems)

    def test_same_passes_is_parity(self):
        import results
        c = self._cases("ok 1 hmm.a\nok 2 hmm.b # SKIP x\n")
        ours = self._cases("ok 1 hmm.a\nok 2 hmm.b # SKIP x\n")
        self.assertEqual(results.parity(ours, c), [])
