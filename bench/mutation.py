"""Mutation score of the rules (and, on request, the services) with mutmut, plus the breakages an audit
once found the suite let through, each applied as a patch and run against the suite.

    python bench/mutation.py                  # rules modules against the unit tests (~5 min)
    python bench/mutation.py --deep           # survivors again, against unit + integration tests
    python bench/mutation.py --services       # a sample of the services' mutants against their integration tests
    python bench/mutation.py --services --sample 0   # every mutant of the services (hours)
    python bench/mutation.py --breakages-only # only the audited breakages
    python bench/mutation.py --only chalicelib/billing/rules.py   # one module (no breakages)

A survivor is either killed by a new test or explained in bench/mutation_explained/<module>.toml: one table
per mutant, named as mutmut names it, with `line` (the mutated line exactly as the mutant has it, stripped)
and `why`. An explanation whose `line` is no longer the mutant's (the code moved on) counts as unexplained.

mutmut 3 needs the mutated modules importable under the name the tests use (`chalicelib.…`), so the run
happens in a scratch copy of the project with `functions/` flattened to its root. Prints `SUMMARY` lines
for bench/run_all.py and writes every surviving mutant's diff to bench/out/mutation-survivors.txt."""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")
EXPLAINED = Path(__file__).with_name("mutation_explained")

RULES = ["chalicelib/lifecycle/rules.py", "chalicelib/billing/rules.py", "chalicelib/free_period/rules.py",
         "chalicelib/clusters/rules.py", "chalicelib/webhooks/signature.py", "chalicelib/accounts/rules.py"]
SERVICES = ["chalicelib/billing/payments.py", "chalicelib/lifecycle/effects.py", "chalicelib/ops/actions.py",
            "chalicelib/free_period/service.py"]
# The services are checked through the contract, by the integration tests written for them (on moto only:
# the DynamoDB Local copies of the race tests add time, not checks of these modules). A surviving mutant is
# one these tests let through; the rest of the suite may still kill it.
SERVICE_TESTS = ["tests/unit/", "tests/integration/test_payments.py", "tests/integration/test_webhook_contract.py",
                 "tests/integration/test_lifecycle.py", "tests/integration/test_edges.py",
                 "tests/integration/test_free_period.py", "tests/integration/test_operators_audit.py",
                 "tests/integration/test_rule_guards.py", "tests/integration/test_notifications.py",
                 "tests/integration/test_one_round_trip.py",
                 "-k", "not dynamodb"]

# (name, file, text, replacement): each once survived the whole suite; each must now be killed.
BREAKAGES = [
    ("agreement_ended always true", "chalicelib/domain/records.py",
     "return self.servers_opened > 0 and", "return True or self.servers_opened > 0 and"),
    ("top-up also lifts violation/security holds", "chalicelib/lifecycle/rules.py",
     "    del server.stop_reasons[reason]\n",
     "    del server.stop_reasons[reason]\n    if reason == 'arrears':\n"
     "        server.stop_reasons.pop('violation', None); server.stop_reasons.pop('security_incident', None)\n"),
    ("workloads started before node groups", "chalicelib/clusters/executor.py",
     "        nodegroups.start_nodegroups(eks, action.server_id)\n        workloads.start()",
     "        workloads.start()\n        nodegroups.start_nodegroups(eks, action.server_id)"),
    ("server-level violation ignored by R-FREE-2(9)", "chalicelib/free_period/service.py",
     'server_violation="violation" in server.stop_reasons', "server_violation=False"),
    ("no SNS publish at all", "chalicelib/notify/outbox.py", "sns.publish(", "(lambda **_: None)("),
]


def workspace() -> Path:
    ws = Path(tempfile.mkdtemp(prefix="mutation-"))
    shutil.copytree(ROOT / "functions" / "chalicelib", ws / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__", "console"))
    shutil.copy(ROOT / "functions" / "app.py", ws / "app.py")
    shutil.copytree(ROOT / "functions" / ".chalice", ws / ".chalice", ignore=shutil.ignore_patterns("deployments"))
    for name in ("tests", "infra"):
        shutil.copytree(ROOT / name, ws / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pytest.ini", ws / "pytest.ini")
    (ws / "functions").symlink_to(".")  # tests that start a subprocess in functions/ find the same code
    if (ROOT / "functions" / "chalicelib" / "console").exists():
        shutil.copytree(ROOT / "functions" / "chalicelib" / "console", ws / "chalicelib" / "console")
    return ws


def configure(ws: Path, paths: list[str], tests: list[str]) -> None:
    (ws / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        f"source_paths = {json.dumps(paths)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'also_copy = ["tests/", "infra/", "app.py", "chalicelib/"]\n'
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]\n')


def sample(ws: Path, per_module: int, seed: int) -> list[str]:
    """`per_module` mutants of each mutated module, drawn with `seed` (all of them when per_module is 0), from
    the names mutmut generated (mutants/<path>.meta)."""
    import random

    chosen = []
    for meta in sorted((ws / "mutants").rglob("*.py.meta")):
        names = sorted(json.loads(meta.read_text())["exit_code_by_key"])
        chosen += names if per_module == 0 or per_module >= len(names) else \
            sorted(random.Random(f"{seed}:{meta.name}").sample(names, per_module))
    return chosen


def results(ws: Path) -> dict[str, str]:
    out = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=ws, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            found[name] = status
    return found


def mutmut(ws: Path, *names: str) -> None:
    subprocess.run([str(MUTMUT), "run", *names], cwd=ws, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def show(ws: Path, name: str) -> str:
    return subprocess.run([str(MUTMUT), "show", name], cwd=ws, capture_output=True, text=True).stdout


def explanations() -> dict[str, dict[str, str]]:
    known: dict[str, dict[str, str]] = {}
    for path in sorted(EXPLAINED.glob("*.toml")):
        known.update(tomllib.loads(path.read_text()))
    return known


def explained(name: str, diff: str, known: dict[str, dict[str, str]]) -> str | None:
    """The reason a surviving mutant may stay, if one is written down and still describes this mutant."""
    entry = known.get(name)
    if not entry:
        return None
    added = {line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")}
    return entry["why"] if entry.get("line", "").strip() in added else None


def score(ws: Path, found: dict[str, str], label: str) -> None:
    known = explanations()
    by_module: dict[str, list[int]] = {}
    for name, status in found.items():
        module = re.split(r"\.x[_\u01c1]", name)[0]  # functions are x_<name>, methods x\u01c1<class>\u01c1<name>
        counts = by_module.setdefault(module, [0, 0, 0, 0])
        if status in ("killed", "timeout"):  # a mutant that never finishes is caught too
            counts[0] += 1
        elif status == "survived":
            counts[1] += 1
            counts[2] += explained(name, show(ws, name), known) is not None
        else:
            counts[3] += 1
    total_killed = total = total_explained = 0
    for module, (killed, survived, why, other) in sorted(by_module.items()):
        total_killed, total, total_explained = total_killed + killed, total + killed + survived, total_explained + why
        print(f"{module}: killed {killed}, survived {survived} ({why} explained), other {other}")
        print("SUMMARY " + json.dumps({"figure": f"mutation score {module} ({label})",
                                       "value": f"{killed}/{killed + survived} = {killed / max(1, killed + survived):.0%}"
                                                f"; survivors explained {why}/{survived}"}))
    print("SUMMARY " + json.dumps({"figure": f"mutation score, all mutated modules ({label})",
                                   "value": f"{total_killed}/{total} = {total_killed / max(1, total):.0%}"}))
    print("SUMMARY " + json.dumps({"figure": f"surviving mutants explained ({label})",
                                   "value": f"{total_explained}/{total - total_killed}"}))


def survivors_report(ws: Path, found: dict[str, str]) -> None:
    """Every survivor's diff, the unexplained ones first, each with its explanation when there is one."""
    known = explanations()
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    entries = []
    for name, status in sorted(found.items()):
        if status == "survived":
            diff = show(ws, name)
            why = explained(name, diff, known)
            entries.append((why is not None, f"{diff.rstrip()}\n" + (f"explained: {why}\n" if why else "UNEXPLAINED\n")))
    with open(out / "mutation-survivors.txt", "w") as fh:
        fh.write("\n".join(text for _, text in sorted(entries, key=lambda e: e[0])))
    print(f"survivors' diffs: {out / 'mutation-survivors.txt'} ({sum(not e for e, _ in entries)} unexplained)")


def breakages() -> None:
    killed = 0
    for name, path, text, replacement in BREAKAGES:
        ws = workspace()
        target = ws / path
        source = target.read_text()
        if text not in source:
            print(f"breakage {name!r}: its code is no longer there; skipped")
            continue
        target.write_text(source.replace(text, replacement, 1))
        # the guards written for these breakages first, then (if they pass) the whole unit and integration
        # suites, each stopping at the first failure (one pytest run would collect the guards in folder order)
        for selection in (["tests/integration/test_rule_guards.py", "tests/integration/test_notifications.py"],
                          ["tests/unit", "tests/integration"]):
            run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *selection],
                                 cwd=ws, capture_output=True, text=True)
            if run.returncode != 0:
                break
        verdict = "killed" if run.returncode != 0 else "SURVIVED"
        killed += run.returncode != 0
        lines = run.stdout.splitlines()
        failing = [line for line in lines if line.startswith(("FAILED", "ERROR"))][:1]
        print(f"breakage {name!r}: {verdict} {failing[0] if failing else (lines[-1] if lines else run.stderr[-300:])}")
        shutil.rmtree(ws, ignore_errors=True)
    print("SUMMARY " + json.dumps({"figure": "audited breakages killed by the suite",
                                   "value": f"{killed}/{len(BREAKAGES)}"}))


def services(per_module: int, seed: int) -> None:
    ws = workspace()
    configure(ws, SERVICES, SERVICE_TESTS)
    mutmut(ws, "no-such-mutant")  # generates the mutants and records which tests reach each function, then stops
    chosen = sample(ws, per_module, seed)
    mutmut(ws, *chosen)
    found = {name: status for name, status in results(ws).items() if name in set(chosen)}
    label = f"services' integration tests, {'all mutants' if per_module == 0 else f'{per_module} per module, seed {seed}'}"
    score(ws, found, label)
    survivors_report(ws, found)
    shutil.rmtree(ws, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deep", action="store_true")
    parser.add_argument("--services", action="store_true")
    parser.add_argument("--breakages-only", action="store_true")
    parser.add_argument("--only", nargs="+", metavar="PATH", help="mutate these modules only (no breakages)")
    parser.add_argument("--sample", type=int, default=30, help="with --services: mutants per module (0: all)")
    parser.add_argument("--seed", type=int, default=1, help="with --services: which sample")
    args = parser.parse_args()
    if args.services:
        services(args.sample, args.seed)
        return
    if not args.breakages_only:
        ws = workspace()
        configure(ws, args.only or RULES, ["tests/unit/"])
        mutmut(ws)
        found = results(ws)
        score(ws, found, "unit tests")
        if args.deep:
            configure(ws, args.only or RULES, ["tests/unit/", "tests/integration/"])
            survivors = [n for n, s in found.items() if s == "survived"]
            mutmut(ws, *survivors)
            found.update({n: s for n, s in results(ws).items() if n in survivors})
            score(ws, found, "survivors re-run with integration tests")
        survivors_report(ws, found)
        shutil.rmtree(ws, ignore_errors=True)
    if not args.only:
        breakages()


if __name__ == "__main__":
    main()
