//! [`Authz`]: checks made in a handler.

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use cerbos_tower::adapter::HandlerChecks;
use futures_util::future::LocalBoxFuture;

use crate::{
    CerbosRejection,
    request::{app_authorizer, head},
};

/// Checks made in a handler, for decisions that need data only the handler
/// has: the principal is resolved when the extractor runs (401 and the
/// like reject the request before the handler); each
/// [`check`](Self::check) or [`require`](Self::require) is one
/// `CheckResources` call with all its actions. A list page asks for its
/// query [`plan`](Self::plan) (one `PlanResources` call) and for the
/// [`permissions`](Self::permissions) of its rows (one `CheckResources`
/// call with every row).
///
/// Needs the [`Authorizer`](crate::Authorizer) in the app data
/// (`App::app_data(cerbos.authorizer())`).
///
/// ```
/// use actix_web::{App, web};
/// use cerbos_actix::{Authz, CerbosRejection, Resource};
///
/// async fn transfer(authz: Authz, body: String) -> Result<String, CerbosRejection> {
///     // The resource exists only in the request body.
///     let account = Resource::new("account", body.trim()).with_attr("currency", "EUR");
///     let decision = authz.require(account, ["withdraw"]).await?;
///     Ok(format!("ok ({})", decision.cerbos_call_id()))
/// }
///
/// # fn app(authorizer: cerbos_actix::Authorizer) {
/// App::new().app_data(authorizer).route("/transfer", web::post().to(transfer));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Authz(HandlerChecks);

impl FromRequest for Authz {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let authorizer = app_authorizer(&req)?;
            let head = head(&authorizer, &req)?;
            let checks = HandlerChecks::resolve(authorizer, &head)
                .await
                .map_err(CerbosRejection::from)?;
            Ok(Authz(checks))
        })
    }
}

cerbos_tower::__authz_methods!(Authz, CerbosRejection);
