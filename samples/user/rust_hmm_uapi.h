/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rust_hmm's ioctl ABI: everything of lib/test_hmm_uapi.h, plus the
 * commands and values below, numbered apart from test_hmm's.
 */
#ifndef _RUST_HMM_UAPI_H
#define _RUST_HMM_UAPI_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include "lib/test_hmm_uapi.h"

/*
 * Device fetch-and-add on the __u64 at @addr (8-byte aligned) of the
 * mirrored process. The device holds the page device-exclusive while it
 * adds, taking it first if it does not (@faults = 1), so CPU and device
 * updates are never lost.
 */
struct hmm_dmirror_atomic {
	__u64 addr;	/* (in) */
	__u64 value;	/* (in) value to add */
	__u64 old;	/* (out) value before the add */
	__u64 faults;	/* (out) 1 if exclusive access had to be taken */
};

#define HMM_DMIRROR_ATOMIC_ADD	_IOWR('H', 0x40, struct hmm_dmirror_atomic)

/*
 * Counters of one mirror (one open file). Fields are only ever appended;
 * the size is part of the command number, and the driver answers the
 * command of every size it has had with that many leading fields.
 */
struct hmm_dmirror_stats {
	__u64 invalidations;	/* notifier invalidations handled */
	__u64 invalidate_ns;	/* time spent in them, lock held */
	__u64 entries;		/* valid 4 KiB device page table entries */
	__u64 dirs;		/* directories below the root */
	__u64 table_bytes;	/* bytes of directories, root included */
	__u64 huge_entries;	/* huge (2 MiB, PMD order) leaves */
	__u64 huge_splits;	/* huge leaves split into 4 KiB entries */
	__u64 devmem_pages;	/* device memory registered, in pages (device-wide) */
	__u64 devmem_in_use;	/* of which in use by migrated data (device-wide) */
	__u64 devmem_max_pages;	/* most it may register; all in use: ENOMEM */
};

#define HMM_DMIRROR_STATS	_IOR('H', 0x41, struct hmm_dmirror_stats)

/*
 * HMM_DMIRROR_FLAGS with HMM_DMIRROR_FLAG_FAIL_ALLOC: which destination
 * allocation of this file's migrations fails, counting from the next (1,
 * also what 0 means); a THP's folio counts as one.
 */
#define HMM_DMIRROR_FLAG_FAIL_NTH(n)	((__u64)(n) << 32)

/*
 * HMM_DMIRROR_FLAGS bit: pages this file migrated stay in device memory
 * when it is closed, until RELEASE, a CPU access or module unload moves
 * them back. Without it, closing the file moves them back.
 */
#define HMM_DMIRROR_FLAG_KEEP_ON_CLOSE	(1ULL << 1)

/* SNAPSHOT: this mirror holds the page device-exclusive. */
#define HMM_DMIRROR_PROT_DEV_EXCLUSIVE	0x80

/*
 * Device buffers: memory the driver owns, mapped with mmap(MAP_SHARED) on
 * the device file at the offset CREATE returns (offset 0 stays test_hmm's
 * mixedmap case). Pages are allocated on first fault and freed when the
 * file is closed and the last mapping is gone. Every call taking a buffer
 * names it by that offset, and only through the file that created it
 * (EINVAL otherwise, or for an empty, overflowing or out-of-buffer range).
 */
struct hmm_devbuf_create {
	__u64 npages;	/* (in) 1 .. HMM_DEVBUF_MAX_PAGES */
	__u64 offset;	/* (out) mmap offset */
};

/* A page range of a buffer, for CLEAN, ZAP and SET_CACHE. */
struct hmm_devbuf_range {
	__u64 offset;	/* (in) the buffer's mmap offset */
	__u64 first;	/* (in) first page */
	__u64 npages;	/* (in) pages, at least 1 */
	__u64 arg;	/* (in) CLEAN: user address of ceil(npages / 64) __u64
			 * (bit i = page first + i); SET_CACHE: HMM_DEVBUF_CACHE_*;
			 * ZAP: 0 */
	__u64 count;	/* (out) CLEAN: pages reported dirty; else npages */
};

/* One PTE seen by WALK. */
struct hmm_devbuf_entry {
	__u64 addr;	/* user address in its process */
	__u64 page;	/* buffer page it maps */
	__u32 flags;	/* HMM_DEVBUF_PTE_* */
	__u32 cache;	/* the PTE's cache-mode bits (x86: PWT|PCD|PAT); 0 = WB */
	__u64 mm;	/* index of its process among the nmms of this walk */
};

struct hmm_devbuf_walk {
	__u64 offset;		/* (in) the buffer's mmap offset */
	__u64 first;		/* (in) first page */
	__u64 npages;		/* (in) pages, at least 1 */
	__u64 flags;		/* (in) HMM_DEVBUF_WALK_* */
	__u64 entries;		/* (in) struct hmm_devbuf_entry[max_entries], or 0 */
	__u64 max_entries;	/* (in) at most HMM_DEVBUF_WALK_MAX_ENTRIES */
	__u64 nentries;		/* (out) entries visited; first max_entries stored */
	__u64 nvmas;		/* (out) VMAs visited */
	__u64 nmms;		/* (out) processes visited */
};

/* Module-wide counters of device-buffer pages. */
struct hmm_devbuf_stats {
	__u64 pages;		/* buffer pages allocated now, all buffers */
	__u64 pages_not_wb;	/* of which with a UC or WC linear map */
	__u64 cache_calls;	/* linear-map changes since load (each a
				 * TLB flush on every CPU) */
	__u64 flags;		/* HMM_DEVBUF_STATS_* */
};

#define HMM_DEVBUF_MAX_PAGES		(1UL << 18)	/* 1 GiB */
#define HMM_DEVBUF_WALK_MAX_ENTRIES	(1UL << 20)
#define HMM_DEVBUF_WALK_POPULATE	1	/* map missing pages read-only first */
#define HMM_DEVBUF_PTE_WRITE		1
#define HMM_DEVBUF_PTE_DIRTY		2
#define HMM_DEVBUF_CACHE_WB		0
#define HMM_DEVBUF_CACHE_UC		1	/* pgprot_noncached */
#define HMM_DEVBUF_CACHE_WC		2	/* pgprot_writecombine */
#define HMM_DEVBUF_STATS_PAT		1	/* x86 PAT on: UC, WC, WB differ */

/* Allocate a buffer. */
#define HMM_DEVBUF_CREATE	_IOWR('H', 0x50, struct hmm_devbuf_create)
/* Visit the PTEs mapping a range in every process, without populating
 * unless asked; cost follows the populated part. */
#define HMM_DEVBUF_WALK		_IOWR('H', 0x51, struct hmm_devbuf_walk)
/* Report the pages written since the last CLEAN (by any process) and
 * write-protect them everywhere again. */
#define HMM_DEVBUF_CLEAN	_IOWR('H', 0x52, struct hmm_devbuf_range)
/* Drop every CPU mapping of a range. */
#define HMM_DEVBUF_ZAP		_IOWR('H', 0x53, struct hmm_devbuf_range)
/* Set the cache mode of a range; takes effect at the next fault (the
 * range is unmapped everywhere). The linear map of its allocated pages is
 * changed to match now, that of the others at their first fault. */
#define HMM_DEVBUF_SET_CACHE	_IOWR('H', 0x54, struct hmm_devbuf_range)
/* Read the module-wide counters (any open file). */
#define HMM_DEVBUF_STATS	_IOR('H', 0x55, struct hmm_devbuf_stats)

/*
 * The DMA mirror, /dev/rust_hmm_dmirror_dma (while QEMU's edu device is
 * bound): HMM_DMIRROR_READ and HMM_DMIRROR_WRITE move the data by the
 * device's DMA engine; these are the counters of one open file.
 */
struct hmm_dma_stats {
	__u64 to_device;	/* transfers from process memory to the device */
	__u64 to_ram;		/* transfers from the device to process memory */
	__u64 invalidations;	/* invalidations of the file's windows */
	__u64 invalidate_waits;	/* of which waited for a transfer in flight */
	__u64 invalidate_ns;	/* time spent in them, waits included */
	__u64 unmapped;		/* DMA mappings they removed */
	__u64 iova;		/* 1 if the last window was one IOVA range */
};

#define HMM_DMA_STATS		_IOR('H', 0x60, struct hmm_dma_stats)

/*
 * The svm devices, /dev/rust_hmm_svm0 and 1, take every command of the
 * dmirror devices, through shared virtual memory ranges (rust/gpusvm.rs):
 * one interval notifier per 2 MiB chunk, ranges of 2 MiB, 64 KiB or
 * 4 KiB that fit the VMA. These show the ranges and prefetch them;
 * ENOTTY elsewhere.
 */
struct hmm_svm_range {
	__u64 start;
	__u64 end;		/* exclusive */
	__u64 flags;		/* HMM_SVM_RANGE_* */
};

#define HMM_SVM_RANGE_UNMAPPED	1	/* unmapped, waits for the collector */
#define HMM_SVM_RANGE_PARTIAL	2	/* only part of it was */

struct hmm_svm_ranges {
	__u64 addr;		/* the ranges from the one holding or after this */
	__u64 ptr;		/* array of struct hmm_svm_range */
	__u64 count;		/* in: its length (<= 1024); out: filled */
};

#define HMM_SVM_RANGES_MAX	1024

struct hmm_svm_stats {
	__u64 ranges;		/* ranges now */
	__u64 notifiers;	/* notifiers now */
	__u64 ranges_inserted;	/* ranges made */
	__u64 ranges_removed;	/* removed by the garbage collector */
	__u64 notifiers_removed;
	__u64 invalidations;	/* CPU invalidations that reached a notifier */
	__u64 partial_unmaps;	/* unmaps that covered part of a range */
};

struct hmm_svm_prefetch {
	__u64 addr;
	__u64 npages;
	__u64 location;		/* HMM_SVM_LOCATION_* */
	__u64 moved;		/* out: pages moved */
};

#define HMM_SVM_LOCATION_SYSTEM	0
#define HMM_SVM_LOCATION_DEVICE	1	/* this device's memory */

#define HMM_SVM_RANGES		_IOWR('H', 0x70, struct hmm_svm_ranges)
#define HMM_SVM_STATS		_IOR('H', 0x71, struct hmm_svm_stats)
/* Move the range and map it in the device before the device touches it. */
#define HMM_SVM_PREFETCH	_IOWR('H', 0x72, struct hmm_svm_prefetch)

#endif
