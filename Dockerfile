# The Python services in one image: authgate-issuer, authgate-verifier, authgate-gateway
# and the member example (python -m examples.members); compose picks one by its command.
# Build from the repository root:  docker build -t authgate .
# (Not built in CI: our machines have no Docker engine; tests/compose/ checks what can be
# checked without one.)

# --- build: the wheel, and every dependency as a wheel, at the versions in the lock ---
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY authgate/ authgate/
COPY verifier/ verifier/
COPY issuer/ issuer/
COPY gateway/ gateway/
# The lock is a constraint: the runtime dependencies pyproject.toml names, at the
# versions the tests ran with, and nothing from the dev extra.
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint requirements.lock .

# --- runtime: the wheels installed, no compiler, a user without a login ---
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin authgate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels authgate \
 && rm -rf /wheels
WORKDIR /app
# The member example is not part of the product's wheel: it stands for your own service.
COPY examples/__init__.py examples/__init__.py
COPY examples/members/ examples/members/
COPY plugins/ plugins/
USER authgate
ENV PYTHONUNBUFFERED=1 \
    AUTHGATE_HOST=0.0.0.0
# Each service's own port and path come from AUTHGATE_HEALTHCHECK_URL (compose sets a
# healthcheck per service); the default suits the verifier.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=6 \
    CMD ["authgate-healthcheck"]
CMD ["authgate-verifier"]
