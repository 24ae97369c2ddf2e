"""The pipeline's build and release steps.

``python -m release`` is called by ``buildspec.yml`` (the Build action: image digests, the
``imagedefinitions.json`` and the build record) and by ``release/buildspec.yml`` (the Release
action: the release record, the ``champion`` pointer and the Batch job definitions). The commands
live in Python rather than in shell so that each step is tested against a moto server and a
malformed value stops the pipeline at the step that produced it. See ``docs/build.md`` and
``docs/release-record.md``.
"""
