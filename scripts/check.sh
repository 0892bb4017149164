#!/usr/bin/env bash
# make check: host-side unit tests, then one VM boot with KUnit (at module
# load), our user-space tests and the upstream hmm-tests against our
# driver, and a second boot with hmm-tests against the C test_hmm.ko (its
# coherent devices need the soft-reserved ranges to themselves, and its
# WARNs are information there), compared case by case with ours.  Ends
# with "N passed, N failed".
#
# VARIANT=debug (make check-debug) does the same on the debug kernel
# (KASAN, lockdep, DEBUG_VM, DEBUG_PAGEALLOC, kmemleak, ...), with the
# module built for that kernel, a kmemleak scan at the end, and a closing
# "splats: N" line.
set -euo pipefail
. "$(dirname "$0")/env.sh"
start=$(date +%s)
name=check${VARIANT:+-$VARIANT}
# FUZZ_ONLY=1 (make fuzz-debug): only the fuzzer, a million calls by
# default, then the unload tests and the kmemleak scan; about two hours on
# the debug kernel under TCG. Runs with different FUZZ_SEEDs can go side by
# side (out/fuzz-debug-sSEED each): the guest has one CPU, QEMU one core.
if [ -n "${FUZZ_ONLY:-}" ]; then
	name=fuzz${VARIANT:+-$VARIANT}-s${FUZZ_SEED:-1}
	export FUZZ_CALLS=${FUZZ_CALLS:-1000000} FUZZ_SECONDS=${FUZZ_SECONDS:-8400}
	export VM_TIMEOUT=${VM_TIMEOUT:-9000}
fi
mkdir -p "$TOP/out/$name"

. "$TOP/scripts/variant.sh"
if [ "${VARIANT:-}" = debug ]; then
	export VM_TIMEOUT=${VM_TIMEOUT:-4800}
	# About 110 fuzz calls a second under KASAN+lockdep on TCG: a million
	# would take hours, so the debug run fuzzes a bounded subset.
	FUZZ_CALLS=${FUZZ_CALLS:-20000}
	SLAB_CHECK=kmemleak
	# Device-to-device takeovers of a page cost about 12 ms each under
	# KASAN+lockdep with two CPUs: a tenth of exclusive-tests' stress, and
	# at most two minutes of it (the bound ends the run, it fails nothing).
	EXCL_STRESS_OPS=${EXCL_STRESS_OPS:-100000}
	EXCL_STRESS_SECONDS=${EXCL_STRESS_SECONDS:-120}
	# Three upstream cases are timing-bound under KASAN+TCG: their own
	# harness timeouts (30 s, 120 s for the benchmark) expire before they
	# finish, for test_hmm.ko as well (migrate_multiple took it 26 s of 30
	# when measured). They run in `make check`; here migrate-tests covers
	# the same paths (repeated migration, mremap of device pages) in less.
	HMM_TESTS_ARGS="-T benchmark_thp_migration -T migrate_multiple -T migrate_remap_fault"
fi
log "host tests"
host_log=$TOP/out/$name/host.log
python3 -m unittest discover -s "$TOP/scripts/tests" -t "$TOP/scripts" >"$host_log" 2>&1 || true
tail -n 3 "$host_log"
ran=$(sed -n 's/^Ran \([0-9]*\) tests\?.*/\1/p' "$host_log")
bad=$(grep -oE '(failures|errors)=[0-9]+' "$host_log" | cut -d= -f2 | paste -sd+ | bc || true)
export HOST_FAILED=${bad:-0} HOST_PASSED=$(( ${ran:-0} - ${bad:-0} ))
[ -n "$ran" ] || export HOST_FAILED=1
# The library's docs build without a warning (broken links, bad markup);
# its examples run in the guest as the KUnit suite rust_hmm_doctests.
if [ -z "${VARIANT:-}" ]; then
	if "$TOP/scripts/rustdoc.sh" >"$TOP/out/$name/rustdoc.log" 2>&1; then
		HOST_PASSED=$((HOST_PASSED + 1))
	else
		tail -n 20 "$TOP/out/$name/rustdoc.log"
		HOST_FAILED=$((HOST_FAILED + 1))
	fi
	# The patch series (make patches) applies to the kernel source, the
	# kernel crate with the abstractions and the sample build in tree
	# without a warning, and that kernel boots and passes the suites
	# (about four minutes).
	if [ -z "${SKIP_INTREE:-}" ]; then
		log "in-tree build of the patch series"
		if "$TOP/scripts/intree.sh" >"$TOP/out/$name/intree.log" 2>&1; then
			HOST_PASSED=$((HOST_PASSED + 1))
		else
			tail -n 20 "$TOP/out/$name/intree.log"
			HOST_FAILED=$((HOST_FAILED + 1))
		fi
		tail -n 2 "$TOP/out/$name/intree.log"
	fi
fi

job=$TOP/out/$name/job.sh
cat >"$job" <<JOB
. /lib/vm-lib.sh
FUZZ_SEED=${FUZZ_SEED:-1}
FUZZ_SECONDS=${FUZZ_SECONDS:-900}
FUZZ_CALLS=${FUZZ_CALLS:-1000000}
SLAB_CHECK=${SLAB_CHECK:-256}
HMM_TESTS_ARGS="${HMM_TESTS_ARGS:-}"
# exclusive-tests' atomic stress: increments, and seconds it may take.
export EXCL_STRESS_OPS=${EXCL_STRESS_OPS:-1000000}
export EXCL_STRESS_SECONDS=${EXCL_STRESS_SECONDS:-240}
JOB
cat >>"$job" <<'JOB'
setup_mm
# KUnit suites of the module run while it loads.
section insmod:rust_hmm load_rust
use_driver rust
section user:edu edu_selftest
JOB
# make fuzz-debug runs only the fuzzer and the unload tests.
[ -n "${FUZZ_ONLY:-}" ] || cat >>"$job" <<'JOB'
section user:mirror-tests:rust mirror-tests
section user:huge-tests:rust huge-tests
section user:exclusive-tests:rust exclusive-tests
section user:race-tests:rust race-tests
section user:migrate-tests:rust migrate-tests
section user:walker-tests:rust walker-tests
section user:dma-tests:rust dma-tests
section user:coherent-tests:rust coherent-tests
section hmm-tests:rust hmm-tests $HMM_TESTS_ARGS
section user:svm-tests svm-tests
# The upstream suite again, through the SVM range layer (svm devices).
use_driver svm
section hmm-tests:svm hmm-tests $HMM_TESTS_ARGS
use_driver rust
JOB
cat >>"$job" <<'JOB'
section user:ioctl-fuzz:rust ioctl-fuzz $FUZZ_SEED $FUZZ_SECONDS $FUZZ_CALLS
JOB
# A fifth as many calls again on the coherent devices (not in fuzz-debug,
# whose bound is for the one run).
[ -n "${FUZZ_ONLY:-}" ] || cat >>"$job" <<'JOB'
section user:ioctl-fuzz:coherent fuzz_coherent $((FUZZ_SEED + 1)) $FUZZ_SECONDS $((FUZZ_CALLS / 5))
section user:ioctl-fuzz:svm fuzz_svm $((FUZZ_SEED + 2)) $FUZZ_SECONDS $((FUZZ_CALLS / 5))
JOB
cat >>"$job" <<'JOB'
section user:devmem-unload devmem_unload_test
section user:unload unload_tests $SLAB_CHECK
JOB
cat >>"$job" <<'JOB'
section info:kmemleak kmemleak_scan
dump_kernel_log
JOB
# The C driver for comparison, in a boot of its own: with the soft-reserved
# ranges as its coherent devices (/dev/hmm_dmirror2 and 3), which our
# driver's would take in the same boot, and with its WARNs kept out of our
# run's splats. Not on the debug kernel, where it only costs time (its THP
# benchmark alone runs into the harness timeout).
c_job=
if [ "${VARIANT:-}" != debug ] && [ -z "${FUZZ_ONLY:-}" ]; then
	c_job=$TOP/out/$name/c-job.sh
	cat >"$c_job" <<'JOB'
. /lib/vm-lib.sh
c_driver_job
JOB
fi
log "booting the test kernel (TCG)${c_job:+, then again for test_hmm.ko}"
rc=0
"$TOP/scripts/vm-job.sh" "$name" "$job" ${c_job:+"$c_job"} | tee "$TOP/out/$name/result.txt" || rc=$?
log "make $name took $(( $(date +%s) - start )) s"
if [ "${VARIANT:-}" = debug ]; then
	grep '^splats:' "$TOP/out/$name/result.txt" | tail -n 1
fi
exit $rc
