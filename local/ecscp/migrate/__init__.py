"""``ecscp migrate``: an ``AwsEcsExecutor`` configuration as this project's stack parameters.

The provider's executor (``airflow.providers.amazon.aws.executors.ecs.ecs_executor.AwsEcsExecutor``)
reads ``[aws_ecs_executor]`` from ``airflow.cfg`` and ``AIRFLOW__AWS_ECS_EXECUTOR__*`` variables
(which win). Here its run_task options are template parameters and the rest are settings of the
scheduler's executor (``[ecs_control_plane]``). ``migrate`` maps one to the other the way the
provider reads its options (``build_task_kwargs``), refuses what the provider refuses at start and
what the template's parameter constraints refuse (read from the template itself, so the two never
drift), and warns where a mapping exists but the meaning differs. No I/O: the caller reads files.

- ``provider_config``: reading ``airflow.cfg``, the environment and env files into a ``ProviderConfig``;
- ``template_spec``: the template's parameters, their constraints, and its outputs;
- ``mapping``: the pure ``migrate``, with ``network``, ``placement``, ``run_task_kwargs`` and
  ``scheduler`` mapping the options one concern at a time (``options`` holds what they share);
- ``sam_overrides``: values as ``sam deploy --parameter-overrides`` reads them;
- ``render``: the ``sam deploy`` line or samconfig block, and the scheduler's environment.
"""

from ecscp.project import DEFAULT_TEMPLATE

from .mapping import Migration, migrate
from .provider_config import (
    CORE_EXECUTOR_ENV,
    PROVIDER_DEFAULTS,
    PROVIDER_ENV_PREFIX,
    PROVIDER_EXECUTOR,
    PROVIDER_OPTIONS,
    PROVIDER_SECTION,
    RUN_TASK_OPTIONS,
    MigrationRefusedError,
    ProviderConfig,
    ProviderSetting,
    Refusal,
    parse_env_file,
    read_provider_config,
)
from .render import render, render_sam_deploy, render_samconfig, render_scheduler_env, sam_deploy_argv
from .sam_overrides import parse_sam_overrides, sam_override_token
from .scheduler import EXECUTOR_PATH
from .template_spec import (
    PARAMETERS,
    QUEUE_URL_OUTPUT,
    SCHEDULER_POLICY_OUTPUT,
    STATE_TABLE_OUTPUT,
    ParameterSpec,
    TemplateMismatchError,
    TemplateSpec,
)

__all__ = [
    "CORE_EXECUTOR_ENV",
    "DEFAULT_TEMPLATE",
    "EXECUTOR_PATH",
    "PARAMETERS",
    "PROVIDER_DEFAULTS",
    "PROVIDER_ENV_PREFIX",
    "PROVIDER_EXECUTOR",
    "PROVIDER_OPTIONS",
    "PROVIDER_SECTION",
    "QUEUE_URL_OUTPUT",
    "RUN_TASK_OPTIONS",
    "SCHEDULER_POLICY_OUTPUT",
    "STATE_TABLE_OUTPUT",
    "Migration",
    "MigrationRefusedError",
    "ParameterSpec",
    "ProviderConfig",
    "ProviderSetting",
    "Refusal",
    "TemplateMismatchError",
    "TemplateSpec",
    "migrate",
    "parse_env_file",
    "parse_sam_overrides",
    "read_provider_config",
    "render",
    "render_sam_deploy",
    "render_samconfig",
    "render_scheduler_env",
    "sam_deploy_argv",
    "sam_override_token",
]
