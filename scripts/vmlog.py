"""Judge a QEMU console log: job status, timeouts and kernel splats."""
import re
from collections import Counter
from dataclasses import dataclass, field

# Kernel lines carry a printk timestamp; user-space output does not, so a
# test that prints "WARNING:" can never be mistaken for a kernel splat.
KLINE = re.compile(r"^\[\s*\d+\.\d+\] (.*)$")
SPLATS = [
    re.compile(p) for p in (
        r"^BUG: ",                       # KASAN, bad page, sleeping in atomic
        r"^kernel BUG at ",
        r"^WARNING: ",                   # WARN*(), lockdep reports
        r"^Oops",
        r"^general protection fault",
        r"^Kernel panic",
        r"^UBSAN: ",
        r"^Unable to handle kernel",
        r"^INFO: task .* blocked for more than",
        r"^INFO: rcu_.* (self-)?detected stall",
        r"^rcu: INFO: rcu_.* detected stall",
        r"^watchdog: BUG: soft lockup",
        r"^kmemleak: \d+ new suspected memory leaks",
        r"^unreferenced object 0x",
        # A device used a DMA address the IOMMU no longer maps: the ordering
        # bug an invalidation must rule out (intel-iommu, virtio-iommu).
        r"^DMAR: \[DMA (Read|Write|PTE)",
        r"^virtio_iommu .*fault from EP",
    )
]
EXIT = re.compile(r"@@VM-EXIT-STATUS=(\d+)@@")


@dataclass
class Verdict:
    ok: bool
    splats: int
    problems: list = field(default_factory=list)


def splat_lines(text):
    """Kernel log lines that start a splat, in order."""
    out = []
    for line in text.splitlines():
        m = KLINE.match(line.strip("\r"))
        if m and any(p.search(m.group(1)) for p in SPLATS):
            out.append(m.group(1))
    return out


CUT_HERE = "------------[ cut here ]------------"
# What __warn() prints for WARN*() (not lockdep's "WARNING: possible ...").
WARN_AT = re.compile(r"^WARNING: (?:(\S+:\d+) )?at ")
ADDR = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+|0x[0-9a-f]{8,}")


def splat_kinds(text):
    """Each splat of a kernel log, in order, as (kind, what): ("WARN", its
    message, or its file:line when the message cannot be told) for a
    WARN*(), ("splat", its first line without addresses) for the rest."""
    out, prev = [], []
    for line in text.splitlines():
        m = KLINE.match(line.strip("\r"))
        if not m:
            continue
        k = m.group(1)
        if any(p.search(k) for p in SPLATS):
            w = WARN_AT.match(k)
            if w:
                # WARN(cond, fmt) prints "cut here", its message, then
                # the WARNING line.
                what = (prev[-1].strip() if len(prev) == 2 and prev[0] == CUT_HERE
                        else w.group(1) or "unknown place")
                out.append(("WARN", what))
            else:
                out.append(("splat", ADDR.sub("", k).strip()))
        prev = (prev + [k])[-2:]
    return out


def splat_summary(kinds):
    """"160 WARNs (Conflicting mapping in same section), 1 x BUG: ..." from
    splat_kinds(), most frequent first; "no splat" for none."""
    if not kinds:
        return "no splat"
    parts = []
    for (kind, what), n in Counter(kinds).most_common():
        parts.append(f"{n} WARN{'' if n == 1 else 's'} ({what})" if kind == "WARN"
                     else f"{n} x {what}")
    return ", ".join(parts)


def judge(text, timed_out=False, timeout=0, dmesg=None, splats_fail=True):
    """The verdict on a boot. With splats_fail=False (a boot whose splats
    are information, such as test_hmm.ko's own) splats are counted but
    fail nothing."""
    problems = []
    splats = splat_lines(text)
    if dmesg is not None:
        more = splat_lines(dmesg)
        if len(more) > len(splats):
            splats = more
    for s in splats if splats_fail else []:
        problems.append("kernel splat: " + s)
    if timed_out:
        problems.append(f"VM timed out after {timeout} s and was killed")
    m = EXIT.search(text)
    if m is None and not timed_out:
        problems.append("VM stopped before the job finished (panic?)")
    elif m is not None and m.group(1) != "0":
        problems.append(f"job exited with status {m.group(1)}")
    return Verdict(ok=not problems, splats=len(splats), problems=problems)


@dataclass
class Section:
    name: str
    text: str
    rc: int  # -1: the section never ended


BEGIN = re.compile(r"^@@BEGIN (\S+)@@$")
END = re.compile(r"^@@END (\S+) rc=(\d+)@@$")


def sections(data):
    """The job's sections on the data channel, by name."""
    out, cur, lines = {}, None, []
    for line in data.splitlines():
        line = line.rstrip("\r")
        m = BEGIN.match(line)
        if m:
            cur, lines = m.group(1), []
            continue
        m = END.match(line)
        if m and cur == m.group(1):
            out[cur] = Section(cur, "\n".join(lines), int(m.group(2)))
            cur = None
            continue
        if cur is not None:
            lines.append(line)
    if cur is not None:
        out[cur] = Section(cur, "\n".join(lines), -1)
    return out


KTAP_LINE = re.compile(r"^\s*(KTAP version \d+|\d+\.\.\d+|(not )?ok \d+|# )")


def ktap(dmesg):
    """The KTAP lines of a kernel log, timestamps stripped."""
    out = []
    for line in dmesg.splitlines():
        m = KLINE.match(line)
        if m and KTAP_LINE.match(m.group(1)):
            out.append(m.group(1))
    return out


def ktap_documents(dmesg, suite_prefix):
    """KTAP documents (one per batch of suites the kernel ran: built-in
    ones at boot, then one per module load) that run a suite whose name
    starts with `suite_prefix`."""
    docs, cur = [], None
    for line in ktap(dmesg):
        if line.startswith("KTAP version"):
            cur = []
            docs.append(cur)
        if cur is not None:
            cur.append(line)
    mark = "# Subtest: " + suite_prefix
    return [d for d in docs if any(mark in line for line in d)]


CASE = re.compile(r"^(not ok|ok) \d+ (\S+)(.*)$")


@dataclass
class Cases:
    passed: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    skip_reason: dict = field(default_factory=dict)


def harness_cases(text):
    """Per-case results of a kselftest-harness program (top level only)."""
    c = Cases()
    for line in text.splitlines():
        m = CASE.match(line)
        if not m:
            continue
        name, rest = m.group(2), m.group(3)
        if "# SKIP" in rest:
            c.skipped.append(name)
            c.skip_reason[name] = rest.split("# SKIP", 1)[1].strip()
        elif m.group(1) == "ok" or "# XFAIL" in rest:
            c.passed.append(name)
        else:
            c.failed.append(name)
    return c


def case_log(text, name, limit=15):
    """The last `limit` lines a harness case printed between its RUN line
    and its result: the failed expectations, for the summary."""
    out, inside = [], False
    for line in text.splitlines():
        if re.match(r"^#\s+RUN\s+" + re.escape(name) + r"\b", line):
            out, inside = [], True
        elif inside and CASE.match(line):
            break
        elif inside:
            out.append(line)
    return out[-limit:]


TOTALS = re.compile(r"# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) "
                    r"xpass:(\d+) skip:(\d+) error:(\d+)")
