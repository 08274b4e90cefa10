"""Generate `tracking/data/loan_approval.csv`: a small, seeded, synthetic loan-approval table.

It carries a sensitive attribute (`gender`) so that fairness checks have real groups to compare, and
a mild, deliberate approval gap between groups so a fairness gate has something to find. Run it again
to reproduce the shipped file byte for byte: `python scripts/make_loan_data.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ROWS = 2000
SEED = 20261126
OUT = Path(__file__).resolve().parent.parent / "tracking" / "data" / "loan_approval.csv"


def make(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    """The loan table: applicant features, `gender`, and the `approved` label (0/1)."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["female", "male"], size=rows, p=[0.48, 0.52])
    age = rng.integers(21, 70, size=rows)
    income = np.round(rng.lognormal(mean=10.6, sigma=0.45, size=rows), -2)
    loan_amount = np.round(income * rng.uniform(0.1, 0.9, size=rows), -2)
    credit_score = np.clip(rng.normal(660, 70, size=rows), 300, 850).round().astype(int)
    years_employed = np.clip(rng.gamma(2.0, 3.0, size=rows), 0, 45).round(1)
    existing_debt = np.round(income * rng.beta(2, 6, size=rows), -2)
    purpose = rng.choice(["home", "car", "education", "business", "other"], size=rows, p=[0.3, 0.25, 0.15, 0.15, 0.15])
    score = (
        1.1
        + 0.012 * (credit_score - 660)
        + 1.6 * np.log(income / 40000)
        - 2.2 * (loan_amount / income)
        - 1.5 * (existing_debt / income)
        + 0.05 * years_employed
        + np.where(purpose == "business", -0.4, 0.0)
        + np.where(gender == "female", -0.25, 0.0)  # the historical bias the fairness gate should see
        + rng.normal(0, 0.8, size=rows)
    )
    approved = (score > 0).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "loan_amount": loan_amount,
            "credit_score": credit_score,
            "years_employed": years_employed,
            "existing_debt": existing_debt,
            "purpose": purpose,
            "gender": gender,
            "approved": approved,
        }
    )


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    make().to_csv(OUT, index=False, lineterminator="\n")
    print(f"wrote {OUT}")
