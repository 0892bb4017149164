/* SPDX-License-Identifier: GPL-2.0 */
/* The sample device's C helpers (helpers.c), called from Rust (helpers.rs). */
#ifndef DMIRROR_HELPERS_H
#define DMIRROR_HELPERS_H

#include <linux/types.h>

struct page;

struct page *dmirror_alloc_data_page(void);
void dmirror_free_data_pfn(unsigned long pfn);
void dmirror_copy_from_pfn(struct page *to, unsigned long from_pfn);

/* The cache modes of HMM_DEVBUF_SET_CACHE. */
#define DMIRROR_CACHE_WB 0
#define DMIRROR_CACHE_UC 1
#define DMIRROR_CACHE_WC 2

unsigned long dmirror_prot_with_cache(unsigned long protval, unsigned int mode);
int dmirror_set_pages_cache(struct page **pages, int n, unsigned int mode);
bool dmirror_pat_enabled(void);
unsigned long dmirror_linear_cache_bits(struct page *page);
unsigned long dmirror_cache_mode_bits(unsigned int mode);
int dmirror_pat_memtype(unsigned long bits);

#endif
