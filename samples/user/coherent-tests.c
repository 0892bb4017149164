// SPDX-License-Identifier: GPL-2.0
/*
 * Device-coherent memory beyond the upstream hmm-tests: the CPU using
 * coherent pages in place, migration between the private memory of one
 * device and the coherent memory of another, fork and COW, MADV_PAGEOUT
 * and eviction, and running out of coherent memory.
 *
 * Usage: coherent-tests [harness options]. Devices: /dev/hmm_dmirror0
 * (private) and /dev/hmm_dmirror2 and 3 (coherent), or $DEV0, $DEV2 and
 * $DEV3. Every case skips when device 2 is missing (no soft-reserved
 * memory in this machine).
 */
#include <errno.h>
#include <string.h>

#include "kselftest_harness.h"
#include "dmirror-util.h"

#define W HMM_DMIRROR_PROT_WRITE
#define R HMM_DMIRROR_PROT_READ
#define LOCAL HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL
#define REMOTE HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE
#define PRIVATE HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL
#define MAXN 64UL

static int open_coherent(int n)
{
	const char *e = getenv(n == 2 ? "DEV2" : "DEV3");
	char path[32];

	snprintf(path, sizeof(path), "/dev/hmm_dmirror%d", n);
	return open(e ? e : path, O_RDWR | O_CLOEXEC);
}

FIXTURE(coherent) {
	int fd0;	/* device-private */
	int fd2, fd3;	/* device-coherent */
	unsigned char snap[MAXN];
	char *buf;
};

FIXTURE_SETUP(coherent)
{
	self->fd2 = open_coherent(2);
	if (self->fd2 < 0) {
		SKIP(return, "no device-coherent device (%s)", strerror(errno));
	}
	self->fd3 = open_coherent(3);
	ASSERT_GE(self->fd3, 0);
	self->fd0 = dev_open(0);
	ASSERT_GE(self->fd0, 0);
	self->buf = map_anon(MAXN);
	ASSERT_NE(self->buf, NULL);
}

FIXTURE_TEARDOWN(coherent)
{
	if (self->fd2 < 0)
		return;
	close(self->fd0);
	close(self->fd2);
	close(self->fd3);
}

/*
 * The CPU reads and writes coherent pages where they are, with no fault
 * that moves them; the device sees the CPU's writes and the CPU the
 * device's; other devices see them as another device's coherent memory.
 */
TEST_F(coherent, cpu_access_in_place)
{
	unsigned long n = 32;
	char *mem = map_anon(n);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 1);
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, &c), 0);
	ASSERT_EQ(c.cpages, n);
	ASSERT_TRUE(check(self->buf, n, 1));
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, LOCAL | W));
	ASSERT_TRUE(snap_all(self->fd3, mem, n, self->snap, REMOTE | W));
	ASSERT_TRUE(snap_all(self->fd0, mem, n, self->snap, REMOTE | W));
	/* CPU read and write: the pages stay on the device. */
	ASSERT_TRUE(check(mem, n, 1));
	fill(mem, n, 2);
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, LOCAL | W));
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_READ, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(self->buf, n, 2));
	/* A device write lands in the same pages. */
	fill(self->buf, n, 3);
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_WRITE, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(mem, n, 3));
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, LOCAL | W));
	/* Another device reads them in place too. */
	ASSERT_EQ(dcmd(self->fd3, HMM_DMIRROR_READ, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(self->buf, n, 3));
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, LOCAL | W));
	/* Back to system memory on request only. */
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_MIGRATE_TO_SYS, mem, self->buf, n, &c), 0);
	ASSERT_EQ(c.cpages, n);
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, W));
	ASSERT_TRUE(check(mem, n, 3));
	munmap(mem, n * PAGE);
}

/*
 * Pages move from device 0's private memory to device 2's coherent memory
 * and back, through system memory as test_hmm's devices do: a migration
 * to a device collects system memory only (another device's pages make it
 * ENOENT), and a device access brings another device's private pages back.
 */
TEST_F(coherent, private_and_coherent)
{
	unsigned long n = 16;
	char *mem = map_anon(n);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 10);
	ASSERT_EQ(dcmd(self->fd0, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(snap_all(self->fd0, mem, n, self->snap, PRIVATE | W));
	/* In device 0's private memory: not device 2's to take. */
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), -ENOENT);
	/* Device 2 reading them brings them back to system memory. */
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_READ, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(self->buf, n, 10));
	ASSERT_TRUE(snap_all(self->fd0, mem, n, self->snap, W));
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, &c), 0);
	ASSERT_EQ(c.cpages, n);
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, LOCAL | W));
	ASSERT_TRUE(snap_all(self->fd0, mem, n, self->snap, REMOTE | W));
	/* In device 2's coherent memory: not device 0's, nor device 3's. */
	ASSERT_EQ(dcmd(self->fd0, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), -ENOENT);
	ASSERT_EQ(dcmd(self->fd3, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), -ENOENT);
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, LOCAL | W));
	/* Device 3's MIGRATE_TO_SYS leaves device 2's pages alone. */
	ASSERT_EQ(dcmd(self->fd3, HMM_DMIRROR_MIGRATE_TO_SYS, mem, self->buf, n, &c), 0);
	ASSERT_EQ(c.cpages, 0);
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_MIGRATE_TO_SYS, mem, self->buf, n, &c), 0);
	ASSERT_EQ(c.cpages, n);
	ASSERT_EQ(dcmd(self->fd0, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(self->buf, n, 10));
	ASSERT_TRUE(snap_all(self->fd0, mem, n, self->snap, PRIVATE | W));
	/* And on to device 3's coherent memory, by way of the CPU. */
	ASSERT_TRUE(check(mem, n, 10));
	ASSERT_EQ(dcmd(self->fd3, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(snap_all(self->fd3, mem, n, self->snap, LOCAL | W));
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, REMOTE | W));
	ASSERT_TRUE(check(mem, n, 10));
	munmap(mem, n * PAGE);
}

/*
 * fork() shares coherent pages copy-on-write: the child reads them in
 * place, read-only; a device write of the parent's copies them into
 * system memory on the parent's side, and the child's own write then
 * finds it the only user. Neither sees the other's writes.
 */
TEST_F(coherent, fork_cow)
{
	unsigned long n = 8;
	char *mem = map_anon(n);
	int to_child[2], to_parent[2];
	char go = 0;
	pid_t pid;
	int status;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 20);
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n, NULL), 0);
	ASSERT_EQ(pipe(to_child), 0);
	ASSERT_EQ(pipe(to_parent), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		unsigned char snap[MAXN];
		int fd = open_coherent(2);

		/* Shared, read-only, still on device 2. */
		if (fd < 0 || !check(mem, n, 20))
			_exit(1);
		if (!snap_all(fd, mem, n, snap, LOCAL | R))
			_exit(2);
		if (write(to_parent[1], &go, 1) != 1 || read(to_child[0], &go, 1) != 1)
			_exit(3);
		/* The parent's device write did not reach the child. */
		if (!check(mem, n, 20))
			_exit(4);
		/*
		 * The parent took copies: the child is the pages' only user, so
		 * its write reuses them in place, still on device 2.
		 */
		fill(mem, n, 21);
		if (!snap_all(fd, mem, n, snap, LOCAL | W) || !check(mem, n, 21))
			_exit(5);
		_exit(0);
	}
	ASSERT_EQ(read(to_parent[0], &go, 1), 1);
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, LOCAL | R));
	/* A device write breaks COW for the parent. */
	fill(self->buf, n, 22);
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_WRITE, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(mem, n, 22));
	ASSERT_TRUE(snap_all(self->fd2, mem, n, self->snap, W));
	ASSERT_EQ(write(to_child[1], &go, 1), 1);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	ASSERT_TRUE(check(mem, n, 22));
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_READ, mem, self->buf, n, NULL), 0);
	ASSERT_TRUE(check(self->buf, n, 22));
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
	munmap(mem, n * PAGE);
}

/*
 * MADV_PAGEOUT reclaims system pages but not device memory, which is not
 * on the LRU: coherent pages stay where they are, data intact. Device
 * memory is reclaimed by its driver: RELEASE evicts every page to system
 * memory, whichever file migrated it.
 */
TEST_F(coherent, pageout_and_eviction)
{
	unsigned long n = 16;
	char *mem = map_anon(n);
	struct hmm_dmirror_stats before = dstats(self->fd2);
	int fd = open_coherent(2);

	ASSERT_NE(mem, NULL);
	ASSERT_GE(fd, 0);
	fill(mem, n, 30);
	ASSERT_EQ(dcmd(self->fd2, HMM_DMIRROR_MIGRATE_TO_DEV, mem, self->buf, n / 2, NULL), 0);
	ASSERT_EQ(madvise(mem, n * PAGE, MADV_PAGEOUT), 0);
	ASSERT_TRUE(snap_all(self->fd2, mem, n / 2, self->snap, LOCAL | W));
	ASSERT_TRUE(check(mem, n, 30));
	ASSERT_EQ(dstats(self->fd2).devmem_in_use, before.devmem_in_use + n / 2);
	/* Eviction by device 2's other file: the pages are the device's. */
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_RELEASE, mem, self->buf, n, NULL), 0);
	close(fd);
	ASSERT_TRUE(snap_all(self->fd2, mem, n / 2, self->snap, W));
	ASSERT_EQ(dstats(self->fd2).devmem_in_use, before.devmem_in_use);
	ASSERT_TRUE(check(mem, n, 30));
	munmap(mem, n * PAGE);
}

/*
 * A device with all its coherent memory in use answers ENOMEM; nothing is
 * lost, and memory given back can be used again. Migrates the whole
 * device (256 MiB in the test VM).
 */
TEST_F_TIMEOUT(coherent, out_of_memory, 300)
{
	struct hmm_dmirror_stats s = dstats(self->fd3);
	unsigned long max = s.devmem_max_pages, n, done;
	struct hmm_dmirror_cmd c;
	char *mem, *big, *one = map_anon(1);
	int fd = open_coherent(3);

	ASSERT_GE(fd, 0);
	ASSERT_NE(one, NULL);
	ASSERT_GT(max, 0);
	ASSERT_EQ(s.devmem_in_use, 0);
	n = max + 512;
	mem = map_anon(n);
	big = map_anon(n);
	ASSERT_NE(mem, NULL);
	ASSERT_NE(big, NULL);
	fill(mem, n, 40);
	ASSERT_EQ(dcmd(self->fd3, HMM_DMIRROR_MIGRATE_TO_DEV, mem, big, n, &c), -ENOMEM);
	s = dstats(self->fd3);
	ASSERT_EQ(s.devmem_in_use, max);
	ASSERT_EQ(s.devmem_pages, max);
	/* Another file of the device: also out of memory. */
	fill(one, 1, 41);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, one, self->buf, 1, NULL), -ENOMEM);
	ASSERT_TRUE(check(one, 1, 41));
	close(fd);
	munmap(one, PAGE);
	/* Every page kept its data, wherever it is. */
	ASSERT_TRUE(check(mem, n, 40));
	/* Give back a range, and it is used again. */
	ASSERT_EQ(dcmd(self->fd3, HMM_DMIRROR_MIGRATE_TO_SYS, mem, big, 1024, &c), 0);
	done = c.cpages;
	ASSERT_GT(done, 0);
	ASSERT_EQ(dstats(self->fd3).devmem_in_use, max - done);
	ASSERT_EQ(dcmd(self->fd3, HMM_DMIRROR_MIGRATE_TO_DEV, mem + (n - 1) * PAGE, big, 1, NULL), 0);
	ASSERT_TRUE(check(mem, n, 40));
	munmap(mem, n * PAGE);
	munmap(big, n * PAGE);
	ASSERT_EQ(dstats(self->fd3).devmem_in_use, 0);
}

TEST_HARNESS_MAIN
