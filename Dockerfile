# The bot's image: the same for every instance (docker-compose.yml runs two).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# a CJK font, so Chinese shop names on the QR labels are not boxes
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# the locked dependencies first (requirements/bot.txt, `make lock`): every package the
# file the lock names (--require-hashes), and a layer that code changes do not rebuild
COPY requirements/bot.txt requirements/bot.txt
RUN pip install --no-cache-dir --require-hashes -r requirements/bot.txt
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY ui ./ui
COPY services ./services
COPY models ./models
COPY hardware_bridge ./hardware_bridge
COPY migrations ./migrations
COPY sandbox ./sandbox
# the project itself: nothing left to resolve, built with the locked setuptools
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

# the default SQLite database lives here (a volume); PostgreSQL in docker-compose.yml
RUN mkdir -p /app/data && chown nobody /app/data
VOLUME /app/data
# webhook mode listens here (WEBHOOK_LISTEN) and serves /healthz, which
# docker-compose.yml uses as the health check; /readyz and /metrics are on
# METRICS_LISTEN (docker-compose.yml: 8081, inside its network only)
EXPOSE 8080
USER nobody
CMD ["python", "-m", "bot"]
