"""Training: the state, the loss records, the (accumulating) train step, the loop.

  state       TrainState, the optimiser (AdamW + warm-up cosine), shardings and sharded init
  losses      one record per loss a config may name; bound to its options on a mesh
  step        the jitted train step (one path for every loss) and its diagnostics
  accumulate  contrastive gradient accumulation (BASIC / GradCache)
  records     metrics.jsonl / eval.jsonl and their PNG plots
  loop        train_and_evaluate(config, workdir)

The task (model + how a batch becomes (x, y)) is `contrastive.task`, the data from the config
`contrastive.data.from_config`, the periodic evaluation `contrastive.evaluate.suite`.
"""
