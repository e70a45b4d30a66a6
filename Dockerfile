# urban-supervisor: `docker build -t urban-supervisor .` (docker-compose.yml builds it for you).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns only the data directory (spool, state snapshots).
RUN groupadd --system --gid 10001 urban \
 && useradd --system --uid 10001 --gid urban --home-dir /var/lib/urban-supervisor --shell /usr/sbin/nologin urban \
 && mkdir -p /var/lib/urban-supervisor /etc/urban-supervisor \
 && chown urban:urban /var/lib/urban-supervisor

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY supervisor ./supervisor
COPY drivers ./drivers
COPY rules ./rules
COPY simulators ./simulators
# Pinned dependency versions: the same set the test suite runs on.
RUN pip install -c constraints.txt . \
 && rm -rf /src/build

# Container configuration, the example rule set and the simulated city (seed 1, 200 devices, the
# city `urban-supervisor simulate` plays by default). A real deployment mounts its own city file
# and rules over these paths.
COPY deploy/urban-supervisor/config.yaml /etc/urban-supervisor/config.yaml
COPY rules/examples /etc/urban-supervisor/rules
RUN python -c "from simulators.city import write_city; write_city('/etc/urban-supervisor/city.json', seed=1, devices=200)"

WORKDIR /var/lib/urban-supervisor
USER urban
VOLUME ["/var/lib/urban-supervisor"]
EXPOSE 8080

ENTRYPOINT ["urban-supervisor"]
CMD ["run", "--config", "/etc/urban-supervisor/config.yaml"]
