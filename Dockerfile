# The hotline service (AMI, FastAGI router, case records, workers, web console).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends espeak-ng sox \
    && rm -rf /var/lib/apt/lists/*
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
ENTRYPOINT ["hotline"]
CMD ["serve"]
