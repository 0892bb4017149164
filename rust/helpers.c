// SPDX-License-Identifier: GPL-2.0
/*
 * The few kernel functions the Rust side needs that exist only as static
 * inlines or macros, plus compile-time checks that the hand-written Rust
 * layouts in ffi.rs match the kernel's structs.
 */
#include <linux/build_bug.h>
#include <linux/hmm.h>
#include <linux/memremap.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pgtable.h>
#include <linux/rmap.h>
#include <linux/stddef.h>

#include "helpers.h"

/* ffi.rs declares `struct hmm_range` by hand: keep both in step. */
static_assert(sizeof(struct hmm_range) == 64);
static_assert(offsetof(struct hmm_range, notifier) == 0);
static_assert(offsetof(struct hmm_range, notifier_seq) == 8);
static_assert(offsetof(struct hmm_range, start) == 16);
static_assert(offsetof(struct hmm_range, end) == 24);
static_assert(offsetof(struct hmm_range, hmm_pfns) == 32);
static_assert(offsetof(struct hmm_range, default_flags) == 40);
static_assert(offsetof(struct hmm_range, pfn_flags_mask) == 48);
static_assert(offsetof(struct hmm_range, dev_private_owner) == 56);
static_assert(HMM_PFN_VALID == 1UL << 63);
static_assert(HMM_PFN_WRITE == 1UL << 62);
static_assert(HMM_PFN_ERROR == 1UL << 61);
static_assert(HMM_PFN_ORDER_SHIFT == 53);
static_assert(HMM_RANGE_DEFAULT_TIMEOUT == 1000);

bool rust_hmm_interval_read_retry(struct mmu_interval_notifier *sub,
				  unsigned long seq)
{
	return mmu_interval_read_retry(sub, seq);
}

void rust_hmm_interval_set_seq(struct mmu_interval_notifier *sub,
			       unsigned long cur_seq)
{
	mmu_interval_set_seq(sub, cur_seq);
}

bool rust_hmm_range_blockable(const struct mmu_notifier_range *range)
{
	return mmu_notifier_range_blockable(range);
}

struct page *rust_hmm_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

unsigned long rust_hmm_zero_pfn(void)
{
	return page_to_pfn(ZERO_PAGE(0));
}

bool rust_hmm_is_zero_pfn(unsigned long pfn)
{
	return is_zero_pfn(pfn);
}

bool rust_hmm_is_device_private_pfn(unsigned long pfn)
{
	return is_device_private_page(pfn_to_page(pfn));
}

unsigned long rust_hmm_msecs_to_jiffies(unsigned int ms)
{
	return msecs_to_jiffies(ms);
}

unsigned long rust_hmm_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

void rust_hmm_folio_put(struct folio *folio)
{
	folio_put(folio);
}

/*
 * Device-file VMAs (pfn_walk.rs, samples/dmirror/devbuf.rs). Protections
 * travel as raw pgprot values so the Rust side never needs the arch's
 * pgprot_t layout.
 */
void rust_hmm_vma_set_pfnmap(struct vm_area_struct *vma)
{
	/* No merging, no growth by mremap, no core dumps of device memory. */
	vm_flags_set(vma, VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
}

unsigned long rust_hmm_prot_with_cache(unsigned long protval, unsigned int mode)
{
	pgprot_t prot = __pgprot(protval);

	switch (mode) {
	case 1:
		prot = pgprot_noncached(prot);
		break;
	case 2:
		prot = pgprot_writecombine(prot);
		break;
	}
	return pgprot_val(prot);
}

unsigned long rust_hmm_prot_cache_bits(unsigned long protval)
{
#ifdef CONFIG_X86
	return protval & _PAGE_CACHE_MASK;
#else
	return 0;
#endif
}

bool rust_hmm_prot_dirty(unsigned long protval)
{
	return pte_dirty(pfn_pte(0, __pgprot(protval)));
}
