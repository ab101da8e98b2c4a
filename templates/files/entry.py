"""Container entrypoint: Honeycomb settings → OTLP headers, then exec the app, under OpenTelemetry's
wrapper unless the app sets OpenTelemetry up itself (IMAGEWRIGHT_OTEL_MODE=app) or it is disabled.

Runs as `python -I -S` (stdlib only, fast) and execs, so the app ends up as PID 1.

OpenTelemetry starts in the app's own interpreter: otel/sitecustomize.py, first on PYTHONPATH, sets
it up from the plan resolved at build time before the app's code runs.
IMAGEWRIGHT_OTEL_START=wrapper execs the app under `opentelemetry-instrument` instead (the same
set-up, found again at every start: slower; kept for comparison).
"""

import os
import sys


def on_path(name: str, path: str) -> bool:
    """Whether exec can find `name` (what the wrapper would otherwise fail on with a traceback)."""
    if "/" in name:
        return os.access(name, os.X_OK)
    return any(os.access(os.path.join(folder, name), os.X_OK) for folder in path.split(os.pathsep)
               if folder)


def main() -> None:
    command = sys.argv[1:]
    if not command:
        sys.exit("imagewright entrypoint: no command given")
    env = os.environ
    if not on_path(command[0], env.get("PATH", "")):
        print(f"imagewright entrypoint: {command[0]!r} is not in the image "
              f"(PATH={env.get('PATH', '')}): add the package that provides it to the "
              "requirements, or to prod.pip_packages / dev.pip_packages in image.yaml",
              file=sys.stderr)
        sys.exit(127)
    # The key is a run-time secret: it is read here, never baked into the image.
    api_key = env.get("HONEYCOMB_API_KEY", "")
    if api_key and not env.get("OTEL_EXPORTER_OTLP_HEADERS"):
        headers = [f"x-honeycomb-team={api_key}"]
        if env.get("HONEYCOMB_DATASET"):
            headers.append(f"x-honeycomb-dataset={env['HONEYCOMB_DATASET']}")
        env["OTEL_EXPORTER_OTLP_HEADERS"] = ",".join(headers)
    # Honeycomb files metrics under a dataset named by the export, not by the service: the metrics
    # exporter reads its own headers variable instead of the shared one.
    if api_key and not env.get("OTEL_EXPORTER_OTLP_METRICS_HEADERS"):
        dataset = (env.get("HONEYCOMB_METRICS_DATASET")
                   or f"{env.get('OTEL_SERVICE_NAME', 'unknown_service')}-metrics")
        env["OTEL_EXPORTER_OTLP_METRICS_HEADERS"] = (
            f"x-honeycomb-team={api_key},x-honeycomb-dataset={dataset}")
    if env.get("IMAGEWRIGHT_OTEL_CONSOLE", "").lower() in ("1", "true"):
        env["OTEL_TRACES_EXPORTER"] = "console,otlp"
    # Debug-level logs from the SDK and exporters, on demand (the logging instrumentation's level).
    if env.get("IMAGEWRIGHT_OTEL_DEBUG", "").lower() in ("1", "true"):
        env["OTEL_PYTHON_LOG_CORRELATION"] = "true"
        env["OTEL_PYTHON_LOG_LEVEL"] = "debug"
    # Disabled means not even imported: the SDK's import cost is most of the wrapper's startup cost.
    # An app that sets OpenTelemetry up itself (otel.mode: app) owns its TracerProvider: no wrapper,
    # and the environment above is what its SDK reads.
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("IMAGEWRIGHT_OTEL_MODE") == "app":
        os.execvp(command[0], command)
    start = env.get("IMAGEWRIGHT_OTEL_START", "in-process")
    if start == "wrapper":
        os.execvp("opentelemetry-instrument", ["opentelemetry-instrument", *command])
    if start != "in-process":
        sys.exit(f"imagewright entrypoint: IMAGEWRIGHT_OTEL_START={start!r}: "
                 "expected 'in-process' (the default) or 'wrapper'")
    env["PYTHONPATH"] = python_path(os.path.join(os.path.dirname(__file__), "otel"),
                                    env.get("PYTHONPATH", ""), os.getcwd())
    os.execvp(command[0], command)


def python_path(otel_folder: str, current: str, working_dir: str) -> str:
    """Our sitecustomize first; then, as the wrapper does, the working directory (apps started by
    their own executable, e.g. Django's manage.py, import from it), then the user's own entries."""
    folders = [folder for folder in current.split(os.pathsep) if folder and folder != otel_folder]
    if working_dir not in folders:
        folders.insert(0, working_dir)
    return os.pathsep.join([otel_folder, *folders])


if __name__ == "__main__":
    main()
