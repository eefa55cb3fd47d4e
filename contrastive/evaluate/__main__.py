"""python -m contrastive.evaluate --workdir=DIR [--step=S] [--json=PATH] [--mesh=JSON]
   python -m contrastive.evaluate --config=configs/X.py[:arg] [--config.FIELD=V] --json=PATH

Runs every evaluator on a run's checkpoint (the latest, or step S), prints a table and writes
JSON (default DIR/evaluate_step{S}.json). With --config instead of --workdir: the config's
evaluators on the weights file its model.pretrained names (a published model, as is).
A mistake (no workdir, no checkpoint, an unknown step, classes without prompts, a mesh or a file
that does not fit) is one line on stderr and exit status 2; a failed read or write one line
naming the path and exit status 1. --debug adds the traceback. The latest checkpoint that fails
to restore is passed over for the one before, as in training.
"""
import json

from absl import app, flags, logging
from ml_collections import config_flags

from contrastive import errors

_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (config.json, checkpoints/).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
_JSON = flags.DEFINE_string("json", None, "Where to write the results (default: in the workdir).")
_MESH = flags.DEFINE_string("mesh", None, 'Mesh axis sizes as JSON, e.g. \'{"data": -1}\' '
                            "(default: the run's).")
_DEBUG = flags.DEFINE_boolean("debug", False, "Show the traceback of an error, not one line.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Instead of --workdir: a config whose model.pretrained file is evaluated.",
    lock_config=False)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every file it reads at INFO
    from contrastive.evaluate import standalone  # pylint: disable=import-outside-toplevel

    if (_WORKDIR.value is None) == (_CONFIG.value is None):
        raise app.UsageError("give --workdir (a run's checkpoint) or --config (a weights file)")

    def body():
        try:
            mesh = json.loads(_MESH.value) if _MESH.value else None
        except json.JSONDecodeError as error:
            raise errors.UserError(f"--mesh is not JSON: {error}") from None
        if _CONFIG.value is not None:
            results = standalone.evaluate_pretrained(_CONFIG.value, mesh)
            print(standalone.format_table(results, _CONFIG.value.model.pretrained), flush=True)
            if _JSON.value:
                with open(_JSON.value, "w") as f:
                    json.dump({"pretrained": _CONFIG.value.model.pretrained,
                               "metrics": results}, f, indent=1)
            return
        standalone.run(_WORKDIR.value, _STEP.value, _JSON.value, mesh)

    errors.report(body, _DEBUG.value)


if __name__ == "__main__":
    app.run(main)
