"""Where the project's files are: the checkout that holds ``template.yaml`` and ``functions/``.

The local stack deploys the template and runs the functions' code from the project's checkout,
not from an installed copy: this distribution (``local/`` in the checkout) is installed in
editable mode by ``make venv``, so the checkout is two folders above this package. From any
other install, the current directory (or one of its parents) must be the checkout.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE_NAME = "template.yaml"


def find_project_root(start: Path | None = None) -> Path:
    """The checkout this package belongs to, else the nearest folder above ``start`` (the
    current directory) that holds the template; the checkout's path when neither has one."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / TEMPLATE_NAME).is_file():
        return checkout
    here = (start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / TEMPLATE_NAME).is_file()), checkout)


PROJECT_ROOT = find_project_root()
DEFAULT_TEMPLATE = PROJECT_ROOT / TEMPLATE_NAME
