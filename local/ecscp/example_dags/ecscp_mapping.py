"""Dynamic task mapping with an XCom reduce.

Expected outcome: ``numbers`` returns [1, 2, 3, 4, 5]; ``square`` expands to five mapped
task instances (map index 0-4) that each succeed; ``total`` receives the five squares
through XCom and checks that they add up to 55. Every task succeeds on try 1 after one
control-plane start; the run succeeds.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

NUMBERS = [1, 2, 3, 4, 5]
EXPECTED_TOTAL = sum(n * n for n in NUMBERS)


@dag(
    dag_id="ecscp_mapping",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["ecscp-example"],
    doc_md=__doc__,
)
def ecscp_mapping() -> None:
    @task
    def numbers() -> list[int]:
        return list(NUMBERS)

    @task
    def square(x: int) -> int:
        return x * x

    @task
    def total(squares: list[int]) -> int:
        result = sum(squares)
        if result != EXPECTED_TOTAL:
            raise ValueError(f"reduce saw {sorted(squares)}, sum {result} != {EXPECTED_TOTAL}")
        return result

    # At run time Airflow resolves the mapped XComArg to the list of the five squares.
    total(square.expand(x=numbers()))  # type: ignore[arg-type]


ecscp_mapping()
