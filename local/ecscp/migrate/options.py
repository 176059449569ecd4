"""The provider's options as the mapping reads them, and what the mapping finds on the way.

Each value keeps the option (or ``run_task_kwargs`` key) it came from and its source, so that
every refusal and warning names them. ``Findings`` collects the refusals, warnings and notes of
one migration: every refused option is reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .provider_config import PROVIDER_DEFAULTS, ProviderConfig, Refusal


@dataclass(frozen=True)
class Given:
    """A value to map: an option's, or a run_task_kwargs key's that stands in for one."""

    option: str
    value: object
    source: str


@dataclass
class Findings:
    """What one migration found: its refusals (reported together), warnings and notes."""

    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def refuse(self, given: Given, reason: str) -> None:
        self.refusals.append(Refusal(given.option, given.source, reason))


class Options:
    """The provider's options with its defaults; run_task_kwargs keys may replace them."""

    def __init__(self, config: ProviderConfig) -> None:
        self._given = {name: Given(name, s.value, s.source) for name, s in config.settings.items()}

    def get(self, option: str, *, default: bool = True) -> Given | None:
        if option in self._given:
            return self._given[option]
        return self.defaulted(option) if default and option in PROVIDER_DEFAULTS else None

    def defaulted(self, option: str) -> Given:
        """An option the provider has a default for (``CONFIG_DEFAULTS``)."""
        return self._given.get(option) or Given(option, PROVIDER_DEFAULTS[option], "the provider's default")

    def replace(self, given: Given) -> None:
        self._given[given.option] = given


def as_text(given: Given | None, findings: Findings) -> str | None:
    """The value as a string; a run_task_kwargs key that is not a string is refused."""
    if given is None or isinstance(given.value, str):
        return None if given is None else str(given.value)
    findings.refuse(given, f"must be a string, as the provider reads {given.option}, not {given.value!r}")
    return None


def required(given: Given | None, option: str, findings: Findings) -> str | None:
    if given is None or given.value == "":
        findings.refuse(
            given or Given(option, None, "not set"),
            "required: the provider's executor does not start without it, and its stack parameter "
            "has no usable default",
        )
        return None
    return as_text(given, findings)
