/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers called from Rust (see helpers.c and ffi.rs). */
#ifndef RUST_HMM_HELPERS_H
#define RUST_HMM_HELPERS_H

#include <linux/types.h>

struct mmu_interval_notifier;
struct mmu_notifier_range;
struct page;
struct folio;
struct dev_pagemap;
struct vm_area_struct;

bool rust_helper_mmu_interval_read_retry(struct mmu_interval_notifier *sub,
				  unsigned long seq);
struct page *rust_helper_pfn_to_page(unsigned long pfn);
unsigned long rust_hmm_zero_pfn(void);
bool rust_helper_is_zero_pfn(unsigned long pfn);
struct dev_pagemap *rust_hmm_device_private_pgmap(unsigned long pfn);
bool rust_hmm_pfns_have_pgmap(unsigned long pfn, unsigned long npages);
struct dev_pagemap *rust_hmm_device_pgmap(unsigned long pfn, unsigned int type);
void rust_hmm_pfn_kinds(const unsigned long *hmm_pfns, u8 *kinds,
			unsigned long n, u8 zero, u8 device_private,
			u8 device_coherent);
unsigned long rust_helper_page_to_pfn(struct page *page);
void rust_helper_folio_put(struct folio *folio);
void rust_helper_folio_get(struct folio *folio);
void rust_helper_folio_lock(struct folio *folio);
bool rust_helper_folio_trylock(struct folio *folio);
unsigned long rust_helper_folio_pfn(const struct folio *folio);
unsigned int rust_helper_folio_order(const struct folio *folio);
int rust_helper_folio_ref_count(const struct folio *folio);
struct folio *rust_helper_page_folio(struct page *page);
bool rust_hmm_copy_from_folio(void *to, unsigned long pfn, size_t len);
unsigned long rust_hmm_copy_pages_to_user_nofault(void __user *to,
						  unsigned long pfn,
						  unsigned long len);
void rust_hmm_pages_read(unsigned long pfn, size_t offset, void *to,
			 size_t len);
void rust_hmm_pages_write(unsigned long pfn, size_t offset, const void *from,
			  size_t len);
u64 rust_hmm_pages_fetch_add_u64(unsigned long pfn, size_t offset, u64 value);
void rust_hmm_set_pages_dirty(unsigned long pfn, unsigned long npages);
void rust_hmm_get_pages(unsigned long pfn, unsigned long npages);
void rust_hmm_put_pages(unsigned long pfn, unsigned long npages);

struct dev_pagemap *rust_helper_page_pgmap(struct page *page);
void rust_hmm_zone_device_folio_init(struct page *page,
				     struct dev_pagemap *pgmap,
				     unsigned int order);
struct page *rust_hmm_alloc_migrate_folio(struct vm_area_struct *vma,
					  unsigned long addr,
					  unsigned int order);
void rust_helper_clear_highpage(struct page *page);
int rust_helper_numa_node_id(void);
bool rust_hmm_resched_killed(void);
void rust_hmm_vma_set_pfnmap(struct vm_area_struct *vma);
unsigned long rust_hmm_prot_cache_bits(unsigned long protval);
unsigned long rust_hmm_pgprot_noncached(unsigned long protval);
unsigned long rust_hmm_pgprot_writecombine(unsigned long protval);
bool rust_hmm_prot_dirty(unsigned long protval);

#endif

/* ---- Lock checking and KUnit support (mmu_notifier.rs, pfn_walk.rs) ---- */
#ifndef RUST_HMM_HELPERS_LOCKDEP_H
#define RUST_HMM_HELPERS_LOCKDEP_H

struct mutex;
struct file;
struct file_operations;

void rust_hmm_prime_reclaim(struct mutex *lock);
void rust_helper_lockdep_assert_not_held(struct mutex *lock);
void rust_helper_pagefault_disable(void);
void rust_helper_pagefault_enable(void);
unsigned long rust_hmm_vm_mmap(struct file *file, unsigned long len,
			       bool writable, unsigned long pgoff);
struct file *rust_hmm_anon_file(const struct file_operations *fops,
				void *priv);
bool rust_hmm_page_dirty(unsigned long pfn);

#endif
