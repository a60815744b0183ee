"""KServe's Python clients against a Slipway server: InferenceRESTClient with the V2 protocol
(JSON and binary) and the V1 records API, and InferenceGRPCClient (raw and typed contents);
every answer must agree. Usage: kserve_clients.py HTTP_HOST:PORT GRPC_HOST:PORT."""

import asyncio
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

from common import RECORD, credit_arrays, text

http_url, grpc_url = sys.argv[1], sys.argv[2]
base = f"http://{http_url}"


async def main():
    v2 = InferenceRESTClient(RESTConfig(protocol="v2"))
    assert await v2.is_server_live(base)
    assert await v2.is_server_ready(base)
    assert await v2.is_model_ready(base, "credit")
    assert not await v2.is_model_ready(base, "no-such-model")

    import httpx
    specs = httpx.get(f"{base}/v2/models/credit").json()["inputs"]
    rows = 3
    answers = []
    for binary in (False, True):
        inputs = []
        for name, datatype, arr in credit_arrays(specs, rows):
            i = InferInput(name, list(arr.shape), datatype)
            i.set_data_from_numpy(arr, binary_data=binary)
            inputs.append(i)
        r = await v2.infer(base, InferRequest("credit", inputs, request_id="k-1"), model_name="credit")
        assert r.id == "k-1", r.id
        out = {o.name: o.as_numpy() for o in r.outputs}
        answers.append((out["probability"].tolist(), text(out["label"])))
    assert answers[0] == answers[1], answers

    # A bad request: HTTPStatusError carrying the server's message.
    bad = InferInput("age_in_years", [1], "INT64")
    bad.set_data_from_numpy(np.zeros([1], dtype=np.int64), binary_data=False)
    try:
        await v2.infer(base, InferRequest("credit", [bad]), model_name="credit")
        raise AssertionError("a bad request was accepted")
    except httpx.HTTPStatusError as e:
        assert e.response.status_code == 400 and "must be FP64" in str(e), str(e)
    await v2.close()

    # V1: records in, predictions out.
    v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
    assert await v1.is_server_live(base)
    assert await v1.is_model_ready(base, "credit")
    out = await v1.infer(base, {"instances": [RECORD] * rows}, model_name="credit")
    probs = [p["probability"] for p in out["predictions"]]
    assert probs == answers[0][0], (probs, answers[0][0])
    await v1.close()

    # gRPC: raw (numpy) and typed (lists) contents.
    g = InferenceGRPCClient(grpc_url)
    assert await g.is_server_live()
    assert await g.is_server_ready()
    assert await g.is_model_ready("credit")
    for typed in (False, True):
        inputs = []
        for name, datatype, arr in credit_arrays(specs, rows):
            if typed:
                data = arr.tolist() if datatype == "FP64" else [v.decode() for v in arr.tolist()]
                inputs.append(InferInput(name, list(arr.shape), datatype, data=data))
            else:
                i = InferInput(name, list(arr.shape), datatype)
                i.set_data_from_numpy(arr, binary_data=True)
                inputs.append(i)
        r = await g.infer(InferRequest("credit", inputs, request_id="kg"))
        out = {o.name: o.as_numpy() for o in r.outputs}
        assert out["probability"].tolist() == answers[0][0], (typed, out)
        assert text(out["label"]) == answers[0][1], (typed, out)
    await g.close()
    print("ok", answers[0])


asyncio.run(main())
