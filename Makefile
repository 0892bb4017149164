# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree module build, like any other:  make KDIR=/path/to/kernel/build
# Without KDIR, the project's cached test kernel is used (built on first use
# by scripts/build-kernel.sh, which also installs the toolchain).
#
#   make             build rust_hmm.ko
#   make demo        the main job: build, boot the test kernel, run the demo
#   make check       every test; ends with "N passed, N failed"
#   make check-debug the same on the debug kernel (KASAN, lockdep, ...)
#   make fuzz-debug  a million fuzzer calls on the debug kernel (about 2 h)
#   make soak        race-tests, fuzzer, hmm-tests in rounds for SOAK_MIN
#                    minutes (30); VARIANT=debug on the debug kernel
#   make hmm-tests DRIVER=c|rust|both   upstream hmm-tests: one driver, or
#                    each in its own boot with the parity check (default)
#   make bench       our module and test_hmm.ko side by side, ratios + chart
#   make clippy      the module with CLIPPY=1
#   make fmt         rustfmt the Rust sources (make fmt-check to verify)
#   make rustdoc     the library's HTML docs in out/rustdoc
#   make patches     the library and sample as a patch series against the
#                    kernel source, in out/patches (make check builds it)

ifeq ($(KDIR),)
KDIR := $(shell $(CURDIR)/scripts/build-kernel.sh)
endif
ifeq ($(KDIR),)
$(error could not build or find the test kernel)
endif

# Debian's rustc-web ships the library source the kernel needs; clang 19;
# bindgen from crates.io.  Override any of these on the command line.
LLVM ?= -19
RUSTC ?= /usr/bin/rustc
RUSTDOC ?= /usr/bin/rustdoc
RUST_LIB_SRC ?= /usr/lib/rustlib/src/rust/library
BINDGEN ?= $(HOME)/.cargo/bin/bindgen
RUSTFMT ?= /usr/bin/rustfmt
CLIPPY_DRIVER ?= /usr/bin/clippy-driver
KMAKE = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) RUSTC=$(RUSTC) \
	RUSTDOC=$(RUSTDOC) RUST_LIB_SRC=$(RUST_LIB_SRC) BINDGEN=$(BINDGEN) \
	RUSTFMT=$(RUSTFMT) CLIPPY_DRIVER=$(CLIPPY_DRIVER)

RUST_SRCS = $(shell find rust samples -name '*.rs' ! -name '*_generated.rs')

.PHONY: all modules clean clippy fmt fmt-check rustdoc patches user demo check check-debug fuzz-debug soak bench hmm-tests

all: modules

modules:
	$(KMAKE) modules

clippy:
	$(KMAKE) CLIPPY=1 modules

clean:
	$(KMAKE) clean
	rm -rf out

fmt:
	$(RUSTFMT) --edition 2021 --config-path $(KDIR)/source/.rustfmt.toml $(RUST_SRCS)

rustdoc: modules
	RUSTDOC=$(RUSTDOC) scripts/rustdoc.sh

patches:
	python3 scripts/patches.py $(KDIR)/source out/patches

fmt-check:
	$(RUSTFMT) --check --edition 2021 --config-path $(KDIR)/source/.rustfmt.toml $(RUST_SRCS)

user:
	KDIR=$(KDIR) scripts/build-user.sh

demo: modules user
	KDIR=$(KDIR) scripts/demo.sh

check: modules user
	KDIR=$(KDIR) scripts/check.sh

check-debug: user
	VARIANT=debug scripts/check.sh

fuzz-debug: user
	VARIANT=debug FUZZ_ONLY=1 scripts/check.sh

soak: modules user
	KDIR=$(KDIR) scripts/soak.sh

bench: modules user
	KDIR=$(KDIR) scripts/bench.sh

hmm-tests: modules user
	KDIR=$(KDIR) scripts/hmm-tests.sh $(DRIVER)
