"""The stock-equivalent baseline: a plain ``kserve.Model`` that joblib-loads a model and predicts.

It does what KServe's own sklearn runtime does on the request path (decode ``instances`` or the
first v2 input to numpy, ``predict``, encode ``predictions`` / ``output-0``), with KServe's
default server settings, so the benchmark compares our predictor with what users get today.

    python bench/baseline.py --model_name m --model_dir DIR --http_port 8080 --grpc_port 8081
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from kserve import Model, ModelServer, model_server
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse


class BaselineModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.estimator: Any = None

    def load(self) -> bool:
        (path,) = [
            p for p in self.model_dir.iterdir() if p.suffix in (".joblib", ".pkl", ".pickle")
        ]
        self.estimator = joblib.load(path)
        self.ready = True
        return True

    async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        if isinstance(payload, InferRequest):
            features = payload.inputs[0].as_numpy()
            result = np.asarray(self.estimator.predict(features))
            output = InferOutput(name="output-0", shape=list(result.shape), datatype="FP64")
            output.set_data_from_numpy(result.astype(np.float64), binary_data=False)
            return InferResponse(
                model_name=self.name, infer_outputs=[output], response_id=payload.id or ""
            )
        instances = payload["instances"] if "instances" in payload else payload["inputs"]
        return {"predictions": self.estimator.predict(np.asarray(instances)).tolist()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_dir", type=Path, required=True)
    args, _ = parser.parse_known_args()
    model = BaselineModel(args.model_name, args.model_dir)
    model.load()
    ModelServer().start([model])
