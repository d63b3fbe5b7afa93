"""The `k8s` launcher: the engine as a Kubernetes pod."""
