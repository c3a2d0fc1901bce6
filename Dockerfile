# The user-code image: the project with its locked dependencies and Dagster's Kubernetes run
# launcher. It serves the code location (`dagster code-server start`) and is the image each
# run (K8sRunLauncher) or Celery worker (`wfm-etl worker`) starts from. See docs/deploy.md.
#
#   docker build -t wfm-etl:<release> .
FROM python:3.11.11-slim-bookworm

# Where a deployment mounts what is its own: the integrations config, the shared warehouse
# volume (docs/deploy.md), and the Dagster home with dagster.yaml (the Helm chart mounts it).
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WFM_HOME=/opt/wfm-etl \
    WFM_INTEGRATIONS=/etc/wfm-etl/integrations.yaml \
    WFM_WAREHOUSE_DIR=/var/lib/wfm-etl/warehouse \
    DAGSTER_HOME=/opt/dagster/dagster_home

WORKDIR /opt/wfm-etl

# Dependencies first, from the lock file alone, so a code change rebuilds only the layers below.
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# The project: its package, the SQL it renders views from, and the shipped mappings folder.
# Installed in place (the views are read from sql/ beside etl/), then compiled once so runs
# load bytecode (PYTHONDONTWRITEBYTECODE images would compile the project in every run).
COPY pyproject.toml README.md ./
COPY etl ./etl
COPY sql ./sql
COPY mappings ./mappings
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m compileall -q etl \
    && useradd --create-home --uid 1000 wfm \
    && mkdir -p "$DAGSTER_HOME" "$WFM_WAREHOUSE_DIR" \
    && chown -R wfm "$DAGSTER_HOME" "$WFM_WAREHOUSE_DIR"

USER 1000
EXPOSE 3030
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "3030", "-m", "etl.definitions"]
