"""python -m contrastive.main --config=configs/X.py[:arg] --workdir=DIR [--config.FIELD=VALUE]

The only module that reads flags. Multi-host: pass --coordinator_address, --num_processes and
--process_id, or on a TPU pod / SLURM job let jax.distributed read them from the environment.

A mistake (a misspelled or mistyped field, a value out of range, a workdir in use or trained
with another config) is one line on stderr and exit status 2; a failed write (disk full,
read-only, permission denied) one line naming the path and exit status 1. --debug adds the
traceback.
"""
import difflib
import importlib.util
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from contrastive import errors

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:arg].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_DEBUG = flags.DEFINE_boolean("debug", False, "Show the traceback of an error, not one line.")
flags.mark_flags_as_required(["config", "workdir"])


# Fields renamed since earlier versions: an old name is refused with its new one.
RENAMED = {"model.image_size": "model.image_variant", "model.text_size": "model.text_variant"}


def renamed_fields_error(config) -> str | None:
    """The message for a config that still sets a renamed field, or None."""
    fields = set(_field_paths(config))
    old = [name for name in RENAMED if name in fields]
    if not old:
        return None
    return "; ".join(f"config field {name!r} was renamed {RENAMED[name]!r}" for name in old)


def _field_paths(config, prefix=""):
    for key, value in config.items():
        yield prefix + key
        if hasattr(value, "items") and not isinstance(value, dict):
            yield from _field_paths(value, f"{prefix}{key}.")


def _load_config(argv):
    """The config named by --config=FILE[:ARG] in argv, loaded without its overrides."""
    spec = next(a.split("=", 1)[1] for a in argv if a.startswith("--config="))
    path, _, arg = spec.partition(":")
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("cfg", path))
    module.__spec__.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


def _refuse(message: str):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def _parse_flags(argv):
    """absl's parsing, with one line for a missing config file, a misspelled --config.FIELD or
    a value of the wrong type."""
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if spec is not None and not os.path.isfile(spec.partition(":")[0]):
        _refuse(f"--config={spec}: no such config file {spec.partition(':')[0]!r}")
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as error:
        valid = sorted(_field_paths(_load_config(argv)))
        for arg in argv[1:]:
            path = arg.lstrip("-").split("=", 1)[0].removeprefix("config.")
            if arg.startswith("--config.") and path in RENAMED:
                _refuse(f"Config field {path!r} was renamed {RENAMED[path]!r}: use "
                        f"--config.{RENAMED[path]}=")
            if arg.startswith("--config.") and path not in valid:
                near = difflib.get_close_matches(path, valid, n=5, cutoff=0.5)
                scope = [v for v in valid if v.rpartition(".")[0] == path.rpartition(".")[0]]
                _refuse(f"Unknown config field {path!r} in {arg.split('=')[0]}. "
                        f"Did you mean: {', '.join(near) or 'none close'}? "
                        f"Valid fields there: {', '.join(scope or valid)}")
        _refuse(f"Bad config override: {error}")
    except Exception as error:  # noqa: BLE001 - absl's own errors name the flag and the value
        if "--debug" in argv:
            raise
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        _refuse(" ".join(lines[:1] + lines[-1:] if len(lines) > 1 else lines))


def _config():
    """The parsed config; a config file that fails to load (e.g. an unknown `:arg`) is one
    line naming the reason."""
    try:
        config = _CONFIG.value
        config.keys()  # ml_collections defers a load failure to the first access
    except Exception as error:  # noqa: BLE001
        if _DEBUG.value:
            raise
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        _refuse(f"--config: {' '.join(str(cause).split())}")
    message = renamed_fields_error(config)
    if message:
        _refuse(message)
    return config


def _initialise_distributed():
    import jax  # pylint: disable=import-outside-toplevel

    if _COORDINATOR.value or (_NUM_PROCESSES.value or 1) > 1:
        # CPU processes need a collectives library (TPUs/GPUs ignore this); asking which
        # backend is in use would start it before initialize, which must come first.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    elif "," in os.environ.get("TPU_WORKER_HOSTNAMES", "") or int(
        os.environ.get("SLURM_NTASKS", "1")
    ) > 1:  # a multi-host TPU slice or a SLURM job: jax reads the cluster from the environment
        jax.distributed.initialize()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO
    config = _config()
    _initialise_distributed()
    from contrastive.train import loop  # pylint: disable=import-outside-toplevel

    logging.info("config:\n%s", config)
    errors.report(lambda: loop.train_and_evaluate(config, _WORKDIR.value), _DEBUG.value)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
