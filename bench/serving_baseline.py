"""The seed design of the service, made real for the benchmark: FastAPI + uvicorn (one worker) calling the native
scikit-learn pipeline's predict_proba, row by row, on the same model version and the same encoding.

    python bench/serving_baseline.py --bucket B --env dev --tracking-uri URI --port P     (the platform's .venv)

POST /v1/predict takes the same `Encounter` JSON, decoded and validated by the same msgspec Struct (cheaper than
a pydantic model: the baseline is not handicapped by its validation), encoded by the service's own `Encoder`
from the version's manifest and phenotype encoding, turned back into the DataFrame the pipeline takes
(`serving_model.FrameDecoder`) and scored by the pipeline of that version from MLflow, every step on one thread.
It answers the class probabilities, the predicted class and the orphan flag; no prediction log.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec
import uvicorn
from fastapi import FastAPI, Request, Response
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `serving` from the repository, beside rare_triage

from serving_model import FrameDecoder, load_native

from serving.contract import Encounter
from serving.decision import DecisionPolicy, decide
from serving.encoding import Encoder

MODELS = "models/rare-triage"


def read_version(bucket: Path, env: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and phenotype encoding of the version `env` points at in a local bucket (format 2)."""
    root = bucket / MODELS
    version = json.loads((root / "env" / f"{env}.json").read_text(encoding="utf-8"))["version"]
    manifest = json.loads((root / version / "manifest.json").read_text(encoding="utf-8"))
    entry = manifest["files"]["phenotype_encoding"]
    return manifest, json.loads((root / version / entry["file"]).read_text(encoding="utf-8"))


def build_app(manifest: dict[str, Any], phenotype_encoding: dict[str, Any], pipeline: Any) -> FastAPI:
    encoder = Encoder(manifest, phenotype_encoding)
    policy = DecisionPolicy.from_manifest(manifest)
    frames = FrameDecoder.from_manifest(manifest)
    labels = list(manifest["class_labels"])
    decoder = msgspec.json.Decoder(Encounter)
    app = FastAPI(title="rare-triage seed design (benchmark baseline)")

    @app.post("/v1/predict")
    async def predict(request: Request) -> Response:
        try:
            encounter = decoder.decode(await request.body())
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return Response(json.dumps({"detail": str(exc)}), status_code=422, media_type="application/json")
        matrix = encoder.encode([encounter]).matrix
        proba = pipeline.predict_proba(frames.frame(matrix))
        decision = decide(proba, policy)
        body = {
            "class": decision.labels[0],
            "probabilities": dict(zip(labels, proba[0].astype(float).tolist(), strict=True)),
            "orphan_flag": bool(decision.orphan_flag[0]),
        }
        return Response(json.dumps(body), media_type="application/json")

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bucket", type=Path, required=True)
    parser.add_argument("--env", default="dev")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    manifest, phenotype_encoding = read_version(args.bucket, args.env)
    if not manifest.get("mlflow_run_id"):
        print("baseline: the version has no mlflow_run_id, no native pipeline to load", file=sys.stderr)
        return 2
    pipeline = load_native(args.tracking_uri, manifest["mlflow_run_id"])
    threadpool_limits(1)  # BLAS / OpenMP pools of this process: one core, as the service has
    uvicorn.run(build_app(manifest, phenotype_encoding, pipeline), host="127.0.0.1", port=args.port, workers=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
