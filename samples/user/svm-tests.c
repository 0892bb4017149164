// SPDX-License-Identifier: GPL-2.0
/*
 * The svm devices (rust/gpusvm.rs through samples/dmirror): ranges sized
 * to fit the VMA, a notifier per 2 MiB chunk, partial munmap and the
 * garbage collector, remap, fork, and many threads faulting at once on
 * disjoint and on shared ranges, prefetch. Modelled on the sections of IGT's
 * xe_exec_system_allocator that need no GPU.
 *
 * Usage: svm-tests [harness options]. Device: /dev/rust_hmm_svm0, or
 * $SVM0.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "kselftest_harness.h"
#include "dmirror-util.h"

#define SZ_64K (64UL << 10)
#define SZ_2M (2UL << 20)
#define MAXR 64

static int svm_open(void)
{
	const char *e = getenv("SVM0");

	return open(e ? e : "/dev/rust_hmm_svm0", O_RDWR | O_CLOEXEC);
}

/* Writable anonymous memory of @bytes whose start is @align aligned. */
static char *map_aligned(unsigned long bytes, unsigned long align)
{
	char *p = mmap(NULL, bytes + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + align - 1) & ~(align - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + bytes, p + align - a);
	return a;
}

/* The ranges from @addr on; their number, or -errno. */
static int ranges(int fd, void *addr, struct hmm_svm_range *r, unsigned long max)
{
	struct hmm_svm_ranges req = {
		.addr = (uintptr_t)addr, .ptr = (uintptr_t)r, .count = max,
	};

	if (ioctl(fd, HMM_SVM_RANGES, &req))
		return -errno;
	return req.count;
}

static struct hmm_svm_stats svm_stats(int fd)
{
	struct hmm_svm_stats s = { 0 };

	ioctl(fd, HMM_SVM_STATS, &s);
	return s;
}

/* Device READ of @npages at @p into @out; the device faults it took. */
static long dread(int fd, void *p, void *out, unsigned long npages)
{
	struct hmm_dmirror_cmd c;
	int ret = dcmd(fd, HMM_DMIRROR_READ, p, out, npages, &c);

	return ret ? ret : (long)c.faults;
}

FIXTURE(svm) {
	int fd;
	struct hmm_svm_range r[MAXR];
};

FIXTURE_SETUP(svm)
{
	self->fd = svm_open();
	if (self->fd < 0)
		SKIP(return, "no svm device (%s)", strerror(errno));
}

FIXTURE_TEARDOWN(svm)
{
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * A device fault makes the largest range that fits the VMA: 2 MiB, then
 * 64 KiB, then pages; the data read through them is the CPU's.
 */
TEST_F(svm, ranges_fit_vmas)
{
	unsigned long n = (SZ_2M + SZ_64K) / PAGE + 1;
	char *a = map_aligned(n * PAGE, SZ_2M);
	char *out = map_anon(n);

	ASSERT_NE(a, NULL);
	ASSERT_NE(out, NULL);
	fill(a, n, 7);
	ASSERT_EQ(dread(self->fd, a, out, n), 1);
	ASSERT_TRUE(check(out, n, 7));
	ASSERT_EQ(ranges(self->fd, a, self->r, MAXR), 3);
	EXPECT_EQ(self->r[0].start, (uintptr_t)a);
	EXPECT_EQ(self->r[0].end, (uintptr_t)a + SZ_2M);
	EXPECT_EQ(self->r[1].end - self->r[1].start, SZ_64K);
	EXPECT_EQ(self->r[2].end - self->r[2].start, PAGE);
	EXPECT_EQ(self->r[2].end, (uintptr_t)a + n * PAGE);
	EXPECT_EQ(self->r[0].flags | self->r[1].flags | self->r[2].flags, 0);
	EXPECT_EQ(svm_stats(self->fd).notifiers, 2);
	/* Mapped now: reading again takes no fault. */
	ASSERT_EQ(dread(self->fd, a, out, n), 0);
	munmap(a, n * PAGE);
	munmap(out, n * PAGE);
}

/*
 * A partial munmap drops the whole range from the device and marks it;
 * the next fault collects it and makes ranges that fit what is left. A
 * read across the hole fails; the rest reads back.
 */
TEST_F(svm, partial_munmap)
{
	unsigned long n = SZ_2M / PAGE;
	char *a = map_aligned(SZ_2M, SZ_2M);
	char *out = map_anon(n);
	struct hmm_svm_stats before, after;

	ASSERT_NE(a, NULL);
	ASSERT_NE(out, NULL);
	fill(a, n, 11);
	ASSERT_EQ(dread(self->fd, a, out, n), 1);
	before = svm_stats(self->fd);
	ASSERT_EQ(munmap(a + SZ_64K + 3 * PAGE, PAGE), 0);
	ASSERT_EQ(ranges(self->fd, a, self->r, MAXR), 1);
	EXPECT_EQ(self->r[0].flags, HMM_SVM_RANGE_UNMAPPED | HMM_SVM_RANGE_PARTIAL);
	after = svm_stats(self->fd);
	EXPECT_EQ(after.partial_unmaps, before.partial_unmaps + 1);
	/* The pages before the hole: one fault, in ranges that fit. */
	ASSERT_EQ(dread(self->fd, a, out, 16), 1);
	ASSERT_TRUE(check(out, 16, 11));
	after = svm_stats(self->fd);
	EXPECT_EQ(after.ranges_removed, before.ranges_removed + 1);
	ASSERT_GE(ranges(self->fd, a, self->r, MAXR), 1);
	EXPECT_EQ(self->r[0].start, (uintptr_t)a);
	EXPECT_EQ(self->r[0].end, (uintptr_t)a + SZ_64K);
	EXPECT_EQ(self->r[0].flags, 0);
	/* Across the hole. */
	EXPECT_EQ(dread(self->fd, a + SZ_64K, out, 8), -EFAULT);
	/* After it: the rest of the 2 MiB, in 64 KiB ranges and pages. */
	ASSERT_EQ(dread(self->fd, a + SZ_64K + 4 * PAGE, out, n - 20), 1);
	ASSERT_TRUE(check(out, 1, 11 + (SZ_64K + 4 * PAGE) / 4));
	munmap(a, SZ_2M);
	munmap(out, n * PAGE);
}

/*
 * munmap then mmap at the same address: the device reads the new pages,
 * never the old ones.
 */
TEST_F(svm, remap)
{
	unsigned long n = SZ_64K / PAGE;
	char *a = map_aligned(SZ_64K, SZ_64K);
	char *out = map_anon(n);
	char *b;

	ASSERT_NE(a, NULL);
	fill(a, n, 21);
	ASSERT_EQ(dread(self->fd, a, out, n), 1);
	ASSERT_TRUE(check(out, n, 21));
	ASSERT_EQ(munmap(a, SZ_64K), 0);
	b = mmap(a, SZ_64K, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	ASSERT_EQ(b, a);
	fill(b, n, 22);
	ASSERT_EQ(dread(self->fd, b, out, n), 1);
	ASSERT_TRUE(check(out, n, 22));
	munmap(b, SZ_64K);
	munmap(out, n * PAGE);
}

/*
 * fork write-protects the parent's pages: the device keeps reading them;
 * the parent's next write, while the child still shares the pages,
 * copies them and the device follows; the child's writes stay the
 * child's. Device writes land in the parent's copy.
 */
TEST_F(svm, fork)
{
	unsigned long n = SZ_64K / PAGE;
	char *a = map_aligned(SZ_64K, SZ_64K);
	char *out = map_anon(n);
	int go[2], done[2];
	pid_t pid;
	int status;
	char c = 0;

	ASSERT_NE(a, NULL);
	ASSERT_EQ(pipe(go), 0);
	ASSERT_EQ(pipe(done), 0);
	fill(a, n, 31);
	ASSERT_EQ(dread(self->fd, a, out, n), 1);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* Wait until the parent has written, then check and write. */
		if (read(go[0], &c, 1) != 1 || !check(a, n, 31))
			_exit(1);
		fill(a, n, 99);
		_exit(write(done[1], &c, 1) == 1 ? 0 : 1);
	}
	/* Read-only now, still the same pages: no fault. */
	ASSERT_EQ(dread(self->fd, a, out, n), 0);
	ASSERT_TRUE(check(out, n, 31));
	fill(a, n, 32);
	ASSERT_EQ(write(go[1], &c, 1), 1);
	ASSERT_EQ(read(done[0], &c, 1), 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(WEXITSTATUS(status), 0);
	/* The parent's copies, which the device had not seen. */
	ASSERT_EQ(dread(self->fd, a, out, n), 1);
	ASSERT_TRUE(check(out, n, 32));
	fill(out, n, 33);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, a, out, n, NULL), 0);
	ASSERT_TRUE(check(a, n, 33));
	munmap(a, SZ_64K);
	munmap(out, n * PAGE);
}

/*
 * An unmap in one 2 MiB chunk leaves the device's mappings in another
 * alone: reading them again takes no fault.
 */
TEST_F(svm, invalidation_stays_in_its_chunk)
{
	unsigned long n = 2 * SZ_2M / PAGE;
	char *a = map_aligned(2 * SZ_2M, SZ_2M);
	char *out = map_anon(n);

	ASSERT_NE(a, NULL);
	ASSERT_NE(out, NULL);
	fill(a, n, 41);
	ASSERT_EQ(dread(self->fd, a, out, n), 1);
	ASSERT_EQ(munmap(a + SZ_2M + PAGE, PAGE), 0);
	ASSERT_EQ(dread(self->fd, a, out, SZ_2M / PAGE), 0);
	ASSERT_TRUE(check(out, SZ_2M / PAGE, 41));
	ASSERT_EQ(dread(self->fd, a + SZ_2M + 2 * PAGE, out, 16), 1);
	munmap(a, 2 * SZ_2M);
	munmap(out, n * PAGE);
}

static int prefetch(int fd, void *addr, unsigned long npages, __u64 location,
		    __u64 *moved)
{
	struct hmm_svm_prefetch p = {
		.addr = (uintptr_t)addr, .npages = npages, .location = location,
	};

	if (ioctl(fd, HMM_SVM_PREFETCH, &p))
		return -errno;
	if (moved)
		*moved = p.moved;
	return 0;
}

/*
 * A prefetched range takes no device fault: into device memory (SNAPSHOT
 * shows it there), and back to system memory, the data intact both ways;
 * the same range unprefetched takes one.
 */
TEST_F(svm, prefetch_then_read)
{
	unsigned long n = SZ_2M / PAGE;
	char *a = map_aligned(SZ_2M, SZ_2M);
	char *out = map_anon(n);
	unsigned char snap[4];
	__u64 moved = 0;

	ASSERT_NE(a, NULL);
	ASSERT_NE(out, NULL);
	fill(a, n, 51);
	ASSERT_EQ(prefetch(self->fd, a, n, HMM_SVM_LOCATION_DEVICE, &moved), 0);
	EXPECT_EQ(moved, n);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, a, snap, 4, NULL), 0);
	EXPECT_EQ(snap[0] & HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
		  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL);
	ASSERT_EQ(dread(self->fd, a, out, n), 0);
	ASSERT_TRUE(check(out, n, 51));
	/* A device write to a prefetched range takes no fault either. */
	fill(out, 16, 52);
	{
		struct hmm_dmirror_cmd c;

		ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, a, out, 16, &c), 0);
		EXPECT_EQ(c.faults, 0);
	}
	ASSERT_EQ(prefetch(self->fd, a, n, HMM_SVM_LOCATION_SYSTEM, &moved), 0);
	EXPECT_EQ(moved, n);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, a, snap, 4, NULL), 0);
	EXPECT_EQ(snap[0], HMM_DMIRROR_PROT_WRITE);
	ASSERT_EQ(dread(self->fd, a, out, n), 0);
	ASSERT_TRUE(check(out, 16, 52));
	ASSERT_TRUE(check(a + 16 * PAGE, n - 16, 51 + 16 * PAGE / 4));
	/* Without a prefetch: one fault. */
	ASSERT_EQ(munmap(a, SZ_2M), 0);
	a = map_aligned(SZ_2M, SZ_2M);
	ASSERT_NE(a, NULL);
	ASSERT_EQ(dread(self->fd, a, out, n), 1);
	munmap(a, SZ_2M);
	munmap(out, n * PAGE);
}

/* Read-only memory is prefetched and mapped read-only. */
TEST_F(svm, prefetch_read_only)
{
	char *a = map_aligned(SZ_64K, SZ_64K);
	char out[PAGE];

	ASSERT_NE(a, NULL);
	fill(a, 16, 61);
	ASSERT_EQ(mprotect(a, SZ_64K, PROT_READ), 0);
	ASSERT_EQ(prefetch(self->fd, a, 16, HMM_SVM_LOCATION_SYSTEM, NULL), 0);
	ASSERT_EQ(dread(self->fd, a, out, 1), 0);
	ASSERT_TRUE(check(out, 1, 61));
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, a, out, 1, NULL), -EPERM);
	munmap(a, SZ_64K);
}

/* The ioctls' errors. */
TEST_F(svm, bad_input)
{
	char *a = map_anon(1);
	char *out = map_anon(1);
	struct hmm_svm_ranges req = { .ptr = (uintptr_t)self->r };
	int fd0;

	ASSERT_NE(a, NULL);
	ASSERT_EQ(dread(self->fd, a, out, 1), 1);
	req.count = HMM_SVM_RANGES_MAX + 1;
	EXPECT_EQ(ioctl(self->fd, HMM_SVM_RANGES, &req), -1);
	EXPECT_EQ(errno, EINVAL);
	req.count = 1;
	req.addr = (uintptr_t)a;
	req.ptr = 8;
	EXPECT_EQ(ioctl(self->fd, HMM_SVM_RANGES, &req), -1);
	EXPECT_EQ(errno, EFAULT);
	/* Past every range: none, whatever the buffer. */
	req.addr = ~0ULL;
	EXPECT_EQ(ioctl(self->fd, HMM_SVM_RANGES, &req), 0);
	EXPECT_EQ(req.count, 0);
	EXPECT_EQ(ioctl(self->fd, HMM_SVM_RANGES, (void *)8), -1);
	EXPECT_EQ(errno, EFAULT);
	EXPECT_EQ(ioctl(self->fd, HMM_SVM_STATS, (void *)8), -1);
	EXPECT_EQ(errno, EFAULT);
	/* Not an svm device. */
	fd0 = open("/dev/rust_hmm_dmirror0", O_RDWR | O_CLOEXEC);
	if (fd0 >= 0) {
		req.count = 0;
		EXPECT_EQ(ioctl(fd0, HMM_SVM_RANGES, &req), -1);
		EXPECT_EQ(errno, ENOTTY);
		close(fd0);
	}
	/* Prefetch: an unknown location, unaligned, empty, a hole. */
	EXPECT_EQ(prefetch(self->fd, a, 1, 2, NULL), -EINVAL);
	EXPECT_EQ(prefetch(self->fd, a + 1, 1, HMM_SVM_LOCATION_DEVICE, NULL), -EINVAL);
	EXPECT_EQ(prefetch(self->fd, a, 0, HMM_SVM_LOCATION_DEVICE, NULL), -EINVAL);
	EXPECT_EQ(prefetch(self->fd, out + PAGE * 4096, 1, HMM_SVM_LOCATION_DEVICE, NULL),
		  -EINVAL);
	EXPECT_EQ(ioctl(self->fd, HMM_SVM_PREFETCH, (void *)8), -1);
	EXPECT_EQ(errno, EFAULT);
	/* Kernel addresses and the top of the address space. */
	EXPECT_EQ(dread(self->fd, (void *)0xffff888000000000UL, out, 1), -EFAULT);
	EXPECT_EQ(dread(self->fd, (void *)(0x800000000000UL - PAGE), out, 1), -EFAULT);
	munmap(a, PAGE);
	munmap(out, PAGE);
}

#define THREADS 4
#define ROUNDS 200

struct worker {
	int fd;
	char *base;		/* this thread's pages */
	unsigned long npages;
	unsigned int seed;
	int remap;		/* also munmap and remap its last 64 KiB */
	int errors;
};

/*
 * One thread: CPU writes then a device read, a device write then CPU
 * reads, on its own pages, round after round; optionally its last 64 KiB
 * is unmapped and mapped again each round.
 */
static void *work(void *arg)
{
	struct worker *w = arg;
	char *out = map_anon(w->npages);

	if (!out) {
		w->errors++;
		return NULL;
	}
	for (int i = 0; i < ROUNDS; i++) {
		unsigned int seed = w->seed + i * 7919;

		fill(w->base, w->npages, seed);
		if (dread(w->fd, w->base, out, w->npages) < 0 ||
		    !check(out, w->npages, seed))
			w->errors++;
		fill(out, w->npages, seed + 1);
		if (dcmd(w->fd, HMM_DMIRROR_WRITE, w->base, out, w->npages, NULL) ||
		    !check(w->base, w->npages, seed + 1))
			w->errors++;
		if (w->remap) {
			char *tail = w->base + (w->npages * PAGE - SZ_64K);

			if (munmap(tail, SZ_64K) ||
			    mmap(tail, SZ_64K, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				 -1, 0) != tail)
				w->errors++;
		}
	}
	munmap(out, w->npages * PAGE);
	return NULL;
}

static int run_workers(struct worker *w)
{
	pthread_t t[THREADS];
	int errors = 0;

	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, work, &w[i]))
			return -1;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		errors += w[i].errors;
	}
	return errors;
}

/*
 * Threads on disjoint 2 MiB chunks, half of them remapping part of
 * theirs all the while: every read and write sees that thread's data.
 */
TEST_F(svm, threads_disjoint)
{
	unsigned long n = SZ_2M / PAGE / 4;
	char *a = map_aligned(THREADS * SZ_2M, SZ_2M);
	struct worker w[THREADS];

	ASSERT_NE(a, NULL);
	for (int i = 0; i < THREADS; i++)
		w[i] = (struct worker){ .fd = self->fd, .base = a + i * SZ_2M,
					.npages = n, .seed = 1000 * i, .remap = i & 1 };
	ASSERT_EQ(run_workers(w), 0);
	/* Each round, each remapping thread's range was unmapped and collected. */
	EXPECT_GE(svm_stats(self->fd).ranges_removed, ROUNDS);
	munmap(a, THREADS * SZ_2M);
}

/*
 * Threads on pages of one shared 64 KiB range, one of them remapping the
 * range next to it: faults on one range from every CPU.
 */
TEST_F(svm, threads_shared)
{
	unsigned long n = SZ_64K / PAGE / THREADS;
	char *a = map_aligned(2 * SZ_64K, SZ_64K);
	struct worker w[THREADS];

	ASSERT_NE(a, NULL);
	for (int i = 0; i < THREADS; i++)
		w[i] = (struct worker){ .fd = self->fd, .base = a + i * n * PAGE,
					.npages = n, .seed = 500 * i };
	/* The last thread's pages end where the remapped 64 KiB begins. */
	w[THREADS - 1].npages = n + SZ_64K / PAGE;
	w[THREADS - 1].remap = 1;
	ASSERT_EQ(run_workers(w), 0);
	munmap(a, 2 * SZ_64K);
}

/*
 * A process that exits with ranges and mappings in place, its file still
 * open elsewhere: the teardown finds them all (checked by the kernel log
 * and the unload test).
 */
TEST_F(svm, exit_with_ranges)
{
	pid_t pid = fork();
	int status;

	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int fd = svm_open();
		unsigned long n = SZ_2M / PAGE;
		char *a = map_aligned(SZ_2M, SZ_2M);
		char *out = map_anon(n);

		if (fd < 0 || !a || !out || dread(fd, a, out, n) != 1)
			_exit(1);
		munmap(a + PAGE, PAGE);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
}

TEST_HARNESS_MAIN
