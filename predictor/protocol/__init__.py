"""The KServe v1, v2 JSON and v2 gRPC codecs: payloads in, batches out, results back."""
