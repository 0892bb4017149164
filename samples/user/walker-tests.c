// SPDX-License-Identifier: GPL-2.0
/*
 * Device buffers mapped through the device file: per-page cache modes
 * read back through the walker, data kept across every change of mode,
 * every page write-back again when freed, walks across processes, fork, mremap,
 * many VMAs, partial munmap and process exit racing with walks, and an
 * exact dirty bitmap over 1,000 random write/clean rounds in 2 processes.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "dmirror-util.h"

static int buf_create(int fd, unsigned long npages, uint64_t *off)
{
	struct hmm_devbuf_create c = { .npages = npages };

	if (ioctl(fd, HMM_DEVBUF_CREATE, &c))
		return -errno;
	*off = c.offset;
	return 0;
}

static char *buf_map(int fd, uint64_t off, unsigned long first, unsigned long n)
{
	void *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       off + first * PAGE);

	return p == MAP_FAILED ? NULL : p;
}

static int range_cmd(int fd, unsigned long req, uint64_t off, uint64_t first,
		     uint64_t n, uint64_t arg, uint64_t *count)
{
	struct hmm_devbuf_range r = {
		.offset = off, .first = first, .npages = n, .arg = arg,
	};

	if (ioctl(fd, req, &r))
		return -errno;
	if (count)
		*count = r.count;
	return 0;
}

/* WALK into @e (up to @max); returns visited entries or -errno. */
static long walk(int fd, uint64_t off, uint64_t first, uint64_t n, int populate,
		 struct hmm_devbuf_entry *e, unsigned long max,
		 struct hmm_devbuf_walk *out)
{
	struct hmm_devbuf_walk w = {
		.offset = off, .first = first, .npages = n,
		.flags = populate ? HMM_DEVBUF_WALK_POPULATE : 0,
		.entries = (uintptr_t)e, .max_entries = max,
	};

	if (ioctl(fd, HMM_DEVBUF_WALK, &w))
		return -errno;
	if (out)
		*out = w;
	return w.nentries;
}

static void touch_read(const char *p, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++)
		(void)*(volatile const char *)(p + i * PAGE);
}

static int devbuf_stats(int fd, struct hmm_devbuf_stats *s)
{
	return ioctl(fd, HMM_DEVBUF_STATS, s) ? -errno : 0;
}

/* The cache bits of every PTE of pages 0..n in every process, if they all
 * agree and there is at least one; else ~0. */
static unsigned int walk_cache_bits(int fd, uint64_t off, unsigned long n)
{
	static struct hmm_devbuf_entry e[1024];
	long got = walk(fd, off, 0, n, 0, e, 1024, NULL);

	if (got <= 0 || got > 1024)
		return ~0u;
	for (long i = 1; i < got; i++)
		if (e[i].cache != e[0].cache)
			return ~0u;
	return e[0].cache;
}

FIXTURE(devbuf) {
	int fd;
	uint64_t off;
	unsigned long n;
};

FIXTURE_SETUP(devbuf)
{
	/* Device fault counts must not include NUMA hinting (dmirror-util.h). */
	ASSERT_EQ(numa_hinting_off(), 0);
	self->fd = dev_open(0);
	ASSERT_GE(self->fd, 0);
	self->n = 64;
	ASSERT_EQ(buf_create(self->fd, self->n, &self->off), 0);
	ASSERT_NE(self->off, 0);
}

FIXTURE_TEARDOWN(devbuf)
{
	close(self->fd);
}

/* Data round-trips; only touched pages have entries until populated. */
TEST_F(devbuf, map_and_walk)
{
	struct hmm_devbuf_entry e[64];
	struct hmm_devbuf_walk w;
	char *p = buf_map(self->fd, self->off, 0, self->n);
	char *q = buf_map(self->fd, self->off, 0, self->n);

	ASSERT_NE(p, NULL);
	ASSERT_NE(q, NULL);
	EXPECT_EQ(walk(self->fd, self->off, 0, self->n, 0, e, 64, &w), 0);
	p[3 * PAGE] = 'x';
	p[10 * PAGE + 5] = 'y';
	/* Both mappings show the same buffer pages. */
	EXPECT_EQ(q[3 * PAGE], 'x');
	ASSERT_EQ(walk(self->fd, self->off, 0, self->n, 0, e, 64, &w), 3);
	EXPECT_EQ(w.nmms, 1);
	EXPECT_EQ(w.nvmas, 2);
	for (int i = 0; i < 3; i++) {
		char *base = e[i].addr >= (uintptr_t)q && e[i].addr < (uintptr_t)q + self->n * PAGE ? q : p;

		EXPECT_EQ(e[i].addr, (uintptr_t)base + e[i].page * PAGE);
		EXPECT_TRUE(e[i].page == 3 || e[i].page == 10);
	}
	/* A sub-range walk sees only its pages. */
	EXPECT_EQ(walk(self->fd, self->off, 4, 20, 0, e, 64, NULL), 1);
	EXPECT_EQ(e[0].page, 10);
	/* Populating installs every page of the range in every VMA, read-only. */
	EXPECT_EQ(walk(self->fd, self->off, 0, self->n, 1, NULL, 0, &w), 2 * self->n);
	EXPECT_EQ(walk(self->fd, self->off, 0, 32, 0, e, 64, NULL), 64);
	for (int i = 0; i < 64; i++)
		if (e[i].page != 3 && e[i].page != 10)
			EXPECT_EQ(e[i].flags & HMM_DEVBUF_PTE_WRITE, 0);
	EXPECT_EQ(q[10 * PAGE + 5], 'y');
	EXPECT_EQ(p[20 * PAGE], 0);
	munmap(p, self->n * PAGE);
	munmap(q, self->n * PAGE);
	EXPECT_EQ(walk(self->fd, self->off, 0, self->n, 0, NULL, 0, &w), 0);
	EXPECT_EQ(w.nvmas, 0);
}

/* Bad input gets a clear errno and nothing else. */
TEST_F(devbuf, bad_input)
{
	struct hmm_devbuf_entry e[4];
	uint64_t off2 = 0, bits[2], cnt = 0;
	int fd1 = dev_open(1);
	char *p;

	ASSERT_GE(fd1, 0);
	EXPECT_EQ(buf_create(self->fd, 0, &off2), -EINVAL);
	EXPECT_EQ(buf_create(self->fd, HMM_DEVBUF_MAX_PAGES + 1, &off2), -EINVAL);
	EXPECT_EQ(buf_create(self->fd, ~0UL, &off2), -EINVAL);
	/* Ranges: empty, past the end, overflowing, unknown buffer. */
	EXPECT_EQ(walk(self->fd, self->off, 0, 0, 0, NULL, 0, NULL), -EINVAL);
	EXPECT_EQ(walk(self->fd, self->off, 1, self->n, 0, NULL, 0, NULL), -EINVAL);
	EXPECT_EQ(walk(self->fd, self->off, ~0UL, 2, 0, NULL, 0, NULL), -EINVAL);
	EXPECT_EQ(walk(self->fd, self->off + PAGE, 0, 1, 0, NULL, 0, NULL), -EINVAL);
	EXPECT_EQ(walk(self->fd, 0, 0, 1, 0, NULL, 0, NULL), -EINVAL);
	/* Another file cannot name this file's buffer. */
	EXPECT_EQ(walk(fd1, self->off, 0, 1, 0, NULL, 0, NULL), -EINVAL);
	if (1) {
		struct hmm_devbuf_walk w = { .offset = self->off, .npages = 1, .flags = 2 };

		EXPECT_EQ(ioctl(self->fd, HMM_DEVBUF_WALK, &w), -1);
		EXPECT_EQ(errno, EINVAL);
		w.flags = 0;
		w.max_entries = 4;	/* no array */
		EXPECT_EQ(ioctl(self->fd, HMM_DEVBUF_WALK, &w), -1);
		EXPECT_EQ(errno, EINVAL);
		w.max_entries = HMM_DEVBUF_WALK_MAX_ENTRIES + 1;
		w.entries = (uintptr_t)e;
		EXPECT_EQ(ioctl(self->fd, HMM_DEVBUF_WALK, &w), -1);
		EXPECT_EQ(errno, EINVAL);
	}
	EXPECT_EQ(range_cmd(self->fd, HMM_DEVBUF_ZAP, self->off, 0, 1, 1, NULL), -EINVAL);
	EXPECT_EQ(range_cmd(self->fd, HMM_DEVBUF_SET_CACHE, self->off, 0, 1, 3, NULL), -EINVAL);
	EXPECT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, self->n + 1,
			    (uintptr_t)bits, NULL), -EINVAL);
	EXPECT_EQ(ioctl(self->fd, HMM_DEVBUF_CLEAN, NULL), -1);
	EXPECT_EQ(errno, EFAULT);
	/* mmap: private, past the buffer, unknown offsets, other file. */
	EXPECT_EQ(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, self->fd, self->off), MAP_FAILED);
	EXPECT_EQ(mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, self->fd,
		       self->off + (self->n - 1) * PAGE), MAP_FAILED);
	EXPECT_EQ(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->fd, PAGE), MAP_FAILED);
	EXPECT_EQ(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->fd, self->off - PAGE), MAP_FAILED);
	EXPECT_EQ(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd1, self->off), MAP_FAILED);
	/* A mapping cannot grow past what it maps. */
	p = buf_map(self->fd, self->off, 0, 2);
	ASSERT_NE(p, NULL);
	EXPECT_EQ(mremap(p, 2 * PAGE, 4 * PAGE, 0), MAP_FAILED);
	/* CLEAN to a bad address fails and loses nothing. */
	p[PAGE] = 1;
	EXPECT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, 2, 8, NULL), -EFAULT);
	bits[0] = 0;
	EXPECT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, 2, (uintptr_t)bits, &cnt), 0);
	EXPECT_EQ(cnt, 1);
	EXPECT_EQ(bits[0], 2);
	munmap(p, 2 * PAGE);
	close(fd1);
}

/* Pages of one VMA with different cache modes, read back from the PTEs. */
TEST_F(devbuf, per_page_cache)
{
	struct hmm_devbuf_entry e[8];
	unsigned int cache[8];
	char *p = buf_map(self->fd, self->off, 0, 8);

	ASSERT_NE(p, NULL);
	memset(p, 0x5a, 8 * PAGE);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_SET_CACHE, self->off, 2, 2,
			    HMM_DEVBUF_CACHE_UC, NULL), 0);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_SET_CACHE, self->off, 5, 1,
			    HMM_DEVBUF_CACHE_WC, NULL), 0);
	/* The changed pages were unmapped; the others stay. */
	EXPECT_EQ(walk(self->fd, self->off, 0, 8, 0, e, 8, NULL), 5);
	for (int i = 0; i < 5; i++)
		EXPECT_TRUE(e[i].page != 2 && e[i].page != 3 && e[i].page != 5);
	/* The data is the device's, not the mapping's. */
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(p[i * PAGE + 7], 0x5a);
	ASSERT_EQ(walk(self->fd, self->off, 0, 8, 0, e, 8, NULL), 8);
	memset(cache, 0xff, sizeof(cache));
	for (int i = 0; i < 8; i++)
		cache[e[i].page] = e[i].cache;
	TH_LOG("cache bits per page: %x %x %x %x %x %x %x %x", cache[0], cache[1],
	       cache[2], cache[3], cache[4], cache[5], cache[6], cache[7]);
	EXPECT_EQ(cache[0], 0);
	EXPECT_EQ(cache[1], 0);
	EXPECT_NE(cache[2], 0);
	EXPECT_EQ(cache[2], cache[3]);
	EXPECT_EQ(cache[4], 0);
	EXPECT_NE(cache[5], 0);
	EXPECT_EQ(cache[7], 0);
	/* With PAT a PTE gets the memory type recorded for the page, so UC
	 * and WC differ only if the linear map was changed too. */
	if (1) {
		struct hmm_devbuf_stats st;

		ASSERT_EQ(devbuf_stats(self->fd, &st), 0);
		if (st.flags & HMM_DEVBUF_STATS_PAT)
			EXPECT_NE(cache[2], cache[5]);
	}
	/* Back to write-back. */
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_SET_CACHE, self->off, 0, 8,
			    HMM_DEVBUF_CACHE_WB, NULL), 0);
	touch_read(p, 8);
	ASSERT_EQ(walk(self->fd, self->off, 0, 8, 0, e, 8, NULL), 8);
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(e[i].cache, 0);
	munmap(p, 8 * PAGE);
}

/*
 * The data survives every change of mode, seen through a second mapping
 * and by a forked child through its copied PTEs and a fresh mapping; each
 * mode shows its own PTE memory type (three different ones with PAT); a
 * SET_CACHE over allocated pages makes one linear-map change per target
 * type (two when leaving UC or WC for the other).
 */
TEST_F(devbuf, cache_modes_keep_data)
{
	static const unsigned int modes[] = {
		HMM_DEVBUF_CACHE_WB, HMM_DEVBUF_CACHE_UC, HMM_DEVBUF_CACHE_WC,
		HMM_DEVBUF_CACHE_WB, HMM_DEVBUF_CACHE_WC, HMM_DEVBUF_CACHE_UC,
		HMM_DEVBUF_CACHE_UC, HMM_DEVBUF_CACHE_WB,
	};
	unsigned int bits[3] = { ~0u, ~0u, ~0u };
	struct hmm_devbuf_stats s0, s1, base;
	unsigned long n = self->n;
	char *p = buf_map(self->fd, self->off, 0, n);
	char *q = buf_map(self->fd, self->off, 0, n);

	ASSERT_NE(p, NULL);
	ASSERT_NE(q, NULL);
	ASSERT_EQ(devbuf_stats(self->fd, &base), 0);
	fill(p, n, 1000);
	for (unsigned int r = 1; r < sizeof(modes) / sizeof(modes[0]); r++) {
		unsigned int prev = modes[r - 1], m = modes[r];
		unsigned int calls = prev == m ? 0 : (prev != HMM_DEVBUF_CACHE_WB) +
						   (m != HMM_DEVBUF_CACHE_WB);
		unsigned int seen;
		int status;
		pid_t pid;

		ASSERT_EQ(devbuf_stats(self->fd, &s0), 0);
		ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_SET_CACHE, self->off, 0, n,
				    m, NULL), 0);
		ASSERT_EQ(devbuf_stats(self->fd, &s1), 0);
		EXPECT_EQ(s1.cache_calls - s0.cache_calls, calls);
		EXPECT_EQ(s1.pages_not_wb - base.pages_not_wb,
			  m == HMM_DEVBUF_CACHE_WB ? 0 : n);
		/* What was written in the previous mode, through the other
		 * mapping. */
		EXPECT_TRUE(check(q, n, 1000 * r));
		pid = fork();
		ASSERT_GE(pid, 0);
		if (pid == 0) {
			char *c = buf_map(self->fd, self->off, 0, n);

			/* The inherited mapping has no PTEs (SET_CACHE
			 * unmapped p); q's were copied, in mode m. */
			if (!c || !check(p, n, 1000 * r) || !check(c, n, 1000 * r))
				_exit(1);
			/* Both processes' PTEs, and the copied ones, agree. */
			_exit(walk_cache_bits(self->fd, self->off, n) == ~0u ? 2 : 0);
		}
		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		seen = walk_cache_bits(self->fd, self->off, n);
		ASSERT_NE(seen, ~0u);
		if (bits[m] != ~0u)
			EXPECT_EQ(seen, bits[m]);
		bits[m] = seen;
		/* Written in this mode, read in the next. */
		fill(p, n, 1000 * (r + 1));
	}
	TH_LOG("PTE cache bits: WB %#x, UC %#x, WC %#x",
	       bits[HMM_DEVBUF_CACHE_WB], bits[HMM_DEVBUF_CACHE_UC],
	       bits[HMM_DEVBUF_CACHE_WC]);
	EXPECT_EQ(bits[HMM_DEVBUF_CACHE_WB], 0);
	EXPECT_NE(bits[HMM_DEVBUF_CACHE_UC], 0);
	EXPECT_NE(bits[HMM_DEVBUF_CACHE_WC], 0);
	if (base.flags & HMM_DEVBUF_STATS_PAT)
		EXPECT_NE(bits[HMM_DEVBUF_CACHE_UC], bits[HMM_DEVBUF_CACHE_WC]);
	EXPECT_TRUE(check(q, n, 1000 * (sizeof(modes) / sizeof(modes[0]))));
	munmap(p, n * PAGE);
	munmap(q, n * PAGE);
}

/*
 * Every page goes back to write-back before it is freed, whichever
 * reference to the buffer goes last: the file's, the mapping's, or that
 * of a child killed with the mapping; pages allocated at fault time for a
 * UC or WC page are converted one at a time.
 */
TEST(cache_restored_on_free)
{
	struct hmm_devbuf_stats base, st;
	int fd0 = dev_open(0);

	ASSERT_GE(fd0, 0);
	ASSERT_EQ(devbuf_stats(fd0, &base), 0);
	for (int how = 0; how < 3; how++) {
		int fd = dev_open(0);
		uint64_t off = 0;
		char *p;
		pid_t pid = -1;
		int status;

		ASSERT_GE(fd, 0);
		ASSERT_EQ(buf_create(fd, 32, &off), 0);
		p = buf_map(fd, off, 0, 32);
		ASSERT_NE(p, NULL);
		touch_read(p, 16);
		ASSERT_EQ(range_cmd(fd, HMM_DEVBUF_SET_CACHE, off, 0, 8,
				    HMM_DEVBUF_CACHE_UC, NULL), 0);
		ASSERT_EQ(range_cmd(fd, HMM_DEVBUF_SET_CACHE, off, 8, 16,
				    HMM_DEVBUF_CACHE_WC, NULL), 0);
		ASSERT_EQ(devbuf_stats(fd0, &st), 0);
		EXPECT_EQ(st.pages - base.pages, 16);
		EXPECT_EQ(st.pages_not_wb - base.pages_not_wb, 16);
		EXPECT_EQ(st.cache_calls - base.cache_calls, 2);
		/* Pages 16..23 (WC) are allocated now, one call each;
		 * 24..31 are write-back, none. */
		memset(p + 16 * PAGE, 0x77, 16 * PAGE);
		EXPECT_EQ(p[20 * PAGE + 9], 0x77);
		ASSERT_EQ(devbuf_stats(fd0, &st), 0);
		EXPECT_EQ(st.pages - base.pages, 32);
		EXPECT_EQ(st.pages_not_wb - base.pages_not_wb, 24);
		EXPECT_EQ(st.cache_calls - base.cache_calls, 2 + 8);
		switch (how) {
		case 0:	/* the mapping holds the buffer last */
			close(fd);
			ASSERT_EQ(devbuf_stats(fd0, &st), 0);
			EXPECT_EQ(st.pages_not_wb - base.pages_not_wb, 24);
			munmap(p, 32 * PAGE);
			break;
		case 1:	/* the file does */
			munmap(p, 32 * PAGE);
			ASSERT_EQ(devbuf_stats(fd0, &st), 0);
			EXPECT_EQ(st.pages_not_wb - base.pages_not_wb, 24);
			close(fd);
			break;
		case 2:	/* a child, killed */
			pid = fork();
			ASSERT_GE(pid, 0);
			if (pid == 0) {
				for (;;)
					pause();
			}
			munmap(p, 32 * PAGE);
			close(fd);
			ASSERT_EQ(devbuf_stats(fd0, &st), 0);
			EXPECT_EQ(st.pages_not_wb - base.pages_not_wb, 24);
			kill(pid, SIGKILL);
			ASSERT_EQ(waitpid(pid, &status, 0), pid);
			break;
		}
		ASSERT_EQ(devbuf_stats(fd0, &st), 0);
		EXPECT_EQ(st.pages, base.pages);
		EXPECT_EQ(st.pages_not_wb, base.pages_not_wb);
		/* 8 UC + 16 WC pages: one call for all (none failed). */
		EXPECT_EQ(st.cache_calls - base.cache_calls, 2 + 8 + 1);
		base = st;
	}
	/* No other test leaves a buffer behind. */
	EXPECT_EQ(base.pages_not_wb, 0);
	close(fd0);
}

/* Writes are recorded once, reads never; CLEAN write-protects. */
TEST_F(devbuf, dirty_basic)
{
	struct hmm_devbuf_entry e[64];
	uint64_t bits = 0, cnt = 0;
	char *p = buf_map(self->fd, self->off, 0, self->n);
	long n;

	ASSERT_NE(p, NULL);
	touch_read(p, self->n);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, self->n,
			    (uintptr_t)&bits, &cnt), 0);
	EXPECT_EQ(cnt, 0);
	EXPECT_EQ(bits, 0);
	p[3 * PAGE] = 1;	/* through a read-only PTE: pfn_mkwrite */
	p[63 * PAGE] = 1;
	p[63 * PAGE + 1] = 1;
	n = walk(self->fd, self->off, 0, self->n, 0, e, 64, NULL);
	ASSERT_EQ(n, 64);
	for (int i = 0; i < n; i++)
		EXPECT_EQ(!!(e[i].flags & HMM_DEVBUF_PTE_WRITE), e[i].page == 3 || e[i].page == 63);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, self->n,
			    (uintptr_t)&bits, &cnt), 0);
	EXPECT_EQ(cnt, 2);
	EXPECT_EQ(bits, (1UL << 3) | (1UL << 63));
	/* No PTE is writable or dirty after CLEAN. */
	n = walk(self->fd, self->off, 0, self->n, 0, e, 64, NULL);
	ASSERT_EQ(n, 64);
	for (int i = 0; i < n; i++)
		EXPECT_EQ(e[i].flags, 0);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, self->n,
			    (uintptr_t)&bits, &cnt), 0);
	EXPECT_EQ(bits, 0);
	/* A write fault on an unmapped page, and a ZAP keeps the bit. */
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_ZAP, self->off, 0, self->n, 0, NULL), 0);
	EXPECT_EQ(walk(self->fd, self->off, 0, self->n, 0, NULL, 0, NULL), 0);
	p[5 * PAGE] = 2;
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_ZAP, self->off, 5, 1, 0, NULL), 0);
	EXPECT_EQ(p[3 * PAGE], 1);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 4, 2,
			    (uintptr_t)&bits, &cnt), 0);
	EXPECT_EQ(bits, 2);
	munmap(p, self->n * PAGE);
}

/* mremap moves the VMA; the walker follows, tracking keeps working. */
TEST_F(devbuf, mremap_and_split)
{
	struct hmm_devbuf_entry e[64];
	struct hmm_devbuf_walk w;
	uint64_t bits;
	char *p = buf_map(self->fd, self->off, 0, 16);
	char *hole = mmap(NULL, 64 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *q;

	ASSERT_NE(p, NULL);
	ASSERT_NE(hole, MAP_FAILED);
	memset(p, 1, 16 * PAGE);
	q = mremap(p, 16 * PAGE, 16 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, hole + 8 * PAGE);
	ASSERT_EQ(q, hole + 8 * PAGE);
	ASSERT_EQ(walk(self->fd, self->off, 0, 16, 0, e, 64, &w), 16);
	EXPECT_EQ(w.nvmas, 1);
	for (int i = 0; i < 16; i++)
		EXPECT_EQ(e[i].addr, (uintptr_t)q + e[i].page * PAGE);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, 16,
			    (uintptr_t)&bits, NULL), 0);
	EXPECT_EQ(bits, 0xffff);
	/* Split in three by mprotect; the read-only middle cannot be written. */
	ASSERT_EQ(mprotect(q + 4 * PAGE, 4 * PAGE, PROT_READ), 0);
	ASSERT_EQ(walk(self->fd, self->off, 0, 16, 0, e, 64, &w), 16);
	EXPECT_EQ(w.nvmas, 3);
	q[0] = 2;
	q[12 * PAGE] = 2;
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, 16,
			    (uintptr_t)&bits, NULL), 0);
	EXPECT_EQ(bits, 1 | (1 << 12));
	/* Partial munmap of the last part. */
	ASSERT_EQ(munmap(q + 14 * PAGE, 2 * PAGE), 0);
	ASSERT_EQ(walk(self->fd, self->off, 0, 16, 0, e, 64, &w), 14);
	EXPECT_EQ(w.nvmas, 3);
	munmap(hole, 64 * PAGE);
	EXPECT_EQ(walk(self->fd, self->off, 0, 16, 0, e, 64, &w), 0);
	EXPECT_EQ(w.nvmas, 0);
}

/* Many single-page VMAs of one buffer, mapped out of order. */
TEST_F(devbuf, many_vmas)
{
	enum { NV = 512 };
	static char *v[NV];
	struct hmm_devbuf_walk w;
	uint64_t off = 0, bits[NV / 64], cnt = 0;
	unsigned long dirty = 0;

	ASSERT_EQ(buf_create(self->fd, NV, &off), 0);
	for (int i = 0; i < NV; i++) {
		v[i] = buf_map(self->fd, off, (i * 7) % NV, 1);
		ASSERT_NE(v[i], NULL);
	}
	EXPECT_EQ(walk(self->fd, off, 0, NV, 1, NULL, 0, &w), NV);
	EXPECT_EQ(w.nvmas, NV);
	for (int i = 0; i < NV; i += 3) {
		v[i][0] = 1;
		dirty++;
	}
	for (int i = 0; i < NV; i += 2)
		munmap(v[i], PAGE);
	EXPECT_EQ(walk(self->fd, off, 0, NV, 0, NULL, 0, &w), NV / 2);
	EXPECT_EQ(w.nvmas, NV / 2);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, off, 0, NV, (uintptr_t)bits, &cnt), 0);
	EXPECT_EQ(cnt, dirty);
	for (int i = 0; i < NV; i += 3) {
		unsigned long pg = (i * 7) % NV;

		EXPECT_TRUE(bits[pg / 64] >> (pg % 64) & 1);
	}
	for (int i = 1; i < NV; i += 2)
		munmap(v[i], PAGE);
	EXPECT_EQ(walk(self->fd, off, 0, NV, 0, NULL, 0, &w), 0);
	EXPECT_EQ(w.nvmas, 0);
}

/* A forked child shares the mapping; both processes' writes are seen. */
TEST_F(devbuf, fork_two_processes)
{
	struct hmm_devbuf_entry e[128];
	struct hmm_devbuf_walk w;
	uint64_t bits = 0, cnt = 0;
	char *p = buf_map(self->fd, self->off, 0, self->n);
	int go[2], done[2];
	char c;
	pid_t pid;

	ASSERT_NE(p, NULL);
	p[0] = 1;
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, self->n,
			    (uintptr_t)&bits, NULL), 0);
	p[1 * PAGE] = 1;	/* writable before fork: copied writable */
	ASSERT_EQ(pipe(go), 0);
	ASSERT_EQ(pipe(done), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* The child: write page 1 through the inherited writable PTE
		 * and page 7 fresh, then wait. */
		p[1 * PAGE + 1] = 2;
		p[7 * PAGE] = 2;
		if (write(done[1], "x", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		/* After the parent's CLEAN: writes are caught again. */
		p[1 * PAGE + 2] = 3;
		if (write(done[1], "y", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		_exit(p[0] == 4 ? 0 : 2);
	}
	ASSERT_EQ(read(done[0], &c, 1), 1);
	ASSERT_GE(walk(self->fd, self->off, 0, self->n, 0, e, 128, &w), 3);
	EXPECT_EQ(w.nmms, 2);
	EXPECT_EQ(w.nvmas, 2);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, self->n,
			    (uintptr_t)&bits, &cnt), 0);
	EXPECT_EQ(bits, (1UL << 1) | (1UL << 7));
	ASSERT_EQ(walk(self->fd, self->off, 0, self->n, 0, e, 128, &w), w.nentries);
	for (unsigned long i = 0; i < w.nentries && i < 128; i++)
		EXPECT_EQ(e[i].flags & HMM_DEVBUF_PTE_WRITE, 0);
	ASSERT_EQ(write(go[1], "x", 1), 1);
	ASSERT_EQ(read(done[0], &c, 1), 1);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, self->n,
			    (uintptr_t)&bits, &cnt), 0);
	EXPECT_EQ(bits, 1UL << 1);
	EXPECT_EQ(p[1 * PAGE + 2], 3);
	p[0] = 4;
	ASSERT_EQ(write(go[1], "x", 1), 1);
	if (1) {
		int status;

		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* The child's VMA is gone with it. */
	ASSERT_GE(walk(self->fd, self->off, 0, self->n, 0, NULL, 0, &w), 0);
	EXPECT_EQ(w.nmms, 1);
	EXPECT_EQ(w.nvmas, 1);
	munmap(p, self->n * PAGE);
}

/* The mapping outlives the file: data stays, a forked child sees it. */
TEST(close_with_mapping)
{
	int fd = dev_open(0);
	uint64_t off = 0;
	char *p;
	pid_t pid;
	int status;

	ASSERT_GE(fd, 0);
	ASSERT_EQ(buf_create(fd, 8, &off), 0);
	p = buf_map(fd, off, 0, 8);
	ASSERT_NE(p, NULL);
	p[0] = 'a';
	ASSERT_EQ(close(fd), 0);
	p[7 * PAGE] = 'b';
	EXPECT_EQ(p[0], 'a');
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(p[0] == 'a' && p[7 * PAGE] == 'b' ? 0 : 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Splitting and moving still work with the file closed. */
	ASSERT_EQ(mprotect(p + 2 * PAGE, PAGE, PROT_READ), 0);
	EXPECT_EQ(munmap(p, 8 * PAGE), 0);
}

struct churn {
	int fd;
	uint64_t off;
	unsigned long n;
	atomic_int stop;
	atomic_long walks, errors;
};

static void *walker_thread(void *arg)
{
	struct churn *c = arg;
	struct hmm_devbuf_walk w;

	while (!atomic_load(&c->stop)) {
		long r = walk(c->fd, c->off, 0, c->n, atomic_load(&c->walks) & 1, NULL, 0, &w);

		if (r < 0 || w.nentries > 4 * c->n)
			atomic_fetch_add(&c->errors, 1);
		atomic_fetch_add(&c->walks, 1);
	}
	return NULL;
}

/* Walks (populating and not) race with partial munmap, remap and mremap. */
TEST_F(devbuf, munmap_during_walk)
{
	struct churn c = { .fd = self->fd, .off = self->off, .n = self->n };
	pthread_t t;
	char *p;
	long rounds = 0;

	ASSERT_EQ(pthread_create(&t, NULL, walker_thread, &c), 0);
	for (int i = 0; i < 300; i++) {
		p = buf_map(self->fd, self->off, 0, self->n);
		ASSERT_NE(p, NULL);
		memset(p + (i % 8) * PAGE, i, PAGE);
		ASSERT_EQ(munmap(p + 16 * PAGE, 16 * PAGE), 0);
		if (i % 3 == 0)
			ASSERT_EQ(mprotect(p, 4 * PAGE, PROT_READ), 0);
		ASSERT_EQ(munmap(p, 16 * PAGE), 0);
		ASSERT_EQ(munmap(p + 32 * PAGE, 32 * PAGE), 0);
		rounds++;
	}
	atomic_store(&c.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%ld map rounds, %ld walks", rounds, atomic_load(&c.walks));
	EXPECT_EQ(atomic_load(&c.errors), 0);
	EXPECT_GT(atomic_load(&c.walks), 0);
	EXPECT_EQ(walk(self->fd, self->off, 0, self->n, 0, NULL, 0, NULL), 0);
}

/* Walks race with processes that map, fault and exit (or are killed). */
TEST_F(devbuf, walk_races_exit)
{
	struct churn c = { .fd = self->fd, .off = self->off, .n = self->n };
	struct hmm_devbuf_walk w;
	pthread_t t;

	ASSERT_EQ(pthread_create(&t, NULL, walker_thread, &c), 0);
	for (int i = 0; i < 100; i++) {
		pid_t pid = fork();

		ASSERT_GE(pid, 0);
		if (pid == 0) {
			char *p = buf_map(c.fd, c.off, 0, c.n);

			if (!p)
				_exit(1);
			for (unsigned long j = 0; j < c.n; j += 1 + i % 4)
				p[j * PAGE] = j;
			if (i % 2)
				_exit(0);
			for (;;)
				p[(i % 64) * PAGE]++;
		}
		if (i % 2 == 0) {
			usleep(1000);
			kill(pid, SIGKILL);
		}
		ASSERT_EQ(waitpid(pid, NULL, 0), pid);
	}
	atomic_store(&c.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%ld walks", atomic_load(&c.walks));
	EXPECT_EQ(atomic_load(&c.errors), 0);
	ASSERT_GE(walk(self->fd, self->off, 0, self->n, 0, NULL, 0, &w), 0);
	EXPECT_EQ(w.nvmas, 0);
}

struct writers {
	char *p;
	unsigned long n;
	atomic_int pause, paused, stop;
};

static void *writer_thread(void *arg)
{
	struct writers *w = arg;
	uint32_t s = (uint32_t)(uintptr_t)&s;

	while (!atomic_load(&w->stop)) {
		if (atomic_load(&w->pause)) {
			atomic_fetch_add(&w->paused, 1);
			while (atomic_load(&w->pause) && !atomic_load(&w->stop))
				;
			atomic_fetch_sub(&w->paused, 1);
			continue;
		}
		s = s * 1103515245u + 12345u;
		((volatile char *)w->p)[((s >> 8) % w->n) * PAGE + (s & 63)] = (char)s;
	}
	return NULL;
}

/*
 * CLEAN races with first writes (pfn_mkwrite) from two threads. Whenever
 * the writers are paused, one CLEAN must leave no PTE writable: a write
 * fault that made a PTE writable after a CLEAN cleared the page's dirty
 * bit would show here, and would lose every later write to that page.
 * The window of that race is a few hundred instructions wide, so this
 * checks the invariant under load rather than proving it (see
 * Documentation/walker.rst for the argument).
 */
TEST_F_TIMEOUT(devbuf, clean_races_first_writes, 240)
{
	struct writers w = { .n = self->n };
	struct hmm_devbuf_entry e[64];
	uint64_t bits;
	unsigned long writable = 0, checks = 0;
	/* 3,000 CLEANs, or as many as 90 s allow but at least 500: on the
	 * debug kernel, with the writers on the other CPU, a CLEAN takes
	 * tens of milliseconds. */
	time_t deadline = time(NULL) + 90;
	pthread_t t[2];
	int i;

	w.p = buf_map(self->fd, self->off, 0, self->n);
	ASSERT_NE(w.p, NULL);
	for (int i = 0; i < 2; i++)
		ASSERT_EQ(pthread_create(&t[i], NULL, writer_thread, &w), 0);
	for (i = 1; i <= 3000 && (i <= 500 || time(NULL) < deadline); i++) {
		ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, self->n,
				    (uintptr_t)&bits, NULL), 0);
		if (i % 50)
			continue;
		atomic_store(&w.pause, 1);
		while (atomic_load(&w.paused) < 2)
			;
		ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, self->off, 0, self->n,
				    (uintptr_t)&bits, NULL), 0);
		long n = walk(self->fd, self->off, 0, self->n, 0, e, 64, NULL);

		ASSERT_GE(n, 0);
		for (long j = 0; j < n && j < 64; j++)
			writable += !!(e[j].flags & HMM_DEVBUF_PTE_WRITE);
		checks++;
		atomic_store(&w.pause, 0);
	}
	atomic_store(&w.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	TH_LOG("%d CLEANs, %lu quiescent checks, %lu writable PTEs after CLEAN",
	       i - 1, checks, writable);
	EXPECT_EQ(writable, 0);
	munmap(w.p, self->n * PAGE);
}

/*
 * 1,000 rounds: in each, the parent and a forked child write random pages
 * (each through its own mapping, plus the child's copy of the parent's),
 * and read others; CLEAN must report exactly the pages written.
 */
#define RAND_PAGES 256
#define RAND_ROUNDS 1000

struct round_msg {
	uint32_t seed;
	uint32_t stop;
};

static void rand_writes(char *p, char *p2, uint32_t seed, uint64_t *want, int child)
{
	uint32_t s = seed * 2654435761u + child;
	int k = s % 24;

	for (int j = 0; j < k; j++) {
		s = s * 1103515245u + 12345u;
		unsigned int pg = (s >> 8) % RAND_PAGES;
		char *base = (s & 1) ? p2 : p;

		if ((s >> 4) % 3 == 0) {
			touch_read(base + pg * PAGE, 1);
			continue;
		}
		base[pg * PAGE + (s >> 16) % PAGE] = (char)s;
		if (want)
			want[pg / 64] |= 1UL << (pg % 64);
	}
}

TEST_F(devbuf, dirty_exact_random_2proc)
{
	uint64_t off = 0, want[RAND_PAGES / 64], got[RAND_PAGES / 64];
	char *p, *p2;
	int to_child[2], from_child[2];
	unsigned long mismatches = 0, dirty_total = 0;
	struct round_msg m;
	pid_t pid;
	char c;

	ASSERT_EQ(buf_create(self->fd, RAND_PAGES, &off), 0);
	p = buf_map(self->fd, off, 0, RAND_PAGES);
	ASSERT_NE(p, NULL);
	ASSERT_EQ(pipe(to_child), 0);
	ASSERT_EQ(pipe(from_child), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* The child maps the buffer a second time itself. */
		char *cp2 = buf_map(self->fd, off, 0, RAND_PAGES);

		if (!cp2)
			_exit(1);
		while (read(to_child[0], &m, sizeof(m)) == sizeof(m) && !m.stop) {
			rand_writes(p, cp2, m.seed, NULL, 1);
			if (write(from_child[1], "k", 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	p2 = buf_map(self->fd, off, 0, RAND_PAGES);
	ASSERT_NE(p2, NULL);
	ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, off, 0, RAND_PAGES, (uintptr_t)got, NULL), 0);
	for (uint32_t r = 1; r <= RAND_ROUNDS; r++) {
		memset(want, 0, sizeof(want));
		m.seed = r;
		m.stop = 0;
		ASSERT_EQ(write(to_child[1], &m, sizeof(m)), sizeof(m));
		rand_writes(p, p2, r, want, 0);
		ASSERT_EQ(read(from_child[0], &c, 1), 1);
		/* The child's writes, replayed without touching memory. */
		if (1) {
			uint32_t s = r * 2654435761u + 1;
			int k = s % 24;

			for (int j = 0; j < k; j++) {
				s = s * 1103515245u + 12345u;
				if ((s >> 4) % 3 == 0)
					continue;
				unsigned int pg = (s >> 8) % RAND_PAGES;

				want[pg / 64] |= 1UL << (pg % 64);
			}
		}
		if (r % 97 == 0)	/* now and then, a ZAP keeps the bits */
			ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_ZAP, off, 0, RAND_PAGES / 2, 0, NULL), 0);
		ASSERT_EQ(range_cmd(self->fd, HMM_DEVBUF_CLEAN, off, 0, RAND_PAGES,
				    (uintptr_t)got, NULL), 0);
		for (int i = 0; i < RAND_PAGES / 64; i++) {
			if (got[i] != want[i]) {
				if (mismatches < 5)
					TH_LOG("round %u word %d: got %016lx want %016lx", r, i,
					       (unsigned long)got[i], (unsigned long)want[i]);
				mismatches++;
			}
			dirty_total += __builtin_popcountl(want[i]);
		}
	}
	m.stop = 1;
	ASSERT_EQ(write(to_child[1], &m, sizeof(m)), sizeof(m));
	if (1) {
		int status;

		ASSERT_EQ(waitpid(pid, &status, 0), pid);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	TH_LOG("%d rounds, %lu dirty pages reported, %lu mismatching words",
	       RAND_ROUNDS, dirty_total, mismatches);
	EXPECT_EQ(mismatches, 0);
	EXPECT_GT(dirty_total, RAND_ROUNDS);
}

TEST_HARNESS_MAIN
