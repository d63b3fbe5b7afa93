"""`k8s`: the engine as a Kubernetes pod, its stdout followed through the pod log.

    launcher = K8sLauncher.from_config(cluster, scenario)   # launcher.py
    session = await launcher.start(request)      # ConfigMap (once per launcher) + Pod
    async for event in session.events(): ...      # pod phases as Status, then the engine's stream

The engine's sources go into a ConfigMap of the launcher's own, named by their content
hash and the launcher's id (or the image has the engine baked in); a Pod asks for
`nvidia.com/gpu`, optionally a runtimeClassName (hypervisor layer), node selector,
tolerations and the GPU proxy's hostPath library with LD_PRELOAD (proxy layer). A watch on
the run's label follows the pod; when it runs, its log is followed and every line goes to
the stream parser. Whatever the outcome, the Pod (and the ConfigMap, when none of the
launcher's sessions still uses it) is deleted before the session reports its end;
`cancel()` deletes the running pod (SIGTERM: the engine writes its partial result) and then
makes sure it is gone. `K8sLauncher(..., workload="job")` wraps the pod in a batch/v1 Job
(backoffLimit 0) and follows the pod the Job creates.

The modules, each one job:
    api        the blocking client: configuration, raw JSON calls, errors as one line
    streams    the pod log and the pod watch, each read in a thread of its own
    spec       the manifests (engine ConfigMap, Pod, Job) as plain dicts
    pods       a session's pod: its state in words, waiting until it starts, deleting it
    session    the engine's stream through the pod log, and how the run ended
    launcher   K8sLauncher: the client, the ConfigMap, the watches and the heartbeat it shares
    nodes      run_on_nodes: one pod per GPU node, for fleets
    heartbeat  owner and heartbeat annotations, renewed from a thread; is a run alive?
    cleanup    `gpubench cleanup`: remove what gone runs left behind
"""
