"""The statistics simulations of issue 21 in one run: the headline's ε (coverage_headline.py), the
intervals (coverage_intervals.py) and the sweep findings (coverage_sweeps.py). Each module's
``run(quick: bool) -> dict`` is called; a module not in benchmarks/ is reported as "missing".

    python benchmarks/statistics_coverage.py [--quick]

Writes benchmarks/results/statistics_coverage.json (every module's result, or its status).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).parent
MODULES = ("coverage_headline", "coverage_intervals", "coverage_sweeps")


def run_one(name: str, quick: bool) -> dict:
    """{"status": "ok" | "missing" | "failed", "seconds", "result" | "error", "table"}."""
    if not (HERE / f"{name}.py").is_file():
        return {"status": "missing"}
    sys.path.insert(0, str(HERE))
    try:
        module = importlib.import_module(name)
        start = time.perf_counter()
        result = module.run(quick=quick)
        out = {"status": "ok", "seconds": round(time.perf_counter() - start, 1), "result": result}
        if hasattr(module, "table"):
            out["table"] = module.table(result)
        return out
    except Exception as err:  # one failing simulation must not hide the others' tables
        return {"status": "failed", "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(limit=3)}
    finally:
        sys.path.remove(str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each simulation's quick size")
    args = parser.parse_args()
    results = {}
    for name in MODULES:
        print(f"== {name}", flush=True)
        results[name] = run_one(name, args.quick)
        entry = results[name]
        if entry["status"] == "ok":
            print(entry.get("table") or json.dumps(entry["result"], indent=2, default=str))
            print(f"({entry['seconds']} s)")
        else:
            print(entry["status"] + (f": {entry['error']}" if "error" in entry else ""))
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / "statistics_coverage.json"
    path.write_text(json.dumps({"quick": args.quick, "modules": results}, indent=2, default=str) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
