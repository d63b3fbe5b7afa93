"""K8sLauncher against a Kubernetes API emulator (see conftest.py: no scheduler, kubelet or
GPU device plugin; the test scripts pod phases, events and logs)."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from engine.protocol import parse_line
from scenarios.base import LaunchRequest
from scenarios.events import (CANCELLED, COMPLETED, FAILED, INCOMPLETE, Done, Hello, Result,
                              SessionEnded, Status)
from scenarios.k8s.api import K8sError
from scenarios.k8s.launcher import K8sLauncher
from scenarios.k8s.cleanup import cleanup_leftovers
from scenarios.k8s.spec import EngineBundle, MANAGED_BY
from scenarios.base import ENGINE_DIR
from scenarios.registry import request_for
from tests.support.k8s_emulator import CONFIGMAPS, JOBS, PODS, PodScript

pytestmark = pytest.mark.k8s

REQUEST = LaunchRequest(engine_args=("--backend", "numpy-cpu", "--workloads", "roundtrip"))


async def run_to_end(session):
    events = [e async for e in session.events()]
    assert isinstance(events[-1], SessionEnded)
    return events, events[-1]


def assert_nothing_left(emu, ns="gpubench"):
    assert emu.live(PODS, ns) == {}
    assert emu.live(CONFIGMAPS, ns) == {}


def test_recorded_stream_is_protocol_v1(stream_lines, sigterm_lines):
    for line in stream_lines + sigterm_lines:
        parse_line(line)
    assert '"type":"done"' in stream_lines[-1]


async def test_pod_spec_proxy_layer(emu, cluster, proxy_scenario, stream_lines):
    """Scenario 4: GPU limit, env with LD_PRELOAD, hostPath volume + mount, labels, engine ConfigMap."""
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.05)
    launcher = K8sLauncher.from_config(cluster, proxy_scenario)
    request = request_for(proxy_scenario, ["--workloads", "roundtrip"])
    session = await launcher.start(request)
    pods = emu.live(PODS, "gpubench")
    assert list(pods) == [session.pod_name]
    pod = pods[session.pod_name]
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"][MANAGED_BY] == "gpubench"
    assert meta["labels"]["gpubench/run"] == session.run_id
    assert session.pod_name.startswith("gpubench-k8s-proxy-")
    c = spec["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert c["command"][:4] == ["python3", "-u", "-m", "engine"]
    assert c["command"][4:] == ["--workloads", "roundtrip"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["LD_PRELOAD"] == "/usr/local/vgpu/libvgpu.so"
    assert env["CUDA_DEVICE_MEMORY_LIMIT"] == "16g" and env["CUDA_DEVICE_SM_LIMIT"] == "50"
    assert env["PYTHONPATH"] == "/opt/gpubench"
    assert spec["restartPolicy"] == "Never"
    assert "runtimeClassName" not in spec
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["gpu-proxy"]["hostPath"]["path"] == "/usr/local/vgpu"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts == {"gpu-proxy": "/usr/local/vgpu", "gpubench-engine": "/opt/gpubench/engine"}
    # The engine ConfigMap: named by the content hash and the launcher (its own), one key per
    # module, mapped back to paths.
    bundle = EngineBundle.from_dir(ENGINE_DIR, run=launcher.instance)
    assert bundle.configmap_name == f"gpubench-engine-{bundle.hash}-{launcher.instance}"
    cms = emu.live(CONFIGMAPS, "gpubench")
    assert list(cms) == [bundle.configmap_name]
    assert vols["gpubench-engine"]["configMap"]["name"] == bundle.configmap_name
    paths = {i["path"] for i in vols["gpubench-engine"]["configMap"]["items"]}
    assert "protocol.py" in paths and set(cms[bundle.configmap_name]["data"]) == {
        p.replace("/", "..") for p in paths}
    events, end = await run_to_end(session)
    assert end.outcome == COMPLETED, end
    assert_nothing_left(emu)


async def test_pod_spec_hypervisor_layer(emu, cluster, hypervisor_scenario, stream_lines):
    """Scenario 5: runtimeClassName, nodeSelector, tolerations, 2 GPUs."""
    emu.kubelet.default = PodScript(lines=stream_lines)
    launcher = K8sLauncher.from_config(cluster, hypervisor_scenario)
    session = await launcher.start(request_for(hypervisor_scenario, ["--workloads", "gemm"]))
    pod = emu.live(PODS, "gpubench")[session.pod_name]
    spec = pod["spec"]
    assert spec["runtimeClassName"] == "kata-qemu"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                    "effect": "NoSchedule"}]
    assert spec["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert "LD_PRELOAD" not in env
    _, end = await run_to_end(session)
    assert end.outcome == COMPLETED


async def test_logs_streamed_to_events_then_completed(emu, cluster, pod_scenario, stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.03)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    t0 = time.monotonic()
    arrivals = []
    events = []
    async for ev in session.events():
        events.append(ev)
        arrivals.append(time.monotonic() - t0)
    end = events[-1]
    assert end.outcome == COMPLETED, end
    assert end.exit_code == 0
    assert end.details["pod"] == session.pod_name and end.details["node"] == "gpu-node-1"
    kinds = [type(e).__name__ for e in events]
    assert kinds.index("Hello") < kinds.index("Result") < kinds.index("Done")
    assert sum(isinstance(e, Result) for e in events) == 2
    assert any(isinstance(e, Status) and "Running" in e.message for e in events)
    assert session.raw_lines == stream_lines
    # Streamed, not delivered at the end: the hello came well before the done.
    hello_t = arrivals[kinds.index("Hello")]
    done_t = arrivals[kinds.index("Done")]
    assert done_t - hello_t >= 0.1
    assert_nothing_left(emu)


async def test_stderr_lines_are_not_protocol_warnings(emu, cluster, pod_scenario, stream_lines):
    lines = ["Traceback (most recent call last):", "ModuleNotFoundError: No module named 'numpy'"]
    emu.kubelet.default = PodScript(lines=lines, outcome="failed", exit_code=1)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    events, end = await run_to_end(session)
    assert end.outcome == FAILED
    assert "exited with code 1" in end.message and "No module named 'numpy'" in end.message
    assert session.parser.warnings == []
    assert_nothing_left(emu)


async def test_unschedulable_pending_times_out_quoting_events(emu, cluster, pod_scenario):
    emu.kubelet.default = PodScript(outcome="unschedulable")
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    events, end = await run_to_end(session)
    assert end.outcome == FAILED
    assert "still Pending after 1 s" in end.message
    assert "Unschedulable" in end.message
    assert "Warning FailedScheduling: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu" in end.message
    assert any(isinstance(e, Status) and "Unschedulable" in e.message for e in events)
    assert_nothing_left(emu)


async def test_image_pull_backoff_fails_fast_quoting_events(emu, cluster, pod_scenario):
    import dataclasses
    emu.kubelet.default = PodScript(outcome="image_pull")
    cluster = dataclasses.replace(cluster, pod_timeout_s=60.0)
    t0 = time.monotonic()
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    _, end = await run_to_end(session)
    assert end.outcome == FAILED
    assert "image pull failed (ErrImagePull" in end.message or "ImagePullBackOff" in end.message
    assert "registry.example/gpubench-engine:1" in end.message
    assert "Warning Failed: Failed to pull image" in end.message
    assert time.monotonic() - t0 < 30    # at once, not after the 60 s pod timeout
    assert_nothing_left(emu)


async def test_oom_killed(emu, cluster, pod_scenario, stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, outcome="oom", stop_after=3)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    events, end = await run_to_end(session)
    assert end.outcome == INCOMPLETE        # the engine had started: a partial run
    assert "OOMKilled" in end.message and "exit code 137" in end.message
    assert end.exit_code == 137 and end.details["container_reason"] == "OOMKilled"
    assert any(isinstance(e, Hello) for e in events)
    assert_nothing_left(emu)


async def test_failed_with_exit_code(emu, cluster, pod_scenario, stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines[:2] + ["Segmentation fault (core dumped)"],
                                    outcome="failed", exit_code=139)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    _, end = await run_to_end(session)
    assert end.outcome == INCOMPLETE
    assert "failed on node gpu-node-1: container exited with code 139 (Error)" in end.message
    assert "Segmentation fault" in end.message
    assert "events: " in end.message and "Started container engine" in end.message
    assert end.exit_code == 139
    assert_nothing_left(emu)


async def test_evicted_mid_run_is_incomplete(emu, cluster, pod_scenario, stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, outcome="evicted", stop_after=4)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    events, end = await run_to_end(session)
    assert end.outcome == INCOMPLETE
    assert "evicted on node gpu-node-1 mid-run: The node was low on resource: memory" in end.message
    assert "Warning Evicted" in end.message
    assert end.details["reason"] == "Evicted"
    assert len(session.raw_lines) == 4 and not any(isinstance(e, Done) for e in events)
    assert_nothing_left(emu)


async def test_cancel_while_running_deletes_pod(emu, cluster, pod_scenario, stream_lines,
                                                sigterm_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.5,
                                    on_delete=sigterm_lines)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    async for ev in session.events():
        if isinstance(ev, Hello):
            break
    assert session.pod_name in emu.live(PODS, "gpubench")
    await asyncio.wait_for(session.cancel(), 60)   # a guard against a hang, not a time bound
    end = session.ended
    assert end is not None and end.outcome == CANCELLED
    # The engine's SIGTERM output (partial result, done interrupted) still arrived.
    assert session.parser.done is not None and session.parser.done.status == "interrupted"
    assert_nothing_left(emu)


async def test_cancel_while_pending_deletes_pod(emu, cluster, pod_scenario):
    emu.kubelet.default = PodScript(outcome="unschedulable")
    launcher = K8sLauncher.from_config(cluster, pod_scenario)
    session = await launcher.start(REQUEST)
    await asyncio.sleep(0.2)
    await session.cancel()
    assert session.ended.outcome == CANCELLED
    assert_nothing_left(emu)


async def test_engine_configmap_shared_and_removed_with_last_session(emu, cluster, pod_scenario,
                                                                     stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.05)
    launcher = K8sLauncher.from_config(cluster, pod_scenario)
    a = await launcher.start(REQUEST)
    b = await launcher.start(REQUEST)
    assert len(emu.live(CONFIGMAPS, "gpubench")) == 1
    assert len(emu.live(PODS, "gpubench")) == 2
    ends = await asyncio.gather(a.wait(), b.wait())
    assert [e.outcome for e in ends] == [COMPLETED, COMPLETED]
    assert_nothing_left(emu)


async def test_unreachable_api_server_is_one_clear_line(pod_scenario, caplog):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]        # closed again: nothing listens there
    from scenarios.config import ClusterConfig
    cluster = ClusterConfig(name="gone", api_url=f"http://127.0.0.1:{port}", namespace="gpubench")
    launcher = K8sLauncher.from_config(cluster, pod_scenario)
    with pytest.raises(K8sError) as info:
        await launcher.start(REQUEST)
    message = str(info.value)
    assert message == (f"k8s gone: cannot reach the Kubernetes API server "
                       f"http://127.0.0.1:{port}: connection refused")
    with pytest.raises(K8sError, match="^k8s gone namespace gpubench: cannot reach the Kubernetes API server"):
        cleanup_leftovers(cluster)
    # Nothing else on stderr: urllib3's retry warnings are dropped.
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


async def test_missing_kubeconfig_is_one_clear_line(tmp_path, pod_scenario):
    from scenarios.config import ClusterConfig
    cluster = ClusterConfig(name="prod", kubeconfig=str(tmp_path / "nope.yaml"))
    with pytest.raises(K8sError) as info:
        await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    assert str(info.value) == f"k8s prod: cluster prod: kubeconfig {tmp_path / 'nope.yaml'}: file not found"


async def test_engine_hang_mid_stream_times_out_incomplete(emu, cluster, pod_scenario,
                                                           stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, outcome="hang")
    emu.kubelet.default.lines = stream_lines[:2]
    launcher = K8sLauncher.from_config(cluster, pod_scenario)
    launcher.log_stall_s = 0.5
    session = await launcher.start(REQUEST)
    _, end = await asyncio.wait_for(run_to_end(session), 60)   # without the stall check: forever
    assert end.outcome == INCOMPLETE
    assert "no engine output for 0.5 s while Running: the engine hangs" in end.message
    assert_nothing_left(emu)


async def test_task_cancelled_on_app_exit_still_deletes_pod(emu, cluster, pod_scenario,
                                                             stream_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.5)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    async for ev in session.events():
        if isinstance(ev, Hello):
            break
    session._task.cancel()          # what asyncio.run() does to pending tasks at exit
    with pytest.raises(asyncio.CancelledError):
        await session._task
    assert session.ended.outcome == CANCELLED
    assert_nothing_left(emu)


async def test_registry_builds_k8s_launcher_from_config_toml(emu, stream_lines, tmp_path):
    """config.toml's k8s scenarios, with api_url pointed at the emulator, through the registry."""
    from scenarios.config import load_config
    from scenarios.registry import launcher_for
    text = (Path(__file__).resolve().parents[2] / "config.toml").read_text()
    text = text.replace('kubeconfig = "~/.kube/config"', f'api_url = "{emu.url}"')
    (tmp_path / "config.toml").write_text(text)
    config = load_config(tmp_path / "config.toml")
    emu.kubelet.default = PodScript(lines=stream_lines)
    for name in ("k8s-pod", "k8s-proxy", "k8s-hypervisor"):
        sc = config.scenarios[name]
        launcher = launcher_for(sc, config)
        assert isinstance(launcher, K8sLauncher)
        session = await launcher.start(request_for(sc, ["--workloads", "roundtrip"]))
        spec = emu.live(PODS, "gpubench")[session.pod_name]["spec"]
        assert (spec.get("runtimeClassName") == "kata-qemu") == (name == "k8s-hypervisor")
        assert any(v.get("hostPath") for v in spec["volumes"]) == (name == "k8s-proxy")
        end = await session.wait()
        assert end.outcome == COMPLETED, (name, end)
        await launcher.close()
    assert_nothing_left(emu)


async def test_job_workload_runs_and_cleans_up(emu, cluster, hypervisor_scenario, stream_lines):
    """The Job option: a batch/v1 Job (backoffLimit 0) whose pod is adopted from the watch.
    The emulator's stand-in Job controller creates that pod; its garbage collector removes it."""
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.02)
    launcher = K8sLauncher(cluster, hypervisor_scenario, workload="job")
    session = await launcher.start(REQUEST)
    jobs = emu.live(JOBS, "gpubench")
    assert list(jobs) == [session.job_name]
    job = jobs[session.job_name]
    assert job["spec"]["backoffLimit"] == 0
    tpl = job["spec"]["template"]["spec"]
    assert tpl["runtimeClassName"] == "kata-qemu" and tpl["restartPolicy"] == "Never"
    assert tpl["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "2"}
    _, end = await run_to_end(session)
    assert end.outcome == COMPLETED, end
    assert session.pod_name.startswith(session.job_name + "-")
    assert end.details["pod"] == session.pod_name
    assert session.raw_lines == stream_lines
    assert emu.live(JOBS, "gpubench") == {}
    assert_nothing_left(emu)


async def test_job_workload_cancel(emu, cluster, pod_scenario, stream_lines, sigterm_lines):
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.5, on_delete=sigterm_lines)
    session = await K8sLauncher(cluster, pod_scenario, workload="job").start(REQUEST)
    async for ev in session.events():
        if isinstance(ev, Hello):
            break
    await session.cancel()
    assert session.ended.outcome == CANCELLED
    assert emu.live(JOBS, "gpubench") == {}
    assert_nothing_left(emu)


async def test_missing_namespace_hint(emu, cluster, pod_scenario):
    """The emulator does not check namespaces; script the API's 404 for this one request."""
    import kmock
    emu.emulator[kmock.method.POST, kmock.resource("", "v1", "configmaps")] << kmock.Response(
        status=404, payload={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "message": 'namespaces "gpubench" not found', "reason": "NotFound",
                             "code": 404})
    with pytest.raises(K8sError) as info:
        await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    assert str(info.value).endswith(
        'answered 404 Not Found: namespaces "gpubench" not found '
        "(create it: kubectl create namespace gpubench)")


async def test_evicted_through_the_api_mid_run(emu, cluster, pod_scenario, stream_lines,
                                                sigterm_lines):
    """`kubectl drain`: the pod is marked DisruptionTarget and deleted by someone else; the
    engine gets SIGTERM and writes its partial result. Incomplete, saying why."""
    from tests.support.k8s_emulator import PODS as PODS_RES
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.5,
                                    on_delete=sigterm_lines)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    async for ev in session.events():
        if isinstance(ev, Hello):
            break
    await emu.acall(emu.emulator.patch_object(PODS_RES, "gpubench", session.pod_name, {
        "status": {"conditions": [{"type": "DisruptionTarget", "status": "True",
                                   "reason": "EvictionByEvictionAPI",
                                   "message": "Eviction API: evicting"}]}}))
    from kubernetes import client
    cfg = client.Configuration()
    cfg.host = emu.url
    core = client.CoreV1Api(client.ApiClient(cfg))
    await asyncio.to_thread(core.delete_namespaced_pod, session.pod_name, "gpubench")
    end = await session.wait()
    assert end.outcome == INCOMPLETE
    assert ("was deleted while the engine ran on node gpu-node-1 (EvictionByEvictionAPI: "
            "Eviction API: evicting)") in end.message
    assert session.parser.done.status == "interrupted"     # the partial result arrived
    assert_nothing_left(emu)


def test_engine_bundle_fits_a_configmap():
    """The whole engine travels in one ConfigMap: it must stay under the API's ~1 MiB limit,
    and the names of its keys must be valid (no '/')."""
    from scenarios.k8s.spec import CONFIGMAP_LIMIT_BYTES
    bundle = EngineBundle.from_dir(ENGINE_DIR)
    assert 0 < bundle.size < CONFIGMAP_LIMIT_BYTES
    assert {"__init__.py", "__main__.py", "protocol.py"} <= set(bundle.sources)
    assert any(p.startswith("workloads/") for p in bundle.sources)
    keys = bundle.configmap("ns")["data"]
    assert all("/" not in k and k.replace(".", "").replace("_", "").replace("-", "").isalnum()
               for k in keys)
    assert bundle.configmap_name == f"gpubench-engine-{bundle.hash}" and len(bundle.hash) == 12


async def test_log_stream_dropped_mid_run_resumes_without_repeats(emu, cluster, pod_scenario,
                                                                  stream_lines):
    """The API server cuts the log connection after 3 lines while the pod runs: the session
    reopens it (sinceSeconds, kubelet timestamps) and skips what it already had."""
    emu.kubelet.default = PodScript(lines=stream_lines, line_interval_s=0.1, drop_log_after=3)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    events, end = await run_to_end(session)
    assert end.outcome == COMPLETED, end
    assert session.raw_lines == stream_lines                  # each line once, in order
    assert any(isinstance(e, Status) and "dropped" in e.message and "resuming (1/5)" in e.message
               for e in events)
    assert_nothing_left(emu)


async def test_resume_skips_lines_with_equal_timestamps(stream_lines):
    """Several lines can share one kubelet timestamp: the resume skips exactly as many."""
    from types import SimpleNamespace
    from scenarios.k8s.session import K8sSession
    fake = SimpleNamespace(cluster=SimpleNamespace(name="c"), namespace="ns")
    session = K8sSession(fake, REQUEST, "p", "r")
    ts = ["2026-11-25T20:50:35.5Z", "2026-11-25T20:50:35.5Z", "2026-11-25T20:50:35.500000001Z",
          "2026-11-25T20:50:35.500000001Z", "2026-11-25T20:50:36Z", "2026-11-25T20:50:36.1Z"]
    stamped = [f"{t} {line}" for t, line in zip(ts, stream_lines)]
    for raw in stamped[:3] + ["2026-11-25T20:50:35.500000001Z engine: warming up"]:
        session._log_line(raw)
    # dropped here; the reopened stream starts earlier (sinceSeconds) and overlaps
    session._resume_key, session._resume_skip = session._last_key, session._last_count
    for raw in stamped[:3] + ["2026-11-25T20:50:35.500000001Z engine: warming up"] + stamped[3:]:
        session._log_line(raw)
    assert session.raw_lines == stream_lines
    assert list(session.stderr_tail) == ["engine: warming up"]


async def test_kubeconfig_context_reaches_the_cluster(emu, pod_scenario, stream_lines, tmp_path):
    """The kubeconfig path (not api_url): context picked by name, namespace from config."""
    from scenarios.config import ClusterConfig
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: emulated
  cluster: {{server: "{emu.url}"}}
- name: other
  cluster: {{server: "http://127.0.0.1:9"}}
users:
- name: me
  user: {{token: not-checked-by-the-emulator}}
contexts:
- name: emu
  context: {{cluster: emulated, user: me}}
- name: other
  context: {{cluster: other, user: me}}
current-context: other
""")
    emu.kubelet.default = PodScript(lines=stream_lines)
    cluster = ClusterConfig(name="lab", kubeconfig=str(kubeconfig), context="emu",
                            namespace="gpubench")
    launcher = K8sLauncher.from_config(cluster, pod_scenario)
    session = await launcher.start(REQUEST)
    assert (await session.wait()).outcome == COMPLETED
    assert_nothing_left(emu)
    wrong = ClusterConfig(name="lab", kubeconfig=str(kubeconfig), context="nope")
    with pytest.raises(K8sError) as info:
        await K8sLauncher.from_config(wrong, pod_scenario).start(REQUEST)
    message = str(info.value)
    assert message.startswith(f"k8s lab: cluster lab: kubeconfig {kubeconfig}: ")
    assert "nope" in message and "\n" not in message


async def test_startup_time_from_pod_creation_to_first_sample(emu, cluster, pod_scenario,
                                                              stream_lines):
    """The init cost of a Kubernetes layer, creation → Running → hello → first sample."""
    emu.kubelet.default = PodScript(lines=stream_lines, start_delay_s=0.3, line_interval_s=0.05)
    session = await K8sLauncher.from_config(cluster, pod_scenario).start(REQUEST)
    events, end = await run_to_end(session)
    assert end.outcome == COMPLETED, end
    startup = end.details["startup"]
    # The scripted kubelet starts the pod 0.3 s after creation; lines follow 0.05 s apart.
    assert startup["to_running_s"] >= 0.3
    assert startup["to_running_s"] <= startup["to_hello_s"] < startup["to_first_sample_s"]
    assert any(isinstance(e, Status) and "first sample" in e.message for e in events)


async def test_startup_timing_is_saved_with_the_run_and_shown(emu, cluster, pod_scenario,
                                                              stream_lines, tmp_path, capsys):
    """The runner keeps SessionEnded.details (startup, pod, node) in the document's
    sessions; `gpubench show` prints pod creation → first sample."""
    import dataclasses
    import types

    from gpubench.cli.show import cmd_show
    from scenarios.config import parse_config
    from gpubench.runner import PlanOptions, PlanRunner
    from results.store import Store
    config = parse_config({"store": {"data_dir": str(tmp_path / "data")},
                           "defaults": {"workloads": ["roundtrip"], "backend": "numpy-cpu"}},
                          "test.toml", tmp_path)
    config = dataclasses.replace(config, clusters={cluster.name: cluster},
                                 scenarios={pod_scenario.name: pod_scenario})
    emu.kubelet.default = PodScript(lines=stream_lines, start_delay_s=0.3, line_interval_s=0.05,
                                    node_name="gpu-node-3")
    runner = PlanRunner(config, [pod_scenario], PlanOptions(trials=1, seed=1),
                        Store(config.data_dir),
                        launcher_factory=lambda s, c: K8sLauncher.from_config(cluster, s))
    result = await runner.run()
    assert result.complete and result.failed_sessions == 0
    doc = Store(config.data_dir).load(result.run_ids[0])
    details = doc["sessions"][0]["details"]
    startup = details["startup"]
    assert startup["to_running_s"] >= 0.3
    assert startup["to_running_s"] <= startup["to_hello_s"] < startup["to_first_sample_s"]
    assert details["pod"] and details["node"] == "gpu-node-3"
    assert cmd_show(types.SimpleNamespace(run=doc["id"], json=False, data_dir=None),
                    config) == 0
    out = capsys.readouterr().out
    assert f"pod creation → Running {startup['to_running_s']:.2f} s" in out
    assert f"→ first sample {startup['to_first_sample_s']:.2f} s" in out
    assert "gpu-node-3 (1 session)" in out
    assert_nothing_left(emu)
