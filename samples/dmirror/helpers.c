// SPDX-License-Identifier: GPL-2.0
/*
 * The sample device's C helpers: the data pages behind its device memory
 * (memory.rs), and the cache modes of its device buffers (devbuf/), which
 * need x86's PAT and set_memory interfaces. The library's own helpers are
 * in rust/helpers.c.
 */
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/cpu.h>
#ifdef CONFIG_X86
#include <asm/memtype.h>
#include <asm/msr.h>
#include <asm/set_memory.h>
#endif

#include "helpers.h"

/* A page that holds the data of a device page (memory.rs). */
struct page *dmirror_alloc_data_page(void)
{
	return alloc_page(GFP_HIGHUSER | __GFP_NOWARN);
}

/* By PFN: the sample keeps data pages by PFN, and a call costs. */
void dmirror_free_data_pfn(unsigned long pfn)
{
	__free_page(pfn_to_page(pfn));
}

void dmirror_copy_from_pfn(struct page *to, unsigned long from_pfn)
{
	copy_highpage(to, pfn_to_page(from_pfn));
}

/* A raw pgprot value with the cache mode @mode (DMIRROR_CACHE_*) applied. */
unsigned long dmirror_prot_with_cache(unsigned long protval, unsigned int mode)
{
	pgprot_t prot = __pgprot(protval);

	switch (mode) {
	case DMIRROR_CACHE_UC:
		prot = pgprot_noncached(prot);
		break;
	case DMIRROR_CACHE_WC:
		prot = pgprot_writecombine(prot);
		break;
	}
	return pgprot_val(prot);
}

/* ---- Device-buffer cache modes (devbuf.rs) ---- */

/*
 * Sets the memory type of the linear map of @n pages to @mode
 * (DMIRROR_CACHE_*), as TTM's pool does before it maps pages UC or WC to
 * user space. With PAT, vmf_insert_pfn_prot() gives a RAM page the type
 * recorded here, whatever the pgprot asks; without PAT, a UC or WC user
 * mapping of a page that the linear map holds write-back is a conflicting
 * alias. PAT grants UC or WC only to a page that is write-back now.
 *
 * One call for all @n pages: it flushes the TLB on every CPU (and the
 * pages from the caches, for UC and WC), may allocate page tables to split
 * the linear map, and so may sleep. Other architectures map user pages
 * with pgprot_*() alone: nothing to do.
 */
int dmirror_set_pages_cache(struct page **pages, int n, unsigned int mode)
{
	might_sleep();
#ifdef CONFIG_X86
	switch (mode) {
	case DMIRROR_CACHE_WB:
		return set_pages_array_wb(pages, n);
	case DMIRROR_CACHE_UC:
		return set_pages_array_uc(pages, n);
	case DMIRROR_CACHE_WC:
		return set_pages_array_wc(pages, n);
	}
	return -EINVAL;
#else
	return mode <= DMIRROR_CACHE_WC ? 0 : -EINVAL;
#endif
}

bool dmirror_pat_enabled(void)
{
#ifdef CONFIG_X86
	return pat_enabled();
#else
	return false;
#endif
}

/*
 * The cache bits (PWT, PCD, PAT in the 4 KiB layout) of the linear-map
 * entry of @page, or ~0 if it has none; for tests.
 */
unsigned long dmirror_linear_cache_bits(struct page *page)
{
#ifdef CONFIG_X86
	unsigned int level;
	pte_t *pte = lookup_address((unsigned long)page_address(page), &level);
	unsigned long val;

	if (!pte || !pte_present(*pte))
		return ~0UL;
	/* The raw value: pte_flags() would drop a large entry's PAT bit. */
	val = pte_val(*pte);
	if (level != PG_LEVEL_4K)
		val = protval_large_2_4k(val);
	return val & _PAGE_CACHE_MASK;
#else
	return 0;
#endif
}

/*
 * The cache bits a page of @mode gets, in the linear map and in a user PTE
 * on this kernel: set_pages_array_uc() gives UC-, and without PAT, WC is
 * UC- too.
 */
unsigned long dmirror_cache_mode_bits(unsigned int mode)
{
#ifdef CONFIG_X86
	switch (mode) {
	case DMIRROR_CACHE_UC:
		return cachemode2protval(_PAGE_CACHE_MODE_UC_MINUS);
	case DMIRROR_CACHE_WC:
		return cachemode2protval(_PAGE_CACHE_MODE_WC);
	}
#endif
	return 0;
}

/*
 * The memory type (X86_MEMTYPE_*) that the PAT MSR of every online CPU
 * selects for a 4 KiB PTE with cache @bits, or -1 if they disagree or it
 * cannot be read: what hardware would use, for tests (QEMU TCG keeps the
 * MSR but caches nothing).
 */
int dmirror_pat_memtype(unsigned long bits)
{
#ifdef CONFIG_X86
	unsigned int idx = (bits & _PAGE_PAT ? 4 : 0) |
			   (bits & _PAGE_PCD ? 2 : 0) |
			   (bits & _PAGE_PWT ? 1 : 0);
	int type = -1;
	unsigned int cpu;

	cpus_read_lock();
	for_each_online_cpu(cpu) {
		u64 pat;
		int t;

		if (rdmsrq_safe_on_cpu(cpu, MSR_IA32_CR_PAT, &pat)) {
			type = -1;
			break;
		}
		t = (pat >> (idx * 8)) & 7;
		if (type != -1 && t != type) {
			type = -1;
			break;
		}
		type = t;
	}
	cpus_read_unlock();
	return type;
#else
	return -1;
#endif
}
