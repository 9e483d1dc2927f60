# The Outreach planner service. Built by docker-compose.yml beside PostGIS.
FROM python:3.11-slim-bookworm AS assets
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OUTREACH_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY geo ./geo
COPY models ./models
RUN pip install --no-cache-dir '.[postgis]'
COPY --from=assets /src/node_modules /tmp/node_modules
RUN python -m app.assets --node-modules /tmp/node_modules --target "$(python -c 'import app, pathlib; print(pathlib.Path(app.__file__).parent / "static" / "vendor")')" && rm -rf /tmp/node_modules
RUN useradd --system --uid 10001 outreach && mkdir -p /data && chown outreach /data
USER outreach
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["outreach", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
