"""Model artifacts: URIs, storage adapters, the bundle manifest, loading and publishing."""
