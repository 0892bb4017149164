"""Host-side tests of vm.py's guest memory: the soft-reserved range for
device-coherent memory needs RAM at 4 GiB, which q35 has from -m 2816M on."""
import unittest

import vm


class Memory(unittest.TestCase):
    def test_sizes(self):
        self.assertEqual(vm.mem_mib("3G"), 3072)
        self.assertEqual(vm.mem_mib("4608M"), 4608)
        self.assertEqual(vm.mem_mib("4.5G"), 4608)

    def test_small_guest_grows_only_with_the_reservation(self):
        mib, note = vm.coherent_mem(2048, True)
        self.assertEqual(mib, vm.COHERENT_MIN_MIB)
        self.assertIn("raised to 2816M", note)
        self.assertEqual(vm.coherent_mem(2048, False), (2048, None))
        self.assertEqual(vm.coherent_mem(3072, True), (3072, None))

    def test_numa_nodes_share_the_memory(self):
        args = vm.numa_args(3072, 2, 2)
        self.assertIn("memory-backend-ram,id=ram0,size=1536M", args)
        self.assertIn("memory-backend-ram,id=ram1,size=1536M", args)
        self.assertEqual(vm.numa_args(3072, 2, 1), [])

    def test_soft_reserved_as_the_guest_reported_it(self):
        self.assertEqual(vm.soft_reserved(
            "@@VM-SOFT-RESERVED=0x0000000100000000-0x000000011fffffff @@"),
            ["0x100000000-0x11fffffff"])
        self.assertEqual(vm.soft_reserved("@@VM-SOFT-RESERVED=@@"), [])
        self.assertIsNone(vm.soft_reserved("old guest"))


if __name__ == "__main__":
    unittest.main()
