"""The network options: ``assign_public_ip``, ``security_groups`` and ``subnets``.

As the provider builds a network configuration: for any of them set, and for any
``assign_public_ip`` but exactly ``False``; without subnets it refuses to start, and so does migrate.
"""

from __future__ import annotations

from .options import Findings, Given, Options, as_text

_NO_SUBNETS = (
    "At least one subnet is required to run a task. (the provider refuses to start: set subnets; it "
    "builds a network configuration for security_groups and for any assign_public_ip but exactly 'False')"
)


def _csv(given: Given | None, findings: Findings) -> list[str]:
    raw = (as_text(given, findings) or "").split(",")
    ids = [part.strip() for part in raw if part.strip()]
    if given is not None and ids != [part for part in raw if part]:
        findings.warnings.append(
            f"{given.option} ({given.source}): the provider sent the ids as written, spaces and empty "
            f"entries included; here they are {','.join(ids)!r}"
        )
    return ids


def _public_ip(options: Options, findings: Findings) -> tuple[str, bool]:
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


def network_parameters(options: Options, findings: Findings) -> tuple[dict[str, str], bool]:
    """AssignPublicIp, SecurityGroups, Subnets; and whether the provider builds a network from them."""
    assign_public_ip, public_ip_builds = _public_ip(options, findings)
    security_groups = _csv(options.get("security_groups"), findings)
    subnets = _csv(options.get("subnets"), findings)
    if not subnets:
        if security_groups:
            findings.refuse(options.get("security_groups") or Given("security_groups", None, ""), _NO_SUBNETS)
        if public_ip_builds:
            findings.refuse(options.defaulted("assign_public_ip"), _NO_SUBNETS)
    values = {
        "AssignPublicIp": assign_public_ip,
        "SecurityGroups": ",".join(security_groups),
        "Subnets": ",".join(subnets),
    }
    return values, bool(public_ip_builds or security_groups or subnets)
