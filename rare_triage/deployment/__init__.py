"""Deployment: ONNX export with a blocking parity check, publication to the bucket, gated promotion, rollback."""

from rare_triage.deployment.assets import onnx_model, published_model
from rare_triage.deployment.checks import dev_serves_published, onnx_parity, onnx_serving_speed, onnx_size
from rare_triage.deployment.jobs import promote_to_prod_job, rollback_job
from rare_triage.deployment.resources import ModelBucketResource, build_bucket_resource, build_deployment_resources

DEPLOYMENT_ASSETS = [onnx_model, published_model]
DEPLOYMENT_CHECKS = [onnx_parity, onnx_size, onnx_serving_speed, dev_serves_published]
DEPLOYMENT_JOBS = [promote_to_prod_job, rollback_job]

__all__ = [
    "DEPLOYMENT_ASSETS",
    "DEPLOYMENT_CHECKS",
    "DEPLOYMENT_JOBS",
    "ModelBucketResource",
    "build_bucket_resource",
    "build_deployment_resources",
]
