"""Triton's HTTP and gRPC clients against a Slipway server with API keys: `headers=` carries
the key unchanged on both; no key is refused (401 / UNAUTHENTICATED), a key without the role
too (403 / PERMISSION_DENIED), health stays open.
Usage: triton_keys.py HTTP GRPC INFER_TOKEN MONITOR_TOKEN. Exits non-zero on any mismatch."""

import sys

import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from common import credit_arrays

http_url, grpc_url, infer_token, monitor_token = sys.argv[1:5]


def refused(call, want):
    try:
        call()
    except InferenceServerException as e:
        status = str(e.status())
        assert want in status, (want, status, e.message())
        return
    raise AssertionError(f"not refused: wanted {want}")


# gRPC metadata keys are lowercase (Python's grpc refuses others); HTTP headers take any case.
for module, url, key, denied, forbidden in (
    (httpclient, http_url, "Authorization", "401", "403"),
    (grpcclient, grpc_url, "authorization", "UNAUTHENTICATED", "PERMISSION_DENIED"),
):
    infer = {key: f"Bearer {infer_token}"}
    monitor = {key: f"Bearer {monitor_token}"}
    c = module.InferenceServerClient(url)
    assert c.is_server_live() and c.is_server_ready(), "health is open"
    refused(lambda: c.get_model_metadata("credit"), denied)
    refused(lambda: c.get_model_metadata("credit", headers={key: "Bearer sk_x_y"}), denied)
    m = c.get_model_metadata("credit", headers=infer)
    specs = m["inputs"] if isinstance(m, dict) else [{"name": i.name, "datatype": i.datatype} for i in m.inputs]
    inputs = []
    for name, datatype, arr in credit_arrays(specs, 2):
        i = module.InferInput(name, list(arr.shape), datatype)
        i.set_data_from_numpy(arr)
        inputs.append(i)
    r = c.infer("credit", inputs, headers=infer)
    assert r.as_numpy("probability").shape == (2,)
    refused(lambda: c.infer("credit", inputs), denied)
    refused(lambda: c.get_inference_statistics("credit", headers=infer), forbidden)
    c.get_inference_statistics("credit", headers=monitor)
    refused(lambda: c.infer("credit", inputs, headers=monitor), forbidden)

print("ok")
