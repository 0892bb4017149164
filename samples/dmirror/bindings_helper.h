/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What bindgen reads for the sample's helpers.rs (scripts/bindgen.sh, as
 * for the library's rust/bindings/bindings_helper.h): its C helpers, and
 * mapping_wrprotect_range() from linux/rmap.h, which only its device
 * buffers use.
 */
#include <linux/rmap.h>

#include "helpers.h"
