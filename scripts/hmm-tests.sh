#!/usr/bin/env bash
# make hmm-tests DRIVER=c|rust: the upstream selftest against one driver,
# in one VM boot; prints the harness's own Totals line.
set -euo pipefail
. "$(dirname "$0")/env.sh"
: "${KDIR:?KDIR must name the kernel build}"
driver=${1:-}
case $driver in
c) load="section insmod:test_hmm use_driver c" ;;
rust) load="section insmod:rust_hmm load_rust
use_driver rust" ;;
*) die "usage: make hmm-tests DRIVER=c|rust" ;;
esac
mkdir -p "$TOP/out/hmm-tests-$driver"
job=$TOP/out/hmm-tests-$driver/job.sh
cat >"$job" <<JOB
. /lib/vm-lib.sh
setup_mm
$load
section hmm-tests:$driver hmm-tests
dump_kernel_log
JOB
"$TOP/scripts/vm-job.sh" "hmm-tests-$driver" "$job"
