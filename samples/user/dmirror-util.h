/* SPDX-License-Identifier: GPL-2.0 */
/* Small helpers shared by the user-space tests. */
#ifndef DMIRROR_UTIL_H
#define DMIRROR_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

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

#endif
