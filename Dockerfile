# syntax=docker/dockerfile:1.7
# The predictor image, and a model-only image. Targets (build with --target):
#   modelcar:          only a model bundle (or registry) under /models, for KServe's
#                      storageUri: oci://... (`make docker-modelcar MODEL_URI=...`)
#   runtime:           the predictor; the model comes from PREDICTOR_MODEL_URI (gs:// or file://)
#   model:             runtime plus a model bundle baked in at /opt/model (serves with no GCS)
#   spark:             runtime plus Java and pyspark, with Spark on Kubernetes' entrypoint
#                      (driver, executor), for the SparkApplication component
# Build with `make docker-base` (pushes runtime), `make docker-model MODEL_URI=...` or
# `make docker-spark`.

# Change the base here only together with requirements.lock (same Python minor version).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
# KServe runs a modelcar with `sh -c "ln ... && sleep infinity"`: the base needs a shell, ln and
# sleep, nothing more.
ARG MODELCAR_BASE=busybox:1.37.0

FROM ${MODELCAR_BASE} AS modelcar
# A folder holding an accepted bundle (or a registry of bundles): `make docker-modelcar`
# validates the model and copies it there. Read-only for everyone; owned by root.
ARG MODEL_DIR=build/model
COPY ${MODEL_DIR} /models

FROM ${PYTHON_IMAGE} AS builder
# Extras whose estimators the image should serve, comma-separated: xgboost, lightgbm, skorch.
ARG EXTRAS=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /build
RUN python -m venv /opt/venv
# Dependencies first, from the lock file, so that changing the source reuses this layer.
COPY pyproject.toml requirements.lock ./
RUN python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e for e in sys.argv[1].split(',') if e]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" "$EXTRAS" \
        > runtime-requirements.txt \
    && pip install --constraint requirements.lock --requirement runtime-requirements.txt
COPY README.md ./
COPY predictor ./predictor
RUN pip install --no-deps --constraint requirements.lock . \
    && python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="kserve-sklearn-predictor" \
      org.opencontainers.image.description="KServe predictor for scikit-learn models in GCS" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    PREDICTOR_DOWNLOAD_DIR=/mnt/models
# A numeric non-root user (runAsNonRoot can only verify a numeric USER) and the one folder it
# writes to; the root filesystem can then be mounted read-only.
RUN groupadd --gid 1000 predictor \
    && useradd --uid 1000 --gid 1000 --no-create-home --shell /usr/sbin/nologin predictor \
    && mkdir -p /mnt/models \
    && chown 1000:1000 /mnt/models
COPY --from=builder /opt/venv /opt/venv
USER 1000:1000
EXPOSE 8080 8081
ENTRYPOINT ["python", "-m", "predictor"]

FROM runtime AS model
# A folder holding an accepted bundle (or a registry of bundles), prepared by `make docker-model`.
ARG MODEL_DIR=build/model
COPY ${MODEL_DIR} /opt/model
ENV PREDICTOR_MODEL_URI=file:///opt/model/

FROM runtime AS spark
# Batch scoring on Spark on Kubernetes (manifests/components/batch-scoring-spark): the same
# predictor, with Debian's Java runtime and the `spark` extra from the lock file.
USER 0
# Debian's current JRE with its security updates, not a pinned build that would go stale.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        default-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml requirements.lock /tmp/build/
RUN python -c "import tomllib; p = tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']; \
print('\\n'.join(p['optional-dependencies']['spark']))" > /tmp/build/spark-requirements.txt \
    && PIP_NO_CACHE_DIR=1 pip install --constraint /tmp/build/requirements.lock \
        --requirement /tmp/build/spark-requirements.txt \
    && rm -rf /tmp/build
COPY docker/spark-entrypoint.sh /opt/spark-entrypoint.sh
ENV SPARK_HOME=/opt/venv/lib/python3.11/site-packages/pyspark \
    PYSPARK_PYTHON=/opt/venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/venv/bin/python
USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["/opt/spark-entrypoint.sh"]
