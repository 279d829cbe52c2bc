"""The magic's grammar: subcommands, run options checked by a real parameter schema, input, completion."""

from __future__ import annotations

import pytest

from aix_jupyter.core.errors import AixError, ParameterError
from aix_jupyter.core.parameters import ModelParameters
from aix_jupyter.magics import args as ma
from aix_jupyter.magics import complete as mc
from aix_jupyter.magics import inputs as mi

SCHEMA = ModelParameters(
    [
        {"name": "data", "required": True, "dataType": "text"},
        {"name": "temperature", "dataType": "number", "minValue": 0, "maxValue": 2, "defaultValues": [0.7]},
        {"name": "max_tokens", "dataType": "number", "dataSubType": "integer"},
        {"name": "style", "dataType": "label", "availableOptions": [{"value": "short"}, {"value": "long"}]},
        {"name": "verbose", "dataType": "boolean"},
        {"name": "tags", "dataType": "text", "multipleValues": True},
        {"name": "timeout", "dataType": "number"},
    ]
)


def run_opts(rest: str, command: str = "run", **kw):
    return ma.parse_run_options(rest, SCHEMA, command=command, model_id="local/x", **kw)


# -- subcommands ---------------------------------------------------------------------------------
def test_run_command_takes_model_and_keeps_the_rest_raw():
    args = ma.parse_command("run local/x --temperature 0.2 I  love 'it'")
    assert isinstance(args, ma.RunArgs)
    assert (args.command, args.model_id) == ("run", "local/x")
    assert args.rest == " --temperature 0.2 I  love 'it'"


def test_model_id_first_means_run():
    args = ma.parse_command("local/sentiment-vader hello")
    assert isinstance(args, ma.RunArgs) and args.model_id == "local/sentiment-vader" and args.command == "run"
    args = ma.parse_command("640b517694bf816d35a59125 hi")
    assert isinstance(args, ma.RunArgs) and args.model_id == "640b517694bf816d35a59125"


def test_default_model_fills_in_when_the_first_word_is_not_a_model():
    args = ma.parse_command("run hello there", default_model="local/d")
    assert isinstance(args, ma.RunArgs) and args.model_id == "local/d" and args.rest.strip() == "hello there"
    args = ma.parse_command("stream local/y hi", default_model="local/d")
    assert args.model_id == "local/y" and args.command == "stream"
    args = ma.parse_command("", default_model="local/d")
    assert isinstance(args, ma.RunArgs) and args.model_id == "local/d"
    args = ma.parse_command("--temperature 1 hi", default_model="local/d")
    assert isinstance(args, ma.RunArgs) and args.rest.strip() == "--temperature 1 hi"


def test_known_model_without_slash_is_recognised():
    args = ma.parse_command("run mymodel hi", default_model="local/d", known_models=["mymodel"])
    assert args.model_id == "mymodel"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "no subcommand"),
        ("frobnicate", "unknown subcommand 'frobnicate'"),
        ("run", "give a MODEL id"),
        ("info a b", "takes one MODEL"),
        ("config now", "takes no arguments"),
        ("poll", "give the poll URL"),
        ("poll u --bogus", "unknown option --bogus"),
        ("poll u --timeout", "needs a value"),
        ("poll u --timeout -3", "must be > 0"),
        ("poll u -o 1x", "Python variable name"),
        ("models --bogus", "unknown option --bogus"),
        ("run local/x 'unclosed --temperature", None),
    ],
)
def test_bad_lines_raise_one_line_errors(line, message):
    if message is None:  # an unclosed quote inside the *input* is just text
        args = ma.parse_command(line)
        assert ma.parse_run_options(args.rest, SCHEMA).input_text == "'unclosed --temperature"
        return
    with pytest.raises(AixError) as err:
        ma.parse_command(line)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_poll_cancel_models_info_help():
    poll = ma.parse_command("poll h --wait -o res --timeout=5")
    assert poll == ma.PollArgs(target="h", wait=True, out="res", timeout=5.0)
    assert ma.parse_command("cancel http://x/y") == ma.TargetArgs("http://x/y")
    assert ma.parse_command("models text gen --function text-generation") == ma.ModelsArgs(
        "text gen", "text-generation"
    )
    assert ma.parse_command("info local/x") == ma.ModelArgs("info", "local/x")
    assert ma.parse_command("widget", default_model="local/d") == ma.ModelArgs("widget", "local/d")
    assert ma.parse_command("help poll") == ma.SimpleArgs("help", "poll")


# -- run options, checked by the schema -----------------------------------------------------------
def test_options_are_coerced_by_the_schema():
    opts = run_opts("--temperature 0.2 --max_tokens=50 --style long --verbose hello world")
    assert opts.parameters == {"temperature": 0.2, "max_tokens": 50, "style": "long", "verbose": True}
    assert opts.input_text == "hello world"


def test_boolean_option_takes_a_value_only_when_it_is_a_boolean_word():
    assert run_opts("--verbose false hi").parameters == {"verbose": False}
    assert run_opts("--verbose hi").parameters == {"verbose": True}
    assert run_opts("--verbose").input_text is None


def test_repeated_option_collects_values_for_multi_value_parameters():
    assert run_opts("--tags a --tags b x").parameters["tags"] == ["a", "b"]
    with pytest.raises(ParameterError, match="given twice"):
        run_opts("--temperature 1 --temperature 2 x")


def test_magic_options_and_param_escape_hatch():
    opts = run_opts("-o res --timeout 5 -p timeout=7 --no-progress -- --not an option")
    assert opts.out == "res" and opts.timeout == 5.0 and opts.progress is False
    assert opts.parameters == {"timeout": 7}
    assert opts.input_text == "--not an option"


def test_one_quoted_input_is_unquoted_and_other_text_is_kept_raw():
    assert run_opts('"hello   world"').input_text == "hello   world"
    assert run_opts("it's   a 'test'").input_text == "it's   a 'test'"
    assert run_opts("-5 degrees").input_text == "-5 degrees"


def test_unknown_option_names_it_and_lists_the_valid_ones():
    with pytest.raises(ParameterError) as err:
        run_opts("--temprature 0.2 hi")
    text = str(err.value)
    assert "--temprature" in text and "local/x" in text
    for valid in ("--temperature", "--max_tokens", "--style", "-o/--out"):
        assert valid in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("rest", "fragment"),
    [
        ("--temperature hot x", "temperature"),
        ("--temperature 5 x", "<= 2"),
        ("--max_tokens 2.5 x", "integer"),
        ("--style medium x", "one of short, long"),
        ("--temperature", "needs a value"),
    ],
)
def test_wrong_values_name_the_parameter(rest, fragment):
    with pytest.raises(ParameterError) as err:
        run_opts(rest)
    assert fragment in str(err.value)


def test_stream_flag_and_command_specific_flags():
    assert run_opts("--stream hi").stream is True
    assert run_opts("hi", command="stream").stream is True
    with pytest.raises(ParameterError, match="unknown option --timeout"):
        ma.parse_run_options("--timeout 3 hi", ModelParameters([]), command="async")


def test_option_values_are_interpolated():
    opts = run_opts("--temperature {t} hi", interpolate_value=lambda s: mi.interpolate(s, {"t": 0.3}))
    assert opts.parameters["temperature"] == 0.3


# -- input -------------------------------------------------------------------------------------------
def test_interpolation_and_escapes():
    ns = {"name": "Ada", "n": 3, "d": {"k": "v"}}
    assert mi.interpolate("hi {name}, {n:02d} {d[k]} {{literal}}", ns) == "hi Ada, 03 v {literal}"
    with pytest.raises(ma.MagicUsageError, match="no variable 'nope'"):
        mi.interpolate("x {nope}", ns)
    with pytest.raises(ma.MagicUsageError, match="literal braces"):
        mi.interpolate("x } y", ns)


def test_resolve_input_variable_json_file_and_text(tmp_path):
    ns = {"payload": {"data": "hi", "threshold": 0.1}, "who": "you", "s": "not a dict"}
    assert mi.resolve_input("payload", ns) == mi.RunInput({"data": "hi", "threshold": 0.1}, "dict", "payload")
    assert mi.resolve_input('{"data": "x"}', ns).data == {"data": "x"}
    assert mi.resolve_input("s", ns) == mi.RunInput("s", "text")
    assert mi.resolve_input("thank {who}", ns).data == "thank you"
    f = tmp_path / "review.txt"
    f.write_text("great", encoding="utf-8")
    got = mi.resolve_input(f" {f} ", ns)
    assert got.kind == "file" and got.data == str(f)
    assert mi.resolve_input("   ", ns).kind == "none"


def test_resolve_target():
    class Handle:
        url = "http://127.0.0.1:1/api/v1/data/abc"

    ns = {"h": Handle(), "u": "http://127.0.0.1:1/x", "n": 3}
    assert mi.resolve_target("h", ns)[0] == Handle.url
    assert mi.resolve_target("u", ns) == ("http://127.0.0.1:1/x", None)
    assert mi.resolve_target("https://h/x", ns) == ("https://h/x", None)
    with pytest.raises(ma.MagicUsageError, match="holds no poll URL"):
        mi.resolve_target("n", ns)
    with pytest.raises(ma.MagicUsageError, match="no variable 'zz'"):
        mi.resolve_target("zz", ns)
    with pytest.raises(ma.MagicUsageError, match="neither"):
        mi.resolve_target("ftp://x", ns)


# -- completion (pure) ----------------------------------------------------------------------------------
MODELS = ["local/sentiment-vader", "local/smollm2-135m", "local/countdown"]


def complete(text: str, default: str = ""):
    return mc.completions(
        text,
        model_ids=lambda: MODELS,
        parameter_names=lambda m: (
            list(SCHEMA) if m == "local/x" else {"seconds": [], "fail": ["true", "false"]}
        ),
        default_model=default,
    )


def test_completion_of_subcommands_models_and_options():
    assert complete("%aix ")[1] == list(ma.SUBCOMMANDS)
    assert complete("%aix st") == ("st", ["stream"])
    assert complete("%aix run local/s") == ("local/s", ["local/sentiment-vader", "local/smollm2-135m"])
    assert complete("%%aix stream local/sm")[1] == ["local/smollm2-135m"]
    assert complete("%aix info local/c")[1] == ["local/countdown"]
    frag, got = complete("%aix run local/x --te")
    assert frag == "--te" and got == ["--temperature"]
    assert "--max_tokens" in complete("%aix run local/x --")[1]
    assert "-o" in complete("%aix run local/x ")[1]
    assert complete("%aix local/countdown --s")[1] == ["--schema", "--seconds", "--stream"]
    assert complete("%aix run --se", default="local/countdown")[1] == ["--seconds"]
    assert complete("%aix poll h --w")[1] == ["--wait"]
    assert complete("%aix models --f")[1] == ["--function"]
    assert complete("%aix run local/x -o ")[1] == []
    assert complete("print(1)") == ("", [])
    assert complete("%aix run local/countdown --fail ")[1] == ["false", "true"]
    assert complete("%aix run local/countdown --fail t") == ("t", ["true"])
    assert "--fail" in complete("%aix run local/countdown --seconds ")[1]  # no choices: options again


# -- compare: every word before the first option or -- is a model id ------------------------------
@pytest.mark.parametrize(
    ("line", "models", "rest"),
    [
        ("compare shout my-model -- hi there", ["shout", "my-model"], " -- hi there"),
        ("compare shout my-model", ["shout", "my-model"], ""),  # %%aix compare: the cell is the input
        ("compare a b c --temperature 1 -- hi", ["a", "b", "c"], " --temperature 1 -- hi"),
        (
            "compare local/x 640b517694bf816d35a59125 x_1 --",
            ["local/x", "640b517694bf816d35a59125", "x_1"],
            " --",
        ),
        ("compare {m} shout -o out -- hi", ["{m}", "shout"], " -o out -- hi"),
    ],
)
def test_compare_takes_every_word_before_an_option_as_a_model_id(line, models, rest):
    args = ma.parse_command(line, default_model="local/d")
    assert args == ma.BatchArgs("compare", models, rest)


@pytest.mark.parametrize("line", ["compare shout -- hi", "compare -- hi", "compare --timeout 3 a b -- hi"])
def test_compare_with_fewer_than_two_models_says_so(line):
    with pytest.raises(ma.MagicUsageError) as err:
        ma.parse_command(line)
    assert "two or more MODEL ids" in str(err.value) and "\n" not in str(err.value)


def test_completion_of_compare_offers_plain_ids_and_then_every_models_options():
    def custom(text: str):
        return mc.completions(
            text,
            model_ids=lambda: ["shout", "my-model", "local/countdown"],
            parameter_names=lambda m: {"loud": ["true", "false"]} if m == "shout" else {"seconds": []},
        )

    assert custom("%aix compare sh") == ("sh", ["shout"])
    assert custom("%%aix compare shout my")[1] == ["my-model"]
    assert custom("%aix compare shout ")[1] == ["local/countdown", "my-model"]
    assert {"--loud", "--seconds", "--concurrency", "--"} <= set(custom("%aix compare shout my-model --")[1])
    assert custom("%aix compare shout my-model --loud ")[1] == ["false", "true"]
    assert custom("%aix compare shout my-model -- te")[1] == []


def test_the_help_says_how_compare_finds_its_models():
    assert "every word before the first option or -- is a model id" in ma.usage("compare")
    assert "compare: every word before the first option or -- is a model id" in ma.help_text()
