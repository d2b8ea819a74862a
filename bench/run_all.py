"""Runs every bench script in its own process, one after the other (each bounded by a timeout), streams
their output and ends with one markdown table of the figures they report (their `SUMMARY` lines).
A script that fails or times out becomes a row saying so; this script itself does not fail."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# (script, args, timeout seconds)
BENCHES = [
    ("ddb_requests.py", [], 300),
    ("sweep_reads.py", [], 150),
    ("list_reads.py", [], 150),
    ("views.py", [], 150),
    ("import_time.py", [], 240),  # fresh processes answering a webhook: ~1 min idle, more under load
    ("package_size.py", [], 260),
    ("load.py", [], 150),
    ("faults.py", [], 240),  # ~35 s alone on 2 cores; all event types, 8 sender threads
    # issue 9 item 7 at a tenth of its size (the full figure: `bench/fanout.py`, 5 000 servers, see docs/scale.md);
    # on DynamoDB Local when `make` has fetched it, on moto otherwise
    ("fanout.py", ["--servers", "500"] + (["--dynamodb-local"] if (ROOT / ".local" / "dynamodb-local" /
                                                                     "DynamoDBLocal.jar").exists() else []), 900),
]


def run(script: str, args: list[str], timeout: float) -> tuple[list[dict], float, str]:
    cmd = [sys.executable, str(HERE / script), *args]
    print(f"\n## {script} {' '.join(args)}".rstrip(), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rows, err = [], []
    threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True).start()
    timer = threading.Timer(timeout, lambda: proc.poll() is None and proc.send_signal(signal.SIGTERM))
    timer.start()
    for line in proc.stdout:
        if line.startswith("SUMMARY "):
            rows.append(json.loads(line[len("SUMMARY "):]))
        else:
            print("    " + line.rstrip(), flush=True)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    timer.cancel()
    elapsed = time.perf_counter() - t0
    problem = ""
    if rc != 0 or not rows:
        tail = "".join(err[-15:]).rstrip()
        problem = f"exit {rc}" + (f" (timed out after {timeout} s)" if elapsed >= timeout else "")
        print(f"    {script} FAILED: {problem}\n" + "\n".join("    ! " + l for l in tail.splitlines()), flush=True)
    return rows, elapsed, problem


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def main() -> int:
    os.chdir(ROOT)
    started = time.perf_counter()
    table, timings = [], []
    for script, args, timeout in BENCHES:
        name = f"{script} {' '.join(args)}".strip()
        try:
            rows, elapsed, problem = run(script, args, timeout)
        except Exception as exc:  # noqa: BLE001 - report and go on
            rows, elapsed, problem = [], 0.0, f"runner error: {exc}"
        table += rows
        if problem:
            table.append({"bench": name, "figure": "script", "value": problem, "target": "runs", "ok": "NO"})
        timings.append(f"{name} {elapsed:.0f} s")
    total = time.perf_counter() - started
    print("\n# Summary\n")
    print("| bench | figure | value | target | meets |")
    print("|---|---|---|---|---|")
    for r in table:
        print(f"| {cell(r['bench'])} | {cell(r['figure'])} | {cell(r['value'])} | {cell(r['target'])} | {r['ok']} |")
    print(f"\nTimes: {', '.join(timings)}; total {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
