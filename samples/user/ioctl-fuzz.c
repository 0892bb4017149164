// SPDX-License-Identifier: GPL-2.0
/*
 * Seeded, bounded ioctl fuzzer for the mirror devices.
 *
 * Usage: ioctl-fuzz SEED SECONDS CALLS
 *
 * Worker threads throw random and adversarial commands at the devices
 * (unaligned, overflowing, kernel and unmapped addresses, huge npages, NULL
 * and short buffers, unknown numbers; device buffers created, walked,
 * cleaned, zapped) while racer threads munmap, mmap, mprotect,
 * madvise(DONTNEED), fork, map device buffers and close/reopen underneath. Every
 * return must be 0 or a documented errno. Stops after CALLS calls or
 * SECONDS seconds and fails if it did not reach CALLS, so that "no splat"
 * always means "no splat after CALLS calls".
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "dmirror-util.h"

#define REGION_PAGES 64
#define NFDS 4
/* Workers and racers: at least these, and at least one per CPU each, so
 * that on a multi-CPU guest they race in parallel, not by preemption. */
#define WORKERS 3
#define RACERS 2
#define MAX_THREADS 64

static char *region;		/* REGION_PAGES, mutated by the racers */
static char *buffer;		/* a stable buffer for ptr */
static char *guard;		/* PROT_NONE page after a one-page buffer */
static atomic_int fds[NFDS];
static atomic_ulong calls;
static atomic_int stop;
static atomic_int bad;
static unsigned long max_calls;
static time_t deadline;

static const int documented[] = {
	0, EINVAL, EFAULT, EPERM, EBUSY, ENOMEM, EINTR, ENOTTY, EOPNOTSUPP, ENOENT,
	EBADF, ENOSPC,
};

/* The offset of the last device buffer created, so that buffer commands
 * name a real buffer half of the time. */
static atomic_ulong devbuf_off;
static atomic_ulong devbuf_created, devbuf_ok_cmds, devbuf_maps;
/* Calls and microseconds spent per command number (other numbers: 256). */
static atomic_ulong nr_calls[257], nr_us[257];

static uint64_t rnd(uint64_t *s)
{
	/* splitmix64: reproducible from the seed alone. */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t pick_addr(uint64_t *s)
{
	uint64_t page = (uintptr_t)region + (rnd(s) % (REGION_PAGES + 4)) * PAGE;

	switch (rnd(s) % 12) {
	case 0: return 0;
	case 1: return page + 1 + rnd(s) % (PAGE - 1);	/* unaligned */
	case 2: return 0xffff888000000000ULL;		/* kernel */
	case 3: return 0xffffffff81000000ULL;
	case 4: return rnd(s) % 2 ? 0x00007ffffffff000ULL	/* top of 4-level user space */
			: 0x00fffffffffff000ULL;		/* and of 5-level */
	case 5: return -PAGE;				/* overflows */
	case 6: return rnd(s);
	case 7: return (uintptr_t)buffer;
	default: return page;
	}
}

static uint64_t pick_npages(uint64_t *s)
{
	switch (rnd(s) % 10) {
	case 0: return 0;
	case 1: return 1ULL << 40;
	case 2: return 1ULL << 52;
	case 3: return ~0ULL;
	case 4: return rnd(s);
	default: return 1 + rnd(s) % 32;
	}
}

static uint64_t pick_ptr(uint64_t *s)
{
	switch (rnd(s) % 8) {
	case 0: return 0;
	case 1: return 0xffff888000000000ULL;
	case 2: return (uintptr_t)guard - PAGE;		/* short: 1 page */
	case 3: return pick_addr(s);
	default: return (uintptr_t)buffer;
	}
}

static unsigned long pick_cmd(uint64_t *s)
{
	static const unsigned long cmds[] = {
		HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_MIGRATE_TO_DEV,
		HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_SNAPSHOT,
		HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_CHECK_EXCLUSIVE,
		HMM_DMIRROR_RELEASE, HMM_DMIRROR_FLAGS, HMM_DMIRROR_READ_UNLOCKED,
		HMM_DMIRROR_ATOMIC_ADD, HMM_DEVBUF_CREATE, HMM_DEVBUF_WALK,
		HMM_DEVBUF_CLEAN, HMM_DEVBUF_ZAP, HMM_DEVBUF_SET_CACHE,
	};

	switch (rnd(s) % 16) {
	case 0: return rnd(s) & 0xffffffff;		/* anything */
	case 1: return _IOWR('H', rnd(s) % 256, struct hmm_dmirror_cmd);
	case 2: return _IOWR('H', 0, char[8]);		/* wrong size */
	default: return cmds[rnd(s) % (sizeof(cmds) / sizeof(cmds[0]))];
	}
}

static void *worker(void *arg)
{
	uint64_t s = (uintptr_t)arg;
	/* Room for any command struct, since sizes are fuzzed too. */
	uint64_t cmd[8];

	while (!stop) {
		unsigned long n = atomic_fetch_add(&calls, 1);
		unsigned long req = pick_cmd(&s);
		int fd = fds[rnd(&s) % NFDS];
		void *argp = cmd;
		struct timespec t0, t1;
		int r, e;

		if (n >= max_calls || time(NULL) >= deadline) {
			stop = 1;
			break;
		}
		cmd[0] = pick_addr(&s);
		cmd[1] = req == HMM_DMIRROR_ATOMIC_ADD ? rnd(&s) : pick_ptr(&s);
		cmd[2] = pick_npages(&s);
		cmd[3] = rnd(&s);
		cmd[4] = rnd(&s);
		cmd[5] = rnd(&s) % 2 ? rnd(&s) % 64 : rnd(&s);
		cmd[6] = rnd(&s);
		cmd[7] = rnd(&s);
		if (req == HMM_DEVBUF_CREATE) {
			cmd[0] = rnd(&s) % 4 ? rnd(&s) % 1024 : cmd[2];
		} else if (_IOC_NR(req) >= 0x51 && _IOC_NR(req) <= 0x54 && rnd(&s) % 2) {
			/* A real buffer; small ranges; entries in the buffer. */
			cmd[0] = atomic_load(&devbuf_off);
			cmd[1] = rnd(&s) % 2 ? rnd(&s) % 1024 : cmd[1];
			cmd[2] = rnd(&s) % 2 ? rnd(&s) % 1024 : cmd[2];
			cmd[3] = rnd(&s) % 4;
			cmd[4] = pick_ptr(&s);
		}
		if (rnd(&s) % 32 == 0)
			argp = rnd(&s) % 2 ? NULL : (void *)0xffff888000000000ULL;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = ioctl(fd, req, argp);
		e = r ? errno : 0;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		{
			unsigned int nr = _IOC_TYPE(req) == 'H' ? _IOC_NR(req) : 256;

			atomic_fetch_add(&nr_calls[nr], 1);
			atomic_fetch_add(&nr_us[nr], (t1.tv_sec - t0.tv_sec) * 1000000 +
					 (t1.tv_nsec - t0.tv_nsec) / 1000);
		}
		if (!r && req == HMM_DEVBUF_CREATE && argp == cmd) {
			atomic_store(&devbuf_off, cmd[1]);
			atomic_fetch_add(&devbuf_created, 1);
		} else if (!r && _IOC_NR(req) >= 0x51 && _IOC_NR(req) <= 0x54) {
			atomic_fetch_add(&devbuf_ok_cmds, 1);
		}
		for (unsigned int i = 0; i < sizeof(documented) / sizeof(documented[0]); i++)
			if (e == documented[i])
				goto ok;
		fprintf(stderr, "undocumented errno %d (%s) from cmd %#lx addr %#llx npages %#llx\n",
			e, strerror(e), req, (unsigned long long)cmd[0],
			(unsigned long long)cmd[2]);
		bad = 1;
ok:
		;
	}
	return NULL;
}

/* Racers touch pages that other racers unmap or protect meanwhile. */
static __thread sigjmp_buf touch_env;
static __thread volatile sig_atomic_t touching;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!touching) {
		fprintf(stderr, "ioctl-fuzz: signal %d at %p outside a racer touch\n",
			sig, si->si_addr);
		signal(sig, SIG_DFL);
		raise(sig);
	}
	siglongjmp(touch_env, 1);
}

static void touch(char *p, unsigned long len)
{
	if (sigsetjmp(touch_env, 1) == 0) {
		touching = 1;
		for (unsigned long i = 0; i < len; i++)
			((volatile char *)p)[i * PAGE] = (char)i;
	}
	touching = 0;
}

static void *racer(void *arg)
{
	uint64_t s = (uintptr_t)arg;

	while (!stop) {
		struct timespec t0, t1;
		long us;
		unsigned long first = rnd(&s) % REGION_PAGES;
		unsigned long len = 1 + rnd(&s) % (REGION_PAGES - first);
		char *p = region + first * PAGE;
		int status;
		pid_t pid;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		switch (rnd(&s) % 8) {
		case 0:
			munmap(p, len * PAGE);
			mmap(p, len * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			break;
		case 1:
			mprotect(p, len * PAGE, rnd(&s) % 2 ? PROT_READ : PROT_NONE);
			usleep(100);
			mprotect(p, len * PAGE, PROT_READ | PROT_WRITE);
			break;
		case 2:
			madvise(p, len * PAGE, MADV_DONTNEED);
			break;
		case 3:
			pid = fork();
			if (pid == 0) {
				/* COW some pages, then leave. */
				touch(p, len);
				_exit(0);
			}
			if (pid > 0)
				waitpid(pid, &status, 0);
			break;
		case 4: {
			int i = rnd(&s) % NFDS;
			int old = atomic_exchange(&fds[i], -1);

			close(old);
			fds[i] = dev_open(i % 2);
			break;
		}
		case 5: {
			/* Map the last device buffer (only its own file can),
			 * write it, fork a writer, unmap: walks see VMAs come
			 * and go. */
			int fd = fds[rnd(&s) % NFDS];
			char *b = mmap(NULL, len * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
				       fd, atomic_load(&devbuf_off));

			if (b == MAP_FAILED)
				break;
			atomic_fetch_add(&devbuf_maps, 1);
			touch(b, len);
			pid = fork();
			if (pid == 0) {
				touch(b, len);
				_exit(0);
			}
			if (pid > 0)
				waitpid(pid, &status, 0);
			munmap(b, len * PAGE);
			break;
		}
		default:
			/* Touch pages so there is something to mirror. */
			touch(p, len);
			break;
		}
		/*
		 * Race often, but leave the workers most of the CPU: on a debug
		 * kernel a fork or munmap costs a hundred times more than an
		 * ioctl, so sleep four times as long as the operation took.
		 */
		clock_gettime(CLOCK_MONOTONIC, &t1);
		us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
		usleep(us * 4 > 500 ? us * 4 : 500);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t w[MAX_THREADS], r[MAX_THREADS];
	unsigned long seed, seconds;
	time_t start = time(NULL);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int i, workers, racers;

	if (argc != 4) {
		fprintf(stderr, "usage: %s SEED SECONDS CALLS\n", argv[0]);
		return 2;
	}
	seed = strtoul(argv[1], NULL, 0);
	seconds = strtoul(argv[2], NULL, 0);
	max_calls = strtoul(argv[3], NULL, 0);
	deadline = start + seconds;
	{
		struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER };

		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
	}
	region = map_anon(REGION_PAGES + 4);
	buffer = map_anon(64);
	guard = map_anon(2);
	if (!region || !buffer || !guard)
		return 2;
	guard += PAGE;
	mprotect(guard, PAGE, PROT_NONE);
	munmap(region + REGION_PAGES * PAGE, 4 * PAGE);	/* an unmapped tail */
	for (i = 0; i < NFDS; i++) {
		fds[i] = dev_open(i % 2);
		if (fds[i] < 0) {
			perror(dev_path(i % 2));
			return 2;
		}
	}
	workers = cpus > WORKERS ? (cpus < MAX_THREADS ? cpus : MAX_THREADS) : WORKERS;
	racers = cpus > RACERS ? (cpus < MAX_THREADS ? cpus : MAX_THREADS) : RACERS;
	printf("ioctl-fuzz: %d workers and %d racers on %ld CPUs\n", workers, racers, cpus);
	for (i = 0; i < workers; i++)
		pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)(seed * 131 + i));
	for (i = 0; i < racers; i++)
		pthread_create(&r[i], NULL, racer, (void *)(uintptr_t)(seed * 977 + i));
	for (i = 0; i < workers; i++)
		pthread_join(w[i], NULL);
	stop = 1;
	for (i = 0; i < racers; i++)
		pthread_join(r[i], NULL);
	for (i = 0; i < NFDS; i++)
		close(fds[i]);
	if (calls > max_calls)
		calls = max_calls;
	printf("ioctl-fuzz: seed %lu: %lu calls in %ld s, %s\n", seed,
	       (unsigned long)calls, (long)(time(NULL) - start),
	       bad ? "UNDOCUMENTED ERRNO SEEN" : "every errno documented");
	printf("ioctl-fuzz: device buffers: %lu created, %lu successful buffer commands, %lu mapped\n",
	       (unsigned long)devbuf_created, (unsigned long)devbuf_ok_cmds,
	       (unsigned long)devbuf_maps);
	for (i = 0; i <= 256; i++)
		if (nr_calls[i])
			printf("ioctl-fuzz: cmd %#x: %lu calls, %lu us each\n", i,
			       (unsigned long)nr_calls[i],
			       (unsigned long)(nr_us[i] / nr_calls[i]));
	printf("%s 1 ioctl-fuzz\n", !bad && calls >= max_calls ? "ok" : "not ok");
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n",
	       !bad && calls >= max_calls, bad || calls < max_calls);
	return bad || calls < max_calls;
}
