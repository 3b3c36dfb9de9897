"""Typed override tables: a settings model of which only the fields the user set count (and are written back),
so that whoever fills in the rest (a run plan, a world kind's defaults, an agent's own seed) keeps its values."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer


def set_fields(model: BaseModel) -> dict[str, Any]:
    """The fields of model the user set, as plain values."""
    return model.model_dump(mode="json", exclude_unset=True)


def Overrides(model: type[BaseModel]) -> Any:  # noqa: N802 - used as a type: `ppo: Overrides(PPOConfig)`
    """The type of an override table of `model`: validated field by field, dumped as the fields set."""
    return Annotated[model, PlainSerializer(set_fields, return_type=dict)]
