#!/usr/bin/env python3
"""Summarise a bench/compare.sh raw file (adapted from shared/bench/report.py).

usage: report.py [--markdown] RAW

Raw line formats (written by compare.sh):
  # layout=... proxy_cpus=... threads=... dur=... rounds=... conns=... wrk_threads=... gateway=...
  RUN round target requests dur_us rps p50_us p99_us max_us non2xx conn_err read_err write_err timeouts cpu_ns busy0/busy1 sut_busy
  IDLE target rss_kb pss_kb            IDLEAFTER target rss_kb pss_kb
  LOADMEM target conns peak_rss_kb peak_pss_kb <the 11 wrk fields of RUN>
  CPUS n model                         STEAL jiffies seconds
Ratios are medians of per-round paired ratios (the targets run interleaved, so a pair shares the host's noise).
"""
import statistics as st
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
MD = "--markdown" in sys.argv
if not args:
    sys.exit(__doc__)
raw = args[0]

hdr, runs, idle, idle_after, lm, order, steal, cpus = {}, {}, {}, {}, {}, [], None, None
for ln in open(raw):
    f = ln.split()
    if not f:
        continue
    if f[0] == "#":
        hdr = dict(x.split("=", 1) for x in f[1:] if "=" in x)
    elif f[0] == "RUN":
        t = f[2]
        v = list(map(float, f[3:15]))
        if t not in runs:
            runs[t] = []
            order.append(t)
        runs[t].append(dict(rps=v[2], p50=v[3] / 1000, p99=v[4] / 1000, bad=v[6] + sum(v[7:11]),
                            cpu=(v[11] / v[0] / 1000 if v[0] else 0), sat=int(f[16]) >= 95 if len(f) > 16 else True))
    elif f[0] == "IDLE":
        idle[f[1]] = (int(f[2]), int(f[3]))
    elif f[0] == "IDLEAFTER":
        idle_after[f[1]] = (int(f[2]), int(f[3]))
    elif f[0] == "LOADMEM":
        lm.setdefault(f[1], {})[int(f[2])] = dict(rss=int(f[3]), pss=int(f[4]), rps=float(f[7]), p99=float(f[9]) / 1000,
                                                  bad=int(f[11]) + sum(map(int, f[12:16])))
    elif f[0] == "STEAL":
        steal = (int(f[1]), int(f[2]))
    elif f[0] == "CPUS":
        cpus = (f[1], f[2].replace("_", " ") if len(f) > 2 else "")
if not runs:
    sys.exit("no RUN lines in " + raw)

layout = hdr.get("layout", "?")
pcpu = hdr.get("proxy_cpus", "")


def paired(t, ref, key, clean=False):
    """per-round paired ratios; key 'cpu' is inverted (ref/target: >1 = target cheaper)."""
    if ref not in runs or t not in runs:
        return []
    return [(b[key] / a[key] if key == "cpu" else a[key] / b[key])
            for a, b in zip(runs[t], runs[ref]) if a[key] and b[key] and (not clean or (a["sat"] and b["sat"]))]


def fmt(per):
    return f"{st.median(per):.2f} [{min(per):.2f}-{max(per):.2f}]" if per else "-"


def best(t, ref, key):
    """clean pairs when there are >= 3, else all pairs; returns (median, n, clean?)."""
    c = paired(t, ref, key, True)
    if len(c) >= 3:
        return st.median(c), len(c), True
    a = paired(t, ref, key)
    return (st.median(a) if a else None), len(a), False


def med(t, k):
    return st.median(r[k] for r in runs[t])


def rps_stats(t):
    """Median req/s of target t and the spread of its rounds, (max-min)/median in percent."""
    rp = [r["rps"] for r in runs[t]]
    m = st.median(rp)
    return m, (max(rp) - min(rp)) / m * 100 if m else 0


def sat_bad(t):
    """Saturated rounds of target t and its error count."""
    return sum(r["sat"] for r in runs[t]), int(sum(r["bad"] for r in runs[t]))


nr = max(len(r) for r in runs.values())
sut = f"cpu{pcpu}" if pcpu else "both cpus"
mib = lambda kb: kb / 1024
REFS = [("nginx-plain", "nginx"), ("haproxy-jwt", "hap-jwt")]

if not MD:
    print(f"\nlayout={layout}: medians over {nr} rounds; ratios = median of per-round paired ratios [min-max]")
    print("  req/s x REF >1 = more req/s than REF; cpu us = on-CPU time per request of the target's own processes;")
    print("  cpu x REF = REF_cpu/target_cpu (>1 = cheaper than REF); spread = (max-min)/median req/s;")
    print(f"  sat = rounds with the SUT CPU ({sut}) >=95% busy; unsaturated rounds = host noise (or client-bound)")
    print(f"{'target':<15}{'req/s':>8}{'spread':>7}{'p50ms':>7}{'p99ms':>7}{'cpu us':>7}  "
          f"{'req/s x nginx':<17}{'req/s x hap-jwt':<17}{'cpu x hap-jwt':<17}{'sat':>5}{'bad':>4}")
    for t in order:
        m, spread = rps_stats(t)
        sat, bad = sat_bad(t)
        print(f"{t:<15}{m:>8.0f}{spread:>6.0f}%{med(t, 'p50'):>7.2f}{med(t, 'p99'):>7.2f}{med(t, 'cpu'):>7.1f}  "
              f"{fmt(paired(t, 'nginx-plain', 'rps')):<17}{fmt(paired(t, 'haproxy-jwt', 'rps')):<17}"
              f"{fmt(paired(t, 'haproxy-jwt', 'cpu')):<17}{sat:>2}/{len(runs[t]):<2}{bad:>4}")
    print("\nclean pairs only (both rounds had the SUT CPU >=95% busy); n = pairs used vs nginx/hap-jwt")
    print(f"{'target':<15}{'n':>5}  {'req/s x nginx':<17}{'req/s x hap-jwt':<17}{'cpu x nginx':<17}{'cpu x hap-jwt':<17}")
    for t in order:
        a = paired(t, "nginx-plain", "rps", True)
        b = paired(t, "haproxy-jwt", "rps", True)
        print(f"{t:<15}{f'{len(a)}/{len(b)}':>5}  {fmt(a):<17}{fmt(b):<17}"
              f"{fmt(paired(t, 'nginx-plain', 'cpu', True)):<17}{fmt(paired(t, 'haproxy-jwt', 'cpu', True)):<17}")
    if "gateway-public" in runs and "gateway" in runs:
        r = paired("gateway", "gateway-public", "rps")
        c = paired("gateway", "gateway-public", "cpu")
        print(f"\ntoken verification: gateway / gateway-public req/s {fmt(r)}, cpu x {fmt(c)}")
    print(f"\n{'target':<15}{'idle RSS MiB':>13}{'conns':>7}{'load RSS MiB':>13}{'req/s':>8}{'p99 ms':>8}{'bad':>7}"
          f"{'after MiB':>10}")
    for t in order:
        i = idle.get(t, (0, 0))
        a = idle_after.get(t)
        rows = sorted(lm.get(t, {}).items()) or [("", None)]
        for n, (c, l) in enumerate(rows):
            cells = [t if n == 0 else "", f"{mib(i[0]):.1f}" if n == 0 else "", str(c)]
            cells += [f"{mib(l['rss']):.1f}", f"{l['rps']:.0f}", f"{l['p99']:.1f}", str(l["bad"])] if l else [""] * 4
            cells.append(f"{mib(a[0]):.1f}" if a and n == 0 else "")
            print(f"{cells[0]:<15}{cells[1]:>13}{cells[2]:>7}{cells[3]:>13}{cells[4]:>8}{cells[5]:>8}{cells[6]:>7}{cells[7]:>10}")
    if steal:
        print(f"(guest-visible steal {steal[0] / 100:.1f} cpu-s over {steal[1]} s)")
    sys.exit(0)

# ---------------- markdown ----------------
out = []
p = out.append
p(f"Layout `{layout}` (wrk on CPU0; upstream + proxy on CPU{pcpu or '?'}; one proxy worker), "
  f"`wrk -t{hdr.get('wrk_threads', '1')} -c{hdr.get('conns', '64')}`, {nr} interleaved rounds x {hdr.get('dur', '5')} s"
  + (f"; {cpus[0]} CPUs ({cpus[1]})" if cpus else "")
  + (f"; guest steal {steal[0] / 100:.1f} cpu-s over {steal[1]} s" if steal else "") + ".")
p("")
p("| target | req/s | spread | p50 ms | p99 ms | CPU µs/req | req/s × nginx-plain | req/s × haproxy-jwt "
  "| CPU × nginx-plain | CPU × haproxy-jwt | saturated rounds | errors |")
p("|---|---:|---:|---:|---:|---:|---|---|---|---|---:|---:|")
for t in order:
    m, spread = rps_stats(t)
    sat, bad = sat_bad(t)
    p(f"| {t} | {m:,.0f} | {spread:.0f}% | {med(t, 'p50'):.2f} | {med(t, 'p99'):.2f} | {med(t, 'cpu'):.1f} "
      f"| {fmt(paired(t, 'nginx-plain', 'rps'))} | {fmt(paired(t, 'haproxy-jwt', 'rps'))} "
      f"| {fmt(paired(t, 'nginx-plain', 'cpu'))} | {fmt(paired(t, 'haproxy-jwt', 'cpu'))} "
      f"| {sat}/{len(runs[t])} | {bad} |")
p("")
p("Clean pairs only (both rounds of a pair had the proxy's CPU ≥ 95 % busy), median [min-max] (n):")
p("")
p("| target | req/s × nginx-plain | req/s × haproxy-jwt | CPU × nginx-plain | CPU × haproxy-jwt |")
p("|---|---|---|---|---|")
for t in order:
    if t == "direct":
        continue
    cells = []
    for ref in ("nginx-plain", "haproxy-jwt"):
        per = paired(t, ref, "rps", True)
        cells.append(f"{fmt(per)} ({len(per)})")
    for ref in ("nginx-plain", "haproxy-jwt"):
        per = paired(t, ref, "cpu", True)
        cells.append(f"{fmt(per)} ({len(per)})")
    p(f"| {t} | " + " | ".join(cells) + " |")
p("")

p("Memory (RSS of the target's processes; peak while `wrk -cN` runs; 'after' = 3 s after the last load):")
p("")
conns = sorted({c for d in lm.values() for c in d})
p("| target | idle RSS MiB | " + " | ".join(f"RSS @{c:,} conns MiB | req/s @{c:,} | errors @{c:,}" for c in conns)
  + " | RSS after MiB |")
p("|---|---:|" + "---:|---:|---:|" * len(conns) + "---:|")
for t in order:
    if t in ("direct", "gateway-public"):
        continue
    cells = [f"{mib(idle.get(t, (0, 0))[0]):.1f}"]
    for c in conns:
        l = lm.get(t, {}).get(c)
        cells += [f"{mib(l['rss']):.1f}", f"{l['rps']:,.0f}", str(l["bad"])] if l else ["-", "-", "-"]
    a = idle_after.get(t)
    cells.append(f"{mib(a[0]):.1f}" if a else "-")
    p(f"| {t} | " + " | ".join(cells) + " |")
p("")

# Targets from the issue.
if "gateway" in runs:
    p("Targets (clean pairs when ≥ 3 exist, else all pairs):")
    p("")
    p("| target | goal | measured | verdict |")
    p("|---|---|---|---|")

    def row(name, goal, value, ok, n, clean):
        if value is None:
            p(f"| {name} | {goal} | no data | - |")
        else:
            p(f"| {name} | {goal} | {value} ({n} {'clean ' if clean else ''}pairs) | {'met' if ok else '**not met**'} |")

    # req/s ratios move with the host's noise; CPU per request (on-CPU time of the target's own processes) is
    # the robust figure: with the proxy's CPU saturated, throughput is 1 / CPU per request.
    cg = med("gateway", "cpu")
    v, n, c = best("gateway", "nginx-plain", "rps")
    k, _, _ = best("gateway", "nginx-plain", "cpu")
    row("authenticated GET req/s vs nginx-plain", "≥ 1.0×", v and f"{v:.2f}× req/s; {k:.2f}× from CPU per request",
        v is not None and v >= 1.0 and (k or 0) >= 1.0, n, c)
    v, n, c = best("gateway", "haproxy-jwt", "rps")
    k, _, _ = best("gateway", "haproxy-jwt", "cpu")
    row("authenticated GET req/s vs HAProxy-jwt", "≥ ~1.3×", v and f"{v:.2f}× req/s; {k:.2f}× from CPU per request",
        v is not None and v >= 1.25 and (k or 0) >= 1.25, n, c)
    v, n, c = best("gateway", "nginx-plain", "cpu")
    row("CPU per request vs nginx-plain", "≤ nginx's", v and f"{cg:.1f} µs vs {med('nginx-plain', 'cpu'):.1f} µs "
        f"(nginx/gateway {v:.2f})", v is not None and v >= 1.0, n, c)
    if "gateway-public" in runs:
        v, n, c = best("gateway", "gateway-public", "rps")
        k, _, _ = best("gateway", "gateway-public", "cpu")
        row("token verification cost (same gateway, / vs /public/)", "≤ 5 % of throughput",
            v and f"{(1 - k) * 100:.1f} % from CPU per request ({cg:.1f} vs {med('gateway-public', 'cpu'):.1f} µs); "
            f"{(1 - v) * 100:.1f} % from req/s", k is not None and k >= 0.95, n, c)
    i = idle.get("gateway")
    if i:
        p(f"| idle RSS | ≤ 30 MB (28.6 MiB) | {mib(i[0]):.1f} MiB | {'met' if i[0] <= 30e6 / 1024 else '**not met**'} |")
    p("")
print("\n".join(out))
