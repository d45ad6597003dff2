# falproxy: the fal.ai server-side proxy as a sidecar image.
# Build: docker build -t falproxy .   Run: docker run -e FAL_KEY -p 8080:8080 falproxy
# Configuration comes only from the environment or a mounted TOML file (FALPROXY_CONFIG);
# the image holds no key.

# Build stage: turn the source tree into a wheel, its hot path compiled with mypyc (setup.py);
# the full image has the C compiler and headers, and no build tool reaches the runtime image.
FROM python:3.12 AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY falproxy ./falproxy
# FALPROXY_COMPILE=1: a failed compile fails the build instead of shipping pure Python.
RUN FALPROXY_COMPILE=1 pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Runtime stage: the wheel and its dependencies, run as an unprivileged user.
FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
# The redis extra: deploy/docker-compose.yml and the Kubernetes ConfigMap set
# FALPROXY_REDIS_URL (limits shared by the replicas). Add jwks for FALPROXY_JWKS_URL.
# tests/deploy/ replays this very line into a fresh virtual environment.
RUN pip install --no-cache-dir "$(echo /wheels/falproxy-*.whl)[redis]" && rm -rf /wheels
# A fixed numeric id, so `runAsNonRoot` can be verified without reading /etc/passwd.
RUN groupadd --system --gid 10001 falproxy \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin falproxy
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
CMD ["falproxy", "serve", "--host", "0.0.0.0", "--port", "8080"]
