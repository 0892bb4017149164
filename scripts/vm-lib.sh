# Sourced by job scripts inside the VM (busybox sh).  Every section's output
# goes to the console and to the data channel /dev/ttyS1, which the host
# reads without kernel messages interleaved.
DATA=/dev/ttyS1
set -o pipefail

# section NAME CMD...: run CMD, framed by markers the host parses.
section() {
	name=$1; shift
	echo "@@BEGIN $name@@" | tee -a $DATA
	"$@" 2>&1 | tee -a $DATA
	rc=$?
	echo "@@END $name rc=$rc@@" | tee -a $DATA
	return 0
}

# watched SECONDS NAME CMD...: section NAME, but if CMD is still running
# after SECONDS, it counts as a hang: every CPU's backtrace and every
# blocked task go to the kernel log (sysrq l and w, twice, a second
# apart, so a loop shows as moving and a deadlock as still), the log is
# dumped, and the job ends there with status 2 ("@@HANG NAME@@").
watched() {
	limit=$1; name=$2; shift 2
	echo "@@BEGIN $name@@" | tee -a $DATA
	("$@" 2>&1 | tee -a $DATA; echo $? >/tmp/watched.rc) &
	pid=$!
	# Elapsed time from the clock, not from counted sleeps: a busy guest
	# may not run this shell for seconds at a time.
	start=$(cut -d. -f1 /proc/uptime)
	while kill -0 $pid 2>/dev/null; do
		t=$(($(cut -d. -f1 /proc/uptime) - start))
		if [ $t -ge "$limit" ]; then
			echo "@@HANG $name after ${t} s@@" | tee -a $DATA
			for i in 1 2; do
				echo l >/proc/sysrq-trigger; echo w >/proc/sysrq-trigger
				sleep 1
			done
			dump_kernel_log
			echo "@@VM-EXIT-STATUS=2@@"
			sync; reboot -f
		fi
		sleep 1
	done
	wait $pid
	echo "@@END $name rc=$(cat /tmp/watched.rc)@@" | tee -a $DATA
	return 0
}

# load_rust [PARAMS]: insmod rust_hmm.ko and tell the host where its code
# is, for a debugger attached to a hung guest (vm.py).
load_rust() {
	insmod /mod/rust_hmm.ko "$@" || return
	echo "@@MODULE-TEXT=$(cat /sys/module/rust_hmm/sections/.text)@@" >>$DATA
}

# With kmemleak in the kernel, scan twice (the second scan confirms) and
# let the splat check see any report in the kernel log.
kmemleak_scan() {
	[ -e /sys/kernel/debug/kmemleak ] || return 0
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak
	echo "kmemleak: scanned twice, $(grep -c '^unreferenced object' /sys/kernel/debug/kmemleak) objects reported"
}

# tap N OK NAME: one kselftest-style result line.
tap() {
	if [ "$2" = 0 ]; then echo "ok $1 $3"; else echo "not ok $1 $3"; fi
}

# Unload: refused while a file or a mapping holds the module, works after;
# then 100 load/unload cycles must not grow the slab by more than $1 kB
# (default 256; "kmemleak" on the debug kernel, whose KASAN quarantine
# holds freed objects, so kmemleak judges leaks there instead).  Expects the
# module unloaded on entry and leaves it unloaded.
unload_tests() {
	max_growth=${1:-256}
	fail=0
	load_rust || return 1
	hold-device /dev/rust_hmm_dmirror0 >/tmp/hold & pid=$!
	while ! grep -q holding /tmp/hold; do sleep 0.1; done
	rmmod rust_hmm 2>/dev/null; r=$?
	tap 1 $((r == 0)) unload.refused_while_file_open; [ $r != 0 ] || fail=$((fail + 1))
	kill $pid; wait $pid 2>/dev/null
	hold-device /dev/rust_hmm_dmirror1 mmap >/tmp/hold & pid=$!
	while ! grep -q holding /tmp/hold; do sleep 0.1; done
	rmmod rust_hmm 2>/dev/null; r=$?
	tap 2 $((r == 0)) unload.refused_while_mapped; [ $r != 0 ] || fail=$((fail + 1))
	kill $pid; wait $pid 2>/dev/null
	rmmod rust_hmm; r=$?
	tap 3 $r unload.works_when_idle; [ $r = 0 ] || fail=$((fail + 1))
	# Without the KUnit suites (run at every load otherwise, and counted
	# once already): their test threads, mms and devices churn the slabs
	# of both CPUs by more than the bound, which is for the module's own
	# load and unload. kmemleak judges the suites on the debug kernel.
	glob=/sys/module/kunit/parameters/filter_glob
	[ ! -w $glob ] || printf 'no_suite_is_named_so' >$glob
	sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
	before=$(awk '/^Slab:/ {print $2}' /proc/meminfo)
	i=0; r=0
	while [ $i -lt 100 ] && [ $r = 0 ]; do
		load_rust && rmmod rust_hmm || r=1
		i=$((i + 1))
	done
	sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
	after=$(awk '/^Slab:/ {print $2}' /proc/meminfo)
	[ ! -w $glob ] || printf '*' >$glob
	echo "# Slab before ${before} kB, after 100 cycles ${after} kB"
	tap 4 $r unload.load_unload_100_times; [ $r = 0 ] || fail=$((fail + 1))
	grew=$((after - before))
	if [ "$max_growth" = kmemleak ]; then
		echo "ok 5 unload.no_slab_growth # SKIP KASAN quarantine; kmemleak scans instead"
	else
		tap 5 $((grew > max_growth)) unload.no_slab_growth
		[ $grew -le "$max_growth" ] || fail=$((fail + 1))
	fi
	echo "# Totals: pass:$((5 - fail)) fail:$fail xfail:0 xpass:0 skip:0 error:0"
	return $fail
}

# QEMU's edu DMA engine, if the VM has one: rust_hmm bound it and its DMA
# round trip passed (at probe). Without the device (someone's own kernel
# or VM) the case skips. Expects the module loaded.
edu_selftest() {
	echo "1..1"
	dev=
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat $d/vendor)" = 0x1234 ] && [ "$(cat $d/device)" = 0x11e8 ] && dev=$d
	done
	if [ -z "$dev" ]; then
		echo "ok 1 edu.dma_selftest # SKIP no edu device"
		echo "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0"
		return 0
	fi
	r=0
	[ "$(basename "$(readlink $dev/driver)")" = rust_hmm_edu ] || { echo "# $dev: not bound to rust_hmm_edu"; r=1; }
	dmesg | grep -q "$(basename $dev): edu: DMA self-test passed" || { echo "# no self-test pass in the log"; r=1; }
	tap 1 $r edu.dma_selftest
	echo "# Totals: pass:$((r == 0)) fail:$((r != 0)) xfail:0 xpass:0 skip:0 error:0"
	return $r
}

# The fuzzer (ARGS as ioctl-fuzz's) against the device-coherent devices 2
# and 3 of the driver use_driver chose: their memory, migrations and
# SNAPSHOT values. Skips without them.
fuzz_coherent() {
	if [ ! -e /dev/hmm_dmirror2 ] || [ ! -e /dev/hmm_dmirror3 ]; then
		echo "1..1"
		echo "ok 1 ioctl-fuzz.coherent # SKIP no device-coherent devices"
		echo "# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:1 error:0"
		return 0
	fi
	DEV0=/dev/hmm_dmirror2 DEV1=/dev/hmm_dmirror3 ioctl-fuzz "$@"
}

# fuzz_svm SEED SECONDS CALLS: the fuzzer on the svm devices (SVM ranges
# and chunk notifiers under every command).
fuzz_svm() {
	DEV0=/dev/rust_hmm_svm0 DEV1=/dev/rust_hmm_svm1 ioctl-fuzz "$@"
}

# Unload with data still in device memory (no file open): rmmod must move
# it back to system memory, and the process must find every byte.  Expects
# the module loaded and leaves it unloaded.
devmem_unload_test() {
	echo "1..1"
	devmem-hold /dev/rust_hmm_dmirror0 >/tmp/dh & pid=$!
	while ! grep -q -e holding -e "not ok" /tmp/dh; do sleep 0.1; done
	grep "not ok" /tmp/dh && { kill $pid; wait $pid; return 1; }
	rmmod rust_hmm || echo "# rmmod failed"
	kill -USR1 $pid
	wait $pid; r=$?
	grep "ok" /tmp/dh
	echo "# Totals: pass:$((r == 0)) fail:$((r != 0)) xfail:0 xpass:0 skip:0 error:0"
	return $r
}

# The whole kernel log, for KTAP and splat checks, at the end of a job.
dump_kernel_log() {
	echo "@@BEGIN dmesg@@" >>$DATA
	dmesg >>$DATA
	echo "@@END dmesg rc=0@@" >>$DATA
}

# The soft-reserved range vm.py sets up for device-coherent memory
# (memmap=512M%0x100000000-1+0xefffffff; VM_COHERENT=0 leaves it out):
# true if the kernel's e820 map has it.
coherent_reserved() {
	dmesg | grep -q 'mem 0x0000000100000000-0x000000011fffffff\]  *soft reserved'
}

# Point /dev/hmm_dmirrorN (what hmm-tests opens) at one driver: 0 and 1
# are device-private, 2 and 3 device-coherent (the hmm_device_coherent
# cases skip without /dev/hmm_dmirror2).
use_driver() {
	rm -f /dev/hmm_dmirror0 /dev/hmm_dmirror1 /dev/hmm_dmirror2 /dev/hmm_dmirror3
	case $1 in
	c)
		# test_hmm.ko makes devices 2 and 3 coherent, 256 MiB each, given
		# their physical ranges. rust_hmm.ko takes the same ranges for its
		# own coherent devices, so with it loaded (make bench) test_hmm.ko
		# gets none; check.sh runs the C driver in a boot of its own.
		if [ -e /sys/module/rust_hmm ]; then
			echo "use_driver: rust_hmm is loaded, test_hmm.ko without coherent devices"
			insmod /mod/test_hmm.ko || return 1
		elif coherent_reserved; then
			insmod /mod/test_hmm.ko spm_addr_dev0=0x100000000 spm_addr_dev1=0x110000000 || return 1
		else
			echo "use_driver: no soft-reserved range, test_hmm.ko without coherent devices"
			insmod /mod/test_hmm.ko || return 1
		fi
		;;
	rust | svm)
		# svm: devices 0 and 1 are the SVM ones (rust/gpusvm.rs).
		local p=dmirror
		[ "$1" = svm ] && p=svm
		ln -s /dev/rust_hmm_${p}0 /dev/hmm_dmirror0
		ln -s /dev/rust_hmm_${p}1 /dev/hmm_dmirror1
		# The coherent devices, if the module has them (it needs the
		# soft-reserved range).
		for n in 2 3; do
			if [ -e /dev/rust_hmm_dmirror$n ]; then
				ln -s /dev/rust_hmm_dmirror$n /dev/hmm_dmirror$n
			else
				echo "use_driver: no /dev/rust_hmm_dmirror$n (coherent)"
			fi
		done
		;;
	esac
}

# The job of test_hmm.ko's own boot (vm-job.sh's C_JOB): the upstream suite
# against the C driver, with coherent devices when the range is reserved.
# Its sections are information (results.py); its hmm-tests cases are the
# other side of the parity check.
c_driver_job() {
	setup_mm
	section info:insmod:test_hmm use_driver c
	section info:hmm-tests:c hmm-tests
	section info:rmmod:test_hmm rmmod test_hmm
	dump_kernel_log
}

# Settings the hmm-tests cases need: reserved huge pages, THP on madvise.
setup_mm() {
	echo 16 >/proc/sys/vm/nr_hugepages
	echo madvise >/sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null
	echo 1 >/proc/sys/vm/overcommit_memory
	if [ -e /sys/block/zram0 ]; then
		echo 256M >/sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null &&
			swapon /dev/zram0
	fi
}
