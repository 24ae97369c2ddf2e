"""What the jobs share, one layer below them: no job (retrain, monitor, inference, release, evaluation)
imports another, they all import from here (tests/test_job_layers.py keeps it so).

- I/O: ``readers`` (training data from S3, a local file or SQL, with the size guard in ``datasize``),
  ``capture`` (the app's capture from S3, SQL or local files, labels, prediction tables' URIs),
  ``columns`` (manifest features as typed frame columns), ``reference`` (the training sample in a package).
- Models: ``champion`` (resolve ``champion``/a version/a URI/a path to a verified package), ``store``
  (the model bucket: versioned uploads, champion pointer, reports).
- Judging: ``metrics`` (holdout metrics, PSI), ``gate`` (candidate against champion), ``holdout`` (the split).
- Running: ``errors`` (job errors with their exit codes), ``cli`` (the one runner every command line ends
  through: exit status and one clear line),
  ``evaluation_contract`` (the Evaluate action's exported variables, read by release and infra).

Alerts stay in the top-level ``alerting`` package, which already is this layer's alert part (one publisher,
one SNS topic; infra names its S3 dedup prefix). Modules here import only the standard library, third-party
libraries, ``model_package`` and ``contracts``; heavy libraries are imported inside functions where a
light caller (release reads only ``evaluation_contract``) must not pay for them.
"""
