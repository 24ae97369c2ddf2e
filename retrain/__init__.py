"""The retrain job and local training: data in, a verified ``model.zip`` out, gated against the champion.

Entry points: ``python -m retrain run`` (the AWS Batch job), ``python -m retrain train`` (local, any
CSV/Parquet), ``python -m retrain verify`` (integrity, schema, parity), ``python -m retrain synth``
(synthetic churn data) and ``python -m retrain.demo`` (``make demo``). See ``docs/retrain.md``.
"""
