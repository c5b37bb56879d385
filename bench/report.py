"""Render bench/run.py result files as the Markdown tables of docs/benchmarks.md.

    .venv/bin/python bench/report.py bench/results/server-load-*.json

Several files are merged (later files win for a target of the same name), so the baseline run
and an ``--experiments`` run can be shown in one table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ratios, targets_met

SCENARIOS = (("poll", "poll (pending)"), ("device", "device authorization"),
             ("discovery", "discovery"), ("scale", "poll, +100k pending"))


def merged(paths: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"targets": {}, "machine": None, "files": []}
    for p in paths:
        data = json.loads(Path(p).read_text())
        out["machine"] = out["machine"] or data["machine"]
        out["files"].append({"file": p, "started": data["started"], "options": data["options"]})
        out["targets"].update({k: v for k, v in data["targets"].items() if "error" not in v})
    return out


def answers(m: dict[str, Any]) -> str:
    total = sum(m["answers"].values())
    parts = []
    for k, v in sorted(m["answers"].items(), key=lambda kv: -kv[1]):
        parts.append(f"{k} {100 * v / total:.1f}%" if total else k)
    return ", ".join(parts)


def render(res: dict[str, Any]) -> str:
    lines = ["| target | scenario | req/s | p50 ms | p99 ms | server CPU µs/req | "
             "PostgreSQL CPU µs/req | others' CPU % | answers |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in res["targets"].items():
        for key, label in SCENARIOS:
            if key not in r:
                continue
            m = r[key]["median"]
            extra = ""
            if key in ("poll", "scale") and "pool" in r[key]:
                extra = f" (pool {r[key]['pool']:,})"
            if key == "scale":
                label = f"poll, {r['scale']['pending_after']:,} pending"
            pg = f"{m['postgres_cpu_us_per_req']:.0f}" if "pg" in name else "—"
            lines.append(
                f"| {name} | {label}{extra} | {m['rps']:,.0f} | {m['p50_ms']:.1f} | "
                f"{m['p99_ms']:.1f} | {m['server_cpu_us_per_req']:.0f} | {pg} | "
                f"{m.get('other_cpu_pct', 0):.0f} | {answers(m)} |")
    lines += ["", "Ratio deviceflow / oidc-provider (medians; for latency, lower is better):", "",
              "| target | scenario | req/s | p50 | p99 |", "|---|---|---:|---:|---:|"]
    for name, per in ratios(res).items():
        for scen, figs in per.items():
            lines.append(f"| {name} | {scen} | {figs.get('rps', '')} | {figs.get('p50_ms', '')} "
                         f"| {figs.get('p99_ms', '')} |")
    lines += ["", "| target | value | goal | |", "|---|---:|---|---|"]
    for c in targets_met(res):
        mark = {True: "met", False: "**missed**", None: "n/a"}[c["met"]]
        lines.append(f"| {c['target']} | {c['value']} | {c['goal']} | {mark} |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    res = merged(sys.argv[1:])
    print(render(res))
    print("\nMachine:", json.dumps(res["machine"], indent=1))


if __name__ == "__main__":
    main()
