FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home liventix
WORKDIR /app
COPY pyproject.toml ./
COPY liventix liventix
COPY schema schema
COPY resolvers resolvers
COPY db db
RUN pip install --no-cache-dir .
COPY web/package.json web/package-lock.json web/
RUN cd web && npm ci --no-audit --no-fund --loglevel=error
USER liventix
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["liventix", "serve"]
