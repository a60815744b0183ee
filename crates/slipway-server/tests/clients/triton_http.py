"""Triton's own HTTP client against a Slipway server: every core call, with and without
binary tensors. Usage: triton_http.py HOST:PORT MODEL. Exits non-zero on any mismatch."""

import sys

import numpy as np
import tritonclient.http as httpclient

url, model = sys.argv[1], sys.argv[2]
c = httpclient.InferenceServerClient(url)

assert c.is_server_live(), "live"
assert c.is_server_ready(), "ready"
assert c.is_model_ready(model), "model ready"
assert not c.is_model_ready("no-such-model"), "unknown model reads as not ready"
meta = c.get_server_metadata()
assert "binary_tensor_data" in meta["extensions"], meta
m = c.get_model_metadata(model)
assert m["name"] == model, m

# One input per column, as the signature says: FP64 for numbers, BYTES for categories.
record = {
    "status_of_existing_checking_account": "... < 0 DM", "duration_in_month": 6.0,
    "credit_history": "critical account/ other credits existing (not at this bank)",
    "purpose": "radio/television", "credit_amount": 1169.0,
    "savings_account_and_bonds": "unknown/ no savings account",
    "present_employment_since": "... >= 7 years",
    "installment_rate_in_percentage_of_disposable_income": 4.0,
    "personal_status_and_sex": "male : divorced/separated", "other_debtors_or_guarantors": "none",
    "present_residence_since": 4.0, "property": "real estate", "age_in_years": 67.0,
    "other_installment_plans": "none", "housing": "own", "number_of_existing_credits_at_this_bank": 2.0,
    "job": "skilled employee / official", "number_of_people_being_liable_to_provide_maintenance_for": 1.0,
    "telephone": "yes, registered under the customers name", "foreign_worker": "yes",
}
rows = 3
answers = []
for binary in (True, False):
    inputs = []
    for spec in m["inputs"]:
        value = record.get(spec["name"], "")
        if spec["datatype"] == "FP64":
            arr = np.full([rows], float(value) if value != "" else 0.0, dtype=np.float64)
        else:
            arr = np.array([str(value).encode()] * rows, dtype=np.object_)
        i = httpclient.InferInput(spec["name"], list(arr.shape), spec["datatype"])
        i.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(i)
    outputs = [httpclient.InferRequestedOutput(o["name"], binary_data=binary) for o in m["outputs"]]
    r = c.infer(model, inputs, outputs=outputs, request_id="t-1")
    p = r.as_numpy(m["outputs"][0]["name"])
    labels = r.as_numpy("label")
    assert p.shape == (rows,), p.shape
    assert labels.shape == (rows,), labels.shape
    assert r.get_response()["id"] == "t-1"
    answers.append((p.tolist(), [l.decode() if isinstance(l, bytes) else l for l in labels.tolist()]))

# Binary and JSON give the same answer.
assert answers[0] == answers[1], answers
# A bad request is an InferenceServerException with the server's message, and the server goes on.
try:
    bad = httpclient.InferInput("age_in_years", [2], "FP32")
    bad.set_data_from_numpy(np.zeros([2], dtype=np.float32))
    c.infer(model, [bad])
    raise AssertionError("a bad request was accepted")
except httpclient.InferenceServerException as e:
    assert "400" in str(e) or "must be" in str(e), str(e)
assert c.is_server_live()
print("ok", answers[0])
