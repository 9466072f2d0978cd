#!/usr/bin/env python3
"""Markdown table of criterion results: median time per iteration (and 95 % CI) for every benchmark whose
`new/benchmark.json` lies under TARGET_DIR/criterion, plus the routing flatness (10,000 routes / 1 route).

usage: criterion_table.py [CRITERION_DIR] [--since EPOCH_SECONDS]
"""
import json, os, sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
root = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "target", "criterion")
since = 0.0
if "--since" in sys.argv:
    since = float(sys.argv[sys.argv.index("--since") + 1])

def fmt(ns):
    if ns >= 1e6: return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3: return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"

rows = {}
for d, _, files in os.walk(root):
    if os.path.basename(d) != "new" or "benchmark.json" not in files or "estimates.json" not in files:
        continue
    est_path = os.path.join(d, "estimates.json")
    if os.path.getmtime(est_path) < since:
        continue
    bid = json.load(open(os.path.join(d, "benchmark.json")))["full_id"]
    med = json.load(open(est_path))["median"]
    rows[bid] = (med["point_estimate"], med["confidence_interval"]["lower_bound"], med["confidence_interval"]["upper_bound"])
if not rows:
    sys.exit(f"no criterion results under {root}")
print("| benchmark | median | 95 % CI |")
print("|---|---:|---|")
for bid in sorted(rows):
    m, lo, hi = rows[bid]
    print(f"| {bid} | {fmt(m)} | {fmt(lo)} – {fmt(hi)} |")
flat = []
for case in ("hit", "miss", "normalise+hit"):
    a, b = rows.get(f"route/{case}/1"), rows.get(f"route/{case}/10000")
    if a and b:
        flat.append(f"{case}: {fmt(a[0])} (1 route) → {fmt(rows.get(f'route/{case}/100', (0,))[0])} (100) → "
                    f"{fmt(b[0])} (10,000), ratio {b[0] / a[0]:.2f}")
if flat:
    print("\nRoute matching, 1 → 10,000 routes: " + "; ".join(flat) + ".")
tok, pub = rows.get("token/bearer_authenticate_valid"), None
if tok:
    print(f"\nToken check on the request path (`bearer::authenticate`, valid HS256): {fmt(tok[0])} per request.")
