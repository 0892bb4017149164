#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# bindgen.sh OBJTREE HEADER OUT ALLOWLIST...: generates OUT (Rust) from
# HEADER with the bindgen options and clang flags the kernel in OBJTREE used
# for its own `rust/bindings` (saved by kbuild in
# .bindings_generated.rs.cmd), keeping only the items the ALLOWLIST options
# (`--allowlist-function ...`) name, and not what they refer to: that comes
# from `kernel::bindings`, which the including module imports, so no kernel
# type is declared twice. Typed constants (RUST_CONST_HELPER_*) and
# one-line wrappers (rust_helper_*) are renamed as the kernel does.
set -euo pipefail
objtree=$(cd "$1" && pwd) header=$(realpath "$2") out=$(realpath -m "$3")
shift 3
allow=("$@")
saved=$objtree/rust/bindings/.bindings_generated.rs.cmd
[ -r "$saved" ] || { echo "bindgen.sh: no $saved (kernel built without Rust?)" >&2; exit 1; }
# One line: `savedcmd_... := BINDGEN HEADER OPTIONS -o OUT -- CFLAGS`.
cmd=$(sed -n 's/^savedcmd_[^ ]* := //p' "$saved")
# Make's escape for '#' in the kernel's cfi_encoding attributes; the
# kernel's own post-processing (`; sed ...` on its output) is not ours.
cmd=${cmd//\$(pound)/#}
cmd=${cmd%%; *}
# Options between the header and `-o`, clang flags after `--`; eval keeps
# the quoted arguments (`'.*'`, attributes) whole.
eval "set -- $cmd"
bindgen=${BINDGEN:-$1}
shift 2
opts=()
while [ $# -gt 0 ] && [ "$1" != -o ]; do opts+=("$1"); shift; done
shift 2 # -o OUT
[ "${1:-}" = -- ] && shift
cflags=()
for f in "$@"; do
	case $f in -Wp,-MMD,*) ;; *) cflags+=("$f") ;; esac
done
cd "$objtree"
"$bindgen" "$header" "${opts[@]}" \
	--no-recursive-allowlist "${allow[@]}" \
	--allowlist-var 'RUST_CONST_HELPER_.*' \
	-o "$out" -- "${cflags[@]}" -DMODULE -I"$(dirname "$header")"
sed -Ei 's/pub const RUST_CONST_HELPER_([a-zA-Z0-9_]*)/pub const \1/g' "$out"
# One-line wrappers of static inlines are `rust_helper_NAME` in C and
# `NAME` in Rust, as the kernel's own helpers.
sed -Ei 's/pub fn rust_helper_([a-zA-Z0-9_]*)/#[link_name="rust_helper_\1"]\n    pub fn \1/g' "$out"
