"""Input data: tfds sources, tokenizers, augmentations, the resumable multi-host pipeline.

Modules, by topic:
  digits       the embedded default dataset (scikit-learn's digits with captions), a tfds builder
  tfds_source  a named tfds dataset + split from a user data_dir, as a random-access source
  webdataset_source  img2dataset tar shards (brace patterns), indexed with tarfile
  csv_source   CSV/TSV of image paths and captions
  decode       bytes -> record (RGB uint8, caption); BadRecordError for what cannot be used
  sources      config.data.name -> source (digits, tfds, webdataset, csv)
  tokenizer    word tokenizer (default), SentencePiece (any special ids), from_setting
  clip_bpe     CLIP's BPE, OpenCLIP's ids (vocab in assets/)
  hf_tokenizer Hugging Face `tokenizers` JSON files
  image        crop/resize and the fixed pixel normalisation
  augment      SimCLR's augmentations, two views
  image_text   image-text crops (centre, random-resized, inception), uint8/bf16 out
  prepare      CLI: CSV -> webdataset shards, CSV -> SentencePiece model
  examples     record -> model-input transforms (image-text, two views, labelled image)
  pipeline     shuffled, per-process, batched, checkpointable iterator
  sharding     global batch assembly with jax.make_array_from_process_local_data
  from_config  the sources, tokenizer, transforms, train iterator and eval split a config names
"""
