"""The server side of `serving/`: the local TF Serving stand-in and the real server's launcher.

Nothing here is imported by a Beam worker, which needs only the client
(`serving.client`). TensorFlow is imported only when a model is loaded.
"""
