"""A worker process of the prediction-log tests: `python -m serving.tests.log_writer FOLDER ENV WORKER N MAX_BYTES`
appends N records (request ids `<WORKER>-<i>`, lines of varying length) to the shared log, as a service worker."""

import datetime as dt
import sys
from pathlib import Path

from serving.prediction_log import PredictionLog, PredictionRecord


def record(worker: str, index: int) -> PredictionRecord:
    """A record whose line length varies from about 300 bytes to 2.5 KB with `index`."""
    return PredictionRecord(
        timestamp=dt.datetime.now(dt.UTC),
        request_id=f"{worker}-{index}",
        model_version="v1-0123456789ab",
        inputs={
            "age": index % 90,
            "sex": "F",
            "phenotypes": ["HP:0001250"] * (index % 7 * 10),
            "note": "x" * (index % 13),
        },
        probabilities={"none": 0.5, "common_mild": 0.2, "common_acute": 0.1, "common_chronic": 0.1, "orphan": 0.1},
        predicted_class="none",
        orphan_flag=False,
        needs_review=index % 2 == 0,
        latency_ms=0.25,
    )


def main(argv: list[str]) -> None:
    folder, env, worker, count, max_bytes = argv
    with PredictionLog(Path(folder), env, max_bytes=int(max_bytes), hourly=True) as log:
        for index in range(int(count)):
            log.write(record(worker, index))


if __name__ == "__main__":
    main(sys.argv[1:])
