# The serving image: the app, the verified model package, and only the serving dependencies
# (requirements/serving.txt: no scikit-learn, no pandas). Build from the repository root with the
# unpacked model package in ./model (CodeBuild gets it unpacked from the pipeline's S3 source):
#   docker build -f docker/app.Dockerfile --build-arg MODEL_SRC=model -t app .
# ECR Public's copy of the official image, pinned by digest: no Docker Hub pull limits for CodeBuild behind
# a NAT (issues #16, #17). The value must equal infra/images.py PYTHON_BASE_IMAGE (a test checks); the build
# passes the pull-through-cache form of it as --build-arg when ml-delivery:baseImageSource says so.
ARG PYTHON_IMAGE=public.ecr.aws/docker/library/python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY requirements/serving.txt /tmp/serving.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-virtualenv -r /tmp/serving.txt

FROM ${PYTHON_IMAGE}
ARG MODEL_SRC=model
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODEL_DIR=/opt/model \
    PORT=8080 \
    WORKERS=2 \
    SERVICE_NAME=local \
    SPOOL_DIR=/tmp/capture-spool
# The ECS task mounts its ephemeral "tmp" volume at /tmp over a read-only root filesystem. Fargate makes
# such a bind mount an empty root-owned 0755 directory, which uid 10001 cannot write, UNLESS the image
# declares the same path as VOLUME: then the image's content at that path, with its ownership, is copied
# into the volume (ECS Developer Guide, "Use bind mounts with Amazon ECS" and "Bind mount examples":
# mkdir + chown, USER, VOLUME). So the spool dir is created here, owned by the app user, /tmp keeps its
# sticky world-writable mode for tempfile, and VOLUME ["/tmp"] comes last (issue #12, defect 1).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /srv --shell /usr/sbin/nologin app \
    && mkdir -p "${SPOOL_DIR}" \
    && chown 10001:10001 "${SPOOL_DIR}" \
    && chmod 1777 /tmp
COPY --from=deps /opt/venv /opt/venv
WORKDIR /srv
COPY contracts/ /srv/contracts/
COPY model_package/ /srv/model_package/
COPY app/ /srv/app/
COPY ${MODEL_SRC}/ /opt/model/
# Fails the build on a tampered or incomplete package, and proves the image can load it without
# scikit-learn or pandas: the same check the app repeats at every start.
RUN python -c "from app.handlers import model_fn; import sys; m = model_fn('/opt/model'); assert 'sklearn' not in sys.modules and 'pandas' not in sys.modules; print(m.manifest.name, m.manifest.version, m.package.sha256)"
USER 10001:10001
# Must match the task definition's mountPoints containerPath (infra/service/model_service.py); nothing after this
# line may change /tmp (Docker discards changes to a VOLUME path made after its declaration).
VOLUME ["/tmp"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/health', timeout=2)"]
CMD ["python", "-m", "app"]
