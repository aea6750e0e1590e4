"""Finding one decision in a long decision log: prints one JSON object.

    .venv/bin/python bench/decisions.py [--lines 200000] [--repeat 3]

Writes ``--lines`` fraud decisions to a new JSONL log (batches of 5,000, as screenings are
logged) and finds the last one (the worst case: the whole file is read) both ways in the
same run, so the machine's noise cancels in the ratio: parsing every line as it comes (the
baseline, what ``get_decision`` did) and parsing only the lines that hold the id (what it
does, ``JsonlSink.holding``). Each the best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from entrepot.risk.decisions import JsonlSink, get_decision, make_decision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        sink = JsonlSink(Path(folder))
        decisions = [
            make_decision(
                "fraud",
                model_version="fraud-v3",
                outcome="allow",
                score=0.01,
                reasons=["amount 0.3 x the payer's usual"],
                inputs={"payer": "ab" * 16, "n": n},
            )
            for n in range(args.lines)
        ]
        for start in range(0, len(decisions), 5_000):
            sink.append(decisions[start : start + 5_000])
        wanted = decisions[-1].decision_id

        def every_line() -> None:
            next(d for d in sink if d.decision_id == wanted)

        def holding() -> None:
            assert get_decision(sink, wanted).decision_id == wanted

        times = {}
        for name, run in (("parse_every_line_s", every_line), ("parse_lines_holding_s", holding)):
            best = float("inf")
            for _ in range(args.repeat):
                began = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - began)
            times[name] = round(best, 4)
        size = sink.path.stat().st_size
        sink.close()
    speedup = times["parse_every_line_s"] / times["parse_lines_holding_s"]
    print(json.dumps({"lines": args.lines, "log_mb": round(size / 1e6, 1), **times,
                      "speedup": round(speedup, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
