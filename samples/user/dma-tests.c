// SPDX-License-Identifier: GPL-2.0
/*
 * The DMA mirror (/dev/rust_hmm_dmirror_dma, QEMU's edu device): READ and
 * WRITE by the device's DMA engine, bad input, and the ordering stress of
 * issue 20: the device DMAs in a loop while other threads mprotect, fork,
 * munmap and migrate the pages it uses. No device write may land in a
 * page after the invalidation that write-protected it returned: a page
 * read-only for the CPU must not change, and a forked child must never
 * see its parent's device writes. A device that used a stale IOVA shows
 * as a DMA remapping fault in the guest log, which the harness counts as
 * a splat. Every transfer takes 100 ms of virtual time, so sizes are
 * small. Skips without the device.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "kselftest_harness.h"
#include "dmirror-util.h"

static const char *dma_path(void)
{
	const char *e = getenv("DMA_DEV");

	return e ? e : "/dev/rust_hmm_dmirror_dma";
}

static int dma_open(void)
{
	return open(dma_path(), O_RDWR | O_CLOEXEC);
}

static struct hmm_dma_stats dma_stats(int fd)
{
	struct hmm_dma_stats s = { 0 };

	ioctl(fd, HMM_DMA_STATS, &s);
	return s;
}

#define SKIP_WITHOUT_DEVICE(fd)						\
	do {								\
		if ((fd) < 0 && errno == ENOENT)			\
			SKIP(return, "no %s (no edu device)", dma_path()); \
		ASSERT_GE((fd), 0);					\
	} while (0)

/* Data there and back, with a buffer that is not page aligned. */
TEST(read_write)
{
	int fd = dma_open();
	unsigned long n = 3;
	struct hmm_dmirror_cmd c;
	struct hmm_dma_stats s;
	char *mem, *buf;

	SKIP_WITHOUT_DEVICE(fd);
	mem = map_anon(n);
	buf = malloc((n + 1) * PAGE);
	ASSERT_NE(mem, NULL);
	ASSERT_NE(buf, NULL);
	fill(mem, n, 1000);
	memset(buf, 0, (n + 1) * PAGE);

	/* READ: the pages by DMA into the device, then into buf + 8. */
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, mem, buf + 8, n, &c), 0);
	ASSERT_EQ(c.cpages, n);
	ASSERT_EQ(c.faults, n);
	ASSERT_TRUE(check(buf + 8, n, 1000));
	s = dma_stats(fd);
	/* One transfer per page in, two out (the buffer straddles pages). */
	ASSERT_EQ(s.to_device, n);
	ASSERT_EQ(s.to_ram, 2 * n);

	/* WRITE: from buf + 8 into the pages. */
	fill(buf + 8, n, 77);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_WRITE, mem, buf + 8, n, &c), 0);
	ASSERT_EQ(c.cpages, n);
	ASSERT_TRUE(check(mem, n, 77));
	s = dma_stats(fd);
	ASSERT_EQ(s.to_device, 3 * n);
	ASSERT_EQ(s.to_ram, 3 * n);

	/* The request's mappings are gone with it: an munmap now finds
	 * nothing mapped for the device. */
	ASSERT_EQ(munmap(mem, n * PAGE), 0);
	ASSERT_EQ(dma_stats(fd).unmapped, s.unmapped);
	free(buf);
	close(fd);
}

/* Bad input gets an errno, nothing else. */
TEST(bad_input)
{
	int fd = dma_open();
	char *mem, *ro, buf[2 * PAGE];
	struct hmm_dmirror_cmd c = { 0 };

	SKIP_WITHOUT_DEVICE(fd);
	mem = map_anon(2);
	ASSERT_NE(mem, NULL);
	ro = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(ro, MAP_FAILED);

	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, mem + 1, buf, 1, NULL), -EINVAL);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, mem, buf, 0, NULL), -EINVAL);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, mem, buf, ~0UL / 2, NULL), -EINVAL);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, (void *)-PAGE, buf, 2, NULL), -EINVAL);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, mem, (void *)-PAGE, 1, NULL), -EINVAL);
	/* Kernel and unmapped addresses, at either end. */
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, (void *)0xffff888000000000UL, buf, 1, NULL), -EFAULT);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_WRITE, mem, (void *)0xffff888000000000UL, 1, NULL), -EFAULT);
	ASSERT_EQ(munmap(mem + PAGE, PAGE), 0);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, mem, buf, 2, &c), -EFAULT);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, mem, mem + PAGE, 1, NULL), -EFAULT);
	/* A read-only page can be read, not written. */
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, ro, buf, 1, NULL), 0);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_WRITE, ro, buf, 1, NULL), -EPERM);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, mem, ro, 1, NULL), -EPERM);
	/* What the DMA mirror does not do. */
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_SNAPSHOT, mem, buf, 1, NULL), -ENOTTY);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, buf, 1, NULL), -ENOTTY);
	ASSERT_EQ(ioctl(fd, HMM_DMIRROR_STATS, buf), -1);
	ASSERT_EQ(errno, ENOTTY);
	close(fd);
}

/* A file mirrors its opener: another process's READ puts the data into
 * its own buffer, from the opener's pages. */
TEST(other_process)
{
	int fd = dma_open();
	char *mem;
	pid_t pid;
	int st;

	SKIP_WITHOUT_DEVICE(fd);
	mem = map_anon(1);
	ASSERT_NE(mem, NULL);
	fill(mem, 1, 5);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char *buf = map_anon(1);

		/* The child's copy of the page changes, the opener's not. */
		fill(mem, 1, 6);
		_exit(dcmd(fd, HMM_DMIRROR_READ, mem, buf, 1, NULL) || !check(buf, 1, 5));
	}
	ASSERT_EQ(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ(WEXITSTATUS(st), 0);
	close(fd);
}

/* The ordering stress. */
#define WSLOTS 2		/* the device writes them; mprotect, fork */
#define RSLOTS 2		/* the device reads them; munmap, migrate */
#define SETTLE_US 250000	/* longer than a transfer */
#define WORDS (PAGE / 8)

static char *wslots, *rslots;
static atomic_int stop;
static atomic_ulong rgen[RSLOTS];	/* generation mapped now */
static atomic_ulong rgone[RSLOTS];	/* newest generation unmapped */

struct stress {
	int fd, cpu_fd;
	unsigned int seed;
	unsigned long ops, checks, bad, errors;
	const char *what;		/* the first failure */
};

static void fail(struct stress *t, const char *what)
{
	if (!t->bad++)
		t->what = what;
}

/* Device writes: a page of @k into a write slot, again and again. */
static void *dma_writer(void *p)
{
	struct stress *t = p;
	uint64_t *buf = map_anon(1);

	for (uint64_t k = 1; !stop; k++) {
		int s = rand_r(&t->seed) % WSLOTS, r;

		for (unsigned long i = 0; i < WORDS; i++)
			buf[i] = k << 32 | i;
		r = dcmd(t->fd, HMM_DMIRROR_WRITE, wslots + s * PAGE, buf, 1, NULL);
		/* EPERM while the slot is read-only. */
		if (r && r != -EPERM) {
			t->errors++;
			fail(t, "device write failed");
		}
		t->ops++;
	}
	return NULL;
}

/* Whether @buf is read slot data of a generation not unmapped before
 * the read began: words of one stamp, or 0 where the CPU had not stamped
 * yet (bytewise, as the DMA copy races the stamping). */
static int good_read(const uint64_t *buf, unsigned long gone_before)
{
	uint64_t g = 0;

	for (unsigned long i = 0; i < WORDS; i++)
		if (buf[i] >> 32 > g)
			g = buf[i] >> 32;
	if (g && g <= gone_before)
		return 0;
	for (unsigned long i = 0; i < WORDS; i++)
		for (int b = 0; b < 8; b++) {
			uint64_t m = 0xffULL << (8 * b);

			if ((buf[i] & m) && (buf[i] & m) != ((g << 32 | i) & m))
				return 0;
		}
	return 1;
}

/* Device reads of the read slots, checked. */
static void *dma_reader(void *p)
{
	struct stress *t = p;
	uint64_t *buf = map_anon(1);

	while (!stop) {
		int s = rand_r(&t->seed) % RSLOTS, r;
		unsigned long before = rgone[s];

		r = dcmd(t->fd, HMM_DMIRROR_READ, rslots + s * PAGE, buf, 1, NULL);
		if (!r) {
			t->checks++;
			if (!good_read(buf, before))
				fail(t, "device read returned data of an unmapped page");
		} else if (r != -EFAULT) {
			t->errors++;
			fail(t, "device read failed");
		}
		t->ops++;
	}
	return NULL;
}

/* Write slots: read-only for a while, or forked; no device write may
 * land after either returned. */
static void *write_mutator(void *p)
{
	struct stress *t = p;
	uint64_t *snap = map_anon(1);

	while (!stop) {
		int s = rand_r(&t->seed) % WSLOTS;
		char *slot = wslots + s * PAGE;

		usleep(rand_r(&t->seed) % 200000);
		if (rand_r(&t->seed) % 2) {
			if (mprotect(slot, PAGE, PROT_READ)) {
				fail(t, "mprotect");
				break;
			}
			memcpy(snap, slot, PAGE);
			usleep(SETTLE_US);
			t->checks++;
			if (memcmp(snap, slot, PAGE))
				fail(t, "a device write landed in a read-only page");
			mprotect(slot, PAGE, PROT_READ | PROT_WRITE);
		} else {
			pid_t pid = fork();
			int st;

			if (!pid) {
				memcpy(snap, slot, PAGE);
				usleep(SETTLE_US);
				_exit(memcmp(snap, slot, PAGE) != 0);
			}
			if (pid < 0 || waitpid(pid, &st, 0) != pid) {
				fail(t, "fork");
				break;
			}
			t->checks++;
			if (!WIFEXITED(st) || WEXITSTATUS(st))
				fail(t, "a forked child saw a device write of its parent");
		}
		t->ops++;
	}
	return NULL;
}

/* Read slots: unmapped and mapped again with a new generation, or
 * migrated to the CPU mirror's device memory. */
static void *read_mutator(void *p)
{
	struct stress *t = p;
	unsigned long g = 1;
	char *mbuf = map_anon(1);	/* MIGRATE_TO_DEV returns the data */

	while (!stop) {
		int s = rand_r(&t->seed) % RSLOTS;
		uint64_t *slot = (uint64_t *)(rslots + s * PAGE);

		usleep(rand_r(&t->seed) % 150000);
		if (rand_r(&t->seed) % 3) {
			unsigned long old = rgen[s];

			if (mmap(slot, PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != slot) {
				fail(t, "mmap");
				break;
			}
			/* Only now is it unmapped: a read that began before
			 * may still see it. */
			rgone[s] = old;
			g++;
			for (unsigned long i = 0; i < WORDS; i++)
				slot[i] = g << 32 | i;
			rgen[s] = g;
		} else if (t->cpu_fd >= 0) {
			int r = dcmd(t->cpu_fd, HMM_DMIRROR_MIGRATE_TO_DEV, slot, mbuf, 1, NULL);

			t->checks += !r;	/* migrations done */
			/* ENOENT: a device READ brought the page back at once. */
			if (r && r != -EBUSY && r != -ENOENT) {
				ksft_print_msg("MIGRATE_TO_DEV: %s\n", strerror(-r));
				fail(t, "migration failed");
			}
		}
		t->ops++;
	}
	return NULL;
}

FIXTURE(stress) {};
FIXTURE_SETUP(stress) {}
FIXTURE_TEARDOWN(stress) {}

/* 30 s by default (DMA_STRESS_SECONDS), under the harness's limit. */
TEST_F_TIMEOUT(stress, ordering, 300)
{
	const char *e = getenv("DMA_STRESS_SECONDS");
	int seconds = e ? atoi(e) : 30;
	struct stress t[4] = { { 0 } };
	void *(*fn[4])(void *) = { dma_writer, dma_reader, write_mutator, read_mutator };
	pthread_t th[4];
	struct hmm_dma_stats s;
	int fd = dma_open();
	int cpu_fd = dev_open(0);

	SKIP_WITHOUT_DEVICE(fd);
	wslots = map_anon(WSLOTS);
	rslots = map_anon(RSLOTS);
	ASSERT_NE(wslots, NULL);
	ASSERT_NE(rslots, NULL);
	for (int s = 0; s < RSLOTS; s++) {
		uint64_t *slot = (uint64_t *)(rslots + s * PAGE);

		for (unsigned long i = 0; i < WORDS; i++)
			slot[i] = 1ULL << 32 | i;
		rgen[s] = 1;
	}
	for (int i = 0; i < 4; i++) {
		t[i].fd = fd;
		t[i].cpu_fd = cpu_fd;
		t[i].seed = 1 + i;
		ASSERT_EQ(pthread_create(&th[i], NULL, fn[i], &t[i]), 0);
	}
	sleep(seconds);
	stop = 1;
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	s = dma_stats(fd);
	ksft_print_msg("device writes %lu, reads %lu (%lu checked), write-slot checks %lu, read-slot changes %lu (%lu migrations)\n",
		       t[0].ops, t[1].ops, t[1].checks, t[2].checks, t[3].ops, t[3].checks);
	ksft_print_msg("invalidations %llu, of which waited for DMA %llu; %llu mappings removed; iova %llu\n",
		       s.invalidations, s.invalidate_waits, s.unmapped, s.iova);
	for (int i = 0; i < 4; i++) {
		if (t[i].bad)
			ksft_print_msg("thread %d: %lu failures, first: %s\n", i, t[i].bad, t[i].what);
		EXPECT_EQ(t[i].bad, 0);
	}
	/* The point of the test: invalidations met DMA in flight. */
	EXPECT_GT(s.invalidate_waits, 0);
	EXPECT_GT(t[2].checks, 0);
	EXPECT_GT(t[1].checks, 0);
	if (cpu_fd >= 0)
		close(cpu_fd);
	close(fd);
}

TEST_HARNESS_MAIN
