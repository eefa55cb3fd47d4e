"""python -m contrastive.evaluate --workdir=DIR [--step=S] [--json=PATH] [--mesh=JSON]

Runs every evaluator on a run's checkpoint (the latest, or step S), prints a table and writes
JSON (default DIR/evaluate_step{S}.json). A mistake (no workdir, no checkpoint, an unknown step,
classes without prompts, a mesh that does not fit) is one line on stderr and exit status 2; a
failed read or write one line naming the path and exit status 1. --debug adds the traceback.
The latest checkpoint that fails to restore is passed over for the one before, as in training.
"""
import json

from absl import app, flags, logging

from contrastive import errors

_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (config.json, checkpoints/).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: the latest).")
_JSON = flags.DEFINE_string("json", None, "Where to write the results (default: in the workdir).")
_MESH = flags.DEFINE_string("mesh", None, 'Mesh axis sizes as JSON, e.g. \'{"data": -1}\' '
                            "(default: the run's).")
_DEBUG = flags.DEFINE_boolean("debug", False, "Show the traceback of an error, not one line.")
flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every file it reads at INFO
    from contrastive.evaluate import standalone  # pylint: disable=import-outside-toplevel

    def body():
        try:
            mesh = json.loads(_MESH.value) if _MESH.value else None
        except json.JSONDecodeError as error:
            raise errors.UserError(f"--mesh is not JSON: {error}") from None
        standalone.run(_WORKDIR.value, _STEP.value, _JSON.value, mesh)

    errors.report(body, _DEBUG.value)


if __name__ == "__main__":
    app.run(main)
