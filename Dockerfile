# Ronda's server image: `ronda serve` by default; the same image runs `ronda migrate` and `ronda worker`.
#   docker build -t ronda .
#   docker run -p 8000:8000 -v ronda-data:/var/lib/ronda ronda        # embedded mode (SQLite in the volume)
# Scaled mode (PostgreSQL, Redis, several API processes behind a proxy): deploy/docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RONDA_DATA_DIR=/var/lib/ronda

# A dedicated unprivileged user; the data dir belongs to it (a named volume mounted there inherits
# this ownership when first created).
RUN groupadd --system --gid 10001 ronda \
    && useradd --system --uid 10001 --gid ronda --home-dir /var/lib/ronda --shell /usr/sbin/nologin ronda \
    && install -d -o ronda -g ronda -m 0750 /var/lib/ronda

WORKDIR /opt/ronda
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && rm -rf /opt/ronda/src /root/.cache

USER ronda
WORKDIR /var/lib/ronda
EXPOSE 8000
VOLUME ["/var/lib/ronda"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
CMD ["ronda", "serve", "--host", "0.0.0.0", "--port", "8000"]
