"""The pipeline's Evaluate stage: a candidate package against the champion, on labelled data, on replayed
prod capture and against the live stage service, before anybody is asked to approve it (docs/pipeline.md)."""
