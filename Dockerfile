# The orders service: one image for the API (`orders serve`), projector workers (`orders project`)
# and the Kafka relay (`orders relay kafka`).

# The web bundles (GraphiQL and the dashboard), from web/'s lockfile; only their output moves on.
FROM node:20-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/build.mjs web/tsconfig.json ./
COPY web/src ./src
# Writes /src/api/static, which the wheel below ships (package data of `api`).
RUN npm run build

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY application ./application
COPY domain ./domain
COPY eventstore ./eventstore
COPY metrics ./metrics
COPY projections ./projections
COPY relay ./relay
COPY telemetry ./telemetry
COPY --from=web /src/api/static ./api/static
# Wheels are built here, where gcc may be needed, and only installed in the final stage.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/var/lib/orders
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /var/lib/orders --create-home orders
USER orders
WORKDIR /var/lib/orders
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/livez\", timeout=2)"]
ENTRYPOINT ["orders"]
CMD ["serve"]
