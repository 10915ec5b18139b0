#!/usr/bin/env python3
"""Build the tensor datatype fixtures in test/fixtures/models/ (onnx and onnxruntime only).

- dtypes_wide.onnx: one [N, 1] input of each of FP16, INT8, INT16, INT32, UINT8, UINT16,
  UINT32 and UINT64 (the types dtypes.onnx does not cover); output y float32 [N, 1] is
  their sum, and each input comes back unchanged as <name>_out of its own type.
  dtypes_wide.expected.json holds records and y, checked against onnxruntime first.
- bfloat16_input.onnx and bfloat16_output.onnx: a BFLOAT16 input, and a BFLOAT16 output,
  which onnxruntime-node cannot feed or return: registration refuses them by name.

Graphs are written node by node, so reruns give the same bytes. Run from the repository root
with numpy, onnx and onnxruntime as pinned in scripts/train/requirements.txt:
    .venv-train/bin/python scripts/train/make_dtype_fixtures.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "models"
OPSET_IMPORTS = [helper.make_opsetid("", 17)]

# input name, ONNX type, numpy type
WIDE = [
    ("f16", TensorProto.FLOAT16, np.float16),
    ("i8", TensorProto.INT8, np.int8),
    ("i16", TensorProto.INT16, np.int16),
    ("i32", TensorProto.INT32, np.int32),
    ("u8", TensorProto.UINT8, np.uint8),
    ("u16", TensorProto.UINT16, np.uint16),
    ("u32", TensorProto.UINT32, np.uint32),
    ("u64", TensorProto.UINT64, np.uint64),
]

# Values every type holds exactly, and each type's extremes.
RECORDS = [
    {"f16": 0.5, "i8": -128, "i16": -32768, "i32": -2147483648, "u8": 0, "u16": 0, "u32": 0, "u64": 0},
    {"f16": -2.25, "i8": 127, "i16": 32767, "i32": 2147483647, "u8": 255, "u16": 65535, "u32": 4294967295, "u64": 9007199254740991},
    {"f16": 65504.0, "i8": 3, "i16": -7, "i32": 100000, "u8": 17, "u16": 1000, "u32": 123456, "u64": 42},
    {"f16": 1000.0, "i8": 0, "i16": 0, "i32": 0, "u8": 1, "u16": 2, "u32": 3, "u64": 4},
]


def write_model(name: str, model: onnx.ModelProto) -> Path:
    onnx.checker.check_model(model)
    path = OUT / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size:,} bytes)", file=sys.stderr)
    return path


def dtypes_wide() -> None:
    nodes = []
    for name, _, _ in WIDE:
        nodes.append(helper.make_node("Cast", [name], [f"{name}_f"], to=TensorProto.FLOAT, name=f"cast_{name}"))
        nodes.append(helper.make_node("Identity", [name], [f"{name}_out"], name=f"echo_{name}"))
    nodes.append(helper.make_node("Sum", [f"{name}_f" for name, _, _ in WIDE], ["y"], name="sum"))
    graph = helper.make_graph(
        nodes,
        "dtypes_wide",
        [helper.make_tensor_value_info(name, t, ["N", 1]) for name, t, _ in WIDE],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])]
        + [helper.make_tensor_value_info(f"{name}_out", t, ["N", 1]) for name, t, _ in WIDE],
    )
    model = helper.make_model(graph, opset_imports=OPSET_IMPORTS, producer_name="mldeploy-fixtures", ir_version=8)
    path = write_model("dtypes_wide", model)
    feeds = {name: np.array([[r[name]] for r in RECORDS], dtype=np_type) for name, _, np_type in WIDE}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    y = outs[0].reshape(-1).astype(np.float64)
    for (name, _, np_type), echoed in zip(WIDE, outs[1:]):
        if echoed.dtype != np_type or not np.array_equal(echoed, feeds[name]):
            raise SystemExit(f"{name}_out does not echo {name}")
    # The sum in float32, as the graph computes it, is what the tests expect.
    expected = np.zeros(len(RECORDS), dtype=np.float32)
    for name, _, np_type in WIDE:
        expected += feeds[name].reshape(-1).astype(np.float32)
    if not np.array_equal(expected, y.astype(np.float32)):
        raise SystemExit("dtypes_wide: onnxruntime's y differs from the float32 sum")
    print("  verified with onnxruntime: y and every echo exact", file=sys.stderr)
    (OUT / "dtypes_wide.expected.json").write_text(json.dumps({"records": RECORDS, "predictions": [float(v) for v in y]}, indent=2) + "\n")


def bfloat16() -> None:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT, name="cast")],
        "bfloat16_input",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    )
    write_model("bfloat16_input", helper.make_model(graph, opset_imports=OPSET_IMPORTS, producer_name="mldeploy-fixtures", ir_version=8))
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BFLOAT16, name="cast")],
        "bfloat16_output",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, ["N", 1])],
    )
    write_model("bfloat16_output", helper.make_model(graph, opset_imports=OPSET_IMPORTS, producer_name="mldeploy-fixtures", ir_version=8))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    dtypes_wide()
    bfloat16()


if __name__ == "__main__":
    main()
