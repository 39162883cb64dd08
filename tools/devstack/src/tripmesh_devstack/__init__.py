"""Embedded NATS (JetStream), PostgreSQL and Qdrant storage, and the process supervisor
behind `make up` and the e2e tests. See tools/devstack/README.md."""

from tripmesh_devstack.nats import NatsServer, NatsUser
from tripmesh_devstack.ports import free_port, free_ports
from tripmesh_devstack.postgres import PostgresServer
from tripmesh_devstack.services import SERVICES, ServiceSpec, StackError, default_services
from tripmesh_devstack.supervisor import Stack

__all__ = [
    "SERVICES",
    "NatsServer",
    "NatsUser",
    "PostgresServer",
    "ServiceSpec",
    "Stack",
    "StackError",
    "default_services",
    "free_port",
    "free_ports",
]
