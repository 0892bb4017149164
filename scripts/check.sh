#!/usr/bin/env bash
# make check: host-side unit tests, then one VM boot with KUnit (at module
# load), our user-space tests, and the upstream hmm-tests against our
# driver and against the C test_hmm.ko.  Ends with "N passed, N failed".
#
# VARIANT=debug (make check-debug) does the same on the debug kernel
# (KASAN, lockdep, DEBUG_VM, DEBUG_PAGEALLOC, kmemleak, ...), with the
# module built for that kernel, a kmemleak scan at the end, and a closing
# "splats: N" line.
set -euo pipefail
. "$(dirname "$0")/env.sh"
start=$(date +%s)
name=check${VARIANT:+-$VARIANT}
mkdir -p "$TOP/out/$name"

if [ "${VARIANT:-}" = debug ]; then
	KDIR=$(VARIANT=debug "$TOP/scripts/build-kernel.sh")
	export MODULE=$TOP/out/$name/module/rust_hmm.ko
	log "building rust_hmm.ko for the debug kernel"
	make -s -C "$KDIR" M="$TOP" MO="$TOP/out/$name/module" "${KMAKE_VARS[@]}" modules
	export VM_TIMEOUT=${VM_TIMEOUT:-4800}
fi
: "${KDIR:?KDIR must name the kernel build}"
export KDIR

log "host tests"
host_log=$TOP/out/$name/host.log
python3 -m unittest discover -s "$TOP/scripts/tests" -t "$TOP/scripts" >"$host_log" 2>&1 || true
tail -n 3 "$host_log"
ran=$(sed -n 's/^Ran \([0-9]*\) tests\?.*/\1/p' "$host_log")
bad=$(grep -oE '(failures|errors)=[0-9]+' "$host_log" | cut -d= -f2 | paste -sd+ | bc || true)
export HOST_FAILED=${bad:-0} HOST_PASSED=$(( ${ran:-0} - ${bad:-0} ))
[ -n "$ran" ] || export HOST_FAILED=1

job=$TOP/out/$name/job.sh
cat >"$job" <<JOB
. /lib/vm-lib.sh
FUZZ_SEED=${FUZZ_SEED:-1}
JOB
cat >>"$job" <<'JOB'
setup_mm
# KUnit suites of the module run while it loads.
section insmod:rust_hmm insmod /mod/rust_hmm.ko
use_driver rust
section user:mirror-tests:rust mirror-tests
section user:exclusive-tests:rust exclusive-tests
section hmm-tests:rust hmm-tests
section user:ioctl-fuzz:rust ioctl-fuzz $FUZZ_SEED 600 1000000
section rmmod:rust_hmm rmmod rust_hmm
section insmod:test_hmm use_driver c
section info:hmm-tests:c hmm-tests
section rmmod:test_hmm rmmod test_hmm
kmemleak_scan
dump_kernel_log
JOB
log "booting the test kernel (TCG)"
rc=0
"$TOP/scripts/vm-job.sh" "$name" "$job" | tee "$TOP/out/$name/result.txt" || rc=$?
log "make $name took $(( $(date +%s) - start )) s"
if [ "${VARIANT:-}" = debug ]; then
	grep '^splats:' "$TOP/out/$name/result.txt" | tail -n 1
fi
exit $rc
