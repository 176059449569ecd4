"""Where each start attempt of a try was placed: the record the item keeps (pure).

A try's attempts may run on different capacity (a queue profile's fallback strategy after a
Spot shortage), so the item keeps one entry per attempt; alerts and ``ecscp explain`` show them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: How long a stored failure text may be (the item keeps the whole reason elsewhere).
PLACEMENT_FAILURE_LIMIT = 500


class AttemptPlacement(BaseModel):
    """One start attempt: where it was placed, whether on the fallback, and why RunTask refused it."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    attempt: Annotated[int, Field(ge=1)]
    #: ``FARGATE_SPOT``, ``FARGATE_SPOT*3,FARGATE*1``, ``launch type FARGATE`` or ``cluster default``.
    placement: str
    fallback: bool = False
    #: RunTask started nothing: its reason (a task ECS stopped has its stop code on the item).
    failure: str | None = None

    def describe(self) -> str:
        text = f"attempt {self.attempt} on {self.placement}"
        if self.fallback:
            text += " (fallback)"
        if self.failure:
            text += f": {self.failure}"
        return text

    def to_item(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)
