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

# With kmemleak in the kernel, scan twice (the second scan confirms) and
# let the splat check see any report in the kernel log.
kmemleak_scan() {
	[ -e /sys/kernel/debug/kmemleak ] || return 0
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak
}

# The whole kernel log, for KTAP and splat checks, at the end of a job.
dump_kernel_log() {
	echo "@@BEGIN dmesg@@" >>$DATA
	dmesg >>$DATA
	echo "@@END dmesg rc=0@@" >>$DATA
}

# Point /dev/hmm_dmirrorN (what hmm-tests opens) at one driver.
use_driver() {
	case $1 in
	c)
		modprobe_c=/mod/test_hmm.ko
		rm -f /dev/hmm_dmirror0 /dev/hmm_dmirror1
		insmod $modprobe_c || return 1
		;;
	rust)
		rm -f /dev/hmm_dmirror0 /dev/hmm_dmirror1
		ln -s /dev/rust_hmm_dmirror0 /dev/hmm_dmirror0
		ln -s /dev/rust_hmm_dmirror1 /dev/hmm_dmirror1
		;;
	esac
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
