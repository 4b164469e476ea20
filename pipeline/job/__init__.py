"""The job: the Beam graph that runs the stages, and what runs it.

    config.py         a run's settings, a frozen part a concern: input, reading, serving, output
    beam_pipeline.py  the graph: files -> ReadPages -> SegmentPage -> RunInference -> AssemblePage -> writes
    run.py            `formdigits run`: runner choice, the embedded server, progress, the summary
    streaming.py      local streaming: new files in micro-batches
    dataflow.py       runner options; the translated Dataflow job (`--dry-run`)
    loopback.py       Beam's local runner listening on loopback only
    progress.py       workers' progress files summed by the driver
    workers.py        a dead local worker stops the run in one line
"""
