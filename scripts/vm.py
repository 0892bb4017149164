#!/usr/bin/env python3
"""Boot the test kernel in QEMU with a busybox initramfs, run a job script,
collect the console, and judge the run.

The VM always ends: the job's last act is `reboot -f` (QEMU runs with
-no-reboot), and a host-side timeout kills QEMU otherwise.  A run fails if
the job's exit status is non-zero, if the VM timed out, or if the console
shows a kernel splat (oops, BUG, WARN, KASAN, lockdep, ...), even when
every test said ok.
"""
import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vmlog  # noqa: E402

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmp /tmp
mkdir -p /dev/hugepages && mount -t hugetlbfs none /dev/hugepages
echo 0 > /proc/sys/kernel/printk_ratelimit 2>/dev/null
echo 0 > /proc/sys/kernel/kptr_restrict 2>/dev/null
# The data channel stays open for the whole job. Each section's tee opens
# and closes it; on a two-CPU guest it once went silent for the rest of a
# job right after one section's tee closed it and the next opened it.
# Held open, the port is never shut down and started up in between.
exec 3>/dev/ttyS1
nodes=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)
echo "@@VM-CPUS=$(grep -c ^processor /proc/cpuinfo) NODES=$nodes@@"
# What the kernel made soft reserved (memmap=...%...+0xefffffff): e820's
# word for it; /proc/iomem does not list such ranges.
echo "@@VM-SOFT-RESERVED=$(dmesg | sed -n 's/.*\[mem \(0x[0-9a-f]*-0x[0-9a-f]*\)\]  *soft reserved.*/\1/p' | tr '\n' ' ')@@"
# Where KASLR put the kernel, for a debugger attached to a hung guest.
echo "@@VM-TEXT=$(grep -m1 ' _text$' /proc/kallsyms | cut -d' ' -f1)@@" >&3
echo "@@VM-READY@@"
cd /
sh -c '. /job.sh' </dev/null
echo "@@VM-EXIT-STATUS=$?@@"
sync
reboot -f
"""


def kvm_works(cache, bzimage):
    """KVM is used only if a short test boot really prints kernel output.

    On these machines /dev/kvm exists but guests hang or abort, so the
    answer is probed once per machine and remembered in the cache.
    """
    marker = os.path.join(cache, "kvm-status")
    if os.path.exists(marker):
        return open(marker).read().strip() == "ok"
    ok = False
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        try:
            out = subprocess.run(
                ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host",
                 "-m", "256M", "-nographic", "-no-reboot", "-kernel", bzimage,
                 "-append", "console=ttyS0 panic=-1"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
            text = out.stdout.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            text = (e.stdout or b"").decode(errors="replace")
        # Without an initramfs the kernel panics at once: that is success.
        ok = "Linux version" in text and "Kernel panic" in text
    os.makedirs(cache, exist_ok=True)
    with open(marker, "w") as f:
        f.write("ok\n" if ok else "broken\n")
    return ok


CPUS = re.compile(r"@@VM-CPUS=(\d+) NODES=(\d+)@@")
SOFT_RESERVED = re.compile(r"@@VM-SOFT-RESERVED=([^@]*)@@")


def soft_reserved(text):
    """The guest's soft-reserved ranges as it reported them, shortened
    ("0x100000000-0x11fffffff"), or None if it did not say."""
    m = SOFT_RESERVED.search(text)
    if not m:
        return None
    return ["-".join(hex(int(x, 16)) for x in r.split("-"))
            for r in m.group(1).split()]


def smp_topology(args):
    """One socket per NUMA node, like a multi-socket server: cores that
    share a last-level cache must share a node, or the guest kernel WARNs."""
    nodes = max(1, min(args.nodes, args.smp))
    return (f"{args.smp},sockets={nodes},cores={args.smp // nodes},threads=1"
            if args.smp % nodes == 0 else str(args.smp))


def mem_mib(mem):
    """QEMU's -m size ("3G", "2816M", "4.5G") in MiB."""
    units = {"M": 1, "G": 1024}
    return int(float(mem[:-1]) * units[mem[-1].upper()])


# Device-coherent memory: 512 MiB of RAM at 4 GiB turned into "soft
# reserved" memory (e820 type 0xefffffff), which the kernel leaves to a
# driver (test_hmm.ko's spm_addr_dev0/1, rust_hmm.ko's coherent devices).
# q35 puts RAM above 4 GiB only from -m 2816M on (below that all of it
# fits under the PCI hole at 2.75 GiB; from there on 2 GiB stay low and
# the rest starts at 4 GiB), so a smaller guest gets that much.
# VM_COHERENT_MIB changes the size (make bench reserves 1 GiB, half of it
# for each driver).
COHERENT_MIN_MIB = 2816


def coherent_memmap(size_mib):
    """The kernel parameter that soft-reserves `size_mib` MiB at 4 GiB."""
    return f"memmap={size_mib}M%0x100000000-1+0xefffffff"


def coherent_mem(mib, coherent, size_mib=512):
    """The guest's -m in MiB and a message if it had to grow, for the
    soft-reserved range of `size_mib` MiB (coherent) or none."""
    need = max(COHERENT_MIN_MIB, 2048 + size_mib)
    if coherent and mib < need:
        return need, (
            f"vm: --mem {mib}M raised to {need}M: the "
            "soft-reserved range at 4 GiB (device-coherent memory) needs RAM "
            "there, which q35 has only from 2816M on (VM_COHERENT=0: no "
            "reservation, the size asked for)")
    return mib, None


def numa_args(mib, smp, nodes):
    """QEMU options for `nodes` NUMA nodes sharing `mib` MiB and `smp` vCPUs
    evenly (the guest finds them in ACPI's SRAT)."""
    if nodes < 2:
        return []
    out = []
    for n in range(nodes):
        lo, hi = n * smp // nodes, (n + 1) * smp // nodes - 1
        size = mib // nodes + (mib % nodes if n == nodes - 1 else 0)
        out += ["-object", f"memory-backend-ram,id=ram{n},size={size}M",
                "-numa", f"node,nodeid={n},memdev=ram{n}"
                + (f",cpus={lo}-{hi}" if hi >= lo else "")]
    return out


def sample_hung_guest(args, data):
    """Where each vCPU is, a few times over, from QEMU's gdb stub, with the
    kernel's symbols at the address KASLR gave them (the guest wrote it on
    the data channel) and the module's, if the job wrote its .text address
    ("@@MODULE-TEXT=0x...@@"). Written to LOG.hang-gdb."""
    text = open(data, errors="replace").read() if os.path.exists(data) else ""
    m = re.search(r"@@VM-TEXT=([0-9a-f]+)@@", text)
    out = args.log + ".hang-gdb"
    cmds = ["set pagination off", "set confirm off"]
    if m:
        base = None
        nm = subprocess.run(["nm", args.vmlinux], capture_output=True,
                            text=True).stdout
        for line in nm.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == "_text":
                base = int(parts[0], 16)
        if base is not None:
            off = int(m.group(1), 16) - base
            cmds.append(f"symbol-file -o {off:#x} {args.vmlinux}")
    mod = re.findall(r"@@MODULE-TEXT=(0x[0-9a-f]+)@@", text)
    if mod and args.module:
        cmds.append(f"add-symbol-file {args.module} {mod[-1]}")
    # Each attach stops the guest and detach resumes it: five samples,
    # a second apart, show whether a vCPU is stuck or looping.
    cmds += [f"target remote :{args.gdb}", "info threads",
             "thread apply all bt 30", "detach"]
    with open(out, "w") as f:
        for i in range(5):
            try:
                r = subprocess.run(["gdb", "-batch", "-nx"] + sum(
                    (["-ex", c] for c in cmds), []), capture_output=True,
                    text=True, timeout=120)
                f.write(f"=== sample {i + 1}\n{r.stdout}{r.stderr}\n")
            except (OSError, subprocess.TimeoutExpired) as e:
                f.write(f"=== sample {i + 1}: gdb failed: {e}\n")
            time.sleep(1)
    print(f"vm: hung guest sampled with gdb into {out}")


def host_tsc_khz():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                return int(float(line.split(":")[1]) * 1000)
    except OSError:
        pass
    return None


def build_initramfs(path, files, job):
    root = tempfile.mkdtemp(prefix="hmm-initramfs-")
    try:
        for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "etc", "mod",
                  "root"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
        with open(os.path.join(root, "init"), "w") as f:
            f.write(INIT)
        os.chmod(os.path.join(root, "init"), 0o755)
        shutil.copy(job, os.path.join(root, "job.sh"))
        for spec in files:
            src, _, dst = spec.partition(":")
            dst = dst or "/bin/" + os.path.basename(src)
            full = os.path.join(root, dst.lstrip("/"))
            os.makedirs(os.path.dirname(full), exist_ok=True)
            shutil.copy(src, full)
        names = subprocess.run(["find", "."], cwd=root, check=True,
                               capture_output=True).stdout
        data = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"],
                              cwd=root, input=names, check=True,
                              capture_output=True).stdout
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(data)
    finally:
        shutil.rmtree(root)


def run(args):
    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    initrd = args.log + ".initrd.gz"
    build_initramfs(initrd, args.file, args.job)
    kvm = kvm_works(args.cache, args.bzimage)
    data = args.log + ".data"
    if os.path.exists(data):
        os.unlink(data)
    coherent = os.environ.get("VM_COHERENT", "1") != "0"
    coherent_mib = int(os.environ.get("VM_COHERENT_MIB", "512"))
    mib, note = coherent_mem(mem_mib(args.mem), coherent, coherent_mib)
    if note:
        print(note)
    # ttyS0 is the console; ttyS1 is a data channel for the job's results,
    # free of interleaved kernel messages.
    cmd = ["qemu-system-x86_64", "-m", f"{mib}M", "-smp", smp_topology(args),
           "-display", "none", "-monitor", "none", "-serial", "stdio",
           "-serial", "file:" + data, "-no-reboot", "-kernel", args.bzimage,
           "-initrd", initrd,
           "-append", "console=ttyS0 panic=-1 oops=panic loglevel=7 log_buf_len=16M "
           + args.append]
    cmd += ["-enable-kvm", "-cpu", "host"] if kvm else ["-cpu", args.cpu]
    cmd += numa_args(mib, args.smp, min(args.nodes, args.smp))
    if coherent:
        cmd[cmd.index("-append") + 1] += " " + coherent_memmap(coherent_mib)
    # q35, as PCIe machines are, with an emulated Intel IOMMU in front of
    # its devices (DMA and interrupt remapping, strict flushes), before
    # the devices it translates for. VM_IOMMU=0 leaves the IOMMU out, so
    # DMA mappings take the direct (no IOVA) path.
    cmd += ["-machine", "q35"]
    if os.environ.get("VM_IOMMU", "1") != "0":
        cmd += ["-device", "intel-iommu,intremap=on"]
        cmd[cmd.index("-append") + 1] += " intel_iommu=on iommu.strict=1"
    # QEMU's edu DMA engine for the DMA mirror (samples/dmirror/edu.rs),
    # able to address all of memory (its default mask is 28 bits).
    cmd += ["-device", "edu,dma_mask=0xffffffffffffffff"]
    if not kvm and args.icount is None:
        # One host thread per vCPU, so the guest's CPUs really run in
        # parallel (the default for x86 guests, spelled out). -icount
        # needs the single-threaded round robin instead.
        cmd += ["-accel", "tcg,thread=multi"]
    if args.gdb:
        # Debugging a hung guest: see sample_hung_guest().
        cmd += ["-gdb", f"tcp::{args.gdb}"]
    if not kvm and args.icount is not None:
        cmd += ["-icount", f"shift={args.icount},sleep=off"]
    if not kvm and args.clock == "tsc":
        # Without ACPI (the test kernel has none) the guest cannot calibrate
        # its TSC and falls back to jiffies (4 ms) for time. Under TCG the
        # guest TSC runs at the host TSC's rate, so hand that over.
        khz = host_tsc_khz()
        if khz:
            cmd[cmd.index("-append") + 1] += (
                f" tsc_early_khz={khz} tsc=reliable clocksource=tsc")
    start = time.time()
    timed_out = False
    with open(args.log, "wb") as log:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.set_blocking(p.stdout.fileno(), False)
        while True:
            chunk = p.stdout.read()
            if chunk:
                log.write(chunk)
                log.flush()
                if args.verbose:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
            if p.poll() is not None:
                rest = p.stdout.read()
                if rest:
                    log.write(rest)
                    if args.verbose:
                        sys.stdout.buffer.write(rest)
                break
            if time.time() - start > args.timeout:
                timed_out = True
                if args.gdb and args.vmlinux:
                    sample_hung_guest(args, data)
                p.kill()
                p.wait()
                break
            time.sleep(0.2)
    os.unlink(initrd)
    text = open(args.log, errors="replace").read()
    # The full kernel log the job dumped, if it got that far, sees splats
    # the console may have rate-limited.
    dmesg = vmlog.sections(open(data, errors="replace").read()).get("dmesg")
    verdict = vmlog.judge(text, timed_out=timed_out, timeout=args.timeout,
                          dmesg=dmesg.text if dmesg else None,
                          splats_fail=not args.splats_info)
    m = CPUS.search(text)
    guest = (f"{m.group(1)} CPUs, {m.group(2)} NUMA nodes, " if m
             else "guest CPUs unknown, ")
    sr = soft_reserved(text)
    if sr is not None:
        guest += (f"{mib} MiB with {' '.join(sr)} soft reserved, " if sr
                  else f"{mib} MiB, no soft-reserved memory, ")
    print(f"vm: {'kvm' if kvm else 'tcg'} boot, {guest}"
          f"{time.time() - start:.0f} s, console in {args.log}")
    for line in verdict.problems:
        print(f"vm: FAIL: {line}")
    if args.splats_info:
        kinds = max(vmlog.splat_kinds(text),
                    vmlog.splat_kinds(dmesg.text if dmesg else ""), key=len)
        print(f"splats: {verdict.splats} (information only: "
              f"{vmlog.splat_summary(kinds)})")
    else:
        print(f"splats: {verdict.splats}")
    return 0 if verdict.ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bzimage", required=True)
    ap.add_argument("--job", required=True, help="shell script run in the VM")
    ap.add_argument("--file", action="append", default=[],
                    help="SRC[:DST] to put in the initramfs (default /bin)")
    ap.add_argument("--log", required=True)
    ap.add_argument("--timeout", type=int, default=1200)
    ap.add_argument("--mem", default="3G",
                    help="guest RAM, QEMU's -m (default 3G; 512M of it at "
                    "4 GiB is soft reserved unless VM_COHERENT=0, and the "
                    "guest gets at least 2816M then)")
    ap.add_argument("--cpu", default="max",
                    help="QEMU CPU model under TCG (KVM always uses host)")
    ap.add_argument("--append", default="")
    ap.add_argument("--clock", choices=("tsc", "jiffies"), default="tsc",
                    help="guest clocksource under TCG (default: tsc)")
    ap.add_argument("--smp", type=int,
                    default=int(os.environ.get("VM_CPUS", "2")),
                    help="guest vCPUs (default VM_CPUS or 2)")
    ap.add_argument("--nodes", type=int,
                    default=int(os.environ.get("VM_NODES", "2")),
                    help="guest NUMA nodes (default VM_NODES or 2)")
    ap.add_argument("--gdb", type=int, default=None,
                    help="serve QEMU's gdb stub on this TCP port; with "
                    "--vmlinux, sample the vCPUs before a timeout kills QEMU")
    ap.add_argument("--vmlinux", help="the guest kernel's vmlinux")
    ap.add_argument("--module", help="rust_hmm.ko, for its symbols")
    ap.add_argument("--icount", type=int, default=None,
                    help="TCG: guest time counts instructions, 2^N ns each")
    ap.add_argument("--splats-info", action="store_true",
                    help="count and summarise kernel splats without failing "
                    "the run (test_hmm.ko's boot: it WARNs by design)")
    ap.add_argument("--cache", default=os.environ.get("HMM_CACHE", "/tmp"))
    ap.add_argument("--verbose", action="store_true")
    sys.exit(run(ap.parse_args()))


if __name__ == "__main__":
    main()
