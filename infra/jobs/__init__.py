"""The Batch jobs (retrain, monitor, inference): job definitions, their IAM, schedules and specification."""
