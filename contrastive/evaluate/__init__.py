"""Evaluation of frozen embeddings: zero-shot classification, nearest neighbours.

  zero_shot  prompt-ensemble classifier from a text tower, top-1 accuracy
  knn        nearest-neighbour top-1 on image features
  embed      a model's embeddings of a whole array, in sharded batches
(Retrieval, linear probes and geometry come with the evaluation suite.)
"""
