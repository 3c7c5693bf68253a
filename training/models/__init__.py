"""PyTorch models: two-tower retrieval and the multi-task ranker (exported to ONNX)."""
