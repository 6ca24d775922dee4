# The API image. GraphiQL's assets are built in a Node stage and copied in, so the
# runtime image carries no Node; GRAPHIQL_ASSETS_DIR tells the installed package where
# they are (it is not next to web/ as in a source checkout).
FROM node:20-slim AS graphiql-assets
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/home/liventix/.data \
    GRAPHIQL_ASSETS_DIR=/opt/liventix/graphiql
RUN useradd --create-home liventix
WORKDIR /src
COPY pyproject.toml ./
COPY liventix liventix
COPY schema schema
COPY resolvers resolvers
COPY db db
RUN pip install --no-cache-dir . && rm -rf /src
COPY --from=graphiql-assets /web/node_modules /opt/liventix/graphiql
WORKDIR /home/liventix
USER liventix
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["liventix", "serve"]
