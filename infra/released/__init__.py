"""The tables of the last released template (`tables.json`, written by `make release` after a deploy) and the
rule every later template must keep against them: CloudFormation creates *or* deletes one global secondary
index per table per stack update (an update that does two fails and rolls back), and a table's own key
cannot change in place (a named table would have to be replaced). docs/operations.md says how a schema
change ships."""
from __future__ import annotations

import json
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1] / "resources.json"
SNAPSHOT = Path(__file__).with_name("tables.json")


def tables(template: dict) -> dict[str, dict]:
    """TableName → its key and its global secondary indexes (name → key and projection)."""
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        found[props["TableName"]] = {
            "KeySchema": props["KeySchema"],
            "GlobalSecondaryIndexes": {i["IndexName"]: {"KeySchema": i["KeySchema"], "Projection": i["Projection"]}
                                       for i in props.get("GlobalSecondaryIndexes", [])},
        }
    return found


def index_changes(released: dict[str, dict], current: dict[str, dict]) -> dict[str, list[str]]:
    """Per table of both, the index operations an update from `released` to `current` makes: "+name" created,
    "-name" deleted; an index whose key or projection changed is deleted and created again (two). A table
    that is new is created with all its indexes at once, so it counts none."""
    changes = {}
    for name in released.keys() & current.keys():
        before = released[name]["GlobalSecondaryIndexes"]
        after = current[name]["GlobalSecondaryIndexes"]
        ops = [f"-{i}" for i in sorted(before) if i not in after or after[i] != before[i]]
        ops += [f"+{i}" for i in sorted(after) if i not in before or after[i] != before[i]]
        if ops:
            changes[name] = ops
    return changes


def key_changes(released: dict[str, dict], current: dict[str, dict]) -> list[str]:
    return sorted(n for n in released.keys() & current.keys() if released[n]["KeySchema"] != current[n]["KeySchema"])


def load_snapshot(path: Path = SNAPSHOT) -> dict[str, dict]:
    return json.loads(path.read_text())


def write_snapshot(template: Path = TEMPLATE, path: Path = SNAPSHOT) -> dict[str, dict]:
    found = tables(json.loads(template.read_text()))
    path.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    return found


def main() -> int:
    found = write_snapshot()
    print(f"{SNAPSHOT}: {len(found)} tables, {sum(len(t['GlobalSecondaryIndexes']) for t in found.values())} indexes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
