"""Host-side tests of the soak summary: rounds count only when every part
ran, whatever the number of parts; a failed part, a hang or an unknown
splat count fails the soak."""
import unittest

import soak_report

VM_OK = "vm: tcg boot, 2 CPUs, 2 NUMA nodes, 60 s\nsplats: 0\n"


def part(rnd, name, rc=0, fail=0):
    return (f"@@BEGIN soak:{rnd}:{name}@@\n"
            f"# Totals: pass:1 fail:{fail} xfail:0 xpass:0 skip:0 error:0\n"
            f"@@END soak:{rnd}:{name} rc={rc}@@\n")


PARTS = ("race-tests", "ioctl-fuzz", "hmm-tests", "migrate-release")


class Summary(unittest.TestCase):
    def test_rounds_of_four_parts_count(self):
        data = "".join(part(r, p) for r in (1, 2) for p in PARTS)
        lines, ok = soak_report.summarise(data, VM_OK, 1, 10, 100)
        self.assertTrue(ok, lines)
        self.assertIn("soak: 2 rounds in 10 min", lines[0])

    def test_unfinished_last_round_does_not_count(self):
        data = "".join(part(1, p) for p in PARTS) + part(2, PARTS[0])
        lines, ok = soak_report.summarise(data, VM_OK, 1, 10, 100)
        self.assertTrue(ok, lines)
        self.assertIn("soak: 1 rounds", lines[0])

    def test_failed_part_fails(self):
        data = "".join(part(1, p, fail=int(p == "hmm-tests")) for p in PARTS)
        lines, ok = soak_report.summarise(data, VM_OK, 1, 10, 100)
        self.assertFalse(ok)
        self.assertTrue(any("round 1 hmm-tests" in l for l in lines), lines)

    def test_hang_and_unknown_splats_fail(self):
        data = "".join(part(1, p) for p in PARTS)
        hung = data + "@@HANG soak:2:race-tests after 900 s@@\n"
        self.assertFalse(soak_report.summarise(hung, VM_OK, 1, 10, 100)[1])
        self.assertFalse(soak_report.summarise(data, "vm: x\n", 1, 10, 100)[1])


if __name__ == "__main__":
    unittest.main()
