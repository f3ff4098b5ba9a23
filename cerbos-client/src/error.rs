use std::{fmt, ops::Deref, sync::Arc, time::Duration};

/// Everything that can go wrong when talking to the Cerbos PDP.
///
/// Every variant means "no decision": callers that authorize requests must
/// treat any `Err` as a denial (the `cerbos-tower` layer does).
///
/// [`std::error::Error::source`] gives the transport error behind an
/// [`Error::Unavailable`] the client saw itself (a refused connection, a
/// TLS failure…).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is invalid. The message says what to fix.
    Config(String),

    /// The request cannot be sent as built (for example a resource without
    /// actions). Nothing was sent to the PDP.
    InvalidRequest(String),

    /// The PDP could not be reached (connection refused, reset, closed by
    /// the server, TLS failure…) even after the configured retries.
    Unavailable {
        /// What the transport reported; it keeps the transport error, which
        /// is this error's [`source`](std::error::Error::source).
        message: ErrorMessage,
    },

    /// The call did not complete within the configured timeout (including
    /// retries).
    Timeout(Duration),

    /// The PDP rejected the request as invalid (`INVALID_ARGUMENT`): a
    /// request over its configured limits, a JWT that failed verification,
    /// an unknown key set, …
    InvalidArgument {
        /// The PDP's message.
        message: String,
    },

    /// The PDP answered with any other gRPC error status.
    Status {
        /// The gRPC status code.
        code: GrpcCode,
        /// The PDP's message.
        message: String,
    },

    /// The PDP answered, but the answer does not make sense (missing or
    /// extra results, results for other resources, a plan without a
    /// condition, an operand without a value…).
    MalformedResponse(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(message) => {
                write!(f, "invalid Cerbos client configuration: {message}")
            }
            Error::InvalidRequest(message) => write!(f, "invalid Cerbos request: {message}"),
            Error::Unavailable { message } => {
                write!(f, "the Cerbos PDP is unavailable: {message}")
            }
            Error::Timeout(timeout) => {
                write!(f, "the call to the Cerbos PDP timed out after {timeout:?}")
            }
            Error::InvalidArgument { message } => {
                write!(f, "the Cerbos PDP rejected the request: {message}")
            }
            Error::Status { code, message } => {
                write!(f, "the Cerbos PDP answered {code}: {message}")
            }
            Error::MalformedResponse(message) => {
                write!(f, "malformed response from the Cerbos PDP: {message}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Unavailable { message } => message.source(),
            _ => None,
        }
    }
}

/// The message of an [`Error::Unavailable`]: text, and the error it was made
/// from when the client saw one (the error's
/// [`source`](std::error::Error::source)).
///
/// It reads as a `str` (`Deref`, `Display`, comparisons with strings) and is
/// made from one with `.into()`, as stub PDPs in tests do:
///
/// ```
/// use cerbos_client::Error;
/// let down = Error::Unavailable { message: "connection refused".into() };
/// let Error::Unavailable { message } = &down else { unreachable!() };
/// assert!(message.contains("refused"));
/// assert!(std::error::Error::source(&down).is_none());
/// ```
#[derive(Clone)]
pub struct ErrorMessage {
    text: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ErrorMessage {
    /// A message that keeps the error it describes.
    pub fn with_source(
        text: impl Into<String>,
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
    ) -> Self {
        ErrorMessage {
            text: text.into(),
            source: Some(source),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The error the message was made from, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.source {
            Some(source) => Some(&**source),
            None => None,
        }
    }
}

impl From<String> for ErrorMessage {
    fn from(text: String) -> Self {
        ErrorMessage { text, source: None }
    }
}

impl From<&str> for ErrorMessage {
    fn from(text: &str) -> Self {
        text.to_owned().into()
    }
}

impl From<ErrorMessage> for String {
    fn from(message: ErrorMessage) -> Self {
        message.text
    }
}

impl Deref for ErrorMessage {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for ErrorMessage {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ErrorMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Debug-formats as the text, like the `String` it replaces.
impl fmt::Debug for ErrorMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// Compares the text only.
impl PartialEq for ErrorMessage {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for ErrorMessage {}

impl PartialEq<str> for ErrorMessage {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for ErrorMessage {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl PartialEq<String> for ErrorMessage {
    fn eq(&self, other: &String) -> bool {
        &self.text == other
    }
}

impl Error {
    /// `true` for errors that mean the PDP could not be asked or did not
    /// answer in time, as opposed to errors in the request or the answer.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Timeout(_))
    }

    /// An [`Error::Unavailable`] whose source is `cause`.
    #[cfg(feature = "grpc")]
    pub(crate) fn unavailable(
        message: String,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Unavailable {
            message: ErrorMessage::with_source(message, Arc::new(cause)),
        }
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
                return Error::unavailable(message, status);
            }
            source = err.source();
        }
        match status.code() {
            Code::Unavailable => Error::unavailable(message, status),
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
