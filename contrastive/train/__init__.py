"""Training: state, optimiser, the (accumulating) train step, the loop.

  state       TrainState (params, model_state, opt_state, step, rng)
  optim       AdamW + warm-up cosine, weight-decay mask
  task        image-text (dual) or two-view (siamese) model -> embedding pairs
  losses      the config's loss by name, ring-sharded on a mesh
  step        the jitted train step and its diagnostics
  accumulate  contrastive gradient accumulation (BASIC / GradCache)
  init        abstract state, shardings and sharded init
  data        the config's data sources and iterators
  evaluators  periodic evaluation during training
  records     metrics.jsonl / eval.jsonl
  plots       PNG curves at the end
  loop        train_and_evaluate(config, workdir)
"""
