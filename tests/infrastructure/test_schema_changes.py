"""Schema changes that deploy (issue 18): CloudFormation creates or deletes one global secondary index per table
per stack update (NOTES.md "Checked 2026-12-05"), so the template may differ from the last released one
(`infra/released/tables.json`, written by `make release`) by at most one index operation per table."""
from __future__ import annotations

import copy
import json

from infra import released

SERVERS = "billing-servers"


def _current() -> dict[str, dict]:
    return released.tables(json.loads(released.TEMPLATE.read_text()))


def _index(name: str, attribute: str) -> dict:
    return {"KeySchema": [{"AttributeName": attribute, "KeyType": "HASH"}], "Projection": {"ProjectionType": "ALL"}}


def test_the_template_changes_each_table_by_at_most_one_index_against_the_released_one():
    snapshot, current = released.load_snapshot(), _current()
    too_many = {table: ops for table, ops in released.index_changes(snapshot, current).items() if len(ops) > 1}
    assert too_many == {}, f"ship these one index per deploy (docs/operations.md): {too_many}"
    assert released.key_changes(snapshot, current) == []
    assert set(snapshot) <= set(current), "a released table was dropped from the template"


def test_the_released_snapshot_holds_every_table_and_index_shipped():
    snapshot = released.load_snapshot()
    assert len(snapshot) == 12
    assert sorted(snapshot[SERVERS]["GlobalSecondaryIndexes"]) == ["by_due", "by_expiry", "by_grant", "by_meter",
                                                                   "by_plan", "by_retain"]
    assert sum(len(t["GlobalSecondaryIndexes"]) for t in snapshot.values()) == 14


def test_one_new_index_on_a_table_is_one_operation_two_are_refused():
    snapshot = released.load_snapshot()
    one = copy.deepcopy(snapshot)
    one[SERVERS]["GlobalSecondaryIndexes"]["by_account"] = _index("by_account", "account_id")
    assert released.index_changes(snapshot, one) == {SERVERS: ["+by_account"]}
    two = copy.deepcopy(one)
    two[SERVERS]["GlobalSecondaryIndexes"]["by_region"] = _index("by_region", "region")
    assert released.index_changes(snapshot, two) == {SERVERS: ["+by_account", "+by_region"]}
    # one index on each of two tables is fine: the limit is per table
    spread = copy.deepcopy(one)
    spread["billing-accounts"]["GlobalSecondaryIndexes"]["by_owner"] = _index("by_owner", "owner")
    assert all(len(ops) == 1 for ops in released.index_changes(snapshot, spread).values())


def test_a_changed_index_is_a_delete_and_a_create():
    snapshot = released.load_snapshot()
    changed = copy.deepcopy(snapshot)
    changed[SERVERS]["GlobalSecondaryIndexes"]["by_plan"]["Projection"] = {"ProjectionType": "KEYS_ONLY"}
    assert released.index_changes(snapshot, changed) == {SERVERS: ["-by_plan", "+by_plan"]}


def test_a_new_table_comes_with_all_its_indexes_and_a_changed_table_key_is_caught():
    snapshot = released.load_snapshot()
    grown = copy.deepcopy(snapshot)
    grown["billing-new"] = {"KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                            "GlobalSecondaryIndexes": {"a": _index("a", "x"), "b": _index("b", "y")}}
    assert released.index_changes(snapshot, grown) == {}
    grown[SERVERS]["KeySchema"] = [{"AttributeName": "account_id", "KeyType": "HASH"}]
    assert released.key_changes(snapshot, grown) == [SERVERS]


def test_make_release_writes_the_templates_tables(tmp_path):
    path = tmp_path / "tables.json"
    written = released.write_snapshot(path=path)
    assert released.load_snapshot(path) == written == _current()
