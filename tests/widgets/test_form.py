"""Schema -> controls, and inline validation with the core's own messages."""

from __future__ import annotations

import ipywidgets as w
import pytest

from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.parameters import ModelParameters, Parameter
from aix_jupyter.widgets.capture import MediaCapture
from aix_jupyter.widgets.form import BUILDERS, ParameterForm, control_kind
from tests.widgets.capture_messages import deliver

SCHEMA = [
    {"name": "text", "dataType": "text", "required": True, "description": "What to process."},
    {
        "name": "language",
        "dataType": "label",
        "availableOptions": [{"value": "en", "label": "English"}, {"value": "fr", "label": "French"}],
        "defaultValues": [{"value": "en"}],
    },
    {
        "name": "tags",
        "dataType": "label",
        "multipleValues": True,
        "availableOptions": [{"value": "a"}, {"value": "b"}, {"value": "c"}],
    },
    {"name": "names", "dataType": "text", "multipleValues": True},
    {"name": "verbose", "dataType": "boolean", "defaultValues": [False]},
    {"name": "strict", "dataType": "boolean"},
    {
        "name": "temperature",
        "dataType": "number",
        "minValue": 0,
        "maxValue": 2,
        "defaultValues": [0.7],
        "step": 0.1,
    },
    {"name": "top_k", "dataType": "number", "dataSubType": "integer", "minValue": 1, "maxValue": 50},
    {"name": "seed", "dataType": "number", "dataSubType": "integer", "minValue": 0},
    {"name": "beam", "dataType": "number", "dataSubType": "integer", "defaultValues": [4]},
    {"name": "scale", "dataType": "number", "required": True},
    {"name": "options", "dataType": "json"},
    {"name": "audio", "dataType": "audio"},
    {"name": "version", "dataType": "text", "isFixed": True, "values": [{"value": "v2"}]},
    {"name": "suffix", "dataType": "text", "defaultValues": ["!"]},
]


@pytest.fixture
def form() -> ParameterForm:
    return ParameterForm(ModelParameters(SCHEMA))


def test_each_parameter_gets_the_control_its_schema_calls_for(form):
    kinds = {name: control.kind for name, control in form.controls.items()}
    assert kinds == {
        "text": "textarea",
        "language": "dropdown",
        "tags": "select-multiple",
        "names": "tags",
        "verbose": "checkbox",
        "strict": "checkbox",
        "temperature": "float-slider",
        "top_k": "int-slider",
        "seed": "number-text",
        "beam": "int-text",
        "scale": "number-text",
        "options": "json",
        "audio": "media",
        "version": "fixed",
        "suffix": "text",
    }
    c = form.controls
    assert isinstance(c["text"].input, w.Textarea)
    assert isinstance(c["language"].input, w.Dropdown)
    assert c["language"].input.options == (("English", "en"), ("French", "fr"))
    assert isinstance(c["tags"].input, w.SelectMultiple)
    assert isinstance(c["names"].input, w.TagsInput)
    assert isinstance(c["verbose"].input, w.Checkbox)
    assert isinstance(c["temperature"].input, w.FloatSlider)
    assert (c["temperature"].input.min, c["temperature"].input.max, c["temperature"].input.step) == (
        0,
        2,
        0.1,
    )
    assert isinstance(c["top_k"].input, w.IntSlider)
    assert isinstance(c["beam"].input, w.IntText)
    assert isinstance(c["scale"].input, w.Text) and c["scale"].input.value == ""
    assert isinstance(c["audio"].capture, MediaCapture) and c["audio"].capture.accept == "audio/*"
    assert c["version"].input.disabled and c["version"].input.value == "v2"
    # the primary input comes first
    assert form.widget.children[0] is c["text"].row


def test_required_marked_defaults_prefilled_descriptions_as_tooltips(form):
    c = form.controls
    assert c["text"].input.description == "text *"
    assert c["language"].input.description == "language"
    assert (c["language"].input.value, c["temperature"].input.value, c["beam"].input.value) == ("en", 0.7, 4)
    assert c["suffix"].input.value == "!"
    for name, control in c.items():
        assert control.input.tooltip == form.params[name].help()
    assert c["text"].input.tooltip == "text (text; required): What to process."


def test_control_kind_for_an_optional_label_without_default_offers_not_set():
    param = Parameter(name="mode", dataType="label", availableOptions=[{"value": "x"}])
    form = ParameterForm(ModelParameters([param]))
    assert control_kind(param) == "dropdown"
    assert form.controls["mode"].input.options[0] == ("(not set)", None)
    assert form.values() == {}


def test_missing_and_invalid_values_are_shown_inline_with_the_cores_message(form):
    errors = form.validate()
    assert errors == {
        "text": "missing required parameter 'text'",
        "scale": "missing required parameter 'scale'",
    }
    assert "missing required parameter 'scale'" in form.controls["scale"].error.value
    assert not form.valid
    seed = form.controls["seed"]
    seed.input.value = "1.5"
    expected = str(_core_error(form.params["seed"], "1.5"))
    assert form.errors["seed"] == expected == "parameter 'seed' expects an integer, got '1.5'"
    assert expected in seed.error.value and "aix-invalid" in seed.row._dom_classes
    seed.input.value = "-3"
    assert form.errors["seed"] == "parameter 'seed' must be >= 0, got -3"
    seed.input.value = "42"
    assert "seed" not in form.errors and seed.error.value == ""
    form.controls["options"].input.value = "{not json"
    assert form.errors["options"].startswith("parameter 'options' expects JSON: ")
    form.controls["options"].input.value = '{"k": [1, 2]}'
    form.controls["text"].input.value = "hello"
    form.controls["scale"].input.value = "2.5e-1"
    assert form.valid, form.errors
    data, parameters = form.request()
    assert data == "hello"
    assert parameters == {
        "language": "en",
        "verbose": False,
        "temperature": 0.7,
        "top_k": 1,
        "seed": 42,
        "beam": 4,
        "options": {"k": [1, 2]},
        "suffix": "!",
        "scale": 0.25,
    }


def _core_error(param: Parameter, value: object) -> ParameterError:
    try:
        param.check(value)
    except ParameterError as exc:
        return exc
    raise AssertionError("the core accepted it")


def test_untouched_optional_values_are_not_sent_touched_ones_are(form):
    form.controls["text"].input.value = "x"
    form.controls["scale"].input.value = "1.5"
    sent = form.values()
    assert "strict" not in sent and "seed" not in sent and "tags" not in sent and "names" not in sent
    assert "version" not in sent  # fixed: shown, never sent
    form.controls["strict"].input.value = True
    form.controls["tags"].input.value = ("a", "c")
    form.controls["names"].input.value = ["ann", "bob"]
    sent = form.values()
    assert (sent["strict"], sent["tags"], sent["names"], sent["scale"]) == (
        True,
        ["a", "c"],
        ["ann", "bob"],
        1.5,
    )


def test_set_from_python_is_checked(form):
    form.set(text="hi", seed="7", language="fr", tags=["b"], scale=1)
    assert form.controls["seed"].input.value == "7"
    assert form.values()["seed"] == 7
    assert form.controls["language"].input.value == "fr"
    with pytest.raises(ParameterError, match="parameter 'language' must be one of en, fr; got 'de'"):
        form.set(language="de")
    with pytest.raises(ParameterError, match="unknown parameter 'colour'; valid parameters: text, language"):
        form.set(colour="red")
    with pytest.raises(ParameterError, match="parameter 'version' is fixed"):
        form.set(version="v3")
    form.set(seed=None)
    assert "seed" not in form.values()


def test_textarea_grows_with_its_content(form):
    area = form.controls["text"].input
    assert area.rows == 3
    area.value = "\n".join(f"line {i}" for i in range(12))
    assert area.rows == 12
    area.value = "\n" * 100
    assert area.rows == 20


def test_upload_fills_the_path_field(form):
    media = form.controls["audio"]
    deliver(media.capture, b"RIFF", name="clip.wav", mime="audio/wav")
    path = media.input.value
    assert path.endswith("clip.wav")
    with open(path, "rb") as handle:
        assert handle.read() == b"RIFF"
    form.set(text="t", scale=1)
    assert form.values()["audio"] == path


def test_every_control_kind_has_a_builder_and_builds_its_widget():
    schema = ModelParameters([*SCHEMA, {"name": "gain", "dataType": "number", "defaultValues": [1.5]}])
    controls = ParameterForm(schema).controls
    kinds = {control.kind for control in controls.values()}
    assert kinds == set(BUILDERS)  # the schema above calls for each kind once or more
    assert isinstance(controls["gain"].input, w.FloatText) and controls["gain"].input.value == 1.5
    assert controls["gain"].value() == 1.5
