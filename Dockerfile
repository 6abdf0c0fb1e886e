# syntax=docker/dockerfile:1
# One image for the permstore services; docker-compose.yml picks the command:
#   processor: python -m permstore.streams.main
#   api:       uvicorn permstore.services.api.main:app --host 0.0.0.0 --port 8080 (the default below)
#   one-shot:  python -m permstore.deploy.cassandra_roles ..., python -m permstore.adapters.bootstrap
# Only the package folders are copied (never .venv/ or .local/, which holds local secrets).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A compiler and libev headers, in case a dependency has no wheel for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libev-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY permcore ./permcore
COPY schemas ./schemas
COPY streams ./streams
COPY services ./services
COPY adapters ./adapters
COPY permstore ./permstore
COPY deploy ./deploy
# The `permstore` CLI talks to the API through the client kit; its _core symlink points at
# ../../../../permcore, which is /src/permcore here.
COPY clients/python ./clients/python
RUN pip wheel --wheel-dir /wheels . ./clients/python

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends libev4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /app --shell /usr/sbin/nologin permstore \
 && mkdir -p /app/.local/keys \
 && chown -R permstore /app/.local
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels permstore permstore-client \
 && rm -rf /wheels
WORKDIR /app
USER permstore
EXPOSE 8080
CMD ["uvicorn", "permstore.services.api.main:app", "--host", "0.0.0.0", "--port", "8080"]
