// SPDX-License-Identifier: GPL-2.0
/*
 * Device-private memory and migration beyond the upstream hmm-tests: what
 * SNAPSHOT and the CPU see after each step, device writes reaching the CPU,
 * eviction on close (own pages only), KEEP_ON_CLOSE and RELEASE, injected
 * allocation failures, fork, THP, the device memory counters, and bad input.
 *
 * Usage: migrate-tests [harness options]; DEV0/DEV1 name the devices.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "kselftest_harness.h"
#include "dmirror-util.h"

#define DEV_LOCAL (HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE)
#define SYS_WRITE HMM_DMIRROR_PROT_WRITE
#define PMD_PAGES 512UL

FIXTURE(migrate) {
	int fd;
	int fd1;
	unsigned char *snap;
	char *buf;
};

FIXTURE_SETUP(migrate)
{
	/* Device fault counts must not include NUMA hinting (dmirror-util.h). */
	ASSERT_EQ(numa_hinting_off(), 0);
	self->fd = dev_open(0);
	ASSERT_GE(self->fd, 0) TH_LOG("open %s: %s", dev_path(0), strerror(errno));
	self->fd1 = dev_open(1);
	ASSERT_GE(self->fd1, 0);
	self->snap = malloc(2 * PMD_PAGES);
	self->buf = map_anon(2 * PMD_PAGES);
	ASSERT_NE(self->snap, NULL);
	ASSERT_NE(self->buf, NULL);
}

FIXTURE_TEARDOWN(migrate)
{
	close(self->fd);
	close(self->fd1);
	free(self->snap);
}

static long in_use(int fd)
{
	struct hmm_dmirror_stats s;

	return ioctl(fd, HMM_DMIRROR_STATS, &s) ? -1 : (long)s.devmem_in_use;
}

/* To the device, read back by the device, then back by a CPU access. */
TEST_F(migrate, to_device_and_back_by_cpu)
{
	unsigned long n = 64;
	char *mem = map_anon(n);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 11);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, &c), 0);
	ASSERT_EQ(c.cpages, n);
	ASSERT_TRUE(check(self->buf, n, 11));
	ASSERT_TRUE(snap_all(self->fd, mem, n, self->snap, DEV_LOCAL));
	/* The other device sees the pages as not present. */
	ASSERT_TRUE(snap_all(self->fd1, mem, n, self->snap, HMM_DMIRROR_PROT_NONE));
	ASSERT_TRUE(check(mem, n, 11));
	ASSERT_TRUE(snap_all(self->fd, mem, n, self->snap, SYS_WRITE));
	munmap(mem, n * PAGE);
}

/* A device write to device memory is what the CPU reads afterwards. */
TEST_F(migrate, device_write_reaches_cpu)
{
	unsigned long n = 16;
	char *mem = map_anon(n);

	ASSERT_NE(mem, NULL);
	fill(mem, n, 1);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	fill(self->buf, n, 2);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, self->buf, n, NULL), 0);
	/* Written in place: still in device memory. */
	ASSERT_TRUE(snap_all(self->fd, mem, n, self->snap, DEV_LOCAL));
	ASSERT_TRUE(check(mem, n, 2));
	munmap(mem, n * PAGE);
}

/* MIGRATE_TO_SYS moves the pages back and counts them. */
TEST_F(migrate, to_system_ioctl)
{
	unsigned long n = 32;
	char *mem = map_anon(n);
	struct hmm_dmirror_cmd c;
	long before = in_use(self->fd);

	ASSERT_NE(mem, NULL);
	ASSERT_GE(before, 0);
	fill(mem, n, 3);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	ASSERT_EQ(in_use(self->fd), before + (long)n);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, mem, self->buf, n, &c), 0);
	ASSERT_EQ(c.cpages, n);
	ASSERT_EQ(in_use(self->fd), before);
	ASSERT_TRUE(snap_all(self->fd, mem, n, self->snap, SYS_WRITE));
	ASSERT_TRUE(check(mem, n, 3));
	/* Nothing left to move. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, mem, self->buf, n, &c), 0);
	ASSERT_EQ(c.cpages, 0);
	munmap(mem, n * PAGE);
}

/* Pages on device 1 are not migrated to device 0, but device 0 reads them. */
TEST_F(migrate, other_device)
{
	unsigned long n = 8;
	char *mem = map_anon(n);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 4);
	ASSERT_EQ(dcmd(self->fd1, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), -ENOENT);
	memset(self->buf, 0, n * PAGE);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, self->buf, n, &c), 0);
	ASSERT_EQ(c.cpages, n);
	ASSERT_TRUE(check(self->buf, n, 4));
	/* Reading through device 0 brought them back to system memory. */
	ASSERT_TRUE(snap_all(self->fd1, mem, n, self->snap, SYS_WRITE));
	munmap(mem, n * PAGE);
}

/* Closing a file moves back its pages, and only its pages. */
TEST_F(migrate, close_evicts_own_pages_only)
{
	unsigned long n = 16;
	char *a = map_anon(n), *b = map_anon(n);
	int fa = dev_open(0);

	ASSERT_NE(a, NULL);
	ASSERT_NE(b, NULL);
	ASSERT_GE(fa, 0);
	fill(a, n, 5);
	fill(b, n, 6);
	ASSERT_EQ(dcmd(fa, HMM_DMIRROR_MIGRATE_TO_DEV, a, self->buf, n, NULL), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, b, self->buf, n, NULL), 0);
	ASSERT_TRUE(snap_all(self->fd, a, n, self->snap, DEV_LOCAL));
	close(fa);
	ASSERT_TRUE(snap_all(self->fd, a, n, self->snap, SYS_WRITE));
	ASSERT_TRUE(snap_all(self->fd, b, n, self->snap, DEV_LOCAL));
	ASSERT_TRUE(check(a, n, 5));
	ASSERT_TRUE(check(b, n, 6));
	munmap(a, n * PAGE);
	munmap(b, n * PAGE);
}

/* KEEP_ON_CLOSE leaves the pages in device memory; RELEASE moves them. */
TEST_F(migrate, keep_on_close_then_release)
{
	unsigned long n = 16;
	char *a = map_anon(n);
	int fa = dev_open(0);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(a, NULL);
	ASSERT_GE(fa, 0);
	fill(a, n, 7);
	ASSERT_EQ(dcmd(fa, HMM_DMIRROR_FLAGS, a, NULL, HMM_DMIRROR_FLAG_KEEP_ON_CLOSE, NULL), 0);
	ASSERT_EQ(dcmd(fa, HMM_DMIRROR_MIGRATE_TO_DEV, a, self->buf, n, NULL), 0);
	close(fa);
	ASSERT_TRUE(snap_all(self->fd, a, n, self->snap, DEV_LOCAL));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_RELEASE, a, NULL, n, &c), 0);
	ASSERT_TRUE(snap_all(self->fd, a, n, self->snap, SYS_WRITE));
	ASSERT_TRUE(check(a, n, 7));
	munmap(a, n * PAGE);
}

/* An injected allocation failure leaves the page where it was, once. */
TEST_F(migrate, fail_alloc_once)
{
	char *mem = map_anon(1);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	fill(mem, 1, 8);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_FLAGS, mem, NULL, HMM_DMIRROR_FLAG_FAIL_ALLOC, NULL), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, 1, NULL), -ENOENT);
	ASSERT_TRUE(snap_all(self->fd, mem, 1, self->snap, SYS_WRITE));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, 1, &c), 0);
	ASSERT_EQ(c.cpages, 1);
	ASSERT_TRUE(check(self->buf, 1, 8));
	ASSERT_TRUE(check(mem, 1, 8));
	munmap(mem, PAGE);
}

/*
 * An allocation failing in the middle of a migration back to system
 * memory, after earlier pages got their destinations: the migration must
 * leave every page where it was, mapped and usable. The old code finalized
 * such a migration without moving the pages, which left migration entries
 * behind pointing to released pages: a CPU access then faulted for ever
 * (the two-CPU fuzzer hang). The CPU reads run in a child under an alarm,
 * so that failure shows as a timeout here, not as a hung test.
 */
TEST_F(migrate, fail_alloc_mid_migration)
{
	unsigned long n = 8;
	char *mem = map_anon(n);
	struct hmm_dmirror_cmd c;
	int status;
	pid_t pid;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 11);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(snap_all(self->fd, mem, n, self->snap, DEV_LOCAL));
	/* The third destination allocation of the move back fails. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_FLAGS, mem, NULL,
		       HMM_DMIRROR_FLAG_FAIL_ALLOC | HMM_DMIRROR_FLAG_FAIL_NTH(3), NULL), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, mem, NULL, n, &c), -ENOMEM);
	/* Nothing moved: every page is still in device memory, whole. */
	ASSERT_TRUE(snap_all(self->fd, mem, n, self->snap, DEV_LOCAL));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(self->buf, n, 11));
	/* The CPU brings them back, with the data. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		alarm(20);
		_exit(check(mem, n, 11) ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_FALSE(WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		TH_LOG("a CPU read of the pages never completed");
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	ASSERT_TRUE(check(mem, n, 11));
	/* Writable again once the child is gone: the CPU owns them. */
	fill(mem, n, 12);
	ASSERT_TRUE(snap_all(self->fd, mem, n, self->snap, SYS_WRITE));

	/* Into the device: the third page stays behind, the others move. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_FLAGS, mem, NULL,
		       HMM_DMIRROR_FLAG_FAIL_ALLOC | HMM_DMIRROR_FLAG_FAIL_NTH(3), NULL), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), -ENOENT);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, mem, self->snap, n, NULL), 0);
	for (unsigned long i = 0; i < n; i++)
		EXPECT_EQ(self->snap[i], i == 2 ? SYS_WRITE : DEV_LOCAL);
	ASSERT_TRUE(check(mem, n, 12));
	munmap(mem, n * PAGE);
}

/*
 * RELEASE from another process, in a loop, while pages move to the device
 * and back (by ioctl and by CPU faults). A page whose move back has just
 * completed is no longer device memory, though it is not freed yet:
 * eviction must not move it again. It once did (a memory cgroup WARN on
 * DEBUG_VM kernels: the page had already handed its charge to its copy).
 * The data must survive every interleaving.
 */
TEST_F(migrate, release_races_migration)
{
	unsigned long n = PMD_PAGES, rounds = 0;
	char *mem = map_anon(n);
	time_t end = time(NULL) + 5;
	int status, r;
	pid_t pid;

	ASSERT_NE(mem, NULL);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int fd = dev_open(0);

		/* Evicts the device's pages, the parent's among them. */
		while (fd >= 0)
			dcmd(fd, HMM_DMIRROR_RELEASE, NULL, NULL, 0, NULL);
		_exit(1);
	}
	fill(mem, n, 21);
	while (time(NULL) < end) {
		r = dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL);
		/* ENOENT: RELEASE took a page back before the device read. */
		ASSERT_TRUE(r == 0 || r == -ENOENT) TH_LOG("MIGRATE_TO_DEV: %d", r);
		if (rounds++ % 2)
			ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, mem, NULL, n, NULL), 0);
		ASSERT_TRUE(check(mem, n, 21));
	}
	kill(pid, SIGKILL);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("the RELEASE loop could not open the device");
	ASSERT_GT(rounds, 1);
	ASSERT_TRUE(check(mem, n, 21));
	ASSERT_TRUE(snap_all(self->fd, mem, n, self->snap, SYS_WRITE));
	munmap(mem, n * PAGE);
}

/* Device pages are shared copy-on-write with a child, like any anon page. */
TEST_F(migrate, fork_with_device_pages)
{
	unsigned long n = 16;
	char *mem = map_anon(n);
	pid_t pid;
	int status;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 9);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* The child sees the data, and its writes stay its own. */
		if (!check(mem, n, 9))
			_exit(1);
		fill(mem, n, 10);
		_exit(check(mem, n, 10) ? 0 : 2);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	ASSERT_TRUE(check(mem, n, 9));
	munmap(mem, n * PAGE);
}

/*
 * A device write to its own pages that the CPU maps read-only: COW-shared
 * with a child (the write breaks COW, the child keeps the old data), then
 * write-protected (EPERM), then writable again.
 */
TEST_F(migrate, device_write_to_readonly_device_pages)
{
	unsigned long n = 8;
	char *mem = map_anon(n);
	int to_child[2], status;
	pid_t pid;
	char go;

	ASSERT_NE(mem, NULL);
	ASSERT_EQ(pipe(to_child), 0);
	fill(mem, n, 15);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* Check only once the parent has written through the device. */
		if (read(to_child[0], &go, 1) != 1)
			_exit(3);
		_exit(check(mem, n, 15) ? 0 : 1);
	}
	fill(self->buf, n, 16);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, self->buf, n, NULL), 0);
	ASSERT_EQ(write(to_child[1], "x", 1), 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	ASSERT_TRUE(check(mem, n, 16));

	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	ASSERT_EQ(mprotect(mem, n * PAGE, PROT_READ), 0);
	fill(self->buf, n, 17);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, self->buf, n, NULL), -EPERM);
	ASSERT_TRUE(check(mem, n, 16));
	ASSERT_EQ(mprotect(mem, n * PAGE, PROT_READ | PROT_WRITE), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(mem, n, 17));
	close(to_child[0]);
	close(to_child[1]);
	munmap(mem, n * PAGE);
}

/*
 * mremap moves device-private entries like any other: the data follows,
 * and with MREMAP_DONTUNMAP the old range is empty. Repeated migration
 * and CPU faults back keep the data.
 */
TEST_F(migrate, mremap_and_repeat)
{
	unsigned long n = 16;
	char *mem = map_anon(n), *dst = map_anon(2 * n), *moved;
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	ASSERT_NE(dst, NULL);
	fill(mem, n, 18);
	for (int round = 0; round < 3; round++) {
		ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, &c), 0);
		ASSERT_EQ(c.cpages, n);
		ASSERT_TRUE(check(mem, n, 18));	/* every page faults back */
	}
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	moved = mremap(mem, n * PAGE, n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ASSERT_EQ(moved, dst);
	ASSERT_TRUE(snap_all(self->fd, dst, n, self->snap, DEV_LOCAL));
	memset(self->buf, 0, n * PAGE);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, dst, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(self->buf, n, 18));
	moved = mremap(dst, n * PAGE, n * PAGE,
		       MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, dst + n * PAGE);
	ASSERT_EQ(moved, dst + n * PAGE);
	ASSERT_TRUE(check(moved, n, 18));
	/* The old range is empty now: reads give zeros, not the old data. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, dst, self->buf, n, NULL), 0);
	for (unsigned long i = 0; i < n * PAGE / 8; i++)
		ASSERT_EQ(((uint64_t *)self->buf)[i], 0);
	munmap(dst, 2 * n * PAGE);
}

/* munmap frees device pages (folio_free), which the counters show. */
TEST_F(migrate, munmap_frees_device_pages)
{
	unsigned long n = 64;
	char *mem = map_anon(n);
	long before = in_use(self->fd);

	ASSERT_NE(mem, NULL);
	ASSERT_GE(before, 0);
	fill(mem, n, 12);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	ASSERT_EQ(in_use(self->fd), before + (long)n);
	ASSERT_EQ(munmap(mem, n * PAGE), 0);
	ASSERT_EQ(in_use(self->fd), before);
}

/* A THP moves as one device folio (PMD in SNAPSHOT) and comes back whole. */
TEST_F(migrate, thp_as_one_folio)
{
	char *raw = mmap(NULL, 2 * PMD_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *mem = (char *)(((uintptr_t)raw + PMD_PAGES * PAGE - 1) & ~(PMD_PAGES * PAGE - 1));
	long before = in_use(self->fd);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(raw, MAP_FAILED);
	ASSERT_EQ(madvise(mem, PMD_PAGES * PAGE, MADV_HUGEPAGE), 0);
	fill(mem, PMD_PAGES, 13);
	if (!snap_all(self->fd, mem, PMD_PAGES, self->snap,
		      SYS_WRITE | HMM_DMIRROR_PROT_PMD))
		SKIP(goto out, "no THP backs the range");
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, PMD_PAGES, &c), 0);
	ASSERT_EQ(c.cpages, PMD_PAGES);
	ASSERT_TRUE(check(self->buf, PMD_PAGES, 13));
	ASSERT_TRUE(snap_all(self->fd, mem, PMD_PAGES, self->snap,
			     DEV_LOCAL | HMM_DMIRROR_PROT_PMD));
	ASSERT_EQ(in_use(self->fd), before + (long)PMD_PAGES);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_SYS, mem, self->buf, PMD_PAGES, &c), 0);
	ASSERT_EQ(c.cpages, PMD_PAGES);
	ASSERT_TRUE(check(mem, PMD_PAGES, 13));
	ASSERT_EQ(in_use(self->fd), before);
out:
	munmap(raw, 2 * PMD_PAGES * PAGE);
}

/* Bad ranges get their errno and move nothing. */
TEST_F(migrate, bad_input)
{
	char *mem = map_anon(4);
	long before = in_use(self->fd);
	unsigned long req[] = { HMM_DMIRROR_MIGRATE_TO_DEV, HMM_DMIRROR_MIGRATE_TO_SYS };

	ASSERT_NE(mem, NULL);
	fill(mem, 4, 14);
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(dcmd(self->fd, req[i], mem + 1, self->buf, 1, NULL), -EINVAL);
		EXPECT_EQ(dcmd(self->fd, req[i], mem, self->buf, 0, NULL), -EINVAL);
		EXPECT_EQ(dcmd(self->fd, req[i], mem, self->buf, -1UL, NULL), -EINVAL);
		EXPECT_EQ(dcmd(self->fd, req[i], (void *)0xffff888000000000UL,
			       self->buf, 1, NULL), -EFAULT);
	}
	/* A hole, and a PROT_NONE range. */
	ASSERT_EQ(munmap(mem + 2 * PAGE, PAGE), 0);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, 4, NULL), -EINVAL);
	ASSERT_EQ(mprotect(mem, PAGE, PROT_NONE), 0);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, 1, NULL), -EINVAL);
	/* The copy-out target is unwritable: EFAULT, and the data stays whole. */
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem + PAGE, (void *)8, 1, NULL),
		  -EFAULT);
	EXPECT_EQ(in_use(self->fd) - before, 1);
	ASSERT_TRUE(check(mem + PAGE, 1, 14 + PAGE / 4));
	munmap(mem, 4 * PAGE);
	EXPECT_EQ(in_use(self->fd), before);
}

TEST_HARNESS_MAIN
