# MLflow tracking + registry server with PostgreSQL metadata and S3 (MinIO) artifacts.
# Versions come from pyproject.toml's `registry-server` group: pins live in one place.
FROM python:3.11-slim
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; deps = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['optional-dependencies']['registry-server']; print('\n'.join(deps))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt
EXPOSE 5000
ENTRYPOINT ["mlflow", "server"]
