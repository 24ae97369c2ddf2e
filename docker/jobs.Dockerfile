# The jobs image: retrain, monitoring, batch inference and the release step (python -m <job>).
# Build context is the repository root: docker build -f docker/jobs.Dockerfile .
# ECR Public's copy of the official image, pinned by digest: no Docker Hub pull limits for CodeBuild behind
# a NAT (issues #16, #17). Same base and same rules as docker/app.Dockerfile (infra/images.py).
ARG PYTHON_IMAGE=public.ecr.aws/docker/library/python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app

# LightGBM and XGBoost load the GNU OpenMP runtime (libgomp.so.1), which the slim image lacks: without it
# `import lightgbm` fails with OSError and the retrain job dies (found by the twin's loop). Pinned to
# bookworm's version.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so a code change does not reinstall them. Pinned in requirements/jobs.txt.
COPY requirements/jobs.txt /tmp/requirements-jobs.txt
RUN pip install --no-cache-dir -r /tmp/requirements-jobs.txt \
    && rm /tmp/requirements-jobs.txt \
    && groupadd --system --gid 10001 jobs \
    && useradd --system --uid 10001 --gid jobs --home-dir /app --no-create-home --shell /usr/sbin/nologin jobs

# Code is owned by root and read-only to the job user: a job cannot rewrite itself.
COPY contracts/ contracts/
COPY model_package/ model_package/
COPY alerting/ alerting/
COPY jobs_common/ jobs_common/
COPY retrain/ retrain/
COPY monitor/ monitor/
COPY inference/ inference/
COPY release/ release/

USER 10001:10001

ENTRYPOINT ["python", "-m"]
CMD ["retrain", "run"]
