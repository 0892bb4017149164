# Shared settings for every script; sourced, never run.
# shellcheck shell=bash
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-hmm}
KVER_MAJOR=7.3
KSRC_TARBALL=$CACHE/linux-source-$KVER_MAJOR.tar.xz
KSRC=$CACHE/linux-source-$KVER_MAJOR
BINDGEN_VERSION=0.72.1
BINDGEN=${BINDGEN:-$HOME/.cargo/bin/bindgen}
export PATH=$HOME/.cargo/bin:$PATH
# Kernel make variables: Debian's rustc (it ships the matching library
# source), clang 19 and bindgen from crates.io.
KMAKE_VARS=(LLVM=-19 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
	RUST_LIB_SRC=/usr/lib/rustlib/src/rust/library BINDGEN="$BINDGEN"
	RUSTFMT=/usr/bin/rustfmt)
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
