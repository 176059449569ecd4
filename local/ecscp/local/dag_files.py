"""Which files of a DAGs folder Airflow will parse: what local Airflow waits for before it runs.

Airflow's dag-processor parses only the Python files whose text contains both "airflow" and
"dag" (its "safe mode" heuristic, ``[core] dag_discovery_safe_mode``), skipping hidden and
dunder paths; the local stack waits for each such file to give a DAG or an import error.
"""

from __future__ import annotations

import re
from pathlib import Path

# Airflow only parses files whose text contains both words (dag_processing "safe mode").
MIGHT_CONTAIN_DAG = (re.compile(rb"airflow", re.IGNORECASE), re.compile(rb"dag", re.IGNORECASE))


def candidate_dag_files(dags_folder: Path) -> list[Path]:
    """Python files under ``dags_folder`` that Airflow will parse (its safe-mode heuristic)."""
    files = []
    for path in sorted(dags_folder.rglob("*.py")):
        if any(part.startswith((".", "__")) for part in path.relative_to(dags_folder).parts):
            continue
        content = path.read_bytes()
        if all(pattern.search(content) for pattern in MIGHT_CONTAIN_DAG):
            files.append(path)
    return files
