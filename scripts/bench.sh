#!/usr/bin/env bash
# make bench: the same workloads against rust_hmm.ko and the C test_hmm.ko
# in one VM boot, alternating drivers, repeated; prints one line per
# workload and size, "bench: NAME rust=X c=Y unit=U ratio=R" (R > 1: ours
# is better), and writes out/bench/bench.csv and out/bench/bench.png.
# BENCH_REPS, BENCH_SIZES (MiB) and BENCH_WORKLOADS override the defaults;
# NAME_thp workloads run NAME on THP-backed memory (samples/user/hmm-bench.c).
set -euo pipefail
. "$(dirname "$0")/env.sh"
: "${KDIR:?KDIR must name the kernel build}"
reps=${BENCH_REPS:-3}
sizes=${BENCH_SIZES:-"1 16 256 1024"}
workloads=${BENCH_WORKLOADS:-"read_fault read_fault_thp warm_read warm_read_thp munmap munmap_thp
	mprotect mprotect_thp snapshot_dense snapshot_sparse exclusive mem_dense mem_sparse"}
dir=$TOP/out/bench
mkdir -p "$dir"
job=$dir/job.sh
cat >"$job" <<JOB
. /lib/vm-lib.sh
REPS=$reps
SIZES="$sizes"
WORKLOADS="$workloads"
JOB
cat >>"$job" <<'JOB'
insmod /mod/test_hmm.ko
insmod /mod/rust_hmm.ko
run() { # WORKLOAD MIB
	for d in c rust; do
		dev=/dev/hmm_dmirror0
		[ $d = rust ] && dev=/dev/rust_hmm_dmirror0
		hmm-bench "$1" "$2" $dev | sed "s/^/$d /"
	done
}
bench() {
	for w in $WORKLOADS; do
		for s in $SIZES; do
			# Device-exclusive conversion is per page and slow: cap it.
			[ $w = exclusive ] && [ $s -gt 256 ] && continue
			i=0
			while [ $i -lt $REPS ]; do run $w $s; i=$((i + 1)); done
		done
	done
}
section info:bench bench
dump_kernel_log
JOB
log "booting the test kernel for the benchmark (TCG; several minutes)"
python3 "$TOP/scripts/vm.py" --bzimage "$KDIR/arch/x86/boot/bzImage" \
	--job "$job" --file "$TOP/rust_hmm.ko:/mod/rust_hmm.ko" \
	--file "$KDIR/lib/test_hmm.ko:/mod/test_hmm.ko" \
	--file "$TOP/scripts/vm-lib.sh:/lib/vm-lib.sh" \
	--file "$TOP/out/hmm-bench" --mem 4G \
	--log "$dir/console.log" --cache "$CACHE" --timeout "${VM_TIMEOUT:-3600}"
python3 -c 'import matplotlib' 2>/dev/null ||
	pip install -q matplotlib >/dev/null 2>&1 ||
	log "matplotlib unavailable: no chart"
python3 "$TOP/scripts/bench_report.py" "$dir/console.log.data" "$dir"
