//! The codec of every generated client and server (`build.rs` passes it to `tonic-prost-build`
//! as `codec_path`): prost's encoder, and a decoder that says what did not decode.
//!
//! tonic's own `ProstCodec` turns any `DecodeError` into `INTERNAL` with prost's bare text. But
//! bytes that are not a valid request are the caller's mistake, not the server's, so a request
//! message (every request type's name ends in `Request`) that does not decode is
//! `INVALID_ARGUMENT`, "request body is not a valid Ydb.Maintenance.CreateMaintenanceTaskRequest:
//! ...". The same decoder runs in the generated clients, on replies: a reply that does not decode
//! is the server's fault and stays `INTERNAL`, now naming the message too.

use prost::{Message, Name};
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

/// Encodes `T` and decodes `U` with prost; see the module documentation for decode errors.
#[derive(Debug, Clone)]
pub struct ArbiterCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for ArbiterCodec<T, U> {
    fn default() -> Self {
        ArbiterCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for ArbiterCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = NamedDecoder<U>;

    fn encoder(&mut self) -> ProstEncoder<T> {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> NamedDecoder<U> {
        NamedDecoder { _pd: PhantomData }
    }
}

/// Decodes `U`; a failure names `U` (see [`decode_error`]).
#[derive(Debug, Clone)]
pub struct NamedDecoder<U> {
    _pd: PhantomData<U>,
}

impl<U: Message + Name + Default> Decoder for NamedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(decode_error::<U>)
    }
}

/// The status for bytes that are not a valid `U`: `INVALID_ARGUMENT` for a request (the
/// caller's mistake), `INTERNAL` for anything else (a reply: the server's).
pub fn decode_error<U: Name>(error: prost::DecodeError) -> Status {
    let name = U::full_name();
    if U::NAME.ends_with("Request") {
        Status::invalid_argument(format!("request body is not a valid {name}: {error}"))
    } else {
        Status::internal(format!("reply is not a valid {name}: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ydb::maintenance::{CreateMaintenanceTaskRequest, MaintenanceTaskResponse};

    fn error_of<U: Message + Name + Default + std::fmt::Debug>(bytes: &[u8]) -> Status {
        let e = U::decode(bytes).expect_err("not protobuf");
        decode_error::<U>(e)
    }

    #[test]
    fn a_request_that_does_not_decode_is_invalid_argument_and_named() {
        let s = error_of::<CreateMaintenanceTaskRequest>(&[0xff; 16]);
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(
            s.message().starts_with(
                "request body is not a valid Ydb.Maintenance.CreateMaintenanceTaskRequest: "
            ),
            "{s:?}"
        );
        assert!(s.message().contains("decode"), "prost's reason: {s:?}");
    }

    #[test]
    fn a_reply_that_does_not_decode_stays_internal() {
        let s = error_of::<MaintenanceTaskResponse>(&[0x0f, 0x01]);
        assert_eq!(s.code(), tonic::Code::Internal);
        assert!(
            s.message()
                .starts_with("reply is not a valid Ydb.Maintenance.MaintenanceTaskResponse: "),
            "{s:?}"
        );
    }
}
