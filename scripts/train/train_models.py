#!/usr/bin/env python3
"""Train the three demo models on synthetic rides and export them to ONNX.

Writes models/{trip-duration,fare,tip}.onnx and their .spec.json next to them.
Training data comes from `npx tsx scripts/export-rides.ts` (2024-01 for training,
2024-02 held out), so the models see exactly the rides mldeploy itself generates.
Seeds are fixed: a rerun with the pinned requirements writes identical files.

Run from the repository root:
    .venv-train/bin/python scripts/train/train_models.py
"""

from __future__ import annotations

import os

# single-threaded BLAS: reruns must write identical files, and threaded reductions may
# change the last bits of a result
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402  (after the thread settings, before numpy)
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType

ROOT = Path(__file__).resolve().parents[2]
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
EXAMPLE = {"PULocationID": 10, "DOLocationID": 50, "trip_distance": 40}
MAX_BYTES = 5 * 1024 * 1024

FARE_FIELDS = ["PULocationID", "DOLocationID", "trip_distance"]
# deliberately a different order than the fare model, to exercise spec mapping
TIP_FIELDS = ["trip_distance", "PULocationID", "DOLocationID"]


def load_rides(rows: int, month: str, seed: int) -> pd.DataFrame:
    cmd = ["npx", "--no-install", "tsx", "scripts/export-rides.ts",
           "--rows", str(rows), "--month", month, "--seed", str(seed)]
    print("+", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True).stdout
    df = pd.read_csv(io.BytesIO(out), parse_dates=["lpep_pickup_datetime", "lpep_dropoff_datetime"])
    if len(df) != rows:
        raise SystemExit(f"expected {rows} rows from export-rides, got {len(df)}")
    return df


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Course-style cleaning: keep rides lasting 1..60 minutes; add PU_DO and duration."""
    df = df.copy()
    df["duration"] = (df.lpep_dropoff_datetime - df.lpep_pickup_datetime).dt.total_seconds() / 60
    df = df[(df.duration >= 1) & (df.duration <= 60)].reset_index(drop=True)
    # same formatting as the spec's concat op (JavaScript prints integers without ".0")
    df["PU_DO"] = df.PULocationID.astype(str) + "_" + df.DOLocationID.astype(str)
    return df


def stabilise(linear_model) -> None:
    """Round a fitted linear model's coefficients to 1e-6.

    A guard for byte-identical reruns: last-bit differences in floating-point sums (thread
    count, SIMD paths) then cannot reach the file. Far below what the predictions resolve.
    """
    linear_model.coef_ = np.round(linear_model.coef_, 6)
    linear_model.intercept_ = np.round(linear_model.intercept_, 6)


def trip_duration_onnx(pipeline: Pipeline) -> onnx.ModelProto:
    """Export the fitted one-hot + linear-regression pipeline as a lookup-table graph.

    Why not skl2onnx: its export of this pipeline is OneHotEncoder -> Concat ->
    LinearRegressor, which materialises a dense N x C float matrix (C = number of PU_DO
    categories, about 13,000) and multiplies it by the coefficients, so scoring costs
    O(N x C) time and memory -- seconds for a few ten thousand rows. With one one-hot column
    and a linear model, exactly one category coefficient is non-zero per row, so the same
    prediction is

        variable = intercept + coef[PU_DO] + w * trip_distance

    where coef[PU_DO] is a string -> float lookup: an ai.onnx.ml LabelEncoder (keys_strings =
    the encoder's categories, values_floats = their coefficients), O(N) overall. Its
    default_float=0.0 gives a category the encoder never saw no contribution, which is what
    OneHotEncoder(handle_unknown='ignore') does (an all-zero row). Inputs and output keep the
    names, types and [N, 1] shapes of the skl2onnx export (LabelEncoder is elementwise).
    """
    features: ColumnTransformer = pipeline.named_steps["features"]
    reg: LinearRegression = pipeline.named_steps["regressor"]
    encoder: OneHotEncoder = features.named_transformers_["pu_do"]
    if encoder.drop_idx_ is not None or getattr(encoder, "infrequent_categories_", None) is not None:
        raise SystemExit("trip-duration export assumes OneHotEncoder without drop/infrequent categories")
    categories = [str(c) for c in encoder.categories_[0]]
    names = list(features.get_feature_names_out())
    expected = [f"pu_do__PU_DO_{c}" for c in categories] + ["distance__trip_distance"]
    coef = np.asarray(reg.coef_, dtype=np.float64).reshape(-1)
    if names != expected or coef.shape != (len(categories) + 1,):
        raise SystemExit("unexpected feature layout in the trip-duration pipeline")

    def scalar(name: str, value: float) -> onnx.TensorProto:  # [1, 1], broadcasts against [N, 1]
        return numpy_helper.from_array(np.array([[value]], dtype=np.float32), name)

    nodes = [
        helper.make_node("LabelEncoder", ["PU_DO"], ["pu_do_coef"], name="pu_do_lookup", domain="ai.onnx.ml",
                         keys_strings=categories, values_floats=[float(c) for c in coef[:-1]],
                         default_float=0.0),
        helper.make_node("Mul", ["trip_distance", "distance_coef"], ["distance_term"], name="distance_mul"),
        helper.make_node("Add", ["pu_do_coef", "distance_term"], ["linear_terms"], name="add_terms"),
        helper.make_node("Add", ["linear_terms", "intercept"], ["variable"], name="add_intercept"),
    ]
    graph = helper.make_graph(
        nodes, "trip_duration",
        inputs=[helper.make_tensor_value_info("PU_DO", TensorProto.STRING, [None, 1]),
                helper.make_tensor_value_info("trip_distance", TensorProto.FLOAT, [None, 1])],
        outputs=[helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        initializer=[scalar("distance_coef", float(coef[-1])), scalar("intercept", float(reg.intercept_))],
    )
    model = helper.make_model(
        graph, producer_name="mldeploy scripts/train/train_models.py",
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(TARGET_OPSET.items())],
    )
    model.ir_version = 8  # what opset 17 needs; loadable by every onnxruntime we target
    return model


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(mean_squared_error(y_true, y_pred)))


def save(model_proto: onnx.ModelProto, name: str, spec: dict) -> Path:
    path = ROOT / "models" / f"{name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    model_proto.doc_string = f"mldeploy demo model '{name}' trained on synthetic NYC green-taxi rides"
    # skl2onnx collects opset domains in a set, whose order varies between Python processes
    opsets = sorted((o.domain, o.version) for o in model_proto.opset_import)
    del model_proto.opset_import[:]
    model_proto.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    onnx.checker.check_model(model_proto)
    data = model_proto.SerializeToString()
    if len(data) >= MAX_BYTES:
        raise SystemExit(f"{path} is {len(data)} bytes, over the 5 MB budget")
    path.write_bytes(data)
    (ROOT / "models" / f"{name}.spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({len(data):,} bytes)", file=sys.stderr)
    return path


def check_onnx(path: Path, feeds: dict, expected: np.ndarray, atol: float) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = np.asarray(sess.run(None, feeds)[0], dtype=np.float64).reshape(-1)
    err = float(np.max(np.abs(got - np.asarray(expected, dtype=np.float64).reshape(-1))))
    if err > atol:
        raise SystemExit(f"{path.name}: onnxruntime differs from scikit-learn by {err} (> {atol})")
    print(f"  onnxruntime matches scikit-learn on {len(got)} held-out rows (max abs err {err:.2e})",
          file=sys.stderr)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-rows", type=int, default=60_000)
    ap.add_argument("--test-rows", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    train = prepare(load_rides(args.train_rows, "2024-01", args.seed))
    test = prepare(load_rides(args.test_rows, "2024-02", args.seed))
    print(f"train rows {len(train)}, held-out rows {len(test)} (after 1..60 min filter)", file=sys.stderr)
    n_train, n_test = int(len(train)), int(len(test))

    # ---- trip duration: one-hot PU_DO + distance -> linear regression (exported as a lookup) --
    dur = Pipeline([
        ("features", ColumnTransformer([
            ("pu_do", OneHotEncoder(handle_unknown="ignore"), ["PU_DO"]),
            ("distance", "passthrough", ["trip_distance"]),
        ])),
        ("regressor", LinearRegression()),
    ])
    dur_cols = ["PU_DO", "trip_distance"]
    dur.fit(train[dur_cols], train.duration)
    stabilise(dur.named_steps["regressor"])
    dur_pred = dur.predict(test[dur_cols])
    dur_rmse = rmse(test.duration, dur_pred)
    # not convert_sklearn: see trip_duration_onnx for why (dense one-hot is O(N x categories))
    dur_onx = trip_duration_onnx(dur)
    dur_spec = {
        "derived": [{"name": "PU_DO", "op": "concat", "fields": ["PULocationID", "DOLocationID"], "separator": "_"}],
        "inputs": [
            {"name": "PU_DO", "dtype": "string", "fields": ["PU_DO"]},
            {"name": "trip_distance", "dtype": "float32", "fields": ["trip_distance"]},
        ],
        "output": {"name": dur_onx.graph.output[0].name, "index": 0, "clip": {"min": 1, "max": 180}},
        "example": EXAMPLE,
        "metrics": {"rmse": round(dur_rmse, 4), "trained_rows": n_train, "heldout_rows": n_test},
    }
    p = save(dur_onx, "trip-duration", dur_spec)
    check_onnx(p, {
        "PU_DO": test[["PU_DO"]].to_numpy().astype(object),
        "trip_distance": test[["trip_distance"]].to_numpy().astype(np.float32),
    }, dur_pred, atol=1e-4)

    # ---- fare: gradient boosting on a float32 [N,3] matrix --------------------------------------
    fare = GradientBoostingRegressor(n_estimators=50, max_depth=6, learning_rate=0.15, random_state=0)
    fare.fit(train[FARE_FIELDS].to_numpy(np.float32), train.fare_amount)
    fare_pred = fare.predict(test[FARE_FIELDS].to_numpy(np.float32))
    fare_rmse = rmse(test.fare_amount, fare_pred)
    fare_onx = convert_sklearn(fare, name="fare", initial_types=[("features", FloatTensorType([None, 3]))],
                               target_opset=TARGET_OPSET)
    fare_spec = {
        "inputs": [{"name": "features", "dtype": "float32", "fields": FARE_FIELDS}],
        "output": {"name": fare_onx.graph.output[0].name, "index": 0, "clip": {"min": 0}},
        "example": EXAMPLE,
        "metrics": {"rmse": round(fare_rmse, 4), "trained_rows": n_train, "heldout_rows": n_test},
    }
    p = save(fare_onx, "fare", fare_spec)
    check_onnx(p, {"features": test[FARE_FIELDS].to_numpy(np.float32)}, fare_pred, atol=1e-3)

    # ---- tip: histogram gradient boosting on a float32 [N,3] matrix in another column order -----
    # (a float64 input would make skl2onnx emit a double TreeEnsembleRegressor that onnxruntime rejects)
    tip = HistGradientBoostingRegressor(max_iter=60, max_depth=5, learning_rate=0.1, random_state=0,
                                        early_stopping=False)
    tip.fit(train[TIP_FIELDS].to_numpy(np.float32), train.tip_amount)
    tip_pred = tip.predict(test[TIP_FIELDS].to_numpy(np.float32))
    tip_rmse = rmse(test.tip_amount, tip_pred)
    tip_onx = convert_sklearn(tip, name="tip", initial_types=[("X", FloatTensorType([None, 3]))],
                              target_opset=TARGET_OPSET)
    tip_spec = {
        "inputs": [{"name": "X", "dtype": "float32", "fields": TIP_FIELDS}],
        "output": {"name": tip_onx.graph.output[0].name, "index": 0, "clip": {"min": 0}},
        "example": EXAMPLE,
        "metrics": {"rmse": round(tip_rmse, 4), "trained_rows": n_train, "heldout_rows": n_test},
    }
    p = save(tip_onx, "tip", tip_spec)
    check_onnx(p, {"X": test[TIP_FIELDS].to_numpy(np.float32)}, tip_pred, atol=1e-3)

    # ---- the course's request must give plausible answers ----------------------------------------
    pu_do = f"{EXAMPLE['PULocationID']}_{EXAMPLE['DOLocationID']}"
    ex_dur = ort.InferenceSession(str(ROOT / "models/trip-duration.onnx")).run(None, {
        "PU_DO": np.array([[pu_do]], dtype=object),
        "trip_distance": np.array([[EXAMPLE["trip_distance"]]], dtype=np.float32),
    })[0].item()
    ex_fare = ort.InferenceSession(str(ROOT / "models/fare.onnx")).run(None, {
        "features": np.array([[EXAMPLE[f] for f in FARE_FIELDS]], dtype=np.float32)})[0].item()
    ex_tip = ort.InferenceSession(str(ROOT / "models/tip.onnx")).run(None, {
        "X": np.array([[EXAMPLE[f] for f in TIP_FIELDS]], dtype=np.float32)})[0].item()
    print(f"example {json.dumps(EXAMPLE)}: duration {ex_dur:.2f} min, fare {ex_fare:.2f}, tip {ex_tip:.2f}",
          file=sys.stderr)
    if not 1 <= ex_dur <= 180:
        raise SystemExit(f"implausible duration {ex_dur} for the example")
    print(json.dumps({"trip-duration": dur_rmse, "fare": fare_rmse, "tip": tip_rmse}))


if __name__ == "__main__":
    main()
