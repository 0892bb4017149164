/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What bindgen reads for rust/ffi.rs: the kernel headers whose items the
 * kernel's own `bindings` crate lacks, and our C helpers. Built by
 * scripts/bindgen.sh with the options and compiler flags the kernel used
 * for `rust/bindings`, so prototypes and layouts cannot drift.
 *
 * Macros bindgen cannot evaluate, and enum values, are given a type here,
 * as the kernel's bindings_helper.h does (RUST_CONST_HELPER_*, renamed by
 * the script). Macros it can evaluate (MIGRATE_PFN_*, HPAGE_PMD_ORDER,
 * HMM_RANGE_DEFAULT_TIMEOUT) come as bindgen makes them, so that the same
 * names and types come from the kernel's own bindings in tree.
 */
#include <linux/hmm.h>
#include <linux/hmm-dma.h>
#include <linux/huge_mm.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mmu_notifier.h>
#include <linux/pagewalk.h>
#include <linux/rmap.h>

#include "../helpers.h"

const u64 RUST_CONST_HELPER_MIGRATE_VMA_SELECT_SYSTEM = MIGRATE_VMA_SELECT_SYSTEM;
const u64 RUST_CONST_HELPER_MIGRATE_VMA_SELECT_DEVICE_PRIVATE =
	MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
const u64 RUST_CONST_HELPER_MIGRATE_VMA_SELECT_DEVICE_COHERENT =
	MIGRATE_VMA_SELECT_DEVICE_COHERENT;
const u64 RUST_CONST_HELPER_MIGRATE_VMA_SELECT_COMPOUND = MIGRATE_VMA_SELECT_COMPOUND;

/*
 * bindgen gives no constant for a value with bit 63 set (it declares an
 * extern static instead): those go as their bit, or their complement,
 * and hmm.rs builds the values.
 */
const u32 RUST_CONST_HELPER_HMM_PFN_VALID_BIT = __builtin_ctzl(HMM_PFN_VALID);
const u32 RUST_CONST_HELPER_HMM_PFN_REQ_FAULT_BIT = __builtin_ctzl(HMM_PFN_REQ_FAULT);
const u64 RUST_CONST_HELPER_HMM_PFN_NOT_FLAGS = ~HMM_PFN_FLAGS;
const u64 RUST_CONST_HELPER_HMM_PFN_WRITE = HMM_PFN_WRITE;
const u64 RUST_CONST_HELPER_HMM_PFN_ERROR = HMM_PFN_ERROR;
const u32 RUST_CONST_HELPER_HMM_PFN_ORDER_SHIFT = HMM_PFN_ORDER_SHIFT;
const u64 RUST_CONST_HELPER_HMM_PFN_REQ_WRITE = HMM_PFN_REQ_WRITE;
const u64 RUST_CONST_HELPER_HMM_PFN_DMA_MAPPED = HMM_PFN_DMA_MAPPED;
const u64 RUST_CONST_HELPER_HMM_PFN_P2PDMA = HMM_PFN_P2PDMA;
const u64 RUST_CONST_HELPER_HMM_PFN_P2PDMA_BUS = HMM_PFN_P2PDMA_BUS;
