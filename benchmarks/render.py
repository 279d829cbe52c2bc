"""Render results/*.json into the figures table of benchmarks/README.md (between the markers).

python3.11 benchmarks/render.py
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import BENCH, RESULTS

START, END = "<!-- figures:start -->", "<!-- figures:end -->"
Row = tuple[str, str, str, str]


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**NOT met**")


def _startup(r: dict[str, Any]) -> list[Row]:
    s, q = r["summary"], r["ratios"]
    ours = s["%load_ext aix_jupyter"]
    sdk = s["import aixplain.modules.model"]
    ratio = q["load_ext aix_jupyter / import aixplain.modules.model"]
    fig = (
        f"{ratio:.3f}x ({ours['median_ms']:.1f} ms vs {sdk['median_ms']:.0f} ms; "
        f"RSS +{ours['rss_added_mb']:.0f} MB vs +{sdk['rss_added_mb']:.0f} MB)"
    )
    rows = [
        (
            "1. `%load_ext aix_jupyter` / `import aixplain.modules.model`",
            fig,
            "<= 0.15x",
            _verdict(ratio <= 0.15),
        )
    ]
    if "%load_ext jupyter_ai_magics" in s:
        jai = s["%load_ext jupyter_ai_magics"]
        jr = q["load_ext aix_jupyter / load_ext jupyter_ai_magics"]
        rows.append(
            (
                "1. `%load_ext aix_jupyter` / `%load_ext jupyter_ai_magics`",
                f"{jr:.3f}x ({jai['median_ms']:.0f} ms, RSS +{jai['rss_added_mb']:.0f} MB)",
                "(no target)",
                "n/a",
            )
        )
    rows.append(
        (
            "1. `%load_ext aix_jupyter` over bare IPython",
            f"{ours['median_ms']:.1f} ms (whole process "
            f"{q['process time with aix_jupyter / bare IPython']:.2f}x bare IPython's)",
            "well under 150 ms",
            _verdict(ours["median_ms"] < 150),
        )
    )
    return rows


def _run_overhead(r: dict[str, Any]) -> list[Row]:
    us, q = r["median_us_per_run"], r["ratios"]
    fig = (
        f"{q['ours / raw httpx']:.3f}x ({us['ours']:.0f} us vs {us['httpx']:.0f} us per run; "
        f"aixplain {q['aixplain / raw httpx']:.2f}x = {us['aixplain']:.0f} us, ours / aixplain "
        f"{q['ours / aixplain']:.2f}x; per-round paired "
        f"{q.get('ours / raw httpx, median of per-round ratios', float('nan')):.2f}x)"
    )
    return [
        (
            "2. per-run overhead: `Model.run` / raw httpx POST",
            fig,
            "<= 1.15x raw httpx, <= 0.7x aixplain",
            _verdict(q["ours / raw httpx"] <= 1.15 and q["ours / aixplain"] <= 0.7),
        )
    ]


def _poll_lag(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    plain, fake = r.get("plain", {}), r.get("schedules", {})
    p, f = plain.get("3-31 s"), fake.get("3-31 s")
    if p and f:
        o, a = p["ours"], p["aixplain"]
        fr, q = f["ratios"], p["ratios"]
        per_job = (
            f"{o['lag_mean_s']:.2f} ± {o['lag_sem_s']:.2f} vs {a['lag_mean_s']:.2f} ± {a['lag_sem_s']:.2f} s"
        )
        fig = (
            f"lag {q['phase-averaged lag ours / aixplain']:.2f}x phase-averaged"
            f" ({o['phase_lag_mean_s']:.2f} vs {a['phase_lag_mean_s']:.2f} s; per job {per_job}),"
            f" polls {q['polls ours / aixplain']:.2f}x ({o['polls_mean']:g} vs {a['polls_mean']:g};"
            f" n={o['n']}); fake clock: lag {fr['lag mean ours / aixplain']:.3f}x,"
            f" polls {fr['polls ours / aixplain']:.3f}x"
        )
        ok = (
            fr["lag mean ours / aixplain"] <= 1.02
            and fr["polls ours / aixplain"] <= 1.02
            and q["phase-averaged lag ours / aixplain"] <= 1.05
            and q["polls ours / aixplain"] <= 1.05
        )
        target = "lag and polls <= the SDK's (fake clock <= 1.02x, measured <= 1.05x)"
        rows.append(("3. poll lag, plain server, jobs of 3-31 s, 5 at once", fig, target, _verdict(ok)))
    p, f = plain.get("100-160 s"), fake.get("100-160 s")
    if p and f:
        o, a, fo = p["ours"], p["aixplain"], f["ours"]
        q, fr = p["ratios"], f["ratios"]
        measured = (
            f"max lag {o['lag_max_s']:.2f} s, longest poll interval {o['longest_interval_s']:.2f} s"
            f" (aixplain {a['lag_max_s']:.2f} s, {a['longest_interval_s']:.2f} s); lag mean"
            f" {q['phase-averaged lag ours / aixplain']:.2f}x phase-averaged, polls"
            f" {q['polls ours / aixplain']:.2f}x (n={o['n']})"
        )
        clock = (
            f"fake clock: max {fo['lag_max_s']:.2f} s, mean {fo['lag_mean_s']:.2f} s ="
            f" {fr['lag mean ours / aixplain']:.2f}x, polls {fr['polls ours / aixplain']:.2f}x"
        )
        fig = f"{measured}; {clock}"
        ok = max(o["lag_max_s"], o["longest_interval_s"], fo["lag_max_s"]) <= 5.1
        rows.append(
            (
                "3. poll lag, plain server, jobs of 100-160 s, 5 at once",
                fig,
                "max lag and poll interval <= 5 s cap + one request",
                _verdict(ok),
            )
        )
    h = r.get("held")
    if h and "lag_p95_ms" in h:
        fig = f"p50 {h['lag_p50_ms']:.1f} ms, p95 {h['lag_p95_ms']:.1f} ms (n={h['n']}, jobs 0.2-2 s)"
        rows.append(
            (
                "3. poll lag, held polls, embedded backend",
                fig,
                "p95 <= 50 ms",
                _verdict(h["lag_p95_ms"] <= 50),
            )
        )
    return rows


def _sse(r: dict[str, Any]) -> list[Row]:
    m, ratio = r["median_seconds"], r["ratios"]["ours / aixplain (time)"]
    fig = f"{ratio:.3f}x ({m['ours']:.2f} s vs {m['aixplain']:.2f} s for {r['chunks']:,} chunks)"
    rows = [("4. SSE over loopback, our `run_stream` / aixplain's", fig, "<= 0.4x", _verdict(ratio <= 0.4))]
    if "parse only, ours / aixplain (time)" in r["ratios"]:
        pr, pm = r["ratios"]["parse only, ours / aixplain (time)"], r["parse_only_median_seconds"]
        pfig = f"{pr:.3f}x ({pm['ours']:.2f} s vs {pm['aixplain']:.2f} s)"
        rows.append(
            (
                "4. SSE parsing alone (lines in memory), ours / aixplain's",
                pfig,
                "<= 0.5x",
                _verdict(pr <= 0.5),
            )
        )
    return rows


def _widget(r: dict[str, Any]) -> list[Row]:
    fig = (
        f"{r['messages_per_second']:.1f} msg/s at {r['chunks_per_second']:.0f} chunks/s "
        f"({r['ratios']['messages / chunks']:.4f} msg per chunk); kernel CPU {r['kernel_cpu_pct']:.0f}% "
        f"= {r['ratios']['kernel CPU widget / plain run_stream']:.2f}x plain `run_stream`"
    )
    return [
        (
            "5. widget streaming: frontend messages",
            fig,
            "<= 20 msg/s",
            _verdict(r["messages_per_second"] <= 20),
        )
    ]


def _widget_bytes(r: dict[str, Any]) -> list[Row]:
    ratios = r["ratios"]
    comm, total = ratios["comm (widget) bytes / text bytes"], ratios["IOPub bytes / text bytes"]
    kinds = r["by_message_type"]
    fig = (
        f"{comm:.2f}x the text ({kinds['comm_msg']['bytes'] / 1024:.0f} KiB of widget traffic for "
        f"{r['text_bytes'] / 1024:.0f} KiB of text, {r['chunks']} chunks); all IOPub {total:.2f}x "
        f"(+ the saved fallback, text/plain + text/markdown, once)"
    )
    before = RESULTS / "widget-bytes-before.json"
    if before.exists():
        old = json.loads(before.read_text())["ratios"]
        fig += (
            f"; before: {old['comm (widget) bytes / text bytes']:.1f}x, "
            f"all IOPub {old['IOPub bytes / text bytes']:.1f}x"
        )
    return [
        (
            "5. widget streaming: bytes sent for a 20 000-chunk stream",
            fig,
            "<= 2x the text",
            f"{_verdict(comm <= 2)} (widget traffic); {_verdict(total <= 2)} (all IOPub)",
        )
    ]


def _tokens(r: dict[str, Any]) -> list[Row]:
    q = r["ratios"]["stack / raw runtime (tokens/s)"]
    fig = f"{q:.3f}x ({r['tokens_per_second']['stack']:.1f} vs {r['tokens_per_second']['raw']:.1f} tok/s"
    extra = r["ratios"]
    if "stack / raw, decoding only" in extra:
        fig += (
            f"; per-round paired {extra['stack / raw, median of per-round ratios']:.2f}x, "
            f"decoding only {extra['stack / raw, decoding only']:.2f}x"
        )
    fig += ")"
    # verdict on the least favourable of the three ratios (prompt-evaluation spikes move the others)
    worst = min([q, *(v for k, v in extra.items() if k.startswith("stack / raw,"))])
    rows = [
        (
            "6. tokens/s, client + embedded backend / raw xllamacpp",
            fig,
            ">= 0.9x (all three)",
            _verdict(worst >= 0.9),
        )
    ]
    if "raw xllamacpp / llama-cpp-python (tokens/s)" in extra:
        lcp = extra["raw xllamacpp / llama-cpp-python (tokens/s)"]
        fig = (
            f"{lcp:.3f}x ({r['tokens_per_second']['raw']:.1f} vs "
            f"{r['tokens_per_second']['llama-cpp-python']:.1f} tok/s; decoding only "
            f"{extra['raw xllamacpp / llama-cpp-python, decoding only']:.2f}x; through the stack "
            f"{extra['stack / llama-cpp-python (tokens/s)']:.2f}x)"
        )
        rows.append(
            (
                "6. tokens/s, raw xllamacpp / portable llama-cpp-python build",
                fig,
                ">= 1.0x",
                _verdict(lcp >= 1),
            )
        )
    if "concurrent_streams_aggregate_tokens_per_second" in r:
        agg = r["concurrent_streams_aggregate_tokens_per_second"]
        speedup = r["4 together / 4 one after another (speed-up)"]
        fig = (
            f"{r['aggregate 4 streams / 1 stream']:.2f}x aggregate 4 vs 1 "
            f"({agg['1']} / {agg['2']} / {agg['4']} tok/s with 1 / 2 / 4 streams, {r['slots']} slots); "
            f"4 together {speedup:.2f}x faster than in turn"
        )
        rows.append(
            (
                "6. concurrent streams through the stack",
                fig,
                "4 together faster (> 1x)",
                _verdict(speedup > 1),
            )
        )
        cancel = r["cancel_to_slot_free_ms"]
        fig = f"{cancel['median']:.0f} ms median, {cancel['max']:.0f} ms max"
        rows.append(
            (
                "6. cancel (DELETE) until the runtime frees the slot",
                fig,
                "<= 500 ms",
                _verdict(cancel["max"] <= 500),
            )
        )
    return rows


def _backend_rps(r: dict[str, Any]) -> list[Row]:
    q = r["ratios"]["trivial model / bare Starlette (req/s)"]
    rps = r["rps_median"]
    fig = f"{q:.3f}x ({rps['backend']:.0f} vs {rps['bare']:.0f} req/s)"
    return [("B. backend req/s: trivial model / bare Starlette endpoint", fig, "(no target)", "n/a")]


def _batch(r: dict[str, Any]) -> list[Row]:
    q, rate = r["ratios"], r["median_items_per_s"]
    fig = (
        f"{q['ours / limit']:.3f}x the limit, {q['ours / raw httpx']:.3f}x raw httpx "
        f"({rate['ours']:.0f} vs {r['limit_items_per_s']:.0f} vs {rate['httpx']:.0f} items/s; "
        f"amap {rate['ours-async']:.0f}; {r['inputs']:,} inputs; server saw at most "
        f"{max(r['server_max_open'].values())} open"
    )
    paired = q.get("ours / raw httpx, median of per-round ratios")
    fig += f"; per-round paired {paired:.2f}x httpx" if paired is not None else ""
    if "aixplain-threads" in rate:
        fig += (
            f"; SDK `run` in a loop {rate['aixplain-loop']:.0f}, in a ThreadPoolExecutor(16) "
            f"{rate['aixplain-threads']:.0f} items/s"
        )
    cpu = r.get("median_client_cpu_us_per_item")
    fig += f"; client CPU per item {cpu['ours']} vs {cpu['httpx']} us)" if cpu else ")"
    ok = q["ours / limit"] >= 0.9 and q["ours / raw httpx"] >= 1.0
    what = "C. batch: `Model.map`, 16 at once, 50 ms model"
    rows = [(what, fig, ">= 0.9x limit, >= 1.0x httpx", _verdict(ok))]
    j = r.get("jobs")
    if j:
        over, wall = j["over_ideal"], j["median_seconds"]
        jfig = (
            f"{over['ours']:.3f}x the ideal {j['ideal_seconds']:g} s ({wall['ours']:.2f} s; amap "
            f"{over['ours-async']:.3f}x); server saw at most {j['server_max_open']} open"
        )
        what = (
            f"C. batch of {j['inputs']} x {j['job_seconds']:g} s jobs, {j['concurrency']} at once, held polls"
        )
        rows.append((what, jfig, "<= 1.15x the ideal", _verdict(j["met"])))
    mem = r.get("memory")
    if mem:
        mfig = (
            f"{mem['rss_bytes_per_item']:,} B RSS per item kept ({mem['data_bytes_per_item']} B of it "
            f"input + output; {mem['inputs']:,} items)"
        )
        rows.append(
            ("C. batch memory: RSS growth per result", mfig, "<= 2 KB beyond the data", _verdict(mem["met"]))
        )
    return rows


def _batch_progress(r: dict[str, Any]) -> list[Row]:
    paced, mapped = r["paced"], r["map"]
    fig = (
        f"{paced['messages_per_second']:.1f} msg/s at {paced['items_per_second']:.0f} items/s "
        f"({paced['comm_msgs_per_run']:.0f} messages for {r['paced_items']:,} items); "
        f"`%aix map` at {mapped['items_per_second']:.0f} items/s: {mapped['messages_per_second']:.1f} msg/s"
    )
    return [("D. batch progress: frontend messages", fig, "<= 10 msg/s", _verdict(r["met"]))]


def _cache(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    hm = r.get("hit_miss")
    if hm:
        us, q = hm["us"], hm["ratios"]
        hit, miss, plain = us["hit"], us["miss"], us["plain"]
        fig = (
            f"{q['hit / miss (p50)']:.3f}x p50, {q['hit / miss (p99)']:.3f}x p99 (p50 / p99: hit "
            f"{hit['p50']:.0f} / {hit['p99']:.0f} us, miss {miss['p50']:.0f} / {miss['p99']:.0f} us; "
            f"`cache=False` {plain['p50']:.0f} / {plain['p99']:.0f} us, miss / it "
            f"{q['miss / plain (p50)']:.2f}x p50; {hm['rounds']:,} rounds)"
        )
        rows.append(("E. cache hit / miss latency (embedded backend)", fig, "(no target)", "n/a"))
    mp = r.get("map")
    if mp:
        rate, spread = mp["items_per_s"], mp["min_max_items_per_s"]["cached"]
        fig = (
            f"{rate['cached']:,} items/s = {mp['ratio cached / uncached']:.1f}x the uncached fill "
            f"({rate['fill (uncached)']:,} items/s; cached {spread[0]:,}-{spread[1]:,} over "
            f"{mp['rounds']} rounds, concurrency {mp['concurrency']}; every item marked cache, data equal)"
        )
        rows.append(
            (
                f"E. fully cached map of {mp['items']:,} items".replace(",", " "),
                fig,
                ">= 3 000 items/s",
                _verdict(mp["met"]),
            )
        )
    st = r.get("stream")
    if st:
        ms, q = st["median_ms"], st["ratios"]
        fig = (
            f"replay / record {q['replay speed 1 / record (wall)']:.3f}x at speed 1 "
            f"({ms['replay speed 1']:.0f} vs {ms['record']:.0f} ms, {st['chunks']} chunks "
            f"{st['chunk_gap_ms']:g} ms apart); speed 0: {ms['replay speed 0']:.1f} ms; chunks identical: "
            f"{st['chunks_identical']} ({st['rounds']} rounds)"
        )
        rows.append(
            (
                f"E. replay of a {st['chunks']}-chunk stream",
                fig,
                "chunks identical; ~1.0x at speed 1",
                _verdict(st["chunks_identical"] and all(n == st["chunks"] for n in st["cassette_chunks"])),
            )
        )
    return rows


def _llm(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    st = r.get("structured")
    if st:
        fig = (
            f"{st['valid']}/{st['runs']} valid; tokens/s with the grammar / without {st['ratio']:.3f}x "
            f"({st['tokens_per_s_grammar']} vs {st['tokens_per_s_free']} tok/s decoding, SmolLM2, "
            "enum + bounded integer + string, sampled)"
        )
        rows.append(("F. structured output, embedded LLM", fig, "all valid; >= 0.8x", _verdict(st["met"])))
    cv = r.get("conversation")
    if cv:
        chat, bare = cv["per_turn_us_conversation"], cv["per_turn_us_bare_run"]
        fig = (
            f"{cv['ratio']:.3f}x ({chat:.0f} vs {bare:.0f} us per turn; per-round paired "
            f"{cv['ratio_paired']:.3f}x; {cv['rounds']} rounds of {cv['turns']} turns)"
        )
        rows.append(
            ("F. conversation turn / bare `LLM.run`, same history", fig, "<= 1.05x", _verdict(cv["met"]))
        )
    return rows


def _media_models(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for what, m in r["served_vs_raw"].items():
        times = f"{m['served_s']:.3f} s vs {m['raw_s']:.3f} s per call, median of {m['rounds']}"
        fig = f"{m['ratio']:.3f}x ({times})"
        rows.append((f"G. served / raw runtime: {what}", fig, "<= 1.15x", _verdict(m["ratio"] <= 1.15)))
    rtf = r["asr_real_time_factor"]
    fig = "; ".join(
        f"{clip} clip ({v['audio_s']:.1f} s of audio): {v['served_rtf']:.3f} served, {v['raw_rtf']:.3f} raw"
        for clip, v in rtf.items()
    )
    ok = all(v["served_rtf"] < 1 for v in rtf.values())
    rows.append(("G. speech recognition real-time factor (Whisper tiny.en)", fig, "< 1", _verdict(ok)))
    return rows


RENDERERS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "startup": _startup,
    "run_overhead": _run_overhead,
    "poll_lag": _poll_lag,
    "sse": _sse,
    "widget": _widget,
    "widget-bytes-after": _widget_bytes,
    "tokens": _tokens,
    "backend_rps": _backend_rps,
    "batch": _batch,
    "batch_progress": _batch_progress,
    "cache": _cache,
    "llm": _llm,
    "media_models": _media_models,
}


def _mode(r: dict[str, Any]) -> str:
    modes = (
        {r["mode"]} if "mode" in r else {p["mode"] for p in r.values() if isinstance(p, dict) and "mode" in p}
    )
    return "/".join(sorted(modes)) or "?"


def table() -> str:
    lines = [
        "| comparison | figure (ratio first) | target | verdict | mode, date, 1-min load avg |",
        "|---|---|---|---|---|",
    ]
    machines = set()
    for name, render in RENDERERS.items():
        path = RESULTS / f"{name}.json"
        if not path.exists():
            lines.append(f"| {name} | not run yet | | | |")
            continue
        r = json.loads(path.read_text())
        m = r["machine"]
        machines.add(f"{m['cores']} cores {m['cpu']}, {m['memory_gib']} GiB, {m['os']}, Python {m['python']}")
        try:
            rows = render(r)
        except (KeyError, TypeError, ZeroDivisionError) as exc:
            rows = [(name, f"result file incomplete ({exc})", "", "")]
        for what, fig, target, verdict in rows:
            load = m.get("loadavg_at_start", ["?"])[0]
            when = f"{_mode(r)}, {m['date'][:16]}, load {load}"
            lines.append(f"| {what} | {fig} | {target} | {verdict} | {when} |")
    lines.append("")
    lines.append("Machine: " + "; ".join(sorted(machines)) + " (shared with other work while measured).")
    return "\n".join(lines)


def main() -> None:
    readme = BENCH / "README.md"
    text = readme.read_text() if readme.exists() else f"{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table()}\n{END}{tail}")
    print(f"updated {Path(readme).relative_to(BENCH.parent)}")


if __name__ == "__main__":
    main()
