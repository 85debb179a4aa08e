# Synergy Serve: the four committed models behind one HTTP service.
#
#   docker build -t synergy-serve .                                   # CPU (Keras on JAX)
#   docker build -t synergy-serve:gpu --build-arg VARIANT=gpu --build-arg KERAS_BACKEND=tensorflow .
#   docker run --rm -p 8000:8000 -p 8081:8081 synergy-serve           # http://127.0.0.1:8000/docs
#   docker run --rm --gpus all -p 8000:8000 synergy-serve:gpu
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- build: the virtualenv
FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ARG KERAS_BACKEND=jax
RUN if [ "$VARIANT" = "gpu" ] && [ "$KERAS_BACKEND" != "tensorflow" ]; then \
        echo "VARIANT=gpu installs TensorFlow with CUDA: add --build-arg KERAS_BACKEND=tensorflow" >&2; \
        exit 1; \
    fi
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements/runtime.lock requirements/gpu.txt /tmp/requirements/
# Pinned: the same versions CI tested. The GPU variant adds TensorFlow with its CUDA libraries
# (Keras then runs on TensorFlow; JAX stays as the CPU fallback).
RUN pip install -r /tmp/requirements/runtime.lock \
    && if [ "$VARIANT" = "gpu" ]; then pip install -r /tmp/requirements/gpu.txt; fi \
    && find /opt/venv -name 'tests' -path '*/site-packages/*/tests' -prune -exec rm -rf {} + \
    && python -m pip uninstall --yes --quiet pip setuptools \
    && python -m compileall -q -j 0 /opt/venv/lib

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
# JAX on CPU: a third of TensorFlow's size and ~4x less overhead per model call.
ARG KERAS_BACKEND=jax
LABEL org.opencontainers.image.title="synergy-serve" \
      org.opencontainers.image.description="scikit-learn and Keras models served side by side" \
      org.opencontainers.image.source="https://github.com/synergy-serve/synergy-serve"
# JSON log lines in the container even under `docker run -t` (log collectors parse them);
# `-e SYNERGY_LOG_FORMAT=text` for a person reading `docker logs`.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SYNERGY_HOST=0.0.0.0 \
    SYNERGY_PORT=8000 \
    SYNERGY_GRPC_PORT=8081 \
    SYNERGY_MODELS_DIR=/srv/models \
    SYNERGY_STORE_DIR=/data \
    SYNERGY_LOG_FORMAT=json \
    KERAS_BACKEND=${KERAS_BACKEND} \
    MPLCONFIGDIR=/opt/matplotlib
RUN groupadd --system --gid 10001 synergy \
    && useradd --system --uid 10001 --gid synergy --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin synergy
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY app/ app/
COPY models/ models/
# Readable by the service user whatever the build context's permissions were; bytecode
# compiled now (that user cannot write here), for a faster start.
RUN chmod -R a+rX app models && python -m compileall -q app \
    && mkdir /data && chown 10001:10001 /data
# The prediction store (SQLite, monitoring.sqlite3) lives here, the one writable path besides
# /tmp. Mount a named volume (docker run -v synergy-data:/data) to keep it across containers;
# without one, Docker/Podman create an anonymous volume, owned by the synergy user. Several
# replicas share PostgreSQL instead: SYNERGY_DATABASE_URL.
VOLUME ["/data"]
# matplotlib's font cache (report charts), built now: the service user has no home and the
# root filesystem may be read-only, where matplotlib would rebuild it in /tmp at every start.
RUN python -c "import matplotlib.font_manager" && chmod -R a+rX /opt/matplotlib
USER 10001:10001
# HTTP (REST, docs, metrics) and gRPC (Open Inference Protocol).
EXPOSE 8000 8081
# No curl in the slim image: the check is Python's standard library.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-m", "app.healthcheck"]
STOPSIGNAL SIGTERM
# Exec form: the server is PID 1 and gets SIGTERM itself (it drains, then exits 0).
ENTRYPOINT ["python", "-m", "app"]
