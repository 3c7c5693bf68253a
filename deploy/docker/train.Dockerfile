# Training image: the offline pipeline (PyTorch CPU build), run once by docker-compose to
# train, evaluate and register the models in MLflow. Serving never uses this image.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
# The CPU wheel of the torch pinned in pyproject.toml; PyPI's own would be a multi-GB CUDA build.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['train']; print(next(d for d in deps if d.startswith('torch==')))" > /tmp/torch.txt \
    && pip install --no-cache-dir -r /tmp/torch.txt --index-url https://download.pytorch.org/whl/cpu
COPY shared ./shared
COPY services ./services
COPY training ./training
COPY loadtests ./loadtests
COPY deploy ./deploy
RUN pip install --no-cache-dir ".[train]"
ENTRYPOINT ["python", "-m"]
CMD ["training.pipeline", "--out", "/models"]
