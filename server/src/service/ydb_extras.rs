//! The YDB calls ydbops makes besides maintenance: WhoAmI (to learn its own user, the owner it
//! filters tasks by), ListDatabases (to check its tenant list) and Login (password auth).

use super::Context;
use super::audit::Audit;
use super::envelope::operation;
use super::error::ServiceError;
use crate::engine::state::MAX_NAME_LEN;
use crate::identity::{AuthError, Role};
use arbiter_proto::ydb::auth::v1::auth_service_server::AuthService;
use arbiter_proto::ydb::auth::{LoginRequest, LoginResponse, LoginResult};
use arbiter_proto::ydb::cms::v1::cms_service_server::CmsService;
use arbiter_proto::ydb::cms::{ListDatabasesRequest, ListDatabasesResponse, ListDatabasesResult};
use arbiter_proto::ydb::discovery::v1::discovery_service_server::DiscoveryService;
use arbiter_proto::ydb::discovery::{WhoAmIRequest, WhoAmIResponse, WhoAmIResult};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

/// Discovery, Cms and Auth, each with only what ydbops calls.
#[derive(Debug, Clone)]
pub struct YdbExtras {
    ctx: Context,
    logins: Arc<LoginSlots>,
}

/// The longest password Login takes: argon2 hashes any length, so a bound keeps a request's
/// cost bounded.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// How many Login calls may wait for a verification slot before callers are told to back off.
pub const MAX_WAITING_LOGINS: usize = 256;

/// Password checks are slow on purpose (argon2: tens of milliseconds and about 19 MiB each), so
/// only as many run at once as there are cores, and a bounded number wait: a flood of Logins
/// can neither exhaust memory nor starve the other calls.
#[derive(Debug)]
struct LoginSlots {
    waiting: Semaphore,
    running: Semaphore,
}

impl YdbExtras {
    /// Over the shared context.
    pub fn new(ctx: Context) -> YdbExtras {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        YdbExtras {
            ctx,
            logins: Arc::new(LoginSlots {
                waiting: Semaphore::new(MAX_WAITING_LOGINS),
                running: Semaphore::new(cores),
            }),
        }
    }

    async fn databases(
        &self,
        request: &Request<ListDatabasesRequest>,
    ) -> Result<ListDatabasesResult, ServiceError> {
        let audit = Audit::of("ListDatabases", request);
        let caller = self
            .ctx
            .identity
            .resolve(request.metadata())
            .map_err(ServiceError::from);
        audit.check(None, caller)?;
        self.ctx
            .query(|s, _| {
                Ok(ListDatabasesResult {
                    paths: s.cluster().tenants().map(|t| t.name.clone()).collect(),
                })
            })
            .await
    }
}

#[tonic::async_trait]
impl DiscoveryService for YdbExtras {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let audit = Audit::of("WhoAmI", &request);
        let caller = self
            .ctx
            .identity
            .resolve(request.metadata())
            .map_err(ServiceError::from);
        let result = audit.check(None, caller).map(|c| WhoAmIResult {
            user: c.user,
            groups: Vec::new(),
            is_administration_allowed: c.role == Role::Admin,
            is_monitoring_allowed: true,
            is_viewer_allowed: true,
            is_database_allowed: true,
            is_register_node_allowed: false,
            is_bootstrap_allowed: false,
        });
        Ok(Response::new(WhoAmIResponse {
            operation: Some(operation(result)),
        }))
    }
}

#[tonic::async_trait]
impl CmsService for YdbExtras {
    async fn list_databases(
        &self,
        request: Request<ListDatabasesRequest>,
    ) -> Result<Response<ListDatabasesResponse>, Status> {
        Ok(Response::new(ListDatabasesResponse {
            operation: Some(operation(self.databases(&request).await)),
        }))
    }
}

#[tonic::async_trait]
impl AuthService for YdbExtras {
    async fn login(
        &self,
        request: Request<LoginRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let audit = Audit::of("Login", &request);
        let req = request.into_inner();
        if req.password.len() > MAX_PASSWORD_BYTES || req.user.len() > MAX_NAME_LEN {
            return Ok(Response::new(LoginResponse {
                operation: Some(operation::<LoginResult>(Err(ServiceError::BadRequest(
                    format!(
                        "user names are at most {MAX_NAME_LEN} bytes and passwords at most \
                         {MAX_PASSWORD_BYTES}"
                    ),
                )))),
            }));
        }
        let Ok(_waiting) = self.logins.waiting.try_acquire() else {
            return Ok(Response::new(LoginResponse {
                operation: Some(operation::<LoginResult>(Err(ServiceError::Overloaded(
                    format!("too many logins at once: {MAX_WAITING_LOGINS} are waiting"),
                )))),
            }));
        };
        let _running = self
            .logins
            .running
            .acquire()
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        let identity = self.ctx.identity.clone();
        let user = req.user;
        let password = req.password;
        let name = user.clone();
        // argon2 verification is deliberately slow: keep it off the async workers.
        let session = tokio::task::spawn_blocking(move || identity.login_session(&name, &password))
            .await
            .map_err(|e| Status::internal(format!("login task failed: {e}")))?;
        let result = match session {
            Ok(s) => {
                audit.login_accepted(&user, s.role);
                Ok(LoginResult { token: s.token })
            }
            Err(why) => {
                audit.login_failed(&user, why);
                self.ctx.record_refusal(crate::engine::audit::AuditEntry {
                    user: user.clone(),
                    detail: format!("Login refused: {why}"),
                    ..audit.entry(crate::engine::audit::AuditKind::LoginFailed, None)
                });
                Err(ServiceError::from(AuthError::from(why)))
            }
        };
        Ok(Response::new(LoginResponse {
            operation: Some(operation(result)),
        }))
    }
}
