"""BASIC (Pham et al. 2021): a very large batch reached by contrastive gradient accumulation.

The CLIP recipe with batch 65,536 split into micro-batches: every micro-batch is embedded
without keeping activations, the full-batch loss gives the embeddings' gradient, and each
micro-batch is re-run to back-propagate its slice. Variants as in `clip.py` plus
`micro=16` (number of micro-batches).
"""
from configs import clip
from configs import common


def get_config(arg=None):
    args = common.parse_arg(arg, micro=16, batch=65536, model="vit_b16", runlocal=False)
    c = clip.get_config(f"{args.model},batch={args.batch}" + (",runlocal" if args.runlocal else ""))
    c.num_microbatches = 2 if args.runlocal else args.micro
    c.model.temperature_init = 0.07
    c.optimizer.learning_rate = 1e-3
    return c
