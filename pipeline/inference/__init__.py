"""Inference: pages' digit crops go to TF Serving in batches, over gRPC.

    infer.py  `TFServingModelHandler`, a Beam `RemoteModelHandler` over pages: uint8 crops in
              `tensor_content`, requests split to the server's size; one retry policy (waits while the
              server is away, asks a busy one again), a refused page's `InferenceFailed`, a typed stop
              when the server stays away past --serving-timeout, `DeadLetter` for what Beam gives up on
"""
