//! The client's metrics, through the `metrics` facade (feature `metrics`;
//! without it these are no-ops). Names and labels are documented in the
//! crate README.

use std::time::Duration;

use crate::Error;

/// PDP calls, by method and outcome.
#[cfg(feature = "metrics")]
pub(crate) const CALLS: &str = "cerbos_client_calls_total";
/// The latency of PDP calls (retries included), in seconds.
#[cfg(feature = "metrics")]
pub(crate) const CALL_DURATION: &str = "cerbos_client_call_duration_seconds";
/// Retries after an `UNAVAILABLE` attempt, by method.
#[cfg(feature = "metrics")]
pub(crate) const RETRIES: &str = "cerbos_client_retries_total";

/// The `method` label of a gRPC path.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn method(path: &'static str) -> &'static str {
    match path.rsplit('/').next() {
        Some("CheckResources") => "check_resources",
        Some("PlanResources") => "plan_resources",
        Some("ServerInfo") => "server_info",
        _ => "other",
    }
}

/// The `outcome` label of a call's result.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::Unavailable { .. }) => "unavailable",
        Err(Error::Timeout(_)) => "timeout",
        Err(Error::InvalidArgument { .. }) => "invalid_argument",
        Err(Error::Status { .. }) => "status",
        Err(Error::MalformedResponse(_)) => "malformed_response",
        Err(Error::InvalidRequest(_)) => "invalid_request",
        Err(Error::Config(_)) => "config",
    }
}

/// Records one finished call.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn call<T>(path: &'static str, elapsed: Duration, result: &Result<T, Error>) {
    #[cfg(feature = "metrics")]
    {
        let labels = [("method", method(path)), ("outcome", outcome(result))];
        metrics::counter!(CALLS, &labels).increment(1);
        metrics::histogram!(CALL_DURATION, &labels).record(elapsed.as_secs_f64());
    }
}

/// Records one retry.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn retry(path: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(RETRIES, "method" => method(path)).increment(1);
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels() {
        assert_eq!(
            super::method("/cerbos.svc.v1.CerbosService/CheckResources"),
            "check_resources"
        );
        assert_eq!(
            super::method("/cerbos.svc.v1.CerbosService/PlanResources"),
            "plan_resources"
        );
        assert_eq!(super::outcome(&Ok::<(), _>(())), "ok");
        let timeout = Err::<(), _>(crate::Error::Timeout(Default::default()));
        assert_eq!(super::outcome(&timeout), "timeout");
    }
}
