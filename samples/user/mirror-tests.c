// SPDX-License-Identifier: GPL-2.0
/*
 * Mirror tests beyond the upstream hmm-tests: bad input, fork and COW,
 * mprotect and partial munmap while mirrored, two devices on one process,
 * process exit with the file still open, and close during use. Every test
 * checks what the device sees, not only return codes.
 *
 * Usage: mirror-tests [harness options]; DEV0/DEV1 name the devices
 * (default /dev/hmm_dmirror0 and /dev/hmm_dmirror1).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "dmirror-util.h"

FIXTURE(mirror) {
	int fd;
	int fd1;
};

FIXTURE_SETUP(mirror)
{
	/* Device fault counts must not include NUMA hinting (dmirror-util.h). */
	ASSERT_EQ(numa_hinting_off(), 0);
	self->fd = dev_open(0);
	ASSERT_GE(self->fd, 0) TH_LOG("open %s: %s", dev_path(0), strerror(errno));
	self->fd1 = dev_open(1);
	ASSERT_GE(self->fd1, 0);
}

FIXTURE_TEARDOWN(mirror)
{
	close(self->fd);
	close(self->fd1);
}

/* Each kind of bad input gets its documented errno and changes nothing. */
TEST_F(mirror, bad_input)
{
	unsigned long n = 4;
	char *mem = map_anon(n);
	/* n pages of buffer, then a guard page nothing can be copied to. */
	char *buf = map_anon(n + 1);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	ASSERT_NE(buf, NULL);
	ASSERT_EQ(mprotect(buf + n * PAGE, PAGE, PROT_NONE), 0);
	fill(mem, n, 7);
	/* Unaligned address. */
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem + 1, buf, 1, NULL), -EINVAL);
	/* No pages. */
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, 0, NULL), -EINVAL);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, mem, buf, 0, NULL), -EINVAL);
	/* npages * PAGE_SIZE overflows, and addr + size overflows. */
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, 1UL << 60, NULL), -EINVAL);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, (void *)(-PAGE), buf, 2, NULL), -EINVAL);
	/* Kernel address, and a huge range running into kernel space. */
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, (void *)0xffff888000000000UL, buf, 1, NULL), -EFAULT);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, 1UL << 40, NULL), -EFAULT);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, (void *)0xffff888000000000UL, buf, 1, NULL), -EFAULT);
	/* Unmapped range. */
	ASSERT_EQ(munmap(mem + 2 * PAGE, PAGE), 0);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, NULL), -EFAULT);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem + 2 * PAGE, buf, 1, NULL), -EFAULT);
	/* NULL and short user buffers. */
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, NULL, 2, NULL), -EFAULT);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, NULL, 2, NULL), -EFAULT);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, mem, NULL, 2, NULL), -EFAULT);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf + 3 * PAGE, 2, NULL), -EFAULT);
	/* A NULL command pointer and an unknown command. */
	EXPECT_EQ(ioctl(self->fd, HMM_DMIRROR_READ, NULL), -1);
	EXPECT_EQ(errno, EFAULT);
	EXPECT_EQ(ioctl(self->fd, _IOWR('H', 0x7f, struct hmm_dmirror_cmd), &c), -1);
	EXPECT_EQ(errno, ENOTTY);
	/* Nothing above changed the memory, and good input still works. */
	EXPECT_TRUE(check(mem, 2, 7));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, 2, &c), 0);
	EXPECT_EQ(c.cpages, 2);
	EXPECT_TRUE(check(buf, 2, 7));
	munmap(mem, n * PAGE);
	munmap(buf, (n + 1) * PAGE);
}

/* A mirrored page is written by the CPU after fork: COW must be seen. */
TEST_F(mirror, fork_cow)
{
	unsigned long n = 8;
	char *mem = map_anon(n);
	char *buf = map_anon(n);
	struct hmm_dmirror_cmd c;
	int status;
	pid_t pid;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 100);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.faults, 1);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* The child's writes must not reach the parent's mirror. */
		fill(mem, n, 900);
		_exit(check(mem, n, 900) ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(WEXITSTATUS(status), 0);
	/* The parent writes after fork: its pages are COW now. */
	fill(mem, n / 2, 300);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_TRUE(check(buf, n / 2, 300));
	EXPECT_TRUE(check(buf + n / 2 * PAGE, n / 2, 100 + n / 2 * PAGE / 4));
	/* A device write after fork lands in the parent's memory. */
	fill(buf, n, 500);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, buf, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_TRUE(check(mem, n, 500));
	munmap(mem, n * PAGE);
	munmap(buf, n * PAGE);
}

/* The device must lose access when the CPU does, and get it back. */
TEST_F(mirror, mprotect_while_mirrored)
{
	unsigned long n = 16;
	char *mem = map_anon(n);
	char *buf = map_anon(n);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 1);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, mem, n, &c), 0);
	/* Read-only: device reads work, device writes are refused. */
	ASSERT_EQ(mprotect(mem, n * PAGE, PROT_READ), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_TRUE(check(buf, n, 1));
	fill(buf, n, 2);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, buf, n, NULL), -EPERM);
	EXPECT_TRUE(check(mem, n, 1));
	/* No access at all: the mirror must not serve stale entries. */
	ASSERT_EQ(mprotect(mem, n * PAGE, PROT_NONE), 0);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, NULL), -EFAULT);
	/* Writable again: the device writes, the CPU sees it. */
	ASSERT_EQ(mprotect(mem, n * PAGE, PROT_READ | PROT_WRITE), 0);
	fill(buf, n, 3);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, buf, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_TRUE(check(mem, n, 3));
	munmap(mem, n * PAGE);
	munmap(buf, n * PAGE);
}

/* Unmapping part of a mirrored range drops exactly that part. */
TEST_F(mirror, munmap_partial)
{
	unsigned long n = 16;
	char *mem = map_anon(n);
	char *buf = map_anon(n);
	struct hmm_dmirror_cmd c;
	void *p;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 10);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	ASSERT_EQ(munmap(mem + 4 * PAGE, 4 * PAGE), 0);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, NULL), -EFAULT);
	/* The rest is still mirrored: no new fault. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, 4, &c), 0);
	EXPECT_EQ(c.faults, 0);
	EXPECT_TRUE(check(buf, 4, 10));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem + 8 * PAGE, buf, 8, &c), 0);
	EXPECT_EQ(c.faults, 0);
	EXPECT_TRUE(check(buf, 8, 10 + 8 * PAGE / 4));
	/* New memory in the hole: the device sees it, not the old pages. */
	p = mmap(mem + 4 * PAGE, 4 * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_EQ(p, mem + 4 * PAGE);
	fill(p, 4, 4000);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem + 4 * PAGE, buf, 4, &c), 0);
	EXPECT_EQ(c.faults, 1);
	EXPECT_TRUE(check(buf, 4, 4000));
	munmap(mem, n * PAGE);
	munmap(buf, n * PAGE);
}

/*
 * SNAPSHOT over holes in the address space several chunks (2 MiB) long,
 * which it answers without walking: every page still gets its own answer,
 * up to the exact page a VMA starts again, including past a PROT_NONE VMA
 * (all errors too, but no hole) and to the end of a range ending in a hole.
 */
TEST_F(mirror, snapshot_holes)
{
	const unsigned long n = 2600, range = 2400;
	const unsigned long data0 = 3, none = 1200, data1 = 1900;
	unsigned char *perm = malloc(range);
	struct hmm_dmirror_cmd c;
	char *mem = map_anon(n), *buf = map_anon(3);
	unsigned long i;

	ASSERT_NE(mem, NULL);
	ASSERT_NE(buf, NULL);
	ASSERT_NE(perm, NULL);
	ASSERT_EQ(madvise(mem, n * PAGE, MADV_NOHUGEPAGE), 0);
	fill(mem, data0, 1);
	fill(mem + data1 * PAGE, 3, 2);
	ASSERT_EQ(munmap(mem + data0 * PAGE, (none - data0) * PAGE), 0);
	ASSERT_EQ(mprotect(mem + none * PAGE, (data1 - none) * PAGE, PROT_NONE), 0);
	ASSERT_EQ(munmap(mem + (data1 + 3) * PAGE, (n - data1 - 3) * PAGE), 0);
	memset(perm, 0x55, range);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, mem, perm, range, &c), 0);
	EXPECT_EQ(c.cpages, range);
	for (i = 0; i < range; i++) {
		int data = i < data0 || (i >= data1 && i < data1 + 3);
		unsigned char want = data ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_ERROR;

		if (perm[i] != want) {
			EXPECT_EQ(perm[i], want) TH_LOG("page %lu", i);
			break;
		}
	}
	/* The pages after the holes are still the device's to read. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem + data1 * PAGE, buf, 3, NULL), 0);
	EXPECT_TRUE(check(buf, 3, 2));
	munmap(buf, 3 * PAGE);
	munmap(mem, data0 * PAGE);
	munmap(mem + none * PAGE, (data1 + 3 - none) * PAGE);
	free(perm);
}

/* Two devices on one process keep separate tables. */
TEST_F(mirror, two_devices)
{
	unsigned long n = 8;
	char *mem = map_anon(n);
	char *buf = map_anon(n);
	struct hmm_dmirror_cmd c;
	int fd2;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 20);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.faults, 1);
	/* Device 1 has its own table: it faults for itself. */
	ASSERT_EQ(dcmd(self->fd1, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.faults, 1);
	EXPECT_TRUE(check(buf, n, 20));
	/* Device 0's table is untouched by device 1's fault. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.faults, 0);
	/* A device write by 1 is seen by the CPU and by device 0. */
	fill(buf, n, 30);
	ASSERT_EQ(dcmd(self->fd1, HMM_DMIRROR_WRITE, mem, buf, n, &c), 0);
	EXPECT_TRUE(check(mem, n, 30));
	memset(buf, 0, n * PAGE);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_TRUE(check(buf, n, 30));
	/* Two opens of one device are two mirrors too. */
	fd2 = dev_open(0);
	ASSERT_GE(fd2, 0);
	ASSERT_EQ(dcmd(fd2, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.faults, 1);
	close(fd2);
	munmap(mem, n * PAGE);
	munmap(buf, n * PAGE);
}

/*
 * A child mirrors itself and exits while the parent holds its file (taken
 * with pidfd_getfd). The mirror sees the release: every command fails
 * cleanly, and close works.
 */
TEST_F(mirror, exit_with_file_open)
{
	unsigned long n = 4;
	char *buf = map_anon(n);
	struct child_mirror cm;
	struct hmm_dmirror_cmd c;
	void *mem;

	ASSERT_EQ(child_mirror_start(&cm, HMM_DMIRROR_READ, n, 77, buf), 0);
	mem = (void *)cm.mem;
	ASSERT_EQ(child_mirror_exit(&cm), 0);
	/* The child's address space is gone: nothing may be read from it. */
	memset(buf, 0, n * PAGE);
	EXPECT_EQ(dcmd(cm.fd, HMM_DMIRROR_READ, mem, buf, n, &c), -EFAULT);
	EXPECT_EQ(dcmd(cm.fd, HMM_DMIRROR_WRITE, mem, buf, n, &c), -EFAULT);
	EXPECT_EQ(dcmd(cm.fd, HMM_DMIRROR_SNAPSHOT, mem, buf, n, &c), -EFAULT);
	EXPECT_FALSE(check(buf, 1, 77));
	EXPECT_EQ(close(cm.fd), 0);
	munmap(buf, n * PAGE);
}

struct reader_arg {
	int fd;
	char *mem;
	char *buf;
	unsigned long n;
	volatile int stop;
	int bad_errno;
	long ok;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;

	while (!a->stop) {
		int r = dcmd(a->fd, HMM_DMIRROR_READ, a->mem, a->buf, a->n, NULL);

		if (r == 0)
			a->ok++;
		else if (r != -EFAULT && r != -EBADF)
			a->bad_errno = r;
	}
	return NULL;
}

/*
 * One thread reads through the device while another unmaps and remaps the
 * range and finally closes the file: no stale data, only EFAULT/EBADF.
 * About 5 s on the two-CPU debug kernel, but up to 50 s when the host runs
 * another guest beside it (a vCPU descheduled with a lock held stalls the
 * other): bounded at 120 s rather than the harness's 30.
 */
TEST_F_TIMEOUT(mirror, close_during_use, 120)
{
	struct reader_arg a = { .n = 64 };
	pthread_t t;
	int fd = dev_open(0);

	ASSERT_GE(fd, 0);
	a.fd = fd;
	a.mem = map_anon(a.n);
	a.buf = map_anon(a.n);
	ASSERT_NE(a.mem, NULL);
	fill(a.mem, a.n, 5);
	ASSERT_EQ(pthread_create(&t, NULL, reader, &a), 0);
	for (int i = 0; i < 50; i++) {
		void *p;

		ASSERT_EQ(munmap(a.mem, a.n * PAGE), 0);
		p = mmap(a.mem, a.n * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		ASSERT_EQ(p, a.mem);
		fill(a.mem, a.n, 5);
	}
	/* Close while the reader may be inside an ioctl. */
	close(fd);
	usleep(10000);
	a.stop = 1;
	pthread_join(t, NULL);
	EXPECT_EQ(a.bad_errno, 0);
	EXPECT_GT(a.ok, 0);
	/* Afterwards the data read through a fresh mirror is right. */
	fd = dev_open(0);
	ASSERT_GE(fd, 0);
	memset(a.buf, 0, a.n * PAGE);
	ASSERT_EQ(dcmd(fd, HMM_DMIRROR_READ, a.mem, a.buf, a.n, NULL), 0);
	EXPECT_TRUE(check(a.buf, a.n, 5));
	close(fd);
	munmap(a.mem, a.n * PAGE);
	munmap(a.buf, a.n * PAGE);
}

struct flipper_arg {
	char *page;
	atomic_int stop;
	unsigned long flips;
};

/* mprotect()s one page back and forth: an invalidation a few µs apart. */
static void *flipper(void *p)
{
	struct flipper_arg *f = p;

	while (!atomic_load(&f->stop)) {
		mprotect(f->page, PAGE, PROT_READ);
		mprotect(f->page, PAGE, PROT_READ | PROT_WRITE);
		f->flips += 2;
	}
	return NULL;
}

/*
 * Invalidations of one page, as fast as another thread on the other CPU
 * can make them, do not starve device faults and SNAPSHOTs of other
 * ranges. The mirror's notifier covers the whole address space, so each of
 * those invalidations ends their read sections; they must still get
 * through within their retries, never EBUSY.
 */
TEST_F(mirror, unrelated_invalidations)
{
	unsigned long n = 1024, rounds = 0;
	struct flipper_arg f = { 0 };
	char *mem = map_anon(n), *buf = map_anon(n);
	time_t end = time(NULL) + 5;
	pthread_t t;

	ASSERT_NE(mem, NULL);
	ASSERT_NE(buf, NULL);
	f.page = map_anon(1);
	ASSERT_NE(f.page, NULL);
	f.page[0] = 1;
	fill(mem, n, 9);
	ASSERT_EQ(pthread_create(&t, NULL, flipper, &f), 0);
	while (time(NULL) < end || rounds < 10) {
		EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, mem, buf, n, NULL), 0);
		/* Unmirror the range (an invalidation of it), then fault it. */
		ASSERT_EQ(madvise(mem, n * PAGE, MADV_DONTNEED), 0);
		fill(mem, n, 9);
		memset(buf, 0, n * PAGE);
		EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, NULL), 0);
		EXPECT_TRUE(check(buf, n, 9));
		rounds++;
		if (_metadata->exit_code)
			break;
	}
	atomic_store(&f.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%lu rounds beside %lu mprotect() calls", rounds, f.flips);
	EXPECT_GT(f.flips, 100);
	munmap(mem, n * PAGE);
	munmap(buf, n * PAGE);
	munmap(f.page, PAGE);
}

/*
 * READ copies straight to user memory where the destination is there to
 * take it, and through a bounce buffer where it is not: every mix of the
 * two gives the same data. A destination the CPU cannot write fails, and
 * one overlapping the source gets the source as it was.
 */
TEST_F(mirror, read_destinations)
{
	unsigned long n = 64;
	char *mem = map_anon(n + 1);
	char *buf = map_anon(n + 1);
	char *orig = malloc(n * PAGE);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	ASSERT_NE(buf, NULL);
	ASSERT_NE(orig, NULL);
	fill(mem, n, 61);
	/* Not present yet: all through the bounce buffer; then warm. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_EQ(c.faults, 1);
	EXPECT_TRUE(check(buf, n, 61));
	memset(buf, 0, n * PAGE);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_EQ(c.faults, 0);
	EXPECT_TRUE(check(buf, n, 61));
	/* Every third destination page gone, one of them read back as the
	 * zero page, which the copy cannot write without a fault either. */
	for (unsigned long i = 0; i < n; i += 3)
		ASSERT_EQ(madvise(buf + i * PAGE, PAGE, MADV_DONTNEED), 0);
	EXPECT_EQ(*(volatile char *)(buf + 3 * PAGE), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_TRUE(check(buf, n, 61));
	/* Not page aligned, across n + 1 destination pages. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf + 100, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_EQ(memcmp(buf + 100, mem, n * PAGE), 0);
	/* A read-only page in the middle of the destination. */
	ASSERT_EQ(mprotect(buf + 40 * PAGE, PAGE, PROT_READ), 0);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, NULL), -EFAULT);
	ASSERT_EQ(mprotect(buf + 40 * PAGE, PAGE, PROT_READ | PROT_WRITE), 0);
	/* Destinations overlapping the source, one page up and one down. */
	memcpy(orig, mem, n * PAGE);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, mem + PAGE, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_EQ(memcmp(mem + PAGE, orig, n * PAGE), 0);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem + PAGE, mem, n, &c), 0);
	EXPECT_EQ(memcmp(mem, orig, n * PAGE), 0);
	free(orig);
	munmap(mem, (n + 1) * PAGE);
	munmap(buf, (n + 1) * PAGE);
}

/* A large read spans many bounce chunks and still counts one fault. */
TEST_F(mirror, large_read_write)
{
	unsigned long n = 2048 + 3;
	char *mem = map_anon(n);
	char *buf = map_anon(n);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	fill(mem, n, 42);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_EQ(c.faults, 1);
	EXPECT_TRUE(check(buf, n, 42));
	fill(buf, n, 4242);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, buf, n, &c), 0);
	EXPECT_EQ(c.cpages, n);
	EXPECT_TRUE(check(mem, n, 4242));
	munmap(mem, n * PAGE);
	munmap(buf, n * PAGE);
}

/*
 * A command over an absurd but legal range stays killable: SNAPSHOT of
 * 2^34 pages from address 0 (2^46 bytes, inside every user address space)
 * into a 16 GiB MAP_NORESERVE buffer would run for hours; SIGKILL must end
 * it within seconds.
 */
TEST_F(mirror, kill_long_command)
{
	unsigned long n = 1UL << 34;
	int sync[2], status = 0;
	pid_t pid, done = 0;
	char c;

	ASSERT_EQ(pipe(sync), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		char *perm = mmap(NULL, n, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (perm == MAP_FAILED)
			_exit(2);
		if (write(sync[1], "x", 1) != 1)
			_exit(3);
		dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, NULL, perm, n, NULL);
		_exit(4);	/* finished: not what this test expects */
	}
	ASSERT_EQ(read(sync[0], &c, 1), 1);
	usleep(300 * 1000);
	kill(pid, SIGKILL);
	for (int i = 0; i < 200 && !done; i++) {
		done = waitpid(pid, &status, WNOHANG);
		if (!done)
			usleep(100 * 1000);
	}
	ASSERT_EQ(done, pid) TH_LOG("the command did not end within 20 s of SIGKILL");
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(sync[0]);
	close(sync[1]);
}

/*
 * Memory above 128 TiB, which only 5-level paging (LA57) gives user space,
 * and only to a process that asks with a hint there: the device table
 * claims 57-bit addresses, so READ, WRITE, SNAPSHOT, migration and munmap
 * must work there as anywhere. Skips on a CPU or kernel without LA57.
 */
TEST_F(mirror, five_level_addresses)
{
	unsigned long n = 8;
	char *hint = (char *)(1UL << 55);
	char *mem = mmap(hint, n * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *buf = map_anon(n);
	unsigned char snap[8];
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, MAP_FAILED);
	ASSERT_NE(buf, NULL);
	if ((uintptr_t)mem < 1UL << 47) {
		munmap(mem, n * PAGE);
		SKIP(return, "no 5-level paging: the hint gave %p", mem);
	}
	fill(mem, n, 57);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.faults, 1);
	EXPECT_TRUE(check(buf, n, 57));
	fill(buf, n, 5757);
	ASSERT_EQ(dcmd(self->fd1, HMM_DMIRROR_WRITE, mem, buf, n, NULL), 0);
	EXPECT_TRUE(check(mem, n, 5757));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, mem, snap, n, NULL), 0);
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(snap[i], HMM_DMIRROR_PROT_WRITE);
	/* Into device memory and back through a CPU read. */
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, buf, n, &c), 0);
	EXPECT_TRUE(check(buf, n, 5757));
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_SNAPSHOT, mem, snap, n, NULL), 0);
	EXPECT_EQ(snap[0], HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE);
	EXPECT_TRUE(check(mem, n, 5757));
	/* Gone from both devices with the mapping. */
	ASSERT_EQ(munmap(mem, n * PAGE), 0);
	EXPECT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, NULL), -EFAULT);
	EXPECT_EQ(dcmd(self->fd1, HMM_DMIRROR_READ, mem, buf, n, NULL), -EFAULT);
	munmap(buf, n * PAGE);
}

/* Reads the file @path into @buf (at most @len - 1 bytes); 0 or -1. */
static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t r;

	if (fd < 0)
		return -1;
	r = read(fd, buf, len - 1);
	close(fd);
	if (r < 0)
		return -1;
	buf[r] = 0;
	return 0;
}

/*
 * NUMA balancing's scanner makes a mirrored range PROT_NONE to learn where
 * it is used: an invalidation of the device's entries at a moment of the
 * kernel's choosing. The device must then fault the hinting-protected
 * pages back (the kernel's NUMA fault restores the PTE) and read and write
 * the right data. The scanner is made eager for the test through its
 * debugfs knobs; needs two nodes and balancing on, as distributions boot.
 */
TEST_F(mirror, numa_hinting)
{
	static const char *dir = "/sys/kernel/debug/sched/numa_balancing";
	char delay[32], period[32], path[128], on[8];
	unsigned long n = 64;
	struct hmm_dmirror_cmd c;
	char *mem, *buf;
	int seen = 0;

	if (numa_nodes() < 2)
		SKIP(return, "one NUMA node");
	if (read_file("/proc/sys/kernel/numa_balancing", on, sizeof(on)) || on[0] != '1')
		SKIP(return, "NUMA balancing is off");
	snprintf(path, sizeof(path), "%s/scan_delay_ms", dir);
	ASSERT_EQ(read_file(path, delay, sizeof(delay)), 0);
	ASSERT_EQ(write_file(path, "0"), 0);
	snprintf(path, sizeof(path), "%s/scan_period_min_ms", dir);
	ASSERT_EQ(read_file(path, period, sizeof(period)), 0);
	ASSERT_EQ(write_file(path, "10"), 0);
	ASSERT_EQ(numa_hinting_on(), 0);

	mem = map_anon(n);
	buf = map_anon(n);
	ASSERT_NE(mem, NULL);
	ASSERT_NE(buf, NULL);
	fill(mem, n, 41);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, NULL), 0);
	ASSERT_EQ(dstats(self->fd).entries, n);
	/* The scanner runs from this task's ticks: keep it on a CPU. */
	for (int i = 0; i < 2000 && !seen; i++) {
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		do
			clock_gettime(CLOCK_MONOTONIC, &t1);
		while ((t1.tv_sec - t0.tv_sec) * 1000000000L + t1.tv_nsec - t0.tv_nsec < 10000000L);
		seen = dstats(self->fd).entries < n;
	}

	snprintf(path, sizeof(path), "%s/scan_delay_ms", dir);
	write_file(path, delay);
	snprintf(path, sizeof(path), "%s/scan_period_min_ms", dir);
	write_file(path, period);
	ASSERT_TRUE(seen) TH_LOG("no NUMA hinting invalidation in 20 s");

	/* Device READ and WRITE through hinting-protected PTEs. */
	memset(buf, 0, n * PAGE);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_GE(c.faults, 1);
	EXPECT_TRUE(check(buf, n, 41));
	fill(buf, n, 4141);
	ASSERT_EQ(dcmd(self->fd1, HMM_DMIRROR_WRITE, mem, buf, n, NULL), 0);
	EXPECT_TRUE(check(mem, n, 4141));
	munmap(mem, n * PAGE);
	munmap(buf, n * PAGE);
}

/*
 * move_pages() moves mirrored pages to the other node: the device's entries
 * for the old pages go, and the device then reads the moved data and writes
 * into the new pages.
 */
TEST_F(mirror, numa_move_pages)
{
	unsigned long n = 16;
	char *mem = map_anon(n), *buf = map_anon(n);
	void *pages[16];
	int nodes[16], status[16];
	struct hmm_dmirror_cmd c;

	ASSERT_NE(mem, NULL);
	ASSERT_NE(buf, NULL);
	if (numa_nodes() < 2)
		SKIP(return, "one NUMA node");
	fill(mem, n, 51);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, NULL), 0);
	ASSERT_EQ(dstats(self->fd).entries, n);
	for (unsigned long i = 0; i < n; i++)
		pages[i] = mem + i * PAGE;
	ASSERT_EQ(syscall(SYS_move_pages, 0, n, pages, NULL, status, 0), 0);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_GE(status[i], 0);
		nodes[i] = !status[i];
	}
	ASSERT_EQ(syscall(SYS_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE), 0);
	for (unsigned long i = 0; i < n; i++)
		EXPECT_EQ(status[i], nodes[i]);
	/* The old pages are gone from the device table. */
	EXPECT_EQ(dstats(self->fd).entries, 0);
	memset(buf, 0, n * PAGE);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_READ, mem, buf, n, &c), 0);
	EXPECT_EQ(c.faults, 1);
	EXPECT_TRUE(check(buf, n, 51));
	fill(buf, n, 5151);
	ASSERT_EQ(dcmd(self->fd, HMM_DMIRROR_WRITE, mem, buf, n, &c), 0);
	EXPECT_EQ(c.faults, 0);
	EXPECT_TRUE(check(mem, n, 5151));
	munmap(mem, n * PAGE);
	munmap(buf, n * PAGE);
}

TEST_HARNESS_MAIN
