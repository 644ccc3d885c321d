"""Training (tf.distribute) and evaluation entry points."""
