"""Fine-tune status: ``FinetuneStatus`` and the pure mapping of ``/sdk/finetune/{id}/ml-logs``.

``FinetuneStatus`` has the SDK's fields and its dataclass-json methods (``to_dict``, ``to_json``,
``from_dict``, ``from_json``).

Fixes over the SDK: a failure raises (instead of returning None and logging), and fractional
epochs work (entries are grouped by their float epoch, not ``int(epoch)``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
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

    def to_dict(self, encode_json: bool = False) -> dict[str, Any]:
        """The fields by name, as the SDK's: the statuses stay enums, already JSON-ready (``str`` enums),
        so ``encode_json`` changes nothing here either."""
        return asdict(self)

    def to_json(
        self,
        *,
        skipkeys: bool = False,
        ensure_ascii: bool = True,
        check_circular: bool = True,
        allow_nan: bool = True,
        indent: int | str | None = None,
        separators: tuple[str, str] | None = None,
        default: Callable[[Any], Any] | None = None,
        sort_keys: bool = False,
        **kw: Any,
    ) -> str:
        """The fields as JSON (the statuses as their values), as the SDK's ``to_json()``."""
        return json.dumps(
            self.to_dict(),
            skipkeys=skipkeys,
            ensure_ascii=ensure_ascii,
            check_circular=check_circular,
            allow_nan=allow_nan,
            indent=indent,
            separators=separators,
            default=default,
            sort_keys=sort_keys,
            **kw,
        )

    @classmethod
    def from_dict(cls, kvs: Mapping[str, Any], *, infer_missing: bool = False) -> FinetuneStatus:
        """The inverse of ``to_dict()``: statuses given as text become enums (unknown text stays text).

        As the SDK's, a missing status raises KeyError, or is None with ``infer_missing``.
        """
        statuses = {}
        for key in ("status", "model_status"):
            if kvs.get(key) is None and not infer_missing:
                raise KeyError(key)
            statuses[key] = None if kvs.get(key) is None else _asset_status(kvs[key], key)
        return cls(
            status=statuses["status"],  # type: ignore[arg-type]  # None only when asked for
            model_status=statuses["model_status"],  # type: ignore[arg-type]
            epoch=kvs.get("epoch"),
            training_loss=kvs.get("training_loss"),
            validation_loss=kvs.get("validation_loss"),
        )

    @classmethod
    def from_json(
        cls,
        s: str | bytes,
        *,
        parse_float: Callable[[str], Any] | None = None,
        parse_int: Callable[[str], Any] | None = None,
        parse_constant: Callable[[str], Any] | None = None,
        infer_missing: bool = False,
        **kw: Any,
    ) -> FinetuneStatus:
        """The inverse of ``to_json()``."""
        kvs = json.loads(s, parse_float=parse_float, parse_int=parse_int, parse_constant=parse_constant, **kw)
        return cls.from_dict(kvs, infer_missing=infer_missing)


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
