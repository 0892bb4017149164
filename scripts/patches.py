#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""patches.py KSRC OUT: writes OUT/00NN-*.patch, a `git format-patch` series
against the kernel source KSRC that adds the library in rust/ to the kernel
crate (as kernel::mm::*) and the sample in samples/dmirror/ as
samples/rust/rust_dmirror/.

The series is generated, not kept: the out-of-tree sources stay the only
copy. What changes on the way in is mechanical and listed in lib_rs() and
sample_rs(): `kernel::` becomes `crate::` inside the kernel crate, the
library's modules move under `mm`, and the generated `ffi` module becomes
the kernel's own `bindings` (the same bindgen run over the same headers, so
the same names and types). Only files the series touches go into the
scratch repository, so the patches apply to the whole tree as they are.
"""
import os
import re
import shutil
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB_MODS = ['device_exclusive', 'device_pt', 'devmem', 'folio', 'gpusvm', 'guarded_page', 'hmm',
            'hmm_dma', 'kunit_mm', 'migrate', 'mmu_notifier', 'pfn_walk', 'sort', 'vma_ops']
# What the kernel needs built in for each module (the kernel crate is
# built in, so it may only call what is there).
GATE = 'all(CONFIG_HMM_MIRROR, CONFIG_DEVICE_PRIVATE, CONFIG_TRANSPARENT_HUGEPAGE)'
CFG = {m: GATE for m in LIB_MODS}
CFG['sort'] = None
CFG['folio'] = None
CFG['kunit_mm'] = 'all(CONFIG_KUNIT = "y", %s)' % GATE[4:-1]
# Files of the kernel the series changes (the scratch repository's base).
BASE_FILES = ['rust/bindings/bindings_helper.h', 'rust/helpers/helpers.c',
              'rust/kernel/mm.rs', 'samples/rust/Kconfig', 'samples/rust/Makefile']
AUTHOR = 'The Rust HMM developers <rust-hmm@users.noreply.example>'
SIGNOFF = 'Signed-off-by: ' + AUTHOR
DATE = '2026-12-06T00:00:00+00:00'


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def fix_ffi_imports(lines, use_from):
    """`use crate::ffi;` becomes an import of `bindings` from `use_from`,
    unless the same block already imports `bindings`."""
    out = []
    for i, line in enumerate(lines):
        m = re.match(r'^(\s*)use crate::ffi;$', line)
        if not m:
            out.append(line)
            continue
        ind = m.group(1)
        has = False
        depth_ind = None
        for other in lines:
            if re.match(r'^%suse (crate|kernel)::bindings;' % ind, other):
                has = True
            g = re.match(r'^(%s)use (crate|kernel)::\{' % ind, other)
            if g:
                depth_ind = ind + '    '
            elif depth_ind is not None:
                if re.match(r'^%sbindings,' % depth_ind, other):
                    has = True
                if re.match(r'^%s\}' % ind, other):
                    depth_ind = None
        if not has:
            out.append('%suse %s::bindings;' % (ind, use_from))
    return out


def rewrite(text, code_sub, use_from, mod_prefix):
    out = []
    for line in text.split('\n'):
        doc = line.lstrip().startswith('//')
        if doc:
            line = re.sub(r'\brust_hmm::', 'kernel::mm::', line)
        else:
            line = code_sub(line)
        line = re.sub(r'(?<![:\w])crate::(%s)\b' % '|'.join(LIB_MODS),
                      mod_prefix + r'\1', line)
        line = re.sub(r'(?<![:\w])ffi::rust_hmm_', 'bindings::hmm_', line)
        line = re.sub(r'(?<![:\w])ffi::(?!c_)', 'bindings::', line)
        out.append(line)
    return '\n'.join(fix_ffi_imports(out, use_from))


def lib_rs(text):
    """A file of rust/ as a file of the kernel crate."""
    def code(line):
        line = line.replace('kernel::macros::kunit_tests', 'macros::kunit_tests')
        return re.sub(r'(?<![:\w])kernel::', 'crate::', line)
    return rewrite(text, code, 'crate', 'crate::mm::')


def sample_rs(text):
    """A file of samples/dmirror/ as a file of the in-tree sample."""
    text = rewrite(text, lambda line: line, 'kernel', 'kernel::mm::')
    text = text.replace('helpers::mapping_wrprotect_range', 'bindings::mapping_wrprotect_range')
    if 'helpers::' not in text:
        text = text.replace('use crate::helpers;\n', '')
    return text


def helpers_c(text):
    """rust/helpers.c as rust/helpers/hmm.c: every function a helper."""
    text = re.sub(r'/\*\n \* The kernel functions.*?\*/\n', '', text, count=1, flags=re.S)
    text = text.replace('#include "helpers.h"\n\n', '')
    # The kernel crate is built in: what only built-in code may call needs
    # no guard there.
    text = text.replace('#ifndef MODULE\n', '').replace('#endif /* !MODULE */\n', '')
    # One-line wrappers are inlined into Rust like the kernel's own; the
    # loops (rust_hmm_*) stay functions.
    text = re.sub(r'^(?!static|#|\s|/|\*|\{|\})([a-z][\w \*]*\brust_helper_\w+\()',
                  r'__rust_helper \1', text, flags=re.M)
    text = re.sub(r'\brust_hmm_(\w+)\(', r'rust_helper_hmm_\1(', text)
    head = ('// SPDX-License-Identifier: GPL-2.0\n\n'
            '/*\n * Helpers of kernel::mm::{mmu_notifier, hmm, migrate, devmem, ...}: wrappers\n'
            ' * of static inlines, and loops over pages that would otherwise cost a\n'
            ' * call per page.\n */\n')
    return head + text.split('\n', 1)[1].lstrip('\n')


class Tree:
    def __init__(self, ksrc, work):
        self.ksrc, self.dir = ksrc, work
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        for f in BASE_FILES:
            write(os.path.join(work, f), read(os.path.join(ksrc, f)))
        self.git('init', '-q')
        self.commit('base: the files of Linux %s the series changes' % kver(ksrc))
        self.mods = []

    def git(self, *args):
        env = dict(os.environ, GIT_AUTHOR_DATE=DATE, GIT_COMMITTER_DATE=DATE,
                   GIT_AUTHOR_NAME=AUTHOR.split(' <')[0],
                   GIT_AUTHOR_EMAIL=AUTHOR.split('<')[1][:-1],
                   GIT_COMMITTER_NAME=AUTHOR.split(' <')[0],
                   GIT_COMMITTER_EMAIL=AUTHOR.split('<')[1][:-1])
        return subprocess.run(['git', '-C', self.dir] + list(args), env=env,
                               check=True, capture_output=True, text=True).stdout

    def commit(self, msg):
        self.git('add', '-A')
        self.git('commit', '-q', '--no-gpg-sign', '-m', msg)

    def path(self, rel):
        return os.path.join(self.dir, rel)

    def edit(self, rel, fn):
        write(self.path(rel), fn(read(self.path(rel))))

    def add_lib_module(self, name):
        src = os.path.join(TOP, 'rust')
        text = lib_rs(read('%s/%s.rs' % (src, name)))
        if name == 'kunit_mm':
            # The examples that use it are a crate of their own in tree.
            text = text.replace('pub(crate) ', 'pub ')
        write(self.path('rust/kernel/mm/%s.rs' % name), text)
        sub = os.path.join(src, name)
        if os.path.isdir(sub):
            for f in sorted(os.listdir(sub)):
                if f.endswith('.rs'):
                    write(self.path('rust/kernel/mm/%s/%s' % (name, f)),
                          lib_rs(read(os.path.join(sub, f))))
        rustfmt(self.ksrc, [self.path('rust/kernel/mm/%s.rs' % name)])
        self.mods.append(name)
        base = read(os.path.join(self.ksrc, 'rust/kernel/mm.rs'))
        decl = ''
        for m in sorted(self.mods):
            if CFG[m]:
                conds = CFG[m][len('all('):-1].split(', ')
                decl += '#[cfg(all(\n' + ''.join('    %s,\n' % c for c in conds) + '))]\n'
            decl += '#[doc(hidden)]\n' if m == 'kunit_mm' else ''
            decl += 'pub mod %s;\n' % m
        write(self.path('rust/kernel/mm.rs'),
              base.replace('pub mod virt;\n', 'pub mod virt;\n' + decl, 1))


def rustfmt(ksrc, paths):
    """The renames change line lengths: format as the kernel's tree is."""
    subprocess.run([os.environ.get('RUSTFMT', '/usr/bin/rustfmt'), '--edition', '2021',
                    '--config-path', os.path.join(ksrc, '.rustfmt.toml')] + paths, check=True)


def kver(ksrc):
    return subprocess.run(['make', '-s', '-C', ksrc, 'kernelversion'],
                          capture_output=True, text=True, check=True).stdout.strip()


def msg(subject, body):
    return '%s\n\n%s\n\n%s\n' % (subject, body.strip(), SIGNOFF)


def bindings_patch(t):
    ours = read(os.path.join(TOP, 'rust/bindings/bindings_helper.h'))
    includes = re.findall(r'^#include <[^>]+>$', ours, re.M)
    consts = ours[ours.index('#include "../helpers.h"') + len('#include "../helpers.h"'):].strip()

    def bh(text):
        have = set(re.findall(r'^#include <[^>]+>$', text, re.M))
        for inc in includes:
            if inc in have:
                continue
            # Keep the kernel's alphabetical order of <linux/...> includes.
            lines = text.split('\n')
            first = lines.index('#include <linux/acpi.h>')
            for i, line in enumerate(lines[first:], first):
                if line.startswith('#include <linux/') and line > inc:
                    lines.insert(i, inc)
                    break
            text = '\n'.join(lines)
        anchor = '#if IS_ENABLED(CONFIG_GPU_BUDDY)'
        block = '/* kernel::mm::{hmm, migrate} */\n' + consts + '\n\n'
        return text.replace(anchor, block + anchor, 1)
    t.edit('rust/bindings/bindings_helper.h', bh)
    write(t.path('rust/helpers/hmm.c'), helpers_c(read(os.path.join(TOP, 'rust/helpers.c'))))
    t.edit('rust/helpers/helpers.c',
           lambda s: s.replace('#include "interrupt.c"\n', '#include "hmm.c"\n#include "interrupt.c"\n', 1))
    t.commit(msg('rust: bindings: add HMM, migration and device-memory headers',
                 '''
Generate bindings for linux/hmm.h, linux/hmm-dma.h, linux/migrate.h,
linux/memremap.h, linux/rmap.h, linux/huge_mm.h and linux/pagewalk.h,
and add the helpers the abstractions over them need: one-line wrappers
of static inlines, and a few loops over the pages of a range that would
otherwise cost one call per page.

Macros bindgen cannot evaluate (values with bit 63 set, enum values used
as flags) are given a type with RUST_CONST_HELPER_*.
'''))


LIB_PATCHES = [
    (['sort'], 'rust: mm: add an in-place sort usable under a spinlock', '''
core's sort_unstable() ends in a panic helper that objtool does not know
as noreturn, so every caller is reported as falling through. The device
memory allocator and the PFN walker sort under spinlocks; give them a
heapsort that neither allocates nor panics.
'''),
    (['folio'], 'rust: mm: add Folio, reference counted, with lock guards', '''
Add kernel::mm::folio::Folio, always reached through a reference
(ARef<Folio> owns one), with FolioGuard for its lock and LockedFolio for
what C returns "locked and referenced" (make_device_exclusive()), so
that a folio is unlocked and released exactly once on every path.
'''),
    (['mmu_notifier', 'kunit_mm'], 'rust: mm: add mmu_interval_notifier abstraction', '''
Add safe wrappers for mmu_interval_notifier: insertion and removal,
the invalidate callback as a trait, and the read_begin()/read_retry()
sequence protocol as types, so that a driver cannot publish what it
read without checking the sequence under its notifier lock.

Also add KUnit helpers that give a test its own mm with anonymous and
file mappings, for the suites of this and the following patches.
'''),
    (['hmm', 'guarded_page'], 'rust: mm: add hmm_range_fault() abstraction', '''
Add hmm::Range, which faults a range of a notifier's interval with
hmm_range_fault() (with the mmap lock held, or with
hmm_range_fault_unlocked_timeout()), and returns the PFNs with a
sequence number that must be validated under the notifier lock.
guarded_page gives access to the pages only while that lock is held.
'''),
    (['hmm_dma'], 'rust: mm: add hmm_dma_map abstraction', '''
Add hmm_dma::DmaMap over hmm_dma_map_alloc(), hmm_dma_map_pfn() and
hmm_dma_unmap_pfn(): the DMA mappings of a window of a notifier's
interval for one device, kept in the notifier state, so that a page is
mapped only under the lock that validated it and unmapped by the
invalidation that ends its validity, which behind an IOMMU flushes the
IOTLB before it returns. The DMA address borrows the validated pages, so
software cannot keep it past the notifier lock.
'''),
    (['migrate'], 'rust: mm: add migrate_vma abstraction', '''
Add migrate::Migration over migrate_vma_setup(), migrate_vma_pages() and
migrate_vma_finalize() (and the migrate_device_* calls for memory that
is not mapped): sources are typed, destinations are allocated folios
that are handed over, and a Migration dropped early restores every page.
'''),
    (['devmem'], 'rust: mm: add device memory pools', '''
Add devmem: a pool of device pages over memremap_pages(), grown in
chunks, with migration to and from system memory, and eviction. The
driver's ops name the kind of memory as a type: MEMORY_DEVICE_PRIVATE
(address space no RAM uses, PMD-sized folios, CPU faults moved back by
the pool) or MEMORY_DEVICE_COHERENT (soft-reserved memory the CPU maps
directly, single pages). Every migration of the pool's pages commits
through the pool, which keeps the state of each page, so that eviction
never moves a page whose data is already moving.
'''),
    (['device_exclusive'], 'rust: mm: add device-exclusive access', '''
Add device_exclusive over make_device_exclusive(): a session that makes
pages exclusive to the device one by one and maps them under the
notifier lock, for device atomics on system memory.
'''),
    (['pfn_walk'], 'rust: mm: add a walker over the PTEs that map a file', '''
Add pfn_walk: for every VMA that maps a range of one of the driver's
files, the PTEs that map it, for dirty tracking and write-protection.
'''),
    (['vma_ops'], 'rust: mm: add callbacks for the VMAs of a driver\'s file', '''
Add vma_ops: a VmOps trait (open, close, fault, pfn_mkwrite) for the
VM_PFNMAP mappings of a driver's own file, with the object each VMA
maps owned by the VMA as an Arc, faults as a type valid only during the
callback, PFN insertion that re-checks what vmf_insert_pfn_prot() would
BUG() on, and protections built only from vm_get_page_prot() and the
cache-mode helpers. The VMAs are kept in the object's pfn_walk registry.

VmOpsTable::walk_mapping() walks the PTEs of a file range in every VMA of
the table with walk_page_mapping(), calling a closure per PTE under the
PTE lock that may clean and write-protect it, bracketed by an mmu
notifier range and a TLB flush per VMA as mm/mapping_dirty_helpers.c
does: dirty tracking in one walk.
'''),
    (['gpusvm'], 'rust: mm: add a shared virtual memory range layer', '''
Add gpusvm, the layer drm_gpusvm gives C drivers: a GpuSvm over part of
a process address space keeps device ranges sized from the driver's
chunk sizes to fit the VMA, watched by one interval notifier per aligned
chunk, made on the first fault there and removed when its last range
goes. All the notifiers share one notifier lock, which guards the
driver's state, so a page-table update over many ranges is one critical
section. An unmap marks the ranges it touches; a garbage collector
removes them. hmm::Range takes any of this crate's notifiers through
the sealed SeqNotifier trait, so faults go through the same code.
'''),
    (['device_pt'], 'rust: mm: add a software device page table', '''
Add device_pt: a multi-level page table for devices without a hardware
format of their own (and for test vehicles), with valid, write, dirty
and exclusive bits and PMD-sized leaves, updated under the notifier
lock. A driver with a hardware page table would not use it; it lives in
the kernel crate so that it can be shared by samples and tests.
'''),
]

KCONFIG = '''config SAMPLE_RUST_DMIRROR
	tristate "HMM mirror device"
	depends on DEVICE_PRIVATE && MIGRATION && TRANSPARENT_HUGEPAGE && PCI
	select HMM_MIRROR
	help
	  This option builds the Rust HMM mirror sample: misc devices
	  /dev/rust_hmm_dmirror0 and 1 that mirror the address space of the
	  process that opens them, speaking the ioctl ABI of
	  lib/test_hmm_uapi.h, so that tools/testing/selftests/mm/hmm-tests
	  runs against them; and a driver for QEMU's edu PCI DMA engine,
	  with /dev/rust_hmm_dmirror_dma, whose reads and writes move
	  process memory by DMA.

	  To compile this as a module, choose M here:
	  the module will be called rust_dmirror.

	  If unsure, say N.

'''

SAMPLE_MAKEFILE = '''# SPDX-License-Identifier: GPL-2.0

obj-$(CONFIG_SAMPLE_RUST_DMIRROR) += rust_dmirror.o
rust_dmirror-y := rust_dmirror_main.o helpers.o

# helpers.rs includes bindings of the C helpers, generated with the options
# and flags the kernel used for rust/bindings (bindgen.sh).
quiet_cmd_dmirror_bindgen = BINDGEN $@
      cmd_dmirror_bindgen = BINDGEN=$(BINDGEN) bash \\
	$(src)/bindgen.sh $(objtree) $< $@ --allowlist-function 'dmirror_.*'
$(obj)/bindings_generated.rs: $(src)/bindings_helper.h $(src)/helpers.h \\
	$(src)/bindgen.sh FORCE
	$(call if_changed,dmirror_bindgen)
$(obj)/rust_dmirror_main.o: $(obj)/bindings_generated.rs
targets += bindings_generated.rs
'''


def sample_patch(t):
    src = os.path.join(TOP, 'samples/dmirror')
    dst = 'samples/rust/rust_dmirror'
    for root, _, files in os.walk(src):
        for f in sorted(files):
            rel = os.path.relpath(os.path.join(root, f), src)
            if f.endswith('_generated.rs') or not re.search(r'\.(rs|c|h)$', f):
                continue
            text = read(os.path.join(root, f))
            if f.endswith('.rs'):
                text = sample_rs(text)
            if rel == 'rust_dmirror.rs':
                rel = 'rust_dmirror_main.rs'
                text = re.sub(r'// The library, mounted here.*?pub use rust_hmm::\*;\n\n', '', text, flags=re.S)
                text = re.sub(r'// The library\'s `# Examples`.*?\n}\n\n', '', text, flags=re.S)
                text = text.replace('name: "rust_hmm",', 'name: "rust_dmirror",')
            if rel == 'helpers.rs':
                text = text.replace('include!("bindings_generated.rs");',
                                    'include!(concat!(env!("OBJTREE"), "/samples/rust/rust_dmirror/bindings_generated.rs"));')
            if rel == 'bindings_helper.h':
                text = text.replace('#include <linux/rmap.h>\n\n', '')
            write(t.path(os.path.join(dst, rel)), text)
    rustfmt(t.ksrc, [t.path(dst + '/rust_dmirror_main.rs')])
    shutil.copy(os.path.join(TOP, 'scripts/bindgen.sh'), t.path(dst + '/bindgen.sh'))
    write(t.path(dst + '/Makefile'), SAMPLE_MAKEFILE)
    t.edit('samples/rust/Kconfig', lambda s: s.replace('config SAMPLE_RUST_PRINT\n', KCONFIG + 'config SAMPLE_RUST_PRINT\n', 1))
    t.edit('samples/rust/Makefile', lambda s: s.replace(
        'obj-$(CONFIG_SAMPLE_RUST_PRINT)',
        'obj-$(CONFIG_SAMPLE_RUST_DMIRROR)		+= rust_dmirror/\nobj-$(CONFIG_SAMPLE_RUST_PRINT)', 1))
    t.commit(msg('samples: rust: add an HMM mirror device', '''
Add a misc device that mirrors the address space of the process that
opens it through kernel::mm::{mmu_notifier, hmm, device_exclusive,
migrate, devmem}, speaking the ioctl ABI of lib/test_hmm_uapi.h so that
the hmm-tests selftest runs against it beside test_hmm (device-private
and, over soft-reserved memory, device-coherent devices): a Rust
counterpart of lib/test_hmm.c, and an example of every abstraction.
The module also drives QEMU's edu PCI device, a DMA engine, for a mirror
that reaches process memory by DMA through kernel::mm::hmm_dma, and whose
invalidations wait for the device before they unmap.
'''))


def main():
    ksrc, out = sys.argv[1], os.path.abspath(sys.argv[2])
    t = Tree(ksrc, out + '.git')
    bindings_patch(t)
    for mods, subject, body in LIB_PATCHES:
        for m in mods:
            t.add_lib_module(m)
        t.commit(msg(subject, body))
    sample_patch(t)
    shutil.rmtree(out, ignore_errors=True)
    t.git('format-patch', '-q', '--no-signature', '--zero-commit', '-o', out, 'HEAD~%d' % (len(LIB_PATCHES) + 2))
    for f in sorted(os.listdir(out)):
        print(os.path.join(out, f))


if __name__ == '__main__':
    main()
