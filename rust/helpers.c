// SPDX-License-Identifier: GPL-2.0
/*
 * The few kernel functions the Rust side needs that exist only as static
 * inlines or macros, plus compile-time checks that the hand-written Rust
 * layouts in ffi.rs match the kernel's structs.
 */
#include <linux/build_bug.h>
#include <linux/highmem.h>
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
 * Copies @len bytes from the pages at @pfn on, which must lie in one folio
 * (a huge leaf): one memcpy where the folio is mapped contiguously. Returns
 * false, having copied nothing, if they do not.
 */
bool rust_hmm_copy_from_folio(void *to, unsigned long pfn, size_t len)
{
	struct page *page = pfn_to_page(pfn);
	struct folio *folio = page_folio(page);
	size_t offset = folio_page_idx(folio, page) * PAGE_SIZE;

	if (len > folio_size(folio) - offset)
		return false;
	memcpy_from_folio(to, folio, offset, len);
	return true;
}

/* set_page_dirty() for @npages pages from @pfn: once per folio. */
void rust_hmm_set_pages_dirty(unsigned long pfn, unsigned long npages)
{
	unsigned long end = pfn + npages;

	while (pfn < end) {
		struct page *page = pfn_to_page(pfn);
		struct folio *folio = page_folio(page);

		folio_mark_dirty(folio);
		pfn += folio_nr_pages(folio) - folio_page_idx(folio, page);
	}
}
