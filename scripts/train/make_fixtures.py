#!/usr/bin/env python3
"""Build the small ONNX test fixtures in test/fixtures/models/.

Every fixture is made from fixed seeds, so reruns give the same files. Expected values
are written as JSON ({"records": [...], "predictions": [...]}) and checked here against
onnxruntime (max abs error 1e-5) before anything is written.

Run from the repository root:
    .venv-train/bin/python scripts/train/make_fixtures.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# single-threaded BLAS so reruns write identical files
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from onnx import TensorProto, helper, numpy_helper
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DictionaryType, FloatTensorType, StringTensorType

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "models"
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
OPSET_IMPORTS = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
ATOL = 1e-5


def write_model(name: str, model: onnx.ModelProto) -> Path:
    # skl2onnx collects opset domains in a set, whose order varies between Python processes
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    onnx.checker.check_model(model)
    path = OUT / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size:,} bytes)", file=sys.stderr)
    return path


def write_json(name: str, obj: dict) -> None:
    path = OUT / name
    path.write_text(json.dumps(obj, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


def check(path: Path, feeds: dict, expected, output: str | None = None, column: int | None = None) -> None:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run([output] if output else None, feeds)
    got = np.asarray(outs[0], dtype=np.float64)
    if column is not None:
        got = got[:, column]
    got = got.reshape(-1)
    err = float(np.max(np.abs(got - np.asarray(expected, dtype=np.float64))))
    if err > ATOL:
        raise SystemExit(f"{path.name}: onnxruntime differs from expected by {err}")
    print(f"  verified with onnxruntime: max abs err {err:.2e}", file=sys.stderr)


def stabilise(linear_model) -> None:
    """Round fitted coefficients to 1e-6, a guard for byte-identical reruns against
    last-bit floating-point differences."""
    linear_model.coef_ = np.round(linear_model.coef_, 6)
    linear_model.intercept_ = np.round(linear_model.intercept_, 6)


def col(values, dtype) -> np.ndarray:
    return np.asarray(values, dtype=dtype).reshape(-1, 1)


# ------------------------------------------------------------------------------------------------
def sk_pipeline() -> None:
    """ColumnTransformer(OneHotEncoder on a string column, StandardScaler on two floats) -> Ridge."""
    rng = np.random.RandomState(7)
    cities = np.array(["amsterdam", "berlin", "cairo", "delhi", "lima"])
    n = 400
    df = pd.DataFrame({
        "city": rng.choice(cities, n),
        "x1": np.round(rng.normal(0, 2, n), 3),
        "x2": np.round(rng.uniform(-1, 1, n), 3),
    })
    city_effect = {c: i * 0.75 for i, c in enumerate(cities)}
    y = df.city.map(city_effect) + 0.8 * df.x1 - 1.5 * df.x2 + rng.normal(0, 0.1, n)
    pipe = Pipeline([
        ("features", ColumnTransformer([
            ("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("scaled", StandardScaler(), ["x1", "x2"]),
        ])),
        ("ridge", Ridge(alpha=1.0)),
    ]).fit(df, y)
    stabilise(pipe.named_steps["ridge"])

    # values exactly representable in float32, so float32 ONNX and float64 sklearn agree closely;
    # the last record's city is unknown to the encoder (ignored: all-zero one-hot)
    rec_rng = np.random.RandomState(11)
    records = [
        {"city": str(rec_rng.choice(cities)), "x1": float(rec_rng.randint(-16, 16)) / 4,
         "x2": float(rec_rng.randint(-8, 8)) / 8}
        for _ in range(19)
    ] + [{"city": "zurich", "x1": 0.5, "x2": -0.25}]
    rec_df = pd.DataFrame(records)
    predictions = [float(v) for v in pipe.predict(rec_df)]

    onx = convert_sklearn(pipe, name="sk_pipeline", target_opset=TARGET_OPSET, initial_types=[
        ("city", StringTensorType([None, 1])),
        ("x1", FloatTensorType([None, 1])),
        ("x2", FloatTensorType([None, 1])),
    ])
    path = write_model("sk_pipeline", onx)
    check(path, {
        "city": rec_df[["city"]].to_numpy().astype(object),
        "x1": col(rec_df.x1, np.float32),
        "x2": col(rec_df.x2, np.float32),
    }, predictions)
    write_json("sk_pipeline.expected.json", {"records": records, "predictions": predictions})


# ------------------------------------------------------------------------------------------------
def classifiers() -> None:
    """StandardScaler -> LogisticRegression on two float columns, with and without ZipMap."""
    rng = np.random.RandomState(3)
    n = 300
    df = pd.DataFrame({"x1": rng.normal(0, 1, n), "x2": rng.normal(0, 1, n)})
    y = ((1.5 * df.x1 - df.x2 + rng.normal(0, 0.7, n)) > 0).astype(np.int64)

    def build():
        clf = LogisticRegression(random_state=0)
        pipe = Pipeline([
            ("features", ColumnTransformer([("scaled", StandardScaler(), ["x1", "x2"])])),
            ("clf", clf),
        ]).fit(df, y)
        stabilise(clf)
        return pipe, clf

    types = [("x1", FloatTensorType([None, 1])), ("x2", FloatTensorType([None, 1]))]

    pipe, _ = build()
    onx = convert_sklearn(pipe, name="zipmap_classifier", initial_types=types, target_opset=TARGET_OPSET)
    path = write_model("zipmap_classifier", onx)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    print(f"  outputs: {[(o.name, o.type) for o in sess.get_outputs()]}", file=sys.stderr)

    pipe, clf = build()
    onx = convert_sklearn(pipe, name="classifier_nozipmap", initial_types=types, target_opset=TARGET_OPSET,
                          options={id(clf): {"zipmap": False}})
    path = write_model("classifier_nozipmap", onx)
    records = [
        {"x1": -2.0, "x2": 1.0}, {"x1": -0.5, "x2": 0.25}, {"x1": 0.0, "x2": 0.0},
        {"x1": 0.75, "x2": -0.5}, {"x1": 2.5, "x2": 1.5}, {"x1": 1.0, "x2": 2.0},
    ]
    rec_df = pd.DataFrame(records)
    predictions = [float(v) for v in pipe.predict_proba(rec_df)[:, 1]]
    check(path, {"x1": col(rec_df.x1, np.float32), "x2": col(rec_df.x2, np.float32)},
          predictions, output="probabilities", column=1)
    write_json("classifier_nozipmap.expected.json", {
        "records": records,
        "predictions": predictions,
        "labels": [int(v) for v in pipe.predict(rec_df)],
    })
    # where the prediction lives: column 1 (class 1) of the probabilities output
    write_json("classifier_nozipmap.spec.json", {
        "inputs": [
            {"name": "x1", "dtype": "float32", "fields": ["x1"]},
            {"name": "x2", "dtype": "float32", "fields": ["x2"]},
        ],
        "output": {"name": "probabilities", "index": 1, "clip": {"min": 0, "max": 1}},
        "example": records[0],
    })


# ------------------------------------------------------------------------------------------------
def string_classifier() -> None:
    """Three classes with string labels (LogisticRegression, zipmap=False): a string label output."""
    rng = np.random.RandomState(11)
    n = 450
    df = pd.DataFrame({"x1": rng.normal(0, 1, n), "x2": rng.normal(0, 1, n)})
    score = 1.2 * df.x1 + 0.8 * df.x2 + rng.normal(0, 0.4, n)
    y = np.where(score < -0.6, "low", np.where(score > 0.6, "high", "mid"))
    clf = LogisticRegression(random_state=0)
    pipe = Pipeline([("scaled", ColumnTransformer([("s", StandardScaler(), ["x1", "x2"])])), ("clf", clf)]).fit(df, y)
    stabilise(clf)
    types = [("x1", FloatTensorType([None, 1])), ("x2", FloatTensorType([None, 1]))]
    onx = convert_sklearn(pipe, name="classifier_strings", initial_types=types, target_opset=TARGET_OPSET,
                          options={id(clf): {"zipmap": False}})
    path = write_model("classifier_strings", onx)
    records = [
        {"x1": -2.0, "x2": -1.0}, {"x1": -0.3, "x2": 0.1}, {"x1": 0.2, "x2": 0.3},
        {"x1": 1.5, "x2": 1.0}, {"x1": 0.9, "x2": -0.4}, {"x1": -1.0, "x2": 2.2},
    ]
    rec_df = pd.DataFrame(records)
    proba = pipe.predict_proba(rec_df)
    feeds = {"x1": col(rec_df.x1, np.float32), "x2": col(rec_df.x2, np.float32)}
    for c in range(proba.shape[1]):
        check(path, feeds, [float(v) for v in proba[:, c]], output="probabilities", column=c)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels = [str(v) for v in pipe.predict(rec_df)]
    assert [str(v) for v in sess.run(["label"], feeds)[0].reshape(-1)] == labels
    write_json("classifier_strings.expected.json", {
        "records": records,
        "classes": [str(c) for c in clf.classes_],
        "labels": labels,
        "probabilities": [[float(v) for v in row] for row in proba],
    })


# ------------------------------------------------------------------------------------------------
def dictvectorizer() -> None:
    """DictVectorizer -> LinearRegression: the ONNX input is a map(string, float)."""
    rng = np.random.RandomState(5)
    keys = ["a", "b", "c"]
    rows = [{k: float(rng.normal()) for k in keys if rng.rand() < 0.8} for _ in range(100)]
    y = [2 * r.get("a", 0) - r.get("b", 0) + 0.5 * r.get("c", 0) for r in rows]
    pipe = Pipeline([("dv", DictVectorizer(sparse=False)), ("lr", LinearRegression())]).fit(rows, y)
    stabilise(pipe.named_steps["lr"])
    onx = convert_sklearn(pipe, name="dictvectorizer", target_opset=TARGET_OPSET,
                          initial_types=[("input", DictionaryType(StringTensorType([]), FloatTensorType([])))])
    path = write_model("dictvectorizer", onx)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    print(f"  inputs: {[(i.name, i.type, i.shape) for i in sess.get_inputs()]}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------
def corrupt() -> None:
    data = np.random.RandomState(1234).bytes(200)
    path = OUT / "corrupt.onnx"
    path.write_bytes(data)
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - any load failure is what we want
        print(f"wrote {path.relative_to(ROOT)}; onnxruntime refuses it: {str(err)[:100]}", file=sys.stderr)
    else:
        raise SystemExit("corrupt.onnx unexpectedly loads")


# ------------------------------------------------------------------------------------------------
def plain_linear() -> None:
    """Plain ONNX (no ai.onnx.ml): y = x @ W + b, x float32 [N,3], y float32 [N,1]."""
    w = np.array([[0.5], [-1.25], [2.0]], dtype=np.float32)
    b = np.array([0.75], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"], name="matmul"),
            helper.make_node("Add", ["xw", "B"], ["y"], name="add_bias"),
        ],
        "plain_linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="mldeploy-fixtures", ir_version=8)
    path = write_model("plain_linear", model)
    rng = np.random.RandomState(21)
    records = [{"a": float(v[0]), "b": float(v[1]), "c": float(v[2])}
                for v in rng.randint(-20, 20, size=(10, 3)) / 4]
    x = np.array([[r["a"], r["b"], r["c"]] for r in records], dtype=np.float64)
    predictions = [float(v) for v in (x @ w.astype(np.float64) + b.astype(np.float64)).reshape(-1)]
    check(path, {"x": x.astype(np.float32)}, predictions)
    write_json("plain_linear.expected.json", {"records": records, "predictions": predictions})
    write_json("plain_linear.spec.json", {
        "inputs": [{"name": "x", "dtype": "float32", "fields": ["a", "b", "c"]}],
        "output": {"name": "y", "index": 0},
        "example": records[0],
    })


# ------------------------------------------------------------------------------------------------
def dtypes() -> None:
    """Inputs of every dtype: y = float(i)*2 + float(d) + float(b)*10 + label(s).

    i int64 [N,1], d float64 [N,1], b bool [N,1], s string [N,1] mapped by ai.onnx.ml
    LabelEncoder (red 1, green 2, blue 3, anything else -1); y float32 [N,1].
    """
    labels = {"red": 1.0, "green": 2.0, "blue": 3.0}
    nodes = [
        helper.make_node("Cast", ["i"], ["i_f"], to=TensorProto.FLOAT, name="cast_i"),
        helper.make_node("Cast", ["d"], ["d_f"], to=TensorProto.FLOAT, name="cast_d"),
        helper.make_node("Cast", ["b"], ["b_f"], to=TensorProto.FLOAT, name="cast_b"),
        helper.make_node("LabelEncoder", ["s"], ["s_f"], domain="ai.onnx.ml", name="encode_s",
                         keys_strings=list(labels), values_floats=list(labels.values()), default_float=-1.0),
        helper.make_node("Mul", ["i_f", "two"], ["i2"], name="mul_i"),
        helper.make_node("Mul", ["b_f", "ten"], ["b10"], name="mul_b"),
        helper.make_node("Add", ["i2", "d_f"], ["t1"], name="add_1"),
        helper.make_node("Add", ["t1", "b10"], ["t2"], name="add_2"),
        helper.make_node("Add", ["t2", "s_f"], ["y"], name="add_3"),
    ]
    graph = helper.make_graph(
        nodes, "dtypes",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, ["N", 1]),
            helper.make_tensor_value_info("d", TensorProto.DOUBLE, ["N", 1]),
            helper.make_tensor_value_info("b", TensorProto.BOOL, ["N", 1]),
            helper.make_tensor_value_info("s", TensorProto.STRING, ["N", 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        initializer=[
            numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
            numpy_helper.from_array(np.array(10.0, dtype=np.float32), "ten"),
        ],
    )
    model = helper.make_model(graph, opset_imports=OPSET_IMPORTS, producer_name="mldeploy-fixtures", ir_version=8)
    path = write_model("dtypes", model)
    records = [
        {"i": 0, "d": 0.0, "b": False, "s": "red"},
        {"i": 1, "d": 0.5, "b": True, "s": "green"},
        {"i": -3, "d": 1.25, "b": False, "s": "blue"},
        {"i": 7, "d": -2.75, "b": True, "s": "purple"},
        {"i": 123456, "d": 1000.5, "b": False, "s": ""},
    ]
    predictions = [r["i"] * 2 + r["d"] + (10 if r["b"] else 0) + labels.get(r["s"], -1.0) for r in records]
    check(path, {
        "i": col([r["i"] for r in records], np.int64),
        "d": col([r["d"] for r in records], np.float64),
        "b": col([r["b"] for r in records], np.bool_),
        "s": np.array([[r["s"]] for r in records], dtype=object),
    }, predictions)
    write_json("dtypes.expected.json", {"records": records, "predictions": predictions})


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    sk_pipeline()
    classifiers()
    string_classifier()
    dictvectorizer()
    corrupt()
    plain_linear()
    dtypes()


if __name__ == "__main__":
    main()
