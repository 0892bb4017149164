#!/usr/bin/env bash
# make rustdoc: the library's HTML documentation (rust/lib.rs as the crate
# rust_hmm) in out/rustdoc/rust_hmm/index.html, built with the flags kbuild
# used to compile the module (saved in samples/dmirror/.rust_dmirror.o.cmd
# by `make modules`), minus what only code generation wants.
set -euo pipefail
. "$(dirname "$0")/env.sh"
saved=$TOP/samples/dmirror/.rust_dmirror.o.cmd
[ -r "$saved" ] || { echo "rustdoc.sh: run make modules first" >&2; exit 1; }
cmd=$(sed -n 's/^savedcmd_[^ ]* := //p' "$saved")
eval "set -- $cmd"
envs=()
while [[ $1 == *=* && $1 != -* ]]; do envs+=("$1"); shift; done
# The compiler (rustc, or clippy-driver for make clippy): its rustdoc
# matches the kernel's crates.
rustdoc=${RUSTDOC:-$(dirname "$1")/rustdoc}
shift
args=()
while [ $# -gt 0 ]; do
	case $1 in
	--emit=* | -Cembed-bitcode=* | -Clto=* | -Zfunction-sections=* | \
	-Zbinary_dep_depinfo=* | -[WA]clippy::* | -Ccodegen-units=*) shift ;;
	--out-dir | --crate-type) shift 2 ;;
	*.rs) shift ;;
	*) args+=("$1"); shift ;;
	esac
done
cd "$TOP"
RUSTC_BOOTSTRAP=1 env "${envs[@]}" "$rustdoc" "${args[@]}" \
	-Dwarnings --crate-name rust_hmm -o out/rustdoc rust/lib.rs
log "rustdoc: out/rustdoc/rust_hmm/index.html"
