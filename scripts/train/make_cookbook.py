"""Fixtures for docs/models.md's export cookbook: an XGBoost and a LightGBM regressor exported
with onnxmltools (opset 15, its highest), and a PyTorch MLP exported with torch.onnx.export.

Each gets test/fixtures/models/cookbook_<kind>.onnx, .spec.json (the spec the cookbook gives)
and .expected.json (held-out records and the native library's predictions), which
test/integration/models-cookbook.test.ts compares with mldeploy's within 1e-4.

  .venv-train/bin/pip install -r scripts/train/requirements.txt -r scripts/train/cookbook-requirements.txt
  .venv-train/bin/python scripts/train/make_cookbook.py
"""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

OUT = Path(__file__).resolve().parents[2] / "test" / "fixtures" / "models"
FIELDS = ["f0", "f1", "f2", "f3"]


def data():
    rng = np.random.RandomState(5)
    x = rng.normal(0, 1, (600, 4)).astype(np.float32)
    y = 2 * x[:, 0] - x[:, 1] + np.sin(3 * x[:, 2]) + 0.5 * x[:, 3] ** 2 + rng.normal(0, 0.1, 600)
    # Held-out rows on a 1/8 grid: exact in float32, and away from the trees' split points.
    held = np.round(np.random.RandomState(9).uniform(-2, 2, (12, 4)) * 8) / 8
    return x, y.astype(np.float32), held.astype(np.float32)


def write(kind, model, native_predictions, held):
    # onnxmltools names the graph with a random uuid and lists opset domains in set order, which
    # changes between processes: fix both so that reruns write identical files.
    model.graph.name = f"cookbook_{kind}"
    ordered = sorted(model.opset_import, key=lambda o: o.domain)
    pairs = [(o.domain, o.version) for o in ordered]
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in pairs)
    path = OUT / f"cookbook_{kind}.onnx"
    path.write_bytes(model.SerializeToString())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    output_name = sess.get_outputs()[0].name
    onnx_predictions = sess.run([output_name], {input_name: held})[0].reshape(-1)
    assert np.allclose(onnx_predictions, native_predictions, atol=1e-4), (kind, onnx_predictions, native_predictions)
    records = [dict(zip(FIELDS, map(float, row))) for row in held]
    spec = {"inputs": [{"name": input_name, "dtype": "float32", "fields": FIELDS}], "output": {"name": output_name}, "example": records[0]}
    (OUT / f"cookbook_{kind}.spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    expected = {"records": records, "predictions": [float(v) for v in native_predictions]}
    (OUT / f"cookbook_{kind}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"{path.name}: max |onnx - native| = {np.abs(onnx_predictions - native_predictions).max():.2e}")


def xgboost_model(x, y, held):
    import xgboost
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = xgboost.XGBRegressor(n_estimators=40, max_depth=4, learning_rate=0.2, random_state=0).fit(x, y)
    onx = convert_xgboost(model, initial_types=[("input", FloatTensorType([None, 4]))], target_opset=15)
    write("xgboost", onx, model.predict(held), held)


def lightgbm_model(x, y, held):
    import lightgbm
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    model = lightgbm.LGBMRegressor(n_estimators=40, num_leaves=15, learning_rate=0.2, random_state=0, verbose=-1).fit(x, y)
    onx = convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, 4]))], target_opset=15)
    write("lightgbm", onx, model.predict(held), held)


def torch_model(x, y, held):
    import io

    import torch

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimiser = torch.optim.Adam(mlp.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1, 1)
    for _ in range(300):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(mlp(xt), yt)
        loss.backward()
        optimiser.step()
    mlp.eval()
    buffer = io.BytesIO()
    torch.onnx.export(
        mlp, torch.zeros(1, 4), buffer, input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False
    )
    with torch.no_grad():
        native = mlp(torch.from_numpy(held)).numpy().reshape(-1)
    write("torch_mlp", onnx.load_from_string(buffer.getvalue()), native, held)


def main():
    x, y, held = data()
    xgboost_model(x, y, held)
    lightgbm_model(x, y, held)
    torch_model(x, y, held)


main()
