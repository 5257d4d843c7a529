"""Assembling the model store service from settings."""

from __future__ import annotations

from dataclasses import dataclass

from fedgrid.config import Settings
from fedgrid.db import Pool
from fedgrid.grpcserver import GrpcService
from fedgrid.modelstore.repository import Repository
from fedgrid.modelstore.service import ModelStore
from fedgrid.objectstore import object_store_from_settings
from fedgrid.v1 import model_store_pb2_grpc
from fedgrid_model_store.servicer import ModelStoreServicer

SERVICE_NAME = "fedgrid.v1.ModelStore"
MAX_CONNECTIONS = 8


@dataclass
class ModelStoreServer:
    """The gRPC server with the database pool it must close when it stops."""

    service: GrpcService
    pool: Pool

    def start(self) -> None:
        """Start serving."""
        self.service.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop serving, then close the database connections."""
        self.service.stop(grace)
        self.pool.close()


def build_server(settings: Settings, bind: str | None = None) -> ModelStoreServer:
    """Wire database, object store, service and servicer; not started yet."""
    pool = Pool(settings.database_url, maxconn=MAX_CONNECTIONS)
    try:
        store = ModelStore(
            Repository(pool, max_connections=MAX_CONNECTIONS),
            object_store_from_settings(settings),
        )
        servicer = ModelStoreServicer(store)
        service = GrpcService(
            SERVICE_NAME,
            [(model_store_pb2_grpc.add_ModelStoreServicer_to_server, servicer)],
            bind or f"{settings.host}:{settings.model_store_port}",
        )
    except BaseException:
        pool.close()
        raise
    return ModelStoreServer(service=service, pool=pool)
