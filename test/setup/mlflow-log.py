"""Logs models to a real MLflow server for mldeploy's MLflow tests (run with the cached mlflow).

  mlflow-log.py onnx FILE NAME [--alias A] [--columns a,b,c] [--example JSON] [--scale K]
      logs FILE with mlflow.onnx.log_model, registers it as NAME (and sets alias A)
  mlflow-log.py sklearn
      logs a small scikit-learn pipeline with mlflow.sklearn.log_model
  mlflow-log.py save FILE DIR [--columns a,b,c] [--example JSON] [--corrupt]
      saves FILE as an MLflow model directory DIR with mlflow.onnx.save_model (no server);
      --corrupt then overwrites its ONNX file with bytes that are not a model
  mlflow-log.py raw DIR NAME [--alias A]
      logs DIR's files as run artifacts under 'model' and registers runs:/<run>/model as NAME

Several commands may be joined with '+' (one Python start-up for all of them). Prints one
JSON array, an object per command: the run id, the registered version, the logged model id.
The tracking server comes from MLFLOW_TRACKING_URI.
"""

import argparse
import json
import sys

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec


def register(source, name, alias):
    version = mlflow.register_model(source, name).version
    if alias:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
    return version


def onnx_model(args):
    """The ONNX model with a column signature and a one-row DataFrame example, as a user logs it."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(args.file)
    if args.scale != 1.0:
        # Another version of the same model: every weight (and so every prediction of a linear model) scaled.
        for i, init in enumerate(model.graph.initializer):
            values = numpy_helper.to_array(init)
            if values.dtype == np.float32:
                model.graph.initializer[i].CopyFrom(numpy_helper.from_array(values * np.float32(args.scale), init.name))
    signature = None
    example = None
    if args.columns:
        out = model.graph.output[0].name
        columns = Schema([ColSpec("float", c) for c in args.columns.split(",")])
        signature = ModelSignature(inputs=columns, outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 1), out)]))
    if args.example:
        example = pd.DataFrame([json.loads(args.example)])
    return model, signature, example


def log_onnx(args):
    model, signature, example = onnx_model(args)
    with mlflow.start_run() as run:
        info = mlflow.onnx.log_model(model, name="model", signature=signature, input_example=example)
    version = register(info.model_uri, args.name, args.alias)
    return {"runId": run.info.run_id, "version": int(version), "modelId": info.model_id}


def log_sklearn(_args):
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.normal(size=(50, 2)), columns=["x1", "x2"])
    y = 2 * x["x1"] - x["x2"]
    pipeline = make_pipeline(StandardScaler(), LinearRegression()).fit(x, y)
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(pipeline, name="model", input_example=x.head(2))
    return {"runId": run.info.run_id, "modelId": info.model_id}


def save_onnx(args):
    model, signature, example = onnx_model(args)
    mlflow.onnx.save_model(model, args.dir, signature=signature, input_example=example)
    if args.corrupt:
        with open(f"{args.dir}/model.onnx", "wb") as f:
            f.write(b"not an onnx file")
    return {"dir": args.dir}


def log_raw(args):
    with mlflow.start_run() as run:
        mlflow.log_artifacts(args.dir, "model")
    version = register(f"runs:/{run.info.run_id}/model", args.name, args.alias)
    return {"runId": run.info.run_id, "version": int(version)}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    onnx_cmd = sub.add_parser("onnx")
    onnx_cmd.add_argument("file")
    onnx_cmd.add_argument("name")
    onnx_cmd.add_argument("--alias")
    onnx_cmd.add_argument("--columns")
    onnx_cmd.add_argument("--example")
    onnx_cmd.add_argument("--scale", type=float, default=1.0)
    save_cmd = sub.add_parser("save")
    save_cmd.add_argument("file")
    save_cmd.add_argument("dir")
    save_cmd.add_argument("--columns")
    save_cmd.add_argument("--example")
    save_cmd.add_argument("--scale", type=float, default=1.0)
    save_cmd.add_argument("--corrupt", action="store_true")
    sub.add_parser("sklearn")
    raw_cmd = sub.add_parser("raw")
    raw_cmd.add_argument("dir")
    raw_cmd.add_argument("name")
    raw_cmd.add_argument("--alias")
    commands = [[]]
    for word in sys.argv[1:]:
        if word == "+":
            commands.append([])
        else:
            commands[-1].append(word)
    steps = {"onnx": log_onnx, "save": save_onnx, "sklearn": log_sklearn, "raw": log_raw}
    results = []
    for words in commands:
        args = parser.parse_args(words)
        results.append(steps[args.what](args))
    print(json.dumps(results))


main()
