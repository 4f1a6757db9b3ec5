# syntax=docker/dockerfile:1
# mailslot: build the project into a virtualenv, then copy only that venv into a slim runtime.
#
#   docker build -t mailslot .
#   docker run -p 8080:8080 -e MAILSLOT_DATABASE_URL=postgresql://user:pass@db:5432/mailslot mailslot
#
# Without MAILSLOT_DATABASE_URL the embedded PostgreSQL runs inside the container under /data
# (a VOLUME): fine for a trial, use your own PostgreSQL in production. See docs/operations.md.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mailslot
WORKDIR /src
# Only what the wheel needs (pyproject's packages, package data and readme); bench/ runs from
# a checkout and is not in the wheel.
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY storage ./storage
RUN /opt/mailslot/bin/pip install .

FROM python:3.11-slim
# PostgreSQL refuses to run as root, and so does this image: the gateway and the embedded
# server run as an unprivileged user that owns the data volume.
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home mailslot \
    && mkdir /data \
    && chown mailslot:mailslot /data
# Same path as in the builder: the venv's scripts name /opt/mailslot/bin/python.
COPY --from=builder /opt/mailslot /opt/mailslot
# The host is set here, not in CMD, so that `docker run mailslot serve --workers 2` still
# listens on every interface of the container.
ENV PATH=/opt/mailslot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MAILSLOT_DATA_DIR=/data \
    MAILSLOT_HOST=0.0.0.0
USER mailslot
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# No curl in slim: ask /readyz with Python. Follows MAILSLOT_PORT; a non-2xx answer raises.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('MAILSLOT_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["mailslot"]
CMD ["serve"]
