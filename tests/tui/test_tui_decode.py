"""The dashboard and Compare for decode runs: the step panel's percentiles, jitter, tokens/s and
device p99 (live and over results), the step-latency histogram from the results'
`step_histogram` (the live percentiles, labelled so, before the first window ends), tokens/s
as the grid's headline, and Compare's p99 step-latency line with CI and target."""
from __future__ import annotations

import json

from results.document import SessionRecord, build_document
from results.format import fmt_value
from results.store import Store
from scenarios.base import LaunchRequest
from scenarios.replay import ReplayLauncher, synthetic_stream
from tests.support import synth
from tui.app import GpubenchApp
from tui.screens.compare import CompareScreen
from tui.widgets.host_grid import HostGrid, short_num

from test_tui_app import screen_text
from tui_helpers import DATA, SIZE, wait_for, write_config

# the real engine on the CPU: `python -m engine --backend numpy-cpu --workloads decode
# --decode-batches 1,8 --duration 0.5 --warmup 0.1 --repeats 2 --sample-interval 0.125
# --telemetry-interval 0`
REAL_CPU_DECODE = DATA / "cpu_decode.jsonl"

FAR = 3600.0      # a line stamped this late holds a replayed session open at that point


def held(lines: list[str], nth_result: int) -> list[str]:
    """The stream with every line from its result number `nth_result` (0: the first) on
    stamped FAR: replayed in real time, the session shows what came before as live and
    waits there."""
    out, seen = [], 0
    for text in lines:
        obj = json.loads(text)
        if obj["type"] == "result":
            seen += 1
        if seen > nth_result:
            obj["t"] = FAR
        out.append(json.dumps(obj))
    return out


def start(app, lines: list[str], speed: float) -> None:
    app.run_worker(app.manager.run_session("h0", "gpu-node-1", "bare-metal",
                                           ReplayLauncher(lines, speed=speed), LaunchRequest()))


async def replay_to_the_end(app, pilot, lines) -> None:
    """On the dashboard, the stream replayed at once until its session has completed."""
    await pilot.press("2")
    start(app, lines, speed=float("inf"))
    await wait_for(pilot, lambda: "h0" in app.board.hosts
                   and app.board.hosts["h0"].status == "completed")


def ms(us: float) -> str:
    return fmt_value(us / 1000.0)


def panel_text(app) -> str:
    return str(app.screen.query_one("#steps").render())


async def test_live_decode_session_shows_step_percentiles_and_the_windows_histogram(config):
    lines = synth.decode_session_lines(batches=(8,), repeats=2)
    first, second = [json.loads(x) for x in lines if '"type":"result"' in x]
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        start(app, held(lines, 1), speed=50)
        await wait_for(pilot, lambda: len(app.board.hosts.get("h0").results
                                          if "h0" in app.board.hosts else []) == 1)
        state = app.board.hosts["h0"]
        assert state.status == "running" and state.is_step
        screen = app.screen
        await wait_for(pilot, lambda: "1 result" in panel_text(app))
        text = panel_text(app)
        assert "decode/8b-l4-b8-kv2048" in text and "• interval" in text
        for head in ("tokens/s", "p50", "p90", "p99", "p99.9", "jitter", "device p99"):
            assert head in text
        row = next(ln for ln in text.splitlines() if ln.startswith("1 result"))
        lat = first["latency_us"]
        assert row.split()[2:] == [fmt_value(first["tokens_per_s"]), ms(lat["p50"]),
                                   ms(lat["p90"]), ms(lat["p99"]), ms(lat["p999"]),
                                   fmt_value(first["jitter"]),
                                   ms(first["device_latency_us"]["p99"])]
        live = next(ln for ln in text.splitlines() if ln.startswith("• interval"))
        sample_lat = state.step_live["latency_us"]
        assert ms(sample_lat["p99"]) in live and fmt_value(state.step_live["tokens_per_s"]) in live
        # the chart: the first window's own histogram, every step counted
        chart = screen.chart_steps
        assert chart.display and screen.steps_w.display
        await wait_for(pilot, lambda: chart._shown is not None and chart.draws >= 1)
        labels, values, title = chart._shown[:3]
        assert values == first["step_histogram"]["counts"] and sum(values) == first["ops"]
        assert labels[0] == ms(first["step_histogram"]["edges_us"][0])
        assert "step latency histogram" in title and "window 0" in title
        # the grid's headline is tokens/s, the chart of rates too
        assert screen.chart_ops.title == "tokens/s"
        assert f"{short_num(state.tokens_per_s)} tokens/s" in screen_text(app)
        assert second["ops"]        # held back: not shown yet
        await app.manager.cancel_all()


async def test_before_the_first_window_ends_the_chart_draws_the_live_percentiles_as_such(config):
    lines = synth.decode_session_lines(batches=(1,), repeats=1)
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        start(app, held(lines, 0), speed=50)
        await wait_for(pilot, lambda: "h0" in app.board.hosts
                       and app.board.hosts["h0"].samples == 4)
        chart = app.screen.chart_steps
        await wait_for(pilot, lambda: chart._shown is not None and chart._shown[0] == [
            "p50", "p90", "p99", "p99.9"])
        labels, values, title, xlabel, ylabel = chart._shown
        lat = app.board.hosts["h0"].step_live["latency_us"]
        assert values == [lat[k] / 1000.0 for k in ("p50", "p90", "p99", "p999")]
        assert "percentiles of the live interval" in title and "not a histogram" in title
        assert ylabel == "ms"
        assert "• interval" in panel_text(app) and "result" not in panel_text(app)
        await app.manager.cancel_all()


async def test_an_ended_cpu_decode_session_keeps_tokens_per_s_and_says_cpu(config):
    lines = synth.decode_session_lines(backend="numpy-cpu", batches=(8,), repeats=3)
    results = [json.loads(x) for x in lines if '"type":"result"' in x]
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await replay_to_the_end(app, pilot, lines)
        await wait_for(pilot, lambda: "3 results" in panel_text(app))
        text = panel_text(app)
        assert "• interval" not in text                       # nothing live any more
        assert "CPU figures: no CUDA events, so no device p99" in text
        row = next(ln for ln in text.splitlines() if ln.startswith("3 results"))
        assert row.split()[-1] == "—"                          # no device time on the CPU
        state = app.board.hosts["h0"]
        tokens = sorted(r["tokens_per_s"] for r in results)[1]      # the median of three
        assert state.tokens_per_s == tokens
        grid = app.screen.query_one(HostGrid)
        assert grid.row_count == 1
        assert f"{short_num(tokens)} tokens/s" in screen_text(app)
        chart = app.screen.chart_steps
        await wait_for(pilot, lambda: chart._shown is not None and "window 2" in chart._shown[2])
        assert chart._shown[2].endswith("· CPU")


async def test_a_recorded_real_cpu_decode_stream_fills_the_panel_and_histogram(config):
    lines = REAL_CPU_DECODE.read_text().splitlines()
    results = [json.loads(x) for x in lines if '"type":"result"' in x]
    assert all(r["workload"] == "decode" and r.get("step_histogram") for r in results)
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await replay_to_the_end(app, pilot, lines)
        state = app.board.hosts["h0"]
        assert len(state.results) == len(results) == 4
        unit = (results[0]["workload"], results[0]["variant"])      # the row's headline
        assert (state.workload, state.variant) == state.step_unit == unit
        await wait_for(pilot, lambda: "2 results" in panel_text(app))
        assert f"{unit[0]}/{unit[1]}" in panel_text(app)
        chart = app.screen.chart_steps
        last = [r for r in results if (r["workload"], r["variant"]) == unit][-1]
        await wait_for(pilot, lambda: chart._shown is not None
                       and chart._shown[1] == last["step_histogram"]["counts"])
        assert sum(chart._shown[1]) == last["ops"]


async def test_a_roundtrip_session_shows_no_step_panel(config):
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await replay_to_the_end(app, pilot, synthetic_stream())
        await pilot.pause(0.3)
        assert not app.screen.steps_w.display and not app.screen.chart_steps.display
        assert "tokens/s" not in screen_text(app)


def save_decode_run(store: Store, scenario: str, run_id: str, scale: float, seed: int) -> None:
    recs = [SessionRecord(synth.decode_session_lines(seed + i, batches=(8,), repeats=3,
                                                     scale=scale), trial=i) for i in range(4)]
    doc = build_document(recs, {"name": scenario, "title": scenario, "launcher": "local",
                                "host": "local"}, run_id=run_id,
                         created=f"2026-11-20T1{seed % 10}:00:00Z")
    store.save(doc, [ln for r in recs for ln in r.lines])


async def test_compare_shows_the_decode_p99_overhead_with_ci_and_the_scenarios_target(tmp_path):
    config = write_config(tmp_path, proxy_enabled=True)       # bare-metal-proxy: target 5 %
    store = Store(config.data_dir)
    save_decode_run(store, "bare-metal", "run-base", 1.0, seed=1)
    save_decode_run(store, "bare-metal-proxy", "run-cand", 0.8, seed=5)    # 25 % slower steps
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await pilot.press("down", "b", "up", "c")     # History: newest first (cand, base)
        await pilot.press("4")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        [view] = screen.views
        [(line, verdict)] = view.step_tails
        row = next(r for r in view.rows if r.workload == "decode" and r.what == "p99 latency")
        assert line.startswith("decode 8b-l4-b8-kv2048 p99 step latency: +")
        assert "target <5%" in line and verdict == row.verdict == "FAIL"
        assert row.ci_low is not None and 15 < row.overhead_pct < 35
        text = screen_text(app)
        assert f"C1 {line}" in text


HOSTILE_STEP_FIELDS = [
    {"step_histogram": [1, 2, 3], "device_latency_us": "fast", "tokens_per_s": "many"},
    {"step_histogram": {"edges_us": "abc", "counts": "ab"}, "device_latency_us": [1.0],
     "jitter": {"x": 1}},
    {"step_histogram": {"edges_us": [1.0, "x", None], "counts": [1.7e308, True]},
     "device_latency_us": {"p99": "slow"}, "tokens_per_s": -1.7e308},
]


async def test_hostile_step_fields_never_break_the_dashboard(config):
    """A broken engine's decode lines (the protocol leaves these optional fields unchecked): the
    panel and chart show what is readable, the app goes on."""
    lines, n = [], 0
    for text in synth.decode_session_lines(batches=(8,), repeats=3):
        obj = json.loads(text)
        if obj["type"] in ("sample", "result"):
            obj.update(HOSTILE_STEP_FIELDS[n % 3] if obj["type"] == "result" else
                       {"tokens_per_s": HOSTILE_STEP_FIELDS[n % 3].get("tokens_per_s", 1.0)})
            n += obj["type"] == "result"
        lines.append(json.dumps(obj))
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await replay_to_the_end(app, pilot, lines)
        await wait_for(pilot, lambda: "3 results" in panel_text(app))
        row = next(ln for ln in panel_text(app).splitlines() if ln.startswith("3 results"))
        assert row.split()[-1] == "—"                          # no readable device p99
        chart = app.screen.chart_steps
        # no window's histogram is readable: the chart falls back to the last interval's
        # percentiles, and draws
        await wait_for(pilot, lambda: chart._shown is not None and chart._shown[0] == [
            "p50", "p90", "p99", "p99.9"] and chart.draws >= 1)
        assert app.screen.chart_ops.title == "tokens/s"           # a huge rate is not drawn
        assert app.is_running


async def test_a_step_without_tokens_charts_steps_per_s(config):
    """An engine that gave no tokens_per_s (an older one): the rate chart reads steps/s and
    plots the step rate, never an empty tokens/s series."""
    lines = [json.dumps({k: v for k, v in json.loads(x).items() if k != "tokens_per_s"})
             for x in synth.decode_session_lines(batches=(8,), repeats=2)]
    app = GpubenchApp(config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        screen = app.screen
        plotted: list[dict] = []
        show = screen.chart_ops.show
        screen.chart_ops.show = lambda x, series, subtitle: (plotted.append(series),
                                                            show(x, series, subtitle))
        start(app, held(lines, 1), speed=50)
        await wait_for(pilot, lambda: plotted and screen.chart_ops.title == "steps/s")
        values = next(iter(plotted[-1].values()))
        assert values and all(v is not None and v > 0 for v in values)   # the step rate
        await app.manager.cancel_all()
