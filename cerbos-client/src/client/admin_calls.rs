//! The transport of the Admin API ([`crate::admin`]): unary calls through
//! the client's own call path (deadline, retries, client-wide headers) and
//! the server-streamed audit log, with the admin credentials added per call.

use prost::bytes::Bytes;
use tokio::time::Instant;
use tonic::{codec::Streaming, codegen::http::uri::PathAndQuery};

use super::{Client, Header, codec};
use crate::{Error, Result};

impl Client {
    /// One unary Admin API call, with `authorization` as a per-call header.
    pub(crate) async fn admin_unary<Req, Resp>(
        &self,
        path: &'static str,
        request: &Req,
        authorization: &Header,
    ) -> Result<Resp>
    where
        Req: prost::Message,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let (answer, _version) = self
            .unary(
                path,
                codec::encode(request),
                std::slice::from_ref(authorization),
            )
            .await?;
        Ok(answer)
    }

    /// Opens a server-streamed Admin API call. The whole stream has the
    /// client's call timeout (sent as `grpc-timeout`, and the returned
    /// deadline for reading it); opening it is not retried.
    pub(crate) async fn admin_stream<Req, Resp>(
        &self,
        path: &'static str,
        request: &Req,
        authorization: &Header,
    ) -> Result<(Streaming<Resp>, Instant)>
    where
        Req: prost::Message,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let config = &*self.config;
        let deadline = Instant::now() + config.timeout;
        let headers = std::slice::from_ref(authorization);
        // The trace context too, as on every other call.
        let trace = config.trace_headers(headers);
        let metadata = config.metadata(config.grpc_timeout.clone(), &trace, headers);
        let body: Bytes = codec::encode(request);
        let req = tonic::Request::from_parts(metadata, Default::default(), body);
        let open = async {
            let mut grpc = self.ready_grpc().await?;
            grpc.server_streaming(
                req,
                PathAndQuery::from_static(path),
                codec::PreEncoded::<Resp>::default(),
            )
            .await
        };
        let stream = tokio::time::timeout_at(deadline, open)
            .await
            .map_err(|_| Error::Timeout(config.timeout))?
            .map_err(|status| Error::from_status(status, config.timeout))?
            .into_inner();
        Ok((stream, deadline))
    }

    /// The next message of a stream opened by [`Client::admin_stream`].
    pub(crate) async fn admin_stream_next<Resp>(
        &self,
        stream: &mut Streaming<Resp>,
        deadline: Instant,
    ) -> Result<Option<Resp>> {
        let timeout = self.config.timeout;
        tokio::time::timeout_at(deadline, stream.message())
            .await
            .map_err(|_| Error::Timeout(timeout))?
            .map_err(|status| Error::from_status(status, timeout))
    }
}
