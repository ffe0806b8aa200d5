"""Canary rollouts for InferenceServices: read status, plan patches, analyse metrics, act.

Pure modules (``status``, ``patches``, ``analysis``) decide; thin adapters (``kube`` for the
Kubernetes API, ``prometheus`` for metrics) talk to the outside; ``controller`` makes each
change and ``auto`` drives the changes from the analysis.
Nothing here is imported by the serving path.
"""
