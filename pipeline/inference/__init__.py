"""Inference: pages' digit crops go to TF Serving in batches, over gRPC.

    infer.py  `TFServingModelHandler`, a Beam `RemoteModelHandler` over pages: uint8 crops in
              `tensor_content`, requests split to the server's size, retries while the server is away,
              a typed `InferenceFailed` when it stays away past --serving-timeout
"""
