"""The engine's device facts: --list-devices, fake CPU devices, host.gpus/p2p, NVLink readings."""
from __future__ import annotations

from tests.support.engine_run import run_engine

from engine import telemetry
from engine.protocol import validate_line

FAST = ("--backend", "numpy-cpu", "--workloads", "launch", "--duration", "0.1", "--warmup", "0",
        "--repeats", "1", "--min-window", "0", "--telemetry-interval", "0")


def test_list_devices_with_three_fake_devices_emits_hello_then_done():
    proc, lines = run_engine("--backend", "numpy-cpu", "--list-devices",
                             env={"GPUBENCH_FAKE_DEVICES": "3"})
    assert proc.returncode == 0, proc.stderr
    for line in lines:
        validate_line(line)
    assert [ln["type"] for ln in lines] == ["hello", "done"]
    hello, done = lines
    gpus = hello["host"]["gpus"]
    assert [g["index"] for g in gpus] == [0, 1, 2]
    assert [g["uuid"] for g in gpus] == ["CPU-FAKE-0", "CPU-FAKE-1", "CPU-FAKE-2"]
    assert gpus[1]["name"] == "CPU (numpy-cpu) fake device 1"
    assert set(gpus[0]) == {"index", "uuid", "name", "pci_bus_id", "memory_total_mib",
                            "mig_mode", "mig_instance"}
    assert hello["host"]["p2p"] is None                        # no peer access on the CPU
    assert hello["plan"]["variants"] == [] and hello["plan"]["list_devices"] is True
    assert done["status"] == "ok" and done["exit_code"] == 0


def test_every_hello_carries_host_gpus_empty_without_fake_devices():
    proc, lines = run_engine(*FAST)
    assert proc.returncode == 0, proc.stderr
    hello = lines[0]
    assert hello["host"]["gpus"] == [] and hello["host"]["p2p"] is None
    assert hello["device"]["uuid"] is None and hello["device"]["index"] is None
    assert any(ln["type"] == "result" for ln in lines)


def test_device_by_index_or_uuid_tags_hello_device():
    for arg in ("2", "CPU-FAKE-2", "cpu-fake-2"):
        proc, lines = run_engine(*FAST, "--device", arg, env={"GPUBENCH_FAKE_DEVICES": "3"})
        assert proc.returncode == 0, proc.stderr
        dev = lines[0]["device"]
        assert (dev["index"], dev["uuid"], dev["fake_device"]) == (2, "CPU-FAKE-2", True)
        assert dev["name"] == "CPU (numpy-cpu) fake device 2" and dev["cpu_model"]
        assert lines[0]["backend"] == "numpy-cpu"
        assert len(lines[0]["host"]["gpus"]) == 3


def test_unknown_fake_device_is_a_fatal_one_line_error():
    proc, lines = run_engine(*FAST, "--device", "7", env={"GPUBENCH_FAKE_DEVICES": "2"})
    assert proc.returncode == 2
    assert [ln["type"] for ln in lines] == ["error", "done"]
    assert lines[0]["code"] == "no_gpu" and "CPU-FAKE-1" in lines[0]["message"]


def test_p2p_on_the_cpu_with_fake_devices_is_not_applicable():
    proc, lines = run_engine(*FAST[:3], "p2p", *FAST[4:], env={"GPUBENCH_FAKE_DEVICES": "2"})
    assert proc.returncode == 0, proc.stderr
    errors = [ln for ln in lines if ln["type"] == "error"]
    assert errors and errors[0]["code"] == "not_applicable" and not errors[0]["fatal"]
    assert not [ln for ln in lines if ln["type"] == "result"]


# ---- NVLink readings through the NA-returning NVML wrapper -----------------------------------

class _NVMLError(Exception):
    pass


class NoNvLinkPynvml:
    """A PCIe GPU: NVLink state and field values are NotSupported."""

    def __init__(self):
        self.state_calls = 0

    def nvmlInit(self):
        pass

    def nvmlDeviceGetNvLinkState(self, handle, link):
        self.state_calls += 1
        raise _NVMLError("Not Supported")

    def nvmlDeviceGetFieldValues(self, handle, ids):
        raise _NVMLError("Not Supported")


class _Value:
    def __init__(self, ull):
        self.ullVal = ull


class _Field:
    def __init__(self, fid, scope, value, ret=0):
        self.fieldId, self.scopeId, self.value, self.nvmlReturn = fid, scope, _Value(value), ret


class NvLinkPynvml(NoNvLinkPynvml):
    """Two active links (0 and 1); counters grow by 1000 KiB per reading."""

    def __init__(self):
        super().__init__()
        self.reads = 0

    def nvmlDeviceGetNvLinkState(self, handle, link):
        self.state_calls += 1
        if link < 2:
            return 1
        raise _NVMLError("Invalid Argument")

    def nvmlDeviceGetFieldValues(self, handle, ids):
        self.reads += 1
        return [_Field(f, s, 1000 * self.reads) for f, s in ids]


def test_nvlink_readings_are_null_on_a_gpu_without_nvlink_and_probed_once():
    fake = NoNvLinkPynvml()
    nv = telemetry.NVML(module=fake, log=lambda m: None)
    reader = telemetry.NvLinkReader()
    assert reader.read(nv, "h") is None
    probes = fake.state_calls
    assert reader.read(nv, "h") is None and fake.state_calls == probes   # no more queries
    r = telemetry.read_telemetry(nv, "h", reader)
    assert r["nvlink"] is None


def test_nvlink_readings_are_null_without_pynvml():
    nv = telemetry.NVML(module=None, log=lambda m: None)
    nv.available = False                           # as on the CPU: no NVML at all
    assert telemetry.NvLinkReader().read(nv, None) is None


def test_nvlink_readings_per_link_with_rates_from_counter_deltas():
    clock = iter([10.0, 11.0]).__next__
    nv = telemetry.NVML(module=NvLinkPynvml(), log=lambda m: None)
    reader = telemetry.NvLinkReader(clock=clock)
    first = reader.read(nv, "h")
    assert [ln["link"] for ln in first] == [0, 1]
    assert all(ln["active"] is True and ln["tx_kbps"] is None for ln in first)
    second = reader.read(nv, "h")
    assert second[0]["tx_kbps"] == 1024.0 and second[1]["rx_kbps"] == 1024.0   # 1000 KiB in 1 s
