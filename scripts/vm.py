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
echo "@@VM-READY@@"
cd /
sh -c '. /job.sh'
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
    # ttyS0 is the console; ttyS1 is a data channel for the job's results,
    # free of interleaved kernel messages.
    cmd = ["qemu-system-x86_64", "-m", args.mem, "-smp", "2",
           "-display", "none", "-monitor", "none", "-serial", "stdio",
           "-serial", "file:" + data, "-no-reboot", "-kernel", args.bzimage,
           "-initrd", initrd,
           "-append", "console=ttyS0 panic=-1 oops=panic loglevel=7 log_buf_len=16M "
           + args.append]
    cmd += ["-enable-kvm", "-cpu", "host"] if kvm else ["-cpu", args.cpu]
    if args.gdb:
        # Debugging a hung guest: gdb -ex "target remote :PORT" with the
        # build's vmlinux (and the module's .ko at its .text address).
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
                          dmesg=dmesg.text if dmesg else None)
    print(f"vm: {'kvm' if kvm else 'tcg'} boot, {time.time() - start:.0f} s, "
          f"console in {args.log}")
    for line in verdict.problems:
        print(f"vm: FAIL: {line}")
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
    ap.add_argument("--mem", default="2G")
    ap.add_argument("--cpu", default="max",
                    help="QEMU CPU model under TCG (KVM always uses host)")
    ap.add_argument("--append", default="")
    ap.add_argument("--clock", choices=("tsc", "jiffies"), default="tsc",
                    help="guest clocksource under TCG (default: tsc)")
    ap.add_argument("--gdb", type=int, default=None,
                    help="serve QEMU's gdb stub on this TCP port")
    ap.add_argument("--icount", type=int, default=None,
                    help="TCG: guest time counts instructions, 2^N ns each")
    ap.add_argument("--cache", default=os.environ.get("HMM_CACHE", "/tmp"))
    ap.add_argument("--verbose", action="store_true")
    sys.exit(run(ap.parse_args()))


if __name__ == "__main__":
    main()
