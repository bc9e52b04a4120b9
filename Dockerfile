# The journey-streams worker image: `docker build -t journey-streams .`
# docker-compose.yml builds it for the `topics` (one-shot) and `worker` services.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every runtime dependency ships manylinux wheels for CPython 3.11: no compiler needed.
WORKDIR /tmp/src
COPY pyproject.toml ./
COPY streams ./streams
COPY schemas ./schemas
# The package only (not the [local] / [test] extras: the image talks to a real Kafka and Redis).
RUN pip install . \
    && cd / \
    && rm -rf /tmp/src

RUN groupadd --system --gid 10001 journey \
    && useradd --system --uid 10001 --gid journey --home-dir /home/journey --create-home \
       --shell /usr/sbin/nologin journey
USER journey
WORKDIR /home/journey

# Every setting comes from JOURNEY_* environment variables (see streams/settings.py). The HTTP
# endpoint (metrics, /healthz, /readyz, profiles) listens on every interface of the container.
ENV JOURNEY_HTTP_HOST=0.0.0.0 \
    JOURNEY_HTTP_PORT=8080
EXPOSE 8080
CMD ["journey", "worker"]
