"""The offline twin of the deployed system: the plan's AWS side on moto, its images on podman (issue #12)."""
