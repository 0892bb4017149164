/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers called from Rust (see ffi.rs); one per static inline or macro. */
#ifndef RUST_HMM_HELPERS_H
#define RUST_HMM_HELPERS_H

#include <linux/types.h>

struct mmu_interval_notifier;
struct mmu_notifier_range;
struct page;
struct folio;

bool rust_hmm_interval_read_retry(struct mmu_interval_notifier *sub,
				  unsigned long seq);
void rust_hmm_interval_set_seq(struct mmu_interval_notifier *sub,
			       unsigned long cur_seq);
bool rust_hmm_range_blockable(const struct mmu_notifier_range *range);
struct page *rust_hmm_pfn_to_page(unsigned long pfn);
unsigned long rust_hmm_zero_pfn(void);
bool rust_hmm_is_zero_pfn(unsigned long pfn);
bool rust_hmm_is_device_private_pfn(unsigned long pfn);
unsigned long rust_hmm_msecs_to_jiffies(unsigned int ms);
unsigned long rust_hmm_page_to_pfn(struct page *page);
void rust_hmm_folio_put(struct folio *folio);
bool rust_hmm_copy_from_folio(void *to, unsigned long pfn, size_t len);
void rust_hmm_set_pages_dirty(unsigned long pfn, unsigned long npages);

#endif
