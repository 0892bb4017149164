// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel functions the Rust side needs that exist only as static
 * inlines or macros. Their prototypes (helpers.h) reach Rust through
 * bindgen, with the kernel's structs and constants (rust/ffi.rs).
 *
 * rust_helper_NAME wraps the static inline NAME in one line and is NAME
 * in Rust, as the kernel's own helpers. rust_hmm_* still hold logic (a
 * loop over pages, a choice of allocator, a PAT decode): moving that into
 * Rust is open (issue 19).
 */
#include <linux/build_bug.h>
#include <linux/cacheflush.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/huge_mm.h>
#include <linux/ioport.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/pgtable.h>
#include <linux/rmap.h>
#include <linux/sched/signal.h>
#include <linux/stddef.h>
#include <linux/uaccess.h>

#include "helpers.h"

bool rust_helper_mmu_interval_read_retry(struct mmu_interval_notifier *sub,
				  unsigned long seq)
{
	return mmu_interval_read_retry(sub, seq);
}

struct page *rust_helper_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

unsigned long rust_hmm_zero_pfn(void)
{
	return page_to_pfn(ZERO_PAGE(0));
}

bool rust_helper_is_zero_pfn(unsigned long pfn)
{
	return is_zero_pfn(pfn);
}

/*
 * The pagemap of a device-private page, NULL for any other page, or for a
 * PFN without a struct page.
 */
struct dev_pagemap *rust_hmm_device_private_pgmap(unsigned long pfn)
{
	struct page *page;

	if (!pfn_valid(pfn))
		return NULL;
	page = pfn_to_page(pfn);
	return is_device_private_page(page) ? page_pgmap(page) : NULL;
}

/*
 * Whether any of the @npages PFNs from @pfn already has a live pagemap, as
 * memremap_pages() would see it, checked at every subsection and at the
 * last PFN: a driver that registers memory without claiming it in the
 * resource tree (test_hmm's coherent devices) is seen here, so a second
 * registration fails quietly instead of WARNing in memremap_pages().
 */
bool rust_hmm_pfns_have_pgmap(unsigned long pfn, unsigned long npages)
{
	struct dev_pagemap *pgmap;
	unsigned long i;

	for (i = 0; i < npages; i += PAGES_PER_SUBSECTION) {
		/* The subsection's first PFN, and last the range's last. */
		pgmap = get_dev_pagemap(pfn + i);
		if (!pgmap && i + PAGES_PER_SUBSECTION >= npages)
			pgmap = get_dev_pagemap(pfn + npages - 1);
		if (pgmap) {
			put_dev_pagemap(pgmap);
			return true;
		}
	}
	return false;
}

/*
 * The pagemap of a ZONE_DEVICE page of @type (enum memory_type), NULL for
 * any other page, or for a PFN without a struct page.
 */
struct dev_pagemap *rust_hmm_device_pgmap(unsigned long pfn, unsigned int type)
{
	struct page *page;

	if (!pfn_valid(pfn))
		return NULL;
	page = pfn_to_page(pfn);
	if (!is_zone_device_page(page) || page_pgmap(page)->type != type)
		return NULL;
	return page_pgmap(page);
}

/*
 * One call for a whole hmm_range_fault() answer: two helper calls per page
 * cost more than the tests they wrap. kinds[i] becomes @zero for the zero
 * page, @device_private for a device-private page, 0 for any other entry:
 * the caller names the values, so that they have one definition.
 */
void rust_hmm_pfn_kinds(const unsigned long *hmm_pfns, u8 *kinds,
			unsigned long n, u8 zero, u8 device_private,
			u8 device_coherent)
{
	unsigned long i;

	for (i = 0; i < n; i++) {
		unsigned long e = hmm_pfns[i];
		struct page *page;
		u8 k = 0;

		if ((e & (HMM_PFN_VALID | HMM_PFN_ERROR)) == HMM_PFN_VALID) {
			page = hmm_pfn_to_page(e);
			if (is_zero_pfn(page_to_pfn(page)))
				k = zero;
			else if (is_device_private_page(page))
				k = device_private;
			else if (is_device_coherent_page(page))
				k = device_coherent;
		}
		kinds[i] = k;
	}
}

unsigned long rust_helper_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

void rust_helper_folio_put(struct folio *folio)
{
	folio_put(folio);
}

void rust_helper_folio_get(struct folio *folio)
{
	folio_get(folio);
}

void rust_helper_folio_lock(struct folio *folio)
{
	folio_lock(folio);
}

bool rust_helper_folio_trylock(struct folio *folio)
{
	return folio_trylock(folio);
}

unsigned long rust_helper_folio_pfn(const struct folio *folio)
{
	return folio_pfn(folio);
}

unsigned int rust_helper_folio_order(const struct folio *folio)
{
	return folio_order(folio);
}

int rust_helper_folio_ref_count(const struct folio *folio)
{
	return folio_ref_count(folio);
}

struct folio *rust_helper_page_folio(struct page *page)
{
	return page_folio(page);
}


struct dev_pagemap *rust_helper_page_pgmap(struct page *page)
{
	return page_pgmap(page);
}

/*
 * Makes the free device page @page the head of a folio of @order: locked,
 * one reference, as migration wants its destination pages.
 */
void rust_hmm_zone_device_folio_init(struct page *page,
				     struct dev_pagemap *pgmap,
				     unsigned int order)
{
	zone_device_folio_init((struct folio *)page, pgmap, order);
}

/* A page of plain memory for the device to keep data in (not mapped by users). */
/*
 * A locked folio of @order to migrate a page of @vma at @addr back into, or
 * with no @vma one for eviction, where no mapping tells the NUMA policy.
 */
struct page *rust_hmm_alloc_migrate_folio(struct vm_area_struct *vma,
					  unsigned long addr,
					  unsigned int order)
{
	struct folio *folio;

	if (vma)
		folio = vma_alloc_folio(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN,
					order, vma, addr);
	else
		folio = folio_alloc(GFP_HIGHUSER_MOVABLE | __GFP_NOWARN, order);
	if (!folio)
		return NULL;
	folio_lock(folio);
	return &folio->page;
}

void rust_helper_clear_highpage(struct page *page)
{
	clear_highpage(page);
}

int rust_helper_numa_node_id(void)
{
	return numa_node_id();
}

/* Between chunks of a long command: reschedule, and stop if killed. */
bool rust_hmm_resched_killed(void)
{
	cond_resched();
	return fatal_signal_pending(current);
}

/*
 * Device-file VMAs (pfn_walk.rs, and drivers' mmap). Protections
 * travel as raw pgprot values so the Rust side never needs the arch's
 * pgprot_t layout.
 */
void rust_hmm_vma_set_pfnmap(struct vm_area_struct *vma)
{
	/* No merging, no growth by mremap, no core dumps of device memory. */
	vm_flags_set(vma, VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
}

/*
 * pgprot_noncached() and pgprot_writecombine() (macros on x86) on a
 * protection value, for vma_ops.rs's `Pgprot`.
 */
unsigned long rust_hmm_pgprot_noncached(unsigned long protval)
{
	return pgprot_val(pgprot_noncached(__pgprot(protval)));
}

unsigned long rust_hmm_pgprot_writecombine(unsigned long protval)
{
	return pgprot_val(pgprot_writecombine(__pgprot(protval)));
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

/*
 * Copies @len bytes from the pages at @pfn on to user address @to with page
 * faults disabled, one copy per folio (or per page where the folio is not
 * mapped contiguously). A user page that is not present and writable ends
 * the copy there instead of faulting: with pagefault_disable() the fault
 * handler sees faulthandler_disabled() and goes straight to the exception
 * fixup, before it takes any lock or allocates anything. Returns the
 * number of bytes not copied.
 */
unsigned long rust_hmm_copy_pages_to_user_nofault(void __user *to,
						  unsigned long pfn,
						  unsigned long len)
{
	unsigned long done = 0;

	if (!access_ok(to, len))
		return len;
	pagefault_disable();
	/* Page aligned here: a short copy ends the loop. */
	while (done < len) {
		struct page *page = pfn_to_page(pfn + done / PAGE_SIZE);
		struct folio *folio = page_folio(page);
		size_t offset = folio_page_idx(folio, page) * PAGE_SIZE;
		size_t chunk = min(len - done, folio_size(folio) - offset);
		unsigned long left;
		char *from;

		if (folio_test_partial_kmap(folio))
			chunk = min(chunk, PAGE_SIZE);
		from = kmap_local_folio(folio, offset);
		left = __copy_to_user_inatomic(to + done, from, chunk);
		kunmap_local(from);
		done += chunk - left;
		if (left)
			break;
	}
	pagefault_enable();
	return len - done;
}

/*
 * Copies between @buf and @len bytes at byte @offset of the pages from @pfn
 * on (guarded_page.rs checks the bounds): one memcpy per folio, mapped a
 * page at a time only where the folio needs it (highmem).
 */
static void rust_hmm_pages_copy(unsigned long pfn, size_t offset, char *buf,
				size_t len, bool write)
{
	while (len) {
		struct page *page = pfn_to_page(pfn + offset / PAGE_SIZE);
		struct folio *folio = page_folio(page);
		size_t at = folio_page_idx(folio, page) * PAGE_SIZE +
			    offset_in_page(offset);
		size_t chunk = min(len, folio_size(folio) - at);

		if (write)
			memcpy_to_folio(folio, at, buf, chunk);
		else
			memcpy_from_folio(buf, folio, at, chunk);
		buf += chunk;
		offset += chunk;
		len -= chunk;
	}
}

void rust_hmm_pages_read(unsigned long pfn, size_t offset, void *to,
			 size_t len)
{
	rust_hmm_pages_copy(pfn, offset, to, len, false);
}

void rust_hmm_pages_write(unsigned long pfn, size_t offset, const void *from,
			  size_t len)
{
	rust_hmm_pages_copy(pfn, offset, (char *)from, len, true);
}

/* A device atomic: fetch-and-add on the aligned u64 at byte @offset. */
u64 rust_hmm_pages_fetch_add_u64(unsigned long pfn, size_t offset, u64 value)
{
	char *va = kmap_local_page(pfn_to_page(pfn + offset / PAGE_SIZE));
	u64 old = atomic64_fetch_add(value,
				     (atomic64_t *)(va + offset_in_page(offset)));

	kunmap_local(va);
	return old;
}

enum rust_hmm_folio_op { RUST_HMM_DIRTY, RUST_HMM_GET, RUST_HMM_PUT };

/* @op once per folio of the @npages pages from @pfn. */
static void apply_to_folios(unsigned long pfn, unsigned long npages,
			    enum rust_hmm_folio_op op)
{
	unsigned long end = pfn + npages;

	while (pfn < end) {
		struct page *page = pfn_to_page(pfn);
		struct folio *folio = page_folio(page);

		/* Before a put, which may free the folio. */
		pfn += folio_nr_pages(folio) - folio_page_idx(folio, page);
		/* A freed folio here means a stale device page table entry. */
		VM_WARN_ON_ONCE_FOLIO(!folio_ref_count(folio), folio);
		if (op == RUST_HMM_DIRTY)
			folio_mark_dirty(folio);
		else if (op == RUST_HMM_GET)
			folio_get(folio);
		else
			folio_put(folio);
	}
}

/* set_page_dirty() for @npages pages from @pfn: once per folio. */
void rust_hmm_set_pages_dirty(unsigned long pfn, unsigned long npages)
{
	apply_to_folios(pfn, npages, RUST_HMM_DIRTY);
}

/* A reference on each folio of @npages pages from @pfn. */
void rust_hmm_get_pages(unsigned long pfn, unsigned long npages)
{
	apply_to_folios(pfn, npages, RUST_HMM_GET);
}

/* Drops the references rust_hmm_get_pages() took. */
void rust_hmm_put_pages(unsigned long pfn, unsigned long npages)
{
	apply_to_folios(pfn, npages, RUST_HMM_PUT);
}

/* ---- Lock checking and KUnit support (mmu_notifier.rs, pfn_walk.rs) ---- */
#include <linux/anon_inodes.h>
#include <linux/lockdep.h>
#include <linux/mman.h>
#include <linux/sched/mm.h>

/*
 * Tells lockdep that @lock is taken in reclaim (the invalidate callback
 * takes it there), as drm_gpusvm_init() does for its notifier lock: a
 * GFP_KERNEL allocation under @lock is then reported at once, not only if
 * reclaim happens to recurse into the callback while the test runs.
 */
void rust_hmm_prime_reclaim(struct mutex *lock)
{
	fs_reclaim_acquire(GFP_KERNEL);
	might_lock(lock);
	fs_reclaim_release(GFP_KERNEL);
}

/* Before a wait for an invalidation, which may be waiting for @lock. */
void rust_helper_lockdep_assert_not_held(struct mutex *lock)
{
	lockdep_assert_not_held(lock);
}

/* Around closures run under the mmap lock: user accesses fail, never fault. */
void rust_helper_pagefault_disable(void)
{
	pagefault_disable();
}

void rust_helper_pagefault_enable(void)
{
	pagefault_enable();
}

/*
 * For KUnit, in the test thread's mm (kunit_attach_mm()): maps @len bytes
 * of @file (MAP_SHARED, from page @pgoff) or, with no @file, anonymous
 * private memory; read-only unless @writable. Returns the address, or a
 * negative errno (IS_ERR_VALUE).
 */
unsigned long rust_hmm_vm_mmap(struct file *file, unsigned long len,
			       bool writable, unsigned long pgoff)
{
	unsigned long prot = PROT_READ | (writable ? PROT_WRITE : 0);
	unsigned long flags = file ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS;

	return vm_mmap(file, 0, len, prot, flags, pgoff << PAGE_SHIFT);
}

/* The dirty bit of the folio of @pfn, for KUnit. */
bool rust_hmm_page_dirty(unsigned long pfn)
{
	return folio_test_dirty(page_folio(pfn_to_page(pfn)));
}

/* A file of @fops with @priv as its private data, for KUnit. */
struct file *rust_hmm_anon_file(const struct file_operations *fops,
				void *priv)
{
	return anon_inode_getfile("[rust_hmm_kunit]", fops, priv, O_RDWR);
}

#ifndef MODULE
/*
 * Built in only (vma_ops/mapping_walk.rs): a walk_page_mapping() that
 * cleans and write-protects PTEs as page_vma_mkclean_one() does.
 */
void rust_helper_i_mmap_lock_read(struct address_space *mapping)
{
	i_mmap_lock_read(mapping);
}

void rust_helper_i_mmap_unlock_read(struct address_space *mapping)
{
	i_mmap_unlock_read(mapping);
}

pte_t rust_helper_ptep_get(pte_t *ptep)
{
	return ptep_get(ptep);
}

int rust_helper_pte_present(pte_t pte)
{
	return pte_present(pte);
}

int rust_helper_pte_dirty(pte_t pte)
{
	return pte_dirty(pte);
}

int rust_helper_pte_write(pte_t pte)
{
	return pte_write(pte);
}

unsigned long rust_helper_pte_pfn(pte_t pte)
{
	return pte_pfn(pte);
}

pte_t rust_helper_pte_mkclean(pte_t pte)
{
	return pte_mkclean(pte);
}

pte_t rust_helper_pte_wrprotect(pte_t pte)
{
	return pte_wrprotect(pte);
}

void rust_helper_set_pte_at(struct mm_struct *mm, unsigned long addr,
			    pte_t *ptep, pte_t pte)
{
	set_pte_at(mm, addr, ptep, pte);
}

void rust_helper_flush_cache_page(struct vm_area_struct *vma,
				  unsigned long addr, unsigned long pfn)
{
	flush_cache_page(vma, addr, pfn);
}

pmd_t rust_helper_pmdp_get_lockless(pmd_t *pmdp)
{
	return pmdp_get_lockless(pmdp);
}

bool rust_helper_pmd_leaf(pmd_t pmd)
{
	return pmd_leaf(pmd);
}

pud_t rust_helper_pudp_get(pud_t *pudp)
{
	return pudp_get(pudp);
}

bool rust_helper_pud_leaf(pud_t pud)
{
	return pud_leaf(pud);
}

void rust_helper_mmu_notifier_range_init(struct mmu_notifier_range *range,
					 enum mmu_notifier_event event,
					 unsigned int flags,
					 struct mm_struct *mm,
					 unsigned long start,
					 unsigned long end)
{
	mmu_notifier_range_init(range, event, flags, mm, start, end);
}

void rust_helper_mmu_notifier_invalidate_range_start(struct mmu_notifier_range *range)
{
	mmu_notifier_invalidate_range_start(range);
}

void rust_helper_mmu_notifier_invalidate_range_end(struct mmu_notifier_range *range)
{
	mmu_notifier_invalidate_range_end(range);
}
#endif /* !MODULE */
