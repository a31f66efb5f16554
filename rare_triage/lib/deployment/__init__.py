"""The deployment domain: the model bundle, ONNX export, manifest, bucket, publication and promotion."""
