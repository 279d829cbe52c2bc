"""ModelParameters / Parameter: the SDK 0.2.48's surface, plus validation (the differential test
compares the same calls with the SDK itself; these pin the surface without it)."""

from __future__ import annotations

import pytest

from aix_jupyter import Model, ModelParameters, Parameter, ParameterError
from aix_jupyter.core.errors import UnknownParameterError
from aix_jupyter.core.protocol import validate_parameters


def schema() -> ModelParameters:
    return ModelParameters(
        {
            "text": {"required": True, "dataType": "text"},
            "temperature": {"dataType": "number", "defaultValues": [{"value": 0.7}], "minValue": 0}
            | {"maxValue": 2},
            "mode": {"dataType": "label", "isFixed": True}
            | {"availableOptions": [{"value": "fast", "label": "F"}]},
        }
    )


def test_to_dict_gives_every_parameter_with_its_whole_description():
    d = schema().to_dict()
    assert list(d) == ["text", "temperature", "mode"]
    expected = {
        "name": "temperature",
        "required": False,
        "value": None,
        "isFixed": False,
        "values": [],
        "defaultValues": [{"value": 0.7}],
        "availableOptions": [],
        "dataType": "number",
        "dataSubType": None,
        "multipleValues": False,
    }
    assert d["temperature"] == expected
    assert all(list(entry) == list(expected) for entry in d.values())  # the SDK's keys, in its order
    assert d["mode"]["availableOptions"] == [{"value": "fast", "label": "F"}] and d["mode"]["isFixed"] is True


def test_to_list_gives_the_set_values_only():
    params = schema()
    assert params.to_list() == []
    params.temperature = "1.5"  # checked and coerced
    assert params.to_list() == [{"name": "temperature", "value": 1.5}]
    params.temperature = None
    assert params.to_list() == []


def test_str_lists_each_parameter_as_the_sdk():
    params = schema()
    params.temperature = 0.2
    assert str(params) == (
        "Parameters:\n"
        "  - text: Not set (Required) [text]\n"
        "  - temperature: 0.2 (Optional) [number]\n"
        "  - mode: Not set (Optional) [Fixed] [label] Options: ['fast']"
    )
    assert str(ModelParameters({})) == "No parameters defined"


def test_attribute_access_reads_and_sets_values_item_access_gives_the_parameter():
    params = schema()
    assert params.temperature is None  # a value is what was set; the default stays a default
    assert params["temperature"].default == 0.7 and params["temperature"].current == 0.7
    params.temperature = 1
    assert params.temperature == 1 and params["temperature"].value == 1
    assert params.get_parameter("temperature") is params.parameters["temperature"] is params["temperature"]
    assert params.get_parameter("nope") is None and params.get("nope") is None


def test_unknown_names_name_the_valid_ones_and_are_attribute_errors():
    params = schema()
    assert not hasattr(params, "nope") and getattr(params, "nope", 3) == 3
    with pytest.raises(UnknownParameterError, match="valid parameters: text, temperature, mode"):
        params.nope = 1
    with pytest.raises(AttributeError):
        params.nope  # noqa: B018
    with pytest.raises(ParameterError):
        params["nope"]


def test_setting_is_validated():
    params = schema()
    with pytest.raises(ParameterError, match="'temperature' must be <= 2"):
        params.temperature = 3
    with pytest.raises(ParameterError, match="'mode' must be one of fast"):
        params.mode = "slow"
    assert params.to_list() == []


def test_parameter_field_names_and_repr_are_the_sdk_dataclass():
    p = Parameter(name="x", required=True, is_fixed=True, data_type="text", values=[{"value": "a"}])
    assert (p.is_fixed, p.data_type, p.values, p.default_values, p.available_options) == (
        True,
        "text",
        [{"value": "a"}],
        [],
        [],
    )
    assert repr(p) == (
        "Parameter(name='x', required=True, value=None, is_fixed=True, values=[{'value': 'a'}], "
        "default_values=[], available_options=[], data_type='text', data_sub_type=None, "
        "multiple_values=False)"
    )
    assert p.preset == "a" and p.current == "a" and not p.is_set


def test_the_dict_key_names_the_parameter_and_nulls_are_accepted():
    params = ModelParameters({"real": {"name": "other", "isFixed": None, "values": None, "required": None}})
    assert list(params) == ["real"] and params["real"].name == "real"
    assert params["real"].is_fixed is None and params["real"].values == []


def test_model_reads_the_sdk_to_dict_form_back_with_its_values():
    sdk_form = schema().to_dict()
    sdk_form["temperature"]["value"] = 0.4
    assert Model("m", model_params=sdk_form).model_params.temperature == 0.4
    m = Model("m", model_params=schema().to_wire())
    m.model_params.temperature = 0.5
    back = Model.from_dict(m.to_dict())
    assert back.model_params.temperature == 0.5
    assert back.model_params["temperature"].max_value == 2  # the schema extensions survive
    assert Model("m", model_params={"temperature": 0.3}).model_params.temperature == 0.3


def test_a_value_set_without_checking_is_checked_before_sending():
    params = schema()
    params.parameters["temperature"].value = "5"  # the SDK's way: a plain assignment, no check
    with pytest.raises(ParameterError, match="'temperature' must be <= 2"):
        validate_parameters(params, "hi", None)
    params.parameters["temperature"].value = "1.5"
    assert validate_parameters(params, "hi", None) == {"temperature": 1.5}
