"""Where models train: the :class:`~oncorwe.compute.trainer.Trainer` and its backends
(pooled in this process, federated sites over TLS on loopback, a Dask cluster)."""
