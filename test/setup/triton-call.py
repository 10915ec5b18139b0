# One Open Inference Protocol call through tritonclient with its defaults (HTTP: binary
# tensors on), for the v2 tests. Reads the call as JSON on stdin, prints the answer as JSON.
import json
import sys

import numpy as np
from tritonclient.utils import InferenceServerException

DTYPES = {
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
    "BYTES": np.object_,
}


def repository(triton, ops, headers):
    """The repository extension's calls in order, each answered or its error (status and message)."""
    answers = []
    for op in ops:
        try:
            if op[0] == "index":
                answers.append({"index": triton.get_model_repository_index(headers=headers)})
            elif op[0] == "load":
                triton.load_model(op[1], headers=headers, **({"config": op[2]} if len(op) > 2 else {}))
                answers.append({"loaded": op[1]})
            elif op[0] == "unload":
                triton.unload_model(op[1], headers=headers)
                answers.append({"unloaded": op[1]})
            elif op[0] == "model_ready":
                answers.append({"model_ready": triton.is_model_ready(op[1], headers=headers)})
            elif op[0] == "server_ready":
                answers.append({"server_ready": triton.is_server_ready(headers=headers)})
        except InferenceServerException as err:
            answers.append({"error": err.message(), "status": err.status()})
    return answers


def as_numpy(tensor):
    if tensor["datatype"] == "BYTES":
        values = [s.encode("utf-8") for s in tensor["data"]]
        return np.array(values, dtype=np.object_).reshape(tensor["shape"])
    return np.array(tensor["data"], dtype=DTYPES[tensor["datatype"]]).reshape(tensor["shape"])


def as_json(name, array, datatype):
    data = array.flatten().tolist()
    if datatype == "BYTES":
        data = [v.decode("utf-8") if isinstance(v, bytes) else v for v in data]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def main():
    call = json.load(sys.stdin)
    if call["protocol"] == "http":
        import tritonclient.http as client
    else:
        import tritonclient.grpc as client
    headers = {"authorization": f"Bearer {call['token']}"} if call.get("token") else None
    version = call.get("version", "")
    triton = client.InferenceServerClient(url=call["url"])
    try:
        if "ops" in call:
            print(json.dumps({"answers": repository(triton, call["ops"], headers)}))
            return
        if "inputs" not in call:
            print(json.dumps({
                "live": triton.is_server_live(headers=headers),
                "ready": triton.is_server_ready(headers=headers),
                "model_ready": triton.is_model_ready(call["model"], version, headers=headers),
                "server": triton.get_server_metadata(headers=headers, **({"as_json": True} if call["protocol"] == "grpc" else {})),
                "model": triton.get_model_metadata(call["model"], version, headers=headers, **({"as_json": True} if call["protocol"] == "grpc" else {})),
            }))
            return
        inputs = []
        for tensor in call["inputs"]:
            infer_input = client.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
            infer_input.set_data_from_numpy(as_numpy(tensor))  # the default: binary_data=True on HTTP
            inputs.append(infer_input)
        outputs = [client.InferRequestedOutput(name) for name in call["outputs"]] if call.get("outputs") else None
        result = triton.infer(call["model"], inputs, model_version=version, outputs=outputs, request_id=call.get("id", ""), headers=headers)
        response = result.get_response(**({"as_json": True} if call["protocol"] == "grpc" else {}))
        answer = {}
        for output in response["outputs"]:
            answer[output["name"]] = as_json(output["name"], result.as_numpy(output["name"]), output["datatype"])
        reply = {"outputs": answer}
        if call["protocol"] == "http":
            # What went over the wire: binary inputs, and which outputs came back binary.
            reply["sent_binary"] = all("binary_data_size" in i._get_tensor().get("parameters", {}) for i in inputs)
            reply["binary_outputs"] = [o["name"] for o in response["outputs"] if "binary_data_size" in o.get("parameters", {})]
        print(json.dumps(reply))
    except InferenceServerException as err:
        print(json.dumps({"error": err.message(), "status": err.status()}))
    finally:
        triton.close()


main()
