"""``-f/--format`` and ``--schema`` parsing, ``%aix chat``'s line, and the output formats' bundles."""

from __future__ import annotations

import pytest

from aix_jupyter import display
from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.parameters import ModelParameters
from aix_jupyter.magics import args as ma
from aix_jupyter.magics.complete import completions
from aix_jupyter.magics.errors import MagicUsageError

SCHEMA = ModelParameters(
    [
        {"name": "data", "dataType": "text", "required": True},
        {"name": "temperature", "dataType": "number", "defaultValues": [{"value": 0.7}]},
    ]
)


def test_format_and_schema_options_of_run_and_stream():
    opts = ma.parse_run_options("-f json --schema Person --temperature 0 Who?", SCHEMA)
    assert (opts.output_format, opts.schema, opts.parameters, opts.input_text) == (
        "json",
        "Person",
        {"temperature": 0.0},
        "Who?",
    )
    assert ma.parse_run_options("--format=code hi", SCHEMA, command="stream").output_format == "code"
    formats = "text, markdown, json, html, code"
    with pytest.raises(MagicUsageError, match=rf"-f takes one of {formats}, got 'yaml'"):
        ma.parse_run_options("-f yaml hi", SCHEMA)
    with pytest.raises(MagicUsageError, match="--schema needs a Python variable name, got '1x'"):
        ma.parse_run_options("--schema 1x hi", SCHEMA)
    with pytest.raises(ParameterError, match="unknown option -f"):  # async returns a handle: no format
        ma.parse_run_options("-f json hi", SCHEMA, command="async")
    with pytest.raises(ParameterError, match="unknown option --system"):  # chat only
        ma.parse_run_options("--system hi there", SCHEMA)


def test_chat_line_is_parsed_like_a_run_with_its_own_options():
    args = ma.parse_command('chat local/smollm2-135m --system "Be terse." --session s1 --temperature 0 Hi')
    assert isinstance(args, ma.RunArgs) and (args.command, args.model_id) == ("chat", "local/smollm2-135m")
    opts = ma.parse_run_options(args.rest, SCHEMA, command="chat", interpolate_value=str.upper)
    assert (opts.system, opts.session, opts.parameters, opts.input_text) == (
        "BE TERSE.",  # {name} is filled in, as in every value
        "s1",
        {"temperature": 0.0},
        "Hi",
    )
    reset = ma.parse_run_options("--reset", SCHEMA, command="chat")
    assert reset.reset and not reset.history and reset.input_text is None
    assert ma.parse_run_options("--history", SCHEMA, command="chat").history
    with pytest.raises(MagicUsageError, match="option --reset takes no value"):
        ma.parse_run_options("--reset=yes", SCHEMA, command="chat")
    with pytest.raises(ParameterError, match="unknown option --stream"):
        ma.parse_run_options("--stream hi", SCHEMA, command="chat")
    # the default model applies when MODEL is left out
    assert ma.parse_command("chat --reset", default_model="local/m").model_id == "local/m"
    with pytest.raises(MagicUsageError, match="chat: give a MODEL id"):
        ma.parse_command("chat --reset")


def test_help_lists_chat_and_formats():
    assert "%aix chat MODEL [--system TEXT]" in ma.usage()
    assert "-f/--format text|markdown|json|html|code" in ma.usage()
    details = ma.help_text("chat")
    assert details.startswith("usage: %aix chat") and "--session NAME" in details and "ChatWidget" in details


def test_completion_of_chat_and_format_values():
    def complete(line: str) -> tuple[str, list[str]]:
        return completions(
            line, model_ids=lambda: ["local/smollm2-135m"], parameter_names=lambda m: {"temperature": []}
        )

    assert "chat" in complete("%aix ch")[1]
    assert complete("%aix chat local/s")[1] == ["local/smollm2-135m"]
    assert complete("%aix chat local/smollm2-135m --s")[1] == ["--schema", "--session", "--system"]
    assert complete("%aix chat local/smollm2-135m --re")[1] == ["--reset"]
    assert complete("%aix run local/smollm2-135m -f ")[1] == list(sorted(display.OUTPUT_FORMATS))
    assert complete("%aix chat local/smollm2-135m --format j")[1] == ["json"]


ANSWER = (
    "Here it is:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
    "and a test:\n```\nassert add(1, 2) == 3\n```\n"
)


def test_extract_code_takes_the_fenced_blocks():
    assert display.extract_code(ANSWER) == "def add(a, b):\n    return a + b\n\nassert add(1, 2) == 3"
    assert display.extract_code("print(1)\n") == "print(1)"  # no fence: the answer is the code
    assert display.extract_code("```python\nx = 1\ny = 2") == "x = 1\ny = 2"  # cut off inside its block


def test_format_bundles():
    text, _ = display.format_bundle("**hi**", "text")
    assert text == {"text/plain": "**hi**"}
    md, _ = display.format_bundle("a\nb", "markdown")
    assert md["text/markdown"] == "a  \nb"
    js, meta = display.format_bundle('```json\n{"a": [1, 2]}\n```', "json")
    assert js["application/json"] == {"a": [1, 2]} and meta["application/json"]["expanded"]
    not_json, _ = display.format_bundle("no json here", "json")
    assert not_json == {"text/plain": "no json here"}  # shown as text; the magic raises for it
    page, _ = display.format_bundle("<b>x</b>", "html")
    assert page == {"text/plain": "<b>x</b>", "text/html": "<b>x</b>"}
    code, _ = display.format_bundle(ANSWER, "code")
    assert code["text/plain"].startswith("def add") and code["text/markdown"].startswith("```python\ndef add")
    with pytest.raises(ValueError, match="unknown output format 'yaml'"):
        display.format_bundle("x", "yaml")
    with pytest.raises(ValueError, match=r"the answer is not JSON \(Expecting value at line 1\): 'nope'"):
        display.parse_json_answer("nope")


def test_response_bundle_applies_the_format_of_its_provenance():
    from aix_jupyter.core.enums import ResponseStatus
    from aix_jupyter.core.response import ModelResponse

    response = ModelResponse(status=ResponseStatus.SUCCESS, data='{"x": 1}', completed=True)
    data, meta = display.response_bundle(response, display.Provenance("local/m", output_format="json"))
    assert data["application/json"] == {"x": 1} and meta["aix_jupyter"]["format"] == "json"
    plain, _ = display.response_bundle(response, display.Provenance("local/m"))
    assert plain["text/markdown"] == '{"x": 1}'
