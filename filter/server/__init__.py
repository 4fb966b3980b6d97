"""gRPC servicers: thin adapters between Envoy's protos and filter.pipeline."""
