"""Apache Beam jobs that turn tracking datasets into sharded TFRecords."""
