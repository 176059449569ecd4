"""``python -m ecscp``: the same commands as the ``ecscp`` console script."""

from ecscp.cli import app

app(prog_name="ecscp")
