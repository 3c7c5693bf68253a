# Serving image: every Cascade service runs from it (`python -m services.<name>`).
# It carries onnxruntime and hnswlib, never torch: the project's core dependencies exclude it.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY training ./training
COPY loadtests ./loadtests
COPY deploy ./deploy
# Wheels for the project and its pinned core dependencies (hnswlib compiles here).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# The latency budget and the variants are configuration, not code: they ship beside the
# packages, not inside.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CASCADE_LATENCY_BUDGET=/etc/cascade/latency_budget.yaml \
    CASCADE_GATEWAY_VARIANTS=/etc/cascade/variants.yaml
COPY --from=build /wheels /wheels
COPY config/latency_budget.yaml /etc/cascade/latency_budget.yaml
COPY config/variants.yaml /etc/cascade/variants.yaml
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels \
    && useradd --uid 10001 --create-home cascade \
    && mkdir -p /var/lib/cascade/events /var/lib/cascade/skew && chown -R cascade /var/lib/cascade \
    && python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"
USER cascade
WORKDIR /home/cascade
ENTRYPOINT ["python", "-m"]
CMD ["services.gateway"]
