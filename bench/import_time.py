"""Cold-import time of functions/app.py vs a bare Chalice app importing boto3 and PynamoDB (written to
a temp dir), each timed with time.perf_counter in fresh subprocesses, 7 runs, median. app.py defers
its imports into the handlers, so the import a webhook's first request adds is also timed
("app + webhook path": catalog, delivery, secrets, store session, and the powertools logger and
metrics the first webhook loads) and its heaviest imports listed.

Targets: ratio app / bare <= 1.3; `kubernetes` not in sys.modules after importing app (nor after the
webhook path)."""
from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import _common as c

RUNS = 7
BARE_APP = '''from chalice import Chalice
import boto3
from pynamodb.models import Model

app = Chalice(app_name="bare")


@app.route("/")
def index():
    return {"hello": "world"}
'''
WEBHOOK_PATH = ("from chalicelib.webhooks import catalog, delivery, secrets; "
                "from chalicelib.store import session; "
                "from chalicelib import observability; observability.log()")  # powertools, loaded on first use
TIMER = ("import sys, time; t = time.perf_counter(); {stmt}; "
         "print(time.perf_counter() - t, 'kubernetes' in sys.modules)")


def run(cwd: Path, stmt: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-c", TIMER.format(stmt=stmt)], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**c.BENCH_ENV, "PATH": "/usr/bin:/bin"})


def timed(cwd: Path, stmt: str) -> tuple[float, bool]:
    out = run(cwd, stmt)
    if out.returncode:
        raise RuntimeError(out.stderr[-800:])
    seconds, kube = out.stdout.split()
    return float(seconds), kube == "True"


def heaviest(cwd: Path, stmt: str, n: int = 8) -> list[tuple[int, str]]:
    """Root packages by summed self import time (-X importtime), in microseconds."""
    err = run(cwd, stmt, "-X", "importtime").stderr
    total: dict[str, int] = {}
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            root = m.group(2).split(".")[0]
            total[root] = total.get(root, 0) + int(m.group(1))
    return sorted(((us, name) for name, us in total.items()), reverse=True)[:n]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bare-chalice-") as tmp:
        bare_dir = Path(tmp)
        (bare_dir / "app.py").write_text(BARE_APP)
        cases = {"bare chalice+boto3+pynamodb": (bare_dir, "import app"),
                 "functions/app.py": (c.FUNCTIONS, "import app"),
                 "app + webhook path": (c.FUNCTIONS, "import app; " + WEBHOOK_PATH)}
        timed(bare_dir, "import app")  # compile .pyc once so every measured run is a warm-disk cold import
        timed(c.FUNCTIONS, "import app; " + WEBHOOK_PATH)
        samples = {name: [] for name in cases}
        kube = {name: False for name in cases}
        for _ in range(RUNS):  # interleaved, so drift in machine load hits every case alike
            for name, (cwd, stmt) in cases.items():
                seconds, loaded = timed(cwd, stmt)
                samples[name].append(seconds)
                kube[name] |= loaded
        top = heaviest(c.FUNCTIONS, "import app; " + WEBHOOK_PATH)
    med = {name: statistics.median(v) * 1000 for name, v in samples.items()}
    bare = med["bare chalice+boto3+pynamodb"]
    for name, ms in med.items():
        spread = f"{min(samples[name]) * 1000:.0f}-{max(samples[name]) * 1000:.0f}"
        print(f"{name:30} median {ms:7.1f} ms  (min-max {spread} ms, {RUNS} runs)  ratio vs bare {ms / bare:.2f}  "
              f"kubernetes imported: {kube[name]}")
    print("heaviest packages imported by app + webhook path (-X importtime, self time summed per package):")
    for us, name in top:
        print(f"  {us / 1000:7.1f} ms  {name}")
    ratio_app, ratio_path = med["functions/app.py"] / bare, med["app + webhook path"] / bare
    c.summary("import_time", "import app.py vs bare (median)", f"{med['functions/app.py']:.0f} ms vs {bare:.0f} ms "
              f"= {ratio_app:.2f}", "<= 1.3", ratio_app <= 1.3)
    c.summary("import_time", "app + webhook path vs bare", f"{med['app + webhook path']:.0f} ms = {ratio_path:.2f}",
              "<= 1.3", ratio_path <= 1.3)
    c.summary("import_time", "kubernetes in sys.modules after import", str(kube["functions/app.py"]), "False",
              not kube["functions/app.py"] and not kube["app + webhook path"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
