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
};

#define HMM_DMIRROR_STATS	_IOR('H', 0x41, struct hmm_dmirror_stats)

/* SNAPSHOT: this mirror holds the page device-exclusive. */
#define HMM_DMIRROR_PROT_DEV_EXCLUSIVE	0x80

#endif
