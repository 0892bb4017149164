#!/usr/bin/env bash
# Install everything the build and the VM tests need on a fresh Debian 12
# machine.  Idempotent: a second run only checks.
set -euo pipefail
. "$(dirname "$0")/env.sh"
# One setup at a time (apt, the unpacked source): others wait, then check.
mkdir -p "$CACHE"
exec 8>"$CACHE/setup.lock"
flock 8

need_apt=()
for p in clang-19 lld-19 llvm-19 libclang-19-dev bc flex bison libelf-dev \
	cpio rsync busybox-static kmod xz-utils python3 gcc make patch git \
	util-linux perl; do
	dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
dpkg -s qemu-system-x86 >/dev/null 2>&1 || need_apt+=(qemu-system-x86)
# The kernel needs rustc and its library source of one version; clippy and
# rustfmt must match it too (rustup's newer-or-older ones cannot read the
# kernel's crates).
for p in rustc-web rust-web-src rust-web-clippy rustfmt-web; do
	dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done

# The machine image carries qemu-utils from bookworm-backports, which breaks
# bookworm's qemu-system 7.2; take qemu-system from the same backports.
if [ ! -f /etc/apt/sources.list.d/bookworm-backports.sources ]; then
	cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
if [ ! -f /etc/apt/sources.list.d/trixie-backports.sources ]; then
	log "adding trixie-backports (pinned at 100) for linux-source-7.3"
	cat >/etc/apt/sources.list.d/trixie-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	cat >/etc/apt/preferences.d/trixie-backports-low <<'PIN'
Package: *
Pin: release n=trixie-backports
Pin-Priority: 100
PIN
	apt_updated=
fi

if [ ${#need_apt[@]} -gt 0 ] || [ ! -f "$KSRC_TARBALL" ]; then
	log "apt-get update"
	apt-get update -qq
fi
if [ ${#need_apt[@]} -gt 0 ]; then
	log "installing: ${need_apt[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		$(printf '%s\n' "${need_apt[@]}" | grep -v -e '^rust' -e '^qemu') >/dev/null
	if printf '%s\n' "${need_apt[@]}" | grep -q '^qemu'; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
	fi
	if printf '%s\n' "${need_apt[@]}" | grep -q '^rust'; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			-t bookworm-security rustc-web rust-web-src rust-web-clippy \
			rustfmt-web >/dev/null
	fi
fi

if ! "$BINDGEN" --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	log "installing bindgen-cli $BINDGEN_VERSION from crates.io"
	cargo install bindgen-cli --version "$BINDGEN_VERSION" --locked --quiet
fi

mkdir -p "$CACHE"
if [ ! -f "$KSRC_TARBALL" ]; then
	log "fetching linux-source-$KVER_MAJOR"
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "linux-source-$KVER_MAJOR" && \
		dpkg -x linux-source-*.deb x && \
		mv x/usr/src/linux-source-$KVER_MAJOR.tar.xz "$KSRC_TARBALL.tmp")
	mv "$KSRC_TARBALL.tmp" "$KSRC_TARBALL"
	rm -rf "$tmp"
fi
if [ ! -f "$KSRC/.unpacked" ]; then
	log "unpacking kernel source to $KSRC"
	rm -rf "$KSRC" "$KSRC.tmp"
	mkdir -p "$KSRC.tmp"
	tar -xJf "$KSRC_TARBALL" -C "$KSRC.tmp" --strip-components=1
	mv "$KSRC.tmp" "$KSRC"
	touch "$KSRC/.unpacked"
fi
log "toolchain ready ($(/usr/bin/rustc --version), $("$BINDGEN" --version))"
