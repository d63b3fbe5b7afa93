"""Shared helpers of the tests (benchmarks/ use them too; nothing here imports benchmarks/).

sshd.py          a private OpenSSH sshd on 127.0.0.1
fleet_stream.py  simulated hosts' protocol v1 streams (HostProfile, StreamBuilder, complete_stream)
farm.py          a farm of simulated SSH hosts in worker processes (farm_host.py)
sshd_hosts.py    simulated hosts behind the private sshd, whose "python" is sim_engine.py
synth.py         result documents and session lines with a known truth
k8s_emulator.py  the Kubernetes API emulator (kmock) with a scripted kubelet
engine_run.py    run `python -m engine` as a subprocess and read its stream
fake_cuda.py     fixtures: the interposer, a fake CUDA driver and harness (C sources in csrc/)
own_lines.py     what our code wrote on stderr, less dependencies' warnings
"""
