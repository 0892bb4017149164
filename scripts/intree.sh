#!/usr/bin/env bash
# intree.sh: applies the series of `make patches` to a scratch copy of the
# kernel source and builds the sample in tree, as a module, with the
# abstractions in the kernel crate. The scratch build starts from a copy of
# the cached test kernel's build, so only what the series touches is
# rebuilt. Then boots that kernel and runs the suites against the in-tree
# module. Prints what it checked; fails if any step does.
set -euo pipefail
. "$(dirname "$0")/env.sh"
: "${KDIR:?KDIR must name the kernel build}"
work=$CACHE/intree
rm -rf "$work"
mkdir -p "$work"
python3 "$TOP/scripts/patches.py" "$KSRC" "$work/patches" >/dev/null
n=$(ls "$work"/patches/*.patch | wc -l)
# The kernel's own style check, as a maintainer would run it. New files
# with no MAINTAINERS entry is the one warning allowed (no entry yet).
style=$(for p in "$work"/patches/*.patch; do
	perl "$KSRC/scripts/checkpatch.pl" --no-tree -q --terse "$p" || true
done | grep -E 'ERROR|WARNING' | grep -v 'does MAINTAINERS need updating' || true)
[ -z "$style" ] || die "checkpatch: $style"
log "intree: checkpatch.pl finds nothing in the series but the missing MAINTAINERS entry"
# Hard links: a copy of the tree in a second. Files the series changes
# get copies of their own first, so the cached source stays pristine.
cp -al "$KSRC" "$work/src"
grep -h '^+++ b/' "$work"/patches/*.patch | cut -c7- | sort -u | while read -r f; do
	[ ! -e "$work/src/$f" ] || cp --remove-destination "$KSRC/$f" "$work/src/$f"
done
for p in "$work"/patches/*.patch; do
	patch -d "$work/src" -p1 -s --no-backup-if-mismatch <"$p" ||
		die "$(basename "$p") does not apply"
done
log "intree: $n patches apply to $(basename "$KSRC")"
cp -a "$KDIR" "$work/build"
# Every object's command line names the source tree by its absolute path,
# so a build of the copy at another path would rebuild everything (5 min).
# In a mount namespace of its own (root only) the copy is bind-mounted
# over the cached source's path, and only what the series touches is
# rebuilt; the cached source itself is not written to either way.
if unshare -m true 2>/dev/null; then
	km() { unshare -m bash -c 'mount --bind "$1" "$2" && shift 2 && exec make -s "$@"' \
		km "$work/src" "$KSRC" -C "$KSRC" O="$work/build" "${KMAKE_VARS[@]}" "$@"; }
else
	km() { make -s -C "$work/src" O="$work/build" "${KMAKE_VARS[@]}" "$@"; }
fi
"$work/src/scripts/config" --file "$work/build/.config" \
	-e SAMPLES -e SAMPLES_RUST -m SAMPLE_RUST_DMIRROR -e RUST_KERNEL_DOCTESTS
km olddefconfig
grep -q '^CONFIG_SAMPLE_RUST_DMIRROR=m' "$work/build/.config" ||
	die "CONFIG_SAMPLE_RUST_DMIRROR did not survive olddefconfig"
start=$(date +%s)
km -j"$(nproc)" bzImage samples/rust/rust_dmirror/rust_dmirror.ko \
	>"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; die "in-tree build failed"; }
if grep -E '^(warning|error)' "$work/build.log" >&2; then
	die "in-tree build warned"
fi
ko=$work/build/samples/rust/rust_dmirror/rust_dmirror.ko
[ -s "$ko" ] || die "no $ko"
grep -q '^CONFIG_RUST_KERNEL_DOCTESTS=y' "$work/build/.config" ||
	die "CONFIG_RUST_KERNEL_DOCTESTS did not survive olddefconfig"
log "intree: kernel crate (with its doctests) and rust_dmirror.ko built in tree in $(( $(date +%s) - start )) s"
# Then run it: the in-tree kernel boots (the abstractions' KUnit suites
# and the kernel crate's doctests, ours among them, run at boot), loads
# rust_dmirror.ko (its own suites run), and hmm-tests runs against it.
job=$work/job.sh
cat >"$job" <<'JOB'
. /lib/vm-lib.sh
setup_mm
section insmod:rust_hmm load_rust
use_driver rust
section hmm-tests:rust hmm-tests
dump_kernel_log
JOB
rc=0
KDIR=$work/build MODULE=$ko "$TOP/scripts/vm-job.sh" intree "$job" || rc=$?
[ $rc = 0 ] || die "the in-tree kernel and sample failed their tests (out/intree/)"
# The copies are 1 GB; the patches and the log stay for a look.
rm -rf "$work/src" "$work/build"
