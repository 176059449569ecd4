"""What ``ecscp migrate`` prints: the ``sam deploy`` line or samconfig block, and the scheduler's env."""

from __future__ import annotations

import json
import shlex

from .mapping import Migration
from .provider_config import PROVIDER_SECTION
from .sam_overrides import sam_override_token
from .template_spec import QUEUE_URL_OUTPUT, STATE_TABLE_OUTPUT


def sam_deploy_argv(migration: Migration) -> list[str]:
    """``sam deploy ...`` as an argument vector."""
    argv = ["sam", "deploy"]
    if migration.region:
        argv += ["--region", migration.region]
    argv.append("--parameter-overrides")
    argv += [sam_override_token(name, value) for name, value in migration.parameters.items()]
    return argv


def render_sam_deploy(migration: Migration) -> str:
    """One shell line: ``sam deploy ... --parameter-overrides Name=Value ...``, quoted for a POSIX shell."""
    return shlex.join(sam_deploy_argv(migration))


def _toml_string(value: str) -> str:
    if "'" not in value and value.isprintable():
        return f"'{value}'"
    return json.dumps(value)  # a JSON string is a TOML basic string


def render_samconfig(migration: Migration) -> str:
    """The ``[default.deploy.parameters]`` table of ``samconfig.toml`` with these parameters."""
    lines = [
        "# samconfig.toml: these keys belong in its one [default.deploy.parameters] table",
        "[default.deploy.parameters]",
        'capabilities = "CAPABILITY_IAM"',
    ]
    if migration.region:
        lines.append(f"region = {_toml_string(migration.region)}")
    lines.append("parameter_overrides = [")
    lines += [f"  {_toml_string(sam_override_token(n, v))}," for n, v in migration.parameters.items()]
    lines.append("]")
    return "\n".join(lines)


def render_scheduler_env(migration: Migration) -> str:
    """The scheduler's environment: what to set, what to remove."""
    lines = ["# The scheduler's environment: set"]
    lines += [f"{name}={value}" for name, value in migration.scheduler_env.items()]
    lines.append(
        f"# <{QUEUE_URL_OUTPUT}>, <{STATE_TABLE_OUTPUT}>: the deployed stack's outputs "
        "(sam list stack-outputs --stack-name <stack>), or paste its AirflowEnvironment output"
    )
    lines += [f"# {note}" for note in migration.notes]
    if migration.remove_env or migration.remove_cfg_section:
        lines.append("# The scheduler's environment: remove")
        lines += list(migration.remove_env)
        if migration.remove_cfg_section:
            lines.append(f"# and the [{PROVIDER_SECTION}] section of {migration.remove_cfg_section}")
    lines.append("# To run both executors side by side instead of switching at once: docs/migration.md")
    return "\n".join(lines)


def render(migration: Migration, output_format: str = "sam-deploy") -> str:
    """Everything ``ecscp migrate`` prints on stdout (warnings go to stderr)."""
    if output_format == "samconfig":
        stack = render_samconfig(migration)
    else:
        stack = "# The stack's parameters (run in the project, after sam build)\n" + render_sam_deploy(
            migration
        )
    return f"{stack}\n\n{render_scheduler_env(migration)}\n"
