"""Training face embeddings: triplet loss with online mining on PK batches, and the learned similarity head."""
