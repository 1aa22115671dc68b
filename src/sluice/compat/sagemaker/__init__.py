"""SageMaker-compatible API: control plane (AWS JSON 1.1) and runtime (rest-json)."""
