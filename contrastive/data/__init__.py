"""Input data: tfds sources, tokenizers, augmentations, the resumable multi-host pipeline.

Modules, by topic:
  digits       the embedded default dataset (scikit-learn's digits with captions), a tfds builder
  tfds_source  a named tfds dataset + split from a user data_dir, as a random-access source
  tokenizer    word tokenizer (default) and SentencePiece (real text)
  image        crop/resize and the fixed pixel normalisation
  augment      SimCLR's augmentations, two views
  examples     record -> model-input transforms (image-text, two views, labelled image)
  pipeline     shuffled, per-process, batched, checkpointable iterator
  sharding     global batch assembly with jax.make_array_from_process_local_data
  from_config  the sources, tokenizer, transforms, train iterator and eval split a config names
"""
