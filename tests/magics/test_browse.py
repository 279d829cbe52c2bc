"""``%aix browse`` / ``%aix models`` with their filters (function, languages, sort): parsing, completion,
the ModelBrowser and the table from the magic (embedded backend, real), and in a real kernel."""

from __future__ import annotations

import pytest

from aix_jupyter import SortBy, SortOrder
from aix_jupyter.magics import args as ma
from aix_jupyter.magics import complete as mc
from aix_jupyter.magics.errors import MagicUsageError
from aix_jupyter.widgets import ModelBrowser


def test_parse_browse():
    assert ma.parse_command("browse") == ma.BrowseArgs()
    assert ma.parse_command("browse sentiment analysis") == ma.BrowseArgs("sentiment analysis")
    assert ma.parse_command("browse --function=utilities x") == ma.BrowseArgs("x", "utilities")
    with pytest.raises(MagicUsageError, match="browse: unknown option --page; valid options: --function, "):
        ma.parse_command("browse --page 2")
    with pytest.raises(MagicUsageError, match="browse: option --function needs a value"):
        ma.parse_command("browse --function")


def test_browse_returns_a_browser_searched_and_filtered(cell, ip):
    out = cell("b = %aix browse vader")
    assert out.error is None
    browser = ip.user_ns["b"].wait(30)
    assert isinstance(browser, ModelBrowser) and browser.query == "vader"
    assert [m.id for m in browser.models] == ["local/sentiment-vader"]
    out = cell("b = %aix browse --function utilities")
    assert {m.id for m in ip.user_ns["b"].wait(30).models} == {"local/countdown", "local/typewriter"}


def test_browse_in_a_terminal_shows_the_first_page_as_a_table(cell):
    out = cell("%aix browse yake")
    assert out.error is None
    (shown,) = [d for d in out.displays if "text/plain" in d]
    assert (
        "local/keywords-yake" in shown["text/plain"]
        and "application/vnd.jupyter.widget-view+json" not in shown
    )


def test_help_lists_browse(cell):
    assert "%aix browse [QUERY]" in cell("%aix help").stdout
    assert cell("%aix help browse").stdout.startswith("usage: %aix browse")


def test_parse_the_language_and_sort_options():
    parsed = ma.parse_command("models key --source-language en-US --sort=-created")
    assert parsed == ma.ModelsArgs("key", None, source_language="en-US", sort="-created")
    assert parsed.list_arguments() == {
        "source_languages": "en-US",
        "target_languages": None,
        "sort_by": SortBy.CREATION_DATE,
        "sort_order": SortOrder.DESCENDING,
    }
    parsed = ma.parse_command("browse --function translation --target-language fr --sort price")
    assert parsed == ma.BrowseArgs("", "translation", target_language="fr", sort="price")
    assert parsed.list_arguments()["sort_order"] is SortOrder.ASCENDING


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("models --sort rating", "models: --sort: a sort is one of name|-name|created|-created|price"),
        ("browse --source-language xx", "browse: --source-language: unknown language 'xx'"),
        (
            "models --target-language fr",
            "--target-language filters translation models; add --function translation",
        ),
        ("models --function ocr --target-language fr", "add --function translation"),
        ("models --sort", "models: option --sort needs a value"),
    ],
)
def test_bad_options_are_usage_errors(line, message):
    with pytest.raises(MagicUsageError, match=message):
        ma.parse_command(line)


def complete(text: str) -> list[str]:
    return mc.completions(text, model_ids=lambda: ["local/countdown"], parameter_names=lambda m: {})[1]


def test_completion_of_the_options_and_their_values():
    assert complete("%aix models --s") == ["--sort", "--source-language"]
    assert complete("%aix browse --t") == ["--target-language"]
    assert complete("%aix models --sort -") == ["-created", "-name", "-popular", "-price"]
    assert complete("%aix browse --sort p") == ["popular", "price"]
    english = ["US", "GB", "IN", "AU", "NG", "NZ", "KE", "PH", "HK", "ZA", "GH", "SG", "IE", "CA", "TZ", "PK"]
    assert complete("%aix models --source-language en-") == sorted(f"en-{r}" for r in english)
    assert complete("%aix browse --function transl") == ["translation"]
    assert complete("%aix browse ") == []  # a query: nothing to offer (not model ids)


def test_models_filters_and_sorts(cell, ip):
    out = cell("%aix models --source-language en --sort -name")
    assert out.error is None
    models = out.result.models
    assert [m.name.lower() for m in models] == sorted((m.name.lower() for m in models), reverse=True)
    ids = [m.id for m in models]  # the English-speaking ones, VADER and YAKE among them; not the LLM
    assert {"local/keywords-yake", "local/sentiment-vader"} <= set(ids) and "local/smollm2-135m" not in ids
    french = cell("%aix models --source-language fr-FR")
    assert [m.id for m in french.result.models] == ["local/keywords-yake"]  # yake offers "fr"


def test_browse_with_filters(cell, ip):
    out = cell("b = %aix browse --source-language en --sort name")
    assert out.error is None
    browser = ip.user_ns["b"].wait(30)
    assert (browser.source_language, browser.sort) == ("en", "name")
    ids = [m.id for m in browser.models]
    assert [m.name.lower() for m in browser.models] == sorted(m.name.lower() for m in browser.models)
    assert ids.index("local/sentiment-vader") < ids.index("local/keywords-yake")


def test_help_shows_the_options(cell):
    text = cell("%aix help models").stdout
    assert "--source-language L" in text and "--sort name|-name|created|-created|price" in text


def test_in_a_real_kernel_models_filter_and_a_headless_browse_shows_its_first_page():
    from tests.magics.test_kernel import kernel_with_aix, of, run

    kernel = kernel_with_aix()
    _km, kc = next(kernel)
    try:
        _reply, msgs = run(
            kc,
            "t = %aix models --source-language en --sort -name\n[m.id for m in t.models]",
            allow_stdin=False,
        )
        (result,) = of(msgs, "execute_result")
        shown_ids = result["content"]["data"]["text/plain"]
        assert shown_ids.index("'local/keywords-yake'") < shown_ids.index("'local/sentiment-vader'")
        assert "smollm2" not in shown_ids
        _reply, msgs = run(kc, "%aix browse --source-language en --sort name", allow_stdin=False)
        (shown,) = [m for m in of(msgs, "display_data", "execute_result")]
        text = shown["content"]["data"]["text/plain"]  # headless: the first page, waited for
        assert (
            text.index("local/sentiment-vader") < text.index("local/keywords-yake")
            and "searching" not in text
        )
    finally:
        kernel.close()
