/* SPDX-License-Identifier: GPL-2.0 */
/* Small helpers shared by the user-space tests. */
#ifndef DMIRROR_UTIL_H
#define DMIRROR_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/mempolicy.h>

#include "rust_hmm_uapi.h"

#define PAGE 4096UL

/* $DEV0/$DEV1, default /dev/hmm_dmirror0 and /dev/hmm_dmirror1. */
static inline const char *dev_path(int n)
{
	const char *e = getenv(n ? "DEV1" : "DEV0");

	if (e)
		return e;
	return n ? "/dev/hmm_dmirror1" : "/dev/hmm_dmirror0";
}

static inline int dev_open(int n)
{
	return open(dev_path(n), O_RDWR | O_CLOEXEC);
}

/* Returns 0 or -errno, like the upstream selftest's hmm_dmirror_cmd(). */
static inline int dcmd(int fd, unsigned long req, void *addr, void *buf,
		       unsigned long npages, struct hmm_dmirror_cmd *out)
{
	struct hmm_dmirror_cmd c = {
		.addr = (uintptr_t)addr,
		.ptr = (uintptr_t)buf,
		.npages = npages,
	};
	int ret;

	do {
		ret = ioctl(fd, req, &c);
	} while (ret == -1 && errno == EINTR);
	if (out)
		*out = c;
	return ret ? -errno : 0;
}

/* Device fetch-and-add; returns 0 or -errno. */
static inline int datomic(int fd, uint64_t *p, uint64_t value,
			  struct hmm_dmirror_atomic *out)
{
	struct hmm_dmirror_atomic a = { .addr = (uintptr_t)p, .value = value };
	int ret;

	do {
		ret = ioctl(fd, HMM_DMIRROR_ATOMIC_ADD, &a);
	} while (ret == -1 && errno == EINTR);
	if (out)
		*out = a;
	return ret ? -errno : 0;
}

/*
 * Exempts this process's memory from NUMA balancing. On a machine with
 * several nodes the kernel's scanner (task_numa_work()) makes ranges of a
 * task that has run for a second PROT_NONE now and then, to see where they
 * are used: an invalidation like any other, which drops device mappings,
 * so a test that counts device faults would count those too. A task
 * policy without MPOL_F_NUMA_BALANCING (here MPOL_LOCAL) makes the scanner
 * skip every VMA. The race tests and the fuzzer keep the default, and
 * mirror-tests numa_hinting tests the scanner's invalidations themselves.
 */
static inline int numa_hinting_off(void)
{
	return syscall(SYS_set_mempolicy, MPOL_LOCAL, NULL, 0);
}

/* Back to the default policy, under which the scanner runs. */
static inline int numa_hinting_on(void)
{
	return syscall(SYS_set_mempolicy, MPOL_DEFAULT, NULL, 0);
}

/* Writes @val to the file @path; returns 0 or -1. */
static inline int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

/* The number of NUMA nodes with memory, 1 if unknown. */
static inline int numa_nodes(void)
{
	int n = 0;
	char path[64];

	for (;;) {
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
		if (access(path, F_OK))
			break;
		n++;
	}
	return n ? n : 1;
}

/* 1 if every page of [mem, +n) snapshots as @want through @fd. */
static inline int snap_all(int fd, void *mem, unsigned long n, unsigned char *snap,
			   unsigned char want)
{
	struct hmm_dmirror_cmd c;

	if (dcmd(fd, HMM_DMIRROR_SNAPSHOT, mem, snap, n, &c) || c.cpages != n)
		return 0;
	for (unsigned long i = 0; i < n; i++)
		if (snap[i] != want)
			return 0;
	return 1;
}

static inline struct hmm_dmirror_stats dstats(int fd)
{
	struct hmm_dmirror_stats s = { 0 };

	ioctl(fd, HMM_DMIRROR_STATS, &s);
	return s;
}

static inline void *map_anon(unsigned long npages)
{
	void *p = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static inline void fill(void *p, unsigned long npages, unsigned int seed)
{
	unsigned int *w = p;

	for (unsigned long i = 0; i < npages * PAGE / sizeof(*w); i++)
		w[i] = seed + i;
}

static inline int check(const void *p, unsigned long npages, unsigned int seed)
{
	const unsigned int *w = p;

	for (unsigned long i = 0; i < npages * PAGE / sizeof(*w); i++)
		if (w[i] != seed + i)
			return 0;
	return 1;
}

/*
 * A child process that mirrors its own memory and exits while the parent
 * holds its file: child_mirror_start() forks a child that maps @npages
 * filled with @seed, opens device 0 and runs @req on them (READ, EXCLUSIVE,
 * ...) into its copy of @buf; the parent then takes the file with
 * pidfd_getfd(). child_mirror_exit() lets the child exit and returns its
 * exit status.
 */
struct child_mirror {
	pid_t pid;
	int pidfd;
	int fd;			/* the child's file, in the parent */
	uintptr_t mem;		/* the child's mirrored range */
	int to_parent[2], to_child[2];
};

static inline int child_mirror_start(struct child_mirror *cm, unsigned long req,
				     unsigned long npages, unsigned int seed, void *buf)
{
	struct { uintptr_t mem; int fd; } msg;
	char go;

	if (pipe(cm->to_parent) || pipe(cm->to_child))
		return -1;
	cm->pid = fork();
	if (cm->pid < 0)
		return -1;
	if (cm->pid == 0) {
		char *mem = map_anon(npages);

		msg.fd = dev_open(0);
		msg.mem = (uintptr_t)mem;
		fill(mem, npages, seed);
		if (msg.fd < 0 || dcmd(msg.fd, req, mem, buf, npages, NULL))
			_exit(1);
		if (write(cm->to_parent[1], &msg, sizeof(msg)) != sizeof(msg))
			_exit(2);
		/* Exit once the parent holds the file. */
		if (read(cm->to_child[0], &go, 1) != 1)
			_exit(3);
		_exit(0);
	}
	if (read(cm->to_parent[0], &msg, sizeof(msg)) != sizeof(msg))
		return -1;
	cm->mem = msg.mem;
	cm->pidfd = syscall(SYS_pidfd_open, cm->pid, 0);
	if (cm->pidfd < 0)
		return -1;
	cm->fd = syscall(SYS_pidfd_getfd, cm->pidfd, msg.fd, 0);
	return cm->fd < 0 ? -1 : 0;
}

static inline int child_mirror_exit(struct child_mirror *cm)
{
	int status = -1;

	if (write(cm->to_child[1], "x", 1) != 1 || waitpid(cm->pid, &status, 0) != cm->pid)
		return -1;
	close(cm->pidfd);
	for (int i = 0; i < 2; i++) {
		close(cm->to_parent[i]);
		close(cm->to_child[i]);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#endif
