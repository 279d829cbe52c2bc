"""Fine-tune status: ``FinetuneStatus`` and the pure mapping of ``/sdk/finetune/{id}/ml-logs``.

``FinetuneStatus`` has the SDK's fields and its dataclass-json methods (``to_dict``, ``to_json``,
``from_dict``, ``from_json``).

Fixes over the SDK: a failure raises (instead of returning None and logging), and fractional
epochs work (entries are grouped by their float epoch, not ``int(epoch)``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aix_jupyter.core.enums import AssetStatus
from aix_jupyter.core.errors import RequestError


@dataclass
class FinetuneStatus:
    """Status of a fine-tune job (as the SDK's ``FinetuneStatus``)."""

    status: AssetStatus | str
    model_status: AssetStatus | str
    epoch: float | None = None
    training_loss: float | None = None
    validation_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields by name (the statuses stay enums), as the SDK's ``to_dict()``."""
        return asdict(self)

    def to_json(self, **dumps: Any) -> str:
        """The fields as JSON (the statuses as their values), as the SDK's ``to_json()``."""
        return json.dumps({k: getattr(v, "value", v) for k, v in self.to_dict().items()}, **dumps)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinetuneStatus:
        """The inverse of ``to_dict()`` / ``json.loads(to_json())``: statuses given as text become enums."""
        return cls(
            status=_asset_status(data.get("status"), "status"),
            model_status=_asset_status(data.get("model_status"), "model_status"),
            epoch=data.get("epoch"),
            training_loss=data.get("training_loss"),
            validation_loss=data.get("validation_loss"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> FinetuneStatus:
        return cls.from_dict(json.loads(text))


def _asset_status(value: Any, what: str) -> AssetStatus | str:
    if value is None:
        raise RequestError(f"fine-tune status reply has no '{what}'")
    if isinstance(value, AssetStatus):
        return value
    try:
        return AssetStatus(str(value).lower())
    except ValueError:
        return str(value)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def finetune_status_from_logs(body: Mapping[str, Any], after_epoch: float | None = None) -> FinetuneStatus:
    """Map an ml-logs reply; report the first epoch after ``after_epoch``, else (None) the last.

    Entries of the same epoch are merged, later non-null values winning.
    """
    if not isinstance(body, Mapping):
        raise RequestError("fine-tune status reply is not a JSON object")
    status = _asset_status(body.get("finetuneStatus"), "finetuneStatus")
    model_status = _asset_status(body.get("modelStatus"), "modelStatus")
    merged: dict[float, dict[str, Any]] = {}
    for entry in body.get("logs") or []:
        if not isinstance(entry, Mapping):
            continue
        epoch = _float(entry.get("epoch"))
        if epoch is None:
            continue
        slot = merged.setdefault(epoch, {"epoch": epoch, "trainLoss": None, "evalLoss": None})
        for key in ("trainLoss", "evalLoss"):
            if entry.get(key) is not None:
                slot[key] = entry[key]
    epochs = sorted(merged)
    if after_epoch is not None:
        epochs = [e for e in epochs if e > float(after_epoch)]
        target = epochs[0] if epochs else None
    else:
        target = epochs[-1] if epochs else None
    if target is None:
        return FinetuneStatus(status=status, model_status=model_status)
    log = merged[target]
    return FinetuneStatus(
        status=status,
        model_status=model_status,
        epoch=target,
        training_loss=_float(log["trainLoss"]),
        validation_loss=_float(log["evalLoss"]),
    )
