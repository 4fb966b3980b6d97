# llm-content-filter: the filter server image (the gateway pod's `filter` container, and the
# `filter` service of docker-compose.yaml).
#   docker build -t llm-content-filter:0.1.0 .
# The config is not baked in: mount it at /etc/llm-filter/config.yaml (compose) or pass
# --config (Kubernetes mounts a directory: /etc/llm-filter/config/config.yaml).

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the package needs (see .dockerignore): pyproject, README (the package's readme), code.
COPY pyproject.toml README.md ./
COPY filter/ ./filter/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 llmfilter \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin llmfilter
COPY --from=build /opt/venv /opt/venv
# The shipped packs at a stable path, for configs that list them next to their own packs.
COPY filter/rules/packs/ /opt/llm-filter/packs/
# The root filesystem is read-only in the pod and in compose: no .pyc writes, HOME on /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# 9001: gRPC (ext_authz Check, RateLimitService, grpc.health.v1); 9464: Prometheus /metrics
EXPOSE 9001 9464
ENTRYPOINT ["llm-content-filter"]
CMD ["serve", "--config", "/etc/llm-filter/config.yaml"]
