"""Many models in one process: a folder of models, loaded on demand within a budget.

``names`` checks a model name before it goes near a store; ``catalog`` lists the repository's
models (a local folder, ``/mnt/models``, ``gs://`` or ``s3://``); ``budget`` decides which idle
model makes room (least recently used first); ``pool`` loads each model once, however many
requests ask for it at once, lends it to requests, and unloads what the budget evicts. The server
adapts the pool to KServe's model registry (``predictor.server.model_store``).
"""
