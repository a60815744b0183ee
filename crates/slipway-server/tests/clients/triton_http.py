"""Triton's own HTTP client against a Slipway server: every core call, the statistics and
repository extensions, with and without binary tensors, and FP16 to an FP32 model.
Usage: triton_http.py HOST:PORT. Exits non-zero on any mismatch."""

import sys

import numpy as np
import tritonclient.http as httpclient

from common import cancer_features, credit_arrays, text

url = sys.argv[1]
c = httpclient.InferenceServerClient(url)

assert c.is_server_live(), "live"
assert c.is_server_ready(), "ready"
assert c.is_model_ready("credit"), "model ready"
assert c.is_model_ready("credit", "1"), "model version ready"
assert not c.is_model_ready("no-such-model"), "unknown model reads as not ready"
meta = c.get_server_metadata()
assert "binary_tensor_data" in meta["extensions"], meta
m = c.get_model_metadata("credit")
assert m["name"] == "credit", m
assert c.get_model_metadata("credit", "1")["versions"] == ["1"]

rows = 3
answers = []
for binary in (True, False):
    inputs = []
    for name, datatype, arr in credit_arrays(m["inputs"], rows):
        i = httpclient.InferInput(name, list(arr.shape), datatype)
        i.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(i)
    outputs = [httpclient.InferRequestedOutput(o["name"], binary_data=binary) for o in m["outputs"]]
    r = c.infer("credit", inputs, outputs=outputs, request_id="t-1")
    p = r.as_numpy("probability")
    labels = r.as_numpy("label")
    assert p.shape == (rows,), p.shape
    assert labels.shape == (rows,), labels.shape
    assert r.get_response()["id"] == "t-1"
    answers.append((p.tolist(), text(labels)))
# Binary and JSON give the same answer.
assert answers[0] == answers[1], answers
# Default outputs (the client then asks for all of them as binary), by version.
inputs = []
for name, datatype, arr in credit_arrays(m["inputs"], rows):
    i = httpclient.InferInput(name, list(arr.shape), datatype)
    i.set_data_from_numpy(arr)
    inputs.append(i)
r = c.infer("credit", inputs, model_version="1")
assert r.as_numpy("probability").tolist() == answers[0][0]

# FP16 to the ONNX model's FP32 input, binary and JSON: exactly the FP32 answer.
x16 = cancer_features(5)
cm = c.get_model_metadata("cancer")
xin = cm["inputs"][0]["name"]
results = []
for datatype, arr, binary in (("FP32", x16.astype(np.float32), True), ("FP16", x16, True), ("FP16", x16, False)):
    i = httpclient.InferInput(xin, list(arr.shape), datatype)
    i.set_data_from_numpy(arr, binary_data=binary)
    r = c.infer("cancer", [i])
    results.append([r.as_numpy(o["name"]).tolist() for o in cm["outputs"]])
assert results[0] == results[1] == results[2], results

# A bad request is an InferenceServerException with the server's message, and the server goes on.
try:
    bad = httpclient.InferInput("age_in_years", [2], "INT64")
    bad.set_data_from_numpy(np.zeros([2], dtype=np.int64))
    c.infer("credit", [bad])
    raise AssertionError("a bad request was accepted")
except httpclient.InferenceServerException as e:
    assert "must be FP64" in str(e), str(e)
assert c.is_server_live()

# Statistics: the successful credit requests so far, and the failure.
stats = c.get_inference_statistics("credit")["model_stats"][0]
assert stats["inference_stats"]["success"]["count"] == 3, stats
assert stats["inference_stats"]["fail"]["count"] == 1, stats
assert stats["inference_count"] == 3 * rows, stats
assert len(c.get_inference_statistics()["model_stats"]) == 2

# Repository: index, unload, load back.
names = sorted(m["name"] for m in c.get_model_repository_index())
assert names == ["cancer", "credit"], names
c.unload_model("cancer")
assert not c.is_model_ready("cancer")
c.load_model("cancer")
assert c.is_model_ready("cancer")
print("ok", answers[0])
