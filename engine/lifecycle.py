"""One engine run: pick the backend, say hello, run every variant, say done."""
from __future__ import annotations

import os
import sys
import traceback

from . import __version__, signals
from .backend import CupyBackend, NoGPU, NumpyBackend, import_cupy, resolve_device
from .devices import (DeviceNotFound, cupy_gpus, cupy_p2p_matrix, fake_device_count,
                      nvml_handle, resolve_fake_device)
from .facts import cpu_model, format_cpu_list, host_facts
from .measure import NotApplicable, Runner, StopFlag
from .plan import UsageError, build_variants, parse_args
from .protocol import Emitter
from .telemetry import NVML, TelemetryThread
from .workloads import PREPARE, RUN


def _note(message: str) -> None:
    print(f"gpubench engine: {message}", file=sys.stderr, flush=True)


def _fatal(em: Emitter, code: str, message: str, exit_code: int) -> int:
    _note(f"error: {message}")
    em.emit("error", code=code, message=message, fatal=True)
    em.emit("done", status="error", exit_code=exit_code, counts=dict(em.counts))
    return exit_code


def _requested_backend(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--backend=cupy" or (a == "--backend" and argv[i + 1:i + 2] == ["cupy"]):
            return "cupy"
    return "numpy-cpu"


def select_backend(plan, t0: float):
    """(backend, emitter, None) or (None, emitter, exit code) after a fatal error."""
    if plan.backend in ("auto", "cupy"):
        cupy, why = import_cupy()
        if cupy is not None:
            try:
                backend = CupyBackend(cupy, resolve_device(cupy, plan.device), plan.seed)
                return backend, Emitter("cupy", t0=t0), None
            except NoGPU as exc:
                why = str(exc)
            except Exception as exc:  # driver/NVRTC trouble: the device is unusable
                why = f"CUDA device unusable ({type(exc).__name__}: {exc})"
        if plan.backend == "cupy":
            em = Emitter("cupy", t0=t0)
            return None, em, _fatal(em, "no_gpu", f"--backend cupy: {why}", 2)
        _note(f"--backend auto: using numpy-cpu (CPU figures, not GPU): {why}")
    fakes = fake_device_count()
    index = None
    if fakes:
        try:
            index = resolve_fake_device(plan.device, fakes)
        except DeviceNotFound as exc:
            em = Emitter("numpy-cpu", t0=t0)
            return None, em, _fatal(em, "no_gpu", str(exc), 2)
    return (NumpyBackend(seed=plan.seed, fake_devices=fakes, fake_index=index),
            Emitter("numpy-cpu", t0=t0), None)


def run_engine(argv: list[str], t0: float) -> int:
    stop = StopFlag()
    signals.install(stop)
    try:
        plan = parse_args(argv)
    except UsageError as exc:
        return _fatal(Emitter(_requested_backend(argv), t0=t0), "bad_args", str(exc), 2)

    if plan.cpus is not None:
        # before CUDA starts its threads, so they inherit the mask too
        try:
            os.sched_setaffinity(0, plan.cpus)
        except (OSError, ValueError) as exc:
            return _fatal(Emitter(_requested_backend(argv), t0=t0), "bad_args",
                          f"--cpus {format_cpu_list(plan.cpus)}: cannot pin the engine "
                          f"there ({exc.strerror if isinstance(exc, OSError) else exc}); "
                          f"this host allows CPUs {format_cpu_list(os.sched_getaffinity(0))}", 2)
    backend, em, code = select_backend(plan, t0)
    if backend is None:
        return code
    try:
        return _run(plan, backend, em, stop)
    except KeyboardInterrupt:  # a second signal while the first was being honoured
        em.emit("done", status="interrupted", exit_code=signals.exit_code(stop) if stop else 130,
                counts=dict(em.counts))
        return signals.exit_code(stop) if stop else 130
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return _fatal(em, "workload_failed", f"engine failed: {type(exc).__name__}: {exc}", 1)


def _gpu_facts(backend, nv) -> tuple[list[dict], list | None, int | None]:
    """(host.gpus, host.p2p, host.nvml_gpu_count): every visible device, never raising."""
    if backend.name != "cupy":
        return backend.gpus(), None, None
    try:
        gpus = cupy_gpus(backend.cp, nv)
    except Exception as exc:
        _note(f"could not list the visible GPUs: {type(exc).__name__}: {exc}")
        gpus = []
    try:
        p2p = cupy_p2p_matrix(backend.cp, len(gpus)) if gpus else None
    except Exception:
        p2p = None
    return gpus, p2p, nv.query("nvmlDeviceGetCount") if nv is not None else None


def _run(plan, backend, em: Emitter, stop: StopFlag) -> int:

    nv = handle = None
    virt_mode = nvml_version = None
    mig_instance = False
    if backend.name == "cupy":
        nv = NVML()
        if nv.available:
            handle, mig_instance = nvml_handle(nv, backend.uuid, backend.pci_bus_id)
            if handle is None and os.environ.get("CUDA_VISIBLE_DEVICES") is None:
                handle = nv.query("nvmlDeviceGetHandleByIndex", backend.ordinal)
            virt_mode = nv.query("nvmlDeviceGetVirtualizationMode", handle) if handle else None
            nvml_version = nv.query("nvmlSystemGetNVMLVersion")
        device = backend.device_facts(nv, handle)
        device["mig_instance"] = mig_instance
        if mig_instance and str(device.get("uuid") or "").startswith("GPU-"):
            device["uuid"] = "MIG-" + device["uuid"][4:]
    else:
        device = backend.device_facts(cpu_model())
    host = host_facts(nvml_virt_mode=virt_mode, nvml_version=nvml_version)
    host["gpus"], host["p2p"], host["nvml_gpu_count"] = _gpu_facts(backend, nv)
    if plan.list_devices:
        plan_facts = plan.as_dict()
        plan_facts["variants"] = []
        plan_facts["telemetry"] = False
        em.emit("hello", engine_version=__version__, device=device, host=host, plan=plan_facts)
        em.emit("done", status="ok", exit_code=0, counts=dict(em.counts))
        if nv is not None:
            nv.shutdown()
        return 0
    variants = build_variants(plan, backend.name)
    telemetry_on = nv is not None and handle is not None and plan.telemetry_interval > 0
    plan_facts = plan.as_dict()
    plan_facts["variants"] = [{"workload": v.workload, "variant": v.name} for v in variants]
    plan_facts["telemetry"] = telemetry_on
    em.emit("hello", engine_version=__version__, device=device, host=host, plan=plan_facts)
    if nv is not None and (not nv.available or handle is None):
        em.emit("error", code="nvml", fatal=False,
                message=f"NVML unavailable, no telemetry or throttle checks: "
                        f"{nv.error or 'no NVML handle for ' + str(backend.uuid)}")

    telemetry = None
    if telemetry_on:
        telemetry = TelemetryThread(nv, handle, em.emit, plan.telemetry_interval)
        telemetry.start()
    runner = Runner(plan, em, stop, telemetry)
    failed = False
    try:
        for v in variants:
            if stop:
                break
            if v.workload in RUN:
                failed |= not RUN[v.workload](runner, backend, v)
                continue
            prep = None
            try:
                prep = PREPARE[v.workload](backend, v, plan)
                runner.run_prepared(v, prep)
            except KeyboardInterrupt:
                raise
            except NotApplicable as exc:
                _note(str(exc))
                em.emit("error", code="not_applicable", fatal=False, message=str(exc))
            except Exception as exc:
                if backend.is_oom(exc):
                    em.emit("error", code="oom", fatal=False,
                            message=f"{v.workload} {v.name}: out of memory ({exc})")
                else:
                    traceback.print_exc(file=sys.stderr)
                    em.emit("error", code="workload_failed", fatal=False,
                            message=f"{v.workload} {v.name}: {type(exc).__name__}: {exc}")
                    failed = True
            finally:
                prep = None
                try:
                    backend.release()
                except Exception:
                    pass
    finally:
        if telemetry is not None:
            telemetry.stop()
    if stop:
        status, code = "interrupted", signals.exit_code(stop)
    elif failed:
        status, code = "error", 1
    else:
        status, code = "ok", 0
    em.emit("done", status=status, exit_code=code, counts=dict(em.counts))
    if nv is not None:
        nv.shutdown()
    return code
