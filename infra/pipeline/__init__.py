"""The delivery pipeline: CodePipeline, its CodeBuild projects, sources, triggers, notifications, image registry."""
