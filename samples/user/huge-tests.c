// SPDX-License-Identifier: GPL-2.0
/*
 * Huge leaves: memory the CPU maps with transparent huge pages (THP on
 * "madvise", MADV_HUGEPAGE here) must be mirrored with one 2 MiB leaf per
 * PMD and no 4 KiB entries, seen through the STATS counters and SNAPSHOT;
 * partial unmaps, MADV_DONTNEED and mprotect must split or drop them with
 * the data right. Runs on device 0 (single-pass notifier) and device 1
 * (two-pass: dirty pages are handed over in the second pass).
 *
 * Usage: huge-tests [harness options]; DEV0/DEV1 name the devices.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "dmirror-util.h"

#define HUGE (2UL << 20)
#define HUGE_NPAGES (HUGE / PAGE)

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/* The first, five-counter version of the STATS command. */
#define HMM_DMIRROR_STATS_V1 _IOR('H', 0x41, __u64[5])

FIXTURE(huge) {
	int fd;
	char *raw;		/* the whole mapping */
	unsigned long raw_size;
	char *buf;		/* user buffer of the same size */
};

FIXTURE_VARIANT(huge) {
	int device;
};

FIXTURE_VARIANT_ADD(huge, single_pass) { .device = 0 };
FIXTURE_VARIANT_ADD(huge, two_pass) { .device = 1 };

FIXTURE_SETUP(huge)
{
	/* Device fault counts must not include NUMA hinting (dmirror-util.h). */
	ASSERT_EQ(numa_hinting_off(), 0);
	self->fd = dev_open(variant->device);
	ASSERT_GE(self->fd, 0) TH_LOG("open %s: %s", dev_path(variant->device),
				      strerror(errno));
	self->raw = NULL;
	self->buf = NULL;
}

FIXTURE_TEARDOWN(huge)
{
	if (self->raw)
		munmap(self->raw, self->raw_size);
	if (self->buf)
		munmap(self->buf, self->raw_size);
	close(self->fd);
}

static struct hmm_dmirror_stats stats(int fd)
{
	struct hmm_dmirror_stats s;

	memset(&s, 0xff, sizeof(s));
	if (ioctl(fd, HMM_DMIRROR_STATS, &s))
		memset(&s, 0xff, sizeof(s));
	return s;
}

/* Whether SNAPSHOT says every one of @n pages at @p is @prot. */
static int snapshot_is(int fd, void *p, unsigned long n, unsigned char prot)
{
	unsigned char *m = malloc(n);
	int ok = m && !dcmd(fd, HMM_DMIRROR_SNAPSHOT, p, m, n, NULL);

	for (unsigned long i = 0; ok && i < n; i++)
		ok = m[i] == prot;
	free(m);
	return ok;
}

/*
 * @nr THP-backed, filled (seed @seed), 2 MiB aligned huge pages, checked
 * with SNAPSHOT to be mapped by PMDs before the device sees them.
 */
static char *thp_alloc(struct __test_metadata *_metadata,
		       FIXTURE_DATA(huge) *self, unsigned long nr, unsigned int seed)
{
	unsigned long size = nr * HUGE;
	char *p;

	self->raw_size = size + HUGE;
	self->raw = mmap(NULL, self->raw_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	self->buf = mmap(NULL, self->raw_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (self->raw == MAP_FAILED || self->buf == MAP_FAILED) {
		self->raw = self->buf = NULL;
		return NULL;
	}
	/* The bounce target stays small pages. */
	madvise(self->buf, self->raw_size, MADV_NOHUGEPAGE);
	p = (char *)(((uintptr_t)self->raw + HUGE - 1) & ~(HUGE - 1));
	if (madvise(p, size, MADV_HUGEPAGE))
		return NULL;
	fill(p, nr * HUGE_NPAGES, seed);
	if (!snapshot_is(self->fd, p, nr * HUGE_NPAGES,
			 HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD)) {
		/* Not at fault time: ask khugepaged's code to collapse now. */
		madvise(p, size, MADV_COLLAPSE);
		if (!snapshot_is(self->fd, p, nr * HUGE_NPAGES,
				 HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD)) {
			TH_LOG("no transparent huge pages for %lu MiB", size >> 20);
			return NULL;
		}
	}
	return p;
}

/* A THP-backed range is mirrored by huge leaves only. */
TEST_F(huge, read_makes_huge_leaves)
{
	unsigned long nr = 4, n = nr * HUGE_NPAGES;
	char *p = thp_alloc(_metadata, self, nr, 11);
	struct hmm_dmirror_stats s;
	struct hmm_dmirror_cmd c;

	ASSERT_NE(p, NULL);
	s = stats(self->fd);
	ASSERT_EQ(s.huge_entries, 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, self->buf, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_TRUE(check(self->buf, n, 11));
	s = stats(self->fd);
	EXPECT_EQ(s.huge_entries, nr);
	EXPECT_EQ(s.entries, 0);
	/* Level 2 holds the 4 leaves, under the 4 levels below the root: 5
	 * directories, or up to twice that across boundaries. 4 KiB entries
	 * would take 32 leaf and 4 level-1 directories more. */
	EXPECT_LE(s.dirs, 10);
	/* Warm: no fault, same data; SNAPSHOT says PMD from both sides. */
	memset(self->buf, 0, n * PAGE);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, self->buf, n, &c), 0);
	EXPECT_EQ(c.faults, 0);
	EXPECT_TRUE(check(self->buf, n, 11));
	EXPECT_TRUE(snapshot_is(self->fd, p, n, HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD));
	/* A device write dirties the leaves and lands in the THP. */
	fill(self->buf, n, 12);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, p, self->buf, n, &c), 0);
	EXPECT_EQ(c.faults, 0);
	EXPECT_TRUE(check(p, n, 12));
	EXPECT_EQ(stats(self->fd).huge_entries, nr);
	/* Unmapping drops them all. */
	ASSERT_EQ(munmap(p, nr * HUGE), 0);
	s = stats(self->fd);
	EXPECT_EQ(s.huge_entries, 0);
	EXPECT_EQ(s.entries, 0);
}

/*
 * Warm READs of huge leaves into destinations at several offsets from a
 * 2 MiB boundary, present or not: the same data each time, without faults.
 */
TEST_F(huge, read_destination_offsets)
{
	static const unsigned long offs[] = { 0, PAGE, 100, HUGE / 2 + 8, HUGE - PAGE };
	unsigned long nr = 2, n = nr * HUGE_NPAGES, size = 2 * HUGE + nr * HUGE;
	char *p = thp_alloc(_metadata, self, nr, 71);
	struct hmm_dmirror_cmd c;
	char *raw, *dst;

	ASSERT_NE(p, NULL);
	raw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(raw, MAP_FAILED);
	dst = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, self->buf, n, &c), 0);
	ASSERT_EQ(stats(self->fd).huge_entries, nr);
	for (unsigned int i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		for (int warm = 0; warm < 2; warm++) {
			if (!warm)
				ASSERT_EQ(madvise(raw, size, MADV_DONTNEED), 0);
			ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, dst + offs[i], n, &c), 0);
			EXPECT_EQ(c.cpages, n);
			EXPECT_EQ(c.faults, 0);
			EXPECT_EQ(memcmp(dst + offs[i], p, n * PAGE), 0)
				TH_LOG("offset %lu, destination %s", offs[i],
				       warm ? "present" : "not present");
		}
	}
	EXPECT_EQ(stats(self->fd).huge_entries, nr);
	munmap(raw, size);
}

/* A fault on a few pages of a PMD maps the whole PMD. */
TEST_F(huge, partial_fault_maps_whole_leaf)
{
	char *p = thp_alloc(_metadata, self, 1, 21);
	struct hmm_dmirror_cmd c;
	struct hmm_dmirror_stats s;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p + 100 * PAGE, self->buf, 3, &c), 0);
	EXPECT_EQ(c.cpages, 3);
	EXPECT_TRUE(check(self->buf, 3, 21 + 100 * PAGE / 4));
	s = stats(self->fd);
	EXPECT_EQ(s.huge_entries, 1);
	EXPECT_EQ(s.entries, 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, self->buf, HUGE_NPAGES, &c), 0);
	EXPECT_EQ(c.faults, 0);
	EXPECT_TRUE(check(self->buf, HUGE_NPAGES, 21));
}

/* Memory without THP stays 4 KiB entries. */
TEST_F(huge, small_pages_stay_small)
{
	unsigned long n = HUGE_NPAGES;
	char *p = thp_alloc(_metadata, self, 1, 31);
	struct hmm_dmirror_stats s;

	ASSERT_NE(p, NULL);
	/* Split the PMD: the folio stays, the CPU maps it with PTEs. */
	ASSERT_EQ(madvise(p, HUGE, MADV_NOHUGEPAGE), 0);
	ASSERT_EQ(mprotect(p, PAGE, PROT_READ), 0);
	ASSERT_EQ(mprotect(p, PAGE, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, self->buf, n, NULL), 0);
	EXPECT_TRUE(check(self->buf, n, 31));
	s = stats(self->fd);
	EXPECT_EQ(s.huge_entries, 0);
	EXPECT_EQ(s.entries, n);
	EXPECT_FALSE(snapshot_is(self->fd, p, 1, HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD));
}

/*
 * MADV_DONTNEED on part of a dirty huge leaf: the invalidation of that
 * part splits the leaf, then the CPU's PMD split drops the rest. The data
 * the device wrote stays, the zapped part reads back as zeroes, and the
 * device refaults the rest as 4 KiB pages.
 */
TEST_F(huge, dontneed_part_splits)
{
	unsigned long n = 2 * HUGE_NPAGES;
	char *p = thp_alloc(_metadata, self, 2, 41);
	struct hmm_dmirror_stats s0, s;
	struct hmm_dmirror_cmd c;
	unsigned int *w;

	ASSERT_NE(p, NULL);
	fill(self->buf, n, 42);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, p, self->buf, n, &c), 0);
	s0 = stats(self->fd);
	ASSERT_EQ(s0.huge_entries, 2);
	ASSERT_EQ(madvise(p + 100 * PAGE, 10 * PAGE, MADV_DONTNEED), 0);
	s = stats(self->fd);
	EXPECT_EQ(s.huge_entries, 1);
	EXPECT_EQ(s.huge_splits - s0.huge_splits, 1);
	EXPECT_EQ(s.entries, 0);
	/* The CPU sees what the device wrote, and zeroes where zapped. */
	EXPECT_TRUE(check(p, 100, 42));
	w = (unsigned int *)(p + 100 * PAGE);
	for (unsigned long i = 0; i < 10 * PAGE / 4; i++)
		ASSERT_EQ(w[i], 0);
	EXPECT_TRUE(check(p + 110 * PAGE, n - 110, 42 + 110 * PAGE / 4));
	/* The device refaults the first 2 MiB as 4 KiB pages. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, self->buf, n, &c), 0);
	EXPECT_TRUE(check(self->buf, 100, 42));
	EXPECT_TRUE(check(self->buf + 110 * PAGE, n - 110, 42 + 110 * PAGE / 4));
	s = stats(self->fd);
	EXPECT_EQ(s.huge_entries, 1);
	EXPECT_EQ(s.entries, HUGE_NPAGES);
	EXPECT_TRUE(snapshot_is(self->fd, p + HUGE, HUGE_NPAGES,
				HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD));
	EXPECT_FALSE(snapshot_is(self->fd, p, 1, HMM_DMIRROR_PROT_WRITE | HMM_DMIRROR_PROT_PMD));
}

/*
 * mprotect and munmap of part of a mirrored THP: device access follows the
 * CPU's page by page; a collapse back to a PMD gives a huge leaf again.
 */
TEST_F(huge, mprotect_munmap_part)
{
	unsigned long n = 2 * HUGE_NPAGES;
	char *p = thp_alloc(_metadata, self, 2, 51);
	struct hmm_dmirror_stats s;
	struct hmm_dmirror_cmd c;

	ASSERT_NE(p, NULL);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, self->buf, n, &c), 0);
	ASSERT_EQ(stats(self->fd).huge_entries, 2);
	/* Read-only first 16 pages: the device cannot write them. */
	ASSERT_EQ(mprotect(p, 16 * PAGE, PROT_READ), 0);
	s = stats(self->fd);
	EXPECT_EQ(s.huge_entries, 1);
	fill(self->buf, n, 52);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, p, self->buf, 16, NULL), -EPERM);
	EXPECT_TRUE(check(p, 16, 51));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, p + 16 * PAGE, self->buf + 16 * PAGE,
		       n - 16, &c), 0);
	EXPECT_TRUE(check(p + 16 * PAGE, n - 16, 52 + 16 * PAGE / 4));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, self->buf, n, &c), 0);
	EXPECT_TRUE(check(self->buf, 16, 51));
	EXPECT_TRUE(check(self->buf + 16 * PAGE, n - 16, 52 + 16 * PAGE / 4));
	s = stats(self->fd);
	EXPECT_EQ(s.huge_entries, 1);
	EXPECT_EQ(s.entries, HUGE_NPAGES);
	/* Unmap one page of the second THP: its leaf goes, the rest reads. */
	ASSERT_EQ(munmap(p + HUGE + 7 * PAGE, PAGE), 0);
	s = stats(self->fd);
	EXPECT_EQ(s.huge_entries, 0);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p + HUGE, self->buf, HUGE_NPAGES, NULL),
		  -EFAULT);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p + HUGE + 8 * PAGE, self->buf,
		       HUGE_NPAGES - 8, &c), 0);
	EXPECT_TRUE(check(self->buf, HUGE_NPAGES - 8, 52 + (HUGE + 8 * PAGE) / 4));
	/* Writable again and collapsed: one huge leaf replaces 512 entries. */
	ASSERT_EQ(mprotect(p, HUGE, PROT_READ | PROT_WRITE), 0);
	if (madvise(p, HUGE, MADV_COLLAPSE) == 0) {
		ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, p, self->buf, HUGE_NPAGES, &c), 0);
		EXPECT_TRUE(check(self->buf, 16, 51));
		s = stats(self->fd);
		EXPECT_EQ(s.huge_entries, 1);
		EXPECT_EQ(s.entries, HUGE_NPAGES - 8);
	} else {
		TH_LOG("MADV_COLLAPSE: %s; re-merge not checked", strerror(errno));
	}
}

/* The STATS command of the first, smaller struct still works. */
TEST_F(huge, stats_v1)
{
	__u64 v1[6];
	struct hmm_dmirror_stats s;

	memset(v1, 0xee, sizeof(v1));
	ASSERT_EQ(ioctl(self->fd, HMM_DMIRROR_STATS_V1, v1), 0);
	EXPECT_EQ(v1[5], 0xeeeeeeeeeeeeeeeeULL);
	s = stats(self->fd);
	EXPECT_EQ(v1[4], s.table_bytes);
	EXPECT_EQ(v1[2], s.entries);
}

TEST_HARNESS_MAIN
