# The modelroll operator image: non-root, read-only root filesystem friendly.
# hack/images.sh builds without Docker on a local Debian python base; the default is unchanged.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# operator/modelroll/templates links here; the wheel takes the templates in as package data.
COPY templates ./templates
# A virtualenv copied whole into the final stage: no wheels layer left behind in the image.
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
# A passwd entry for the UID: kopf names its peering identity after getpass.getuser().
RUN useradd --uid 65532 --user-group --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin modelroll
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8000 8081
ENTRYPOINT ["modelroll-operator"]
