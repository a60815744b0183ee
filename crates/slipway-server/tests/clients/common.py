"""What the client scripts share: the credit applicant, inputs built from model metadata,
and the float features for the ONNX model."""

import numpy as np

# One applicant of the German credit data, one value per column of the credit model.
RECORD = {
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


def credit_arrays(specs, rows):
    """(name, datatype, array) for each input spec: FP64 numbers, BYTES categories."""
    out = []
    for spec in specs:
        value = RECORD[spec["name"]]
        if spec["datatype"] == "FP64":
            arr = np.full([rows], float(value), dtype=np.float64)
        else:
            arr = np.array([str(value).encode()] * rows, dtype=np.object_)
        out.append((spec["name"], spec["datatype"], arr))
    return out


def cancer_features(rows):
    """Half-precision-exact features for the ONNX model's [rows, 30] FP32 input."""
    rng = np.random.default_rng(7)
    return rng.uniform(0, 40, size=(rows, 30)).astype(np.float16)


def text(values):
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
