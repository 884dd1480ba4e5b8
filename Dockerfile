# media-pipeline: the Dagster webserver and daemon with the pipeline's code, ffmpeg and the storage as volumes.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 media

WORKDIR /app
COPY pyproject.toml README.md ./
COPY media_assets ./media_assets
RUN pip install --no-cache-dir .

ENV DAGSTER_HOME=/opt/dagster/home \
    MEDIA_PIPELINE_SETTINGS=/config/settings.env \
    DATA_DIR=/data \
    MEDIA_ROOT=/data/media \
    REPORTS_DIR=/data/reports \
    DAGSTER_UI_HOST=0.0.0.0
COPY dagster.yaml workspace.yaml /app/
RUN mkdir -p /opt/dagster/home /data /config && cp /app/dagster.yaml /opt/dagster/home/ \
    && chown -R media:media /opt/dagster/home /data /config

USER media
VOLUME ["/data", "/config"]
EXPOSE 3000
HEALTHCHECK --interval=60s --timeout=20s CMD ["dagster-daemon", "liveness-check"]
ENTRYPOINT ["tini", "--"]
CMD ["media-pipeline", "ui", "--port", "3000"]
