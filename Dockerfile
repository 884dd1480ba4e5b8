# media-pipeline: the Dagster webserver and daemon with the pipeline's code, ffmpeg and the storage as volumes.
# Give it a PostgreSQL server: MEDIA_PIPELINE_DATABASE_URL (libpq URI) and MEDIA_PIPELINE_DAGSTER_STORAGE_URL
# (postgresql+psycopg2://...) for the same database; the health check reads Dagster's storage through them.
FROM python:3.11-slim-bookworm

# Debian's security updates move these versions; the base image tag is what pins the set.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 media

WORKDIR /app
COPY pyproject.toml README.md ./
COPY media_assets ./media_assets
# With the Celery extra: the same image serves the webserver, the daemon and the workers (docker-compose.yml).
# The extra's versions are pinned in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[celery]"

ENV DAGSTER_HOME=/opt/dagster/home \
    MEDIA_PIPELINE_SETTINGS=/config/settings.env \
    DATA_DIR=/data \
    MEDIA_ROOT=/data/media \
    LOCAL_DESTINATION_DIR=/data/destination \
    ICLOUD_DOWNLOAD_DIR=/data/icloud-download \
    REPORTS_DIR=/data/reports \
    FOLDER_SOURCE_PATHS=/library \
    DAGSTER_UI_HOST=0.0.0.0
COPY dagster.yaml workspace.yaml /app/
RUN mkdir -p /opt/dagster/home /data /config /library && cp /app/dagster.yaml /opt/dagster/home/ \
    && chown -R media:media /opt/dagster/home /data /config

USER 1000:1000
# /data: catalog-independent storage (media, reports); /config: settings.env; /library: the photos, mount read-only.
VOLUME ["/data", "/config", "/library"]
EXPOSE 3000
HEALTHCHECK --interval=60s --timeout=20s --start-period=120s CMD ["dagster-daemon", "liveness-check"]
ENTRYPOINT ["tini", "--"]
CMD ["media-pipeline", "ui", "--port", "3000"]
