"""Evaluation of frozen embeddings (NumPy in, Python floats out):

  zero_shot     prompt-ensemble classifier from a text tower, top-1 / top-k accuracy
  retrieval     image<->text Recall@K, several captions per image, in query blocks
  knn           1-NN / majority and weighted (exp(s / T)) k-nearest-neighbour votes
  linear_probe  logistic regression (L-BFGS) with an L2 sweep on a validation split
  geometry      alignment, uniformity, modality gap, effective rank, pair cosines
  embed         a model's embeddings of a whole array, in sharded batches; unit rows
  suite         the evaluation a config asks for, during training and on a checkpoint
  standalone    every evaluator on a saved checkpoint (python -m contrastive.evaluate)
"""
