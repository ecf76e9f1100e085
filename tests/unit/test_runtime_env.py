"""The runtime's environment is a contract: what the operator renders, the runtime accepts.

Every example is rendered with the operator's own pure renderer, and the model server
container's env (on top of the image's ENV defaults, as a pod sees it) is parsed by the
runtime's own settings parser, which rejects unknown MODELROLL_* names and invalid values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelroll.cli.render_command import render_model_deployment
from modelroll_runtime.config import PREFIX, ConfigError, ProxySettings, Settings, known_names
from modelroll_runtime.formats import FORMATS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
CONTAINER = "model-server"
# With spec.runtime.container the runtime image runs only as this init container (and the
# metrics sidecar, whose proxy settings are its own module's contract).
FETCH_CONTAINER = "model-fetch"
SIDECAR = "metrics-proxy"


def has_own_container(example: Path) -> bool:
    body = yaml.safe_load(example.read_text())
    return "container" in (body["spec"].get("runtime") or {})


RUNTIME_EXAMPLES = [e for e in EXAMPLES if not has_own_container(e)]
CONTAINER_EXAMPLES = [e for e in EXAMPLES if has_own_container(e)]


def image_env() -> dict[str, str]:
    """The ENV defaults of the runtime image (runtime_images/Dockerfile, final stage)."""
    text = (REPO / "runtime_images" / "Dockerfile").read_text().replace("\\\n", " ")
    final_stage = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.startswith("ENV "):
            for token in line.split()[1:]:
                name, value = token.split("=", 1)
                env[name] = value
    return env


def rendered_env(example: Path, container: str = CONTAINER) -> list[dict[str, Any]]:
    children = render_model_deployment(yaml.safe_load(example.read_text()))
    (deployment,) = (c for c in children if c["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    containers = pod["containers"] + pod.get("initContainers", [])
    (server,) = (c for c in containers if c["name"] == container)
    env: list[dict[str, Any]] = server["env"]
    return env


def settings_of(env: list[dict[str, Any]]) -> Settings:
    """What the runtime reads from this env. A valueFrom entry's value is known only in the
    cluster, so only its name is checked."""
    literal = image_env()
    for entry in env:
        if "valueFrom" in entry:
            name = entry["name"]
            if name.startswith(PREFIX) and name not in known_names():
                raise ConfigError(f"{name} (valueFrom) is not a runtime setting")
        else:
            literal[entry["name"]] = entry["value"]
    return Settings.from_env(literal)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5, EXAMPLES


@pytest.mark.parametrize("example", RUNTIME_EXAMPLES, ids=lambda p: p.name)
def test_every_rendered_example_env_is_accepted_by_the_runtime(example: Path) -> None:
    body = yaml.safe_load(example.read_text())
    env = rendered_env(example)
    settings = settings_of(env)
    names = {e["name"] for e in env}
    assert {"MODELROLL_MODEL_URI", "MODELROLL_MODEL_FORMAT"} <= names
    assert settings.model_name == body["metadata"]["name"]
    assert settings.model_format == body["spec"]["model"]["format"]
    assert settings.exit_on_load_failure  # pods report load failures through restarts
    assert settings.http_port == 8080


@pytest.mark.parametrize("example", CONTAINER_EXAMPLES, ids=lambda p: p.name)
def test_every_rendered_fetch_env_is_accepted_by_the_runtime(example: Path) -> None:
    body = yaml.safe_load(example.read_text())
    settings = settings_of(rendered_env(example, FETCH_CONTAINER))
    assert settings.model_name == body["metadata"]["name"]
    assert settings.model_uri == body["spec"]["model"]["uri"]
    assert settings.model_format == body["spec"]["model"]["format"]
    assert settings.model_dir == Path("/mnt/models")  # where the user's server reads it


def test_the_rendered_sidecar_env_is_accepted_by_the_proxy(tmp_path: Path) -> None:
    body = yaml.safe_load((REPO / "examples" / "custom-fastapi.yaml").read_text())
    body["spec"]["runtime"]["container"]["metrics"] = {"sidecar": True}
    example = tmp_path / "sidecar.yaml"
    example.write_text(yaml.safe_dump(body))
    env = {**image_env(), **{e["name"]: e["value"] for e in rendered_env(example, SIDECAR)}}
    settings = ProxySettings.from_env(env)
    assert settings.upstream == "http://127.0.0.1:8000"
    assert settings.protocol == "v2"
    assert settings.http_port == 8080
    assert (settings.model_name, settings.model_version) == ("iris-fastapi", "1")


def test_there_are_examples_of_own_containers() -> None:
    names = {p.name for p in CONTAINER_EXAMPLES}
    assert names == {"custom-fastapi.yaml", "triton.yaml", "tfserving.yaml", "vllm-gpu.yaml"}


def test_the_image_defaults_are_runtime_settings() -> None:
    defaults = {k for k in image_env() if k.startswith(PREFIX)}
    assert defaults, "no MODELROLL_* ENV in the Dockerfile"
    assert defaults <= known_names()


def test_a_misspelt_variable_fails_the_contract() -> None:
    # the control for the test above: the same check refuses what the runtime would ignore
    env = rendered_env(REPO / "examples" / "sklearn-iris.yaml")
    env.append({"name": "MODELROLL_MAX_BATCH_SIZ", "value": "8"})
    with pytest.raises(ConfigError, match=r"MODELROLL_MAX_BATCH_SIZ is not a runtime setting"):
        settings_of(env)


def test_a_misspelt_secret_reference_fails_the_contract() -> None:
    secret = {"secretKeyRef": {"name": "iris-auth", "key": "token"}}
    env = rendered_env(REPO / "examples" / "sklearn-iris.yaml")
    settings_of([*env, {"name": "MODELROLL_AUTH_TOKEN", "valueFrom": secret}])
    with pytest.raises(ConfigError, match=r"MODELROLL_AUTH_TOKN \(valueFrom\) is not"):
        settings_of([*env, {"name": "MODELROLL_AUTH_TOKN", "valueFrom": secret}])


def test_an_invalid_value_fails_the_contract() -> None:
    env = [
        {**e, "value": "0"} if e["name"] == "MODELROLL_MAX_BATCH_SIZE" else e
        for e in rendered_env(REPO / "examples" / "xgboost.yaml")
    ]
    with pytest.raises(ConfigError, match=r"MODELROLL_MAX_BATCH_SIZE must be between 1 and"):
        settings_of(env)


def test_docs_list_exactly_the_variables_the_runtime_reads() -> None:
    table = (REPO / "docs" / "runtime.md").read_text().split("## Configuration", 1)[1]
    table = table.split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(MODELROLL_[A-Z0-9_]+)` \|", table, re.MULTILINE))
    assert documented == known_names()


def test_the_crd_offers_exactly_the_registered_formats() -> None:
    crd = yaml.safe_load((REPO / "crds" / "modelroll.io_modeldeployments.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    model_format = spec["properties"]["model"]["properties"]["format"]
    assert model_format["enum"] == list(FORMATS)


def test_the_rendered_tls_settings_are_accepted_by_the_runtime(tmp_path: Path) -> None:
    body = yaml.safe_load(EXAMPLES[0].read_text())
    body["spec"].setdefault("runtime", {})["tls"] = {"secretRef": {"name": "iris-tls"}}
    example = tmp_path / "tls.yaml"
    example.write_text(yaml.safe_dump(body))
    settings = settings_of(rendered_env(example))
    assert settings.tls_cert_file == Path("/etc/modelroll/tls/tls.crt")
    assert settings.tls_key_file == Path("/etc/modelroll/tls/tls.key")
