#!/usr/bin/env bash
# vm-job.sh NAME JOB [C_JOB]: boot the test kernel once, run the shell script
# JOB in it with both drivers and every user program at hand, and count
# results. Console and data logs land in out/NAME/.
#
# C_JOB, if given, runs in a second boot of its own: test_hmm.ko's, whose
# coherent devices take the soft-reserved ranges our driver uses and which
# WARNs ("Conflicting mapping in same section") whenever one of them asks
# for a second chunk. Its results and splats are information; its
# hmm-tests cases are the other side of results.py's parity check. Its
# logs land in out/NAME/c/. JOB "-": only the C boot (make hmm-tests
# DRIVER=c).
set -euo pipefail
. "$(dirname "$0")/env.sh"
: "${KDIR:?KDIR must name the kernel build}"
name=$1 job=$2 c_job=${3:-}
dir=$TOP/out/$name
mkdir -p "$dir"
files=(--file "${MODULE:-$TOP/rust_hmm.ko}:/mod/rust_hmm.ko"
	--file "$KDIR/lib/test_hmm.ko:/mod/test_hmm.ko"
	--file "$TOP/scripts/vm-lib.sh:/lib/vm-lib.sh"
	--file "$TOP/out/hmm-tests:/bin/hmm-tests")
# Every user program, plus what the unload tests need.
for src in "$TOP"/samples/user/*.c; do
	files+=(--file "$TOP/out/$(basename "$src" .c)")
done
boot() { # LOG JOB TIMEOUT [vm.py options]
	local log=$1 job=$2 timeout=$3
	shift 3
	python3 "$TOP/scripts/vm.py" --bzimage "$KDIR/arch/x86/boot/bzImage" \
		--job "$job" "${files[@]}" --log "$log" \
		--cache "$CACHE" --timeout "$timeout" \
		${VM_CLOCK:+--clock "$VM_CLOCK"} ${VM_ICOUNT:+--icount "$VM_ICOUNT"} \
		${VM_GDB:+--gdb "$VM_GDB" --vmlinux "$KDIR/vmlinux" \
			--module "${MODULE:-$TOP/rust_hmm.ko}"} \
		${VM_VERBOSE:+--verbose} "$@"
}
args=()
if [ "$job" != - ]; then
	vm_ok=1
	boot "$dir/console.log" "$job" "${VM_TIMEOUT:-2400}" || vm_ok=0
	args+=(--data "$dir/console.log.data" --vm-ok "$vm_ok")
fi
if [ -n "$c_job" ]; then
	c_ok=1
	mkdir -p "$dir/c"
	boot "$dir/c/console.log" "$c_job" "${VM_C_TIMEOUT:-1200}" --splats-info || c_ok=0
	args+=(--c-data "$dir/c/console.log.data" --c-vm-ok "$c_ok")
fi
python3 "$TOP/scripts/results.py" "${args[@]}" \
	--ksrc "$(readlink -f "$KDIR/source")" \
	--xfail "$TOP/scripts/hmm-tests-rust.xfail" \
	--host "${HOST_PASSED:-0}" "${HOST_FAILED:-0}"
