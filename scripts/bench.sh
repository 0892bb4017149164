#!/usr/bin/env bash
# make bench: the same workloads against rust_hmm.ko and the C test_hmm.ko
# in one VM boot, alternating drivers, repeated; prints one line per
# workload and size, "bench: NAME rust=X c=Y unit=U ratio=R" (R > 1: ours
# is better), and writes out/bench/bench.csv and out/bench/bench.png.
# Workloads without a C counterpart print "bench: NAME rust=X unit=U" only.
# BENCH_REPS, BENCH_SIZES (MiB) and BENCH_WORKLOADS override the defaults;
# NAME_thp workloads run NAME on THP-backed memory (samples/user/hmm-bench.c).
# The guest CPU hides ERMS and FSRM (BENCH_CPU overrides): with them the
# kernel copies with rep movsb, which QEMU emulates a byte at a time, so a
# copy costs five times what the kernel's 8-byte copies do and drowns the
# rest of a device READ, far from what hardware shows.
set -euo pipefail
. "$(dirname "$0")/env.sh"
: "${KDIR:?KDIR must name the kernel build}"
reps=${BENCH_REPS:-3}
sizes=${BENCH_SIZES:-"1 16 256 1024"}
workloads=${BENCH_WORKLOADS:-"read_fault read_fault_thp warm_read warm_read_thp munmap munmap_thp
	mprotect mprotect_thp snapshot_dense snapshot_sparse exclusive migrate_to_dev
	migrate_to_sys migrate_cpu_fault mem_dense mem_sparse"}
dir=$TOP/out/bench
mkdir -p "$dir"
job=$dir/job.sh
cat >"$job" <<JOB
. /lib/vm-lib.sh
REPS=$reps
SIZES="$sizes"
WORKLOADS="$(echo $workloads)"
THP_BENCH=${BENCH_THP:-1}
WALK_MIB=${BENCH_WALK_MIB:-1024}  # 0: no device-buffer walks
DMA_BENCH=${BENCH_DMA:-1}  # 0: no DMA mirror workloads
COHERENT_BENCH=${BENCH_COHERENT:-1}  # 0: no device-coherent workloads
SVM_BENCH=${BENCH_SVM:-1}  # 0: no fault-throughput workloads
JOB
cat >>"$job" <<'JOB'
# 1 GiB at 4 GiB is soft reserved (VM_COHERENT_MIB below): the first half
# for test_hmm.ko's coherent devices, 256 MiB each from the addresses given,
# the second for rust_hmm.ko's, split in two, so that both drivers have
# them in the one boot. Ours loads first: its KUnit suites and examples
# borrow the first soft-reserved megabytes while it loads, which test_hmm
# registers at load without claiming them.
load_rust coherent_base=0x120000000 coherent_size=0x20000000 || load_rust
insmod /mod/test_hmm.ko spm_addr_dev0=0x100000000 spm_addr_dev1=0x110000000 ||
	insmod /mod/test_hmm.ko
run() { # WORKLOAD MIB
	for d in c rust; do
		dev=/dev/hmm_dmirror0
		[ $d = rust ] && dev=/dev/rust_hmm_dmirror0
		hmm-bench "$1" "$2" $dev | sed "s/^/$d /"
	done
}
bench() {
	for w in $WORKLOADS; do
		# NAME_thp runs right after NAME, run for run, so that the two are
		# compared under the same conditions of the guest and the host.
		case $w in *_thp) case " $WORKLOADS " in *" ${w%_thp} "*) continue ;; esac ;; esac
		twin=
		case " $WORKLOADS " in *" ${w}_thp "*) twin=${w}_thp ;; esac
		for s in $SIZES; do
			# Device-exclusive conversion is per page and slow: cap it;
			# migration needs device, data and buffer memory: cap it too.
			case $w in exclusive|migrate_*) [ $s -gt 256 ] && continue ;; esac
			i=0
			while [ $i -lt $REPS ]; do
				run $w $s
				[ -z "$twin" ] || run $twin $s
				i=$((i + 1))
			done
		done
	done
}
# Device-buffer walks (rust_hmm only): a BENCH_WALK_MIB mapping with 1, 10
# and 100 % of its pages populated.
bench_devbuf() {
	for pct in 1 10 100; do
		i=0
		while [ $i -lt $REPS ]; do
			hmm-bench devbuf_${pct}pct $WALK_MIB /dev/rust_hmm_dmirror0 | sed "s/^/rust /"
			i=$((i + 1))
		done
	done
}
section info:bench bench
# The DMA mirror (rust_hmm only, with QEMU's edu device): sizes in pages,
# every transfer taking 100 ms of virtual time.
bench_dma() {
	[ -e /dev/rust_hmm_dmirror_dma ] || { echo "no edu device"; return 0; }
	for w in dma_read dma_write dma_munmap dma_munmap_idle; do
		i=0
		while [ $i -lt $REPS ]; do
			hmm-bench $w 16 /dev/rust_hmm_dmirror_dma | sed "s/^/rust /"
			i=$((i + 1))
		done
	done
}
[ "$DMA_BENCH" = 0 ] || section info:bench-dma bench_dma
# Device-coherent memory (devices 2): migration both ways, and CPU reads of
# pages left there (no fault moves them, unlike device-private memory).
bench_coherent() {
	[ -e /dev/rust_hmm_dmirror2 ] && [ -e /dev/hmm_dmirror2 ] ||
		{ echo "no coherent devices for both drivers"; return 0; }
	for w in migrate_to_dev migrate_to_sys migrate_cpu_fault; do
		for s in 1 16 128; do
			i=0
			while [ $i -lt $REPS ]; do
				for d in c rust; do
					dev=/dev/hmm_dmirror2
					[ $d = rust ] && dev=/dev/rust_hmm_dmirror2
					hmm-bench coherent_$w $s $dev | sed "s/^/$d /"
				done
				i=$((i + 1))
			done
		done
	done
}
[ "$COHERENT_BENCH" = 0 ] || section info:bench-coherent bench_coherent
# Device-fault throughput, one thread and one per CPU, on disjoint 2 MiB
# chunks and on one page: test_hmm against our dmirror device (plain rows)
# and against our svm device (svm_ rows, with test_hmm run again beside it).
bench_svm() {
	for w in fault_disjoint_1t fault_disjoint_mt fault_page_1t fault_page_mt; do
		i=0
		while [ $i -lt $REPS ]; do
			hmm-bench $w 16 /dev/hmm_dmirror0 | sed "s/^/c /"
			hmm-bench $w 16 /dev/rust_hmm_dmirror0 | sed "s/^/rust /"
			hmm-bench svm_$w 16 /dev/hmm_dmirror0 | sed "s/^/c /"
			hmm-bench svm_$w 16 /dev/rust_hmm_svm0 | sed "s/^/rust /"
			i=$((i + 1))
		done
	done
	# Invalidating one page's range with 1 to 10,000 others mapped.
	for n in 1 10 100 10000; do
		i=0
		while [ $i -lt $REPS ]; do
			hmm-bench inval_ranges $n /dev/hmm_dmirror0 | sed "s/^/c /"
			hmm-bench inval_ranges $n /dev/rust_hmm_dmirror0 | sed "s/^/rust /"
			hmm-bench svm_inval_ranges $n /dev/hmm_dmirror0 | sed "s/^/c /"
			hmm-bench svm_inval_ranges $n /dev/rust_hmm_svm0 | sed "s/^/rust /"
			i=$((i + 1))
		done
	done
}
[ "$SVM_BENCH" = 0 ] || section info:bench-svm bench_svm
# The upstream suite's own THP migration benchmark, for both drivers.
thp_bench() {
	for d in rust c; do
		[ $d = c ] && rmmod test_hmm
		use_driver $d
		echo "## $d"
		hmm-tests -t benchmark_thp_migration 2>&1 |
			grep -E '^(===|Sys|Dev|S->D|D->S|ok|not ok)'
	done
}
[ "$THP_BENCH" = 0 ] || section info:thp-bench thp_bench
[ "$WALK_MIB" = 0 ] || section info:bench-devbuf bench_devbuf
dump_kernel_log
JOB
# Two clocks, a boot each, one after the other. "icount" (QEMU -icount):
# guest time advances with the instructions executed, so figures are
# deterministic and blind to the load of the host; their unit is a fixed
# number of instructions, so only ratios mean anything. "wall": the host's
# time, as TCG runs, which charges what QEMU emulates slowly (returns and
# other indirect jumps, string instructions) far above what hardware does.
clock=${BENCH_CLOCK:-both}
case $clock in
icount) clocks="icount" ;;
wall) clocks="wall" ;;
both) clocks="icount wall" ;;
*) die "BENCH_CLOCK must be icount, wall or both" ;;
esac
inputs=()
for c in $clocks; do
	mkdir -p "$dir/$c"
	log "booting the test kernel for the benchmark, $c clock (TCG; several minutes)"
	icount=()
	[ "$c" = icount ] && icount=(--icount 0)
	# 4 GiB of RAM for the guest, as before, and 1 GiB soft reserved for
	# both drivers' device-coherent memory.
	VM_COHERENT_MIB=1024 python3 "$TOP/scripts/vm.py" --bzimage "$KDIR/arch/x86/boot/bzImage" \
		--job "$job" --file "$TOP/rust_hmm.ko:/mod/rust_hmm.ko" \
		--file "$KDIR/lib/test_hmm.ko:/mod/test_hmm.ko" \
		--file "$TOP/scripts/vm-lib.sh:/lib/vm-lib.sh" \
		--file "$TOP/out/hmm-bench" --file "$TOP/out/hmm-tests:/bin/hmm-tests" \
		--mem 5G \
		--cpu "${BENCH_CPU:-max,-erms,-fsrm}" "${icount[@]}" \
		--log "$dir/$c/console.log" --cache "$CACHE" --timeout "${VM_TIMEOUT:-3600}"
	inputs+=("$c=$dir/$c/console.log.data")
done
python3 -c 'import matplotlib' 2>/dev/null ||
	pip install -q matplotlib >/dev/null 2>&1 ||
	log "matplotlib unavailable: no chart"
python3 "$TOP/scripts/bench_report.py" "$dir" "${inputs[@]}"
