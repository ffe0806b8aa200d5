"""Publishing a bundle.

Staged, loaded and accepted with the server's own checks, then written create-only to a bucket
or registered in MLflow's registry.
"""
