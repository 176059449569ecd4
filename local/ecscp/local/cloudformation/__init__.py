"""The project's SAM template as CloudFormation would deploy it, into moto.

What ``sam package`` and ``sam deploy`` do, offline, driven by the template and the deployed
stack (resource types, logical ids, parameters, outputs), never by hard-coded resource names.
:class:`~.deployer.StackDeployer` runs the steps in order:

1. :mod:`.package`: ``CodeUri``/``ContentUri`` directories are zipped into moto's S3;
2. :mod:`.parameters`: local values for the template's parameters; :mod:`.rules`: its
   ``Rules`` are checked and its decided ``Fn::If`` resolved (moto does neither);
3. :mod:`.translate`: samtranslator turns SAM into CloudFormation;
4. :mod:`.deployer`: moto's CloudFormation creates the stack;
5. :mod:`.fixups`: what moto's CloudFormation skips and matters is applied, its values
   resolved by :mod:`.intrinsics`;
6. :mod:`.functions`: the wiring the local runtime needs is read back from moto.

The ECS side the stack only refers to exists before the deploy, as on a real account:
:mod:`ecscp.local.ecs.setup` creates it.
"""


class DeployError(RuntimeError):
    """The template could not be deployed into the local stack."""
