"""``ecscp migrate``: an ``AwsEcsExecutor`` configuration as this project's stack parameters.

The provider's executor (``airflow.providers.amazon.aws.executors.ecs.ecs_executor.AwsEcsExecutor``)
reads ``[aws_ecs_executor]`` from ``airflow.cfg`` and ``AIRFLOW__AWS_ECS_EXECUTOR__*`` variables
(which win). Here its run_task options are template parameters and the rest are settings of the
scheduler's executor (``[ecs_control_plane]``). ``migrate`` maps one to the other the way the
provider reads its options (``build_task_kwargs``), refuses what the provider refuses at start and
what the template's parameter constraints refuse (read from the template itself, so the two never
drift), and warns where a mapping exists but the meaning differs. No I/O: the caller reads files.
"""

from __future__ import annotations

import ast
import configparser
import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from executor_client import config as executor_config

PROVIDER_EXECUTOR: Final = "airflow.providers.amazon.aws.executors.ecs.ecs_executor.AwsEcsExecutor"
PROVIDER_SECTION: Final = "aws_ecs_executor"
PROVIDER_ENV_PREFIX: Final = f"AIRFLOW__{PROVIDER_SECTION.upper()}__"
#: The executor as ``[core] executor`` names it (the stack's AirflowEnvironment output says the same).
EXECUTOR_PATH: Final = "executor_client.EcsControlPlaneExecutor"
CORE_EXECUTOR_ENV: Final = "AIRFLOW__CORE__EXECUTOR"
DEFAULT_TEMPLATE: Final = Path(__file__).resolve().parent.parent / "template.yaml"

#: The stack outputs the scheduler's settings come from.
QUEUE_URL_OUTPUT: Final = "RunRequestQueueUrl"
STATE_TABLE_OUTPUT: Final = "StateTableName"
SCHEDULER_POLICY_OUTPUT: Final = "SchedulerPolicyArn"

#: The provider's run_task options (``RunTaskKwargsConfigKeys``); keys of the same name at the top
#: of ``run_task_kwargs`` replace them, since the provider merges the two into one dict.
RUN_TASK_OPTIONS: Final = (
    "assign_public_ip",
    "capacity_provider_strategy",
    "cluster",
    "container_name",
    "launch_type",
    "platform_version",
    "security_groups",
    "subnets",
    "task_definition",
)
#: Every option of ``[aws_ecs_executor]`` (``AllEcsConfigKeys``, and the provider's config section).
PROVIDER_OPTIONS: Final = (
    *RUN_TASK_OPTIONS,
    "conn_id",
    "check_health_on_startup",
    "max_run_task_attempts",
    "region_name",
    "run_task_kwargs",
)
#: The provider's ``CONFIG_DEFAULTS``.
PROVIDER_DEFAULTS: Final = {
    "conn_id": "aws_default",
    "max_run_task_attempts": "3",
    "assign_public_ip": "False",
    "platform_version": "LATEST",
    "check_health_on_startup": "True",
}

#: The template parameters migrate sets (``TemplateSpec.from_text`` checks the template has them).
PARAMETERS: Final = (
    "Cluster",
    "ContainerName",
    "TaskDefinition",
    "LaunchType",
    "CapacityProviderStrategy",
    "PlatformVersion",
    "AssignPublicIp",
    "SecurityGroups",
    "Subnets",
    "RunTaskKwargs",
    "MaxRunTaskAttempts",
    "TaskRoleArn",
    "ExecutionRoleArn",
)

_CLUSTER_ARN = re.compile(
    r"arn:aws[a-zA-Z-]*:ecs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):cluster/(?P<name>.+)"
)
_CAPACITY_PROVIDER_KEYS = frozenset({"capacityProvider", "weight", "base"})
#: run_task_kwargs keys that stand for a parameter of their own, with the parameter.
_PLACEMENT_KEYS = {
    "taskDefinition": "TaskDefinition",
    "launchType": "LaunchType",
    "capacityProviderStrategy": "CapacityProviderStrategy",
    "platformVersion": "PlatformVersion",
}
_NO_SUBNETS = (
    "At least one subnet is required to run a task. (the provider refuses to start: set subnets; it "
    "builds a network configuration for security_groups and for any assign_public_ip but exactly 'False')"
)


class TemplateMismatchError(ValueError):
    """The template is not this project's (or no longer has what migrate maps to)."""


@dataclass(frozen=True)
class Refusal:
    """One option that cannot be migrated, and why."""

    option: str
    source: str
    reason: str

    def __str__(self) -> str:
        return f"[{PROVIDER_SECTION}] {self.option} ({self.source}): {self.reason}"


class MigrationRefusedError(ValueError):
    """The configuration cannot be migrated: every refused option, each with its reason."""

    def __init__(self, refusals: Sequence[Refusal]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("; ".join(str(refusal) for refusal in self.refusals))


# -- reading the provider's configuration ---------------------------------------------------------


@dataclass(frozen=True)
class ProviderSetting:
    """An option's value as Airflow would read it, and where it came from."""

    value: str
    source: str


@dataclass(frozen=True)
class ProviderConfig:
    """The provider executor's settings, environment over ``airflow.cfg`` as in Airflow."""

    settings: Mapping[str, ProviderSetting]
    #: The ``AIRFLOW__AWS_ECS_EXECUTOR__*`` variables that were set: the scheduler drops them.
    env_names: tuple[str, ...] = ()
    #: The ``airflow.cfg`` whose ``[aws_ecs_executor]`` section was read, if it had one.
    cfg_with_section: str | None = None
    core_executor: ProviderSetting | None = None


def parse_env_file(text: str) -> dict[str, str]:
    """``NAME=VALUE`` lines (``export`` allowed, ``#`` comments); a quoted value reads as in a shell."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.removeprefix("export ").lstrip().partition("=")
        if not sep or not name.strip():
            raise ValueError(f"line {number}: expected NAME=VALUE, got {line!r}")
        if value[:1] in ("'", '"'):
            words = shlex.split(value)
            if len(words) != 1:
                raise ValueError(f"line {number}: the quoted value of {name.strip()} is not one word")
            value = words[0]
        values[name.strip()] = value
    return values


def read_provider_config(
    env: Mapping[str, str], cfg_text: str | None = None, cfg_label: str = "airflow.cfg"
) -> ProviderConfig:
    """What the provider's executor would read from ``cfg_text`` (an ``airflow.cfg``) and ``env``.

    Only the exact upper-case ``AIRFLOW__AWS_ECS_EXECUTOR__<OPTION>`` names count, as in Airflow.
    """
    settings: dict[str, ProviderSetting] = {}
    core_executor: ProviderSetting | None = None
    cfg_with_section: str | None = None
    if cfg_text is not None:
        # Airflow's parser is a ConfigParser: option names case-insensitive, %-interpolation.
        parser = configparser.ConfigParser()
        try:
            parser.read_string(cfg_text, source=cfg_label)
            if parser.has_section(PROVIDER_SECTION):
                cfg_with_section = cfg_label
                for option in parser.options(PROVIDER_SECTION):
                    settings[option] = ProviderSetting(parser.get(PROVIDER_SECTION, option), cfg_label)
            if parser.has_option("core", "executor"):
                core_executor = ProviderSetting(parser.get("core", "executor"), f"{cfg_label} [core]")
        except configparser.Error as exc:
            refusal = Refusal("*", cfg_label, f"Airflow cannot read this file: {exc}")
            raise MigrationRefusedError([refusal]) from None
    env_names = tuple(sorted(name for name in env if name.startswith(PROVIDER_ENV_PREFIX)))
    for name in env_names:
        settings[name.removeprefix(PROVIDER_ENV_PREFIX).lower()] = ProviderSetting(env[name], name)
    if CORE_EXECUTOR_ENV in env:
        core_executor = ProviderSetting(env[CORE_EXECUTOR_ENV], CORE_EXECUTOR_ENV)
    return ProviderConfig(settings, env_names, cfg_with_section, core_executor)


# -- the template ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterSpec:
    """A template parameter's constraints, as CloudFormation applies them."""

    name: str
    type: str = "String"
    allowed_pattern: str | None = None
    allowed_values: tuple[str, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_value: float | None = None
    max_value: float | None = None
    constraint: str | None = None

    @classmethod
    def from_template(cls, name: str, body: Mapping[str, Any]) -> ParameterSpec:
        def number(key: str) -> float | None:
            return float(body[key]) if key in body else None

        allowed = body.get("AllowedValues")
        return cls(
            name=name,
            type=str(body.get("Type", "String")),
            allowed_pattern=body.get("AllowedPattern"),
            allowed_values=tuple(str(value) for value in allowed) if allowed is not None else None,
            min_length=int(body["MinLength"]) if "MinLength" in body else None,
            max_length=int(body["MaxLength"]) if "MaxLength" in body else None,
            min_value=number("MinValue"),
            max_value=number("MaxValue"),
            constraint=body.get("ConstraintDescription"),
        )

    def violation(self, value: str) -> str | None:
        """Why CloudFormation would refuse ``value`` for this parameter, or None."""
        if self.type == "Number":
            try:
                number = float(value)
            except ValueError:
                return f"{self.name} is a Number, not {value!r}"
            if self.min_value is not None and number < self.min_value:
                return f"{self.name} must be at least {self.min_value:g}, not {value}"
            if self.max_value is not None and number > self.max_value:
                return f"{self.name} must be at most {self.max_value:g}, not {value}"
        if self.allowed_values is not None and value not in self.allowed_values:
            return f"{self.name} must be one of {list(self.allowed_values)}, not {value!r}"
        if self.allowed_pattern is not None and not re.fullmatch(self.allowed_pattern, value):
            hint = f" ({self.constraint})" if self.constraint else ""
            return f"{value!r} does not match {self.name}'s AllowedPattern {self.allowed_pattern}{hint}"
        if self.min_length is not None and len(value) < self.min_length:
            return f"{self.name} needs at least {self.min_length} characters"
        if self.max_length is not None and len(value) > self.max_length:
            return f"{self.name} takes at most {self.max_length} characters"
        return None


@dataclass(frozen=True)
class TemplateSpec:
    """What migrate needs of ``template.yaml``: its parameters (in order) and its output names."""

    parameters: Mapping[str, ParameterSpec]
    outputs: frozenset[str]

    @classmethod
    def from_text(cls, text: str) -> TemplateSpec:
        """Parse the template as SAM does; refuse one that lacks what migrate maps to."""
        import yaml  # noqa: PLC0415 (lazy: heavy, CLI-only)
        from samtranslator.yaml_helper import yaml_parse  # noqa: PLC0415 (lazy: heavy, CLI-only)

        try:
            document = yaml_parse(text)
        except yaml.YAMLError as exc:
            raise TemplateMismatchError(f"not YAML SAM can read: {exc}") from None
        if not isinstance(document, Mapping) or not isinstance(document.get("Parameters"), Mapping):
            raise TemplateMismatchError("not a CloudFormation template with Parameters")
        spec = cls(
            parameters={
                str(name): ParameterSpec.from_template(str(name), body)
                for name, body in document["Parameters"].items()
            },
            outputs=frozenset(document.get("Outputs") or {}),
        )
        missing = [name for name in PARAMETERS if name not in spec.parameters]
        missing += [
            f"output {name}"
            for name in (QUEUE_URL_OUTPUT, STATE_TABLE_OUTPUT, SCHEDULER_POLICY_OUTPUT)
            if name not in spec.outputs
        ]
        if missing:
            raise TemplateMismatchError(
                f"the template lacks {', '.join(missing)}: is it this project's template.yaml?"
            )
        return spec


# -- sam deploy's --parameter-overrides ------------------------------------------------------------

# How the SAM CLI reads one Key=Value token (samcli.cli.types.CfnParameterOverridesType).
_SAM_VALUE = r"""("(?:\\.|[^"\\]+)*"|'(?:\\.|[^'\\]+)*'|(?:\\.|[^ "\\]+)+)"""
_SAM_PAIR = re.compile(r"""(?:(?: )([A-Za-z0-9"']+)=""" + _SAM_VALUE + ")")
_SAM_NEEDS_QUOTES = re.compile(r"""[\s"'\\]""")


def _sam_unquote(value: str) -> str:
    if value and value[0] == value[-1] and value[0] in ('"', "'"):
        value = value[1:-1]
    return value.replace("\\ ", " ").replace('\\"', '"').replace("\\'", "'")


def parse_sam_overrides(tokens: Iterable[str]) -> dict[str, str]:
    """The parameters ``sam deploy --parameter-overrides <tokens>`` passes (as SAM parses them)."""
    parameters: dict[str, str] = {}
    for token in tokens:
        pairs = _SAM_PAIR.findall(" " + token.strip())
        if not pairs:
            raise ValueError(f"sam cannot read {token!r}")
        parameters.update({_sam_unquote(key): _sam_unquote(value) for key, value in pairs})
    return parameters


def sam_override_token(name: str, value: str) -> str:
    """``Name=Value`` as SAM reads it back: double-quoted (``"`` escaped) when it has to be."""
    if value and not _SAM_NEEDS_QUOTES.search(value):
        return f"{name}={value}"
    return f'{name}="' + value.replace('"', '\\"') + '"'


def _sam_reads_back(name: str, value: str) -> bool:
    try:
        return parse_sam_overrides([sam_override_token(name, value)]) == {name: value}
    except ValueError:
        return False


def _json_text(value: Any) -> str:
    """Compact JSON whose strings escape ``"``, ``'`` and ``\\`` as ``\\uXXXX``.

    SAM unescapes ``\\"`` in every parameter value, so a JSON escape of that form would not
    survive ``--parameter-overrides`` or ``samconfig.toml``; ``\\uXXXX`` means the same to JSON.
    """
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_json_text(str(k))}:{_json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_text(item) for item in value) + "]"
    if isinstance(value, str):
        return '"' + "".join(c if c >= " " and c not in "\"'\\" else f"\\u{ord(c):04x}" for c in value) + '"'
    return json.dumps(value)


# -- the mapping -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """The stack parameters and the scheduler's new environment for one provider configuration."""

    #: Template parameter -> value, in the template's order.
    parameters: Mapping[str, str]
    #: The stack's region (the provider's region_name, or the cluster ARN's); None: as configured.
    region: str | None
    #: The scheduler's environment to set (``<Output>`` placeholders for the stack's outputs).
    scheduler_env: Mapping[str, str]
    #: The provider's variables the scheduler drops.
    remove_env: tuple[str, ...]
    #: The airflow.cfg whose ``[aws_ecs_executor]`` section goes too.
    remove_cfg_section: str | None
    #: Where the meaning differs although a mapping exists.
    warnings: tuple[str, ...]
    #: Printed with the output: what else the switch needs.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Given:
    """A value to map: an option's, or a run_task_kwargs key's that stands in for one."""

    option: str
    value: object
    source: str


@dataclass
class _Findings:
    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def refuse(self, given: _Given, reason: str) -> None:
        self.refusals.append(Refusal(given.option, given.source, reason))


def _provider_camel(key: str) -> str:
    """``inflection.camelize(key, uppercase_first_letter=False)``, which the provider applies."""
    if not key:
        return key
    upper = re.sub(r"(?:^|_)(.)", lambda m: m.group(1).upper(), key)
    return key[0].lower() + upper[1:]


def _provider_camelize(value: Mapping[str, Any]) -> dict[str, Any]:
    """The provider's ``camelize_dict_keys``: objects recursively (lists not), keys in ``tags`` kept."""
    return {
        _provider_camel(key): _provider_camelize(item)
        if isinstance(item, Mapping) and key.lower() != "tags"
        else item
        for key, item in value.items()
    }


class _Options:
    """The provider's options with its defaults; run_task_kwargs keys may replace them."""

    def __init__(self, config: ProviderConfig) -> None:
        self._given = {name: _Given(name, s.value, s.source) for name, s in config.settings.items()}

    def get(self, option: str, *, default: bool = True) -> _Given | None:
        if option in self._given:
            return self._given[option]
        return self.defaulted(option) if default and option in PROVIDER_DEFAULTS else None

    def defaulted(self, option: str) -> _Given:
        """An option the provider has a default for (``CONFIG_DEFAULTS``)."""
        return self._given.get(option) or _Given(option, PROVIDER_DEFAULTS[option], "the provider's default")

    def replace(self, given: _Given) -> None:
        self._given[given.option] = given


def _text(given: _Given | None, findings: _Findings) -> str | None:
    """The value as a string; a run_task_kwargs key that is not a string is refused."""
    if given is None or isinstance(given.value, str):
        return None if given is None else str(given.value)
    findings.refuse(given, f"must be a string, as the provider reads {given.option}, not {given.value!r}")
    return None


def _required(given: _Given | None, option: str, findings: _Findings) -> str | None:
    if given is None or given.value == "":
        findings.refuse(
            given or _Given(option, None, "not set"),
            "required: the provider's executor does not start without it, and its stack parameter "
            "has no usable default",
        )
        return None
    return _text(given, findings)


def _csv(given: _Given | None, findings: _Findings) -> list[str]:
    raw = (_text(given, findings) or "").split(",")
    ids = [part.strip() for part in raw if part.strip()]
    if given is not None and ids != [part for part in raw if part]:
        findings.warnings.append(
            f"{given.option} ({given.source}): the provider sent the ids as written, spaces and empty "
            f"entries included; here they are {','.join(ids)!r}"
        )
    return ids


def _capacity_provider_strategy(given: _Given, findings: _Findings) -> list[dict[str, Any]] | None:
    parsed: object = given.value
    if isinstance(given.value, str):
        if not given.value.strip():
            return None
        try:
            parsed = json.loads(given.value)
        except json.JSONDecodeError:
            # The provider's documented example is a Python literal: [{'capacityProvider': 'cp1', ...}].
            try:
                parsed = ast.literal_eval(given.value)
            except (ValueError, SyntaxError):
                findings.refuse(
                    given, 'not a JSON list such as [{"capacityProvider":"FARGATE_SPOT","weight":1}]'
                )
                return None
        findings.warnings.append(
            f"capacity_provider_strategy ({given.source}): the provider passes this option to RunTask as "
            "text, which botocore refuses (every start failed with 'Invalid type for parameter "
            "capacityProviderStrategy'); here CapacityProviderStrategy is a JSON list and is used"
        )
    if not isinstance(parsed, list) or not all(isinstance(item, Mapping) for item in parsed):
        findings.refuse(given, f"must be a list of objects, not {parsed!r}")
        return None
    strategy = [_provider_camelize(item) for item in parsed]
    for item in strategy:
        if set(item) - _CAPACITY_PROVIDER_KEYS or not isinstance(item.get("capacityProvider"), str):
            findings.refuse(
                given,
                f"each entry needs a capacityProvider and may set only {sorted(_CAPACITY_PROVIDER_KEYS)}; "
                f"got {item!r}",
            )
            return None
    return strategy


@dataclass
class _RunTaskKwargs:
    """run_task_kwargs as the provider's build_task_kwargs treats its keys."""

    #: What stays RunTaskKwargs (camelCase, as the provider sends it).
    rest: dict[str, Any]
    #: camelCase keys that are parameters here (taskDefinition, launchType, ...), by parameter.
    placement: dict[str, _Given] = field(default_factory=dict)


def _split_run_task_kwargs(options: _Options, findings: _Findings) -> _RunTaskKwargs | None:
    given = options.get("run_task_kwargs")
    if given is None:
        return _RunTaskKwargs(rest={})
    try:
        parsed = json.loads(str(given.value))
    except json.JSONDecodeError as exc:
        findings.refuse(given, f"not valid JSON ({exc}): the provider's executor does not start with it")
        return None
    if not isinstance(parsed, dict):
        findings.refuse(given, "must be a JSON object: the provider's executor does not start otherwise")
        return None
    rest: dict[str, Any] = {}
    for key, value in parsed.items():
        if key not in RUN_TASK_OPTIONS:
            rest[key] = value
            continue
        lifted = _Given(key, value, f"run_task_kwargs key {key!r}")
        current = options.get(key, default=False)
        if key in ("cluster", "container_name") and current is not None and current.value != value:
            # The provider would start tasks with this value but find them with the option's.
            findings.refuse(lifted, f"differs from the option ({current.value!r}): the provider fails so")
            continue
        options.replace(lifted)
        findings.warnings.append(
            f"run_task_kwargs sets {key!r}, which the provider reads as the {key} option "
            "(replacing [aws_ecs_executor]'s): migrated as that option"
        )
    split = _RunTaskKwargs(rest=_provider_camelize(rest))
    for key, parameter in _PLACEMENT_KEYS.items():
        if key in split.rest:
            split.placement[parameter] = _Given(key, split.rest.pop(key), f"run_task_kwargs key {key!r}")
    if split.rest.pop("count", None) is not None:
        findings.warnings.append("run_task_kwargs 'count' dropped: the provider always sent count=1, as here")
    return split


def _container_overrides(rest: dict[str, Any], container_name: str, findings: _Findings) -> None:
    """The provider makes the first containerOverrides entry the Airflow container, whatever its name."""
    overrides = rest.get("overrides")
    if not isinstance(overrides, Mapping):
        return
    containers = overrides.get("containerOverrides")
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], Mapping):
        return
    first = dict(containers[0])
    if first.get("name", container_name) != container_name:
        findings.warnings.append(
            f"run_task_kwargs: the first containerOverrides entry is named {first['name']!r}; the provider "
            f"renamed it to the Airflow container {container_name!r}, and so does the migrated RunTaskKwargs"
        )
    first["name"] = container_name
    if first.pop("command", None) is not None:
        findings.warnings.append(
            "run_task_kwargs: the Airflow container's command dropped (the provider replaced it too)"
        )
    rest["overrides"] = {**overrides, "containerOverrides": [first, *containers[1:]]}


def _cluster(options: _Options, findings: _Findings) -> tuple[str | None, str | None]:
    """The cluster's name, and the region its ARN names (if it is an ARN)."""
    value = _required(options.get("cluster"), "cluster", findings)
    arn = _CLUSTER_ARN.fullmatch(value or "")
    if arn is None:
        return value, None
    findings.warnings.append(
        f"cluster is an ARN; the Cluster parameter takes its name {arn['name']!r}: deploy the stack in "
        f"account {arn['account']}, region {arn['region']}, the cluster's"
    )
    return arn["name"], arn["region"]


def _public_ip(options: _Options, findings: _Findings) -> tuple[str, bool]:
    """AssignPublicIp, and whether the provider builds a network configuration for the option."""
    given = options.defaulted("assign_public_ip")
    if given.value == "True":
        return "true", True
    if given.value == "False":
        return "false", False
    findings.warnings.append(
        f"assign_public_ip is {given.value!r} ({given.source}): the provider enables a public IP only "
        "for exactly 'True' and treats anything else as DISABLED: AssignPublicIp=false (set true if "
        "you meant it)"
    )
    return "false", True


def _network(options: _Options, findings: _Findings) -> tuple[dict[str, str], bool]:
    """AssignPublicIp, SecurityGroups, Subnets; and whether the provider builds a network from them."""
    assign_public_ip, public_ip_builds = _public_ip(options, findings)
    security_groups = _csv(options.get("security_groups"), findings)
    subnets = _csv(options.get("subnets"), findings)
    if not subnets:
        if security_groups:
            findings.refuse(
                options.get("security_groups") or _Given("security_groups", None, ""), _NO_SUBNETS
            )
        if public_ip_builds:
            findings.refuse(options.defaulted("assign_public_ip"), _NO_SUBNETS)
    values = {
        "AssignPublicIp": assign_public_ip,
        "SecurityGroups": ",".join(security_groups),
        "Subnets": ",".join(subnets),
    }
    return values, bool(public_ip_builds or security_groups or subnets)


def _placement(options: _Options, kwargs: _RunTaskKwargs, findings: _Findings) -> dict[str, str]:
    """LaunchType and CapacityProviderStrategy, as the provider decides between them."""
    option_type = options.get("launch_type")
    option_strategy = options.get("capacity_provider_strategy")
    if option_type is not None and option_strategy is not None:
        findings.refuse(
            option_strategy,
            "capacity_provider_strategy and launch_type are mutually exclusive, you can not provide both "
            f"(the provider refuses to start; launch_type from {option_type.source})",
        )
        return {}
    launch_type = kwargs.placement.get("LaunchType") or option_type
    strategy_given = kwargs.placement.get("CapacityProviderStrategy") or option_strategy
    if launch_type is not None and strategy_given is not None:
        findings.refuse(
            strategy_given,
            f"set together with a launch type ({launch_type.source}): the provider sends both, and ECS "
            "refuses every RunTask with launchType and capacityProviderStrategy",
        )
        return {}
    if option_type is None and option_strategy is None:
        if launch_type is not None:
            findings.warnings.append(
                "run_task_kwargs sets launchType without the launch_type option: on a cluster without a "
                "default capacity provider strategy the provider sent FARGATE instead; here "
                f"LaunchType={launch_type.value} is used"
            )
        elif strategy_given is None:
            findings.warnings.append(
                "neither launch_type nor capacity_provider_strategy is set: the provider used the cluster's "
                "default capacity provider strategy if it has one, else FARGATE. Here LaunchType=FARGATE; "
                "if the cluster has a default strategy, set CapacityProviderStrategy to it (aws ecs "
                "describe-clusters --query 'clusters[0].defaultCapacityProviderStrategy')"
            )
            return {"LaunchType": "FARGATE", "CapacityProviderStrategy": ""}
    if strategy_given is not None:
        strategy = _capacity_provider_strategy(strategy_given, findings)
        if strategy:
            return {"LaunchType": "", "CapacityProviderStrategy": _json_text(strategy)}
    return {"LaunchType": _text(launch_type, findings) or "", "CapacityProviderStrategy": ""}


def _max_attempts(options: _Options, findings: _Findings) -> str | None:
    given = options.defaulted("max_run_task_attempts")
    try:
        attempts = int(str(given.value))
    except ValueError:
        findings.refuse(
            given, f"not an integer ({given.value!r}): the provider fails at its first failed start"
        )
        return None
    if attempts > 1:
        findings.warnings.append(
            f"max_run_task_attempts={attempts}: here it counts start attempts only (RunTask failures, "
            "capacity, a task stopped before it started); throttling spends none. The provider also ran a "
            "task again whose container exited non-zero; here that try is FAILED and Airflow's retries "
            "take over"
        )
    return str(attempts)


def _check_health(options: _Options, findings: _Findings) -> str | None:
    given = options.defaulted("check_health_on_startup")
    # Airflow's conf.getboolean, which both executors use.
    value = str(given.value).lower().strip().split("#")[0].strip()
    if value in ("t", "true", "1"):
        return "True"
    if value in ("f", "false", "0"):
        return "False"
    findings.refuse(given, f"not a boolean ({given.value!r}): Airflow refuses it (conf.getboolean)")
    return None


def _core_executor(setting: ProviderSetting | None, findings: _Findings) -> str:
    """``[core] executor`` with the provider's executor replaced by this one (its alias kept)."""
    if setting is None:
        return EXECUTOR_PATH
    replaced = False
    teams = []
    for team_part in setting.value.split(";"):
        team, sep, names = team_part.partition("=") if "=" in team_part else ("", "", team_part)
        entries = []
        for entry in (name.strip() for name in names.split(",")):
            alias, colon, path = entry.rpartition(":")
            if not (path.startswith("airflow.providers.amazon.") and path.endswith(".AwsEcsExecutor")):
                entries.append(entry)
                continue
            if team:
                reason = (
                    f"team {team!r} runs AwsEcsExecutor with its team's own configuration, which migrate "
                    "does not read: migrate that team's settings separately"
                )
                findings.refusals.append(Refusal("(core executor)", setting.source, reason))
            entries.append(f"{alias}{colon}{EXECUTOR_PATH}")
            replaced = True
        teams.append(f"{team}{sep}{','.join(entries)}")
    if not replaced:
        findings.warnings.append(
            f"{setting.source} executor is {setting.value!r}, which does not name {PROVIDER_EXECUTOR}: "
            f"printed {EXECUTOR_PATH} alone"
        )
        return EXECUTOR_PATH
    return ";".join(teams)


def _refuse_unknown_options(config: ProviderConfig, findings: _Findings) -> None:
    if not config.settings:
        reason = f"nothing to migrate: no {PROVIDER_ENV_PREFIX}* variable and no [{PROVIDER_SECTION}] section"
        raise MigrationRefusedError([Refusal("*", "airflow.cfg and environment", reason)])
    for option, setting in config.settings.items():
        if option in PROVIDER_OPTIONS:
            continue
        if option.endswith(("_cmd", "_secret")):
            why = (
                "Airflow reads the _cmd and _secret forms only for sensitive options, which the "
                f"provider's are not: set {option.rsplit('_', 1)[0]} itself"
            )
        else:
            known = ", ".join(PROVIDER_OPTIONS)
            why = f"not an option of the provider's executor, which ignores it; known: {known}"
        findings.refusals.append(Refusal(option, setting.source, why))


def _run_task_parameters(
    options: _Options, findings: _Findings
) -> tuple[dict[str, str | None], dict[str, _Given | None], str | None]:
    """The run_task parameters, the option behind each, and the cluster ARN's region (if any)."""
    from ecs_control_plane.run_task_call import (  # noqa: PLC0415 (lazy: pydantic, CLI-only)
        RunTaskConfigError,
        check_run_task_overrides,
    )

    kwargs = _split_run_task_kwargs(options, findings)
    placement = kwargs.placement if kwargs else {}
    cluster, arn_region = _cluster(options, findings)
    feeds: dict[str, _Given | None] = {
        "Cluster": options.get("cluster"),
        "ContainerName": options.get("container_name"),
        "TaskDefinition": placement.get("TaskDefinition") or options.get("task_definition"),
        "LaunchType": placement.get("LaunchType") or options.get("launch_type"),
        "CapacityProviderStrategy": placement.get("CapacityProviderStrategy")
        or options.get("capacity_provider_strategy"),
        "PlatformVersion": placement.get("PlatformVersion") or options.get("platform_version"),
        "AssignPublicIp": options.defaulted("assign_public_ip"),
        "SecurityGroups": options.get("security_groups"),
        "Subnets": options.get("subnets"),
        "RunTaskKwargs": options.get("run_task_kwargs"),
        "MaxRunTaskAttempts": options.defaulted("max_run_task_attempts"),
    }
    container_name = _required(feeds["ContainerName"], "container_name", findings)
    network, builds_network = _network(options, findings)
    values: dict[str, str | None] = {
        "Cluster": cluster,
        "ContainerName": container_name,
        "TaskDefinition": _required(feeds["TaskDefinition"], "task_definition", findings),
        "PlatformVersion": _text(feeds["PlatformVersion"], findings) or "",
        **network,
        "MaxRunTaskAttempts": _max_attempts(options, findings),
    }
    if kwargs is None:
        return values, feeds, arn_region
    values.update(_placement(options, kwargs, findings))
    if container_name is None:
        return values, feeds, arn_region
    rest = kwargs.rest
    if builds_network and rest.pop("networkConfiguration", None) is not None:
        findings.warnings.append(
            "run_task_kwargs' networkConfiguration dropped: the provider replaced it with the one it "
            "builds from subnets, security_groups and assign_public_ip, and so does the stack"
        )
    _container_overrides(rest, container_name, findings)
    overrides = rest.get("overrides")
    for parameter, key in (("TaskRoleArn", "taskRoleArn"), ("ExecutionRoleArn", "executionRoleArn")):
        # run_task may pass only the roles the stack names (iam:PassRole).
        if isinstance(overrides, Mapping) and isinstance(overrides.get(key), str):
            values[parameter] = overrides[key]
            feeds[parameter] = feeds["RunTaskKwargs"]
    try:
        check_run_task_overrides(rest, container_name, "RunTaskKwargs")
    except RunTaskConfigError as exc:
        findings.refuse(
            feeds["RunTaskKwargs"] or _Given("run_task_kwargs", None, "not set"),
            f"{exc} (the functions check RunTaskKwargs when they start)",
        )
    else:
        values["RunTaskKwargs"] = _json_text(rest)
    return values, feeds, arn_region


def _checked_parameters(
    values: Mapping[str, str | None],
    feeds: Mapping[str, _Given | None],
    template: TemplateSpec,
    findings: _Findings,
) -> dict[str, str]:
    """The values in the template's order, each refused that the template or SAM would refuse."""
    parameters: dict[str, str] = {}
    for name, spec in template.parameters.items():
        value = values.get(name)
        if value is None:
            continue
        violation = spec.violation(value)
        if violation is None and not _sam_reads_back(name, value):
            violation = f"{name}={value!r} cannot be passed to sam deploy (SAM would read it differently)"
        if violation is not None:
            findings.refuse(
                feeds.get(name) or _Given(name, value, "derived"), f"refused by the template: {violation}"
            )
        parameters[name] = value
    return parameters


def migrate(config: ProviderConfig, template: TemplateSpec) -> Migration:
    """Map the provider's configuration to stack parameters and the scheduler's environment.

    Raises ``MigrationRefusedError`` naming every option that cannot be migrated, with the reason.
    """
    findings = _Findings()
    _refuse_unknown_options(config, findings)
    options = _Options(config)
    values, feeds, arn_region = _run_task_parameters(options, findings)
    parameters = _checked_parameters(values, feeds, template, findings)
    check_health = _check_health(options, findings)
    core_executor = _core_executor(config.core_executor, findings)
    region = _text(options.get("region_name"), findings) or arn_region
    if arn_region and region != arn_region:
        findings.warnings.append(
            f"region_name {region!r} differs from the cluster ARN's region {arn_region!r}: the stack "
            "must run in the cluster's region"
        )
    conn_id = _text(options.defaulted("conn_id"), findings) or ""
    container_name = values.get("ContainerName")
    if findings.refusals or container_name is None or check_health is None:
        raise MigrationRefusedError(findings.refusals)

    unset_roles = [name for name in ("TaskRoleArn", "ExecutionRoleArn") if name not in parameters]
    if unset_roles:
        findings.notes.append(
            f"add {' and '.join(f'{name}=<role ARN>' for name in unset_roles)} if the task definition "
            "has them (aws ecs describe-task-definition --query "
            "'taskDefinition.[taskRoleArn,executionRoleArn]'): run_task may pass only the roles the "
            "stack names"
        )
    credentials = f"connection {conn_id!r}" if conn_id else "boto3's default chain"
    findings.notes.append(
        f"the scheduler's credentials ({credentials}) now need the stack's SchedulerPolicy (output "
        f"{SCHEDULER_POLICY_OUTPUT}) and no ECS or iam:PassRole right: those moved to the control "
        "plane's run_task role"
    )
    env = executor_config.env_name
    scheduler_env = {
        CORE_EXECUTOR_ENV: core_executor,
        env(executor_config.QUEUE_URL): f"<{QUEUE_URL_OUTPUT}>",
        env(executor_config.STATE_TABLE): f"<{STATE_TABLE_OUTPUT}>",
        **({env(executor_config.REGION_NAME): region} if region else {}),
        env(executor_config.CONN_ID): conn_id,
        env(executor_config.CONTAINER_NAME): container_name,
        env(executor_config.CHECK_HEALTH_ON_STARTUP): check_health,
    }
    return Migration(
        parameters=parameters,
        region=region,
        scheduler_env=scheduler_env,
        remove_env=config.env_names,
        remove_cfg_section=config.cfg_with_section,
        warnings=tuple(findings.warnings),
        notes=tuple(findings.notes),
    )


# -- output ----------------------------------------------------------------------------------------


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
