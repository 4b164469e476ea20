"""Output: rows become tables people query.

    write.py  worker side: rows staged as Parquet shards, checked against `pipeline.schema`
    store.py  `DIR/results.duckdb` and its Parquet copy: staged shards committed, a page's rows replaced
    query.py  `formdigits query`: read-only SQL over the tables
BigQuery output is written by the job's graph (`pipeline.job.beam_pipeline`) with Beam's WriteToBigQuery.
"""
