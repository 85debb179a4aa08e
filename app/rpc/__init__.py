"""The Open Inference Protocol over gRPC: Triton's `GRPCInferenceService` (`service`), its
tensor codec (`tensors`), status codes (`status`), API-key policy (`auth`), the standard
health service (`health`) and the server that runs them in the HTTP service's event loop
(`server`). Code generated from the service definition is in `generated` (see
`scripts/generate_protos.py`); docs/grpc.md is the user's guide."""
