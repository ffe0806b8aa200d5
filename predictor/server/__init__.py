"""The KServe side: the model, REST routes, ASGI front door, gRPC, metrics and logs."""
