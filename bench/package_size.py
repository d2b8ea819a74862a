"""Lambda deployment package size: `chalice package --pkg-format cloudformation --merge-template
infra/resources.json` on a copy of functions/ (so chalice's wheel cache, .chalice/deployments, stays out of
the tree; the copy lives in the temp dir and is reused between runs), then deployment.zip's zipped size,
its unzipped size (sum of file sizes) and the biggest top-level entries. Packaging may download Linux
wheels from the package index the first time; the time it took is printed. A failure is reported, not raised.

The template too: sam.json as written and without whitespace, against CloudFormation's 51 200 bytes for a
template sent inline (over it, `aws cloudformation deploy` needs --s3-bucket, as the README's does) and 1 MB
from S3.

Targets (AWS Lambda): <= 50 MB zipped, <= 250 MB unzipped; (CloudFormation) template <= 1 MB."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import _common as c

WORK = Path(tempfile.gettempdir()) / "k8s-billing-bench-package"
TIMEOUT = 240
MB = 1_000_000
INLINE_TEMPLATE_LIMIT = 51_200
S3_TEMPLATE_LIMIT = 1_000_000


def stage_copy() -> Path:
    """A fresh copy of the app code; keep only the previous copy's chalice deployment cache."""
    project = WORK / "functions"
    cache = project / ".chalice" / "deployments"
    saved = WORK / "deployments-cache"
    if cache.exists():
        shutil.rmtree(saved, ignore_errors=True)
        shutil.move(str(cache), str(saved))
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(c.FUNCTIONS, project, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "deployments"))
    if saved.exists():
        shutil.move(str(saved), str(cache))
    return project


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    project = stage_copy()
    cache = project / ".chalice" / "deployments"
    cached_before = set(cache.glob("*.zip"))
    out = WORK / "out"
    shutil.rmtree(out, ignore_errors=True)
    chalice = str(Path(sys.executable).with_name("chalice"))
    cmd = [chalice, "package", "--pkg-format", "cloudformation", "--merge-template",
           str(c.ROOT / "infra" / "resources.json"), str(out)]
    env = {**os.environ, **c.BENCH_ENV}
    print(f"$ (cd {project} && {' '.join(cmd)})", flush=True)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        failed = done.returncode != 0 and (done.stdout + done.stderr)
    except subprocess.TimeoutExpired as exc:
        failed = f"timed out after {TIMEOUT} s\n{(exc.stdout or b'')[-1500:]!r}\n{(exc.stderr or b'')[-1500:]!r}"
    elapsed = time.perf_counter() - t0
    warm = bool(cached_before) and not (set(cache.glob("*.zip")) - cached_before)  # no new dependency zip built
    zpath = out / "deployment.zip"
    if failed or not zpath.exists():
        tail = "\n".join(str(failed or "no deployment.zip was written").splitlines()[-25:])
        print(f"chalice package FAILED after {elapsed:.1f} s:\n{tail}")
        c.summary("package_size", "chalice package", f"failed after {elapsed:.0f} s", "builds", False)
        return 0
    zipped = zpath.stat().st_size
    with zipfile.ZipFile(zpath) as z:
        infos = z.infolist()
    unzipped = sum(i.file_size for i in infos)
    by_top = Counter()
    for info in infos:
        by_top[info.filename.split("/")[0]] += info.file_size
    print(f"packaged in {elapsed:.1f} s ({'warm' if warm else 'cold'} dependency cache); {len(infos)} files")
    print(f"deployment.zip: {zipped / MB:.1f} MB zipped (limit 50), {unzipped / MB:.1f} MB unzipped (limit 250)")
    print("largest top-level entries (unzipped):")
    for name, size in by_top.most_common(8):
        print(f"  {size / MB:7.2f} MB  {name:20} {100 * size / unzipped:5.1f} %")
    top = ", ".join(f"{n} {s / MB:.0f}" for n, s in by_top.most_common(3))
    c.summary("package_size", "deployment.zip zipped", f"{zipped / MB:.1f} MB", "<= 50 MB", zipped <= 50 * MB)
    c.summary("package_size", "deployment.zip unzipped", f"{unzipped / MB:.1f} MB (top: {top} MB)", "<= 250 MB",
              unzipped <= 250 * MB)
    written = (out / "sam.json").stat().st_size
    smallest = len(json.dumps(json.loads((out / "sam.json").read_text()), separators=(",", ":")).encode())
    print(f"sam.json: {written} bytes as written, {smallest} without whitespace (inline limit {INLINE_TEMPLATE_LIMIT}, "
          f"from S3 {S3_TEMPLATE_LIMIT})")
    c.summary("package_size", "template (sam.json, without whitespace)",
              f"{written / 1000:.0f} KB ({smallest / 1000:.0f} KB); inline deploy {'refused: --s3-bucket' if smallest > INLINE_TEMPLATE_LIMIT else 'possible'}",
              "<= 1 MB from S3", smallest <= S3_TEMPLATE_LIMIT)
    c.summary("package_size", "chalice package time", f"{elapsed:.0f} s ({'warm' if warm else 'cold'} cache)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
