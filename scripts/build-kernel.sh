#!/usr/bin/env bash
# Build the test kernel (tinyconfig + .config.fragment) into the cache,
# keyed by kernel version and fragment hash.  Prints the build dir.
#   VARIANT=debug adds .config.fragment.debug on top.
set -euo pipefail
. "$(dirname "$0")/env.sh"
"$TOP/scripts/setup-toolchain.sh"

# One build at a time per variant: a second caller (another make, a
# parallel job) waits for the first and then reuses what it built.
mkdir -p "$CACHE"
exec 9>"$CACHE/build-${VARIANT:-normal}.lock"
flock 9

frags=("$TOP/.config.fragment")
flavour=${VARIANT:-normal}
[ "${VARIANT:-}" = debug ] && frags+=("$TOP/.config.fragment.debug")
key=$(cat "${frags[@]}" | sha256sum | cut -c1-12)
kver=$(make -s -C "$KSRC" kernelversion)
out=$CACHE/build-$kver-$flavour-$key
if [ -f "$out/.built" ]; then
	log "reusing kernel build $out"
	echo "$out"
	exit 0
fi
# Builds of older fragments are dead weight (about 0.5 GB each). Only
# this flavour's: the key is exactly 12 hex digits.
for old in "$CACHE"/build-"$kver"-"$flavour"-????????????; do
	[ -d "$old" ] && [ "$old" != "$out" ] && rm -rf "$old"
done
log "building kernel $kver ($flavour, $key) in $out"
mkdir -p "$out"
km() { make -s -C "$KSRC" O="$out" "${KMAKE_VARS[@]}" "$@"; }
km tinyconfig >/dev/null
cat "${frags[@]}" >"$out/fragment"
(cd "$out" && "$KSRC/scripts/kconfig/merge_config.sh" -m -O "$out" .config fragment >/dev/null)
km olddefconfig >/dev/null
# Every option asked for must have survived olddefconfig.
missing=$(grep -h '^CONFIG_' "${frags[@]}" | while read -r line; do
	case $line in
	*=n) ! grep -q "^${line%=n}=" "$out/.config" || echo "$line" ;;
	*) grep -qxF "$line" "$out/.config" || echo "$line" ;;
	esac
done)
[ -z "$missing" ] || die "options lost in olddefconfig: $missing"
start=$(date +%s)
km -j"$(nproc)" bzImage modules >"$out/build.log" 2>&1 || {
	tail -40 "$out/build.log" >&2; die "kernel build failed"; }
km headers_install INSTALL_HDR_PATH="$out/usr-headers" >/dev/null
log "kernel built in $(( $(date +%s) - start )) s"
touch "$out/.built"
echo "$out"
