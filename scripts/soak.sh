#!/usr/bin/env bash
# make soak: race-tests, the fuzzer (a new seed each round), hmm-tests,
# migrate-tests' eviction race, dma-tests' ordering stress (the DMA
# mirror), and the fuzzer and coherent-tests on the device-coherent
# devices, round after round, on the multi-CPU test
# kernel for SOAK_MIN minutes (default 30; VARIANT=debug for the debug
# kernel). Reports rounds, hangs and splats; fails on any failed test,
# hang or splat.
#
# A part that overruns its bound is a hang: the guest dumps every CPU's
# backtrace and every blocked task into its kernel log (sysrq l and w) and
# ends the run; if the guest cannot (wedged), the host's timeout samples
# the vCPUs through QEMU's gdb stub (out/NAME/console.log.hang-gdb).
set -euo pipefail
. "$(dirname "$0")/env.sh"
start=$(date +%s)
name=soak${VARIANT:+-$VARIANT}
mkdir -p "$TOP/out/$name"
. "$TOP/scripts/variant.sh"

minutes=${SOAK_MIN:-30}
# A different base seed every run, printed so any round can be replayed
# (ioctl-fuzz SEED SECONDS CALLS).
seed=${SOAK_SEED:-$(( $(date +%s) % 100000 * 100 ))}
if [ "${VARIANT:-}" = debug ]; then
	calls=${SOAK_FUZZ_CALLS:-10000} fuzz_s=900 tests_s=3600
	skip="-T benchmark_thp_migration -T migrate_multiple -T migrate_remap_fault"
else
	calls=${SOAK_FUZZ_CALLS:-200000} fuzz_s=600 tests_s=1200
	skip=
fi
job=$TOP/out/$name/job.sh
cat >"$job" <<JOB
. /lib/vm-lib.sh
SOAK_END=\$(( \$(cut -d. -f1 /proc/uptime) + $minutes * 60 ))
SEED=$seed CALLS=$calls FUZZ_S=$fuzz_s TESTS_S=$tests_s
SKIP="$skip"
JOB
cat >>"$job" <<'JOB'
setup_mm
section insmod:rust_hmm load_rust
use_driver rust
round=1
# A round starts only while time is left; the last may run over.
while [ "$(cut -d. -f1 /proc/uptime)" -lt "$SOAK_END" ]; do
	watched 900 soak:$round:race-tests race-tests
	watched $((FUZZ_S + 120)) soak:$round:ioctl-fuzz \
		ioctl-fuzz $((SEED + round)) $FUZZ_S $CALLS
	watched $TESTS_S soak:$round:hmm-tests hmm-tests $SKIP
	# Eviction racing migrations (the memcg WARN of 2026-12-06).
	watched 300 soak:$round:migrate-release \
		migrate-tests -t release_races_migration
	# Device DMA against munmap, mprotect, fork and migration (30 s).
	watched 300 soak:$round:dma-stress dma-tests -f stress
	# Device-coherent memory: the fuzzer on devices 2 and 3, then the
	# coherent cases (one fills a device).
	watched $((FUZZ_S + 120)) soak:$round:fuzz-coherent \
		fuzz_coherent $((SEED + round + 1000)) $FUZZ_S $((CALLS / 5))
	watched 600 soak:$round:coherent-tests coherent-tests
	round=$((round + 1))
done
section rmmod:rust_hmm rmmod rust_hmm
section info:kmemleak kmemleak_scan
dump_kernel_log
JOB
log "soaking for $minutes min on the ${VARIANT:-normal} kernel, seeds from $seed"
vm_ok=1
# The host's bound: the soak, one more round, and boot.
VM_TIMEOUT=$(( minutes * 60 + 900 + fuzz_s + 120 + tests_s + 300 + 300 + fuzz_s + 120 + 600 ))
python3 "$TOP/scripts/vm.py" --bzimage "$KDIR/arch/x86/boot/bzImage" \
	--job "$job" --file "${MODULE:-$TOP/rust_hmm.ko}:/mod/rust_hmm.ko" \
	--file "$TOP/scripts/vm-lib.sh:/lib/vm-lib.sh" \
	--file "$TOP/out/hmm-tests:/bin/hmm-tests" \
	--file "$TOP/out/race-tests" --file "$TOP/out/ioctl-fuzz" \
	--file "$TOP/out/migrate-tests" --file "$TOP/out/dma-tests" \
	--file "$TOP/out/coherent-tests" \
	--log "$TOP/out/$name/console.log" --cache "$CACHE" \
	--timeout "$VM_TIMEOUT" ${VM_CLOCK:+--clock "$VM_CLOCK"} \
	--gdb "${VM_GDB:-$(( 20000 + RANDOM % 10000 ))}" \
	--vmlinux "$KDIR/vmlinux" --module "${MODULE:-$TOP/rust_hmm.ko}" |
	tee "$TOP/out/$name/vm.txt" || vm_ok=0
rc=0
python3 "$TOP/scripts/soak_report.py" --data "$TOP/out/$name/console.log.data" \
	--vm-ok "$vm_ok" --minutes "$minutes" --seed "$seed" --vm "$TOP/out/$name/vm.txt" || rc=$?
log "make $name took $(( $(date +%s) - start )) s"
exit $rc
