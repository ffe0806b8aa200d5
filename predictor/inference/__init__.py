"""The pure request path: signature, features, batching, caching and the estimator engines."""
