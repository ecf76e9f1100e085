"""Entry point of `modelroll` and `kubectl-modelroll`: argument parsing and output only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from modelroll.cli import actions, dashboard_server, package_command, predict
from modelroll.cli.cluster import NotFound, Target, connect, get_model_deployment
from modelroll.cli.lint import lint_object
from modelroll.cli.manifest_yaml import dump_manifests
from modelroll.cli.manifests import model_deployments
from modelroll.cli.render_command import render_model_deployment
from modelroll.cli.status_command import snapshot, watch
from modelroll.kube import ApiError
from modelroll.render import port_names
from modelroll.spec import parse_spec

app = typer.Typer(
    name="modelroll",
    help="Review, inspect and steer modelroll ModelDeployments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (default: the context's).")
]
Kubeconfig = Annotated[
    str | None,
    typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (default: kubectl's)."),
]
Name = Annotated[str, typer.Argument(help="Name of the ModelDeployment.")]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _connect(name: str, namespace: str | None, kubeconfig: str | None) -> Target:
    # KUBECONFIG may list several files; the client takes one, kubectl's default otherwise.
    single = kubeconfig if kubeconfig and ":" not in kubeconfig else None
    return connect(name, namespace, single)


@app.command()
def lint(
    files: Annotated[list[str], typer.Argument(help="YAML files ('-' for standard input).")],
) -> None:
    """Validate ModelDeployments offline against the CRD schema and its CEL rules."""
    failed = False
    for path in files:
        documents = model_deployments(path)
        if not documents:
            typer.echo(f"{path}: no ModelDeployment found")
            failed = True
        for document in documents:
            problems = lint_object(document.body)
            if not problems:
                typer.echo(f"{document.label}: valid")
                continue
            failed = True
            typer.echo(f"{document.label}: invalid")
            for problem in problems:
                typer.echo(f"  {problem}")
    if failed:
        raise typer.Exit(1)


@app.command()
def render(
    file: Annotated[str, typer.Argument(help="YAML file ('-' for standard input).")],
    namespace: Namespace = None,
    runtime_image: Annotated[
        str | None, typer.Option(help="The operator's default runtime image.")
    ] = None,
    service_monitor: Annotated[
        bool, typer.Option(help="Render as on a cluster with the ServiceMonitor CRD.")
    ] = False,
) -> None:
    """Print the children the operator would create for each ModelDeployment, offline."""
    documents = model_deployments(file)
    if not documents:
        raise _fail(f"{file}: no ModelDeployment found")
    rendered = []
    for document in documents:
        problems = lint_object(document.body)
        if problems:
            raise _fail(f"{document.label} is invalid:\n" + "\n".join(f"  {p}" for p in problems))
        rendered += render_model_deployment(
            document.body, namespace, runtime_image, service_monitor
        )
    typer.echo(dump_manifests(rendered), nl=False)


@app.command()
def status(
    name: Name,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    watch_: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
    iterations: Annotated[
        int | None, typer.Option(hidden=True, help="Stop --watch after this many frames.")
    ] = None,
) -> None:
    """Show revisions, traffic, rollout, conditions and recent Events."""
    target = _connect(name, namespace, kubeconfig)
    console = Console()
    if watch_:
        watch(lambda: snapshot(target), console, interval, iterations)
        return
    try:
        console.print(snapshot(target))
    except (NotFound, ApiError) as error:
        raise _fail(str(error)) from None


def _action(action: str, name: str, namespace: str | None, kubeconfig: str | None) -> None:
    target = _connect(name, namespace, kubeconfig)
    try:
        effect = actions.request(target, action)
    except (NotFound, ApiError) as error:
        raise _fail(str(error)) from None
    typer.echo(f"{target.namespace}/{name}: set {actions.annotation(action)}=true")
    typer.echo(effect)


def _register_action(action: str, summary: str) -> None:
    def command(name: Name, namespace: Namespace = None, kubeconfig: Kubeconfig = None) -> None:
        _action(action, name, namespace, kubeconfig)

    command.__doc__ = summary
    app.command(name=action)(command)


_register_action("promote", "Promote the running canary or blue-green preview now.")
_register_action("abort", "Abort the running rollout; traffic returns to the stable revision.")
_register_action("retry", "Roll out the aborted revision again.")
_register_action("rollback", "Return to the previous stable revision.")


@app.command()
def dashboard(
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace (default: all).")
    ] = None,
    kubeconfig: Kubeconfig = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free one).")] = 8765,
) -> None:
    """Serve a local web UI of the ModelDeployments, with their rollout buttons, until Ctrl-C."""
    single = kubeconfig if kubeconfig and ":" not in kubeconfig else None
    state = dashboard_server.connect(namespace, single)
    try:
        server = dashboard_server.serve(state, port)
    except OSError as error:
        raise _fail(f"cannot listen on {dashboard_server.HOST}:{port}: {error}") from None
    typer.echo(f"modelroll dashboard ({state.context}): http://127.0.0.1:{state.port}/", err=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command(name="predict")
def predict_command(
    name: Name,
    data: Annotated[str, typer.Option("--data", "-d", help="Request JSON, or @file.")],
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    protocol: Annotated[
        str | None, typer.Option(help="v2 or v1 (default: the ModelDeployment's).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="Base URL of a reachable runtime or gateway; skips the port-forward. An"
            " https:// URL of a runtime with spec.runtime.tls is verified with its Secret. With"
            " --protocol too, the cluster is not read, so no bearer token is sent and https is"
            " verified with the system's CAs."
        ),
    ] = None,
) -> None:
    """Send one inference request through a port-forward to a ready pod."""
    try:
        body = predict.load_data(data)
    except (OSError, ValueError) as error:
        raise _fail(f"--data: {error}") from None
    try:
        if url and protocol:
            answer = predict.send(url, name, protocol, body)
        else:
            answer = _predict_in_cluster(name, namespace, kubeconfig, protocol, url, body)
    except OSError as error:  # unreachable, a redirect (never followed), the deadline
        raise _fail(f"no answer from the runtime: {error}") from None
    try:
        typer.echo(json.dumps(answer.document(), indent=2))
    except ValueError:
        typer.echo(answer.body.decode(errors="replace"))
    if answer.status >= 300:
        raise _fail(f"the runtime answered HTTP {answer.status}")


@app.command(name="package")
def package(
    model_file: Annotated[
        Path,
        typer.Argument(
            help="The model file (joblib, XGBoost, ..., TorchScript, Keras) or SavedModel directory."
        ),
    ],
    reference: Annotated[
        Path, typer.Option(help="Reference rows: CSV with a header, Parquet (pyarrow) or .npy.")
    ],
    output: Annotated[Path, typer.Option(help="The package directory (new or empty).")],
    model_format: Annotated[
        str | None,
        typer.Option("--format", help="The model's format, when its name does not tell."),
    ] = None,
    categorical: Annotated[
        list[str] | None, typer.Option(help="A numeric column to profile as categorical.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="A reference column that is not a feature (the label).")
    ] = None,
    bins: Annotated[int, typer.Option(help="Quantile bins per numeric feature.")] = 10,
    top_k: Annotated[int, typer.Option(help="Values kept per categorical feature.")] = 10,
) -> None:
    """Package a model for the runtime: ONNX verified on the reference rows, schema, reference
    profile and a sha256 manifest (docs/drift.md)."""
    try:
        lines = package_command.run(
            model_file, reference, output, model_format, categorical or [], target, bins, top_k
        )
    except package_command.PackageFailed as error:
        raise _fail(str(error)) from None
    typer.echo("\n".join(lines))


def _predict_in_cluster(
    name: str,
    namespace: str | None,
    kubeconfig: str | None,
    protocol: str | None,
    url: str | None,
    body: object,
) -> predict.Answer:
    target = _connect(name, namespace, kubeconfig)
    try:
        md = get_model_deployment(target)
        spec = parse_spec(md.get("spec") or {})
        # a user's own container says what it speaks, and where (spec.runtime.container)
        chosen = protocol or spec.runtime.protocol
        (port, *_) = port_names(spec).values()
        token = predict.auth_token(target, md)
        trust = predict.runtime_trust(target, md)
        if url:
            return predict.send(url, name, chosen, body, token=token, trust=trust)
        pod = predict.ready_pod(target, md)
        with predict.port_forward(target, pod, port=port) as base_url:
            if trust is not None:
                base_url = predict.https_url(base_url)
            return predict.send(base_url, name, chosen, body, token=token, trust=trust)
    except (NotFound, ApiError, LookupError, RuntimeError) as error:
        raise _fail(str(error)) from None


if __name__ == "__main__":
    app()
