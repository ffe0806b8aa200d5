"""Batch scoring on Apache Spark (the ``spark`` extra: pyspark), with the server's checks."""
