"""python -m contrastive.main --config=configs/X.py[:arg] --workdir=DIR [--config.FIELD=VALUE]

The only module that reads flags. Multi-host: pass --coordinator_address, --num_processes and
--process_id, or on a TPU pod / SLURM job let jax.distributed read them from the environment.
"""
import difflib
import importlib.util
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:arg].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
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


def _parse_flags(argv):
    """absl's parsing, with one clear message for a misspelled --config.FIELD."""
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as error:
        valid = sorted(_field_paths(_load_config(argv)))
        for arg in argv[1:]:
            path = arg.lstrip("-").split("=", 1)[0].removeprefix("config.")
            if arg.startswith("--config.") and path in RENAMED:
                sys.exit(f"Config field {path!r} was renamed {RENAMED[path]!r}: use "
                         f"--config.{RENAMED[path]}=")
            if arg.startswith("--config.") and path not in valid:
                near = difflib.get_close_matches(path, valid, n=5, cutoff=0.5)
                scope = [v for v in valid if v.rpartition(".")[0] == path.rpartition(".")[0]]
                sys.exit(f"Unknown config field {path!r} in {arg.split('=')[0]}. "
                         f"Did you mean: {', '.join(near) or 'none close'}? "
                         f"Valid fields there: {', '.join(scope or valid)}")
        sys.exit(f"Bad config override: {error}")


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
    _initialise_distributed()
    from contrastive.train import loop  # pylint: disable=import-outside-toplevel

    message = renamed_fields_error(_CONFIG.value)
    if message:
        sys.exit(message)
    logging.info("config:\n%s", _CONFIG.value)
    loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
