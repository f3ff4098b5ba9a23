//! A gRPC codec for requests encoded once per call: the encoder writes the
//! request's bytes as they are, so a retry re-sends the same bytes without
//! cloning or re-encoding the message; the decoder is prost's.

use std::{marker::PhantomData, sync::Arc};

use prost::{
    Message,
    bytes::{BufMut, Bytes},
};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

/// Encodes a request message once, for every attempt of a call.
pub(super) fn encode(message: &impl Message) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// Sends pre-encoded request bytes and decodes the answer as a `T`.
pub(super) struct PreEncoded<T>(PhantomData<fn() -> T>);

impl<T> Default for PreEncoded<T> {
    fn default() -> Self {
        PreEncoded(PhantomData)
    }
}

impl<T: Message + Default + Send + 'static> Codec for PreEncoded<T> {
    type Encode = Bytes;
    type Decode = T;
    type Encoder = BytesEncoder;
    type Decoder = ProstDecoder<T>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder(PhantomData)
    }
}

/// Writes the bytes as they are.
pub(super) struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

/// Decodes a `T`; an undecodable answer is an `INTERNAL` status that keeps
/// the `prost::DecodeError` as its source (the client reports it as a
/// malformed response).
pub(super) struct ProstDecoder<T>(PhantomData<fn() -> T>);

impl<T: Message + Default> Decoder for ProstDecoder<T> {
    type Item = T;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<T>, Status> {
        T::decode(src).map(Some).map_err(|e| {
            let mut status = Status::internal(e.to_string());
            status.set_source(Arc::new(e));
            status
        })
    }
}
