// SPDX-License-Identifier: GPL-2.0
/*
 * A walk through what the device sees of this process: it mirrors a
 * buffer, reads and writes it, loses access on mprotect and munmap, and
 * reports each step; then a page there and back by DMA, through QEMU's
 * edu device where there is one. Run by `make demo`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rust_hmm_uapi.h"

#define PAGE 4096UL
#define NPAGES 8UL

static int dcmd(int fd, unsigned long req, void *addr, void *buf,
		unsigned long npages, struct hmm_dmirror_cmd *c)
{
	*c = (struct hmm_dmirror_cmd){ (uintptr_t)addr, (uintptr_t)buf, npages };
	return ioctl(fd, req, c) ? -errno : 0;
}

static const char *prot(unsigned char p)
{
	switch (p) {
	case HMM_DMIRROR_PROT_ERROR: return "error";
	case HMM_DMIRROR_PROT_NONE: return "none";
	case HMM_DMIRROR_PROT_READ: return "read";
	case HMM_DMIRROR_PROT_WRITE: return "write";
	case HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ: return "zero";
	default: return "other";
	}
}

static void snapshot(int fd, char *mem, const char *when)
{
	unsigned char perm[NPAGES];
	struct hmm_dmirror_cmd c;

	if (dcmd(fd, HMM_DMIRROR_SNAPSHOT, mem, perm, NPAGES, &c)) {
		printf("demo: snapshot failed: %s\n", strerror(errno));
		return;
	}
	printf("demo: CPU view %-22s:", when);
	for (unsigned long i = 0; i < NPAGES; i++)
		printf(" %s", prot(perm[i]));
	printf("\n");
}

/*
 * The same through a real DMA engine: QEMU's edu device, behind the
 * guest's IOMMU. Returns the number of failures; 0 without the device.
 */
static int dma_demo(void)
{
	const char *path = "/dev/rust_hmm_dmirror_dma";
	struct hmm_dmirror_cmd c;
	struct hmm_dma_stats s = { 0 };
	char *mem, *buf;
	int fd, ret, fails = 0;

	fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("demo: no %s (no edu device): DMA part skipped\n", path);
		return 0;
	}
	mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	strcpy(mem, "written by the CPU");
	ret = dcmd(fd, HMM_DMIRROR_READ, mem, buf, 1, &c);
	printf("demo: edu DMA READ of a page: %s, the device read \"%s\"\n",
	       ret ? strerror(-ret) : "ok", buf);
	fails += ret || strcmp(buf, mem);

	strcpy(buf + PAGE, "written by the device");
	ret = dcmd(fd, HMM_DMIRROR_WRITE, mem + PAGE, buf + PAGE, 1, &c);
	printf("demo: edu DMA WRITE of a page: %s, the CPU reads \"%s\"\n",
	       ret ? strerror(-ret) : "ok", mem + PAGE);
	fails += ret || strcmp(mem + PAGE, buf + PAGE);

	ioctl(fd, HMM_DMA_STATS, &s);
	printf("demo: edu transfers: %llu to the device, %llu to memory, through %s\n",
	       s.to_device, s.to_ram, s.iova ? "IOMMU (one IOVA range per window)" : "direct DMA addresses");
	close(fd);
	return fails;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "/dev/rust_hmm_dmirror0";
	char *mem, *buf;
	struct hmm_dmirror_cmd c;
	int fd, ret, fails = 0;

	fd = open(path, O_RDWR);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	mem = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	buf = mmap(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("demo: %s mirrors this process; buffer of %lu pages at %p\n",
	       path, NPAGES, mem);
	snapshot(fd, mem, "before any access");

	ret = dcmd(fd, HMM_DMIRROR_READ, mem, buf, NPAGES, &c);
	printf("demo: device READ of untouched memory: %s, %llu pages, %llu faults\n",
	       ret ? strerror(-ret) : "ok", c.cpages, c.faults);
	snapshot(fd, mem, "after device read");

	memset(mem, 'A', NPAGES * PAGE);
	ret = dcmd(fd, HMM_DMIRROR_READ, mem, buf, NPAGES, &c);
	printf("demo: CPU wrote 'A'; device READ: %s, sees '%c', %llu faults\n",
	       ret ? strerror(-ret) : "ok", buf[0], c.faults);
	fails += ret || buf[0] != 'A';

	memset(buf, 'B', NPAGES * PAGE);
	ret = dcmd(fd, HMM_DMIRROR_WRITE, mem, buf, NPAGES, &c);
	printf("demo: device WRITE of 'B': %s, %llu faults; CPU now sees '%c'\n",
	       ret ? strerror(-ret) : "ok", c.faults, mem[NPAGES * PAGE - 1]);
	fails += ret || mem[NPAGES * PAGE - 1] != 'B';
	snapshot(fd, mem, "after device write");

	mprotect(mem, NPAGES * PAGE, PROT_READ);
	ret = dcmd(fd, HMM_DMIRROR_WRITE, mem, buf, NPAGES, &c);
	printf("demo: after mprotect(PROT_READ), device WRITE: %s (expected %s)\n",
	       ret ? strerror(-ret) : "ok", strerror(EPERM));
	fails += ret != -EPERM;
	snapshot(fd, mem, "after mprotect");

	munmap(mem + 4 * PAGE, 4 * PAGE);
	ret = dcmd(fd, HMM_DMIRROR_READ, mem, buf, NPAGES, &c);
	printf("demo: after munmap of the upper half, device READ: %s (expected %s)\n",
	       ret ? strerror(-ret) : "ok", strerror(EFAULT));
	fails += ret != -EFAULT;
	snapshot(fd, mem, "after munmap");

	close(fd);
	fails += dma_demo();
	printf("demo: %s\n", fails ? "FAILED" : "everything behaved as expected");
	return fails != 0;
}
