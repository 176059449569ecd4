"""The write-unit arithmetic of benchmarks/write_units.py follows DynamoDB's published rules."""

from __future__ import annotations

from benchmarks.write_units import item_size, value_size, write_units
from ecs_control_plane.store import state_table_definition

INDEXES = state_table_definition("t")["GlobalSecondaryIndexes"]
OWNER, ACTIVE, TRY = (i["IndexName"] for i in INDEXES)


def item(updated_at: int, *, active: bool = True, config: str = "{}") -> dict[str, dict[str, str]]:
    out = {
        "key": {"S": "ti|d|t|r|-1|1|s"},
        "owner": {"S": "o"},
        "state": {"S": "RUNNING"},
        "updated_at": {"N": str(updated_at)},
        "try_key": {"S": "ti|d|t|r|-1|1"},
        "created_at": {"N": "1"},
        "executor_config": {"S": config},
    }
    if active:
        out["active_shard"] = {"S": "A1"}
    return out


def test_sizes_are_names_plus_values():
    assert value_size({"S": "héllo"}) == 6
    assert value_size({"N": "1764600000000"}) == 8  # 13 digits: 7 bytes + 1
    assert value_size({"BOOL": True}) == 1
    assert item_size({"ab": {"S": "xyz"}, "n": {"N": "5"}}) == 2 + 3 + 1 + 2


def test_a_changed_sort_key_costs_a_delete_and_a_put_in_each_index_holding_the_item():
    # GIVEN a write that only moves updated_at on an item in flight
    units = write_units(item(1), item(2), INDEXES)
    # THEN 1 in the table, 2 in each of the owner and active indexes, 0 in the try index
    assert units == {"table": 1, OWNER: 2, ACTIVE: 2, TRY: 0}


def test_an_item_leaving_the_sparse_index_costs_one_delete_there():
    units = write_units(item(1), item(2, active=False), INDEXES)
    assert units[ACTIVE] == 1


def test_a_large_executor_config_costs_its_size_in_the_table_and_nothing_in_the_indexes():
    big = "x" * 5000
    units = write_units(item(1, config=big), item(2, config=big), INDEXES)
    assert units == {"table": 5, OWNER: 2, ACTIVE: 2, TRY: 0}
    # AND with indexes projecting ALL, each of them pays it twice (delete and put)
    all_projected = [i | {"Projection": {"ProjectionType": "ALL"}} for i in INDEXES[:2]] + INDEXES[2:]
    assert write_units(item(1, config=big), item(2, config=big), all_projected) == {
        "table": 5,
        OWNER: 10,
        ACTIVE: 10,
        TRY: 0,
    }
