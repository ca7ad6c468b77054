//! `arbiter_grpc_requests_total{call, code}`: a tower layer in front of every gRPC service that
//! counts each call once, when its status is known: from the headers of a trailers-only answer
//! (most refusals), else from the trailers at the end of the body (every success, and a watch
//! stream's end). A call whose body is dropped before its status (the client went away) counts
//! as `CANCELLED`.
//!
//! `call` is `Service/Method` only for the methods this server serves (read from the descriptors
//! it serves); any other path counts as `unknown`, so a client cannot grow the label set.

use super::{CallLabels, global};
use prost::Message as _;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::Body as HttpBody;

/// The gRPC status names, by code.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a `grpc-status` value; `UNKNOWN` for anything else.
fn code_name(value: Option<&http::HeaderValue>) -> Option<&'static str> {
    let v = value?;
    let n: usize = v.to_str().ok()?.trim().parse().ok()?;
    Some(CODES.get(n).copied().unwrap_or("UNKNOWN"))
}

/// Every `/package.Service/Method` this server serves.
static METHODS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let sets = [
        arbiter_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = HashSet::new();
    for bytes in sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(bytes) else {
            continue;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service_name = service.name.unwrap_or_default();
                for m in service.method {
                    let full = if package.is_empty() {
                        format!("/{service_name}/{}", m.name.unwrap_or_default())
                    } else {
                        format!("/{package}.{service_name}/{}", m.name.unwrap_or_default())
                    };
                    methods.insert(full);
                }
            }
        }
    }
    methods
});

/// The `call` label of a request path.
pub fn call_label(path: &str) -> String {
    if METHODS.contains(path) {
        path.trim_start_matches('/').to_owned()
    } else {
        "unknown".to_owned()
    }
}

/// The layer: one per server.
#[derive(Debug, Clone, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted { inner }
    }
}

/// The layer's service.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
}

type Reply<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Counted<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Reply<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let call = Arc::new(call_label(request.uri().path()));
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = match answer.await {
                Ok(r) => r,
                Err(e) => {
                    count(&call, "UNKNOWN");
                    return Err(e);
                }
            };
            if let Some(code) = code_name(response.headers().get("grpc-status")) {
                count(&call, code);
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let body = Body::new(Watched {
                inner: body,
                call: Some(call),
            });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

fn count(call: &str, code: &'static str) {
    global()
        .grpc_requests
        .get_or_create(&CallLabels {
            call: call.to_owned(),
            code,
        })
        .inc();
}

/// A response body that counts its call when the trailers pass (or when it ends without them).
struct Watched {
    inner: Body,
    /// Until counted.
    call: Option<Arc<String>>,
}

impl Watched {
    fn done(&mut self, code: &'static str) {
        if let Some(call) = self.call.take() {
            count(&call, code);
        }
    }
}

impl HttpBody for Watched {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = code_name(trailers.get("grpc-status")).unwrap_or("UNKNOWN");
                    self.done(code);
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => self.done("UNKNOWN"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.done("CANCELLED");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_are_labels() {
        assert_eq!(
            call_label("/Ydb.Maintenance.V1.MaintenanceService/CreateMaintenanceTask"),
            "Ydb.Maintenance.V1.MaintenanceService/CreateMaintenanceTask"
        );
        assert_eq!(
            call_label("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check"
        );
        assert_eq!(
            call_label("/Ydb.Maintenance.V1.MaintenanceService/Nope"),
            "unknown"
        );
        assert_eq!(call_label("/x/y"), "unknown");
    }
}
