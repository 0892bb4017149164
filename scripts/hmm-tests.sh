#!/usr/bin/env bash
# make hmm-tests DRIVER=c|rust|both: the upstream selftest against one
# driver, or against each in a boot of its own (both, the default) with the
# case-by-case parity check of make check; prints the harness's own Totals
# line. The C driver's boot gives it the soft-reserved ranges as coherent
# devices; its results and its WARNs there are information.
set -euo pipefail
. "$(dirname "$0")/env.sh"
: "${KDIR:?KDIR must name the kernel build}"
driver=${1:-both}
case $driver in
c | rust | both) ;;
*) die "usage: make hmm-tests DRIVER=c|rust|both" ;;
esac
dir=$TOP/out/hmm-tests-$driver
mkdir -p "$dir"
job=-
c_job=
if [ "$driver" != c ]; then
	job=$dir/job.sh
	cat >"$job" <<'JOB'
. /lib/vm-lib.sh
setup_mm
section insmod:rust_hmm load_rust
use_driver rust
section hmm-tests:rust hmm-tests
dump_kernel_log
JOB
fi
if [ "$driver" != rust ]; then
	c_job=$dir/c-job.sh
	cat >"$c_job" <<'JOB'
. /lib/vm-lib.sh
c_driver_job
JOB
fi
"$TOP/scripts/vm-job.sh" "hmm-tests-$driver" "$job" ${c_job:+"$c_job"}
