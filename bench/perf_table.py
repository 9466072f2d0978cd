#!/usr/bin/env python3
"""The issue-19 table from shared-harness raw files (shared/bench/run.sh output), as Markdown.

usage: perf_table.py RAW [--floor FLOOR_RAW] [--update docs/performance.md]

RAW is a run with the gateway as its `gateway` target; FLOOR_RAW (optional) a run of the same harness with the
hyper floor as its `gateway` target, shown as `hyper-floor` with its own nginx-plain as the reference. Per
target: req/s and CPU µs per request relative to nginx-plain (medians of per-round paired ratios over the
clean pairs, i.e. rounds where both had their CPU >= 95 % busy; all pairs when fewer than 3 are clean), the
medians themselves, and the 1,000-connection pass (req/s, p99, peak RSS, each also as a ratio to nginx-plain).
With --update, the text between `<!-- shared-table:begin -->` and `<!-- shared-table:end -->` in the given file
is replaced.
"""
import datetime
import os
import platform
import re
import statistics as st
import subprocess
import sys


def parse(path):
    runs, loadmem, header = {}, {}, ""
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if f[0] == "#":
            header = line.strip()
        elif f[0] == "RUN":
            v = list(map(float, f[3:15]))
            sut = int(f[16]) if len(f) > 16 else 100
            runs.setdefault(f[2], []).append(
                dict(rps=v[2], p99=v[4] / 1000, cpu=v[11] / v[0] / 1000 if v[0] else 0, sat=sut >= 95)
            )
        elif f[0] == "LOADMEM":
            loadmem[f[1]] = dict(rss=int(f[2]) / 1024, rps=float(f[6]), p99=float(f[8]) / 1000)
    return runs, loadmem, header


def paired(runs, t, ref, key):
    """Median of per-round ratios t/ref (for cpu: t_cpu/ref_cpu, so >1 = costlier), clean pairs if >= 3."""
    pairs = [(a, b) for a, b in zip(runs[t], runs[ref]) if a[key] and b[key]]
    clean = [(a, b) for a, b in pairs if a["sat"] and b["sat"]]
    use = clean if len(clean) >= 3 else pairs
    if not use:
        return None, 0, False
    return st.median(a[key] / b[key] for a, b in use), len(use), use is clean


def rows(path, rename=None, only=None):
    runs, loadmem, header = parse(path)
    out = []
    for t in runs:
        if t == "direct" or (only and t not in only):
            continue
        name = (rename or {}).get(t, t)
        rps, n, clean = paired(runs, t, "nginx-plain", "rps")
        cpu = st.median(r["cpu"] for r in runs[t])
        cpu_ratio, _, _ = paired(runs, t, "nginx-plain", "cpu")
        lm, ref = loadmem.get(t), loadmem.get("nginx-plain")
        if lm and ref and ref["rps"] and ref["p99"] and ref["rss"]:
            at1000 = (
                f"{lm['rps']:,.0f} req/s ({lm['rps'] / ref['rps']:.2f}×), p99 {lm['p99']:.0f} ms "
                f"({lm['p99'] / ref['p99']:.1f}×), {lm['rss']:.0f} MiB ({lm['rss'] / ref['rss']:.1f}×)"
            )
        elif lm:
            at1000 = f"{lm['rps']:,.0f} req/s, p99 {lm['p99']:.0f} ms, {lm['rss']:.0f} MiB"
        else:
            at1000 = "-"
        ratio = f"{rps:.2f}" if rps is not None else "-"
        cpu_text = f"{cpu:.1f}" + (f" ({cpu_ratio:.2f}×)" if cpu_ratio is not None and t != "nginx-plain" else "")
        out.append((name, ratio, f"{n} {'clean' if clean else 'all'}", cpu_text, at1000))
    return out, header


def machine():
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model or platform.machine()}), {platform.system()} {platform.release()}"


def when(path):
    m = re.search(r"(\d{8})-(\d{6})", os.path.basename(path))
    if m:
        return datetime.datetime.strptime("".join(m.groups()), "%Y%m%d%H%M%S").strftime("%Y-%m-%d %H:%M")
    return datetime.datetime.fromtimestamp(os.path.getmtime(path)).strftime("%Y-%m-%d %H:%M")


def table(raw, floor=None):
    body, header = rows(raw)
    lines = [
        f"Shared harness run of {when(raw)} on {machine()}: `{header.lstrip('# ')}`.",
        "",
        "| target | req/s × nginx-plain | pairs | CPU µs / request (× nginx-plain) | at 1,000 connections: req/s, p99, RSS (× nginx-plain) |",
        "|---|---:|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in body]
    if floor:
        fb, fh = rows(floor, rename={"gateway": "hyper-floor"}, only={"gateway"})
        lines += [f"| {' | '.join(r)} (run of {when(floor)}) |" for r in fb]
    lines.append("")
    lines.append(
        "Ratios are medians of per-round paired ratios against the same run's nginx-plain; `pairs` says how many "
        "rounds and whether only clean ones (both CPUs ≥ 95 % busy) were used."
    )
    return "\n".join(lines)


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    raw, floor, update = args[0], None, None
    if "--floor" in args:
        floor = args[args.index("--floor") + 1]
    if "--update" in args:
        update = args[args.index("--update") + 1]
    text = table(raw, floor)
    print(text)
    if update:
        doc = open(update).read()
        begin, end = "<!-- shared-table:begin -->", "<!-- shared-table:end -->"
        if begin not in doc or end not in doc:
            sys.exit(f"{update}: no {begin} ... {end} markers")
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        open(update, "w").write(f"{head}{begin}\n{text}\n{end}{tail}")


main()
