"""OpenTelemetry traces, off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

One server span a request, begun at the outermost ASGI layer (so a shed request has one too)
and joined to the router's trace when it sends a W3C ``traceparent``; child spans for each SQL
statement, each Redis call and each password hash. Spans are exported over OTLP/HTTP by the
SDK's batch processor, on a thread of its own: never on the event loop. The standard
``OTEL_*`` variables (service name, headers, sampling) apply as the SDK reads them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..config import Settings

SERVICE_NAME = "microblog"


class Tracing:
    """The extension: created once, wired with ``init_app``; ``enabled`` False costs nothing."""

    def __init__(self) -> None:
        self.enabled = False
        self._tracer: Any = None
        self._provider: Any = None

    def init_app(self, settings: Settings, *, exporter: Any = None) -> None:
        """Trace to the OTLP endpoint the settings name, or to ``exporter`` (tests)."""
        self.shutdown()
        if exporter is None and not settings.otel_exporter_otlp_endpoint:
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processor: Any = BatchSpanProcessor(OTLPSpanExporter())
        else:
            processor = SimpleSpanProcessor(exporter)
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        provider.add_span_processor(processor)
        self._provider, self._tracer = provider, provider.get_tracer("microblog")
        self.enabled = True

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()  # exports what is left
        self.enabled, self._provider, self._tracer = False, None, None

    def start_request(self, scope: dict[str, Any]) -> tuple[Any, object]:
        """The request's server span, made current; and the token that ends its reign."""
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
        span = self._tracer.start_span(
            scope["method"],
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]},
        )
        return span, context.attach(trace.set_span_in_context(span))

    def end_request(self, span: Any, token: object, route: str | None, status: int) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        if route is not None:
            span.update_name(f"{span.name} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        context.detach(token)  # type: ignore[arg-type]
        span.end()

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Any]:
        """A child span of whatever span is current (a no-op when tracing is off)."""
        if not self.enabled:
            yield None
            return
        with self._tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    def start_child(self, name: str, **attributes: Any) -> Any:
        """A child span the caller ends (for hooks that begin and end in separate calls)."""
        return self._tracer.start_span(name, attributes=attributes)


def statement_name(sql: str) -> str:
    """A span's name for a statement: its first word (SELECT, INSERT, ...), never its values."""
    return sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "SQL"


tracing = Tracing()
