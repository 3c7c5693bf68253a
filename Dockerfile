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
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels \
    && useradd --uid 10001 --create-home cascade \
    && python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"
USER cascade
WORKDIR /home/cascade
ENTRYPOINT ["python", "-m"]
CMD ["services.gateway"]
