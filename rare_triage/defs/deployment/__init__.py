"""Wiring of deployment: ONNX export, publication to the bucket, promotion and rollback."""
