use std::time::Duration;

/// Everything that can go wrong when talking to the Cerbos PDP.
///
/// Every variant means "no decision": callers that authorize requests must
/// treat any `Err` as a denial (the `cerbos-tower` layer does).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is invalid. The message says what to fix.
    #[error("invalid Cerbos client configuration: {0}")]
    Config(String),

    /// The request cannot be sent as built (for example a resource without
    /// actions). Nothing was sent to the PDP.
    #[error("invalid Cerbos request: {0}")]
    InvalidRequest(String),

    /// The PDP could not be reached (connection refused, reset, closed by
    /// the server, TLS failure…) even after the configured retries.
    #[error("the Cerbos PDP is unavailable: {message}")]
    Unavailable {
        /// What the transport reported.
        message: String,
    },

    /// The call did not complete within the configured timeout (including
    /// retries).
    #[error("the call to the Cerbos PDP timed out after {0:?}")]
    Timeout(Duration),

    /// The PDP rejected the request as invalid (`INVALID_ARGUMENT`): a
    /// request over its configured limits, a JWT that failed verification,
    /// an unknown key set, …
    #[error("the Cerbos PDP rejected the request: {message}")]
    InvalidArgument {
        /// The PDP's message.
        message: String,
    },

    /// The PDP answered with any other gRPC error status.
    #[error("the Cerbos PDP answered {code}: {message}")]
    Status {
        /// The gRPC status code.
        code: GrpcCode,
        /// The PDP's message.
        message: String,
    },

    /// The PDP answered, but the answer does not make sense (missing or
    /// extra results, results for other resources, a plan without a
    /// condition, an operand without a value…).
    #[error("malformed response from the Cerbos PDP: {0}")]
    MalformedResponse(String),
}

impl Error {
    /// `true` for errors that mean the PDP could not be asked or did not
    /// answer in time, as opposed to errors in the request or the answer.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout(_))
    }

    /// Maps a gRPC status. Statuses the client made itself (rather than the
    /// PDP) carry their cause in the source chain: a client-side deadline, a
    /// broken connection, an undecodable answer.
    #[cfg(feature = "grpc")]
    pub(crate) fn from_status(status: tonic::Status, timeout: Duration) -> Self {
        use tonic::Code;
        let message = status_message(&status);
        let chain = || std::iter::successors(std::error::Error::source(&status), |e| e.source());
        // tonic enforces the grpc-timeout we send; it reports CANCELLED with
        // its `TimeoutExpired` error (as the status message, or in the chain).
        let expired = tonic::TimeoutExpired(()).to_string();
        if chain().any(|e| e.is::<tonic::TimeoutExpired>())
            || (status.code() == Code::Cancelled && status.message() == expired)
        {
            return Error::Timeout(timeout);
        }
        let mut source = std::error::Error::source(&status);
        while let Some(err) = source {
            if err.is::<prost::DecodeError>() {
                return Error::MalformedResponse(message);
            }
            if err.is::<tonic::transport::Error>() || err.is::<std::io::Error>() {
                return Error::Unavailable { message };
            }
            source = err.source();
        }
        match status.code() {
            Code::Unavailable => Error::Unavailable { message },
            Code::DeadlineExceeded => Error::Timeout(timeout),
            Code::InvalidArgument => Error::InvalidArgument { message },
            code => Error::Status {
                code: GrpcCode(code as i32),
                message,
            },
        }
    }
}

/// A gRPC status code, as the PDP answered it (`Display` gives its name,
/// such as `PERMISSION_DENIED`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct GrpcCode(pub i32);

impl GrpcCode {
    /// The code's name in the gRPC specification (`UNKNOWN_CODE` for a
    /// number it does not define).
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 17] = [
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
        usize::try_from(self.0)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("UNKNOWN_CODE")
    }
}

impl std::fmt::Display for GrpcCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The status message, with the transport error behind it when tonic only
/// says "transport error" or similar.
#[cfg(feature = "grpc")]
fn status_message(status: &tonic::Status) -> String {
    let mut message = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        let text = err.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        source = err.source();
    }
    if message.is_empty() {
        message = format!("{:?}", status.code());
    }
    message
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
