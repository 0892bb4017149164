# Sourced by check.sh and soak.sh with $name set (the job's out/ folder).
# With VARIANT=debug: build (once) the debug kernel and rust_hmm.ko for it,
# and export KDIR and MODULE for them.
# shellcheck shell=bash
if [ "${VARIANT:-}" = debug ]; then
	KDIR=$(VARIANT=debug "$TOP/scripts/build-kernel.sh")
	# A copy of the sources, so the two kernels' objects never mix (the
	# kernel's MO= wants a source tree without in-tree objects).
	src=$TOP/out/${name:?}/module
	mkdir -p "$src"
	rsync -a --delete --exclude='*_generated.rs' --include='*/' \
		--include='*.rs' --include='*.c' --include='*.h' --include=Kbuild \
		--include=bindgen.sh --include=doctests.py --exclude='*' \
		"$TOP/Kbuild" "$TOP/rust" "$TOP/samples" "$TOP/scripts" "$src/"
	log "building rust_hmm.ko for the debug kernel"
	make -s -C "$KDIR" M="$src" "${KMAKE_VARS[@]}" modules
	export MODULE=$src/rust_hmm.ko
	# With the TSC handed over (vm.py), an interrupt during early boot once
	# tripped KASAN (wild-memory-access in rcu_is_watching, inside
	# identify_boot_cpu, long before our module loads); the debug kernel
	# keeps the clocksource it finds itself.
	export VM_CLOCK=jiffies
fi
: "${KDIR:?KDIR must name the kernel build}"
export KDIR
