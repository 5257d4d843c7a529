"""The gateway's Flask app factory, and building it from settings."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterable

import redis
from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.gateway.auth import WorkerAuthenticator
from fedgrid.gateway.diffcheck import LayoutCache
from fedgrid.gateway.hosting import JobHost
from fedgrid.gateway.jobs import JobCache
from fedgrid.gateway.ratelimit import Limits, RateLimiter
from fedgrid.gateway.reports import ReportIntake
from fedgrid.gateway.sessions import SessionIssuer
from fedgrid.jobconfig import ServerConfig
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.objectstore import ObjectStore, object_store_from_settings
from fedgrid.secagg.averaging import secure_config, vector_length
from fedgrid.tensors import load_state_stream
from fedgrid.v1 import model_store_pb2 as pb
from fedgrid_gateway.admin_views import admin_routes
from fedgrid_gateway.bodies import BodyTimeouts
from fedgrid_gateway.content_views import content_routes
from fedgrid_gateway.context import EXTENSION, Gateway
from fedgrid_gateway.errors import register_error_handlers
from fedgrid_gateway.metrics import GatewayMetrics
from fedgrid_gateway.secagg_views import secagg_routes
from fedgrid_gateway.worker_views import worker_routes

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    model_store: ModelStoreClient,
    cycle_manager: CycleManagerClient,
    store: ObjectStore,
    redis_client: redis.Redis,
    authenticator: WorkerAuthenticator | None = None,
    body_timeouts: BodyTimeouts | None = None,
) -> Flask:
    """A gateway app over the given clients; refuses to build without its secrets."""
    admin_token = settings.require("admin_token")
    sessions = SessionIssuer.from_settings(settings)

    def load_checkpoint(job_id: str, number: int) -> Iterable[bytes]:
        job = jobs.get(job_id).job
        _, data = model_store.open_checkpoint(job.name, job.version, number=number)
        return data

    def register(job: pb.Job, config: ServerConfig) -> object:
        size = 0
        if secure_config(config):
            # Secure aggregation masks vectors as long as the model.
            _, data = model_store.open_checkpoint(job.name, job.version, number=1)
            size = vector_length(load_state_stream(io.BytesIO(b"".join(data))))
        return cycle_manager.register_job(
            job.id,
            job.name,
            job.version,
            config.to_json(),
            checkpoint_number=1,
            model_size=size,
        )

    jobs = JobCache(model_store.get_job_by_id)
    gateway = Gateway(
        settings=settings,
        model_store=model_store,
        cycle_manager=cycle_manager,
        store=store,
        limiter=RateLimiter(
            redis_client, settings.redis_prefix, Limits.from_settings(settings)
        ),
        sessions=sessions,
        authenticator=authenticator or WorkerAuthenticator(),
        jobs=jobs,
        reports=ReportIntake(store, LayoutCache(load_checkpoint), cycle_manager),
        host=JobHost(model_store, register),
        metrics=GatewayMetrics(),
        admin_token=admin_token,
        body_timeouts=body_timeouts or BodyTimeouts(),
    )

    app = Flask("fedgrid_gateway")
    app.config["MAX_CONTENT_LENGTH"] = None
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = gateway
    app.register_blueprint(worker_routes)
    app.register_blueprint(content_routes)
    app.register_blueprint(admin_routes)
    app.register_blueprint(secagg_routes)
    register_error_handlers(app)
    _add_service_routes(app, gateway)
    return app


def _add_service_routes(app: Flask, gateway: Gateway) -> None:
    metrics = gateway.metrics

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        started = g.get("started")
        if started is not None:
            metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(
            generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST
        )


def build_app(settings: Settings) -> Flask:
    """The gateway app with real clients built from settings."""
    return create_app(
        settings,
        model_store=ModelStoreClient(
            settings.model_store_address, chunk_bytes=settings.chunk_bytes
        ),
        cycle_manager=CycleManagerClient(settings.cycle_manager_address),
        store=object_store_from_settings(settings),
        redis_client=redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        ),
    )
