"""Model serving: ONNX sessions, the ANN index, the registry client and the versions held.

Light to import for what it is (onnxruntime and hnswlib), and imported only by the processes
that serve models; the filtering service and the stream workers never import it.
"""
