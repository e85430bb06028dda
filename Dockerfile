# The bot's image: the same for every instance (docker-compose.yml runs two).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# a CJK font, so Chinese shop names on the QR labels are not boxes
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY services ./services
COPY models ./models
COPY hardware_bridge ./hardware_bridge
COPY migrations ./migrations
COPY sandbox ./sandbox
RUN pip install --no-cache-dir .

# webhook mode listens here (WEBHOOK_LISTEN); /healthz and /readyz for the orchestrator
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
USER nobody
CMD ["python", "-m", "bot"]
