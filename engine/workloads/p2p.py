"""p2p: peer-to-peer bandwidth and latency between every ordered pair of GPUs.

For each pair src→dst and each mode (`peer`: peer access enabled both ways;
`nopeer`: disabled, so the driver stages the copy through the host), one
variant `src->dst-mode` copies the largest --sizes buffer with
cudaMemcpyPeerAsync, timed like h2d/d2h (CUDA events on src's stream for GB/s,
perf_counter_ns per copy for latency). Fewer than two GPUs, or the CPU backend:
a non-fatal `error` with code `not_applicable`, and the run goes on.
"""
from __future__ import annotations

from ..plan import Variant
from ..measure import Prepared

PEER_ALREADY_ENABLED, PEER_NOT_ENABLED = 704, 705


def _set_peer(rt, device: int, peer: int, enable: bool) -> None:
    rt.setDevice(device)
    try:
        if enable:
            rt.deviceEnablePeerAccess(peer)
        else:
            rt.deviceDisablePeerAccess(peer)
    except rt.CUDARuntimeError as exc:
        if getattr(exc, "status", None) not in (PEER_ALREADY_ENABLED, PEER_NOT_ENABLED):
            raise


def run(runner, backend, variant) -> bool:
    emit = runner.emitter.emit
    count = backend.device_count
    if backend.name != "cupy" or count < 2:
        emit("error", code="not_applicable", fatal=False,
             message=f"p2p needs two or more GPUs ({count} visible on backend {backend.name})")
        return True
    cp, rt = backend.cp, backend.rt
    size = max(runner.plan.sizes)
    ok = True
    try:
        for src in range(count):
            for dst in range(count):
                if src == dst:
                    continue
                can = bool(rt.deviceCanAccessPeer(dst, src)) and bool(rt.deviceCanAccessPeer(src, dst))
                for mode in ("peer", "nopeer"):
                    if runner.stop:
                        return ok
                    v = Variant("p2p", f"{src}->{dst}-{mode}",
                                {"src": src, "dst": dst, "peer_access": mode == "peer",
                                 "can_access_peer": can, "size_bytes": size})
                    if mode == "peer" and not can:
                        emit("error", code="not_applicable", fatal=False,
                             message=f"p2p {v.name}: no peer access between GPU {src} and GPU {dst}")
                        continue
                    try:
                        _set_peer(rt, src, dst, mode == "peer")
                        _set_peer(rt, dst, src, mode == "peer")
                        with cp.cuda.Device(dst):
                            dst_buf = cp.empty(size, dtype=cp.uint8)
                            dst_buf.fill(0)
                        with cp.cuda.Device(src):
                            src_buf = cp.empty(size, dtype=cp.uint8)
                            src_buf.fill(1)
                            stream = cp.cuda.Stream.null
                            memcpy_peer = rt.memcpyPeerAsync
                            dptr, sptr, sp = dst_buf.data.ptr, src_buf.data.ptr, stream.ptr

                            def copy(dptr=dptr, sptr=sptr, sp=sp):
                                memcpy_peer(dptr, dst, sptr, src, size, sp)
                            timer = backend.timer()
                            prep = Prepared(timer.wrap(copy, stream.synchronize), bytes_per_op=size,
                                            timer=timer, keep=(src_buf, dst_buf),
                                            timing="perf_counter_ns per copy; gbps from cuda events")
                            runner.run_prepared(v, prep)
                        del prep, src_buf, dst_buf
                    except Exception as exc:
                        if backend.is_oom(exc):
                            emit("error", code="oom", fatal=False, message=f"p2p {v.name}: {exc}")
                        else:
                            emit("error", code="workload_failed", fatal=False,
                                 message=f"p2p {v.name}: {type(exc).__name__}: {exc}")
                            ok = False
    finally:
        backend.device.use()
        rt.setDevice(backend.ordinal)
    return ok
