# The hotline service (AMI, FastAGI router, case records, workers, web console).
# Pinned: the base image by its version tag, Debian packages by version (bookworm's current
# ones). When you build, add the digest the registry gives for the tag (`docker buildx
# imagetools inspect python:<tag>`) as `FROM python:<tag>@sha256:<digest>`; these machines cannot
# reach a registry to state it here.
FROM python:3.11.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
       espeak-ng=1.51+dfsg-10+deb12u2 sox=14.4.2+git20190427-3.5 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 hotline \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/hotline --no-create-home \
       hotline \
    && install -d -o hotline -g hotline -m 0700 /var/lib/hotline
WORKDIR /app
COPY pyproject.toml README.md ./
COPY common common
COPY hotline hotline
COPY telephony telephony
COPY queueing queueing
COPY cases cases
COPY asr asr
COPY agent_desk agent_desk
COPY asterisk-conf asterisk-conf
COPY hotline.example.toml ./
RUN pip install --no-cache-dir '.[asr]'
ENV HOTLINE_CONFIG=/etc/hotline/hotline.toml \
    HOTLINE_ASTERISK_CONF=/app/asterisk-conf
# Not root: the uid Asterisk's image runs as too (they share the data volume: the rendered
# configuration, the recordings' spool, the CEL database).
USER hotline:hotline
ENTRYPOINT ["hotline"]
CMD ["serve"]
