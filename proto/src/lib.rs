//! Arbiter's wire types: prost messages and tonic clients/servers generated at build time.
//!
//! # Why YDB's names
//!
//! Arbiter stands in for YDB's Cluster Management System towards existing maintenance
//! clients (ydbops, the YDB SDKs' generated stubs, grpcurl). Those clients are compiled
//! against YDB's public API, so the `.proto` files in `proto/proto/ydb/` declare the
//! same packages, message names, field numbers and enum values. As a result:
//!
//! - gRPC paths are YDB's, e.g. `/Ydb.Maintenance.V1.MaintenanceService/CreateMaintenanceTask`;
//! - results packed into [`ydb::operations::Operation::result`] carry YDB's type URLs, e.g.
//!   `type.googleapis.com/Ydb.Maintenance.MaintenanceTaskResult` (every message implements
//!   [`prost::Name`], so [`prost_types::Any::from_msg`] produces exactly that URL);
//! - errors travel as [`ydb::status_ids::StatusCode`] in the operation, not as gRPC statuses.
//!
//! The files were written for Arbiter from the documented contract, not copied from YDB.
//! YDB's validation annotations are left out (they do not affect the wire format), and the
//! Discovery, Cms and Auth services declare only the calls ydbops makes.
//!
//! Arbiter's own additions (heartbeats, manual node state, a task watch stream) live in
//! a separate package, [`arbiter::v1`].
//!
//! # Module layout
//!
//! Modules mirror protobuf packages: `Ydb.Maintenance` is [`ydb::maintenance`],
//! `Ydb.Maintenance.V1` is [`ydb::maintenance::v1`], and so on. Each service module
//! has a `*_client` and a `*_server` submodule, for example
//! [`ydb::maintenance::v1::maintenance_service_server::MaintenanceServiceServer`].
//! Well-known types (`Any`, `Duration`, `Timestamp`) come from [`prost_types`].
//!
//! # Descriptor set
//!
//! [`FILE_DESCRIPTOR_SET`] is the encoded, self-contained `FileDescriptorSet` of every file
//! (imports and comments included), produced by `protox` in `build.rs`. Hand it to a gRPC
//! reflection service so that `grpcurl host:port list` works without `.proto` files.
//!
//! # Codec
//!
//! Every generated client and server uses [`codec::ArbiterCodec`]: prost's, except that a
//! request whose bytes do not decode is `INVALID_ARGUMENT` naming the message.
//!
//! No system `protoc` is needed to build this crate.

/// The encoded `google.protobuf.FileDescriptorSet` of all `.proto` files of this crate,
/// including their imports (well-known types) and source comments.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));

/// YDB's public API packages (`Ydb.*`), wire-compatible with YDB.
///
/// This module itself is package `Ydb`: [`StatusIds`](crate::ydb::StatusIds),
/// [`FeatureFlag`](crate::ydb::FeatureFlag) and [`CostInfo`](crate::ydb::CostInfo).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod ydb {
    tonic::include_proto!("ydb");

    /// Package `Ydb.Issue`: [`IssueMessage`](crate::ydb::issue::IssueMessage).
    pub mod issue {
        tonic::include_proto!("ydb.issue");
    }

    /// Package `Ydb.Operations`: the [`Operation`](crate::ydb::operations::Operation)
    /// envelope and [`OperationParams`](crate::ydb::operations::OperationParams).
    pub mod operations {
        tonic::include_proto!("ydb.operations");
    }

    /// Package `Ydb.Discovery`: node locations and WhoAmI messages.
    pub mod discovery {
        tonic::include_proto!("ydb.discovery");

        /// Package `Ydb.Discovery.V1`: `DiscoveryService` (WhoAmI only).
        pub mod v1 {
            tonic::include_proto!("ydb.discovery.v1");
        }
    }

    /// Package `Ydb.Cms`: ListDatabases messages.
    pub mod cms {
        tonic::include_proto!("ydb.cms");

        /// Package `Ydb.Cms.V1`: `CmsService` (ListDatabases only).
        pub mod v1 {
            tonic::include_proto!("ydb.cms.v1");
        }
    }

    /// Package `Ydb.Auth`: Login messages.
    pub mod auth {
        tonic::include_proto!("ydb.auth");

        /// Package `Ydb.Auth.V1`: `AuthService`.
        pub mod v1 {
            tonic::include_proto!("ydb.auth.v1");
        }
    }

    /// Package `Ydb.Maintenance`: the messages of YDB's cluster maintenance API.
    pub mod maintenance {
        tonic::include_proto!("ydb.maintenance");

        /// Package `Ydb.Maintenance.V1`: `MaintenanceService` and its seven unary RPCs.
        pub mod v1 {
            tonic::include_proto!("ydb.maintenance.v1");
        }
    }
}

/// Arbiter's own API packages (`arbiter.*`).
pub mod arbiter {
    /// Package `arbiter.v1`: `ArbiterService` (heartbeats, node state, task watch).
    #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("arbiter.v1");
    }
}

pub mod codec;

#[cfg(test)]
mod tests;
