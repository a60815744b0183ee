"""Triton's own gRPC client against a Slipway server: every core call, statistics and
repository, raw tensors (what tritonclient always sends), FP16, streams, a bad request; the
answers must equal what the HTTP client gets. Usage: triton_grpc.py HTTP_HOST:PORT GRPC_HOST:PORT."""

import queue
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from common import cancer_features, credit_arrays, text

http_url, grpc_url = sys.argv[1], sys.argv[2]
h = httpclient.InferenceServerClient(http_url)
c = grpcclient.InferenceServerClient(grpc_url)

assert c.is_server_live(), "live"
assert c.is_server_ready(), "ready"
assert c.is_model_ready("credit"), "model ready"
assert c.is_model_ready("credit", "1"), "version ready"
assert not c.is_model_ready("no-such-model"), "unknown model reads as not ready"
assert "model_repository" in c.get_server_metadata().extensions
m = c.get_model_metadata("credit", as_json=True)
assert m["name"] == "credit" and m["versions"] == ["1"], m
specs = [{"name": i["name"], "datatype": i["datatype"]} for i in m["inputs"]]


def credit_inputs(client, rows):
    inputs = []
    for name, datatype, arr in credit_arrays(specs, rows):
        i = client.InferInput(name, list(arr.shape), datatype)
        i.set_data_from_numpy(arr)
        inputs.append(i)
    return inputs


rows = 4
r = c.infer("credit", credit_inputs(grpcclient, rows), request_id="g-1")
assert r.get_response().id == "g-1"
p, labels = r.as_numpy("probability"), r.as_numpy("label")
ref = h.infer("credit", credit_inputs(httpclient, rows))
assert p.tolist() == ref.as_numpy("probability").tolist()
assert text(labels) == text(ref.as_numpy("label"))
# One requested output.
r = c.infer("credit", credit_inputs(grpcclient, rows), outputs=[grpcclient.InferRequestedOutput("label")])
assert [o.name for o in r.get_response().outputs] == ["label"]

# FP16 to the FP32 ONNX model: exactly the FP32 answer.
x16 = cancer_features(5)
cm = c.get_model_metadata("cancer", as_json=True)
xin = cm["inputs"][0]["name"]
results = []
for datatype, arr in (("FP32", x16.astype(np.float32)), ("FP16", x16)):
    i = grpcclient.InferInput(xin, list(arr.shape), datatype)
    i.set_data_from_numpy(arr)
    r = c.infer("cancer", [i])
    results.append([r.as_numpy(o["name"]).tolist() for o in cm["outputs"]])
assert results[0] == results[1], results

# A bad request raises INVALID_ARGUMENT with the server's message; the server goes on.
try:
    bad = grpcclient.InferInput("age_in_years", [2], "INT64")
    bad.set_data_from_numpy(np.zeros([2], dtype=np.int64))
    c.infer("credit", [bad])
    raise AssertionError("a bad request was accepted")
except InferenceServerException as e:
    assert e.status() == "StatusCode.INVALID_ARGUMENT", e.status()
    assert "must be FP64" in e.message(), e.message()

# A stream: three requests, the middle one bad; three callbacks, in order, stream still open.
got = queue.Queue()
c.start_stream(callback=lambda result, error: got.put((result, error)))
for k in range(3):
    inputs = credit_inputs(grpcclient, 2)
    if k == 1:
        inputs = inputs[:-1]
    c.async_stream_infer("credit", inputs, request_id=f"s-{k}")
answers = [got.get(timeout=10) for _ in range(3)]
c.stop_stream()
assert answers[0][1] is None and answers[0][0].get_response().id == "s-0"
assert answers[1][0] is None and "missing input" in str(answers[1][1]), answers[1]
assert answers[2][1] is None and answers[2][0].as_numpy("probability").tolist() == p.tolist()[:2]

# Statistics, repository.
stats = c.get_inference_statistics("credit").model_stats[0]
assert stats.inference_stats.success.count >= 4, stats
assert len(c.get_inference_statistics().model_stats) == 2
names = sorted(m.name for m in c.get_model_repository_index().models)
assert names == ["cancer", "credit"], names
c.unload_model("cancer")
assert not c.is_model_ready("cancer")
c.load_model("cancer")
assert c.is_model_ready("cancer")
print("ok", p.tolist())
