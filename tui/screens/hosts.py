"""Hosts & scenarios: what config.toml defines, reachability, GPU facts from the last hello."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from results.format import EMPTY
from results.labels import CPU_MARK, is_cpu
from scenarios.config import Config


def _hello_summary(hello: dict | None) -> str:
    if not hello:
        return EMPTY
    dev = hello.get("device") or {}
    if is_cpu(hello.get("backend")):
        return CPU_MARK
    parts = [str(dev.get("name") or "?")]
    if dev.get("driver"):
        parts.append(f"driver {dev['driver']}")
    pcie = dev.get("pcie") or {}
    if pcie.get("gen_current"):
        parts.append(f"PCIe {pcie.get('gen_current')}x{pcie.get('width_current')}")
    if dev.get("memory_total_mib"):
        parts.append(f"{dev['memory_total_mib'] // 1024} GiB")
    return " · ".join(parts)


def key_of(bindings, action: str) -> str:
    """The key a binding list gives `action`, as the footer shows it: hints name the key the
    screen really binds, so they cannot drift from it."""
    for b in bindings:
        if isinstance(b, Binding) and b.action == action:
            return b.key_display or b.key.split(",")[0]
    raise KeyError(action)


class HostsScreen(Screen):
    AUTO_FOCUS = "#host-table"
    BINDINGS = [
        Binding("r", "app.run_plan", "Run plan"),
        Binding("t", "quick_test", "Quick test"),
        Binding("f", "app.quick_test_all", "Quick test all hosts"),
        Binding("p", "app.probe_hosts", "Probe hosts"),
        Binding("tab", "focus_next", "Next table", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="hosts")
        self.stale = False

    def on_screen_resume(self) -> None:
        if self.stale:
            self.refresh_tables()

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="hosts-body"):
            yield Label("Hosts", classes="section-title")
            yield DataTable(id="host-table", cursor_type="row", zebra_stripes=True)
            yield Label("Scenarios (enabled ones form the run plan)", classes="section-title")
            yield DataTable(id="scenario-table", cursor_type="row", zebra_stripes=True)
            yield Label("", id="plan-summary")
        yield Footer()

    def on_mount(self) -> None:
        hosts = self.query_one("#host-table", DataTable)
        hosts.add_columns("Host", "Kind", "Address", "Enabled", "Reachable", "GPU (last hello)",
                          "Scenarios")
        sc = self.query_one("#scenario-table", DataTable)
        sc.add_columns("Scenario", "Title", "Launcher", "Where", "Target", "Baseline", "Enabled")
        self.refresh_tables()

    @property
    def config(self) -> Config:
        return self.app.config

    def refresh_tables(self) -> None:
        self.stale = False
        cfg = self.config
        app = self.app
        hosts = self.query_one("#host-table", DataTable)
        row = hosts.cursor_row
        hosts.clear()
        for name, h in cfg.hosts.items():
            scen = [s.name for s in cfg.scenarios.values()
                    if s.launcher in ("local", "ssh") and (s.host or "local") == name]
            reach = app.reachability.get(name)
            reach_text = (Text("?", style="dim") if reach is None else
                          Text("yes", style="green") if reach[0] else
                          Text(f"no: {reach[1]}"[:60], style="red"))
            hosts.add_row(name, h.kind, h.address or ("this machine" if h.kind == "local" else EMPTY),
                          "yes" if h.enabled else "no", reach_text,
                          _hello_summary(app.last_hello.get(name)), ", ".join(scen) or EMPTY, key=name)
        for name, c in cfg.clusters.items():
            scen = [s.name for s in cfg.scenarios.values() if s.cluster == name]
            hosts.add_row(f"{name} (cluster)", "k8s", c.api_url or c.kubeconfig or EMPTY,
                          "yes" if c.enabled else "no", Text("?", style="dim"),
                          _hello_summary(app.last_hello.get(f"k8s:{name}")), ", ".join(scen) or EMPTY,
                          key=f"k8s:{name}")
        if row is not None and hosts.row_count:
            hosts.move_cursor(row=min(row, hosts.row_count - 1))
        sc = self.query_one("#scenario-table", DataTable)
        sc.clear()
        for s in cfg.scenarios.values():
            where = s.cluster if s.launcher == "k8s" else (s.host or "local")
            target = f"{s.target} < {s.target_pct:g} %" if s.target_pct is not None else EMPTY
            sc.add_row(s.name, s.title, s.launcher, where, target, s.baseline or EMPTY,
                       Text("yes", style="green") if s.enabled else Text("no", style="dim"),
                       key=s.name)
        enabled = cfg.enabled_scenarios()
        d = cfg.defaults
        self.query_one("#plan-summary", Label).update(
            f"Plan: {len(enabled)} scenario(s) × {d.trials} trial(s), interleaved · "
            f"workloads {', '.join(d.workloads)} · {d.duration_s:g} s × {d.repeats} repeats · "
            f"backend {d.backend} · [b]{self.key_for('app.run_plan')}[/b] runs it · "
            f"[b]{self.key_for('quick_test')}[/b] quick test on the selected host")

    @classmethod
    def key_for(cls, action: str) -> str:
        return key_of(cls.BINDINGS, action)

    def selected_host(self) -> str | None:
        table = self.query_one("#host-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return key

    def action_quick_test(self) -> None:
        host = self.selected_host() or "local"
        self.app.action_quick_test(host)
