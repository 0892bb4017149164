#!/usr/bin/env bash
# Build the user-space programs that run in the VM: the upstream hmm-tests
# (from the kernel source package, never copied here) and our own tests.
# Static binaries against the test kernel's uapi headers.  Output: out/.
set -euo pipefail
. "$(dirname "$0")/env.sh"
: "${KDIR:?KDIR must name the kernel build}"
ksrc=$(readlink -f "$KDIR/source")
hdr=$KDIR/usr-headers/include
out=$TOP/out
mkdir -p "$out"
cc=(gcc -static -O2 -g -D_GNU_SOURCE -I"$hdr" -I"$ksrc"
	-I"$ksrc/tools/testing/selftests" -I"$ksrc/tools/include")

build() { # OUT SRC...: rebuild when a source or the headers changed
	local o=$1; shift
	if [ ! -f "$o" ] || [ -n "$(find "$@" "$hdr" "$TOP"/samples/user/*.h -newer "$o" -print -quit)" ]; then
		"${cc[@]}" -o "$o" "$@" -lpthread
	fi
}

mm=$ksrc/tools/testing/selftests/mm
build "$out/hmm-tests" "$mm/hmm-tests.c" "$mm/vm_util.c" "$mm/hugepage_settings.c"
for src in "$TOP"/samples/user/*.c; do
	cc+=(-Wall -Werror)
	build "$out/$(basename "$src" .c)" "$src"
done
