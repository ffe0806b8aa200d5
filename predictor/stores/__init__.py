"""Where bytes live.

URIs (pure), the bucket stores behind one protocol, MLflow's registry, and fetching a model onto
local disk. Nothing here unpickles.
"""
