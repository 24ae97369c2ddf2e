"""The common pattern the app is measured against: Flask + joblib + a pandas DataFrame per request.

Run under gunicorn with 2 sync workers by ``bench/serving.py``; ``BASELINE_MODEL`` names the joblib file
(written by the benchmark from the same trained package). Benchmark-only code: it unpickles a file the
benchmark itself just wrote, which production code never does.
"""

from __future__ import annotations

import os

import joblib
import pandas as pd
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load(os.environ["BASELINE_MODEL"])  # the file bench/serving.py wrote a moment ago


@app.post("/predict")
def predict():  # type: ignore[no-untyped-def]
    payload = request.get_json()
    records = payload if isinstance(payload, list) else [payload]
    frame = pd.DataFrame(records)
    probabilities = model.predict_proba(frame)[:, 1]
    return jsonify({"predictions": [{"prediction": int(p >= 0.5), "probability": float(p)} for p in probabilities]})
