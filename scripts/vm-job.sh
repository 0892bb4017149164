#!/usr/bin/env bash
# vm-job.sh NAME JOB: boot the test kernel once, run the shell script JOB in
# it with both drivers and every user program at hand, and count results.
# Console and data logs land in out/NAME/.
set -euo pipefail
. "$(dirname "$0")/env.sh"
: "${KDIR:?KDIR must name the kernel build}"
name=$1 job=$2
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
vm_ok=1
python3 "$TOP/scripts/vm.py" --bzimage "$KDIR/arch/x86/boot/bzImage" \
	--job "$job" "${files[@]}" --log "$dir/console.log" \
	--cache "$CACHE" --timeout "${VM_TIMEOUT:-2400}" \
	${VM_CLOCK:+--clock "$VM_CLOCK"} ${VM_ICOUNT:+--icount "$VM_ICOUNT"} \
	${VM_GDB:+--gdb "$VM_GDB" --vmlinux "$KDIR/vmlinux" \
		--module "${MODULE:-$TOP/rust_hmm.ko}"} \
	${VM_VERBOSE:+--verbose} || vm_ok=0
python3 "$TOP/scripts/results.py" --data "$dir/console.log.data" \
	--ksrc "$(readlink -f "$KDIR/source")" --vm-ok "$vm_ok" \
	--xfail "$TOP/scripts/hmm-tests-rust.xfail" \
	--host "${HOST_PASSED:-0}" "${HOST_FAILED:-0}"
