// SPDX-License-Identifier: GPL-2.0
/*
 * Race stress: threads read and write through the device while others
 * munmap and remap, mprotect, fork, take pages device-exclusive, and
 * mirror short-lived processes that exit, and pages migrate to device
 * memory and back (by ioctl and by CPU faults). Each page word carries the
 * generation of the mapping it was written in, so a device read can be
 * checked: it may fail with EFAULT, but it must never return data of a
 * mapping that was already unmapped when the read began, nor a forked
 * child's writes. After each round the device's view must equal the CPU's.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "dmirror-util.h"

#define SLOTS 8
#define SLOT_PAGES 8
#define WORDS (SLOT_PAGES * PAGE / 8)
#define ROUNDS 5
#define ROUND_SECONDS 4
#define CHILD_MARK 0xdeadULL

static char *region;
static atomic_ulong gen[SLOTS];		/* generation now mapped */
static atomic_ulong gone[SLOTS];	/* newest generation unmapped */
static pthread_rwlock_t slot_lock[SLOTS];
static atomic_int stop;

static uint64_t *slot(int s)
{
	return (uint64_t *)(region + (size_t)s * SLOT_PAGES * PAGE);
}

static void stamp(int s, unsigned long g)
{
	uint64_t *w = slot(s);

	for (unsigned long i = 0; i < WORDS; i++)
		w[i] = (g << 32) | i;
}

/*
 * Whether @w is word @i of a generation newer than @gone_before as a copy
 * racing with its stamping can see it: every byte either the stamp's or
 * still 0 (the fresh page's). A device READ copies bytes, not words, and
 * with two CPUs the stamping thread can store the word between the copy's
 * loads of its low and high bytes. Stamps are written once per mapping, so
 * no other mix can appear.
 */
static int torn_stamp(uint64_t w, unsigned long i, unsigned long gone_before)
{
	uint64_t g = 0;

	/* The generation is the high half, less any bytes still 0: take the
	 * bytes there are, then require every byte of @w to match. */
	for (int b = 4; b < 8; b++)
		g |= w & (0xffULL << (8 * b));
	g >>= 32;
	/* No high byte yet: only a fresh page of the current mapping has
	 * that (generations start at 1, and a gone page is not written). */
	if (g && (g <= gone_before || g == CHILD_MARK))
		return 0;
	for (int b = 0; b < 8; b++) {
		uint64_t m = 0xffULL << (8 * b);

		if ((w & m) && (w & m) != ((g << 32 | i) & m))
			return 0;
	}
	return 1;
}

/* 0 if @buf is a legal device view of slot @s read when @gone_before was
 * the newest unmapped generation; else the offending word index + 1. */
static unsigned long bad_word(const uint64_t *buf, unsigned long gone_before)
{
	for (unsigned long i = 0; i < WORDS; i++) {
		uint64_t g = buf[i] >> 32;

		if (buf[i] == 0)	/* a fresh page, not yet stamped */
			continue;
		if ((buf[i] & 0xffffffff) == i && g != CHILD_MARK && g > gone_before)
			continue;
		if (!torn_stamp(buf[i], i, gone_before))
			return i + 1;
	}
	return 0;
}

/*
 * Each worker's device buffer is mapped before any thread starts: one
 * mapped while a mutator has a slot unmapped could land in that hole (it
 * has the slot's size), and the mutator's MAP_FIXED would then take it
 * over.
 */
struct worker {
	int fd;
	uint64_t *buf;
	unsigned int seed;
	unsigned long reads, faults_seen, bad, migrated;
	int err;
	/* The first bad read, for the log. */
	int bad_slot;
	unsigned long bad_index, bad_gone, bad_gen_now;
	uint64_t bad_value, bad_cpu;
};

/* Counts a read of slot @s into @buf; keeps the first bad one's details. */
static void judge(struct worker *w, int s, const uint64_t *buf, unsigned long before)
{
	unsigned long i = bad_word(buf, before);

	w->reads++;
	if (!i)
		return;
	if (!w->bad++) {
		w->bad_slot = s;
		w->bad_index = i - 1;
		w->bad_value = buf[i - 1];
		w->bad_gone = before;
		/* What the CPU sees there now, for the log. */
		pthread_rwlock_rdlock(&slot_lock[s]);
		w->bad_cpu = slot(s)[i - 1];
		w->bad_gen_now = gen[s];
		pthread_rwlock_unlock(&slot_lock[s]);
	}
}

static void *reader(void *p)
{
	struct worker *w = p;
	uint64_t *buf = w->buf;

	while (!stop) {
		int s = rand_r(&w->seed) % SLOTS;
		unsigned long before = gone[s];
		int r = dcmd(w->fd, rand_r(&w->seed) % 4 ? HMM_DMIRROR_READ :
			     HMM_DMIRROR_READ_UNLOCKED, slot(s), buf, SLOT_PAGES, NULL);

		if (r == 0) {
			judge(w, s, buf, before);
		} else if (r == -EFAULT || r == -EBUSY) {
			w->faults_seen++;
		} else {
			w->err = r;
		}
	}
	return NULL;
}

/* Device writes: copy the slot's own current contents back through the
 * device, under the slot's read lock so the generation cannot change. */
static void *writer(void *p)
{
	struct worker *w = p;
	uint64_t *buf = w->buf;

	while (!stop) {
		int s = rand_r(&w->seed) % SLOTS;
		int r;

		pthread_rwlock_rdlock(&slot_lock[s]);
		memcpy(buf, slot(s), SLOT_PAGES * PAGE);
		r = rand_r(&w->seed) % 8 ?
			dcmd(w->fd, HMM_DMIRROR_WRITE, slot(s), buf, SLOT_PAGES, NULL) :
			dcmd(w->fd, HMM_DMIRROR_EXCLUSIVE, slot(s), buf, SLOT_PAGES, NULL);
		pthread_rwlock_unlock(&slot_lock[s]);
		if (r && r != -EPERM && r != -EFAULT && r != -EBUSY)
			w->err = r;
	}
	return NULL;
}

/* Migration to either device's memory and back; the data the device reads
 * back after migrating must be the slot's, like any device read. */
static void *migrator(void *p)
{
	struct worker *w = p;
	uint64_t *buf = w->buf;

	while (!stop) {
		int s = rand_r(&w->seed) % SLOTS;
		unsigned long before = gone[s];
		int to_sys = rand_r(&w->seed) % 3 == 0;
		int r;

		pthread_rwlock_rdlock(&slot_lock[s]);
		r = dcmd(w->fd, to_sys ? HMM_DMIRROR_MIGRATE_TO_SYS : HMM_DMIRROR_MIGRATE_TO_DEV,
			 slot(s), buf, SLOT_PAGES, NULL);
		pthread_rwlock_unlock(&slot_lock[s]);
		if (r == 0 && !to_sys) {
			w->migrated++;
			judge(w, s, buf, before);
		} else if (r == -EFAULT || r == -EBUSY || r == -ENOENT) {
			/* Another device holds a page, or the CPU took it back. */
			w->faults_seen++;
		} else if (r) {
			w->err = r;
		}
	}
	return NULL;
}

static void *mutator(void *p)
{
	struct worker *w = p;

	while (!stop) {
		int s = rand_r(&w->seed) % SLOTS;
		int status;
		pid_t pid;

		pthread_rwlock_wrlock(&slot_lock[s]);
		switch (rand_r(&w->seed) % 4) {
		case 0: {	/* unmap, then a new generation */
			unsigned long g = gen[s];

			if (munmap(slot(s), SLOT_PAGES * PAGE))
				w->err = -errno;
			gone[s] = g;
			if (mmap(slot(s), SLOT_PAGES * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				w->err = -errno;
			stamp(s, g + 1);
			gen[s] = g + 1;
			break;
		}
		case 1:		/* protection changes, same data */
			if (mprotect(slot(s), SLOT_PAGES * PAGE, PROT_READ))
				w->err = -errno;
			usleep(200);
			if (mprotect(slot(s), SLOT_PAGES * PAGE, PROT_READ | PROT_WRITE))
				w->err = -errno;
			break;
		case 2:		/* a child writes its COW copy */
			pid = fork();
			if (pid == 0) {
				for (unsigned long i = 0; i < WORDS; i += 64)
					slot(s)[i] = (CHILD_MARK << 32) | i;
				_exit(0);
			}
			if (pid > 0)
				waitpid(pid, &status, 0);
			break;
		default:	/* the CPU touches: revokes device-exclusive */
			stamp(s, gen[s]);
			break;
		}
		pthread_rwlock_unlock(&slot_lock[s]);
	}
	return NULL;
}

/* Short-lived processes that mirror themselves and exit mid-use. */
static void *exiter(void *p)
{
	struct worker *w = p;

	while (!stop) {
		int status;
		pid_t pid = fork();

		if (pid == 0) {
			char *m = map_anon(16), *b = map_anon(16);
			int fd = dev_open(rand_r(&w->seed) % 2);

			fill(m, 16, 1);
			if (fork() == 0) {	/* shares the file, exits at once */
				_exit(0);
			}
			dcmd(fd, HMM_DMIRROR_READ, m, b, 16, NULL);
			dcmd(fd, HMM_DMIRROR_EXCLUSIVE, m, b, 4, NULL);
			dcmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, m + 4 * PAGE, b, 8, NULL);
			_exit(0);	/* exit with the mirror populated */
		}
		if (pid > 0)
			waitpid(pid, &status, 0);
		while (waitpid(-1, &status, WNOHANG) > 0)
			;
	}
	return NULL;
}

#define MAX_WORKERS 32

FIXTURE(race) {
	int unused;
};

FIXTURE_SETUP(race)
{
}

FIXTURE_TEARDOWN(race)
{
}

TEST_F_TIMEOUT(race, stress, ROUNDS * ROUND_SECONDS * 10 + 60)
{
	/* Two readers, a writer, two mutators, an exiter, two migrators, and
	 * one more reader per CPU beyond eight: never fewer threads than CPUs. */
	struct worker w[MAX_WORKERS];
	pthread_t t[MAX_WORKERS];
	void *(*fn[MAX_WORKERS])(void *) = { reader, reader, writer, mutator, mutator,
					     exiter, migrator, migrator };
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int n = cpus > 8 ? (cpus < MAX_WORKERS ? cpus : MAX_WORKERS) : 8;
	uint64_t *buf = map_anon(SLOTS * SLOT_PAGES);
	int fd0 = dev_open(0), fd1 = dev_open(1);
	unsigned long reads = 0, faults = 0, migrated = 0;

	ASSERT_GE(fd0, 0);
	ASSERT_GE(fd1, 0);
	region = map_anon(SLOTS * SLOT_PAGES);
	ASSERT_NE(region, NULL);
	for (int i = 8; i < n; i++)
		fn[i] = reader;
	TH_LOG("%d threads on %ld CPUs", n, cpus);
	for (int i = 0; i < n; i++) {
		w[i].buf = map_anon(SLOT_PAGES);
		ASSERT_NE(w[i].buf, NULL);
	}
	for (int s = 0; s < SLOTS; s++) {
		pthread_rwlock_init(&slot_lock[s], NULL);
		gen[s] = 1;
		stamp(s, 1);
	}
	for (int round = 0; round < ROUNDS; round++) {
		stop = 0;
		for (int i = 0; i < n; i++) {
			w[i] = (struct worker){ .fd = i % 2 ? fd1 : fd0, .buf = w[i].buf,
						.seed = 1000 * round + i };
			ASSERT_EQ(pthread_create(&t[i], NULL, fn[i], &w[i]), 0);
		}
		sleep(ROUND_SECONDS);
		stop = 1;
		for (int i = 0; i < n; i++) {
			pthread_join(t[i], NULL);
			EXPECT_EQ(w[i].err, 0);
			EXPECT_EQ(w[i].bad, 0)
				TH_LOG("round %d, thread %d: %lu stale or foreign reads; first: slot %d word %lu = %#llx, generation %lu was gone; the CPU then saw %#llx in generation %lu",
				       round, i, w[i].bad, w[i].bad_slot, w[i].bad_index,
				       (unsigned long long)w[i].bad_value, w[i].bad_gone,
				       (unsigned long long)w[i].bad_cpu, w[i].bad_gen_now);
			reads += w[i].reads;
			faults += w[i].faults_seen;
			migrated += w[i].migrated;
		}
		/* Quiescent: both devices must see exactly what the CPU sees. */
		for (int d = 0; d < 2; d++) {
			memset(buf, 0, SLOTS * SLOT_PAGES * PAGE);
			int r = dcmd(d ? fd1 : fd0, HMM_DMIRROR_READ, region, buf,
				     SLOTS * SLOT_PAGES, NULL);

			if (r) {
				unsigned char snap[SLOTS * SLOT_PAGES];
				FILE *maps = fopen("/proc/self/maps", "r");
				char line[256];

				TH_LOG("region %p", region);
				while (maps && fgets(line, sizeof(line), maps))
					TH_LOG("maps: %s", line);
				if (maps)
					fclose(maps);

				dcmd(d ? fd1 : fd0, HMM_DMIRROR_SNAPSHOT, region, snap,
				     SLOTS * SLOT_PAGES, NULL);
				for (int p = 0; p < SLOTS * SLOT_PAGES; p++)
					TH_LOG("device %d: page %d snapshot %#x", d, p, snap[p]);
			}
			ASSERT_EQ(r, 0);
			EXPECT_EQ(memcmp(buf, region, SLOTS * SLOT_PAGES * PAGE), 0);
		}
	}
	TH_LOG("%lu checked device reads (%lu after a migration to the device), %lu EFAULT/EBUSY/ENOENT during races",
	       reads, migrated, faults);
	EXPECT_GT(reads, 0);
	EXPECT_GT(migrated, 0);
	for (int i = 0; i < n; i++)
		munmap(w[i].buf, SLOT_PAGES * PAGE);
	close(fd0);
	close(fd1);
}

TEST_HARNESS_MAIN
