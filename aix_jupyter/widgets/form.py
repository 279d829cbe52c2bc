"""A model's parameters as ipywidgets controls, generated from its ``ModelParameters`` schema.

The schema is the same one the client core validates requests with; every value a control produces
goes through ``Parameter.check`` and an invalid one shows the core's one-line message next to its
control. Which control a parameter gets (``control_kind``):

=====================================  ===========================================================
parameter                              control
=====================================  ===========================================================
fixed (``isFixed``)                    read-only text showing its value (never sent)
options, one value                     Dropdown (plus "(not set)" when optional without default)
options, several values                SelectMultiple
several values, no options             TagsInput
boolean                                Checkbox
number with both bounds                IntSlider / FloatSlider (integer sub-type → Int)
number otherwise                       IntText / FloatText; a text field when there is no default
                                       to pre-fill (empty = not set)
text: the primary input                Textarea that grows with its content
json                                   Textarea holding JSON
audio / image / video / file           path-or-URL field + ``MediaCapture`` below it: Upload and
                                       drag-and-drop, plus Record (audio) and Camera (image); the
                                       file received is saved to a temporary file whose path fills
                                       the field (at most ``max_media_bytes``, 25 MB by default)
anything else                          Text
=====================================  ===========================================================

Required parameters carry a ``*`` after their name; defaults are pre-filled; each control's tooltip
is the parameter's one-line help (``Parameter.help()``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ipywidgets as w

from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.parameters import MEDIA_TYPES, ModelParameters, Parameter
from aix_jupyter.widgets.capture import DEFAULT_MAX_BYTES, MediaCapture

_UNSET = None
DESCRIPTION_STYLE = {"description_width": "130px"}
ROW_LAYOUT = {"width": "100%"}


def control_kind(param: Parameter, *, primary: bool = False) -> str:
    """The name of the control a parameter gets (see the module docstring)."""
    if param.is_fixed:
        return "fixed"
    if param.available_options:
        return "select-multiple" if param.multiple_values else "dropdown"
    if param.multiple_values:
        return "tags"
    if param.data_type == "boolean":
        return "checkbox"
    if param.is_number:
        if param.min_value is not None and param.max_value is not None:
            return "int-slider" if param.is_integer else "float-slider"
        if param.current is None:  # nothing to pre-fill: an empty field means "not set"
            return "number-text"
        return "int-text" if param.is_integer else "float-text"
    if param.data_type == "json":
        return "json"
    if param.data_type in MEDIA_TYPES:
        return "media"
    if param.data_type == "text" and primary:
        return "textarea"
    return "text"


def _label(param: Parameter) -> str:
    return param.name + (" *" if param.required else "")


def _option_label(option: Any) -> str:
    label = option.get("label")
    return str(label) if label not in (None, "") else str(option.get("value"))


class ParamControl:
    """One parameter's control, its inline error and its current value."""

    def __init__(
        self, param: Parameter, *, primary: bool = False, max_media_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.param = param
        self.name = param.name
        self.primary = primary
        self.kind = control_kind(param, primary=primary)
        self.touched = False  # the user changed it (an optional value without default counts then)
        self.error = w.HTML(value="", layout=w.Layout(margin="0 0 0 8px"))
        self.error.add_class("aix-error")
        self._setting = False
        self._listeners: list[Callable[[ParamControl], None]] = []
        self.max_media_bytes = max_media_bytes
        self.capture: MediaCapture | None = None  # media parameters: Upload, drop, Record / Camera
        self.widget = self._build()
        self.input.tooltip = param.help()
        self.row = w.HBox([self.widget, self.error], layout=w.Layout(align_items="center", **ROW_LAYOUT))
        self.row.add_class(f"aix-param-{self.name}")
        self.input.observe(self._changed, names="value")

    # -- construction ----------------------------------------------------------------------------
    def _build(self) -> w.Widget:
        """The parameter's control (``self.input``) and what the row shows (it or a box around it)."""
        common: dict[str, Any] = {"description": _label(self.param), "style": DESCRIPTION_STYLE}
        self.input, shown = BUILDERS[self.kind](self, common)
        return shown

    # -- events ---------------------------------------------------------------------------------
    def observe(self, listener: Callable[[ParamControl], None]) -> None:
        """Call ``listener(control)`` whenever the control's value changes."""
        self._listeners.append(listener)

    def _changed(self, change: Mapping[str, Any]) -> None:
        if not self._setting:
            self.touched = True
        if self.capture is not None and self.capture.receiving:  # the value was set otherwise meanwhile
            self.capture.abort()
        if self.kind == "textarea":
            _grow(self.input)
        for listener in list(self._listeners):
            listener(self)

    def _received(self, path: Path) -> None:
        """A file arrived from the browser (uploaded, dropped, recorded or snapped): its path is the value."""
        self.input.value = str(path)

    def _receiving(self, change: Mapping[str, Any]) -> None:
        """A transfer started or stopped: the form checks again (Run waits while the value is on its way)."""
        for listener in list(self._listeners):
            listener(self)

    # -- values ---------------------------------------------------------------------------------
    def raw(self) -> Any:
        """The control's value before checking; None when the parameter is left unset."""
        kind, value = self.kind, self.input.value
        if kind == "fixed":
            return None
        if self.capture is not None and self.capture.receiving:
            raise ParameterError(
                f"parameter '{self.name}': {self.capture.assembler.progress}; wait for it",
                parameter=self.name,
            )
        if kind in ("text", "textarea", "media", "number-text"):
            return value if value != "" else None  # empty: not set (the server's default applies)
        if kind == "json":
            if not str(value).strip():
                return None
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ParameterError(
                    f"parameter '{self.name}' expects JSON: {exc.msg} at line {exc.lineno}",
                    parameter=self.name,
                ) from None
        if kind == "select-multiple":
            return list(value) if value or self.touched or self.param.is_set else None
        if kind == "tags":
            return list(value) if value or self.touched or self.param.is_set else None
        if kind == "checkbox":
            has_value = self.param.current is not None
            return bool(value) if (has_value or self.touched) else None
        if kind in ("int-text", "float-text") and self.param.current is None and not self.touched:
            return None
        return value

    def value(self) -> Any:
        """The checked value (None when unset); raises the core's ParameterError when invalid."""
        raw = self.raw()
        if raw is None:
            if self.param.required and not self.param.is_fixed:
                raise ParameterError(f"missing required parameter '{self.name}'", parameter=self.name)
            return None
        return self.param.check(raw)

    def validate(self) -> str | None:
        """Check the value and show the result next to the control; the message, or None when valid."""
        message: str | None = None
        try:
            self.value()
        except ParameterError as exc:
            message = str(exc)
        self.error.value = (
            f'<span style="color: var(--jp-error-color1, #d32f2f)">{html.escape(message, quote=False)}</span>'
            if message
            else ""
        )
        if message:
            self.row.add_class("aix-invalid")
        else:
            self.row.remove_class("aix-invalid")
        return message

    def set(self, value: Any) -> None:
        """Set the control from Python (checked first: a bad value raises ParameterError)."""
        if self.kind == "fixed":
            raise ParameterError(f"parameter '{self.name}' is fixed and cannot be set", parameter=self.name)
        if value is None:
            shown: Any = {"checkbox": False, "select-multiple": (), "tags": [], "dropdown": _UNSET}.get(
                self.kind, ""
            )
            if self.kind in ("int-text", "float-text", "int-slider", "float-slider"):
                shown = self.input.value
            self._assign(shown, touched=False)
            return
        checked = self.param.check(value)
        kind = self.kind
        if kind == "json":
            shown = json.dumps(checked, indent=2)
        elif kind in ("text", "textarea", "media", "number-text"):
            shown = str(checked)
        elif kind == "select-multiple":
            shown = tuple(checked)
        elif kind == "tags":
            shown = [str(v) for v in checked]
        else:
            shown = checked
        self._assign(shown, touched=True)

    def _assign(self, shown: Any, *, touched: bool) -> None:
        self._setting = True
        try:
            self.input.value = shown
        finally:
            self._setting = False
        self.touched = touched
        for listener in list(self._listeners):
            listener(self)


# -- one builder per control kind: (control, common keyword arguments) -> (input widget, shown widget) --
Built = tuple[w.ValueWidget, w.Widget]


def _fixed(control: ParamControl, common: dict[str, Any]) -> Built:
    value = control.param.current
    shown = "" if value is None else (value if isinstance(value, str) else json.dumps(value))
    box = w.Text(value=shown, disabled=True, **common)
    return box, box


def _dropdown(control: ParamControl, common: dict[str, Any]) -> Built:
    param = control.param
    options: list[tuple[str, Any]] = [(_option_label(o), o.get("value")) for o in param.available_options]
    if param.current is None:
        options.insert(0, ("(not set)", _UNSET))
    box = w.Dropdown(options=options, value=param.current if param.current is not None else _UNSET, **common)
    return box, box


def _select_multiple(control: ParamControl, common: dict[str, Any]) -> Built:
    options = [(_option_label(o), o.get("value")) for o in control.param.available_options]
    values = [value for _, value in options]
    chosen = tuple(v for v in (control.param.current or []) if v in values)
    box = w.SelectMultiple(options=options, value=chosen, rows=min(6, len(options)), **common)
    return box, box


def _tags(control: ParamControl, common: dict[str, Any]) -> Built:
    box = w.TagsInput(value=[str(v) for v in (control.param.current or [])], allow_duplicates=False)
    return box, w.HBox([w.Label(_label(control.param), layout=w.Layout(width="130px")), box])


def _checkbox(control: ParamControl, common: dict[str, Any]) -> Built:
    box = w.Checkbox(value=bool(control.param.current), indent=True, **common)
    return box, box


def _slider(control: ParamControl, common: dict[str, Any]) -> Built:
    param = control.param
    lo, hi = param.min_value, param.max_value
    assert lo is not None and hi is not None
    value = param.current if param.current is not None else lo
    box: w.ValueWidget
    if control.kind == "int-slider":
        int_step = int(param.step or 1) or 1
        box = w.IntSlider(value=int(value), min=int(lo), max=int(hi), step=int_step, **common)
    else:
        float_step = float(param.step or (hi - lo) / 100 or 0.01)
        box = w.FloatSlider(
            value=float(value), min=float(lo), max=float(hi), step=float_step, readout_format=".3g", **common
        )
    return box, box


def _int_text(control: ParamControl, common: dict[str, Any]) -> Built:
    box = w.IntText(value=int(control.param.current or 0), **common)
    return box, box


def _float_text(control: ParamControl, common: dict[str, Any]) -> Built:
    box = w.FloatText(value=float(control.param.current or 0.0), **common)
    return box, box


def _number_text(control: ParamControl, common: dict[str, Any]) -> Built:
    box = w.Text(value="", placeholder="not set (a number)", **common)
    return box, box


def _json(control: ParamControl, common: dict[str, Any]) -> Built:
    value = control.param.current
    text = "" if value is None else json.dumps(value, indent=2)
    box = w.Textarea(value=text, placeholder="JSON", rows=3, **common)
    box.layout.width = "100%"
    return box, box


def _media(control: ParamControl, common: dict[str, Any]) -> Built:
    param = control.param
    box = w.Text(
        value="" if param.current is None else str(param.current), placeholder="path or URL", **common
    )
    capture = MediaCapture(
        param.data_type or "file",
        max_bytes=control.max_media_bytes,
        label=f"parameter '{control.name}'",
        layout=w.Layout(margin="0 0 4px 134px"),  # under the field, past its description
    )
    capture.on_file(control._received)
    capture.observe(control._receiving, names="receiving")
    control.capture = capture
    return box, w.VBox([box, capture], layout=w.Layout(flex="1 1 auto"))


def _textarea(control: ParamControl, common: dict[str, Any]) -> Built:
    param = control.param
    box = w.Textarea(
        value="" if param.current is None else str(param.current),
        placeholder=param.description or param.name,
        rows=3,
        continuous_update=True,
        layout=w.Layout(width="100%"),
        **common,
    )
    _grow(box)
    return box, box


def _text(control: ParamControl, common: dict[str, Any]) -> Built:
    box = w.Text(value="" if control.param.current is None else str(control.param.current), **common)
    return box, box


BUILDERS: dict[str, Callable[[ParamControl, dict[str, Any]], Built]] = {
    "fixed": _fixed,
    "dropdown": _dropdown,
    "select-multiple": _select_multiple,
    "tags": _tags,
    "checkbox": _checkbox,
    "int-slider": _slider,
    "float-slider": _slider,
    "int-text": _int_text,
    "float-text": _float_text,
    "number-text": _number_text,
    "json": _json,
    "media": _media,
    "textarea": _textarea,
    "text": _text,
}
"""Control kind (``control_kind``) -> the function that builds its widgets."""


def _grow(box: w.Textarea) -> None:
    """Give a text area as many rows as its content needs (3 to 20)."""
    text = str(box.value or "")
    box.rows = max(3, min(20, text.count("\n") + 1 + len(text) // 90))


class ParameterForm:
    """All of a model's parameters as controls; ``values()`` are ready for ``model.run``."""

    def __init__(self, params: ModelParameters, *, max_media_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.params = params
        primary = params.primary_input()
        self.primary = primary.name if primary is not None else None
        self.controls: dict[str, ParamControl] = {
            name: ParamControl(param, primary=name == self.primary, max_media_bytes=max_media_bytes)
            for name, param in params.items()
        }
        self._listeners: list[Callable[[], None]] = []
        for control in self.controls.values():
            control.observe(self._changed)
        # the primary input first, then the others in schema order
        order = sorted(self.controls.values(), key=lambda c: (not c.primary,))
        self.widget = w.VBox([c.row for c in order], layout=w.Layout(width="100%"))
        self.widget.add_class("aix-form")
        self.errors: dict[str, str] = {}
        self.validate()

    def observe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever a value (and so the form's validity) changes."""
        self._listeners.append(listener)

    def _changed(self, control: ParamControl) -> None:
        message = control.validate()
        if message:
            self.errors[control.name] = message
        else:
            self.errors.pop(control.name, None)
        for listener in list(self._listeners):
            listener()

    def validate(self) -> dict[str, str]:
        """Check every control, show the messages, and return them (name -> message)."""
        self.errors = {}
        for name, control in self.controls.items():
            message = control.validate()
            if message:
                self.errors[name] = message
        return dict(self.errors)

    @property
    def valid(self) -> bool:
        """True when every control holds a valid value."""
        return not self.errors

    def values(self) -> dict[str, Any]:
        """The checked values of the parameters that are set; the first invalid one raises."""
        out: dict[str, Any] = {}
        for name, control in self.controls.items():
            value = control.value()
            if value is not None:
                out[name] = value
        return out

    def set(self, **values: Any) -> None:
        """Set parameters from Python (each value checked first; an unknown name raises ParameterError)."""
        for name, value in values.items():
            if name not in self.controls:
                raise ParameterError(
                    f"unknown parameter '{name}'; valid parameters: {', '.join(self.controls) or 'none'}",
                    parameter=name,
                )
            self.controls[name].set(value)

    def request(self) -> tuple[Any, dict[str, Any]]:
        """``(data, parameters)`` for ``model.run``: the primary input is ``data``, the rest parameters."""
        values = self.values()
        data = values.pop(self.primary, "") if self.primary else ""
        return data, values
