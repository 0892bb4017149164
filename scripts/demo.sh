#!/usr/bin/env bash
# make demo: boot the test kernel, load rust_hmm, run the demo program and
# print what happened.
set -euo pipefail
. "$(dirname "$0")/env.sh"
: "${KDIR:?KDIR must name the kernel build}"
mkdir -p "$TOP/out/demo"
job=$TOP/out/demo/job.sh
cat >"$job" <<'JOB'
. /lib/vm-lib.sh
section insmod:rust_hmm load_rust
section step:demo hmm-demo /dev/rust_hmm_dmirror0
section rmmod:rust_hmm rmmod rust_hmm
dump_kernel_log
JOB
log "booting the test kernel (TCG: a minute or two)"
out=$TOP/out/demo/result.txt
rc=0
"$TOP/scripts/vm-job.sh" demo "$job" >"$out" 2>&1 || rc=$?
grep '^demo:' "$TOP/out/demo/console.log.data" | tr -d '\r' || true
grep -E '^(vm:|splats:|kunit:|FAILED|[0-9]+ passed)' "$out" || true
exit $rc
