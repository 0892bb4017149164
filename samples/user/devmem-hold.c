// SPDX-License-Identifier: GPL-2.0
/*
 * devmem-hold DEV: leaves data in device memory with no file open, for the
 * unload test. Maps small pages and a THP, fills them, migrates them to DEV
 * with KEEP_ON_CLOSE, checks SNAPSHOT says so, closes DEV and says
 * "holding". On SIGUSR1 (sent after rmmod) it checks that every byte came
 * back and prints a kselftest line. Exit status 0 on success.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "dmirror-util.h"

#define PMD (512 * PAGE)
#define SMALL 64UL

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static int fail(const char *what)
{
	printf("not ok 1 devmem.unload_moves_data_back # %s\n", what);
	return 1;
}

int main(int argc, char **argv)
{
	unsigned long n = SMALL + 512;
	char *raw, *thp, *small, *buf;
	unsigned char *snap;
	sigset_t set, old;
	int fd;

	if (argc != 2)
		return 2;
	setenv("DEV0", argv[1], 1);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	signal(SIGUSR1, on_usr1);
	raw = mmap(NULL, 2 * PMD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	small = map_anon(SMALL);
	buf = map_anon(n);
	snap = malloc(n);
	fd = dev_open(0);
	if (raw == MAP_FAILED || !small || !buf || !snap || fd < 0)
		return fail("setup");
	thp = (char *)(((uintptr_t)raw + PMD - 1) & ~(PMD - 1));
	madvise(thp, PMD, MADV_HUGEPAGE);
	fill(small, SMALL, 21);
	fill(thp, 512, 22);
	if (dcmd(fd, HMM_DMIRROR_FLAGS, small, NULL, HMM_DMIRROR_FLAG_KEEP_ON_CLOSE, NULL) ||
	    dcmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, small, buf, SMALL, NULL) ||
	    dcmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, thp, buf, 512, NULL))
		return fail("migrate");
	if (dcmd(fd, HMM_DMIRROR_SNAPSHOT, small, snap, SMALL, NULL) ||
	    dcmd(fd, HMM_DMIRROR_SNAPSHOT, thp, snap + SMALL, 512, NULL))
		return fail("snapshot");
	for (unsigned long i = 0; i < n; i++)
		if (!(snap[i] & HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL))
			return fail("not in device memory");
	close(fd);
	printf("holding\n");
	fflush(stdout);
	while (!go)
		sigsuspend(&old);
	/* The module is gone: the data must be back in system memory. */
	if (!check(small, SMALL, 21) || !check(thp, 512, 22))
		return fail("data lost");
	printf("ok 1 devmem.unload_moves_data_back\n");
	return 0;
}
