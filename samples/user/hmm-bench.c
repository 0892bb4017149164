// SPDX-License-Identifier: GPL-2.0
/*
 * hmm-bench WORKLOAD MIB DEVICE: one measurement of one workload against
 * one driver, through the test_hmm ioctl ABI both drivers speak. Prints
 * "result WORKLOAD MIB VALUE UNIT". scripts/bench.sh runs it for both
 * drivers in one boot, repeats, and compares medians. The devbuf_*
 * workloads use rust_hmm's own device buffers, the dma_* workloads its
 * DMA mirror (sized in pages); neither has a C counterpart.
 *
 * read_fault, warm_read, munmap and mprotect also come as NAME_thp: the
 * same on 2 MiB aligned MADV_HUGEPAGE memory, backed by transparent huge
 * pages. Those print "thp MIB PMD_PAGES PAGES" (pages the CPU maps with
 * PMDs, from SNAPSHOT), and every READ workload prints, for a driver with
 * the STATS command, "leaves WORKLOAD MIB HUGE SMALL" (device page table
 * leaves after the READ).
 *
 * coherent_NAME runs NAME against a device-coherent device (DEVICE is
 * /dev/hmm_dmirror2 or the like) and reports it as coherent_NAME; there
 * migrate_cpu_fault measures CPU reads of pages left in device memory,
 * which no fault moves. svm_NAME runs NAME against an svm device
 * (/dev/rust_hmm_svm0) and reports it as svm_NAME.
 *
 * fault_disjoint_1t, fault_disjoint_mt, fault_page_1t and fault_page_mt:
 * device-fault throughput of one file, from one thread or one per CPU,
 * each on 2 MiB aligned memory of its own (MIB in all, split between the
 * threads) or all on one page. Each round drops the pages
 * (MADV_DONTNEED, which invalidates the device's mappings) and READs
 * them, so every READ faults: pages faulted per second.
 *
 * inval_ranges N (N in place of MIB): the device maps one page in each of
 * N 2 MiB blocks (N ranges for an svm device), then that page is unmapped
 * in 16 of them (all, if fewer), timed one by one: microseconds per munmap, and
 * a "notifier" line with the invalidations' own time where the driver
 * has STATS. Whether the cost grows with N.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dmirror-util.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/*
 * Before a timed call: lets the work that the last run or the setup left
 * behind (RCU callbacks, kworkers, the memory of the exited process) finish,
 * so that it is not charged to the call. Under -icount a sleep costs the
 * host nothing.
 */
static void settle(void)
{
	usleep(20000);
}

/* Slab memory in bytes, from /proc/meminfo. */
static long slab_bytes(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Slab: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

/* Frees every cache's empty and per-CPU partial slabs (SLUB's shrink), so
 * that the growth measured next is the drivers' and not absorbed by slabs
 * earlier workloads left empty: with per-CPU partial lists and two nodes,
 * a cache can hold megabytes of them. */
static void shrink_slabs(void)
{
	DIR *d = opendir("/sys/kernel/slab");
	struct dirent *e;
	char path[512];

	while (d && (e = readdir(d))) {
		/* Symlinks are aliases of merged caches, shrunk under their own name. */
		if (e->d_name[0] == '.' || e->d_type == DT_LNK)
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", e->d_name);
		/* A cache going away meanwhile has nothing to free. */
		write_file(path, "1");
	}
	if (d)
		closedir(d);
}

/* Where the memory workloads' extra ranges go: 1 GiB apart from 64 GiB. */
#define MEM_BASE (64UL << 30)

/* "coherent_" for coherent_NAME: NAME's figures, reported apart. */
static const char *prefix = "";

static void result(const char *w, unsigned long mib, double v, const char *unit)
{
	printf("result %s%s %lu %.3f %s\n", prefix, w, mib, v, unit);
}

/* The device page table's leaf counters, where the driver has them. */
static void leaves(int fd, const char *w, unsigned long mib)
{
	struct hmm_dmirror_stats s;

	if (!ioctl(fd, HMM_DMIRROR_STATS, &s))
		printf("leaves %s%s %lu %llu %llu\n", prefix, w, mib,
		       (unsigned long long)s.huge_entries, (unsigned long long)s.entries);
}

/* How much of @n pages at @mem the CPU maps with PMDs (SNAPSHOT). */
static void thp_report(int fd, char *mem, char *buf, unsigned long n, unsigned long mib)
{
	unsigned long pmd = 0;

	if (dcmd(fd, HMM_DMIRROR_SNAPSHOT, mem, buf, n, NULL))
		return;
	for (unsigned long i = 0; i < n; i++)
		pmd += !!(((unsigned char *)buf)[i] & HMM_DMIRROR_PROT_PMD);
	printf("thp %lu %lu %lu\n", mib, pmd, n);
}

/* @n pages of 2 MiB aligned memory. */
static char *map_aligned(unsigned long n)
{
	char *p = map_anon(n + 512);

	if (!p)
		return NULL;
	return (char *)(((uintptr_t)p + (2UL << 20) - 1) & ~((2UL << 20) - 1));
}

/* @n pages of 2 MiB aligned memory for transparent huge pages. */
static char *map_thp(unsigned long n)
{
	char *p = map_aligned(n);

	return !p || madvise(p, n * PAGE, MADV_HUGEPAGE) ? NULL : p;
}

struct fault_arg {
	int fd;
	char *mem;
	unsigned long npages, rounds;
	char *buf;
	int err;
};

static void *fault_worker(void *p)
{
	struct fault_arg *a = p;

	for (unsigned long r = 0; r < a->rounds && !a->err; r++) {
		if (madvise(a->mem, a->npages * PAGE, MADV_DONTNEED) ||
		    dcmd(a->fd, HMM_DMIRROR_READ, a->mem, a->buf, a->npages, NULL))
			a->err = 1;
	}
	return NULL;
}


/* The fault_* workloads: pages faulted per second, or -1. */
static double fault_bench(int fd, int disjoint, int threads, unsigned long mib)
{
	struct fault_arg a[64];
	pthread_t t[64];
	unsigned long per = disjoint ? (mib * 256 / threads + 511) & ~511UL : 1;
	unsigned long rounds = disjoint ? 4 : 2000;
	char *mem;
	double t0, dt;
	int err = 0;

	if (threads > 64)
		threads = 64;
	mem = map_aligned(disjoint ? per * threads : 1);
	if (!mem)
		return -1;
	for (int i = 0; i < threads; i++) {
		a[i] = (struct fault_arg){ .fd = fd, .npages = per, .rounds = rounds,
					   .mem = mem + (disjoint ? i * per * PAGE : 0),
					   .buf = map_anon(per) };
		if (!a[i].buf)
			return -1;
	}
	settle();
	t0 = now();
	for (int i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, fault_worker, &a[i]))
			return -1;
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		err |= a[i].err;
	}
	dt = now() - t0;
	return err ? -1 : (double)per * rounds * threads / dt;
}

/* inval_ranges: microseconds per munmap of one page among @n mapped
 * blocks, or -1. */
static double inval_bench(int fd, const char *w, unsigned long n)
{
	/* Distinct blocks: one munmap each (with one block, one munmap). */
	const unsigned long blk = 512, k = n < 16 ? n : 16;
	struct hmm_dmirror_stats s0 = { 0 }, s1 = { 0 };
	char *p = mmap(NULL, (n + 1) * blk * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *mem, buf[PAGE];
	double t = 0, t0;
	int have_stats;

	if (p == MAP_FAILED)
		return -1;
	mem = (char *)(((uintptr_t)p + blk * PAGE - 1) & ~(blk * PAGE - 1));
	madvise(mem, n * blk * PAGE, MADV_NOHUGEPAGE);
	for (unsigned long i = 0; i < n; i++)
		if (dcmd(fd, HMM_DMIRROR_READ, mem + i * blk * PAGE, buf, 1, NULL))
			return -1;
	have_stats = !ioctl(fd, HMM_DMIRROR_STATS, &s0);
	settle();
	for (unsigned long j = 0; j < k; j++) {
		char *victim = mem + (j * n / k) * blk * PAGE;

		t0 = now();
		if (munmap(victim, PAGE))
			return -1;
		t += now() - t0;
	}
	if (have_stats && !ioctl(fd, HMM_DMIRROR_STATS, &s1))
		printf("notifier %s%s %lu %.3f us\n", prefix, w, n,
		       (s1.invalidate_ns - s0.invalidate_ns) / 1e3 / k);
	munmap(p, (n + 1) * blk * PAGE);
	return t * 1e6 / k;
}

static int die(const char *what)
{
	fprintf(stderr, "hmm-bench: %s failed: %s\n", what, strerror(errno));
	return 1;
}

/* Seconds one command took; exits on failure. */
static double timed(int fd, unsigned long req, void *mem, void *buf,
		    unsigned long n, const char *what)
{
	double t = now();
	int r = dcmd(fd, req, mem, buf, n, NULL);

	if (r) {
		errno = -r;
		exit(die(what));
	}
	return now() - t;
}

/*
 * devbuf_PCTpct (rust_hmm only): a device buffer of MIB MiB mapped whole,
 * PCT % of its pages written (spread evenly), then one WALK that skips
 * missing entries and one CLEAN. Their cost should follow the populated
 * part, not the size of the mapping.
 */
static int devbuf_bench(int fd, const char *w, unsigned long mib, unsigned long pct)
{
	unsigned long n = mib * 256, step, touched = 0;
	struct hmm_devbuf_create c = { .npages = n };
	struct hmm_devbuf_walk wk = { 0 };
	struct hmm_devbuf_range r = { 0 };
	uint64_t *bits;
	char name[64];
	char *p;
	double t;

	if (!pct || pct > 100)
		return fprintf(stderr, "bad percentage in %s\n", w), 2;
	step = 100 / pct;
	if (ioctl(fd, HMM_DEVBUF_CREATE, &c))
		return die("HMM_DEVBUF_CREATE");
	p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, c.offset);
	bits = calloc(n / 64 + 1, 8);
	if (p == MAP_FAILED || !bits)
		return die("mmap");
	for (unsigned long i = 0; i < n; i += step, touched++)
		p[i * PAGE] = 1;
	wk.offset = c.offset;
	wk.npages = n;
	t = now();
	if (ioctl(fd, HMM_DEVBUF_WALK, &wk))
		return die("HMM_DEVBUF_WALK");
	t = now() - t;
	if (wk.nentries != touched)
		return fprintf(stderr, "walk saw %llu entries, want %lu\n",
			       (unsigned long long)wk.nentries, touched), 1;
	snprintf(name, sizeof(name), "walk_%lupct", pct);
	result(name, mib, t * 1e6, "us");
	snprintf(name, sizeof(name), "walk_%lupct_per_entry", pct);
	result(name, mib, t * 1e9 / touched, "ns");
	r.offset = c.offset;
	r.npages = n;
	r.arg = (uintptr_t)bits;
	t = now();
	if (ioctl(fd, HMM_DEVBUF_CLEAN, &r))
		return die("HMM_DEVBUF_CLEAN");
	t = now() - t;
	if (r.count != touched)
		return fprintf(stderr, "clean saw %llu dirty, want %lu\n",
			       (unsigned long long)r.count, touched), 1;
	snprintf(name, sizeof(name), "clean_%lupct", pct);
	result(name, mib, t * 1e6, "us");
	snprintf(name, sizeof(name), "clean_%lupct_per_page", pct);
	result(name, mib, t * 1e9 / touched, "ns");
	return 0;
}

/*
 * dma_read, dma_write, dma_munmap[_idle] (rust_hmm's DMA mirror, QEMU's edu
 * device; no C counterpart). Every edu transfer takes 100 ms of virtual
 * time, so these take PAGES pages, not MiB. dma_read and dma_write: one
 * command over PAGES pages, in pages/s (of the engine's clock, above all).
 * dma_munmap: the cost of an invalidation that meets DMA: a READ of PAGES
 * pages runs in a child while the parent, half way through, unmaps the
 * range (shared with the child) while a page of it is being read in: how
 * long munmap() takes, which includes the wait for that transfer (up to
 * 100 ms) and the unmapping of the window's DMA mappings, and how long
 * the window notifiers spent in their invalidations ("notifier" line).
 * dma_munmap_idle: the same at the moment page n/2 is in and goes out to
 * the child's buffer: no transfer on the range, only its mappings to drop.
 */
static int dma_bench(int fd, const char *w, unsigned long n)
{
	struct hmm_dma_stats s0 = { 0 }, s1 = { 0 };
	char *mem = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char *buf = map_anon(n);
	pid_t pid;
	double t;

	if (mem == MAP_FAILED || !buf || !n)
		return die("mmap");
	memset(mem, 9, n * PAGE);
	memset(buf, 1, n * PAGE);
	if (!strcmp(w, "dma_read") || !strcmp(w, "dma_write")) {
		unsigned long req = w[4] == 'r' ? HMM_DMIRROR_READ : HMM_DMIRROR_WRITE;

		settle();
		result(w, n, n / timed(fd, req, mem, buf, n, w), "pages/s");
		return 0;
	}
	if (strcmp(w, "dma_munmap") && strcmp(w, "dma_munmap_idle"))
		return fprintf(stderr, "unknown workload %s\n", w), 2;
	ioctl(fd, HMM_DMA_STATS, &s0);
	pid = fork();
	if (pid < 0)
		return die("fork");
	if (!pid)	/* The file mirrors the parent: the child reads its pages. */
		_exit(dcmd(fd, HMM_DMIRROR_READ, mem, buf, n, NULL) != -EFAULT);
	/* A page goes in (100 ms), then out (100 ms): once page n/2 is in,
	 * 150 ms later page n/2 + 1 is half way in, and its window mapped. */
	do {
		usleep(1000);
		ioctl(fd, HMM_DMA_STATS, &s1);
	} while (s1.to_device - s0.to_device < n / 2);
	if (!strcmp(w, "dma_munmap"))
		usleep(150000);
	t = now();
	if (munmap(mem, n * PAGE))
		return die("munmap");
	t = now() - t;
	result(w, n, t * 1e6, "us");
	waitpid(pid, NULL, 0);
	ioctl(fd, HMM_DMA_STATS, &s1);
	printf("notifier %s %lu %.3f us\n", w, n, (s1.invalidate_ns - s0.invalidate_ns) / 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long pct;
	const char *w;
	char base[64];
	unsigned long mib, n;
	char *mem, *buf;
	double t;
	int fd, r, thp;

	if (argc != 4)
		return fprintf(stderr, "usage: %s WORKLOAD MIB DEVICE\n", argv[0]), 2;
	w = argv[1];
	/*
	 * coherent_NAME: workload NAME, run on a device-coherent device (the
	 * DEVICE given) and reported under its own name.
	 */
	if (!strncmp(w, "coherent_", 9)) {
		prefix = "coherent_";
		w += 9;
	} else if (!strncmp(w, "svm_", 4)) {
		prefix = "svm_";
		w += 4;
	}
	/* NAME_thp: workload NAME on THP-backed memory. */
	snprintf(base, sizeof(base), "%s", w);
	thp = strlen(base) > 4 && !strcmp(base + strlen(base) - 4, "_thp");
	if (thp)
		base[strlen(base) - 4] = 0;
	mib = strtoul(argv[2], NULL, 0);
	n = mib * 256;
	fd = open(argv[3], O_RDWR);
	if (fd < 0)
		return die("open");
	if (sscanf(w, "devbuf_%lupct", &pct) == 1)
		return devbuf_bench(fd, w, mib, pct);
	if (!strncmp(w, "dma_", 4))
		return dma_bench(fd, w, mib);
	if (!strcmp(w, "inval_ranges")) {
		double v = inval_bench(fd, w, mib);

		if (v < 0)
			return die(w);
		result(w, mib, v, "us");
		return 0;
	}
	if (!strncmp(w, "fault_", 6)) {
		int disjoint = !strncmp(w, "fault_disjoint_", 15);
		int mt = strlen(w) > 3 && !strcmp(w + strlen(w) - 3, "_mt");
		int cpus = sysconf(_SC_NPROCESSORS_ONLN);
		double v = fault_bench(fd, disjoint, mt ? (cpus > 0 ? cpus : 1) : 1, mib);

		if (v < 0)
			return die(w);
		result(w, mib, v, "pages/s");
		return 0;
	}
	mem = thp ? map_thp(n) : map_anon(n);
	/*
	 * The destination starts one page past a 2 MiB boundary, the same for
	 * every run. A huge page is 2 MiB aligned in the kernel's direct map;
	 * copied to a 2 MiB aligned buffer, every access would miss in QEMU's
	 * direct-mapped software TLB (hardware TLBs do not do that), and the
	 * module's copy takes a detour through a staging page there.
	 */
	buf = map_aligned(n + 1);
	if (!mem || !buf)
		return die("mmap");
	buf += PAGE;
	/* Small pages for both drivers, whatever the THP default. */
	if (!thp)
		madvise(mem, n * PAGE, MADV_NOHUGEPAGE);
	memset(buf, 1, n * PAGE);	/* fault the bounce target in */

	if (!strcmp(base, "read_fault")) {
		/* First device READ of anonymous memory the CPU has not touched
		 * (with THP: faulted in as huge zero pages), or, with THP, has
		 * written, so that the device faults on real huge pages. */
		if (thp)
			memset(mem, 1, n * PAGE);
		settle();
		result(w, mib, n / timed(fd, HMM_DMIRROR_READ, mem, buf, n, "READ"), "pages/s");
		leaves(fd, w, mib);
		if (thp)
			thp_report(fd, mem, buf, n, mib);
	} else if (!strcmp(base, "warm_read")) {
		unsigned long reads = 0;

		memset(mem, 2, n * PAGE);
		timed(fd, HMM_DMIRROR_READ, mem, buf, n, "READ");
		/* Small ranges take well under a millisecond: repeat. */
		for (t = 0; reads < 3 || t < 0.2; reads++)
			t += timed(fd, HMM_DMIRROR_READ, mem, buf, n, "READ");
		result(w, mib, n * reads / t, "pages/s");
		leaves(fd, w, mib);
		if (thp)
			thp_report(fd, mem, buf, n, mib);
	} else if (!strcmp(base, "munmap") || !strcmp(base, "mprotect")) {
		struct hmm_dmirror_stats s0 = { 0 }, s1 = { 0 };
		int have_stats;

		memset(mem, 3, n * PAGE);
		timed(fd, HMM_DMIRROR_READ, mem, buf, n, "READ");
		leaves(fd, w, mib);
		if (thp)
			thp_report(fd, mem, buf, n, mib);
		have_stats = !ioctl(fd, HMM_DMIRROR_STATS, &s0);
		settle();
		t = now();
		r = !strcmp(base, "munmap") ? munmap(mem, n * PAGE) :
			mprotect(mem, n * PAGE, PROT_READ);
		t = now() - t;
		if (r)
			return die(w);
		result(w, mib, t * 1e6, "us");
		if (have_stats && !ioctl(fd, HMM_DMIRROR_STATS, &s1))
			printf("notifier %s %lu %.3f us\n", w, mib,
			       (s1.invalidate_ns - s0.invalidate_ns) / 1e3);
	} else if (thp) {
		return fprintf(stderr, "no THP variant of %s\n", base), 2;
	} else if (!strcmp(w, "snapshot_dense") || !strcmp(w, "snapshot_sparse")) {
		int dense = !strcmp(w, "snapshot_dense");

		for (unsigned long i = 0; i < n; i += dense ? 1 : 100)
			mem[i * PAGE] = 1;
		settle();
		result(w, mib, n / timed(fd, HMM_DMIRROR_SNAPSHOT, mem, buf, n, "SNAPSHOT"),
		       "pages/s");
	} else if (!strcmp(w, "exclusive")) {
		memset(mem, 4, n * PAGE);
		settle();
		result(w, mib, n / timed(fd, HMM_DMIRROR_EXCLUSIVE, mem, buf, n, "EXCLUSIVE"),
		       "pages/s");
	} else if (!strcmp(w, "migrate_to_dev")) {
		memset(mem, 6, n * PAGE);
		settle();
		result(w, mib, n / timed(fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, buf, n,
					 "MIGRATE_TO_DEV"), "pages/s");
	} else if (!strcmp(w, "migrate_to_sys")) {
		memset(mem, 7, n * PAGE);
		timed(fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, buf, n, "MIGRATE_TO_DEV");
		settle();
		result(w, mib, n / timed(fd, HMM_DMIRROR_MIGRATE_TO_SYS, mem, buf, n,
					 "MIGRATE_TO_SYS"), "pages/s");
	} else if (!strcmp(w, "migrate_cpu_fault")) {
		/* The CPU touching device pages: one migrate_to_ram() each. */
		volatile char sink = 0;

		memset(mem, 8, n * PAGE);
		timed(fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, buf, n, "MIGRATE_TO_DEV");
		settle();
		t = now();
		for (unsigned long i = 0; i < n; i++)
			sink += mem[i * PAGE];
		t = now() - t;
		if (sink != (char)(8 * n))
			return fprintf(stderr, "hmm-bench: wrong data after migration\n"), 1;
		result(w, mib, n / t, "pages/s");
	} else if (!strcmp(w, "mem_dense") || !strcmp(w, "mem_sparse")) {
		/* Slab growth per mirrored page: both drivers keep their device
		 * page tables in slab memory (xarray nodes, our directories).
		 * /proc/meminfo counts slab in whole slabs, so each size is
		 * measured over enough ranges of MIB MiB to mirror 64 Ki pages
		 * (dense) or 2 Ki (sparse: one page every 2 MiB), the ranges 1
		 * GiB apart so that no two share a directory or an xarray node. */
		int dense = !strcmp(w, "mem_dense");
		unsigned long step = dense ? 1 : 512, mirrored = 0;
		unsigned long total = dense ? 256 : 4096;
		unsigned long ranges = mib >= total ? 1 : total / mib;
		char **r = calloc(ranges, sizeof(*r));
		long before;

		if (!r)
			return die("calloc");
		for (unsigned long j = 0; j < ranges; j++) {
			void *hint = (void *)(MEM_BASE + (j << 30));

			r[j] = j ? mmap(hint, n * PAGE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) :
				   mem;
			if (r[j] == MAP_FAILED)
				return die("mmap");
			madvise(r[j], n * PAGE, MADV_NOHUGEPAGE);
			for (unsigned long i = 0; i < n; i += step)
				r[j][i * PAGE] = 5;
		}
		shrink_slabs();
		before = slab_bytes();
		for (unsigned long j = 0; j < ranges; j++) {
			for (unsigned long i = 0; i < n; i += dense ? n : step) {
				unsigned long cnt = dense ? n : 1;

				timed(fd, HMM_DMIRROR_READ, r[j] + i * PAGE, buf, cnt, "READ");
				mirrored += cnt;
			}
		}
		result(w, mib, (double)(slab_bytes() - before) / mirrored, "bytes/page");
	} else {
		return fprintf(stderr, "unknown workload %s\n", w), 2;
	}
	return 0;
}
