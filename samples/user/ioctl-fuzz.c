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
 * madvise(DONTNEED), fork, map device buffers and close/reopen underneath.
 * Every return must be 0 or an errno that command's own list allows (the
 * table "Errors by command" in Documentation/uapi.rst, mirrored in
 * cmd_table[] below). Stops after CALLS calls or SECONDS seconds and fails
 * if it did not reach CALLS, so that "no splat" always means "no splat
 * after CALLS calls".
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
static unsigned long max_calls;
static time_t deadline;

/*
 * What each command may return besides 0: the table "Errors by command" in
 * Documentation/uapi.rst, entry for entry; change both together. A command
 * struct that cannot be read (NULL or kernel argp) is EFAULT alone, and a
 * number not listed here is ENOTTY alone, whatever the arguments: the
 * driver looks at the number before the struct, and at the struct before
 * anything else.
 */
#define MAX_ERRS 8
struct cmd_info {
	unsigned long cmd;
	const char *name;
	int errs[MAX_ERRS];	/* 0-terminated */
};

#define HMM_DMIRROR_STATS_V1 _IOR('H', 0x41, __u64[5])
#define HMM_DMIRROR_STATS_V2 _IOR('H', 0x41, __u64[9])

static const struct cmd_info cmd_table[] = {
	{ HMM_DMIRROR_READ, "READ", { EFAULT, EINVAL, EBUSY, ENOMEM, EINTR } },
	{ HMM_DMIRROR_WRITE, "WRITE", { EFAULT, EINVAL, EPERM, EBUSY, ENOMEM, EINTR } },
	{ HMM_DMIRROR_MIGRATE_TO_DEV, "MIGRATE_TO_DEV",
	  { EFAULT, EINVAL, ENOENT, EBUSY, ENOMEM, EINTR } },
	{ HMM_DMIRROR_MIGRATE_TO_SYS, "MIGRATE_TO_SYS", { EFAULT, EINVAL, ENOMEM, EINTR } },
	{ HMM_DMIRROR_SNAPSHOT, "SNAPSHOT", { EFAULT, EINVAL, EBUSY, ENOMEM, EINTR } },
	{ HMM_DMIRROR_EXCLUSIVE, "EXCLUSIVE",
	  { EFAULT, EINVAL, EBUSY, ENOMEM, EINTR, EOPNOTSUPP } },
	{ HMM_DMIRROR_CHECK_EXCLUSIVE, "CHECK_EXCLUSIVE", { EFAULT, EINVAL, EPERM } },
	{ HMM_DMIRROR_RELEASE, "RELEASE", { EFAULT, ENOMEM } },
	{ HMM_DMIRROR_FLAGS, "FLAGS", { EFAULT } },
	{ HMM_DMIRROR_READ_UNLOCKED, "READ_UNLOCKED", { EFAULT, EINVAL, EBUSY, ENOMEM, EINTR } },
	{ HMM_DMIRROR_ATOMIC_ADD, "ATOMIC_ADD",
	  { EFAULT, EINVAL, EBUSY, ENOMEM, EINTR, EOPNOTSUPP } },
	{ HMM_DMIRROR_STATS, "STATS", { EFAULT } },
	{ HMM_DMIRROR_STATS_V1, "STATS_V1", { EFAULT } },
	{ HMM_DMIRROR_STATS_V2, "STATS_V2", { EFAULT } },
	{ HMM_DEVBUF_CREATE, "DEVBUF_CREATE", { EFAULT, EINVAL, ENOSPC, ENOMEM } },
	{ HMM_DEVBUF_WALK, "DEVBUF_WALK", { EFAULT, EINVAL, ENOMEM, EINTR, EIO } },
	{ HMM_DEVBUF_CLEAN, "DEVBUF_CLEAN", { EFAULT, EINVAL, ENOMEM } },
	{ HMM_DEVBUF_ZAP, "DEVBUF_ZAP", { EFAULT, EINVAL } },
	{ HMM_DEVBUF_SET_CACHE, "DEVBUF_SET_CACHE", { EFAULT, EINVAL, ENOMEM } },
	{ HMM_DEVBUF_STATS, "DEVBUF_STATS", { EFAULT } },
	/* ENOTTY on every device but the svm ones. */
	{ HMM_SVM_RANGES, "SVM_RANGES", { EFAULT, EINVAL, ENOMEM, ENOTTY } },
	{ HMM_SVM_STATS, "SVM_STATS", { EFAULT, ENOTTY } },
	{ HMM_SVM_PREFETCH, "SVM_PREFETCH",
	  { EFAULT, EINVAL, EBUSY, ENOMEM, EINTR, ENOTTY } },
};

#define NCMDS (sizeof(cmd_table) / sizeof(cmd_table[0]))
/* Statistics slot of the numbers that are not in cmd_table[]. */
#define OTHER NCMDS
/* Returns by errno: every Linux errno is below 134 (EHWPOISON is 133);
 * the last slot counts anything above, such as a leaked ERESTARTSYS. */
#define NERRNO 135
/* Undocumented returns reported in full; the rest are only counted. */
#define MAX_REPORTS 10UL

static const int bad_argp_errs[MAX_ERRS] = { EFAULT };
static const int unknown_errs[MAX_ERRS] = { ENOTTY };

/* The offset of the last device buffer created, so that buffer commands
 * name a real buffer half of the time. */
static atomic_ulong devbuf_off;
/* The file slot that created it: only that file can name the buffer. */
static atomic_uint devbuf_slot;
static atomic_ulong devbuf_created, devbuf_ok_cmds, devbuf_maps;
/* Per cmd_table[] entry (and OTHER): calls, microseconds, returns by errno
 * (0 for success). */
static atomic_ulong nr_calls[NCMDS + 1], nr_us[NCMDS + 1];
static atomic_ulong nr_errno[NCMDS + 1][NERRNO];
/* Undocumented returns seen; the first MAX_REPORTS are printed. */
static atomic_ulong nr_bad;
/*
 * Bumped by a racer before it closes fds[i] and again once the new file is
 * in place: odd while the slot is being replaced. A worker whose ioctl
 * overlapped that gets EBADF from the VFS, not from the driver.
 */
static atomic_uint fd_gen[NFDS];

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

/*
 * The VFS answers some numbers itself for every file, before the driver
 * sees them (fs/ioctl.c: FIOCLEX, FIONBIO, FIGETBSZ, FIFREEZE, FICLONE,
 * FS_IOC_*, ...), with errnos of its own: leave out their types.
 */
static int vfs_cmd(unsigned long cmd)
{
	switch (_IOC_TYPE(cmd)) {
	case 0: case 'T': case 'f': case 'X': case 0x15: case 0x94:
		return 1;
	}
	return 0;
}

static unsigned long pick_cmd(uint64_t *s)
{
	unsigned long cmd;

	switch (rnd(s) % 16) {
	case 0:						/* anything */
		do
			cmd = rnd(s) & 0xffffffff;
		while (vfs_cmd(cmd));
		return cmd;
	case 1: return _IOWR('H', rnd(s) % 256, struct hmm_dmirror_cmd);
	case 2: return _IOWR('H', 0, char[8]);		/* wrong size */
	default: return cmd_table[rnd(s) % NCMDS].cmd;
	}
}

static const struct cmd_info *find_cmd(unsigned long cmd)
{
	for (unsigned int i = 0; i < NCMDS; i++)
		if (cmd_table[i].cmd == cmd)
			return &cmd_table[i];
	return NULL;
}

static int listed(const int *errs, int e)
{
	for (int i = 0; i < MAX_ERRS && errs[i]; i++)
		if (errs[i] == e)
			return 1;
	return 0;
}

static const char *errname(int e)
{
	const char *n = e ? strerrorname_np(e) : "ok";

	return n ? n : "other";
}

/* Writes the names of a 0-terminated list of errnos into buf. */
static const char *errlist(const int *errs, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = 0;
	for (int i = 0; i < MAX_ERRS && errs[i] && n < len; i++)
		n += snprintf(buf + n, len - n, "%s%s", i ? " " : "", errname(errs[i]));
	return buf;
}

static void *worker(void *arg)
{
	uint64_t s = (uintptr_t)arg;
	/* Room for any command struct (the largest is 72 bytes), since
	 * sizes are fuzzed too. */
	uint64_t cmd[16];

	while (!stop) {
		unsigned long n = atomic_fetch_add(&calls, 1);
		unsigned long req = pick_cmd(&s);
		const struct cmd_info *ci = find_cmd(req);
		/* Buffer commands go to the buffer's own file half of the time. */
		unsigned int slot = _IOC_NR(req) >= 0x51 && _IOC_NR(req) <= 0x54 && rnd(&s) % 2 ?
				    atomic_load(&devbuf_slot) : rnd(&s) % NFDS;
		unsigned int gen = atomic_load(&fd_gen[slot]);
		int fd = fds[slot];
		void *argp = cmd;
		const int *errs;
		struct timespec t0, t1;
		unsigned int idx = ci ? (unsigned int)(ci - cmd_table) : OTHER;
		int r, e;

		if (n >= max_calls || time(NULL) >= deadline) {
			stop = 1;
			break;
		}
		memset(cmd, 0, sizeof(cmd));
		cmd[0] = pick_addr(&s);
		cmd[1] = req == HMM_DMIRROR_ATOMIC_ADD ? rnd(&s) : pick_ptr(&s);
		cmd[2] = pick_npages(&s);
		cmd[3] = rnd(&s);
		cmd[4] = rnd(&s);
		cmd[5] = rnd(&s) % 2 ? rnd(&s) % 64 : rnd(&s);
		cmd[6] = rnd(&s);
		cmd[7] = rnd(&s);
		if (req == HMM_SVM_RANGES && rnd(&s) % 2) {
			cmd[2] = rnd(&s) % (HMM_SVM_RANGES_MAX + 64);
		} else if (req == HMM_SVM_PREFETCH) {
			/* addr, npages, location (mostly valid) */
			cmd[1] = rnd(&s) % 2 ? rnd(&s) % 64 : cmd[2];
			cmd[2] = rnd(&s) % 8 ? rnd(&s) % 2 : rnd(&s);
		} else if (req == HMM_DEVBUF_CREATE) {
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
		atomic_fetch_add(&nr_calls[idx], 1);
		atomic_fetch_add(&nr_us[idx], (t1.tv_sec - t0.tv_sec) * 1000000 +
				 (t1.tv_nsec - t0.tv_nsec) / 1000);
		atomic_fetch_add(&nr_errno[idx][e < NERRNO ? e : NERRNO - 1], 1);
		if (!r && req == HMM_DEVBUF_CREATE && argp == cmd) {
			atomic_store(&devbuf_off, cmd[1]);
			atomic_store(&devbuf_slot, slot);
			atomic_fetch_add(&devbuf_created, 1);
		} else if (!r && _IOC_NR(req) >= 0x51 && _IOC_NR(req) <= 0x54) {
			atomic_fetch_add(&devbuf_ok_cmds, 1);
		}
		if (!e)
			continue;
		/* A racer closed the file under this call. */
		if (e == EBADF && (fd < 0 || gen % 2 || atomic_load(&fd_gen[slot]) != gen))
			continue;
		errs = !ci ? unknown_errs : argp != cmd ? bad_argp_errs : ci->errs;
		/* A command a device does not have fails before it reads argp. */
		if (listed(errs, e) || (ci && e == ENOTTY && listed(ci->errs, ENOTTY)))
			continue;
		if (atomic_fetch_add(&nr_bad, 1) < MAX_REPORTS) {
			char buf[128];

			fprintf(stderr,
				"ioctl-fuzz: UNDOCUMENTED: %s (%#lx) returned %s (%s); allowed%s: %s; "
				"argp %p words %#llx %#llx %#llx %#llx %#llx %#llx\n",
				ci ? ci->name : "unknown number", req, errname(e), strerror(e),
				ci && argp != cmd ? " with a bad argp" : "",
				errlist(errs, buf, sizeof(buf)), argp,
				(unsigned long long)cmd[0], (unsigned long long)cmd[1],
				(unsigned long long)cmd[2], (unsigned long long)cmd[3],
				(unsigned long long)cmd[4], (unsigned long long)cmd[5]);
		}
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
			int old;

			atomic_fetch_add(&fd_gen[i], 1);
			old = atomic_exchange(&fds[i], -1);
			close(old);
			fds[i] = dev_open(i % 2);
			atomic_fetch_add(&fd_gen[i], 1);
			break;
		}
		case 5: {
			/* Map the last device buffer (only its own file can),
			 * write it, fork a writer, unmap: walks see VMAs come
			 * and go. */
			int fd = fds[rnd(&s) % 2 ? atomic_load(&devbuf_slot) : rnd(&s) % NFDS];
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
	int i, workers, racers, bad;

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
	bad = nr_bad != 0;
	printf("ioctl-fuzz: seed %lu: %lu calls in %ld s, ", seed,
	       (unsigned long)calls, (long)(time(NULL) - start));
	if (bad)
		printf("%lu UNDOCUMENTED ERRNOS (the first %lu reported above)\n",
		       (unsigned long)nr_bad,
		       nr_bad < MAX_REPORTS ? (unsigned long)nr_bad : MAX_REPORTS);
	else
		printf("every errno documented for its command\n");
	printf("ioctl-fuzz: device buffers: %lu created, %lu successful buffer commands, %lu mapped\n",
	       (unsigned long)devbuf_created, (unsigned long)devbuf_ok_cmds,
	       (unsigned long)devbuf_maps);
	/* Per command: how often, how long, and what came back. */
	for (i = 0; i <= (int)OTHER; i++) {
		char line[512] = "";
		size_t n = 0;

		if (!nr_calls[i])
			continue;
		for (int e = 0; e < NERRNO && n < sizeof(line); e++)
			if (nr_errno[i][e])
				n += snprintf(line + n, sizeof(line) - n, " %s %lu",
					      errname(e), (unsigned long)nr_errno[i][e]);
		printf("ioctl-fuzz: %s: %lu calls, %lu us each;%s\n",
		       i < (int)OTHER ? cmd_table[i].name : "other numbers",
		       (unsigned long)nr_calls[i],
		       (unsigned long)(nr_us[i] / nr_calls[i]), line);
	}
	printf("%s 1 ioctl-fuzz\n", !bad && calls >= max_calls ? "ok" : "not ok");
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:0 error:0\n",
	       !bad && calls >= max_calls, bad || calls < max_calls);
	return bad || calls < max_calls;
}
