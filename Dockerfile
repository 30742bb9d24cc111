# The orders service: one image for the API (`orders serve`), projector workers (`orders project`)
# and the Kafka relay (`orders relay kafka`).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY domain ./domain
COPY eventstore ./eventstore
COPY projections ./projections
COPY relay ./relay
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
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=2)"]
ENTRYPOINT ["orders"]
CMD ["serve"]
